"""Stateless ``DStream`` operations and the ``StreamingContext`` API: the exact output
of every batch, with batches run one by one on a manual clock."""

import os
import socketserver
import threading
import time
from datetime import datetime

import pytest

from dstream import SparkContext
from dstream.rdd import RDD
from dstream.streaming import DStream, ManualClock, StreamingContext, StreamingListener

from conftest import BATCH_TIMEOUT, at, collect, values

DASHES = "-" * 43

# --- element-wise -------------------------------------------------------------------


def test_map_flat_map_filter(ssc, run):
    lines = ssc.queueStream([["a b", "c"], ["d"]])
    words = lines.flatMap(lambda line: line.split(" ")).map(str.upper).filter(lambda w: w != "C")
    out = collect(words)
    run(3)
    assert out == [(at(1), ["A", "B"]), (at(2), ["D"]), (at(3), [])]


def test_map_keeps_batches_apart_and_the_parent_unchanged(ssc, run):
    numbers = ssc.queueStream([[1, 2], [3]])
    doubled = collect(numbers.map(lambda x: x * 2))
    plain = collect(numbers)
    run(2)
    assert values(doubled) == [[2, 4], [6]]
    assert values(plain) == [[1, 2], [3]]


def test_map_partitions_with_index_and_glom(ssc, run):
    numbers = ssc.queueStream([[1, 2, 3, 4], [5, 6, 7]])
    sums = collect(numbers.mapPartitions(lambda it: [sum(it)]), key=list)
    indexed = collect(numbers.mapPartitionsWithIndex(lambda i, it: [(i, list(it))]), key=list)
    glommed = collect(numbers.glom(), key=list)
    run(2)
    assert values(sums) == [[3, 7], [5, 13]]
    assert values(indexed) == [[(0, [1, 2]), (1, [3, 4])], [(0, [5]), (1, [6, 7])]]
    assert values(glommed) == [[[1, 2], [3, 4]], [[5], [6, 7]]]


def test_element_wise_chain_after_glom_and_map_partitions(ssc, run):
    numbers = ssc.queueStream([[1, 2, 3, 4]])
    out = collect(numbers.map(lambda x: x + 1).glom().map(len).filter(lambda n: n > 0))
    run(1)
    assert values(out) == [[2, 2]]


# --- per batch ----------------------------------------------------------------------


def test_reduce_count_and_count_by_value(ssc, run):
    numbers = ssc.queueStream([[1, 2, 3], [4], []])
    reduced = collect(numbers.reduce(lambda a, b: a + b))
    # Concatenation is associative, not commutative: partitions combine in order.
    joined = collect(numbers.map(str).reduce(lambda a, b: a + b))
    counted = collect(numbers.count())
    by_value = collect(numbers.map(lambda x: x % 2).countByValue())
    run(3)
    assert values(reduced) == [[6], [4], []]
    assert values(joined) == [["123"], ["4"], []]
    assert values(counted) == [[3], [1], [0]]
    assert values(by_value) == [[(0, 1), (1, 2)], [(0, 1)], []]


def test_count_by_value_of_words(ssc, run):
    words = ssc.queueStream([["a", "b", "a", "c", "a"], ["b"]])
    out = collect(words.countByValue())
    run(2)
    assert values(out) == [[("a", 3), ("b", 1), ("c", 1)], [("b", 1)]]


def test_union_of_two_and_of_many(ssc, run):
    a = ssc.queueStream([[1], [2]])
    b = ssc.queueStream([["x"], [], ["z"]])
    c = ssc.queueStream([[(3,)]])
    two = collect(a.union(b), key=list)
    many = collect(ssc.union(a, b, c), key=list)
    listed = collect(ssc.union([b, c]), key=list)
    run(3)
    assert values(two) == [[1, "x"], [2], ["z"]]
    assert values(many) == [[1, "x", (3,)], [2], ["z"]]
    assert values(listed) == [["x", (3,)], [], ["z"]]


def test_union_refuses_streams_of_different_slides(ssc):
    a = ssc.queueStream([[1]])
    with pytest.raises(ValueError, match="same slide duration"):
        a.union(a.window(2, 2))
    with pytest.raises(ValueError, match="same slide duration"):
        ssc.union(a, a.window(2, 2))
    with pytest.raises(ValueError, match="at least one"):
        ssc.union()


def test_repartition(ssc, run):
    numbers = ssc.queueStream([list(range(10))])
    parts = collect(numbers.repartition(3).glom(), key=list)
    run(1)
    [batch] = values(parts)
    assert len(batch) == 3
    assert sorted(x for part in batch for x in part) == list(range(10))
    assert all(part for part in batch)


def test_cache_computes_each_batch_once(ssc, run):
    calls = []
    numbers = ssc.queueStream([[1, 2], [3]])
    cached = numbers.map(lambda x: calls.append(x) or x * 10).cache()
    assert cached.is_cached
    first = collect(cached)
    second = collect(cached.map(lambda x: x + 1))
    third = collect(cached.filter(lambda x: x > 10))
    run(2)
    assert values(first) == [[10, 20], [30]]
    assert values(second) == [[11, 21], [31]]
    assert values(third) == [[20], [30]]
    assert sorted(calls) == [1, 2, 3]


def test_persist_is_cache(ssc, run):
    calls = []
    persisted = ssc.queueStream([[1, 2]]).map(lambda x: calls.append(x) or x).persist()
    a = collect(persisted)
    b = collect(persisted)
    run(1)
    assert values(a) == values(b) == [[1, 2]]
    assert sorted(calls) == [1, 2]


