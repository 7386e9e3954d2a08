"""``DStream``: a stream of RDDs, one per batch, with PySpark's operations.

Element-wise operations are fused into one Python function per partition, as in
PySpark; keyed combines run map-side in Python dicts (one pass per partition), shuffle
in the Rust engine, and merge in Python again. State (``updateStateByKey``) and
incremental windows (``reduceByKeyAndWindow`` with an inverse function) live in the
engine's stores, so they are checkpointed and recovered.
"""

import inspect
import operator
import os
from datetime import datetime

from dstream._elementwise import ElementWise
from dstream.rdd import (RDD, _append, _combine_locally, _extend, _merge_combiners,
                         portable_hash)
from dstream.streaming import _native_ops

__all__ = ["DStream"]


def _millis(seconds, what):
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("%s must be a number of seconds, got %r" % (what, seconds))
    ms = round(seconds * 1000)
    if ms <= 0 or abs(ms - seconds * 1000) > 1e-6:
        raise ValueError("%s must be a positive whole number of milliseconds, got %r seconds"
                         % (what, seconds))
    return int(ms)


def _time(ms):
    """A batch time as PySpark hands it to functions: a local ``datetime``."""
    return datetime.fromtimestamp(ms / 1000.0)


def _to_millis(time):
    if isinstance(time, datetime):
        return int(round(time.timestamp() * 1000))
    return int(round(time * 1000))


def _arity(func):
    code = getattr(func, "__code__", None)
    if code is None:
        # A callable object or a functools.partial: count its positional parameters,
        # as co_argcount counts a function's.
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):
            return None
        return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    count = code.co_argcount
    if getattr(func, "__self__", None) is not None:
        count -= 1
    return count


def _with_time(func, plain):
    """``func(time, *rdds)``, also for a ``func(*rdds)`` that takes no time (PySpark
    tells them apart by their number of arguments)."""
    if _arity(func) == plain:
        return lambda time, *rdds: func(*rdds)
    return func


def _rdd_result(rdd, what):
    if rdd is None:
        raise TypeError("the function given to %s returned None: it must return an RDD" % what)
    if not isinstance(rdd, RDD):
        raise TypeError("the function given to %s must return an RDD, not %s"
                        % (what, type(rdd).__name__))
    return rdd._native()


