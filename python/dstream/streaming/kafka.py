"""Kafka direct streams, as PySpark 2's ``pyspark.streaming.kafka``.

``KafkaUtils.createDirectStream`` reads Kafka topics the *direct* way (no receiver):
at each batch the stream decides, per partition, the offsets ``[from, until)`` the
batch reads, one RDD partition per Kafka partition, which reads its range when the
batch's job computes it, on the engine's thread pool. Records arrive as
``(key, value)`` pairs decoded by ``keyDecoder`` and ``valueDecoder`` (UTF-8 text by
default), or as whatever ``messageHandler`` makes of each
:class:`KafkaMessageAndMetadata`::

    from dstream import SparkContext
    from dstream.streaming import StreamingContext
    from dstream.streaming.kafka import KafkaUtils

    ssc = StreamingContext(SparkContext("local[*]", "words"), 2)
    lines = KafkaUtils.createDirectStream(
        ssc, ["words"], {"metadata.broker.list": "127.0.0.1:9092"}).map(lambda kv: kv[1])
    lines.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).pprint()
    ssc.start()
    ssc.awaitTermination()

The stream's offsets are saved in checkpoints: a program restarted with
``StreamingContext.getOrCreate`` reads the batches that had not finished again, exactly,
and goes on where it stopped, so state (``updateStateByKey``, windows) counts every
record once.

The client is librdkafka, not the JVM's: ``kafkaParams`` keys other than the few this
module reads are librdkafka properties. Kafka needs the native module built with the
``kafka`` feature (see :data:`BUILD_HINT`).
"""

import warnings

from dstream import _native
from dstream.rdd import RDD
from dstream.streaming.dstream import DStream, _rdd_result, _time, _with_time

__all__ = ['Broker', 'KafkaMessageAndMetadata', 'KafkaUtils', 'OffsetRange',
           'TopicAndPartition', 'utf8_decoder']

#: How to get a native module with Kafka support.
BUILD_HINT = ('dstream was built without Kafka support: rebuild it with the "kafka" '
              'feature, with MATURIN_PEP517_ARGS="--features kafka" pip install . '
              'or maturin develop --features kafka (librdkafka is compiled with it, which '
              'needs a C/C++ compiler)')

# The Spark setting that caps how much one batch reads from one partition.
_MAX_RATE = "spark.streaming.kafka.maxRatePerPartition"


def _kafka_native():
    """The native module, if it was built with Kafka; else a clear error."""
    if not hasattr(_native, "kafka_direct_stream"):
        raise RuntimeError(BUILD_HINT)
    return _native


def utf8_decoder(s):
    """The default key and value decoder: ``bytes`` to ``str`` as UTF-8; ``None`` (a
    record without a key, or a tombstone) stays ``None``."""
    return None if s is None else s.decode("utf-8")


def _params(kafkaParams):
    """``kafkaParams`` as the native side takes it: ``str`` to ``str``."""
    if not isinstance(kafkaParams, dict):
        raise TypeError("kafkaParams should be dict")
    params = {}
    for key, value in kafkaParams.items():
        if not isinstance(key, str):
            raise TypeError("kafkaParams keys must be str, got %r" % (key,))
        if key.startswith("zookeeper."):
            # The direct approach never talks to ZooKeeper; librdkafka would refuse them.
            warnings.warn("kafkaParams[%r] is ignored: the direct stream does not use "
                          "ZooKeeper" % key, RuntimeWarning, stacklevel=3)
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        params[key] = value if isinstance(value, str) else str(value)
    return params


def _offsets(fromOffsets):
    """``fromOffsets`` as ``(topic, partition, offset)`` triples."""
    if not isinstance(fromOffsets, dict):
        raise TypeError("fromOffsets should be dict (TopicAndPartition -> offset)")
    offsets = []
    for tp, offset in fromOffsets.items():
        if isinstance(tp, TopicAndPartition):
            topic, partition = tp._topic, tp._partition
        elif isinstance(tp, tuple) and len(tp) == 2:
            topic, partition = tp
        else:
            raise TypeError("fromOffsets keys must be TopicAndPartition objects, got %r"
                            % (tp,))
        offsets.append((str(topic), int(partition), int(offset)))
    return offsets


