//! Committing a batch's offsets to the consumer group once its outputs have
//! completed, never before: tools that watch the group's lag then see real progress.
//! The checkpoint, not the group, is what recovery reads.
//!
//! A listener hears that a batch completed and hands its offsets to a thread of its
//! own, so that a slow or absent broker never holds up the batches.

use std::sync::{Arc, OnceLock};

use crossbeam_channel::Sender;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaConfig;
use super::record::OffsetRange;
use super::source::BatchRanges;
use crate::scheduler::{BatchInfo, StreamingListener};

pub(super) struct CommitOnCompletion {
    config: KafkaConfig,
    group: String,
    ranges: Arc<BatchRanges>,
    queue: OnceLock<Sender<Vec<OffsetRange>>>,
}

impl CommitOnCompletion {
    pub(super) fn new(config: KafkaConfig, group: String, ranges: Arc<BatchRanges>) -> Self {
        CommitOnCompletion {
            config,
            group,
            ranges,
            queue: OnceLock::new(),
        }
    }

    /// The committing thread's queue, started on first use.
    fn queue(&self) -> Option<&Sender<Vec<OffsetRange>>> {
        if let Some(queue) = self.queue.get() {
            return Some(queue);
        }
        let consumer: BaseConsumer = match self
            .config
            .client_config(&[("group.id", &self.group), ("enable.auto.commit", "false")])
            .create()
        {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(
                    "kafka_stream: cannot create the client that commits offsets to group {:?}: {e}; offsets are not committed",
                    self.group
                );
                return None;
            }
        };
        let (sender, receiver) = crossbeam_channel::unbounded::<Vec<OffsetRange>>();
        let group = self.group.clone();
        let spawned = std::thread::Builder::new()
            .name("dstream-kafka-commit".into())
            .spawn(move || {
                let mut failing = false;
                for ranges in receiver {
                    match commit(&consumer, &ranges) {
                        Ok(()) if failing => {
                            tracing::info!("kafka_stream: offsets are committed to group {group:?} again");
                            failing = false;
                        }
                        Ok(()) => {}
                        Err(e) if !failing => {
                            tracing::warn!(
                                "kafka_stream: cannot commit offsets to group {group:?}: {e}; later batches try again (the checkpoint keeps the offsets that matter for recovery)"
                            );
                            failing = true;
                        }
                        Err(_) => {}
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("kafka_stream: cannot start the thread that commits offsets: {e}");
            return None;
        }
        Some(self.queue.get_or_init(|| sender))
    }
}

fn commit(consumer: &BaseConsumer, ranges: &[OffsetRange]) -> rdkafka::error::KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    for range in ranges {
        list.add_partition_offset(
            &range.topic,
            range.partition,
            Offset::Offset(range.until_offset),
        )?;
    }
    consumer.commit(&list, CommitMode::Sync)
}

impl StreamingListener for CommitOnCompletion {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if info.failure.is_some() {
            return;
        }
        let Some(ranges) = self.ranges.get(info.batch_time) else {
            return;
        };
        if ranges.is_empty() {
            return;
        }
        if let Some(queue) = self.queue() {
            let _ = queue.send(ranges);
        }
    }
}
