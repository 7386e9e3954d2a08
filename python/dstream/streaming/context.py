"""``StreamingContext``: the entry point of a streaming program, as PySpark's."""

import atexit
import os
import threading
import warnings

from dstream import _native
from dstream.rdd import RDD
from dstream.streaming.dstream import (DStream, _millis, _rdd_result, _time, _to_millis,
                                       _with_time)
from dstream.streaming.listener import _dispatcher

__all__ = ["StreamingContext", "ManualClock"]

# How often a waiting awaitTermination looks for Ctrl-C.
_WAKE_S = 0.1


class ManualClock:
    """A clock that moves only when told, for tests: batches happen exactly when the
    test advances it, never because time passed (dstream's addition to the PySpark
    API; Spark's own tests use the same idea).

    >>> from dstream import SparkContext
    >>> clock = ManualClock()
    >>> ssc = StreamingContext(SparkContext("local[2]", "doc"), 1, clock=clock)
    >>> clock.advance(1)
    >>> clock.time()
    1.0
    """

    def __init__(self, start=0):
        self._clock = _native.ManualClock(_to_millis(start))

    def advance(self, seconds):
        """Moves the clock forward by ``seconds``."""
        self._clock.advance(_millis(seconds, "advance"))

    def time(self):
        """Where the clock stands, in seconds since the epoch."""
        return self._clock.now_ms() / 1000.0


