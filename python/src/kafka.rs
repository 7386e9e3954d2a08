//! Kafka from Python (feature `kafka`): the engine's direct stream, whose records
//! reach Python as raw `bytes` for `KafkaUtils` to decode, and `write_to_kafka`.
//!
//! A `kafkaParams` dict is read as PySpark's direct stream reads it: the brokers come
//! from `bootstrap.servers` (or the older `metadata.broker.list`), `auto.offset.reset`
//! chooses where a new stream starts, `group.id` names the consumer group, and every
//! other key is handed to librdkafka as it is.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use dstream::kafka::{
    KafkaConfig, KafkaMessage, KafkaRecord, KafkaSource, KafkaStream, OffsetReset, StartingOffsets,
    TopicPartition,
};
use dstream::{
    ManualClock, Parallelism, PartitionIter, Rdd, RddQueue, StreamingConfig, StreamingContext, Time,
};
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};

use crate::context::PyContext;
use crate::failure::{OrFail, to_py_err};
use crate::object::PyObj;
use crate::stream::PyStream;

/// Registers the Kafka functions and classes in the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKafkaStream>()?;
    m.add_function(wrap_pyfunction!(kafka_direct_stream, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_write, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_create_topic, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_produce, m)?)?;
    Ok(())
}

/// What a `kafkaParams` dict says, in the engine's terms.
struct Params {
    config: KafkaConfig,
    /// `auto.offset.reset`, if given.
    reset: Option<OffsetReset>,
    /// `group.id`, if given.
    group: Option<String>,
}

/// Reads a `kafkaParams` dict (see the module's documentation).
fn parse_params(params: HashMap<String, String>) -> PyResult<Params> {
    // Sorted, so that librdkafka sees the settings in the same order in every run.
    let mut params: BTreeMap<String, String> = params.into_iter().collect();
    let servers = params.remove("bootstrap.servers");
    // The 0.8 consumer's name for the same thing; both may be given.
    let brokers = params.remove("metadata.broker.list");
    let servers = servers
        .or(brokers)
        .filter(|servers| !servers.trim().is_empty())
        .ok_or_else(|| {
            PyValueError::new_err(
                "kafkaParams must name the brokers: set \"metadata.broker.list\" (or \"bootstrap.servers\") to \"host:port[,host:port...]\"",
            )
        })?;
    let reset = params
        .remove("auto.offset.reset")
        .map(|reset| match reset.trim().to_ascii_lowercase().as_str() {
            "smallest" | "earliest" => Ok(OffsetReset::Earliest),
            "largest" | "latest" => Ok(OffsetReset::Latest),
            _ => Err(PyValueError::new_err(format!(
                "kafkaParams[\"auto.offset.reset\"] must be \"smallest\" (or \"earliest\") or \"largest\" (or \"latest\"), not {reset:?}"
            ))),
        })
        .transpose()?;
    let group = params.remove("group.id");
    let config = params
        .into_iter()
        .fold(KafkaConfig::new(servers), |config, (key, value)| {
            config.set(key, value)
        });
    Ok(Params {
        config,
        reset,
        group,
    })
}

/// A Kafka direct stream: its records, for Python, and the offset ranges each batch
/// read.
#[pyclass(name = "KafkaStream", module = "dstream._native", frozen)]
pub struct PyKafkaStream {
    stream: KafkaStream,
}

#[pymethods]
impl PyKafkaStream {
    /// The records as `(key, value)` tuples, or with `metadata` as
    /// `(topic, partition, offset, key, value)`; keys and values are `bytes`, or
    /// `None` where the record has none.
    fn records(&self, metadata: bool) -> PyStream {
        PyStream::new(
            self.stream
                .records()
                .map_partitions(move |input| to_python(input, metadata)),
        )
    }

    /// The `(topic, partition, from_offset, until_offset)` ranges the batch at
    /// `time_ms` read, one per partition; `None` for a batch the stream did not cut
    /// (or one too long ago to be remembered).
    fn offset_ranges(&self, time_ms: i64) -> Option<Vec<(String, i32, i64, i64)>> {
        self.stream
            .offset_ranges(Time::from_millis(time_ms))
            .map(|ranges| {
                ranges
                    .into_iter()
                    .map(|r| (r.topic, r.partition, r.from_offset, r.until_offset))
                    .collect()
            })
    }
}

