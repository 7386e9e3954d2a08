//! The group's producer: records go to explicit partitions, in order, and a write
//! counts as done only when the broker acknowledged every record.
//!
//! One request in flight per broker connection keeps a partition's records in the
//! order they were sent, retries included: the shards' deduplication relies on each
//! writer's records of one input partition arriving in offset order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::super::{KafkaConfig, kafka_error};
use crate::error::{Result, lock};

const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);

/// A record to write.
#[derive(Clone, Debug)]
pub(super) struct Outgoing {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Deliveries {
    sent: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    fn fail(&self, error: &KafkaError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        lock(&self.first_error).get_or_insert_with(|| error.to_string());
    }
}

pub(super) struct Counter;

impl ClientContext for Counter {}

impl ProducerContext for Counter {
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

pub(super) struct Writer {
    producer: ThreadedProducer<Counter>,
}

/// The records of one write, acknowledged together by [`Writes::finish`].
pub(super) struct Writes<'a> {
    writer: &'a Writer,
    deliveries: Arc<Deliveries>,
}

impl Writer {
    pub(super) fn new(config: &KafkaConfig) -> Result<Self> {
        let producer = config
            .client_config(&[
                ("max.in.flight.requests.per.connection", "1"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "30000"),
            ])
            .create_with_context(Counter)
            .map_err(|e| kafka_error("create the producer of a kafka group", e))?;
        Ok(Writer { producer })
    }

    pub(super) fn writes(&self) -> Writes<'_> {
        Writes {
            writer: self,
            deliveries: Arc::new(Deliveries::default()),
        }
    }

    pub(super) fn write_all(&self, records: &[Outgoing]) -> std::result::Result<(), String> {
        let mut writes = self.writes();
        for record in records {
            writes.send(
                &record.topic,
                record.partition,
                record.key.as_deref(),
                &record.value,
            );
        }
        writes.finish()
    }
}

impl Writes<'_> {
    /// Queues one record, waiting while the producer's queue is full.
    pub(super) fn send(&mut self, topic: &str, partition: i32, key: Option<&[u8]>, value: &[u8]) {
        let mut record: BaseRecord<'_, [u8], [u8], Arc<Deliveries>> =
            BaseRecord::with_opaque_to(topic, self.deliveries.clone())
                .partition(partition)
                .payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.deliveries.sent.fetch_add(1, Ordering::Relaxed);
        loop {
            match self.writer.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(QUEUE_FULL_WAIT);
                }
                Err((error, _)) => {
                    self.deliveries.fail(&error);
                    return;
                }
            }
        }
    }

    /// Waits for every acknowledgement: `Err` names the first failure.
    pub(super) fn finish(self) -> std::result::Result<(), String> {
        let sent = self.deliveries.sent.load(Ordering::Relaxed);
        if sent == 0 {
            return Ok(());
        }
        let flushed = self.writer.producer.flush(Timeout::Never);
        let failed = self.deliveries.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = lock(&self.deliveries.first_error)
                .clone()
                .unwrap_or_default();
            return Err(format!(
                "{failed} of {sent} record(s) could not be delivered: {first}"
            ));
        }
        flushed.map_err(|e| format!("waiting for acknowledgements failed: {e}"))?;
        let delivered = self.deliveries.delivered.load(Ordering::Relaxed);
        if delivered != sent {
            return Err(format!("{delivered} of {sent} record(s) were acknowledged"));
        }
        Ok(())
    }
}