def test_transform_with_and_without_time(ssc, run):
    times = []
    numbers = ssc.queueStream([[3, 1, 2], [5, 4]])

    def with_time(t, rdd):
        times.append(t)
        return rdd.map(lambda x: (t.second, x))

    plain = collect(numbers.transform(lambda rdd: rdd.sortBy(lambda x: -x)), key=list)
    timed = collect(numbers.transform(with_time))
    run(2)
    assert values(plain) == [[3, 2, 1], [5, 4]]
    assert values(timed) == [[(1, 1), (1, 2), (1, 3)], [(2, 4), (2, 5)]]
    assert times == [at(1), at(2)]


def test_transform_can_use_rdd_operations_and_other_rdds(ssc, sc, run):
    lookup = sc.parallelize([("a", "apple"), ("b", "banana")])
    words = ssc.queueStream([[("a", 1), ("c", 2)], [("b", 3)]])
    joined = collect(words.transform(lambda rdd: rdd.leftOuterJoin(lookup)))
    run(2)
    assert values(joined) == [[("a", (1, "apple")), ("c", (2, None))], [("b", (3, "banana"))]]


def test_transform_must_return_an_rdd(ssc, clock):
    ssc.queueStream([[1]]).transform(lambda rdd: rdd.collect()).pprint()
    ssc.start()
    clock.advance(1)
    with pytest.raises(TypeError, match="must return an RDD, not list"):
        ssc.awaitBatch(clock.time(), timeout=BATCH_TIMEOUT)


def test_foreach_rdd_with_and_without_time(ssc, run):
    plain, timed = [], []
    numbers = ssc.queueStream([[1, 2], [3]])
    numbers.foreachRDD(lambda rdd: plain.append(sorted(rdd.collect())))
    numbers.foreachRDD(lambda t, rdd: timed.append((t, rdd.count())))
    run(2)
    assert plain == [[1, 2], [3]]
    assert timed == [(at(1), 2), (at(2), 1)]
    # PySpark hands a naive local datetime.
    assert all(type(t) is datetime and t.tzinfo is None for t, _ in timed)


def test_foreach_rdd_accepts_bound_methods_and_callables(ssc, run):
    class Sink:
        def __init__(self):
            self.seen = []

        def save(self, t, rdd):
            self.seen.append((t, rdd.collect()))

        def __call__(self, rdd):
            self.seen.append(rdd.count())

    sink = Sink()
    numbers = ssc.queueStream([[7]])
    numbers.foreachRDD(sink.save)
    numbers.foreachRDD(sink)
    run(1)
    assert sink.seen == [(at(1), [7]), 1]


def test_foreach_rdd_accepts_a_builtin_method(ssc, run):
    rdds = []
    ssc.queueStream([[1], [2]]).foreachRDD(rdds.append)
    run(2)
    assert [rdd.collect() for rdd in rdds] == [[1], [2]]


def test_batch_times_are_local_times(sc, clock, capsys):
    # Five and a half hours east of UTC, as a POSIX TZ string (no tz database needed).
    os.environ["TZ"] = "IST-5:30"
    time.tzset()
    try:
        ssc = StreamingContext(sc, 1, clock=clock)
        out = collect(ssc.queueStream([["a"]]))
        ssc.queueStream([["a"]]).pprint()
        ssc.start()
        clock.advance(1)
        ssc.awaitBatch(clock.time(), timeout=BATCH_TIMEOUT)
        ssc.stop(stopSparkContext=False)
    finally:
        os.environ["TZ"] = "UTC"
        time.tzset()
    assert out == [(datetime(1970, 1, 1, 5, 30, 1), ["a"])]
    assert "Time: 1970-01-01 05:30:01\n" in capsys.readouterr().out


def test_first_batch_follows_the_manual_clock_start(sc):
    clock = ManualClock(100)
    ssc = StreamingContext(sc, 2, clock=clock)
    out = collect(ssc.queueStream([[1], [2]]))
    ssc.start()
    for _ in range(2):
        clock.advance(2)
        ssc.awaitBatch(clock.time(), timeout=BATCH_TIMEOUT)
    ssc.stop(stopSparkContext=False)
    assert clock.time() == 104.0
    assert out == [(datetime(1970, 1, 1, 0, 1, 42), [1]), (datetime(1970, 1, 1, 0, 1, 44), [2])]


def test_transform_with(ssc, run):
    left = ssc.queueStream([[1, 2], [3]])
    right = ssc.queueStream([[10], [20, 30]])
    plain = collect(left.transformWith(lambda a, b: a.union(b), right))
    timed = collect(left.transformWith(
        lambda t, a, b: a.map(lambda x: (t.second, x)).union(b.map(lambda y: (t.second, y))),
        right))
    run(2)
    assert values(plain) == [[1, 2, 10], [3, 20, 30]]
    assert values(timed) == [[(1, 1), (1, 2), (1, 10)], [(2, 3), (2, 20), (2, 30)]]