def _max_rate(ssc):
    rate = ssc.sparkContext._conf.get(_MAX_RATE)
    if rate is None:
        return None
    try:
        rate = int(rate)
    except ValueError:
        raise ValueError("%s must be a whole number of records per second, not %r"
                         % (_MAX_RATE, rate)) from None
    if rate < 0:
        raise ValueError("%s must not be negative, got %d" % (_MAX_RATE, rate))
    return rate


class KafkaUtils(object):
    """Kafka inputs (and, as dstream's addition, a Kafka output), as PySpark 2's."""

    @staticmethod
    def createStream(ssc, zkQuorum, groupId, topics, kafkaParams=None,
                     storageLevel=None, keyDecoder=utf8_decoder, valueDecoder=utf8_decoder):
        """The receiver-based stream of PySpark, through ZooKeeper: not supported by
        dstream, which reads Kafka the direct way only. Use :meth:`createDirectStream`
        with ``{"metadata.broker.list": brokers, "group.id": groupId}``."""
        raise NotImplementedError(
            "KafkaUtils.createStream (the receiver-based stream, through ZooKeeper) is not "
            "supported: use KafkaUtils.createDirectStream(ssc, topics, "
            "{\"metadata.broker.list\": \"host:port\"}), which reads the brokers directly "
            "and recovers exactly from checkpoints")

    @staticmethod
    def createDirectStream(ssc, topics, kafkaParams, fromOffsets=None,
                           keyDecoder=utf8_decoder, valueDecoder=utf8_decoder,
                           messageHandler=None):
        """A stream of the records of ``topics``, read from the brokers directly.

        No receiver is involved: at each batch the stream reads, per
        partition, the offsets from where the last batch stopped to the latest offset
        (capped by the SparkConf setting ``spark.streaming.kafka.maxRatePerPartition``,
        records per second per partition), one RDD partition per Kafka partition.

        The consumed offsets are tracked by the stream itself, not by ZooKeeper or the
        consumer group. They are saved in checkpoints: a program restarted with
        ``StreamingContext.getOrCreate`` reads unfinished batches again and continues
        where it stopped. The offsets each batch read are given by ``offsetRanges()`` of
        the RDDs that ``foreachRDD`` and ``transform`` of this stream hand over.

        :param ssc: the StreamingContext.
        :param topics: the names of the topics to read (a list).
        :param kafkaParams: a dict: ``"metadata.broker.list"`` (or
                            ``"bootstrap.servers"``) names the brokers;
                            ``"auto.offset.reset"`` is ``"largest"`` (default: only new
                            records) or ``"smallest"`` (everything on the broker);
                            ``"group.id"`` names the consumer group; any other key is a
                            librdkafka property (keys ``"zookeeper.*"`` are ignored).
        :param fromOffsets: where a new stream starts (inclusive), per partition: a dict
                            of :class:`TopicAndPartition` to offset. Unlike Spark, the
                            partitions of ``topics`` it leaves out are read too, from
                            where ``"auto.offset.reset"`` says.
        :param keyDecoder: makes the key of each record from its ``bytes`` (or
                           ``None``); default :func:`utf8_decoder`.
        :param valueDecoder: makes the value of each record from its ``bytes`` (or
                             ``None``); default :func:`utf8_decoder`.
        :param messageHandler: if given, each record is
                               ``messageHandler(KafkaMessageAndMetadata)`` instead of a
                               ``(key, value)`` pair: topic, partition and offset too.
        :return: a :class:`KafkaDStream`.
        """
        if fromOffsets is None:
            fromOffsets = dict()
        if not isinstance(topics, list):
            raise TypeError("topics should be list")
        if not isinstance(kafkaParams, dict):
            raise TypeError("kafkaParams should be dict")
        if not topics or not all(isinstance(t, str) and t for t in topics):
            raise ValueError("topics should be a non-empty list of topic names, got %r"
                             % (topics,))
        native = _kafka_native()

        if messageHandler is None:
            def decode(record):
                key, value = record
                return (keyDecoder(key), valueDecoder(value))
        else:
            def decode(record):
                return messageHandler(
                    KafkaMessageAndMetadata(*record, _decoders=(keyDecoder, valueDecoder)))

        kafka = native.kafka_direct_stream(
            ssc._jssc, list(dict.fromkeys(topics)), _params(kafkaParams),
            _offsets(fromOffsets), _max_rate(ssc))
        records = DStream(kafka.records(messageHandler is not None), ssc)
        return KafkaDStream(kafka, records, lambda _, it: map(decode, it), ssc)

    @staticmethod
    def createTopic(kafkaParams, topic, numPartitions=1):
        """Creates ``topic`` with ``numPartitions`` partitions (replication factor 1)
        unless it exists; returns whether it was created. Brokers that do not create
        topics on first use need it before anything is produced (dstream's addition).

        :param kafkaParams: names the brokers, as for :meth:`createDirectStream`.
        """
        return _kafka_native().kafka_create_topic(_params(kafkaParams), str(topic),
                                                  int(numPartitions))

    @staticmethod
    def writeToKafka(dstream, topic, kafkaParams):
        """Sends every record of each batch of ``dstream`` to ``topic`` (dstream's
        addition). A record is a ``(key, value)`` pair or a value alone; keys and values
        are ``str`` (sent as UTF-8), ``bytes`` or ``None``. A batch counts as done once
        the broker has acknowledged all its records; a record that cannot be delivered
        fails the batch, and its exception comes out of ``awaitTermination``. Delivery is
        at-least-once: a batch run again after a restart sends its records again.

        :param kafkaParams: names the brokers, as for :meth:`createDirectStream`; other
                            keys are librdkafka producer properties.
        """
        if not isinstance(dstream, DStream):
            raise TypeError("writeToKafka writes a DStream, not %s" % type(dstream).__name__)
        _kafka_native().kafka_write(dstream._native(), str(topic), _params(kafkaParams))


