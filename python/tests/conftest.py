"""Shared fixtures: a ``SparkContext``, a ``StreamingContext`` on a manual clock, and
helpers that run batches one at a time and record each batch's output.

Batch times are printed and handed to functions as local ``datetime``s (as PySpark
does); the suite runs in UTC so that they are the same on every machine.
"""

import os
import time

os.environ["TZ"] = "UTC"
time.tzset()

from datetime import datetime  # noqa: E402

import pytest  # noqa: E402

from dstream import SparkContext  # noqa: E402
from dstream.streaming import ManualClock, StreamingContext  # noqa: E402

# The longest any test waits for one batch: far more than a batch needs, so that a
# slow machine never fails a test, while a hang still ends.
BATCH_TIMEOUT = 20


def at(seconds):
    """The batch time ``seconds`` after the epoch, as functions receive it."""
    return datetime(1970, 1, 1, 0, 0, seconds)


@pytest.fixture
def sc():
    """A ``SparkContext`` with two worker threads."""
    context = SparkContext("local[2]", "test")
    yield context
    context.stop()


@pytest.fixture
def clock():
    """A manual clock at 0 s (1970-01-01 00:00:00 UTC)."""
    return ManualClock()


@pytest.fixture
def ssc(sc, clock):
    """A ``StreamingContext`` with 1-second batches on the manual clock; stopped after
    the test, whatever happened."""
    context = StreamingContext(sc, 1, clock=clock)
    yield context
    context.stop(stopSparkContext=False)


class Runner:
    """Starts a context and moves its manual clock one batch at a time."""

    def __init__(self, ssc, clock):
        self.ssc = ssc
        self.clock = clock
        self.started = False

    def batches(self, n, step=1):
        """Starts the context (the first time) and runs ``n`` batches of ``step``
        seconds each, waiting for each to complete."""
        if not self.started:
            self.ssc.start()
            self.started = True
        for _ in range(n):
            self.clock.advance(step)
            self.ssc.awaitBatch(self.clock.time(), timeout=BATCH_TIMEOUT)


@pytest.fixture
def run(ssc, clock):
    """``run(n)`` starts the context and runs ``n`` one-second batches."""
    return Runner(ssc, clock).batches


def collect(stream, key=sorted):
    """Records, for each batch, ``(time, key(rdd.collect()))``; returns the list they
    are appended to."""
    out = []
    stream.foreachRDD(lambda t, rdd: out.append((t, key(rdd.collect()))))
    return out


def values(out):
    """The outputs of :func:`collect` without their times."""
    return [records for _, records in out]


@pytest.fixture(autouse=True)
def _no_active_context_left():
    """A test that fails midway must not leave a running context to the next one."""
    yield
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=False)
