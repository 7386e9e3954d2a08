#!/usr/bin/env python3
"""dstream's Python word count benchmark: the PySpark benchmark's program
(shared bench harness, spark/pyspark_wordcount_bench.py) written against dstream.

usage: wordcount_bench.py W1|W2 socket EXPECTED_WORDS [k=v ...]
  keys: host=127.0.0.1 port=9999 batchMs=1000 master=local[2] checkpoint=DIR
        expectedDistinct=N timeoutS=900 variant=native|python spark.*=VALUE (SparkConf)
        (corpus=FILE and other harness keys are ignored)

W1: socketTextStream -> flatMap(split ' ') -> map((w, 1)) -> reduceByKey(add)
    -> foreachRDD(sum of the counts), exactly the PySpark program.
W2: ... -> updateStateByKey(running count) -> foreachRDD(number of keys, sum of counts),
    the Java program's W2 (PySpark's harness program has W1 only).

variant=native (default) is the program as written: dstream recognises its split, pair
and + functions and runs them in Rust. variant=python hides them from that recognition
(the same functions, reading their constants from a closure), so every word goes through
Python as in PySpark: the cost of arbitrary user functions.

Stops when the words counted reach EXPECTED_WORDS and prints one RESULT line with the
PySpark program's fields and definitions (wall_s from the start of the interval of
the first non-empty batch to the processing end of the last batch).
"""
import sys
import threading
import time
from operator import add

from dstream import SparkConf, SparkContext
from dstream.streaming import StreamingContext
from dstream.streaming.listener import StreamingListener


class State:
    expected = 0
    cum = 0
    words_by_batch = {}
    info = {}
    last_batch = -1
    overshoot = 0
    state_keys = 0
    state_sum = 0
    reached = threading.Event()
    lock = threading.Lock()


class Listener(StreamingListener):
    def onBatchCompleted(self, batchCompleted):
        bi = batchCompleted.batchInfo()
        State.info[bi.batchTime().milliseconds()] = dict(
            proc=bi.processingDelay() or 0, sched=bi.schedulingDelay() or 0,
            records=bi.numRecords(), end=bi.processingEndTime())


def millis(t):
    return int(round(t.timestamp() * 1000))


def count_words(ms, n):
    with State.lock:
        if n:
            State.words_by_batch[ms] = n
        State.cum += n
        if State.cum >= State.expected and State.last_batch < 0:
            State.last_batch = ms
            State.overshoot = State.cum - State.expected
            State.reached.set()


def w1(t, rdd):
    count_words(millis(t), rdd.map(lambda kv: kv[1]).sum())


def w2(t, rdd):
    def keys_and_sum(it):
        k = s = 0
        for _, v in it:
            k += 1
            s += v
        return [(k, s)]

    parts = rdd.mapPartitions(keys_and_sum).collect()
    keys = sum(k for k, _ in parts)
    total = sum(s for _, s in parts)
    delta = total - State.state_sum
    State.state_keys, State.state_sum = keys, total
    count_words(millis(t), delta)


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    workload, mode = sys.argv[1], sys.argv[2]
    if workload not in ("W1", "W2") or mode != "socket":
        sys.exit("only W1 and W2 over socket are implemented for dstream-python")
    State.expected = int(sys.argv[3])
    kv = dict(a.split("=", 1) for a in sys.argv[4:])
    batch_ms = int(kv.get("batchMs", kv.get("batch_ms", "1000")))
    conf = SparkConf().setMaster(kv.get("master", "local[2]")).setAppName("dstream-python-" + workload)
    for k, v in kv.items():
        if k.startswith("spark."):
            conf.set(k, v)  # spark.streaming.receiver.maxRate and backpressure apply
    sc = SparkContext(conf=conf)
    sc.setLogLevel("WARN")
    ssc = StreamingContext(sc, batch_ms / 1000.0)
    ssc.addStreamingListener(Listener())
    lines = ssc.socketTextStream(kv.get("host", "127.0.0.1"), int(kv.get("port", "9999")))
    if kv.get("variant", "native") == "python":
        sep, one = " ", 1
        pairs = lines.flatMap(lambda l: l.split(sep)).map(lambda w: (w, one))
    else:
        pairs = lines.flatMap(lambda l: l.split(" ")).map(lambda w: (w, 1))
    if workload == "W1":
        pairs.reduceByKey(add).foreachRDD(w1)
    else:
        ssc.checkpoint(kv.get("checkpoint", "checkpoint"))
        pairs.updateStateByKey(lambda new, last: sum(new) + (last or 0)).foreachRDD(w2)

    start_wall = time.time()
    ssc.start()
    ok = State.reached.wait(float(kv.get("timeoutS", "900")))
    deadline = time.time() + 30
    while ok and State.last_batch not in State.info and time.time() < deadline:
        time.sleep(0.005)

    nonempty = [t for t, n in State.words_by_batch.items() if n > 0]
    first = min(nonempty) if nonempty else 0
    last = State.last_batch if ok else max(State.info) if State.info else 0
    sel = [State.info[t] for t in sorted(State.info) if first <= t <= last]
    procs = sorted(max(0, b["proc"]) for b in sel)
    scheds = [max(0, b["sched"]) for b in sel]
    nb = len(sel)
    end_ms = State.info[last]["end"] if last in State.info else int(time.time() * 1000)
    wall = (end_ms - (first - batch_ms)) / 1000.0
    words = State.cum
    res = [
        "RESULT engine=dstream-python workload=%s mode=socket" % workload,
        "ok=%s" % str(ok and State.overshoot == 0).lower(),
        "lines=%d" % sum(b["records"] for b in sel),
        "words=%d" % words,
        "expected=%d" % State.expected,
        "batches=%d" % nb,
        "wall_s=%.3f" % wall,
        "words_per_s=%.0f" % (words / wall if wall > 0 else 0),
        "proc_mean_ms=%.1f" % (sum(procs) / nb if nb else 0),
        "proc_median_ms=%d" % (procs[nb // 2] if nb else 0),
        "proc_max_ms=%d" % (max(procs) if nb else 0),
        "sched_mean_ms=%.1f" % (sum(scheds) / nb if nb else 0),
        "sched_max_ms=%d" % (max(scheds) if nb else 0),
        "busy_words_per_s=%.0f" % (words * 1000.0 / sum(procs) if sum(procs) else 0),
        "startup_to_first_batch_s=%.1f" % ((first - batch_ms) / 1000.0 - start_wall),
    ]
    if workload == "W2":
        res.append("state_keys=%d state_sum=%d" % (State.state_keys, State.state_sum))
        if "expectedDistinct" in kv:
            res.append("distinct_ok=%s" % str(State.state_keys == int(kv["expectedDistinct"])).lower())
    print(" ".join(res), flush=True)
    ssc.stop(stopSparkContext=True, stopGraceFully=False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
