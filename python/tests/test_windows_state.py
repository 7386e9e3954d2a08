"""Windows and state: the exact output of every batch, as PySpark gives it, with
batches run one by one on a manual clock (the first batch is at 1 s)."""

import pytest

from conftest import at, collect, values

NUMBERS = [[1], [2], [3], [4], [5], [6]]
# Elements per batch: 2, 1, 0, 0, 0, 1.
LETTERS = [["a", "b"], ["a"], [], [], [], ["c"]]
PAIRS = [[("a", 1), ("b", 2)], [("a", 3)], [], [("b", 4)]]


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


@pytest.fixture
def checkpointed(ssc, tmp_path):
    """The context, with a checkpoint directory (state and inverse windows need one)."""
    ssc.checkpoint(str(tmp_path / "checkpoint"))
    return ssc


# --- window -------------------------------------------------------------------------


def test_window_every_batch(ssc, run):
    out = collect(ssc.queueStream(NUMBERS).window(3), key=list)
    run(9)
    # Oldest batch first.
    assert values(out) == [[1], [1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6], [5, 6],
                           [6], []]


def test_window_with_a_slide_exists_only_at_slide_times(ssc, run):
    out = collect(ssc.queueStream(NUMBERS).window(3, 2), key=list)
    run(9)
    assert out == [(at(2), [1, 2]), (at(4), [2, 3, 4]), (at(6), [4, 5, 6]), (at(8), [6])]


def test_tumbling_window_of_a_mapped_stream(ssc, run):
    out = collect(ssc.queueStream(NUMBERS).map(lambda x: x * 10).window(2, 2), key=list)
    run(6)
    assert out == [(at(2), [10, 20]), (at(4), [30, 40]), (at(6), [50, 60])]


def test_window_of_a_window(ssc, run):
    out = collect(ssc.queueStream(NUMBERS).window(2, 2).window(4, 4), key=list)
    run(8)
    assert out == [(at(4), [1, 2, 3, 4]), (at(8), [5, 6])]


@pytest.mark.parametrize("window, slide, message", [
    (1.5, None, "windowDuration must be multiple"),
    (3, 1.5, "slideDuration must be multiple"),
])
def test_window_durations_must_be_multiples_of_the_batch(ssc, window, slide, message):
    stream = ssc.queueStream(NUMBERS)
    with pytest.raises(ValueError, match=message):
        stream.window(window, slide)
    with pytest.raises(ValueError, match=message):
        stream.map(lambda x: (x, 1)).reduceByKeyAndWindow(add, sub, window, slide)
    with pytest.raises(ValueError, match=message):
        stream.countByValueAndWindow(window, slide or 1)


def test_windowed_stream_keeps_its_slide_for_unions(ssc, run):
    stream = ssc.queueStream(NUMBERS)
    out = collect(stream.window(2, 2).union(stream.window(4, 2)), key=list)
    run(4)
    assert values(out) == [[1, 2, 1, 2], [3, 4, 1, 2, 3, 4]]


# --- counts over windows ------------------------------------------------------------


def test_count_by_window_short(checkpointed, run):
    out = collect(checkpointed.queueStream(LETTERS).countByWindow(3, 1))
    run(9)
    # PySpark recomputes windows shorter than five slides: an empty one gives nothing.
    assert values(out) == [[2], [3], [3], [1], [], [1], [1], [1], []]


def test_count_by_window_long_keeps_the_zero(checkpointed, run):
    out = collect(checkpointed.queueStream(LETTERS).countByWindow(5, 1))
    run(11)
    # PySpark's incremental window (five slides or more) keeps the count at 0.
    assert values(out) == [[2], [3], [3], [3], [3], [2], [1], [1], [1], [1], [0]]


def test_count_by_window_with_a_slide(checkpointed, run):
    out = collect(checkpointed.queueStream(LETTERS).countByWindow(4, 2))
    run(10)
    # At 10 s the window (7 s to 10 s) is empty: an empty batch, as PySpark.
    assert out == [(at(2), [3]), (at(4), [3]), (at(6), [1]), (at(8), [1]), (at(10), [])]