def test_context_transform_of_many_streams(ssc, run):
    a = ssc.queueStream([[1, 2], [3]])
    b = ssc.queueStream([["x"], ["y"]])
    c = ssc.queueStream([[(0, 0)], []])
    got = []

    def combine(rdds):
        assert type(rdds) is tuple  # as PySpark passes them
        got.append(len(rdds))
        return rdds[0].map(lambda x: ("a", x)).union(rdds[-1].map(lambda x: ("last", x)))

    one = collect(ssc.transform([a], lambda rdds: rdds[0].map(lambda x: -x)))
    two = collect(ssc.transform([a, b], combine))
    three = collect(ssc.transform([a, b, c], combine))
    run(2)
    assert values(one) == [[-2, -1], [-3]]
    assert values(two) == [[("a", 1), ("a", 2), ("last", "x")], [("a", 3), ("last", "y")]]
    assert values(three) == [[("a", 1), ("a", 2), ("last", (0, 0))], [("a", 3)]]
    assert sorted(got) == [2, 2, 3, 3]


# --- output -------------------------------------------------------------------------


def test_pprint_prints_pyspark_format(ssc, run, capsys):
    numbers = ssc.queueStream([list(range(12)), ["x", ("k", 1)], []])
    numbers.pprint()
    run(3)
    printed = capsys.readouterr().out
    expected = [DASHES, "Time: 1970-01-01 00:00:01", DASHES]
    expected += [str(i) for i in range(10)] + ["...", ""]
    expected += [DASHES, "Time: 1970-01-01 00:00:02", DASHES, "x", "('k', 1)", ""]
    expected += [DASHES, "Time: 1970-01-01 00:00:03", DASHES, ""]
    assert printed == "\n".join(expected) + "\n"


def test_pprint_num(ssc, run, capsys):
    ssc.queueStream([[1, 2, 3], [4, 5]]).pprint(2)
    run(2)
    assert capsys.readouterr().out == "\n".join([
        DASHES, "Time: 1970-01-01 00:00:01", DASHES, "1", "2", "...", "",
        DASHES, "Time: 1970-01-01 00:00:02", DASHES, "4", "5", "",
    ]) + "\n"


def test_pprint_of_sub_second_batches(sc, clock, capsys):
    ssc = StreamingContext(sc, 0.5, clock=clock)
    ssc.queueStream([["a"], ["b"]]).pprint()
    ssc.start()
    for _ in range(2):
        clock.advance(0.5)
        ssc.awaitBatch(clock.time(), timeout=BATCH_TIMEOUT)
    ssc.stop(stopSparkContext=False)
    assert capsys.readouterr().out == "\n".join([
        DASHES, "Time: 1970-01-01 00:00:00.500000", DASHES, "a", "",
        DASHES, "Time: 1970-01-01 00:00:01", DASHES, "b", "",
    ]) + "\n"


def read_dir(path):
    return {name: (path / name).read_text() for name in sorted(os.listdir(path))}


def test_save_as_text_files(ssc, run, tmp_path):
    numbers = ssc.queueStream([[1, "two", (3, "x")], ["four"]])
    numbers.saveAsTextFiles(str(tmp_path / "out"))
    numbers.saveAsTextFiles(str(tmp_path / "suffixed"), "txt")
    run(2)
    assert sorted(os.listdir(tmp_path)) == [
        "out-1000", "out-2000", "suffixed-1000.txt", "suffixed-2000.txt"]
    assert read_dir(tmp_path / "out-1000") == {
        "_SUCCESS": "", "part-00000": "1\n", "part-00001": "two\n(3, 'x')\n"}
    assert read_dir(tmp_path / "out-2000") == {
        "_SUCCESS": "", "part-00000": "", "part-00001": "four\n"}
    assert read_dir(tmp_path / "suffixed-2000.txt") == read_dir(tmp_path / "out-2000")


def test_save_as_text_files_leaves_output_written_already(ssc, run, tmp_path):
    # A batch run again after recovery finds its directory: PySpark leaves it.
    (tmp_path / "out-1000").mkdir()
    (tmp_path / "out-1000" / "marker").write_text("first run\n")
    ssc.queueStream([["a"], ["b"]]).saveAsTextFiles(str(tmp_path / "out"))
    run(2)
    assert read_dir(tmp_path / "out-1000") == {"marker": "first run\n"}
    assert read_dir(tmp_path / "out-2000") == {"_SUCCESS": "", "part-00000": "",
                                               "part-00001": "b\n"}


def test_save_as_text_files_with_an_empty_suffix(ssc, run, tmp_path):
    # PySpark adds "." + suffix whenever a suffix is given.
    ssc.queueStream([["a"]]).saveAsTextFiles(str(tmp_path / "out"), "")
    run(1)
    assert os.listdir(tmp_path) == ["out-1000."]


# --- by key -------------------------------------------------------------------------

PAIRS = [[("a", 1), ("b", 2), ("a", 3)], [("b", 4)], []]


def test_map_values_and_flat_map_values(ssc, run):
    pairs = ssc.queueStream(PAIRS)
    mapped = collect(pairs.mapValues(lambda v: v * 10))
    flat = collect(pairs.flatMapValues(lambda v: range(v)))
    run(3)
    assert values(mapped) == [[("a", 10), ("a", 30), ("b", 20)], [("b", 40)], []]
    assert values(flat) == [[("a", 0), ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)],
                            [("b", 0), ("b", 1), ("b", 2), ("b", 3)], []]