class DStream(ElementWise):
    """A discretized stream: a sequence of RDDs, one per batch interval.

    >>> from dstream import SparkContext
    >>> from dstream.streaming import StreamingContext
    >>> ssc = StreamingContext(SparkContext("local[2]", "doc"), 1)
    >>> lines = ssc.queueStream([["a b", "b"]])
    >>> counts = lines.flatMap(lambda l: l.split(" ")).map(lambda w: (w, 1)) \\
    ...     .reduceByKey(lambda x, y: x + y)
    """

    def __init__(self, native, ssc, _prev=None, _func=None, _text=None, _counts=None):
        self._native_stream = native
        self._prev = _prev
        self._func = _func
        # Records still held in Rust: str records (_text) or (str, int) pairs
        # (_counts), made Python objects only when Python needs them.
        self._text = _text
        self._counts = _counts
        self._ssc = ssc
        self.is_cached = False

    # --- the engine's stream behind this one -------------------------------------

    def _native(self):
        if self._native_stream is None:
            if self._text is not None:
                self._native_stream = self._text.to_py()
            elif self._counts is not None:
                self._native_stream = self._counts.to_py()
            else:
                self._native_stream = \
                    self._prev._native().map_partitions_with_index(self._func)
        return self._native_stream

    def _wrap(self, native):
        return DStream(native, self._ssc)

    def _rdd(self, native_rdd):
        return RDD(native_rdd, self._ssc._sc)

    def context(self):
        """The ``StreamingContext`` of this stream."""
        return self._ssc

    def _slide_ms(self):
        return self._native().slide_ms()

    def _default_partitions(self, numPartitions):
        return int(numPartitions) if numPartitions is not None else self._ssc._sc.defaultParallelism

    # --- element-wise ------------------------------------------------------------

    def mapPartitionsWithIndex(self, f, preservesPartitioning=False):
        """``f(index, iterator) -> iterable`` over each partition of each RDD."""
        if self._native_stream is None and self._prev is not None and not self.is_cached:
            prev_func = self._func
            return DStream(None, self._ssc, self._prev,
                           lambda i, it: f(i, prev_func(i, it)))
        return DStream(None, self._ssc, self, f)

    def map(self, f, preservesPartitioning=False):
        """``f(x)`` of each element."""
        if self._text is not None:
            value = _native_ops.pair_value(f)
            if value is not None:
                return DStream(None, self._ssc, _counts=self._text.pair_with(value))
        return super().map(f, preservesPartitioning)

    def flatMap(self, f, preservesPartitioning=False):
        """The elements of ``f(x)`` for each element."""
        if self._text is not None:
            sep = _native_ops.split_separator(f)
            if sep is not None:
                return DStream(None, self._ssc, _text=self._text.split(sep))
        return super().flatMap(f, preservesPartitioning)

    # --- per batch ----------------------------------------------------------------

    def count(self):
        """One element per batch: how many elements it has."""
        return self.mapPartitions(lambda it: [sum(1 for _ in it)]).reduce(operator.add)

    def reduce(self, func):
        """One element per batch: ``func`` over its elements (none if it is empty)."""
        return self.map(lambda x: (None, x)).reduceByKey(func, 1).map(lambda kv: kv[1])

    def countByValue(self):
        """``(element, count)`` for each distinct element of each batch."""
        return self.map(lambda x: (x, 1)).reduceByKey(lambda x, y: x + y)

    def union(self, other):
        """The elements of this stream and ``other``, batch by batch."""
        if self._slide_ms() != other._slide_ms():
            raise ValueError("the two DStream should have same slide duration")
        return self._wrap(self._native().union(other._native()))

    def repartition(self, numPartitions):
        """Each RDD in ``numPartitions`` partitions."""
        return self._wrap(self._native().repartition(int(numPartitions)))

    def cache(self):
        """Computes each batch's RDD once, however many operations read it."""
        cached = self._wrap(self._native().cache())
        cached.is_cached = True
        return cached

    def persist(self, storageLevel=None):
        """As ``cache``: dstream keeps data in memory."""
        return self.cache()

    def checkpoint(self, interval):
        """Kept for PySpark code: dstream checkpoints stateful streams at the context's
        checkpoint interval."""
        _millis(interval, "checkpoint interval")
        return self

    def transform(self, func):
        """``func(rdd)`` or ``func(time, rdd)``, returning an RDD, for each batch."""
        func = _with_time(func, 1)
        ctx = self._ssc._sc

        def run(time_ms, native_rdd):
            return _rdd_result(func(_time(time_ms), RDD(native_rdd, ctx)), "transform")

        return self._wrap(self._native().transform(run))

    def transformWith(self, func, other, keepSerializer=False):
        """``func(rdd, other_rdd)`` or ``func(time, rdd, other_rdd)``, returning an RDD,
        for each batch."""
        func = _with_time(func, 2)
        ctx = self._ssc._sc

        def run(time_ms, a, b):
            return _rdd_result(func(_time(time_ms), RDD(a, ctx), RDD(b, ctx)), "transformWith")

        return self._wrap(self._native().transform_with(other._native(), run))

    # --- output ------------------------------------------------------------------

    def foreachRDD(self, func):
        """Calls ``func(rdd)`` or ``func(time, rdd)`` for each batch. An exception it
        raises fails the batch and comes out of ``awaitTermination``."""
        func = _with_time(func, 1)
        ctx = self._ssc._sc

        def run(time_ms, native_rdd):
            func(_time(time_ms), RDD(native_rdd, ctx))

        self._native().foreach_rdd(run)

    def pprint(self, num=10):
        """Prints the first ``num`` elements of each batch, as PySpark does."""
        def takeAndPrint(time, rdd):
            taken = rdd.take(num + 1)
            print("-------------------------------------------")
            print("Time: %s" % time)
            print("-------------------------------------------")
            for record in taken[:num]:
                print(record)
            if len(taken) > num:
                print("...")
            print("")

        self.foreachRDD(takeAndPrint)

    def saveAsTextFiles(self, prefix, suffix=None):
        """Saves each batch as the directory ``prefix-<time in ms>[.suffix]``."""
        def saveAsTextFile(time, rdd):
            path = "%s-%d" % (prefix, _to_millis(time))
            if suffix is not None:
                path += "." + suffix
            try:
                rdd.saveAsTextFile(path)
            except OSError:
                # As PySpark: a batch run again after recovery finds its output
                # written already, and leaves it.
                if not os.path.isdir(path):
                    raise

        self.foreachRDD(saveAsTextFile)

    # --- by key ------------------------------------------------------------------

    def partitionBy(self, numPartitions, partitionFunc=portable_hash):
        """Each RDD's pairs moved to ``numPartitions`` partitions by their keys (see
        ``RDD.partitionBy``)."""
        n = self._default_partitions(numPartitions)
        if partitionFunc is portable_hash:
            return self._wrap(self._native().partition_by(n))
        return self.transform(lambda rdd: rdd.partitionBy(n, partitionFunc))

    def combineByKey(self, createCombiner, mergeValue, mergeCombiners, numPartitions=None):
        """``combineByKey`` on each RDD (see ``RDD.combineByKey``)."""
        return self._combine(createCombiner, mergeValue, mergeCombiners, numPartitions,
                             "combineByKey")

    def _combine(self, create, merge_value, merge_combiners, numPartitions, operation):
        return self.mapPartitions(_combine_locally(create, merge_value, operation)) \
            .partitionBy(numPartitions) \
            .mapPartitions(_merge_combiners(merge_combiners))

    def reduceByKey(self, func, numPartitions=None):
        """``func`` over the values of each key, batch by batch."""
        if self._counts is not None and _native_ops.is_addition(func):
            n = self._default_partitions(numPartitions)
            return DStream(None, self._ssc, _counts=self._counts.reduce_by_key_sum(n))
        return self._combine(lambda x: x, func, func, numPartitions, "reduceByKey")

    def groupByKey(self, numPartitions=None):
        """``(k, values)`` for each key of each batch."""
        n = self._default_partitions(numPartitions)
        return self.transform(lambda rdd: rdd.groupByKey(n))

    def cogroup(self, other, numPartitions=None):
        """``(k, (values here, values in other))`` for every key of either, per batch."""
        n = self._default_partitions(numPartitions)
        return self.transformWith(lambda a, b: a.cogroup(b, n), other)

    def join(self, other, numPartitions=None):
        """Inner join of each batch's pairs with ``other``'s."""
        n = self._default_partitions(numPartitions)
        return self.transformWith(lambda a, b: a.join(b, n), other)

    def leftOuterJoin(self, other, numPartitions=None):
        """Left outer join of each batch's pairs with ``other``'s."""
        n = self._default_partitions(numPartitions)
        return self.transformWith(lambda a, b: a.leftOuterJoin(b, n), other)

    def rightOuterJoin(self, other, numPartitions=None):
        """Right outer join of each batch's pairs with ``other``'s."""
        n = self._default_partitions(numPartitions)
        return self.transformWith(lambda a, b: a.rightOuterJoin(b, n), other)

    def fullOuterJoin(self, other, numPartitions=None):
        """Full outer join of each batch's pairs with ``other``'s."""
        n = self._default_partitions(numPartitions)
        return self.transformWith(lambda a, b: a.fullOuterJoin(b, n), other)

    def updateStateByKey(self, updateFunc, numPartitions=None, initialRDD=None):
        """A running state per key: ``updateFunc(new_values, last_state)`` returns the
        new state, or ``None`` to drop the key. It is called for every key at every
        batch, as in PySpark. Needs ``ssc.checkpoint(directory)``."""
        if self._counts is not None and initialRDD is None:
            return self._wrap(self._counts.update_state_by_key(
                updateFunc, self._default_partitions(numPartitions)))
        initial = None
        if initialRDD is not None:
            if not isinstance(initialRDD, RDD):
                initialRDD = self._ssc._sc.parallelize(initialRDD)
            initial = initialRDD._native()
        n = self._default_partitions(numPartitions)
        # Each key's new values are gathered into one list in Python first (a dict per
        # partition, as groupByKey), so the engine moves one record per key, not one
        # per value.
        grouped = self._combine(lambda v: [v], _append, _extend, n, "updateStateByKey")

        def update(groups, last):
            values = groups[0] if len(groups) == 1 else [v for g in groups for v in g]
            return updateFunc(values, last)

        return self._wrap(grouped._native().update_state_by_key(update, n, initial))

    # --- windows -----------------------------------------------------------------

    def _slide(self, slideDuration):
        return self._slide_ms() if slideDuration is None else _millis(slideDuration, "slide duration")

    def _window_ms(self, windowDuration, slideDuration):
        """The window's length and slide in ms; ``ValueError`` unless both are
        multiples of this stream's slide, as PySpark checks."""
        window_ms = _millis(windowDuration, "window duration")
        slide_ms = self._slide(slideDuration)
        parent_ms = self._slide_ms()
        for name, ms in (("windowDuration", window_ms), ("slideDuration", slide_ms)):
            if ms % parent_ms != 0:
                raise ValueError("%s must be multiple of the parent dstream's slide (batch) "
                                 "duration (%d ms)" % (name, parent_ms))
        return window_ms, slide_ms

    def window(self, windowDuration, slideDuration=None):
        """The elements of the last ``windowDuration`` seconds, every
        ``slideDuration`` seconds (default: every batch)."""
        return self._wrap(self._native().window(*self._window_ms(windowDuration, slideDuration)))

    def reduceByWindow(self, reduceFunc, invReduceFunc, windowDuration, slideDuration):
        """``reduceFunc`` over each window's elements (incrementally, with
        ``invReduceFunc``, if it is given)."""
        keyed = self.map(lambda x: (1, x))
        reduced = keyed.reduceByKeyAndWindow(reduceFunc, invReduceFunc, windowDuration,
                                             slideDuration, 1)
        return reduced.map(lambda kv: kv[1])

    def countByWindow(self, windowDuration, slideDuration):
        """How many elements each window has."""
        return self.map(lambda x: 1).reduceByWindow(operator.add, operator.sub,
                                                    windowDuration, slideDuration)

    def countByValueAndWindow(self, windowDuration, slideDuration, numPartitions=None):
        """``(element, count)`` for each distinct element of each window."""
        keyed = self.map(lambda x: (x, 1))
        counted = keyed.reduceByKeyAndWindow(operator.add, operator.sub, windowDuration,
                                             slideDuration, numPartitions)
        return counted.filter(lambda kv: kv[1] > 0)

    def groupByKeyAndWindow(self, windowDuration, slideDuration, numPartitions=None):
        """``(k, values)`` for each key of each window, oldest values first."""
        return self.window(windowDuration, slideDuration).groupByKey(numPartitions)

    def reduceByKeyAndWindow(self, func, invFunc, windowDuration, slideDuration=None,
                             numPartitions=None, filterFunc=None):
        """``func`` over the values of each key in each window.

        With ``invFunc`` (``invFunc(total, leaving)`` undoes ``func``) each window is
        computed from the previous one: the batches entering are added and those
        leaving are taken out, so the cost follows the slide, not the window; this
        needs ``ssc.checkpoint(directory)``. ``filterFunc(pair)`` then drops keys (for
        example those whose count fell to 0).

        As in PySpark, a key whose values have all left a window shorter than five
        slides is gone from it; a longer window keeps it (with, say, a count of 0)
        unless ``filterFunc`` drops it."""
        window_ms, slide_ms = self._window_ms(windowDuration, slideDuration)
        n = self._default_partitions(numPartitions)
        reduced = self.reduceByKey(func, n)
        if invFunc is None:
            return reduced.window(windowDuration, slideDuration).reduceByKey(func, n)
        if window_ms >= 5 * slide_ms:
            return self._wrap(reduced._native().reduce_by_key_and_window_inv(
                func, invFunc, window_ms, slide_ms, n, filterFunc))
        # PySpark reduces a window shorter than five slides afresh from its batches, so
        # only keys with values in the window appear, and filterFunc only filters what
        # is output. Incrementally, the same: each value carries how many of the
        # window's batches hold its key, and a key that none holds any more is dropped.
        def add(a, b):
            return (func(a[0], b[0]), a[1] + b[1])

        def subtract(a, b):
            return (invFunc(a[0], b[0]), a[1] - b[1])

        counted = reduced.mapValues(lambda v: (v, 1))
        windowed = self._wrap(counted._native().reduce_by_key_and_window_inv(
            add, subtract, window_ms, slide_ms, n, lambda kv: kv[1][1] > 0))
        values = windowed.mapValues(lambda vn: vn[0])
        return values if filterFunc is None else values.filter(filterFunc)

    def slice(self, begin, end):
        """The RDDs of the batches from ``begin`` to ``end`` (``datetime``s or seconds
        since the epoch) that this stream still remembers."""
        return [self._rdd(native) for _, native in
                self._native().slice(_to_millis(begin), _to_millis(end))]

    def __repr__(self):
        return "<dstream.streaming.DStream>"
