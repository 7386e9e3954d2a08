"""The write-ahead log test's program: a running word count over a TCP socket, built
with StreamingContext.getOrCreate so that a restart recovers its checkpoint.

usage: socket_running_count.py ROOT PORT TOTAL

It reads commands from stdin, one per line, and answers on stdout:
  expect N  waits until N lines arrived over this run's connection, answers GOT;
  tick      runs the next batch on its manual clock, answers TICKED;
  finish    runs batches until the state holds TOTAL words, writes ROOT/final.json
            and stops.
"""

import json
import os
import sys
import threading
import time

from dstream import SparkContext
from dstream.streaming import ManualClock, StreamingContext


def main():
    root, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    clock = ManualClock()
    done = threading.Event()

    def setup():
        sc = SparkContext("local[2]", "socket_running_count")
        ssc = StreamingContext(sc, 1, clock=clock)
        counts = ssc.socketTextStream("127.0.0.1", port) \
            .flatMap(lambda line: line.split(" ")) \
            .map(lambda word: (word, 1)) \
            .updateStateByKey(lambda new, last: sum(new) + (last or 0))

        def record(time, rdd):
            state = dict(rdd.collect())
            if sum(state.values()) == total and not done.is_set():
                with open(os.path.join(root, ".final.json"), "w") as out:
                    json.dump(state, out, sort_keys=True)
                os.rename(os.path.join(root, ".final.json"), os.path.join(root, "final.json"))
                done.set()

        counts.foreachRDD(record)
        return ssc

    ssc = StreamingContext.getOrCreate(os.path.join(root, "checkpoint"), setup)
    ssc.start()
    # What the log gave back at the start: received before the kill, in no batch.
    base = ssc._jssc.records_received()
    print("READY", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "expect":
            deadline = time.monotonic() + 30
            while ssc._jssc.records_received() < base + int(command[1]):
                if time.monotonic() > deadline:
                    sys.exit("the lines never arrived")
                time.sleep(0.005)
            print("GOT", flush=True)
        elif command[0] == "tick":
            clock.advance(1)
            ssc.awaitBatch(clock.time(), 30)
            print("TICKED", flush=True)
        elif command[0] == "finish":
            for _ in range(20):
                if done.is_set():
                    break
                clock.advance(1)
                ssc.awaitBatch(clock.time(), 30)
            ssc.stop(stopGraceFully=True)
            sys.exit(0 if done.is_set() else "the counts never added up")


if __name__ == "__main__":
    main()