def test_reduce_by_key(ssc, run):
    pairs = ssc.queueStream(PAIRS)
    summed = collect(pairs.reduceByKey(lambda x, y: x + y))
    default_parts = collect(pairs.reduceByKey(lambda x, y: x + y).glom(), key=list)
    one = pairs.reduceByKey(lambda x, y: x + y, 1)
    parts = collect(one.glom(), key=list)
    run(3)
    assert values(summed) == [[("a", 4), ("b", 2)], [("b", 4)], []]
    assert [len(batch) for batch in values(default_parts)] == [2, 2, 2]  # defaultParallelism
    assert [len(batch) for batch in values(parts)] == [1, 1, 1]
    assert sorted(values(parts)[0][0]) == [("a", 4), ("b", 2)]


def test_word_count(ssc, run):
    lines = ssc.queueStream([["a b a", "c a"], ["b"], ["a a", ""]])
    counts = lines.flatMap(lambda line: line.split()).map(lambda w: (w, 1)) \
        .reduceByKey(lambda x, y: x + y)
    out = collect(counts)
    run(3)
    assert out == [(at(1), [("a", 3), ("b", 1), ("c", 1)]), (at(2), [("b", 1)]),
                   (at(3), [("a", 2)])]


def test_group_by_key_keeps_arrival_order_within_a_batch(ssc, run):
    pairs = ssc.queueStream([[("a", 1), ("b", 2), ("a", 3), ("a", 0)], [("b", 4)]])
    grouped = collect(pairs.groupByKey().mapValues(list))
    run(2)
    assert values(grouped) == [[("a", [1, 3, 0]), ("b", [2])], [("b", [4])]]


def test_group_by_key_gives_result_iterables(ssc, run):
    kinds = []
    ssc.queueStream([[("a", 1)]]).groupByKey() \
        .foreachRDD(lambda rdd: kinds.extend((len(v), list(v)) for _, v in rdd.collect()))
    run(1)
    assert kinds == [(1, [1])]


def test_combine_by_key(ssc, run):
    pairs = ssc.queueStream([[("a", 1), ("b", 2), ("a", 3), ("a", 5)], [("b", 4)]])
    averages = pairs.combineByKey(lambda v: (v, 1), lambda c, v: (c[0] + v, c[1] + 1),
                                  lambda c, d: (c[0] + d[0], c[1] + d[1]), 3) \
        .mapValues(lambda c: c[0] / c[1])
    out = collect(averages)
    parts = collect(pairs.combineByKey(str, lambda c, v: c + str(v), lambda c, d: c + d, 3)
                    .glom(), key=len)
    run(2)
    assert values(out) == [[("a", 3.0), ("b", 2.0)], [("b", 4.0)]]
    assert values(parts) == [3, 3]


def test_partition_by(ssc, run):
    pairs = ssc.queueStream([[(k, k * k) for k in range(6)]])
    by_parity = collect(pairs.partitionBy(2, lambda k: k % 2).glom(), key=list)
    hashed = collect(pairs.partitionBy(3).glom(), key=list)
    run(1)
    assert values(by_parity) == [[[(0, 0), (2, 4), (4, 16)], [(1, 1), (3, 9), (5, 25)]]]
    [parts] = values(hashed)
    assert len(parts) == 3
    assert sorted(kv for part in parts for kv in part) == [(k, k * k) for k in range(6)]


LEFT = [[("a", 1), ("b", 2), ("a", 3)], [("c", 5)], []]
RIGHT = [[("a", "x"), ("c", "y")], [("c", "z"), ("c", "w")], [("d", "q")]]


def test_join(ssc, run):
    out = collect(ssc.queueStream(LEFT).join(ssc.queueStream(RIGHT)))
    run(3)
    assert values(out) == [[("a", (1, "x")), ("a", (3, "x"))],
                           [("c", (5, "w")), ("c", (5, "z"))], []]


def test_left_outer_join(ssc, run):
    out = collect(ssc.queueStream(LEFT).leftOuterJoin(ssc.queueStream(RIGHT)))
    run(3)
    assert values(out) == [[("a", (1, "x")), ("a", (3, "x")), ("b", (2, None))],
                           [("c", (5, "w")), ("c", (5, "z"))], []]


def test_right_outer_join(ssc, run):
    out = collect(ssc.queueStream(LEFT).rightOuterJoin(ssc.queueStream(RIGHT)))
    run(3)
    assert values(out) == [[("a", (1, "x")), ("a", (3, "x")), ("c", (None, "y"))],
                           [("c", (5, "w")), ("c", (5, "z"))], [("d", (None, "q"))]]


def test_full_outer_join(ssc, run):
    out = collect(ssc.queueStream(LEFT).fullOuterJoin(ssc.queueStream(RIGHT), 3))
    parts = collect(ssc.queueStream(LEFT).fullOuterJoin(ssc.queueStream(RIGHT), 3).glom(),
                    key=len)
    run(3)
    assert values(out) == [
        [("a", (1, "x")), ("a", (3, "x")), ("b", (2, None)), ("c", (None, "y"))],
        [("c", (5, "w")), ("c", (5, "z"))], [("d", (None, "q"))]]
    assert values(parts) == [3, 3, 3]


def test_cogroup(ssc, run):
    grouped = ssc.queueStream(LEFT).cogroup(ssc.queueStream(RIGHT))
    out = collect(grouped.mapValues(lambda vw: (sorted(vw[0]), sorted(vw[1]))))
    run(3)
    assert values(out) == [
        [("a", ([1, 3], ["x"])), ("b", ([2], [])), ("c", ([], ["y"]))],
        [("c", ([5], ["w", "z"]))],
        [("d", ([], ["q"]))]]


