"""``KafkaUtils.createDirectStream`` against a real broker, named by
``KAFKA_BOOTSTRAP_SERVERS`` (``bash .ci/kafka/start-broker.sh`` starts a local one).

Each test creates its own topics, with names no other run uses, and produces its
messages with the engine's own writer. Streams run on the system clock with short
batches; every wait is bounded, and totals are checked again a few batches after they
were reached, so that a record counted twice is caught too.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter

import pytest

from dstream import _native
from dstream.streaming import StreamingContext

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
if not BOOTSTRAP:
    pytest.skip("KAFKA_BOOTSTRAP_SERVERS is not set: the Kafka tests need a broker "
                "(bash .ci/kafka/start-broker.sh starts one at 127.0.0.1:9092)",
                allow_module_level=True)
if not hasattr(_native, "kafka_direct_stream"):
    pytest.skip("dstream's native module was built without the kafka feature "
                "(maturin develop --features kafka)", allow_module_level=True)

from dstream.streaming.kafka import (  # noqa: E402
    KafkaUtils, OffsetRange, TopicAndPartition, utf8_decoder)

# Batches are short so that the tests are quick; waits are long so that a slow machine
# never fails them.
BATCH = 0.5
WAIT = 60
PARAMS = {"metadata.broker.list": BOOTSTRAP}
EARLIEST = dict(PARAMS, **{"auto.offset.reset": "smallest"})


def unique(prefix):
    """A topic name no other test, and no earlier run against a kept broker, uses."""
    return "%s-%d-%s" % (prefix, os.getpid(), uuid.uuid4().hex[:12])


def new_topic(prefix, partitions=3):
    topic = unique(prefix)
    assert KafkaUtils.createTopic(PARAMS, topic, partitions), "%s is new" % topic
    return topic


def encode(text):
    return None if text is None else text.encode("utf-8")


def produce(topic, messages):
    """Sends ``(key, value)`` pairs of text (or ``None``) and waits for every
    acknowledgement."""
    _native.kafka_produce(PARAMS, topic, [(encode(k), encode(v)) for k, v in messages])


def wait_for(condition, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("waited %ss for %s" % (timeout, what))
        time.sleep(0.05)


def settle(batches=4):
    """Lets a few more batches run: anything read twice would show by then."""
    time.sleep(batches * BATCH)


def lines(first, count, words=("spark", "kafka", "rust", "python", "stream")):
    """``count`` lines of text, each a different mix of ``words``."""
    return ["%s %s line%d" % (words[n % len(words)], words[(n * 3 + 1) % len(words)], n % 7)
            for n in range(first, first + count)]


def word_counts(texts):
    return dict(Counter(word for text in texts for word in text.split()))


class Totals:
    """Adds up ``(word, count)`` pairs from the batches of a stream."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()

    def add(self, rdd):
        pairs = rdd.collect()
        with self.lock:
            for word, count in pairs:
                self.counts[word] += count

    def snapshot(self):
        with self.lock:
            return dict(self.counts)


def test_a_word_count_reads_what_was_produced_after_start_exactly_once(sc):
    topic = new_topic("py-words")
    old = lines(0, 30)
    produce(topic, [(None, text) for text in old])
    ssc = StreamingContext(sc, BATCH)
    # Default: "largest", as Spark: what was there before the start is not read.
    stream = KafkaUtils.createDirectStream(ssc, [topic], PARAMS)
    totals = Totals()
    read = []
    stream.foreachRDD(lambda rdd: read.append(sum(
        r.untilOffset - r.fromOffset for r in rdd.offsetRanges())))
    stream.map(lambda kv: kv[1]) \
        .flatMap(lambda text: text.split()) \
        .map(lambda word: (word, 1)) \
        .reduceByKey(lambda a, b: a + b) \
        .foreachRDD(totals.add)
    ssc.start()
    new = lines(100, 200)
    # Keyed and unkeyed, spread over the partitions.
    produce(topic, [("k%d" % n if n % 2 else None, text) for n, text in enumerate(new)])
    expected = word_counts(new)
    wait_for(lambda: totals.snapshot() == expected,
             "the counts of the new lines (have %s)" % totals.snapshot())
    settle()
    ssc.stop(stopSparkContext=False)
    assert totals.snapshot() == expected
    assert sum(read) == len(new)