class OffsetRange(object):
    """The offsets ``[fromOffset, untilOffset)`` of one partition that a batch read."""

    def __init__(self, topic, partition, fromOffset, untilOffset):
        """:param topic: the topic's name.
        :param partition: the partition's number, from 0.
        :param fromOffset: the first offset read.
        :param untilOffset: one past the last offset read: where the next batch starts.
        """
        self.topic = topic
        self.partition = partition
        self.fromOffset = fromOffset
        self.untilOffset = untilOffset

    def _key(self):
        return (self.topic, self.partition, self.fromOffset, self.untilOffset)

    def __eq__(self, other):
        return isinstance(other, OffsetRange) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        # PySpark's text, unbalanced bracket included, for code that parses it.
        return "OffsetRange(topic: %s, partition: %d, range: [%d -> %d]" % self._key()

    __repr__ = __str__


class TopicAndPartition(object):
    """One partition of one topic: the keys of ``fromOffsets``."""

    def __init__(self, topic, partition):
        """:param topic: the topic's name.
        :param partition: the partition's number, from 0.
        """
        self._topic = topic
        self._partition = partition

    def __eq__(self, other):
        return (isinstance(other, TopicAndPartition)
                and (self._topic, self._partition) == (other._topic, other._partition))

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self._topic, self._partition))

    def __repr__(self):
        return "TopicAndPartition(%r, %d)" % (self._topic, self._partition)


class Broker(object):
    """A broker's host and port. Kept for PySpark code that builds one; the direct
    stream finds the brokers it needs from ``kafkaParams``."""

    def __init__(self, host, port):
        """:param host: the broker's host name.
        :param port: the broker's port.
        """
        self._host = host
        self._port = port


