"""``SparkContext`` and ``SparkConf``: light stand-ins so that PySpark notebook code runs.

dstream has no cluster and no JVM: a ``SparkContext`` only remembers the master
setting (``local[N]`` / ``local[*]`` choose the worker threads) and makes RDDs from
Python data. Streaming programs build a
:class:`~dstream.streaming.StreamingContext` on it, as in PySpark.
"""

import logging
import os
import re
import threading

from dstream import _native
from dstream.rdd import RDD

__all__ = ["SparkConf", "SparkContext"]

_log = logging.getLogger("dstream")


class SparkConf:
    """Settings as ``key -> value`` strings, as PySpark's ``SparkConf``.

    ``spark.master``, ``spark.app.name`` and the streaming settings of the README's
    Configuration (``spark.streaming.backpressure.enabled``, ``spark.ui.port``, ...)
    mean something to dstream; the rest are kept so that code which sets them runs
    unchanged.

    >>> conf = SparkConf().setMaster("local[2]").setAppName("WordCount")
    >>> conf.get("spark.master")
    'local[2]'
    """

    def __init__(self, loadDefaults=True, _jvm=None, _jconf=None):
        self._conf = {}

    def set(self, key, value):
        """Sets ``key`` to ``value``; returns this ``SparkConf``."""
        self._conf[key] = str(value)
        return self

    def setIfMissing(self, key, value):
        """Sets ``key`` unless it is set."""
        self._conf.setdefault(key, str(value))
        return self

    def setMaster(self, value):
        """The master: ``local``, ``local[N]`` or ``local[*]``."""
        return self.set("spark.master", value)

    def setAppName(self, value):
        """The application's name."""
        return self.set("spark.app.name", value)

    def setAll(self, pairs):
        """Sets each ``(key, value)`` of ``pairs``."""
        for key, value in pairs:
            self.set(key, value)
        return self

    def get(self, key, defaultValue=None):
        """The value of ``key``, or ``defaultValue``."""
        return self._conf.get(key, defaultValue)

    def getAll(self):
        """Every ``(key, value)``."""
        return list(self._conf.items())

    def contains(self, key):
        """Whether ``key`` is set."""
        return key in self._conf

    def toDebugString(self):
        """``key=value`` lines."""
        return "\n".join("%s=%s" % kv for kv in sorted(self._conf.items()))


_MASTER = re.compile(r"^local(\[(\*|[1-9][0-9]*)(,[0-9]+)?\])?$")


def _threads(master):
    """Worker threads for a master setting, as Spark counts them."""
    match = _MASTER.match(master.strip())
    if not match:
        raise ValueError(
            "invalid master %r: dstream runs on one machine; use \"local\", "
            "\"local[N]\" or \"local[*]\"" % master
        )
    if match.group(2) is None:
        return 1
    if match.group(2) == "*":
        return os.cpu_count() or 1
    return int(match.group(2))


class SparkContext:
    """The entry point PySpark programs start from.

    ``SparkContext(master="local[*]", appName="WordCountApp")`` as in PySpark;
    ``master`` chooses the worker threads of the streaming contexts built on it.

    Unlike PySpark, a second ``SparkContext`` does not fail with "Cannot run multiple
    SparkContexts at once": it replaces the first as the active one, so a notebook
    cell can be run again.

    >>> sc = SparkContext("local[2]", "doc")
    >>> sc.parallelize([1, 2, 3]).map(lambda x: x * 10).collect()
    [10, 20, 30]
    >>> sc.defaultParallelism
    2
    """

    _active = None
    _lock = threading.RLock()

    def __init__(self, master=None, appName=None, sparkHome=None, pyFiles=None,
                 environment=None, batchSize=0, serializer=None, conf=None,
                 gateway=None, jsc=None, profiler_cls=None, **kwargs):
        self._conf = conf if conf is not None else SparkConf()
        if master is not None:
            self._conf.setMaster(master)
        if appName is not None:
            self._conf.setAppName(appName)
        self.master = self._conf.get("spark.master", "local[*]")
        self.appName = self._conf.get("spark.app.name", "dstream")
        self.defaultParallelism = _threads(self.master)
        self.sparkHome = sparkHome
        self.environment = dict(environment or {})
        self._stopped = False
        self._uiWebUrl = None
        with SparkContext._lock:
            SparkContext._active = self

    @classmethod
    def getOrCreate(cls, conf=None):
        """The active ``SparkContext``, or a new one made from ``conf``."""
        with cls._lock:
            if cls._active is None or cls._active._stopped:
                cls(conf=conf or SparkConf())
            return cls._active

    @property
    def version(self):
        """dstream's version."""
        from dstream import __version__

        return __version__

    @property
    def uiWebUrl(self):
        """The URL of dstream's live status page, as PySpark's of its web UI: served
        when ``spark.ui.port`` is set in the ``SparkConf`` (on 127.0.0.1; port 0 takes
        a free one), by the last ``StreamingContext`` made on this context; ``None``
        otherwise."""
        return self._uiWebUrl

    @property
    def defaultMinPartitions(self):
        """As PySpark: at most 2."""
        return min(self.defaultParallelism, 2)

    def getConf(self):
        """A copy of the settings."""
        return SparkConf().setAll(self._conf.getAll())

    def setLogLevel(self, logLevel):
        """Sets the level of dstream's log (Python's ``logging`` logger ``dstream``):
        ``ALL``, ``DEBUG``, ``INFO``, ``WARN``, ``ERROR``, ``FATAL`` or ``OFF``."""
        levels = {
            "ALL": logging.NOTSET, "TRACE": logging.DEBUG, "DEBUG": logging.DEBUG,
            "INFO": logging.INFO, "WARN": logging.WARNING, "WARNING": logging.WARNING,
            "ERROR": logging.ERROR, "FATAL": logging.CRITICAL, "OFF": logging.CRITICAL + 10,
        }
        level = levels.get(str(logLevel).upper())
        if level is None:
            raise ValueError("unknown log level %r: use one of %s" % (logLevel, ", ".join(levels)))
        _log.setLevel(level)

    def parallelize(self, c, numSlices=None):
        """An RDD of the elements of ``c`` in ``numSlices`` partitions (default: the
        worker threads, however few the elements, as in PySpark)."""
        data = list(c)
        slices = int(numSlices) if numSlices is not None else self.defaultParallelism
        return RDD(_native.parallelize(data, max(1, slices)), self)

    def range(self, start, end=None, step=1, numSlices=None):
        """An RDD of ``range(start, end, step)``."""
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), numSlices)

    def emptyRDD(self):
        """An RDD with no elements."""
        return RDD(_native.parallelize([], 1), self)

    def union(self, rdds):
        """The union of ``rdds``."""
        rdds = list(rdds)
        if not rdds:
            return self.emptyRDD()
        first = rdds[0]
        for rdd in rdds[1:]:
            first = first.union(rdd)
        return first

    def stop(self):
        """Stops this context (streaming contexts stop with theirs). Stopping twice is
        allowed."""
        self._stopped = True
        with SparkContext._lock:
            if SparkContext._active is self:
                SparkContext._active = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<SparkContext master=%s appName=%s>" % (self.master, self.appName)