def test_decoders_message_handler_and_offset_ranges(sc):
    topic = new_topic("py-meta", partitions=2)
    messages = [("k%d" % n, "v%d" % n) for n in range(40)]
    messages += [(None, "no key"), ("tombstone", None)]
    produce(topic, messages)
    ssc = StreamingContext(sc, BATCH)
    lock = threading.Lock()
    pairs, metas, ranges = [], [], []

    def keep(out):
        def add(rdd):
            got = rdd.collect()
            with lock:
                out.extend(got)
        return add

    plain = KafkaUtils.createDirectStream(ssc, [topic], EARLIEST,
                                          keyDecoder=lambda b: b)
    plain.foreachRDD(keep(pairs))
    meta = KafkaUtils.createDirectStream(
        ssc, [topic], EARLIEST,
        valueDecoder=lambda b: None if b is None else b.decode("utf-8").upper(),
        messageHandler=lambda m: (m.topic, m.partition, m.offset, m.key, m.message))

    def offsets(time, rdd):
        with lock:
            ranges.extend(rdd.offsetRanges())
            metas.extend(rdd.collect())

    meta.foreachRDD(offsets)
    ssc.start()
    wait_for(lambda: len(metas) == len(messages) and len(pairs) == len(messages),
             "every message on both streams (have %d and %d)" % (len(metas), len(pairs)))
    settle()
    ssc.stop(stopSparkContext=False)

    # keyDecoder given, valueDecoder the default utf8_decoder; None stays None.
    assert sorted(pairs, key=repr) == sorted(
        [(encode(k), v) for k, v in messages], key=repr)
    assert sorted(m[3:] for m in metas if m[3] is not None and m[4] is not None) == sorted(
        (k, v.upper()) for k, v in messages if k is not None and v is not None)
    assert (topic, None, "NO KEY") in {(m[0], m[3], m[4]) for m in metas}
    assert (topic, "tombstone", None) in {(m[0], m[3], m[4]) for m in metas}
    # Offsets: every partition read from 0, each offset once, and the ranges say so.
    by_partition = {}
    for _, partition, offset, _, _ in metas:
        by_partition.setdefault(partition, []).append(offset)
    for partition, seen in by_partition.items():
        assert sorted(seen) == list(range(len(seen))), partition
    for partition, seen in by_partition.items():
        spans = sorted((r.fromOffset, r.untilOffset) for r in ranges
                       if r.partition == partition and r.untilOffset > r.fromOffset)
        assert spans[0][0] == 0 and spans[-1][1] == len(seen)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), spans
    assert all(isinstance(r, OffsetRange) and r.topic == topic for r in ranges)


def test_from_offsets_start_where_given(sc):
    topic = new_topic("py-from", partitions=2)
    produce(topic, [("a", "a%d" % n) for n in range(10)])
    produce(topic, [("b", "b%d" % n) for n in range(10)])
    ssc = StreamingContext(sc, BATCH)
    handler = lambda m: (m.partition, m.offset, m.message)  # noqa: E731
    probe = KafkaUtils.createDirectStream(ssc, [topic], EARLIEST, messageHandler=handler)
    where = {}
    probe.foreachRDD(lambda rdd: where.update(
        {(p, o): v for p, o, v in rdd.collect()}))
    ssc.start()
    wait_for(lambda: len(where) == 20, "the 20 messages (have %d)" % len(where))
    ssc.stop(stopSparkContext=False)
    # Both keys may share a partition: start each partition 4 records in.
    partitions = sorted({p for p, _ in where})

    ssc = StreamingContext(sc, BATCH)
    got = []
    stream = KafkaUtils.createDirectStream(
        ssc, [topic], PARAMS,
        fromOffsets={TopicAndPartition(topic, p): 4 for p in partitions},
        messageHandler=handler)
    stream.foreachRDD(lambda rdd: got.extend(rdd.collect()))
    ssc.start()
    expected = sorted((p, o, v) for (p, o), v in where.items() if o >= 4)
    wait_for(lambda: len(got) == len(expected), "%d records (have %d)"
             % (len(expected), len(got)))
    settle()
    ssc.stop(stopSparkContext=False)
    assert sorted(got) == expected


def test_write_to_kafka_sends_pairs_and_values(ssc, clock):
    topic = new_topic("py-write", partitions=1)
    records = [("key", "value"), "just a value", (None, b"\x00\xff"), ("tomb", None)]
    KafkaUtils.writeToKafka(ssc.queueStream([records]), topic, PARAMS)
    read = []
    KafkaUtils.createDirectStream(ssc, [topic], EARLIEST, keyDecoder=lambda b: b,
                                  valueDecoder=lambda b: b) \
        .foreachRDD(lambda rdd: read.extend(rdd.collect()))
    ssc.start()
    for second in (1, 2, 3):
        clock.advance(1)
        ssc.awaitBatch(second, timeout=WAIT)
    # Batch 1 wrote; batch 2 read what batch 1 wrote, acknowledged before it ended.
    # The partitions of the written RDD are sent in parallel: compare without order.
    assert sorted(read, key=repr) == sorted(
        [(b"key", b"value"), (None, b"just a value"), (None, b"\x00\xff"), (b"tomb", None)],
        key=repr)