def test_join_on_mixed_keys(ssc, run):
    left = ssc.queueStream([[(1, "int"), ((1, "t"), "tuple"), (frozenset("ab"), "set")]])
    right = ssc.queueStream([[(1.0, "float"), ((True, "t"), "tuple2"),
                              (frozenset("ba"), "set2")]])
    out = collect(left.join(right), key=lambda r: sorted(r, key=repr))
    run(1)
    assert values(out) == [[((1, "t"), ("tuple", "tuple2")), (1, ("int", "float")),
                            (frozenset("ab"), ("set", "set2"))]]


def test_reduce_by_key_needs_pairs(ssc, clock):
    ssc.queueStream([[1, 2]]).reduceByKey(lambda a, b: a + b).pprint()
    ssc.start()
    clock.advance(1)
    # As PySpark, which unpacks each record as (key, value).
    with pytest.raises(TypeError, match="cannot unpack non-iterable int"):
        ssc.awaitBatch(clock.time(), timeout=BATCH_TIMEOUT)


# --- queueStream --------------------------------------------------------------------


def test_queue_stream_one_at_a_time(ssc, run):
    out = collect(ssc.queueStream([[1], [2, 3], [4]]))
    run(5)
    assert out == [(at(1), [1]), (at(2), [2, 3]), (at(3), [4]), (at(4), []), (at(5), [])]


def test_queue_stream_all_at_once(ssc, run):
    out = collect(ssc.queueStream([[1], [2, 3], [4]], oneAtATime=False))
    run(2)
    assert values(out) == [[1, 2, 3, 4], []]


def test_queue_stream_default(ssc, run):
    out = collect(ssc.queueStream([[1], [2]], default=["d", "e"]))
    run(4)
    assert values(out) == [[1], [2], ["d", "e"], ["d", "e"]]


def test_queue_stream_of_rdds_and_default_rdd(ssc, sc, run):
    rdds = [sc.parallelize([1, 2], 1), sc.parallelize([3])]
    out = collect(ssc.queueStream(rdds, oneAtATime=True, default=sc.parallelize([0])))
    run(3)
    assert values(out) == [[1, 2], [3], [0]]


def test_queue_stream_all_at_once_with_default(ssc, run):
    out = collect(ssc.queueStream([[1], [2]], False, [9]))
    run(3)
    assert values(out) == [[1, 2], [9], [9]]


# --- the context's life -------------------------------------------------------------


def test_get_active_start_and_stop(sc, clock):
    assert StreamingContext.getActive() is None
    ssc = StreamingContext(sc, 1, clock=clock)
    ssc.queueStream([[1]]).pprint()
    assert StreamingContext.getActive() is None
    assert ssc.sparkContext is sc
    ssc.start()
    assert StreamingContext.getActive() is ssc
    ssc.stop(stopSparkContext=False)
    assert StreamingContext.getActive() is None
    ssc.stop(stopSparkContext=False)  # twice is fine
    ssc.stop()  # and once more, stopping the SparkContext this time
    assert sc._stopped
    assert SparkContext.getOrCreate() is not sc


def test_stop_stops_the_spark_context_by_default(sc, clock):
    ssc = StreamingContext(sc, 1, clock=clock)
    ssc.queueStream([[1]]).pprint()
    ssc.start()
    ssc.stop()
    assert sc._stopped
    ssc.stop()


def test_stop_gracefully_and_await_termination(sc, clock):
    ssc = StreamingContext(sc, 1, clock=clock)
    out = collect(ssc.queueStream([[1], [2]]))
    ssc.start()
    clock.advance(1)
    ssc.awaitBatch(clock.time(), timeout=BATCH_TIMEOUT)
    started = time.monotonic()
    assert ssc.awaitTerminationOrTimeout(0.2) is False
    assert ssc.awaitTermination(0.2) is None
    assert 0.3 <= time.monotonic() - started < 10
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert ssc.awaitTerminationOrTimeout(5) is True
    assert ssc.awaitTermination(5) is None
    assert ssc.awaitTermination() is None  # returns at once once stopped
    assert values(out)[0] == [1]


def test_await_termination_returns_when_another_thread_stops(ssc, clock):
    ssc.queueStream([[1]]).pprint()
    ssc.start()
    stopper = threading.Timer(0.2, lambda: ssc.stop(stopSparkContext=False))
    stopper.start()
    started = time.monotonic()
    assert ssc.awaitTerminationOrTimeout(10) is True
    assert time.monotonic() - started < 9
    stopper.join()


def test_stop_from_inside_foreach_rdd(ssc, clock):
    seen = []

    def stop_once(rdd):
        seen.append(rdd.collect())
        ssc.stop(stopSparkContext=False)

    ssc.queueStream([[1], [2]]).foreachRDD(stop_once)
    ssc.start()
    clock.advance(1)
    assert ssc.awaitTerminationOrTimeout(BATCH_TIMEOUT) is True
    assert seen == [[1]]
    assert StreamingContext.getActive() is None


def test_a_second_context_started_stops_the_first(sc, clock):
    first = StreamingContext(sc, 1, clock=clock)
    first.queueStream([[1]]).pprint()
    first.start()
    second = StreamingContext(sc, 1, clock=clock)
    second.queueStream([[1]]).pprint()
    with pytest.warns(RuntimeWarning, match="stopping the StreamingContext started earlier"):
        second.start()
    assert StreamingContext.getActive() is second
    assert first.awaitTerminationOrTimeout(5) is True
    second.stop(stopSparkContext=False)


