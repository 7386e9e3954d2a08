"""The element-wise operations that ``RDD`` and ``DStream`` share, as PySpark's do: each
is one partition function handed to ``mapPartitionsWithIndex``, which fuses consecutive
ones into a single pass over each partition."""

import itertools

__all__ = ["ElementWise"]


class ElementWise:
    """Element-wise operations in terms of ``mapPartitionsWithIndex``."""

    def mapPartitionsWithIndex(self, f, preservesPartitioning=False):
        raise NotImplementedError

    def mapPartitions(self, f, preservesPartitioning=False):
        """``f(iterator) -> iterable`` over each partition."""
        return self.mapPartitionsWithIndex(lambda _, it: f(it))

    def map(self, f, preservesPartitioning=False):
        """``f(x)`` of each element."""
        return self.mapPartitionsWithIndex(lambda _, it: map(f, it))

    def flatMap(self, f, preservesPartitioning=False):
        """The elements of ``f(x)`` for each element."""
        return self.mapPartitionsWithIndex(
            lambda _, it: itertools.chain.from_iterable(map(f, it)))

    def filter(self, f):
        """The elements for which ``f(x)`` is true."""
        return self.mapPartitionsWithIndex(lambda _, it: filter(f, it))

    def glom(self):
        """Each partition as one list."""
        return self.mapPartitionsWithIndex(lambda _, it: [list(it)])

    def mapValues(self, f):
        """``(k, f(v))`` of each pair."""
        return self.map(lambda kv: (kv[0], f(kv[1])))

    def flatMapValues(self, f):
        """``(k, x)`` for each ``x`` of ``f(v)``."""
        return self.flatMap(lambda kv: ((kv[0], x) for x in f(kv[1])))