class StreamingContext:
    """The entry point of a streaming program: ``StreamingContext(sc, batchDuration)``
    with the batch interval in seconds (an int or a float), as in PySpark.

    Starting a context while another one runs (a notebook cell run again) stops the
    earlier one, with a warning, instead of failing as Spark's "Only one
    StreamingContext may be started in this JVM" does.

    ``clock`` (a :class:`ManualClock`) is dstream's addition for tests.
    """

    _activeContext = None
    _lock = threading.RLock()

    def __init__(self, sparkContext, batchDuration=None, jssc=None, clock=None):
        self._sc = sparkContext
        if jssc is not None:
            self._jssc = jssc
        else:
            if batchDuration is None:
                raise ValueError("batchDuration is required: the batch interval in seconds")
            # The engine reads the settings it knows from the SparkConf (see the
            # README's Configuration); the master is the one the SparkContext chose.
            conf = sparkContext._conf.getAll() + [("spark.master", sparkContext.master)]
            self._jssc = _native.Context(
                _millis(batchDuration, "batchDuration"), conf,
                clock._clock if clock is not None else None)
        address = self._jssc.status_page_address()
        if address is not None:
            sparkContext._uiWebUrl = "http://%s" % address
        self._batchDuration = self._jssc.batch_ms() / 1000.0
        self._clock = clock
        self._started = False
        self._stopped = False

    # --- lifecycle ---------------------------------------------------------------

    @classmethod
    def getOrCreate(cls, checkpointPath, setupFunc):
        """Recovers the program from the checkpoint in ``checkpointPath``, or builds it.

        ``setupFunc()`` builds the program (streams, outputs) and returns its
        ``StreamingContext``. Unlike Spark, which reloads pickled functions, dstream
        always runs ``setupFunc`` and then restores the state of every stateful stream
        from the newest valid checkpoint, matching streams by the order they were
        defined. A program whose stateful streams changed is refused with an error
        naming the first one that differs."""
        made = []

        def setup():
            ssc = setupFunc()
            if not isinstance(ssc, StreamingContext):
                raise TypeError("setupFunc must return a StreamingContext, not %s"
                                % type(ssc).__name__)
            made.append(ssc)
            return ssc._jssc

        native = _native.Context.get_or_create(os.fspath(checkpointPath), setup)
        ssc = made[-1]
        ssc._jssc = native
        return ssc

    @classmethod
    def getActive(cls):
        """The context that was started and has not stopped, or ``None``."""
        with cls._lock:
            return cls._activeContext

    @classmethod
    def getActiveOrCreate(cls, checkpointPath, setupFunc):
        """The active context, or ``getOrCreate(checkpointPath, setupFunc)`` (or
        ``setupFunc()`` when ``checkpointPath`` is ``None``)."""
        active = cls.getActive()
        if active is not None:
            return active
        if checkpointPath is not None:
            return cls.getOrCreate(checkpointPath, setupFunc)
        return setupFunc()

    @property
    def sparkContext(self):
        """The ``SparkContext`` this context was made with."""
        return self._sc

    def start(self):
        """Starts receiving and processing. A context that runs already is stopped first
        (see the class)."""
        with StreamingContext._lock:
            earlier = StreamingContext._activeContext
            if earlier is not None and earlier is not self:
                warnings.warn("stopping the StreamingContext started earlier: only one runs "
                              "at a time (dstream stops it instead of failing as Spark does)",
                              RuntimeWarning, stacklevel=2)
                earlier.stop(stopSparkContext=False, stopGraceFully=False)
            self._jssc.start()
            self._started = True
            StreamingContext._activeContext = self

    def awaitTermination(self, timeout=None):
        """Waits until the context stops, or ``timeout`` seconds. An exception raised in a
        batch (by a function of the program) is raised here, with its traceback.

        Ctrl-C (in a terminal, or Jupyter's interrupt) stops the context gracefully:
        what was received is processed, then ``KeyboardInterrupt`` is raised."""
        self._await(timeout)

    def awaitTerminationOrTimeout(self, timeout):
        """As ``awaitTermination(timeout)``; returns ``True`` if the context stopped."""
        return self._await(timeout)

    def _await(self, timeout):
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                wait = _WAKE_S
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                if self._jssc.await_termination(wait):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        except KeyboardInterrupt:
            self.stop(stopSparkContext=False, stopGraceFully=True)
            raise

    def stop(self, stopSparkContext=True, stopGraceFully=False):
        """Stops the context; with ``stopGraceFully``, only after what was received has
        been processed. Stopping twice, or from inside ``foreachRDD``, is allowed (from
        inside a batch the stop completes once that batch is done)."""
        self._jssc.stop(bool(stopGraceFully))
        self._stopped = True
        with StreamingContext._lock:
            if StreamingContext._activeContext is self:
                StreamingContext._activeContext = None
        if stopSparkContext:
            self._sc.stop()

    # --- settings ----------------------------------------------------------------

    def checkpoint(self, directory):
        """Saves state and input positions in ``directory`` (created if needed)."""
        # Created now, as PySpark does, so that a path that cannot be written fails
        # here rather than at start.
        os.makedirs(os.fspath(directory), exist_ok=True)
        self._jssc.checkpoint(os.fspath(directory))

    def remember(self, duration):
        """Keeps each stream's RDDs for ``duration`` seconds after their batch."""
        self._jssc.remember(_millis(duration, "remember duration"))

    def addStreamingListener(self, streamingListener):
        """Calls ``streamingListener``'s ``onBatchSubmitted``, ``onBatchStarted``,
        ``onBatchCompleted``, ``onStreamingStarted`` and ``onStreamingStopped``."""
        self._jssc.add_listener(_dispatcher(streamingListener))

    # --- inputs ------------------------------------------------------------------

    def socketTextStream(self, hostname, port, storageLevel=None):
        """Lines of text from a TCP server (``nc -lk 9999``). The connection is made
        at ``start``, and made again if it is lost."""
        return DStream(None, self, _text=self._jssc.socket_text_stream(hostname, int(port)))

    def textFileStream(self, directory):
        """The lines of each new file that appears in ``directory``."""
        return DStream(None, self, _text=self._jssc.text_file_stream(os.fspath(directory)))

    def binaryRecordsStream(self, directory, recordLength):
        """The records of each new file that appears in ``directory``, as ``bytes`` of
        ``recordLength`` bytes each. A file whose size is not a whole number of records
        is skipped with a warning."""
        return DStream(self._jssc.binary_records_stream(os.fspath(directory), int(recordLength)), self)

    def queueStream(self, rdds, oneAtATime=True, default=None):
        """Batches from a list of RDDs (or of lists): one per batch, or all at once;
        ``default`` when the list is used up."""
        natives = [self._as_rdd(rdd)._native() for rdd in rdds]
        if default is not None:
            default = self._as_rdd(default)._native()
        return DStream(self._jssc.queue_stream(natives, bool(oneAtATime), default), self)

    def _as_rdd(self, data):
        if isinstance(data, RDD):
            return data
        return self._sc.parallelize(data)

    def union(self, *dstreams):
        """The union of ``dstreams``, batch by batch."""
        if not dstreams:
            raise ValueError("should have at least one DStream to union")
        if len(dstreams) == 1 and isinstance(dstreams[0], (list, tuple)):
            dstreams = tuple(dstreams[0])
        if len({s._slide_ms() for s in dstreams}) > 1:
            raise ValueError("All DStreams should have same slide duration")
        return DStream(self._jssc.union([s._native() for s in dstreams]), self)

    def transform(self, dstreams, transformFunc):
        """``transformFunc(rdds)`` or ``transformFunc(time, rdds)`` over the RDDs of
        ``dstreams`` at each batch (``rdds`` a tuple, as PySpark passes them)."""
        dstreams = list(dstreams)
        if not dstreams:
            raise ValueError("should have at least one DStream to transform")
        func = _with_time(transformFunc, 1)
        ctx = self._sc

        def run(time_ms, *natives):
            rdds = tuple(RDD(native, ctx) for native in natives)
            return _rdd_result(func(_time(time_ms), rdds), "transform")

        return DStream(self._jssc.transform([s._native() for s in dstreams], run), self)

    # --- dstream's additions for tests -------------------------------------------

    def awaitBatch(self, time, timeout=30):
        """Waits until the batch at ``time`` (a ``datetime`` or seconds since the epoch)
        has completed; raises the batch's exception if it failed."""
        self._jssc.await_batch(_to_millis(time), float(timeout))


@atexit.register
def _stop_at_exit():
    """Stops a context still running when the interpreter exits, before Python is torn
    down under the engine's threads (PySpark's JVM goes with its process the same way)."""
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=False, stopGraceFully=False)