def test_reduce_by_window_with_and_without_inverse(checkpointed, run):
    numbers = checkpointed.queueStream(NUMBERS)
    plain = collect(numbers.reduceByWindow(add, None, 3, 1))
    inverse = collect(numbers.reduceByWindow(add, sub, 3, 1))
    concatenated = collect(numbers.map(str).reduceByWindow(add, None, 2, 2))
    run(9)
    expected = [[1], [3], [6], [9], [12], [15], [11], [6], []]
    assert values(plain) == expected
    assert values(inverse) == expected
    # Oldest batch first.
    assert values(concatenated) == [["12"], ["34"], ["56"], []]


def test_count_by_value_and_window(checkpointed, run):
    out = collect(checkpointed.queueStream(LETTERS).countByValueAndWindow(3, 1))
    long = collect(checkpointed.queueStream(LETTERS).countByValueAndWindow(5, 1))
    run(11)
    assert values(out) == [
        [("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 2), ("b", 1)], [("a", 1)], [],
        [("c", 1)], [("c", 1)], [("c", 1)], [], [], []]
    # Counts that fall to 0 are dropped, also from long windows.
    assert values(long) == [
        [("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 2), ("b", 1)],
        [("a", 2), ("b", 1)], [("a", 2), ("b", 1)], [("a", 1), ("c", 1)], [("c", 1)],
        [("c", 1)], [("c", 1)], [("c", 1)], []]


def test_count_by_value_and_window_with_partitions(checkpointed, run):
    out = collect(checkpointed.queueStream(LETTERS)
                  .countByValueAndWindow(2, 1, numPartitions=3).glom(), key=len)
    run(2)
    assert values(out) == [3, 3]


# --- reduceByKeyAndWindow -----------------------------------------------------------

SHORT = [[("a", 1), ("b", 2)], [("a", 4), ("b", 2)], [("a", 3)], [("b", 4)], [("b", 4)], []]


def test_reduce_by_key_and_window_without_inverse(ssc, run):
    out = collect(ssc.queueStream(PAIRS).reduceByKeyAndWindow(add, None, 2))
    slid = collect(ssc.queueStream(PAIRS).reduceByKeyAndWindow(add, None, 4, 2))
    run(6)
    assert values(out) == SHORT
    assert slid == [(at(2), [("a", 4), ("b", 2)]), (at(4), [("a", 4), ("b", 6)]),
                    (at(6), [("b", 4)])]


def test_reduce_by_key_and_window_short_with_inverse_is_as_without(checkpointed, run):
    out = collect(checkpointed.queueStream(PAIRS).reduceByKeyAndWindow(add, sub, 2, 1))
    run(6)
    # PySpark recomputes windows shorter than five slides: a key leaves with its values.
    assert values(out) == SHORT


def test_reduce_by_key_and_window_long_with_inverse_keeps_keys(checkpointed, run):
    out = collect(checkpointed.queueStream(PAIRS).reduceByKeyAndWindow(add, sub, 5, 1))
    run(9)
    assert values(out) == [
        [("a", 1), ("b", 2)], [("a", 4), ("b", 2)], [("a", 4), ("b", 2)],
        [("a", 4), ("b", 6)], [("a", 4), ("b", 6)], [("a", 3), ("b", 4)],
        [("a", 0), ("b", 4)], [("a", 0), ("b", 4)], [("a", 0), ("b", 0)]]


def test_reduce_by_key_and_window_filter_func(checkpointed, run):
    pairs = checkpointed.queueStream(PAIRS)
    long = collect(pairs.reduceByKeyAndWindow(add, sub, 5, 1, filterFunc=lambda kv: kv[1] > 0))
    short = collect(pairs.reduceByKeyAndWindow(add, sub, 2, 1, filterFunc=lambda kv: kv[1] > 2))
    run(9)
    assert values(long) == [
        [("a", 1), ("b", 2)], [("a", 4), ("b", 2)], [("a", 4), ("b", 2)],
        [("a", 4), ("b", 6)], [("a", 4), ("b", 6)], [("a", 3), ("b", 4)],
        [("b", 4)], [("b", 4)], []]
    # A key filtered out of one window still counts in the next.
    assert values(short) == [[], [("a", 4)], [("a", 3)], [("b", 4)], [("b", 4)], [], [], [], []]


def test_reduce_by_key_and_window_with_a_slide_and_partitions(checkpointed, run):
    pairs = checkpointed.queueStream(PAIRS)
    out = collect(pairs.reduceByKeyAndWindow(add, sub, 4, 2, 3))
    parts = collect(pairs.reduceByKeyAndWindow(add, sub, 4, 2, 3).glom(), key=len)
    run(6)
    assert out == [(at(2), [("a", 4), ("b", 2)]), (at(4), [("a", 4), ("b", 6)]),
                   (at(6), [("b", 4)])]
    assert values(parts) == [3, 3, 3]


def test_reduce_by_key_and_window_on_mixed_keys(checkpointed, run):
    pairs = checkpointed.queueStream([[(1, 1), ((2, "x"), 10)], [(1.0, 2), ((2.0, "x"), 20)],
                                      [(True, 4)]])
    out = collect(pairs.reduceByKeyAndWindow(add, sub, 5, 1), key=lambda r: (len(r), dict(r)))
    run(3)
    assert values(out) == [(2, {1: 1, (2, "x"): 10}), (2, {1: 3, (2, "x"): 30}),
                           (2, {1: 7, (2, "x"): 30})]


def test_group_by_key_and_window(ssc, run):
    pairs = ssc.queueStream([[("a", 1)], [("a", 2), ("b", 1), ("a", 0)], [("a", 3)], [], [], []])
    out = collect(pairs.groupByKeyAndWindow(3, 1).mapValues(list))
    slid = collect(pairs.groupByKeyAndWindow(2, 2, 3).mapValues(list))
    run(6)
    # Values oldest batch first, in arrival order within a batch.
    assert values(out) == [
        [("a", [1])], [("a", [1, 2, 0]), ("b", [1])], [("a", [1, 2, 0, 3]), ("b", [1])],
        [("a", [2, 0, 3]), ("b", [1])], [("a", [3])], []]
    assert values(slid) == [[("a", [1, 2, 0]), ("b", [1])], [("a", [3])], []]


# --- updateStateByKey ---------------------------------------------------------------


def running_sum(new_values, state):
    return sum(new_values) + (state or 0)


def test_update_state_by_key_running_sum(checkpointed, run):
    pairs = checkpointed.queueStream([[("a", 1), ("b", 2), ("a", 3)], [("b", 4)], [],
                                      [("a", 5)]])
    out = collect(pairs.updateStateByKey(running_sum))
    run(5)
    assert out == [(at(1), [("a", 4), ("b", 2)]), (at(2), [("a", 4), ("b", 6)]),
                   (at(3), [("a", 4), ("b", 6)]), (at(4), [("a", 9), ("b", 6)]),
                   (at(5), [("a", 9), ("b", 6)])]


def test_update_func_sees_every_key_every_batch(checkpointed, run):
    calls = []

    def update(new_values, state):
        assert type(new_values) is list
        # The engine merges a batch's values from its partitions in no set order (as
        # Spark's shuffle): sorted here.
        calls.append((sorted(new_values), state))
        return (state or []) + sorted(new_values)

    pairs = checkpointed.queueStream([[("a", 1), ("b", 2), ("a", 3)], [("b", 4)], []])
    out = collect(pairs.updateStateByKey(update))
    run(3)
    assert values(out) == [[("a", [1, 3]), ("b", [2])], [("a", [1, 3]), ("b", [2, 4])],
                           [("a", [1, 3]), ("b", [2, 4])]]
    # The first time a key is seen its state is None; then [] when it has no values.
    assert sorted(calls, key=repr) == sorted([
        ([1, 3], None), ([2], None),
        ([], [1, 3]), ([4], [2]),
        ([], [1, 3]), ([], [2, 4])], key=repr)


def test_update_state_by_key_returning_none_drops_the_key(checkpointed, run):
    def update(new_values, state):
        return sum(new_values) + (state or 0) if new_values else None

    pairs = checkpointed.queueStream([[("a", 1), ("b", 2)], [("b", 4)], [], [("a", 5)]])
    out = collect(pairs.updateStateByKey(update))
    run(4)
    assert values(out) == [[("a", 1), ("b", 2)], [("b", 6)], [], [("a", 5)]]


def test_update_state_by_key_with_initial_rdd(checkpointed, sc, run):
    pairs = checkpointed.queueStream([[("a", 1), ("b", 2)], [("z", 1)]])
    from_list = collect(pairs.updateStateByKey(running_sum, initialRDD=[("a", 100), ("z", 7)]))
    from_rdd = collect(pairs.updateStateByKey(
        running_sum, initialRDD=sc.parallelize([("b", 1000)])))
    run(2)
    assert values(from_list) == [[("a", 101), ("b", 2), ("z", 7)],
                                 [("a", 101), ("b", 2), ("z", 8)]]
    assert values(from_rdd) == [[("a", 1), ("b", 1002)], [("a", 1), ("b", 1002), ("z", 1)]]


def test_update_state_by_key_partitions(checkpointed, run):
    pairs = checkpointed.queueStream([[(k, 1) for k in range(10)]])
    parts = collect(pairs.updateStateByKey(running_sum, numPartitions=3).glom(), key=list)
    default = collect(pairs.updateStateByKey(running_sum).glom(), key=len)
    run(1)
    [batch] = values(parts)
    assert len(batch) == 3
    assert sorted(kv for part in batch for kv in part) == [(k, 1) for k in range(10)]
    assert values(default) == [2]  # defaultParallelism, as PySpark


def test_update_state_by_key_with_mixed_keys(checkpointed, run):
    pairs = checkpointed.queueStream([[(1, 1), ((1, "t"), 1), (frozenset("ab"), 1)],
                                      [(1.0, 1), ((True, "t"), 1), (frozenset("ba"), 1)],
                                      [(True, 1)]])
    out = collect(pairs.updateStateByKey(running_sum), key=lambda r: (len(r), dict(r)))
    run(3)
    assert values(out) == [
        (3, {(1, "t"): 1, 1: 1, frozenset("ab"): 1}),
        (3, {(1, "t"): 2, 1: 2, frozenset("ab"): 2}),
        (3, {(1, "t"): 2, 1: 3, frozenset("ab"): 2})]


def test_stateful_streams_need_a_checkpoint_directory(ssc):
    ssc.queueStream(PAIRS).updateStateByKey(running_sum).pprint()
    with pytest.raises(RuntimeError, match="checkpoint"):
        ssc.start()


def test_inverse_windows_need_a_checkpoint_directory(ssc):
    ssc.queueStream(PAIRS).reduceByKeyAndWindow(add, sub, 5, 1).pprint()
    with pytest.raises(RuntimeError, match="checkpoint"):
        ssc.start()


# --- slice --------------------------------------------------------------------------


def test_slice_returns_the_remembered_batches(ssc, run):
    numbers = ssc.queueStream(NUMBERS)
    doubled = numbers.map(lambda x: x * 2)
    doubled.pprint()
    ssc.remember(4)
    run(5)
    assert [rdd.collect() for rdd in doubled.slice(2, 4)] == [[4], [6], [8]]
    assert [rdd.collect() for rdd in doubled.slice(at(4), at(5))] == [[8], [10]]
    assert [rdd.collect() for rdd in doubled.slice(5, 5)] == [[10]]
    assert doubled.slice(6, 9) == []


def test_slice_of_a_windowed_stream(ssc, run):
    windowed = ssc.queueStream(NUMBERS).window(2, 2)
    windowed.pprint()
    ssc.remember(10)
    run(6)
    assert [rdd.collect() for rdd in windowed.slice(1, 6)] == [[1, 2], [3, 4], [5, 6]]
