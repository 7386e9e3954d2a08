"""A function that raises fails its batch and its exception comes out where the program
waits; stopping never deadlocks; a second context replaces the first."""

import threading
import traceback
import warnings

import pytest

from dstream import SparkContext
from dstream.streaming import ManualClock, StreamingContext


class WordError(Exception):
    """A user's own exception type: it must come back as itself."""


def make(batches, checkpoint=None):
    sc = SparkContext("local[2]", "failures")
    clock = ManualClock()
    ssc = StreamingContext(sc, 1, clock=clock)
    if checkpoint is not None:
        ssc.checkpoint(str(checkpoint))
    return ssc, clock, ssc.queueStream(batches)


def run_batch(ssc, clock):
    clock.advance(1)
    ssc.awaitBatch(clock.time())


def reject_c(word):
    if word == "c":
        raise WordError("no words starting with c: %r" % word)
    return (word, 1)


def test_a_raising_map_function_comes_out_of_await_termination_with_its_traceback():
    ssc, clock, lines = make([["a b", "c"]])
    lines.flatMap(lambda l: l.split(" ")).map(reject_c).reduceByKey(lambda x, y: x + y).pprint()
    ssc.start()
    clock.advance(1)
    with pytest.raises(WordError, match="no words starting with c: 'c'") as raised:
        ssc.awaitTermination(30)
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "reject_c" in frames
    ssc.stop()


def test_await_batch_raises_the_batch_exception():
    ssc, clock, lines = make([["c"]])
    lines.map(reject_c).foreachRDD(lambda rdd: rdd.count())
    ssc.start()
    with pytest.raises(WordError):
        run_batch(ssc, clock)
    ssc.stop()


def test_a_raising_foreach_rdd_function_fails_the_batch():
    ssc, clock, lines = make([["a"], ["b"]])
    seen = []

    def output(time, rdd):
        seen.append(rdd.collect())
        raise KeyError("output %s failed" % rdd.first())

    lines.foreachRDD(output)
    ssc.start()
    clock.advance(1)
    with pytest.raises(KeyError, match="output a failed"):
        ssc.awaitTermination(30)
    # The failed batch stopped the context: the second batch never ran, and every
    # later wait reports the same exception, as in Spark.
    clock.advance(1)
    with pytest.raises(KeyError, match="output a failed"):
        ssc.awaitTerminationOrTimeout(1)
    assert seen == [["a"]]
    ssc.stop()


def test_a_raising_update_function_fails_the_batch(tmp_path):
    ssc, clock, lines = make([["a", "b"]], checkpoint=tmp_path)

    def update(new, old):
        raise ZeroDivisionError("state of %d values" % len(new))

    lines.map(lambda w: (w, 1)).updateStateByKey(update).pprint()
    ssc.start()
    clock.advance(1)
    with pytest.raises(ZeroDivisionError, match="state of 1 values"):
        ssc.awaitTermination(30)
    ssc.stop()


def test_records_that_are_not_pairs_get_a_message_that_says_what_to_do(tmp_path):
    ssc, clock, lines = make([["a b"]], checkpoint=tmp_path)
    lines.updateStateByKey(lambda new, old: 1).pprint()
    ssc.start()
    clock.advance(1)
    with pytest.raises(ValueError, match="updateStateByKey works on \\(key, value\\) pairs, "
                                         "but a record is not one \\(too many values to "
                                         "unpack \\(expected 2\\)\\): map each record to a "
                                         "2-tuple first"):
        ssc.awaitTermination(30)
    ssc.stop()


def test_an_exception_inside_rdd_actions_in_foreach_rdd_keeps_its_type():
    ssc, clock, lines = make([["a", "c"]])
    caught = []

    def output(rdd):
        try:
            rdd.map(reject_c).collect()
        except WordError as err:
            caught.append(str(err))

    lines.foreachRDD(output)
    ssc.start()
    run_batch(ssc, clock)
    assert caught == ["no words starting with c: 'c'"]
    ssc.stop()


def test_stop_from_inside_foreach_rdd_does_not_deadlock():
    ssc, clock, lines = make([["a"], ["b"]])
    stopped = []

    def output(rdd):
        stopped.append(rdd.collect())
        ssc.stop(stopSparkContext=False)

    lines.foreachRDD(output)
    ssc.start()
    clock.advance(1)
    assert ssc.awaitTerminationOrTimeout(30) is True
    assert stopped == [["a"]]
    assert StreamingContext.getActive() is None


def test_stop_from_another_thread_ends_await_termination():
    ssc, clock, lines = make([["a"]])
    lines.pprint()
    ssc.start()
    stopper = threading.Timer(0.2, lambda: ssc.stop(stopSparkContext=False))
    stopper.start()
    assert ssc.awaitTerminationOrTimeout(30) is True
    stopper.join()
    ssc.stop()  # a second stop is allowed


def test_starting_a_second_context_stops_the_first_instead_of_failing():
    first, first_clock, a = make([["a"]])
    a.pprint()
    first.start()
    assert StreamingContext.getActive() is first
    second, second_clock, b = make([["b"]])
    out = []
    b.foreachRDD(lambda rdd: out.append(rdd.collect()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second.start()
    assert any("stopping the StreamingContext started earlier" in str(w.message) for w in caught)
    assert first.awaitTerminationOrTimeout(5) is True
    assert StreamingContext.getActive() is second
    run_batch(second, second_clock)
    assert out == [["b"]]
    second.stop()


def test_a_bad_batch_duration_is_a_clear_error():
    sc = SparkContext("local[2]", "failures")
    with pytest.raises(ValueError, match="batchDuration must be a positive whole number"):
        StreamingContext(sc, 0)
    with pytest.raises(ValueError, match="invalid master 'yarn'"):
        SparkContext("yarn", "failures")


def test_with_continue_after_failed_batch_later_batches_run_and_the_exception_is_raised(
        monkeypatch):
    # Spark's policy, chosen with the engine's setting (read from the environment).
    monkeypatch.setenv("DSTREAM_CONTINUE_AFTER_FAILED_BATCH", "true")
    ssc, clock, lines = make([["a"], ["c"], ["b"]])
    out = []
    lines.map(reject_c).foreachRDD(lambda rdd: out.append(rdd.collect()))
    ssc.start()
    run_batch(ssc, clock)
    with pytest.raises(WordError):
        run_batch(ssc, clock)
    run_batch(ssc, clock)
    assert out == [[("a", 1)], [("b", 1)]]
    with pytest.raises(WordError, match="no words starting with c"):
        ssc.awaitTerminationOrTimeout(30)
    ssc.stop()
