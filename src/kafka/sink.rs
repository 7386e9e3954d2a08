//! `write_to_kafka`: an output operation that sends each batch's records to a topic
//! and counts the batch done only when the broker has acknowledged every one.

use std::sync::Arc;

use rdkafka::producer::Producer;
use rdkafka::util::Timeout;

use super::delivery::{CountingProducer, Deliveries, DeliveryCounter};
use super::record::KafkaMessage;
use super::{KafkaConfig, kafka_error};
use crate::dstream::DStream;
use crate::error::Result;
use crate::rdd::{Data, Rdd};

/// How long librdkafka tries to deliver one record before it reports a failure.
const DELIVERY_TIMEOUT_MS: &str = "30000";

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
        let producer: CountingProducer = config
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
    producer: &CountingProducer,
    topic: &str,
    rdd: &Rdd<T>,
    f: &(impl Fn(T) -> KafkaMessage + Send + Sync),
) -> std::result::Result<(), String> {
    let deliveries = Arc::new(Deliveries::default());
    rdd.foreach_partition(|records| {
        for record in records {
            let message = f(record);
            let mut out = deliveries.record(topic);
            if let Some(key) = &message.key {
                out = out.key(key.as_slice());
            }
            if let Some(value) = &message.value {
                out = out.payload(value.as_slice());
            }
            deliveries.send(producer, out);
        }
    });
    deliveries.outcome(producer.flush(Timeout::Never))
}