class KafkaRDD(RDD):
    """An RDD of one batch of a Kafka direct stream, which knows the offsets it read."""

    def __init__(self, native, ctx, ranges):
        RDD.__init__(self, native, ctx)
        self._offset_ranges = ranges

    def offsetRanges(self):
        """The offsets this batch read: a list of :class:`OffsetRange`, one per
        partition, empty ones included."""
        return [OffsetRange(*r) for r in self._offset_ranges]


class KafkaDStream(DStream):
    """The stream of :meth:`KafkaUtils.createDirectStream`: its ``foreachRDD`` and
    ``transform`` hand over :class:`KafkaRDD` objects, whose ``offsetRanges()`` are the
    offsets each batch read."""

    def __init__(self, kafka, prev, func, ssc):
        DStream.__init__(self, None, ssc, prev, func)
        self._kafka = kafka

    def _kafka_rdd(self, time_ms, native_rdd):
        ranges = self._kafka.offset_ranges(time_ms) or []
        return KafkaRDD(native_rdd, self._ssc._sc, ranges)

    def foreachRDD(self, func):
        """Calls ``func(rdd)`` or ``func(time, rdd)`` for each batch, with a
        :class:`KafkaRDD`."""
        func = _with_time(func, 1)

        def run(time_ms, native_rdd):
            func(_time(time_ms), self._kafka_rdd(time_ms, native_rdd))

        self._native().foreach_rdd(run)

    def transform(self, func):
        """``func(rdd)`` or ``func(time, rdd)``, returning an RDD, for each batch; the
        RDD handed over is a :class:`KafkaRDD`."""
        func = _with_time(func, 1)

        def run(time_ms, native_rdd):
            return _rdd_result(func(_time(time_ms), self._kafka_rdd(time_ms, native_rdd)),
                               "transform")

        return self._wrap(self._native().transform(run))

    def cache(self):
        """Computes each batch's RDD once, however many operations read it; the cached
        stream still hands over :class:`KafkaRDD` objects."""
        cached = KafkaDStream(self._kafka, None, None, self._ssc)
        cached._native_stream = self._native().cache()
        cached.is_cached = True
        return cached

    def persist(self, storageLevel=None):
        """As ``cache``: dstream keeps data in memory."""
        return self.cache()


class KafkaMessageAndMetadata(object):
    """One record with where it came from, as ``messageHandler`` receives it:
    ``topic``, ``partition``, ``offset``, and ``key`` and ``message`` decoded by the
    stream's ``keyDecoder`` and ``valueDecoder``."""

    def __init__(self, topic, partition, offset, key, message, _decoders=None):
        """:param topic: the topic the record was read from.
        :param partition: the partition it was read from.
        :param offset: its offset in the partition.
        :param key: its key as ``bytes``, or ``None`` when it has none.
        :param message: its value as ``bytes``, or ``None`` for a tombstone.
        """
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self._rawKey = key
        self._rawMessage = message
        self._keyDecoder, self._valueDecoder = _decoders or (utf8_decoder, utf8_decoder)

    def __str__(self):
        return ("KafkaMessageAndMetadata(topic: %s, partition: %d, offset: %d, "
                "key and message...)" % (self.topic, self.partition, self.offset))

    __repr__ = __str__

    def __reduce__(self):
        # The raw bytes travel; the decoders (often lambdas) need not pickle.
        return (KafkaMessageAndMetadata,
                (self.topic, self.partition, self.offset, self._rawKey, self._rawMessage))

    def _set_key_decoder(self, decoder):
        self._keyDecoder = decoder

    def _set_value_decoder(self, decoder):
        self._valueDecoder = decoder

    @property
    def key(self):
        """The key, decoded by the stream's ``keyDecoder``."""
        return self._keyDecoder(self._rawKey)

    @property
    def message(self):
        """The value, decoded by the stream's ``valueDecoder``."""
        return self._valueDecoder(self._rawMessage)