/// One partition of records as Python tuples (see [`PyKafkaStream::records`]).
fn to_python(input: PartitionIter<KafkaRecord>, metadata: bool) -> Vec<PyObj> {
    // Read from Kafka to the end before taking the GIL (see `partition.rs`).
    let records: Vec<KafkaRecord> = input.collect();
    Python::attach(|py| {
        let payload = |bytes: &Option<Vec<u8>>| match bytes {
            Some(bytes) => PyBytes::new(py, bytes).into_any(),
            None => py.None().into_bound(py),
        };
        // The records of a partition share their topic: one `str` for all of them.
        let mut topic: Option<(&str, Bound<'_, PyAny>)> = None;
        let mut out = Vec::with_capacity(records.len());
        for record in &records {
            let tuple = if metadata {
                let name = match &topic {
                    Some((name, obj)) if *name == record.topic => obj.clone(),
                    _ => {
                        let obj = PyString::new(py, &record.topic).into_any();
                        topic = Some((&record.topic, obj.clone()));
                        obj
                    }
                };
                let partition = record.partition.into_bound_py_any(py).or_fail(py);
                let offset = record.offset.into_bound_py_any(py).or_fail(py);
                PyTuple::new(
                    py,
                    [
                        name,
                        partition,
                        offset,
                        payload(&record.key),
                        payload(&record.value),
                    ],
                )
            } else {
                PyTuple::new(py, [payload(&record.key), payload(&record.value)])
            };
            out.push(PyObj::new(tuple.or_fail(py).into_any()));
        }
        out
    })
}

/// The engine's Kafka direct stream of `topics` for `context`.
///
/// `from_offsets` lists `(topic, partition, offset)` starting points; the partitions
/// it does not list start where `auto.offset.reset` says (default: the latest
/// offset, as Spark's `largest`). A stream recovered from a checkpoint starts from
/// the checkpoint's offsets instead.
#[pyfunction]
#[pyo3(signature = (context, topics, kafka_params, from_offsets, max_rate_per_partition = None))]
fn kafka_direct_stream(
    context: PyRef<'_, PyContext>,
    topics: Vec<String>,
    kafka_params: HashMap<String, String>,
    from_offsets: Vec<(String, i32, i64)>,
    max_rate_per_partition: Option<u64>,
) -> PyResult<PyKafkaStream> {
    let params = parse_params(kafka_params)?;
    if let Some((topic, _, _)) = from_offsets.iter().find(|(t, _, _)| !topics.contains(t)) {
        // The engine would read only `topics` and never use such an offset.
        return Err(PyValueError::new_err(format!(
            "fromOffsets names topic {topic:?}, which is not among the topics {topics:?}"
        )));
    }
    let reset = params.reset.unwrap_or(OffsetReset::Latest);
    let starting = if from_offsets.is_empty() {
        match reset {
            OffsetReset::Earliest => StartingOffsets::Earliest,
            OffsetReset::Latest => StartingOffsets::Latest,
        }
    } else {
        let offsets = from_offsets
            .into_iter()
            .map(|(topic, partition, offset)| (TopicPartition::new(topic, partition), offset))
            .collect();
        StartingOffsets::Explicit(offsets, reset)
    };
    let mut source = KafkaSource::new(&params.config, topics).starting_offsets(starting);
    if let Some(group) = params.group {
        source = source.group_id(group);
    }
    // Spark's `maxRatePerPartition` of 0 means no limit.
    if let Some(rate) = max_rate_per_partition.filter(|&rate| rate > 0) {
        source = source.max_rate_per_partition(rate);
    }
    let stream = context.ssc.kafka_stream(source).map_err(to_py_err)?;
    Ok(PyKafkaStream { stream })
}

/// The bytes of a key or value to send: `bytes`, `bytearray`, or `str` as UTF-8;
/// `None` for none.
fn payload_bytes(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<Vec<u8>>> {
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Some(bytes.as_bytes().to_vec()));
    }
    if let Ok(bytes) = obj.cast::<PyByteArray>() {
        return Ok(Some(bytes.to_vec()));
    }
    if let Ok(text) = obj.cast::<PyString>() {
        return Ok(Some(text.to_str()?.as_bytes().to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "writeToKafka sends str, bytes or None as a {what}, not {}: convert it first (for example with str() or json.dumps())",
        obj.get_type()
            .name()
            .map_or_else(|_| "an unknown type".to_string(), |name| name.to_string())
    )))
}

