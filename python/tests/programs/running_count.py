"""The crash test's program: a running word count over a directory of files, built
with StreamingContext.getOrCreate so that a restart recovers its checkpoint.

usage: running_count.py ROOT FILES

It drives its own manual clock, dropping one file per batch and two batches per step,
and prints one "BATCH <ms>" line per completed batch. When the state holds every word of
the FILES files it writes ROOT/final.json and stops.
"""

import json
import os
import sys
import threading

from dstream import SparkContext
from dstream.streaming import ManualClock, StreamingContext


def file_text(n):
    lines = []
    for line in range(5):
        lines.append(" ".join("w%d" % ((n * 31 + line * 7 + i * i) % 23) for i in range(12)))
    return "\n".join(lines) + "\n"


def main():
    root, files = sys.argv[1], int(sys.argv[2])
    inbox = os.path.join(root, "input")
    total = sum(len(file_text(n).split()) for n in range(1, files + 1))
    clock = ManualClock()
    done = threading.Event()

    def setup():
        sc = SparkContext("local[2]", "running_count")
        ssc = StreamingContext(sc, 1, clock=clock)
        counts = ssc.textFileStream(inbox) \
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
            print("BATCH %d" % round(time.timestamp() * 1000), flush=True)

        counts.foreachRDD(record)
        return ssc

    ssc = StreamingContext.getOrCreate(os.path.join(root, "checkpoint"), setup)
    ssc.start()
    print("START %d" % round(clock.time() * 1000), flush=True)
    next_file = next((n for n in range(1, files + 2)
                      if not os.path.exists(os.path.join(inbox, "f%03d.txt" % n))))
    idle = 0
    while not done.is_set():
        for _ in range(2):
            if next_file <= files:
                hidden = os.path.join(inbox, ".f%03d.tmp" % next_file)
                with open(hidden, "w") as out:
                    out.write(file_text(next_file))
                os.rename(hidden, os.path.join(inbox, "f%03d.txt" % next_file))
                next_file += 1
            else:
                idle += 1
            clock.advance(1)
        ssc.awaitBatch(clock.time(), 60)
        if idle >= 10:
            sys.exit("every file is in, but the state never reached the total")
    ssc.stop()


if __name__ == "__main__":
    main()