def test_write_to_kafka_fails_the_batch_on_a_record_it_cannot_send(ssc, clock):
    topic = new_topic("py-write-bad", partitions=1)
    KafkaUtils.writeToKafka(ssc.queueStream([[("k", 1)]]), topic, PARAMS)
    ssc.start()
    clock.advance(1)
    with pytest.raises(TypeError, match="str, bytes or None as a value, not int"):
        ssc.awaitBatch(1, timeout=WAIT)


def test_kafka_params_and_arguments_are_checked(ssc):
    with pytest.raises(ValueError, match="metadata.broker.list"):
        KafkaUtils.createDirectStream(ssc, ["t"], {"group.id": "g"})
    with pytest.raises(ValueError, match="auto.offset.reset"):
        KafkaUtils.createDirectStream(ssc, ["t"], dict(PARAMS, **{"auto.offset.reset": "x"}))
    with pytest.raises(TypeError, match="topics should be list"):
        KafkaUtils.createDirectStream(ssc, "t", PARAMS)
    with pytest.raises(TypeError, match="kafkaParams should be dict"):
        KafkaUtils.createDirectStream(ssc, ["t"], [("a", "b")])
    with pytest.raises(ValueError, match="not among the topics"):
        KafkaUtils.createDirectStream(ssc, ["t"], PARAMS,
                                      fromOffsets={TopicAndPartition("u", 0): 0})
    with pytest.warns(RuntimeWarning, match="zookeeper.connect"):
        KafkaUtils.createDirectStream(ssc, ["t"], dict(PARAMS, **{"zookeeper.connect": "zk"}))
    with pytest.raises(NotImplementedError, match="createDirectStream"):
        KafkaUtils.createStream(ssc, "zk:2181", "g", {"t": 1})
    assert utf8_decoder(None) is None and utf8_decoder("é".encode()) == "é"


def test_an_unknown_librdkafka_property_fails_the_start_with_its_name(ssc):
    KafkaUtils.createDirectStream(ssc, ["t"], dict(PARAMS, **{"no.such.property": "1"})) \
        .foreachRDD(lambda rdd: None)
    with pytest.raises(RuntimeError, match="no.such.property"):
        ssc.start()


def test_a_build_without_kafka_says_how_to_build_with_it(ssc, monkeypatch):
    monkeypatch.delattr(_native, "kafka_direct_stream")
    with pytest.raises(RuntimeError, match='--features kafka'):
        KafkaUtils.createDirectStream(ssc, ["t"], PARAMS)


def running_count(sc, topic, checkpoint, state, read):
    """The recovery tests' program: a running word count, through getOrCreate. Each
    batch's state replaces ``state``; the records each batch read are appended to
    ``read``."""

    def setup():
        ssc = StreamingContext(sc, BATCH)
        stream = KafkaUtils.createDirectStream(ssc, [topic], EARLIEST)
        stream.foreachRDD(lambda rdd: read.append(sum(
            r.untilOffset - r.fromOffset for r in rdd.offsetRanges())))
        counts = stream.flatMap(lambda kv: kv[1].split()) \
            .map(lambda word: (word, 1)) \
            .updateStateByKey(lambda new, last: sum(new) + (last or 0))

        def keep(rdd):
            snapshot = dict(rdd.collect())
            state.clear()
            state.update(snapshot)

        counts.foreachRDD(keep)
        return ssc

    return StreamingContext.getOrCreate(str(checkpoint), setup)


