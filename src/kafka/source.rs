//! `kafka_stream`: what to read ([`KafkaSource`]) and the stream it gives
//! ([`KafkaStream`]).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use super::commit::CommitOnCompletion;
use super::input::{DirectInput, Settings};
use super::record::{KafkaRecord, OffsetRange, TopicPartition};
use super::{KafkaConfig, kafka_error};
use crate::context::StreamingContext;
use crate::dstream::{DStream, OutputResult};
use crate::error::Result;
use crate::rdd::Rdd;
use crate::time::Time;

/// How many batches' offset ranges [`KafkaStream::offset_ranges`] remembers.
const KEPT_BATCHES: usize = 1024;

/// Where a partition starts when no offset is given for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    /// Its earliest offset still on the broker.
    Earliest,
    /// Its latest offset: only records produced from now on.
    Latest,
}

/// Where a new stream starts reading (a stream recovered from a checkpoint starts
/// from the checkpoint's offsets instead). Partitions that appear while the stream
/// runs are read from their earliest offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartingOffsets {
    /// Everything still on the broker.
    Earliest,
    /// Only records produced after start (Spark's default).
    Latest,
    /// The offsets committed by the consumer group ([`KafkaSource::group_id`]); the
    /// given reset for partitions the group never committed.
    Committed(OffsetReset),
    /// The given offsets; the given reset for partitions not listed.
    Explicit(BTreeMap<TopicPartition, i64>, OffsetReset),
}

/// What a [`kafka_stream`](StreamingContext::kafka_stream) reads and how.
///
/// ```
/// use dstream::kafka::{KafkaConfig, KafkaSource, OffsetReset, StartingOffsets};
/// let source = KafkaSource::new(&KafkaConfig::new("127.0.0.1:9092"), ["clicks"])
///     .starting_offsets(StartingOffsets::Committed(OffsetReset::Earliest))
///     .group_id("click-report")
///     .commit_offsets(true)
///     .max_rate_per_partition(10_000);
/// # let _ = source;
/// ```
#[derive(Clone, Debug)]
#[must_use = "a KafkaSource does nothing until given to StreamingContext::kafka_stream"]
pub struct KafkaSource {
    config: KafkaConfig,
    topics: Vec<String>,
    starting: StartingOffsets,
    max_rate_per_partition: Option<u64>,
    group: Option<String>,
    commit: bool,
}

impl KafkaSource {
    /// Reads `topics` from the brokers of `config`, starting at the latest offsets.
    pub fn new<S: Into<String>>(config: &KafkaConfig, topics: impl IntoIterator<Item = S>) -> Self {
        KafkaSource {
            config: config.clone(),
            topics: topics.into_iter().map(Into::into).collect(),
            starting: StartingOffsets::Latest,
            max_rate_per_partition: None,
            group: None,
            commit: false,
        }
    }

    /// Where a new stream starts. Default: [`StartingOffsets::Latest`].
    pub fn starting_offsets(mut self, starting: StartingOffsets) -> Self {
        self.starting = starting;
        self
    }

    /// Reads at most `records_per_second` × the batch interval records per partition
    /// in one batch (at least one), as Spark's `maxRatePerPartition`; the rest waits
    /// for later batches. Default: no limit.
    pub fn max_rate_per_partition(mut self, records_per_second: u64) -> Self {
        self.max_rate_per_partition = Some(records_per_second);
        self
    }

    /// The consumer group whose committed offsets [`StartingOffsets::Committed`]
    /// reads and [`commit_offsets`](Self::commit_offsets) writes. The stream never
    /// joins the group (partitions are assigned, not balanced).
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Commits each batch's offsets to the group after all its output operations
    /// have completed, for monitoring and for [`StartingOffsets::Committed`].
    /// Default: off. Recovery uses the checkpoint's offsets, not these.
    pub fn commit_offsets(mut self, commit: bool) -> Self {
        self.commit = commit;
        self
    }
}

/// The offset ranges of recent batches, by batch time.
#[derive(Default)]
pub(super) struct BatchRanges {
    batches: Mutex<BTreeMap<Time, Vec<OffsetRange>>>,
}

impl BatchRanges {
    pub(super) fn record(&self, time: Time, ranges: Vec<OffsetRange>) {
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        batches.insert(time, ranges);
        while batches.len() > KEPT_BATCHES {
            batches.pop_first();
        }
    }

    pub(super) fn get(&self, time: Time) -> Option<Vec<OffsetRange>> {
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&time)
            .cloned()
    }
}

/// The stream of a [`kafka_stream`](StreamingContext::kafka_stream): a
/// `DStream<KafkaRecord>` (it dereferences to one), plus the offset ranges each
/// batch read. Clones are handles to the same stream.
#[derive(Clone)]
pub struct KafkaStream {
    records: DStream<KafkaRecord>,
    ranges: Arc<BatchRanges>,
}

impl Deref for KafkaStream {
    type Target = DStream<KafkaRecord>;

    fn deref(&self) -> &DStream<KafkaRecord> {
        &self.records
    }
}

impl KafkaStream {
    /// The records, as a plain stream.
    pub fn records(&self) -> DStream<KafkaRecord> {
        self.records.clone()
    }

    /// The offset ranges the batch at `time` read, one per partition (empty ranges
    /// included), as Spark's `HasOffsetRanges`; `None` for a batch this stream has not
    /// cut (or one of more than 1024 batches ago). Call it from any output operation
    /// with the batch time it is given.
    pub fn offset_ranges(&self, time: Time) -> Option<Vec<OffsetRange>> {
        self.ranges.get(time)
    }