def test_batch_duration_must_be_whole_milliseconds(sc):
    with pytest.raises(ValueError, match="whole number of milliseconds"):
        StreamingContext(sc, 0.0005)
    with pytest.raises(ValueError, match="batchDuration is required"):
        StreamingContext(sc)
    with pytest.raises(TypeError, match="number of seconds"):
        StreamingContext(sc, "1")


def test_spark_ui_port_serves_the_status_page_at_the_ui_web_url(clock):
    import json
    import urllib.request

    from dstream import SparkConf

    conf = SparkConf().setMaster("local[2]").setAppName("ui").set("spark.ui.port", "0")
    sc = SparkContext(conf=conf)
    try:
        ssc = StreamingContext(sc, 1, clock=clock)
        url = sc.uiWebUrl
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0"), url
        ssc.queueStream([[1, 2]]).foreachRDD(lambda rdd: None)
        ssc.start()
        clock.advance(1)
        ssc.awaitBatch(clock.time(), timeout=BATCH_TIMEOUT)
        with urllib.request.urlopen(url + "/api/v1/summary", timeout=BATCH_TIMEOUT) as answer:
            summary = json.load(answer)
        assert summary["status"] == "active"
        assert summary["batches_completed"] == 1
        assert summary["records_processed"] == 2
        ssc.stop(stopSparkContext=False)
    finally:
        sc.stop()
    assert SparkContext("local[2]", "no ui").uiWebUrl is None


def test_spark_conf_settings_are_checked(clock):
    from dstream import SparkConf

    conf = SparkConf().setMaster("local[2]").set("spark.streaming.receiver.maxRate", "lots")
    sc = SparkContext(conf=conf)
    try:
        with pytest.raises(RuntimeError, match='spark.streaming.receiver.maxRate="lots"'):
            StreamingContext(sc, 1, clock=clock)
    finally:
        sc.stop()


def test_remember_and_slice(ssc, run):
    numbers = ssc.queueStream([[1], [2], [3], [4]])
    ssc.remember(10)
    numbers.pprint()
    run(4)
    assert [rdd.collect() for rdd in numbers.slice(2, 3)] == [[2], [3]]
    assert [rdd.collect() for rdd in numbers.slice(at(1), at(4))] == [[1], [2], [3], [4]]
    assert all(isinstance(rdd, RDD) for rdd in numbers.slice(1, 4))


def test_checkpoint_writes_the_directory(ssc, run, tmp_path):
    directory = tmp_path / "nested" / "checkpoint"
    ssc.checkpoint(str(directory))
    assert directory.is_dir()
    pairs = ssc.queueStream([[("a", 1)], [("a", 2)]])
    out = collect(pairs.updateStateByKey(lambda new, old: sum(new) + (old or 0)))
    # A checkpoint is written before the first batch (so that recovery is exact from
    # the start), then every 10 s: the smallest multiple of the batch interval that is
    # at least 10 s, as in Spark.
    run(9)
    assert sorted(os.listdir(directory)) == ["checkpoint-0"]
    run(1)
    assert values(out) == [[("a", 1)]] + [[("a", 3)]] * 9
    assert sorted(os.listdir(directory)) == ["checkpoint-0", "checkpoint-10000"]


def test_streams_are_dstreams(ssc):
    stream = ssc.queueStream([[1]])
    assert isinstance(stream, DStream)
    assert isinstance(stream.map(str), DStream)
    assert stream.context() is ssc


# --- listener -----------------------------------------------------------------------


class Recorder(StreamingListener):
    def __init__(self):
        self.events = []
        self.completed = []
        self.changed = threading.Condition()

    def _add(self, name, event=None):
        with self.changed:
            self.events.append(name)
            if name == "completed":
                self.completed.append(event.batchInfo())
            self.changed.notify_all()

    def onStreamingStarted(self, streamingStarted):
        self._add("started")

    def onBatchSubmitted(self, batchSubmitted):
        self._add("submitted")

    def onBatchStarted(self, batchStarted):
        self._add("batch started")

    def onBatchCompleted(self, batchCompleted):
        self._add("completed", batchCompleted)

    def onStreamingStopped(self, streamingStopped):
        self._add("stopped")

    def wait_for(self, predicate, timeout=BATCH_TIMEOUT):
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), timeout), self.events


def test_listener_sees_each_batch(ssc, run):
    listener = Recorder()
    ssc.addStreamingListener(listener)
    numbers = ssc.queueStream([[1, 2, 3], [4]])
    numbers.pprint()
    numbers.count().pprint()
    run(2)
    listener.wait_for(lambda r: len(r.completed) == 2)
    infos = listener.completed
    assert [info.batchTime().milliseconds() for info in infos] == [1000, 2000]
    # Unlike Spark (0 for every queue stream), dstream counts the records of queued
    # RDDs held in memory, so the batch log line does not say "0 records".
    assert [info.numRecords() for info in infos] == [3, 1]
    assert [info.numOutputOperations() for info in infos] == [2, 2]
    assert [info.failureReason() for info in infos] == [None, None]
    for info in infos:
        assert info.submissionTime() == info.batchTime().milliseconds()
        assert info.processingStartTime() >= info.submissionTime()
        assert info.processingEndTime() >= info.processingStartTime()
        assert info.schedulingDelay() >= 0 and info.processingDelay() >= 0
        assert info.totalDelay() == info.schedulingDelay() + info.processingDelay()
    assert listener.events[0] == "started"
    assert listener.events[1:7] == ["submitted", "batch started", "completed"] * 2
    ssc.stop(stopSparkContext=False)
    listener.wait_for(lambda r: r.events[-1] == "stopped")


