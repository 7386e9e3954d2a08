//! The group's producer: records go to explicit partitions, in order, and a write
//! counts as done only when the broker acknowledged every record.
//!
//! One request in flight per broker connection keeps a partition's records in the
//! order they were sent, retries included: the shards' deduplication relies on each
//! writer's records of one input partition arriving in offset order.

use std::sync::Arc;

use rdkafka::producer::Producer;
use rdkafka::util::Timeout;

use super::super::delivery::{CountingProducer, Deliveries, DeliveryCounter};
use super::super::{KafkaConfig, kafka_error};
use crate::error::Result;

/// A record to write.
#[derive(Clone, Debug)]
pub(super) struct Outgoing {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Vec<u8>,
}

pub(super) struct Writer {
    producer: CountingProducer,
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
            .create_with_context(DeliveryCounter)
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
        let mut record = self
            .deliveries
            .record(topic)
            .partition(partition)
            .payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.deliveries.send(&self.writer.producer, record);
    }

    /// Waits for every acknowledgement: `Err` names the first failure.
    pub(super) fn finish(self) -> std::result::Result<(), String> {
        if self.deliveries.sent() == 0 {
            return Ok(());
        }
        self.deliveries
            .outcome(self.writer.producer.flush(Timeout::Never))
    }
}