@pytest.mark.parametrize("graceful", [True, False])
def test_a_restart_from_the_checkpoint_goes_on_where_it_stopped(sc, tmp_path, monkeypatch,
                                                               graceful):
    # A checkpoint every other batch, so that a stop that is not graceful has one too.
    monkeypatch.setenv("DSTREAM_CHECKPOINT_INTERVAL_MS", str(int(BATCH * 2000)))
    topic = new_topic("py-recover")
    checkpoint = tmp_path / "checkpoint"
    first, second = lines(0, 120), lines(500, 80)
    produce(topic, [(None, text) for text in first])

    state, read = {}, []
    ssc = running_count(sc, topic, checkpoint, state, read)
    ssc.start()
    wait_for(lambda: state == word_counts(first), "the first run's counts")
    # Past the next checkpoint, which then holds every offset of the first lines.
    settle()
    ssc.stop(stopSparkContext=False, stopGraceFully=graceful)
    assert state == word_counts(first)
    assert sum(read) == len(first)
    assert any(checkpoint.iterdir()), "a checkpoint was written"

    produce(topic, [(None, text) for text in second])
    state, read = {}, []
    ssc = running_count(sc, topic, checkpoint, state, read)
    ssc.start()
    expected = word_counts(first + second)
    wait_for(lambda: state == expected, "the restarted run's counts (have %s)" % state)
    settle()
    ssc.stop(stopSparkContext=False)
    # Nothing counted twice, nothing lost, and only the new lines were read again.
    assert state == expected
    assert sum(read) == len(second)


# A program killed with SIGKILL mid-stream: a running word count that reads at most a
# few records per partition and batch, so that its input spans many batches.
CRASH_PROGRAM = textwrap.dedent("""
    import json, os, sys
    from dstream import SparkConf, SparkContext
    from dstream.streaming import StreamingContext
    from dstream.streaming.kafka import KafkaUtils

    root, topic, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    params = {"metadata.broker.list": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
              "auto.offset.reset": "smallest"}

    def setup():
        conf = SparkConf().setMaster("local[2]").setAppName("crash") \\
            .set("spark.streaming.kafka.maxRatePerPartition", "20")
        ssc = StreamingContext(SparkContext(conf=conf), 0.5)
        counts = KafkaUtils.createDirectStream(ssc, [topic], params) \\
            .flatMap(lambda kv: kv[1].split()) \\
            .map(lambda word: (word, 1)) \\
            .updateStateByKey(lambda new, last: sum(new) + (last or 0))

        def record(time, rdd):
            state = dict(rdd.collect())
            if sum(state.values()) >= total:
                with open(os.path.join(root, ".final.json"), "w") as out:
                    json.dump(state, out, sort_keys=True)
                os.rename(os.path.join(root, ".final.json"),
                          os.path.join(root, "final.json"))
                ssc.stop(stopSparkContext=False)
            print("BATCH %d" % sum(state.values()), flush=True)

        counts.foreachRDD(record)
        return ssc

    ssc = StreamingContext.getOrCreate(os.path.join(root, "checkpoint"), setup)
    ssc.start()
    ssc.awaitTerminationOrTimeout(120)
""")


def run_crash_program(root, topic, total, kill_after=None):
    """Runs the program; SIGKILLs it after ``kill_after`` batches if given. Returns the
    word totals of the state at each batch it printed."""
    program = root / "program.py"
    program.write_text(CRASH_PROGRAM)
    env = dict(os.environ, DSTREAM_CHECKPOINT_INTERVAL_MS="1000")
    # A file, not a pipe, for the log: a full pipe would block the program.
    log = open(root / "stderr.log", "a")
    child = subprocess.Popen([sys.executable, str(program), str(root), topic, str(total)],
                             stdout=subprocess.PIPE, stderr=log, text=True,
                             env=env, cwd=str(root))
    try:
        totals = []
        for line in child.stdout:
            if line.startswith("BATCH "):
                totals.append(int(line.split()[1]))
                if kill_after is not None and len(totals) == kill_after:
                    child.kill()
                    break
        code = child.wait(timeout=WAIT * 2)
        if kill_after is None:
            assert code == 0, (root / "stderr.log").read_text()
        return totals
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        log.close()


def test_a_program_killed_mid_stream_recovers_with_nothing_lost_or_counted_twice(tmp_path):
    topic = new_topic("py-crash")
    texts = lines(0, 300)
    produce(topic, [("k%d" % n, text) for n, text in enumerate(texts)])
    total = sum(word_counts(texts).values())
    root = tmp_path / "crash"
    root.mkdir()
    # At 20 records per second and partition, the 300 lines take about ten batches.
    killed = run_crash_program(root, topic, total, kill_after=5)
    assert not (root / "final.json").exists(), "killed before the end"
    assert 0 < killed[0] < killed[-1] < total, killed
    resumed = run_crash_program(root, topic, total)
    # A checkpoint is written after every other batch, before the next one starts: the
    # restart begins with the state of the fourth batch at least, where a fresh start
    # would begin with one batch's worth.
    assert resumed[0] >= killed[3], (killed, resumed)
    with open(root / "final.json") as saved:
        assert json.load(saved) == word_counts(texts)