def test_a_listener_that_raises_does_not_stop_the_stream(ssc, run, capsys):
    class Broken(StreamingListener):
        def onBatchCompleted(self, batchCompleted):
            raise RuntimeError("listener broke")

    recorder = Recorder()
    ssc.addStreamingListener(Broken())
    ssc.addStreamingListener(recorder)
    out = collect(ssc.queueStream([[1], [2]]))
    run(2)
    recorder.wait_for(lambda r: len(r.completed) == 2)
    assert values(out) == [[1], [2]]


# --- file and socket inputs ---------------------------------------------------------


def write_atomically(directory, name, text):
    """Writes under a hidden name, then renames: the stream never sees half a file."""
    hidden = directory / ("." + name + ".tmp")
    hidden.write_text(text)
    os.rename(hidden, directory / name)


def test_text_file_stream_reads_new_files(ssc, run, tmp_path):
    (tmp_path / "old.txt").write_text("before start\n")
    lines = ssc.textFileStream(str(tmp_path))
    out = collect(lines)
    counts = collect(lines.flatMap(str.split).map(lambda w: (w, 1))
                     .reduceByKey(lambda a, b: a + b))
    # The classroom word count, as written: split(" ") keeps empty words.
    classroom = collect(lines.flatMap(lambda line: line.split(" "))
                        .map(lambda word: (word, 1)).reduceByKey(lambda x, y: x + y))
    run(1)
    write_atomically(tmp_path, "a.txt", "x y\nz\n")
    write_atomically(tmp_path, "b.txt", "x")
    (tmp_path / "_ignored").write_text("never read\n")
    run(1)
    run(1)
    write_atomically(tmp_path, "c.txt", "last\n\nline  two\n")
    run(1)
    assert out == [(at(1), []), (at(2), ["x", "x y", "z"]), (at(3), []),
                   (at(4), ["", "last", "line  two"])]
    assert values(counts) == [[], [("x", 2), ("y", 1), ("z", 1)], [],
                              [("last", 1), ("line", 1), ("two", 1)]]
    assert values(classroom) == [[], [("x", 2), ("y", 1), ("z", 1)], [],
                                 [("", 2), ("last", 1), ("line", 1), ("two", 1)]]


def test_binary_records_stream_gives_bytes_of_the_record_length(ssc, run, tmp_path):
    records = ssc.binaryRecordsStream(tmp_path, 3)
    out = collect(records)
    run(1)
    hidden = tmp_path / ".a.bin.tmp"
    hidden.write_bytes(b"abcdef\x00\x01\x02")
    os.rename(hidden, tmp_path / "a.bin")
    hidden = tmp_path / ".b.bin.tmp"
    hidden.write_bytes(b"four")  # not whole records: skipped with a warning
    os.rename(hidden, tmp_path / "b.bin")
    run(1)
    assert out == [(at(1), []), (at(2), [b"\x00\x01\x02", b"abc", b"def"])]


# PySpark's parameter names and defaults, as its documentation gives them: a program
# written for PySpark calls these with keywords, so a renamed parameter breaks it.
PYSPARK_SIGNATURES = {
    StreamingContext: {
        "awaitTermination": "(self, timeout=None)",
        "awaitTerminationOrTimeout": "(self, timeout)",
        "binaryRecordsStream": "(self, directory, recordLength)",
        "checkpoint": "(self, directory)",
        "queueStream": "(self, rdds, oneAtATime=True, default=None)",
        "remember": "(self, duration)",
        "stop": "(self, stopSparkContext=True, stopGraceFully=False)",
        "textFileStream": "(self, directory)",
        "transform": "(self, dstreams, transformFunc)",
        "union": "(self, *dstreams)",
        "addStreamingListener": "(self, streamingListener)",
    },
    DStream: {
        "cogroup": "(self, other, numPartitions=None)",
        "combineByKey": "(self, createCombiner, mergeValue, mergeCombiners, numPartitions=None)",
        "countByValueAndWindow": "(self, windowDuration, slideDuration, numPartitions=None)",
        "countByWindow": "(self, windowDuration, slideDuration)",
        "flatMap": "(self, f, preservesPartitioning=False)",
        "foreachRDD": "(self, func)",
        "groupByKeyAndWindow": "(self, windowDuration, slideDuration, numPartitions=None)",
        "join": "(self, other, numPartitions=None)",
        "map": "(self, f, preservesPartitioning=False)",
        "pprint": "(self, num=10)",
        "reduceByKey": "(self, func, numPartitions=None)",
        "reduceByKeyAndWindow": "(self, func, invFunc, windowDuration, slideDuration=None, "
                                "numPartitions=None, filterFunc=None)",
        "reduceByWindow": "(self, reduceFunc, invReduceFunc, windowDuration, slideDuration)",
        "saveAsTextFiles": "(self, prefix, suffix=None)",
        "slice": "(self, begin, end)",
        "transformWith": "(self, func, other, keepSerializer=False)",
        "updateStateByKey": "(self, updateFunc, numPartitions=None, initialRDD=None)",
        "window": "(self, windowDuration, slideDuration=None)",
    },
}