/// A record to send: a `(key, value)` pair, or a value alone.
fn message(record: &Bound<'_, PyAny>) -> PyResult<KafkaMessage> {
    let pair = match record.cast::<PyTuple>() {
        Ok(tuple) if tuple.len() == 2 => Some((tuple.get_item(0)?, tuple.get_item(1)?)),
        _ => match record.cast::<PyList>() {
            Ok(list) if list.len() == 2 => Some((list.get_item(0)?, list.get_item(1)?)),
            _ => None,
        },
    };
    Ok(match pair {
        Some((key, value)) => KafkaMessage {
            key: payload_bytes(&key, "key")?,
            value: payload_bytes(&value, "value")?,
        },
        None => KafkaMessage {
            key: None,
            value: payload_bytes(record, "value")?,
        },
    })
}

/// Sends every record of each batch of `stream` to `topic` (see
/// `DStream::write_to_kafka`): a `(key, value)` pair, or a value alone, each `str`
/// (sent as UTF-8), `bytes` or `None`.
#[pyfunction]
fn kafka_write(
    stream: PyRef<'_, PyStream>,
    topic: String,
    kafka_params: HashMap<String, String>,
) -> PyResult<()> {
    let params = parse_params(kafka_params)?;
    let messages = stream.stream.map_partitions(|input| {
        let records: Vec<PyObj> = input.collect();
        Python::attach(|py| {
            let out = records
                .iter()
                .map(|record| message(record.bind(py)))
                .collect::<PyResult<Vec<KafkaMessage>>>()
                .or_fail(py);
            // Dropped here, with the GIL, rather than queued for a later decref.
            drop(records);
            out
        })
    });
    messages
        .write_to_kafka(&params.config, topic, |message| message)
        .map_err(to_py_err)
}

/// Creates `topic` with `partitions` partitions unless it exists; `True` if it was
/// created.
#[pyfunction]
fn kafka_create_topic(
    py: Python<'_>,
    kafka_params: HashMap<String, String>,
    topic: String,
    partitions: i32,
) -> PyResult<bool> {
    if partitions < 1 {
        return Err(PyValueError::new_err(format!(
            "a topic needs at least one partition, not {partitions}"
        )));
    }
    let params = parse_params(kafka_params)?;
    py.detach(|| dstream::kafka::create_topic(&params.config, &topic, partitions))
        .map_err(to_py_err)
}

/// A key or a value as Python passes it: `bytes`, or `None`.
type Payload = Option<Vec<u8>>;

/// Sends `messages` (`(key, value)` pairs of `bytes` or `None`) to `topic` with the
/// engine's writer, and returns once the broker has acknowledged every one. For
/// tests: it runs one batch of a private context.
#[pyfunction]
fn kafka_produce(
    py: Python<'_>,
    kafka_params: HashMap<String, String>,
    topic: String,
    messages: Vec<(Payload, Payload)>,
) -> PyResult<()> {
    let params = parse_params(kafka_params)?;
    let messages = messages
        .into_iter()
        .map(|(key, value)| KafkaMessage { key, value })
        .collect();
    py.detach(|| produce(&params.config, &topic, messages))
        .map_err(to_py_err)
}

fn produce(config: &KafkaConfig, topic: &str, messages: Vec<KafkaMessage>) -> dstream::Result<()> {
    // A manual clock: the one batch runs when told, not after a batch interval.
    let clock = ManualClock::new(Time::from_millis(0));
    let ssc = StreamingContext::builder()
        .config(StreamingConfig {
            parallelism: Parallelism::threads_exactly(1),
            batch_interval: Duration::from_secs(1),
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
        .build()?;
    let queue = RddQueue::new();
    queue.push(Rdd::from_vec(messages, 1));
    ssc.queue_stream(&queue, true, None)
        .write_to_kafka(config, topic, |message| message)?;
    ssc.start()?;
    clock.advance(Duration::from_secs(1));
    let sent = ssc.await_batch(Time::from_millis(1000), Duration::from_secs(60));
    let stopped = ssc.stop(false);
    // The batch's own error says more than the stop's.
    sent?;
    stopped
}