    /// Like [`DStream::foreach_rdd`], with the batch's offset ranges.
    ///
    /// ```no_run
    /// use dstream::kafka::{KafkaConfig, KafkaSource};
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[*]", Duration::from_secs(1))?;
    /// let stream = ssc.kafka_stream(KafkaSource::new(&KafkaConfig::from_env(), ["words"]))?;
    /// stream.foreach_rdd_with_offsets(|rdd, time, ranges| {
    ///     for range in ranges {
    ///         println!("{time}: {} {} {}..{}", range.topic, range.partition, range.from_offset, range.until_offset);
    ///     }
    ///     let _ = rdd.count();
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn foreach_rdd_with_offsets<R: OutputResult>(
        &self,
        f: impl Fn(Rdd<KafkaRecord>, Time, &[OffsetRange]) -> R + Send + Sync + 'static,
    ) -> Result<()> {
        let ranges = self.ranges.clone();
        self.records.foreach_rdd(move |rdd, time| {
            let batch = ranges.get(time).unwrap_or_default();
            f(rdd, time, &batch).into_outcome()
        })
    }

    /// The values as text, one line per record: bytes that are not UTF-8 are decoded
    /// lossily, records without a value are skipped, and both are counted in a
    /// warning naming the partition.
    pub fn text(&self) -> DStream<String> {
        self.records.map_partitions(|records| {
            let (mut invalid, mut missing) = (0u64, 0u64);
            let mut source = None;
            let mut lines = Vec::new();
            for record in records {
                match record.value {
                    None => missing += 1,
                    Some(bytes) => lines.push(String::from_utf8(bytes).unwrap_or_else(|e| {
                        invalid += 1;
                        String::from_utf8_lossy(e.as_bytes()).into_owned()
                    })),
                }
                source.get_or_insert((record.topic, record.partition));
            }
            if let Some((topic, partition)) = source.filter(|_| invalid + missing > 0) {
                tracing::warn!(
                    "kafka_stream: of topic {topic:?} partition {partition}, {invalid} value(s) were not valid UTF-8 and were decoded with U+FFFD, {missing} record(s) had no value and were skipped"
                );
            }
            lines
        })
    }
}

impl StreamingContext {
    /// Records of Kafka topics, read the direct way: each batch reads, per partition,
    /// the offsets from where the last batch stopped to the latest offset at batch
    /// time (capped by [`KafkaSource::max_rate_per_partition`]), one `Rdd` partition
    /// per Kafka partition, read when the partition is computed in the batch's job, on
    /// the context's pool. The offsets are saved in checkpoints and each batch's
    /// ranges are recorded, so a program restarted with
    /// [`get_or_create`](Self::get_or_create) reads unfinished batches again exactly
    /// and continues where it stopped: state is exactly-once.
    ///
    /// An unreachable broker at batch time gives empty batches (with one warning) and
    /// the stream continues where it stopped once the broker is back. A broker that
    /// goes away after a batch's offsets were decided, for longer than
    /// [`KafkaConfig::request_timeout`](super::KafkaConfig::request_timeout), fails
    /// that batch with an [`Error::Kafka`](crate::Error::Kafka) naming the partition
    /// and offsets. Fails if no topic is given, or if the group offsets are used
    /// without a [`KafkaSource::group_id`].
    ///
    /// ```no_run
    /// use dstream::kafka::{KafkaConfig, KafkaSource, StartingOffsets};
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[*]", Duration::from_secs(1))?;
    /// let source = KafkaSource::new(&KafkaConfig::from_env(), ["words"])
    ///     .starting_offsets(StartingOffsets::Earliest);
    /// let lines = ssc.kafka_stream(source)?.text();
    /// lines.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn kafka_stream(&self, source: KafkaSource) -> Result<KafkaStream> {
        let invalid = |reason: &str| kafka_error("create kafka_stream", reason);
        if source.topics.is_empty() || source.topics.iter().any(String::is_empty) {
            return Err(invalid("no topic (or an empty topic name) was given"));
        }
        let needs_group = source.commit || matches!(source.starting, StartingOffsets::Committed(_));
        if needs_group && source.group.is_none() {
            return Err(invalid(
                "committed offsets need a consumer group: set KafkaSource::group_id",
            ));
        }
        let cap = source.max_rate_per_partition.map(|rate| {
            let millis = u128::from(rate) * self.batch_interval().as_millis() / 1000;
            u64::try_from(millis).unwrap_or(u64::MAX).max(1)
        });
        let ranges = Arc::new(BatchRanges::default());
        if let (true, Some(group)) = (source.commit, &source.group) {
            self.add_listener(CommitOnCompletion::new(
                source.config.clone(),
                group.clone(),
                ranges.clone(),
            ));
        }
        let settings = Settings {
            config: source.config,
            topics: source.topics,
            starting: source.starting,
            cap,
            group: source.group,
            rate: self
                .config()
                .backpressure
                .then(|| Arc::new(self.config().rate_controller())),
            batch_interval: self.batch_interval(),
        };
        let input = DirectInput::new(settings, ranges.clone(), self.received_counter());
        Ok(KafkaStream {
            records: self.input("kafka_stream", input),
            ranges,
        })
    }
}