@pytest.mark.parametrize("cls", list(PYSPARK_SIGNATURES), ids=lambda c: c.__name__)
def test_parameters_are_named_as_in_pyspark(cls):
    import inspect

    differ = {name: str(inspect.signature(getattr(cls, name)))
              for name, expected in PYSPARK_SIGNATURES[cls].items()
              if str(inspect.signature(getattr(cls, name))) != expected}
    assert differ == {}


class LineServer(socketserver.ThreadingTCPServer):
    """A server on 127.0.0.1 with a free port that sends ``lines`` to each client once
    and keeps the connection open until closed."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, lines):
        self.lines = lines
        self.done = threading.Event()
        self.clients = 0
        super().__init__(("127.0.0.1", 0), LineHandler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def close(self):
        self.done.set()
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class LineHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.clients += 1
        if self.server.clients > 1:
            return  # a reconnection gets nothing more: the totals stay exact
        for line in self.server.lines:
            self.request.sendall((line + "\n").encode("utf-8"))
        self.server.done.wait(BATCH_TIMEOUT)


def test_socket_text_stream_counts_words(sc):
    lines = ["a b a", "b  c", "ünïcode a"] * 20
    server = LineServer(lines)
    ssc = StreamingContext(sc, 0.05)
    counts = {}
    received = []
    lock = threading.Lock()

    def add(rdd):
        batch = rdd.collect()
        with lock:
            for word, n in batch:
                counts[word] = counts.get(word, 0) + n

    stream = ssc.socketTextStream("127.0.0.1", server.port)
    stream.foreachRDD(lambda rdd: received.extend(rdd.collect()))
    # The classroom word count, as written.
    stream.flatMap(lambda line: line.split(" ")).map(lambda word: (word, 1)) \
        .reduceByKey(lambda x, y: x + y).foreachRDD(add)
    expected = {"a": 60, "b": 40, "c": 20, "ünïcode": 20, "": 20}
    try:
        ssc.start()
        deadline = time.monotonic() + BATCH_TIMEOUT
        while time.monotonic() < deadline:
            with lock:
                if counts == expected:
                    break
            ssc.awaitTerminationOrTimeout(0.05)
    finally:
        ssc.stop(stopSparkContext=False)
        server.close()
    assert counts == expected
    assert received == lines


def test_text_stream_word_count_pipelines_give_pyspark_results(ssc, run, tmp_path, capsys):
    """The classroom lambdas on a text stream, followed by every kind of operation: the
    results are those of the same functions run in Python."""
    ssc.checkpoint(str(tmp_path / "checkpoint"))
    source = tmp_path / "in"
    source.mkdir()
    lines = ssc.textFileStream(str(source))
    words = lines.flatMap(lambda line: line.split(" "))
    pairs = words.map(lambda word: (word, 1))
    counts = pairs.reduceByKey(lambda x, y: x + y)
    outs = {
        "words": collect(words),
        "pairs": collect(pairs),
        "counts": collect(counts),
        "one partition": collect(pairs.reduceByKey(lambda x, y: x + y, 1).glom(), key=len),
        "by value": collect(words.countByValue()),
        "grouped": collect(pairs.groupByKey().mapValues(sorted)),
        "mapped": collect(counts.map(lambda kv: kv[1] * 10)),
        "state": collect(pairs.updateStateByKey(lambda new, old: sum(new) + (old or 0))),
        "window": collect(counts.reduceByKeyAndWindow(lambda x, y: x + y, None, 2)),
        "inverse": collect(pairs.reduceByKeyAndWindow(lambda x, y: x + y,
                                                       lambda x, y: x - y, 2)),
        "huge": collect(words.map(lambda word: (word, 4611686018427387904))
                        .reduceByKey(lambda x, y: x + y)),
    }
    counts.pprint()
    run(1)
    write_atomically(source, "1.txt", "a b a\nb\n")
    run(1)
    write_atomically(source, "2.txt", "a\n")
    run(1)
    run(1)
    got = {name: values(out) for name, out in outs.items()}
    assert got == {
        "words": [[], ["a", "a", "b", "b"], ["a"], []],
        "pairs": [[], [("a", 1), ("a", 1), ("b", 1), ("b", 1)], [("a", 1)], []],
        "counts": [[], [("a", 2), ("b", 2)], [("a", 1)], []],
        "one partition": [1, 1, 1, 1],
        "by value": [[], [("a", 2), ("b", 2)], [("a", 1)], []],
        "grouped": [[], [("a", [1, 1]), ("b", [1, 1])], [("a", [1])], []],
        "mapped": [[], [20, 20], [10], []],
        "state": [[], [("a", 2), ("b", 2)], [("a", 3), ("b", 2)], [("a", 3), ("b", 2)]],
        "window": [[], [("a", 2), ("b", 2)], [("a", 3), ("b", 2)], [("a", 1)]],
        "inverse": [[], [("a", 2), ("b", 2)], [("a", 3), ("b", 2)], [("a", 1)]],
        # Python's ints do not overflow.
        "huge": [[], [("a", 2 ** 63), ("b", 2 ** 63)], [("a", 2 ** 62)], []],
    }
    printed = capsys.readouterr().out
    assert "Time: 1970-01-01 00:00:02\n%s\n('a', 2)\n('b', 2)\n\n" % DASHES in printed \
        or "Time: 1970-01-01 00:00:02\n%s\n('b', 2)\n('a', 2)\n\n" % DASHES in printed
