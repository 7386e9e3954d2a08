"""``RDD``: an immutable, partitioned collection of Python objects, as PySpark's.

Consecutive element-wise operations (``map``, ``flatMap``, ``filter``, ...) are fused
into one Python function per partition, as PySpark pipelines them, so a chain costs
one pass over the data. Shuffles, unions and actions run in the Rust engine; the GIL
is held only while Python code runs.
"""

import heapq
import operator
from functools import reduce as _reduce

from dstream import _native
from dstream._elementwise import ElementWise

__all__ = ["RDD", "ResultIterable", "portable_hash"]


def portable_hash(x):
    """PySpark's default partition function; dstream partitions by its own stable hash
    of the key, so this is accepted and not called."""
    return hash(x)


class ResultIterable:
    """The values of one key after ``groupByKey`` or ``cogroup``, as PySpark's."""

    def __init__(self, data):
        self.data = data
        self.maxindex = len(data)

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)

    def __eq__(self, other):
        return list(self) == list(other)

    __hash__ = None


def _pipeline(inner, outer):
    return lambda index, it: outer(index, inner(index, it))


class RDD(ElementWise):
    """An immutable, partitioned collection of Python objects.

    >>> from dstream import SparkContext
    >>> sc = SparkContext("local[2]", "doc")
    >>> words = sc.parallelize(["a b", "b"]).flatMap(lambda line: line.split(" "))
    >>> sorted(words.map(lambda w: (w, 1)).reduceByKey(lambda x, y: x + y).collect())
    [('a', 1), ('b', 2)]
    """

    def __init__(self, native, ctx=None, _prev=None, _func=None):
        self._native_rdd = native
        self._prev = _prev
        self._func = _func
        self.ctx = ctx
        self.is_cached = False

    # --- the engine's Rdd behind this one ---------------------------------------

    def _native(self):
        if self._native_rdd is None:
            self._native_rdd = self._prev._native().map_partitions_with_index(self._func)
        return self._native_rdd

    def _wrap(self, native):
        return RDD(native, self.ctx)

    @property
    def context(self):
        """The ``SparkContext`` this RDD was made from, where known."""
        return self.ctx

    # --- element-wise ------------------------------------------------------------

    def mapPartitionsWithIndex(self, f, preservesPartitioning=False):
        """``f(index, iterator) -> iterable`` over each partition."""
        if self._native_rdd is None and not self.is_cached:
            return RDD(None, self.ctx, self._prev, _pipeline(self._func, f))
        return RDD(None, self.ctx, self, f)

    def keys(self):
        """The key of each pair."""
        return self.map(lambda kv: kv[0])

    def values(self):
        """The value of each pair."""
        return self.map(lambda kv: kv[1])

    def keyBy(self, f):
        """``(f(x), x)`` of each element."""
        return self.map(lambda x: (f(x), x))

    # --- partitions --------------------------------------------------------------

    def getNumPartitions(self):
        """How many partitions this RDD has."""
        return self._native().num_partitions()

    def cache(self):
        """Computes the partitions once, the first time they are needed."""
        cached = self._wrap(self._native().cache())
        cached.is_cached = True
        return cached

    def persist(self, storageLevel=None):
        """As ``cache``: dstream keeps data in memory."""
        return self.cache()

    def unpersist(self, blocking=False):
        """Kept for PySpark code; memory is freed when the RDD is no longer used."""
        return self

    def repartition(self, numPartitions):
        """The same elements in ``numPartitions`` partitions."""
        return self._wrap(self._native().repartition(int(numPartitions)))

    def coalesce(self, numPartitions, shuffle=False):
        """As ``repartition``."""
        return self.repartition(numPartitions)

    def union(self, other):
        """The elements of this RDD, then those of ``other``."""
        return self._wrap(self._native().union(other._native()))

    def __add__(self, other):
        return self.union(other)

    def partitionBy(self, numPartitions, partitionFunc=portable_hash):
        """The pairs moved to ``numPartitions`` partitions by their keys: the pair
        ``(k, v)`` goes to partition ``partitionFunc(k) % numPartitions``, or, by
        default, to one chosen by dstream's own stable hash of ``k``."""
        if numPartitions is None:
            numPartitions = self._default_partitions()
        n = int(numPartitions)
        if partitionFunc is portable_hash:
            return self._wrap(self._native().partition_by(n))
        # The user's function places each pair, as PySpark's does: the engine only
        # moves each record to the partition computed here.
        indexed = self.map(lambda kv: (int(partitionFunc(kv[0])) % n, kv))
        return self._wrap(indexed._native().partition_by_index(n))

    def _default_partitions(self):
        return self.getNumPartitions()

    # --- by key ------------------------------------------------------------------

    def combineByKey(self, createCombiner, mergeValue, mergeCombiners, numPartitions=None,
                     partitionFunc=portable_hash):
        """Combines the values of each key: ``createCombiner(v)`` for a key's first
        value in a partition, ``mergeValue(c, v)`` for the next ones, and
        ``mergeCombiners(c1, c2)`` across partitions."""
        return self._combine(createCombiner, mergeValue, mergeCombiners, numPartitions,
                             partitionFunc, "combineByKey")

    def _combine(self, create, merge_value, merge_combiners, numPartitions, partitionFunc,
                 operation):
        if numPartitions is None:
            numPartitions = self._default_partitions()
        return self.mapPartitions(_combine_locally(create, merge_value, operation)) \
            .partitionBy(numPartitions, partitionFunc) \
            .mapPartitions(_merge_combiners(merge_combiners))

    def reduceByKey(self, func, numPartitions=None, partitionFunc=portable_hash):
        """``func`` over the values of each key."""
        return self._combine(lambda x: x, func, func, numPartitions, partitionFunc,
                             "reduceByKey")

    def foldByKey(self, zeroValue, func, numPartitions=None, partitionFunc=portable_hash):
        """``func`` over the values of each key, starting from ``zeroValue``."""
        import copy

        return self.combineByKey(lambda v: func(copy.deepcopy(zeroValue), v), func, func,
                                 numPartitions, partitionFunc)

    def groupByKey(self, numPartitions=None, partitionFunc=portable_hash):
        """``(k, values)`` for each key, values in arrival order."""
        return self._combine(lambda v: [v], _append, _extend, numPartitions, partitionFunc,
                             "groupByKey").mapValues(ResultIterable)

    def cogroup(self, other, numPartitions=None):
        """``(k, (values here, values in other))`` for every key of either."""
        if numPartitions is None:
            # PySpark groups the union of both sides: the partitions of both.
            numPartitions = self.getNumPartitions() + other.getNumPartitions()
        grouped = self._wrap(self._native().cogroup(other._native(), int(numPartitions)))
        return grouped.mapValues(lambda vw: (ResultIterable(vw[0]), ResultIterable(vw[1])))

    def groupWith(self, other):
        """As ``cogroup``."""
        return self.cogroup(other)

    def join(self, other, numPartitions=None):
        """``(k, (v, w))`` for each pair of values of a key found in both."""
        return self._native_cogroup(other, numPartitions).flatMapValues(
            lambda vw: [(v, w) for v in vw[0] for w in vw[1]])

    def leftOuterJoin(self, other, numPartitions=None):
        """As ``join``, keeping keys of this RDD only, with ``None`` for no match."""
        return self._native_cogroup(other, numPartitions).flatMapValues(
            lambda vw: [(v, w) for v in vw[0] for w in (vw[1] or [None])])

    def rightOuterJoin(self, other, numPartitions=None):
        """As ``join``, keeping keys of ``other`` only, with ``None`` for no match."""
        return self._native_cogroup(other, numPartitions).flatMapValues(
            lambda vw: [(v, w) for v in (vw[0] or [None]) for w in vw[1]])

    def fullOuterJoin(self, other, numPartitions=None):
        """As ``join``, keeping the keys of both, with ``None`` for no match."""
        return self._native_cogroup(other, numPartitions).flatMapValues(
            lambda vw: [(v, w) for v in (vw[0] or [None]) for w in (vw[1] or [None])])

    def _native_cogroup(self, other, numPartitions):
        if numPartitions is None:
            # PySpark groups the union of both sides: the partitions of both.
            numPartitions = self.getNumPartitions() + other.getNumPartitions()
        return self._wrap(self._native().cogroup(other._native(), int(numPartitions)))

    def distinct(self, numPartitions=None):
        """Each distinct element once."""
        return self.map(lambda x: (x, None)).reduceByKey(lambda x, _: x, numPartitions).keys()

    def sortBy(self, keyfunc, ascending=True, numPartitions=None):
        """The elements sorted by ``keyfunc(x)``, in order across partitions."""
        if numPartitions is None:
            numPartitions = self._default_partitions()
        ordered = sorted(self.collect(), key=keyfunc, reverse=not ascending)
        return self._wrap(_native.parallelize(ordered, max(1, int(numPartitions))))

    def sortByKey(self, ascending=True, numPartitions=None, keyfunc=lambda x: x):
        """The pairs sorted by ``keyfunc(key)``."""
        return self.sortBy(lambda kv: keyfunc(kv[0]), ascending, numPartitions)

    # --- actions -----------------------------------------------------------------

    def collect(self):
        """Every element, in partition order."""
        return self._native().collect()

    def count(self):
        """How many elements there are."""
        return self._native().count()

    def take(self, num):
        """The first ``num`` elements."""
        return self._native().take(int(num))

    def first(self):
        """The first element; ``ValueError`` if there is none."""
        taken = self.take(1)
        if not taken:
            raise ValueError("RDD is empty")
        return taken[0]

    def isEmpty(self):
        """Whether there are no elements."""
        return self._native().is_empty()

    def foreach(self, f):
        """Calls ``f(x)`` for each element."""
        def run(it):
            for x in it:
                f(x)
            return ()

        self.mapPartitions(run).count()

    def foreachPartition(self, f):
        """Calls ``f(iterator)`` for each partition."""
        def run(it):
            f(it)
            return ()

        self.mapPartitions(run).count()

    def reduce(self, f):
        """``f`` over all elements; ``ValueError`` if there are none."""
        def per_partition(it):
            # The first element starts the fold: an empty partition adds nothing.
            it = iter(it)
            marker = object()
            first = next(it, marker)
            return [] if first is marker else [_reduce(f, it, first)]

        partial = self.mapPartitions(per_partition).collect()
        if not partial:
            raise ValueError("Can not reduce() empty RDD")
        return _reduce(f, partial)

    def fold(self, zeroValue, op):
        """``op`` over all elements, starting from ``zeroValue`` in each partition."""
        partial = self.mapPartitions(lambda it: [_reduce(op, it, zeroValue)]).collect()
        return _reduce(op, partial, zeroValue)

    def sum(self):
        """The sum of the elements."""
        return self.fold(0, operator.add)

    def max(self, key=None):
        """The largest element."""
        return self.reduce(lambda a, b: max(a, b, key=key) if key else max(a, b))

    def min(self, key=None):
        """The smallest element."""
        return self.reduce(lambda a, b: min(a, b, key=key) if key else min(a, b))

    def mean(self):
        """The mean of the elements."""
        values = self.collect()
        return sum(values) / len(values) if values else float("nan")

    def top(self, num, key=None):
        """The ``num`` largest elements, largest first."""
        return heapq.nlargest(num, self.collect(), key=key)

    def takeOrdered(self, num, key=None):
        """The ``num`` smallest elements, smallest first."""
        return heapq.nsmallest(num, self.collect(), key=key)

    def countByValue(self):
        """``{element: count}``."""
        counts = {}
        for x in self.collect():
            counts[x] = counts.get(x, 0) + 1
        return counts

    def countByKey(self):
        """``{key: count}``."""
        return self.map(lambda kv: kv[0]).countByValue()

    def collectAsMap(self):
        """``{key: value}`` of the pairs."""
        return dict(self.collect())

    def saveAsTextFile(self, path, compressionCodecClass=None):
        """Writes ``str()`` of each element, one per line, as ``path/part-NNNNN`` files
        and ``path/_SUCCESS``, as PySpark."""
        self._native().save_as_text_file(str(path))

    def __repr__(self):
        return "<dstream.RDD with %d partitions>" % self.getNumPartitions()


def _append(values, value):
    values.append(value)
    return values


def _extend(values, more):
    values.extend(more)
    return values


_UNPACKING = ("too many values to unpack", "not enough values to unpack", "cannot unpack")


def _combine_locally(create, merge_value, operation):
    def combine(iterator):
        merged = {}
        try:
            for k, v in iterator:
                merged[k] = merge_value(merged[k], v) if k in merged else create(v)
        except (TypeError, ValueError) as err:
            # Raised by the unpacking above, not by a user function it called.
            if err.__traceback__.tb_next is None and str(err).startswith(_UNPACKING):
                raise type(err)(
                    "%s works on (key, value) pairs, but a record is not one (%s): map each "
                    "record to a 2-tuple first" % (operation, err)) from None
            raise
        return merged.items()

    return combine


def _merge_combiners(merge):
    def combine(iterator):
        merged = {}
        for k, c in iterator:
            merged[k] = merge(merged[k], c) if k in merged else c
        return merged.items()

    return combine
