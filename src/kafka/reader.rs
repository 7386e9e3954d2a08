//! Reading one partition's offset range: one consumer per partition, assigned to
//! explicit offsets (no consumer group, so no group join), kept between batches so
//! that what it fetched ahead serves the next batch.
//!
//! A batch's ranges are read when its `Rdd`'s partitions are computed, on the
//! context's pool ([`Readers::batch`]), not when the batch is cut.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};

use super::record::{KafkaRecord, OffsetRange, TopicPartition};
use super::{KafkaConfig, kafka_error};
use crate::error::{Result, lock};
use crate::rdd::{ExecEnv, Rdd};
use crate::time::Time;

/// How long one poll waits before the reader checks its deadline.
const POLL: Duration = Duration::from_millis(100);

/// The consumers of one stream, one per topic-partition, made on first use.
pub(super) struct Readers {
    config: KafkaConfig,
    /// Each behind its own lock: a consumer serves one read at a time, and reads of
    /// different partitions do not wait for each other.
    readers: Mutex<BTreeMap<TopicPartition, Arc<Mutex<PartitionReader>>>>,
}

impl Readers {
    pub(super) fn new(config: KafkaConfig) -> Self {
        Readers {
            config,
            readers: Mutex::new(BTreeMap::new()),
        }
    }

    /// The `Rdd` of batch `time`: one partition per range, each read when it is first
    /// computed and kept for later computations of the batch (a window, a second
    /// output), so the broker is asked once per batch and partition.
    pub(super) fn batch(
        self: &Arc<Self>,
        time: Time,
        ranges: Vec<OffsetRange>,
        env: &Arc<ExecEnv>,
    ) -> Rdd<KafkaRecord> {
        if ranges.is_empty() {
            return Rdd::empty_in(env.clone());
        }
        let readers = self.clone();
        Rdd::loaded_in(
            ranges.len(),
            move |index| match ranges.get(index) {
                Some(range) => readers.read(time, range),
                None => Ok(Vec::new()),
            },
            env.clone(),
        )
    }

    /// Exactly the records of `range`, or an error naming the range, the batch, where
    /// the read stopped and why.
    fn read(&self, time: Time, range: &OffsetRange) -> Result<Vec<KafkaRecord>> {
        if range.count() == 0 {
            return Ok(Vec::new());
        }
        let partition = range.topic_partition();
        let action = || {
            format!(
                "read offsets {}..{} of {partition} for batch {time}",
                range.from_offset, range.until_offset
            )
        };
        let reader = self.reader(&partition)?;
        let mut reader = lock(&reader);
        reader
            .read(range.from_offset, range.until_offset, self.config.timeout())
            .map_err(|why| kafka_error(action(), why))
    }

    /// The consumer of `partition`, made on first use.
    pub(super) fn reader(&self, partition: &TopicPartition) -> Result<Arc<Mutex<PartitionReader>>> {
        let mut readers = lock(&self.readers);
        if let Some(reader) = readers.get(partition) {
            return Ok(reader.clone());
        }
        let reader = Arc::new(Mutex::new(PartitionReader::new(
            &self.config,
            partition.clone(),
        )?));
        readers.insert(partition.clone(), reader.clone());
        Ok(reader)
    }
}

/// What [`PartitionReader::read_available`] got.
pub(super) struct Read {
    /// The records of `[from, reached)`.
    pub(super) records: Vec<KafkaRecord>,
    /// The offset after the last record read (or skipped).
    pub(super) reached: i64,
    /// Why the read stopped before `until`, if it did.
    pub(super) stopped: Option<String>,
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

    /// Reads the offsets `[from, until)`: every record there, in order, or an error if
    /// no record arrives for `stall` (the client retries meanwhile, so a broker that
    /// restarts within it costs nothing). Offsets without a record (transaction
    /// markers, compacted records) are skipped as the broker skips them.
    pub(super) fn read(
        &mut self,
        from: i64,
        until: i64,
        stall: Duration,
    ) -> std::result::Result<Vec<KafkaRecord>, String> {
        let read = self.read_available(from, until, stall);
        match read.stopped {
            None => Ok(read.records),
            Some(why) => Err(why),
        }
    }

    /// As [`read`](Self::read), but a read that stalls keeps what it got: the records
    /// of `[from, reached)`, and why it stopped. For readers that can go on from
    /// `reached` next time (the group input) rather than needing the whole range.
    pub(super) fn read_available(&mut self, from: i64, until: i64, stall: Duration) -> Read {
        let mut read = Read {
            records: Vec::with_capacity(usize::try_from(until - from).unwrap_or(0)),
            reached: from,
            stopped: None,
        };
        if from >= until {
            return read;
        }
        if self.next != Some(from)
            && let Err(why) = self.assign(from)
        {
            read.stopped = Some(why);
            return read;
        }
        let mut error = None;
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
                Some(Err(e)) => error = Some(e.to_string()),
                None => {}
            }
            if last_progress.elapsed() >= stall {
                // What the consumer holds is uncertain now: assign afresh next time.
                self.next = None;
                let last_error = error
                    .map(|e| format!(" (last client error: {e})"))
                    .unwrap_or_default();
                read.stopped = Some(format!(
                    "stopped at offset {}: no record arrived for {stall:?}{last_error}. Is the broker running, and are the offsets still there? (KafkaConfig::request_timeout sets how long a read may wait)",
                    read.reached
                ));
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
        .map_err(|e| format!("cannot assign offset {from}: {e}"))?;
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
