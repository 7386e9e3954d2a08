"""Streaming: ``StreamingContext`` and ``DStream``, as ``pyspark.streaming``."""

from dstream.streaming.context import ManualClock, StreamingContext
from dstream.streaming.dstream import DStream
from dstream.streaming.listener import StreamingListener

__all__ = ["StreamingContext", "DStream", "StreamingListener", "ManualClock"]
