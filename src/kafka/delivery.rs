//! Producing with acknowledgements: each write's records carry a shared
//! [`Deliveries`], librdkafka's delivery reports count into it, and a write is done
//! only when every record it sent was acknowledged. Used by `write_to_kafka` and by
//! a Kafka group's writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::lock;

/// How long a sender waits when the producer's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);

/// A producer whose delivery reports count into each record's [`Deliveries`].
pub(super) type CountingProducer = ThreadedProducer<DeliveryCounter>;

/// A record of one write.
pub(super) type Record<'a> = BaseRecord<'a, [u8], [u8], Arc<Deliveries>>;

/// What happened to the records of one write.
#[derive(Default)]
pub(super) struct Deliveries {
    sent: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    /// A record to `topic` that counts into these deliveries.
    pub(super) fn record<'a>(self: &Arc<Self>, topic: &'a str) -> Record<'a> {
        BaseRecord::with_opaque_to(topic, self.clone())
    }

    /// Queues `record`, waiting while the producer's queue is full.
    pub(super) fn send(&self, producer: &CountingProducer, mut record: Record<'_>) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        loop {
            match producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(QUEUE_FULL_WAIT);
                }
                Err((error, _)) => {
                    self.fail(&error);
                    return;
                }
            }
        }
    }

    /// The records sent so far.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether every record sent was acknowledged, once the producer was flushed
    /// (`flushed`): `Err` names the first failure.
    pub(super) fn outcome(&self, flushed: KafkaResult<()>) -> std::result::Result<(), String> {
        let sent = self.sent();
        let failed = self.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = lock(&self.first_error).clone().unwrap_or_default();
            return Err(format!(
                "{failed} of {sent} record(s) could not be delivered: {first}"
            ));
        }
        flushed.map_err(|e| format!("waiting for acknowledgements failed: {e}"))?;
        let delivered = self.delivered.load(Ordering::Relaxed);
        if delivered != sent {
            return Err(format!("{delivered} of {sent} record(s) were acknowledged"));
        }
        Ok(())
    }

    fn fail(&self, error: &KafkaError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        lock(&self.first_error).get_or_insert_with(|| error.to_string());
    }
}

/// Hears librdkafka's delivery reports and counts them against their write.
pub(super) struct DeliveryCounter;

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
