"""dstream: Spark Streaming's DStream API on a Rust engine for one machine.

PySpark programs run with their imports changed from ``pyspark`` to ``dstream``::

    from dstream import SparkContext
    from dstream.streaming import StreamingContext
"""

__version__ = "0.1.0"

from dstream.context import SparkConf, SparkContext
from dstream.rdd import RDD
from dstream.storagelevel import StorageLevel

__all__ = ["SparkConf", "SparkContext", "RDD", "StorageLevel"]
