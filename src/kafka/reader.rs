//! Reading one partition's offset range: one consumer per partition, assigned to
//! explicit offsets (no consumer group, so no group join), kept between batches so
//! that what it fetched ahead serves the next batch.

use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};

use super::record::{KafkaRecord, TopicPartition};
use super::{KafkaConfig, kafka_error};
use crate::error::Result;

/// How long one poll waits before the reader checks its deadline.
const POLL: Duration = Duration::from_millis(100);

/// What a read got: the records of `[from, reached)`, and why it stopped early.
pub(super) struct Read {
    pub(super) records: Vec<KafkaRecord>,
    pub(super) reached: i64,
    pub(super) error: Option<String>,
}

pub(super) struct PartitionReader {
    partition: TopicPartition,
    consumer: BaseConsumer,
    /// The offset the consumer delivers next, when it is assigned.
    next: Option<i64>,
}

impl PartitionReader {
    pub(super) fn new(config: &KafkaConfig, partition: TopicPartition) -> Result<Self> {
        let consumer: BaseConsumer = config
            .client_config(&[
                // librdkafka assigns partitions only to a consumer with a group id; the
                // reader never subscribes or commits, so it never joins this group.
                ("group.id", "dstream-direct-reader"),
                ("enable.auto.commit", "false"),
                // An offset that is gone (retention) is an error, never a silent jump.
                ("auto.offset.reset", "error"),
                ("enable.partition.eof", "false"),
                // Bounds what is fetched ahead of the batch being read.
                ("queued.max.messages.kbytes", "16384"),
            ])
            .create()
            .map_err(|e| kafka_error(format!("create a consumer for {partition}"), e))?;
        Ok(PartitionReader {
            partition,
            consumer,
            next: None,
        })
    }

    /// Reads the offsets `[from, until)`, waiting at most `stall` for each record.
    pub(super) fn read(&mut self, from: i64, until: i64, stall: Duration) -> Read {
        let mut read = Read {
            records: Vec::with_capacity(usize::try_from(until - from).unwrap_or(0)),
            reached: from,
            error: None,
        };
        if from >= until {
            return read;
        }
        if self.next != Some(from)
            && let Err(e) = self.assign(from)
        {
            read.error = Some(e);
            return read;
        }
        let mut last_progress = Instant::now();
        while read.reached < until {
            match self.consumer.poll(POLL) {
                Some(Ok(message)) => {
                    let offset = message.offset();
                    if offset < read.reached {
                        continue;
                    }
                    if offset >= until {
                        // Offsets skipped past `until` (a compacted topic): this record
                        // belongs to the next batch, so fetch it again then.
                        self.next = None;
                        read.reached = until;
                        return read;
                    }
                    read.records.push(record(&self.partition, &message));
                    read.reached = offset + 1;
                    last_progress = Instant::now();
                }
                Some(Err(e)) => read.error = Some(e.to_string()),
                None => {}
            }
            if last_progress.elapsed() >= stall {
                let why = read
                    .error
                    .take()
                    .unwrap_or_else(|| format!("no record arrived for {stall:?}"));
                read.error = Some(format!(
                    "{}: read {}..{until}, stopped at {}: {why}",
                    self.partition, from, read.reached
                ));
                // What the consumer holds is uncertain now: assign afresh next time.
                self.next = None;
                return read;
            }
        }
        self.next = Some(read.reached);
        read
    }

    fn assign(&mut self, from: i64) -> std::result::Result<(), String> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(
            &self.partition.topic,
            self.partition.partition,
            Offset::Offset(from),
        )
        .and_then(|()| self.consumer.assign(&list))
        .map_err(|e| format!("{}: cannot assign offset {from}: {e}", self.partition))?;
        self.next = Some(from);
        Ok(())
    }
}

fn record(partition: &TopicPartition, message: &BorrowedMessage<'_>) -> KafkaRecord {
    KafkaRecord {
        topic: partition.topic.clone(),
        partition: partition.partition,
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        timestamp: message.timestamp().to_millis(),
    }
}
