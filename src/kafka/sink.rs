//! `write_to_kafka`: an output operation that sends each batch's records to a topic
//! and counts the batch done only when the broker has acknowledged every one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::record::KafkaMessage;
use super::{KafkaConfig, kafka_error};
use crate::dstream::DStream;
use crate::error::Result;
use crate::rdd::{Data, Rdd};

/// How long librdkafka tries to deliver one record before it reports a failure.
const DELIVERY_TIMEOUT_MS: &str = "30000";

/// How long a sender waits when the producer's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// What happened to one batch's records.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    fn fail(&self, error: &KafkaError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| error.to_string());
    }
}

/// Hears librdkafka's delivery reports and counts them against their batch.
struct DeliveryCounter;

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = Arc<Deliveries>;

    fn delivery(&self, result: &DeliveryResult<'_>, deliveries: Arc<Deliveries>) {
        match result {
            Ok(_) => {
                deliveries.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => deliveries.fail(error),
        }
    }
}

type KafkaProducer = ThreadedProducer<DeliveryCounter>;

impl<T: Data> DStream<T> {
    /// Sends every record of each batch to `topic`, as the message `f` makes of it
    /// (feature `kafka`). The partitions of a batch are sent in parallel, and the
    /// batch counts as done only when the broker has acknowledged every record; a
    /// record that cannot be delivered (within 30 s, librdkafka's
    /// `message.timeout.ms`, which [`KafkaConfig::set`] can change) fails the batch
    /// with an error naming the topic, and the context stops with it, as with any
    /// failed output operation.
    ///
    /// Delivery is at-least-once: a batch run again after a crash sends its records
    /// again. Create the topic first ([`create_topic`](super::create_topic)).
    ///
    /// ```no_run
    /// use dstream::kafka::{KafkaConfig, KafkaMessage};
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let counts = ssc.queue_stream(&RddQueue::<(String, u64)>::new(), true, None);
    /// counts.write_to_kafka(&KafkaConfig::from_env(), "word-counts", |(word, count)| {
    ///     KafkaMessage::keyed(word, count.to_string())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_to_kafka(
        &self,
        config: &KafkaConfig,
        topic: impl Into<String>,
        f: impl Fn(T) -> KafkaMessage + Send + Sync + 'static,
    ) -> Result<()> {
        let topic = topic.into();
        let producer: KafkaProducer = config
            .client_config(&[("message.timeout.ms", DELIVERY_TIMEOUT_MS)])
            .create_with_context(DeliveryCounter)
            .map_err(|e| kafka_error(format!("create a producer for topic {topic:?}"), e))?;
        let servers = config.bootstrap_servers().to_string();
        self.register_output("write_to_kafka", move |rdd, _time| {
            write_batch(&producer, &topic, &rdd, &f).map_err(|failure| {
                format!(
                    "write_to_kafka: {failure} (topic {topic:?} at {servers}; check that the topic exists and the broker is reachable)"
                )
            })
        })
    }
}

/// Sends the batch and waits for every acknowledgement.
fn write_batch<T: Data>(
    producer: &KafkaProducer,
    topic: &str,
    rdd: &Rdd<T>,
    f: &(impl Fn(T) -> KafkaMessage + Send + Sync),
) -> std::result::Result<(), String> {
    let deliveries = Arc::new(Deliveries::default());
    let sent = AtomicU64::new(0);
    rdd.foreach_partition(|records| {
        for record in records {
            send(producer, topic, &f(record), &deliveries);
            sent.fetch_add(1, Ordering::Relaxed);
        }
    });
    let flushed = producer.flush(Timeout::Never);
    let sent = sent.into_inner();
    let failed = deliveries.failed.load(Ordering::Relaxed);
    let delivered = deliveries.delivered.load(Ordering::Relaxed);
    if failed > 0 {
        let first = deliveries
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        return Err(format!(
            "{failed} of {sent} record(s) could not be delivered: {first}"
        ));
    }
    flushed.map_err(|e| format!("waiting for acknowledgements failed: {e}"))?;
    if delivered != sent {
        return Err(format!("{delivered} of {sent} record(s) were acknowledged"));
    }
    Ok(())
}

/// Queues one message, waiting while the producer's queue is full.
fn send(
    producer: &KafkaProducer,
    topic: &str,
    message: &KafkaMessage,
    deliveries: &Arc<Deliveries>,
) {
    let mut record: BaseRecord<'_, [u8], [u8], Arc<Deliveries>> =
        BaseRecord::with_opaque_to(topic, deliveries.clone());
    if let Some(key) = &message.key {
        record = record.key(key.as_slice());
    }
    if let Some(value) = &message.value {
        record = record.payload(value.as_slice());
    }
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(QUEUE_FULL_WAIT);
            }
            Err((error, _)) => {
                deliveries.fail(&error);
                return;
            }
        }
    }
}
