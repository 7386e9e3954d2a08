//! The direct Kafka input: at each batch time, decide each partition's offset range;
//! save the next offsets in checkpoints; give a batch's ranges again after a crash.
//!
//! Cutting a batch only asks the broker for metadata and watermarks: the batch's `Rdd`
//! reads each range when its partition is computed, on the context's pool, inside the
//! batch's job (as Spark's `KafkaRDD.compute`; see `reader::Readers::batch`). A read
//! that cannot finish fails the batch with the error; it never gives a short partition.
//!
//! A cut that cannot reach the broker gives an empty batch and leaves the offsets
//! where they were, so the first batch after the broker is back reads everything
//! that was missed. Failures are reported once when the broker goes away and once
//! when it is back; attempts in between back off.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::reader::Readers;
use super::record::{KafkaRecord, OffsetRange, TopicPartition};
use super::source::{BatchRanges, OffsetReset, StartingOffsets};
use super::{KafkaConfig, kafka_error};
use crate::error::{Error, Result, lock};
use crate::rdd::{ExecEnv, Rdd};
use crate::source::RateController;
use crate::source::{Cut, InputSource, ReceivedCounter, SourceContext};
use crate::time::Time;

/// The first wait after the broker could not be reached; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// What the input was configured with.
pub(super) struct Settings {
    pub(super) config: KafkaConfig,
    pub(super) topics: Vec<String>,
    pub(super) starting: StartingOffsets,
    /// The most records one batch reads from one partition.
    pub(super) cap: Option<u64>,
    pub(super) group: Option<String>,
    /// With backpressure: the rate, in records per second over all partitions, that
    /// recent batches could process; a batch then reads that rate's share per partition.
    pub(super) rate: Option<Arc<RateController>>,
    pub(super) batch_interval: Duration,
}

impl Settings {
    /// The most records one batch reads from each of `partitions` partitions: the fixed
    /// cap and, with backpressure, an equal share of the estimated rate (as Spark's
    /// direct stream without lag weighting).
    fn partition_cap(&self, partitions: usize) -> Option<u64> {
        let estimated = self
            .rate
            .as_ref()
            .and_then(|rate| rate.current_rate())
            .map(|rate| {
                let share = rate * self.batch_interval.as_secs_f64() / partitions.max(1) as f64;
                (share.ceil() as u64).max(1)
            });
        [self.cap, estimated].into_iter().flatten().min()
    }
}

pub(super) struct DirectInput {
    settings: Settings,
    label: String,
    ranges: Arc<BatchRanges>,
    /// Metadata, watermarks and committed offsets.
    client: OnceLock<BaseConsumer>,
    positions: Mutex<Positions>,
    readers: Arc<Readers>,
    health: Mutex<Health>,
    /// Topics reported missing, so each is reported once.
    missing: Mutex<BTreeSet<String>>,
    stopped: AtomicBool,
    received: Arc<ReceivedCounter>,
}

#[derive(Default)]
struct Positions {
    /// The next offset to read, per partition.
    next: BTreeMap<TopicPartition, i64>,
    /// Whether the starting offsets were applied (or a checkpoint restored): later
    /// partitions are new ones and start at their earliest offset.
    started: bool,
}

/// Whether the broker answers, and when to try again if it does not.
#[derive(Default)]
struct Health {
    down_since: Option<Instant>,
    backoff: Duration,
    next_try: Option<Instant>,
}

impl DirectInput {
    pub(super) fn new(
        settings: Settings,
        ranges: Arc<BatchRanges>,
        received: Arc<ReceivedCounter>,
    ) -> Self {
        let label = format!("kafka_stream {:?}", settings.topics);
        let readers = Arc::new(Readers::new(settings.config.clone()));
        DirectInput {
            settings,
            label,
            ranges,
            client: OnceLock::new(),
            positions: Mutex::new(Positions::default()),
            readers,
            health: Mutex::new(Health::default()),
            missing: Mutex::new(BTreeSet::new()),
            stopped: AtomicBool::new(false),
            received,
        }
    }

    fn timeout(&self) -> Duration {
        self.settings.config.timeout()
    }

    fn client(&self) -> std::result::Result<&BaseConsumer, String> {
        self.client
            .get()
            .ok_or_else(|| "the stream has not started".to_string())
    }

    /// The partitions of the topics now; a topic that does not exist is reported
    /// (once) and has none.
    fn partitions(&self) -> std::result::Result<Vec<TopicPartition>, String> {
        let client = self.client()?;
        let mut partitions = Vec::new();
        for topic in &self.settings.topics {
            let metadata = client
                .fetch_metadata(Some(topic), self.timeout())
                .map_err(|e| format!("cannot fetch the metadata of topic {topic:?}: {e}"))?;
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| t.error().is_none() && !t.partitions().is_empty());
            let mut missing = lock(&self.missing);
            match found {
                Some(t) => {
                    if missing.remove(topic) {
                        tracing::info!("{}: topic {topic:?} exists now", self.label);
                    }
                    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                    ids.sort_unstable();
                    partitions.extend(ids.into_iter().map(|id| TopicPartition::new(topic, id)));
                }
                None => {
                    if missing.insert(topic.clone()) {
                        tracing::warn!(
                            "{}: topic {topic:?} does not exist on {}; its batches are empty until it is created (dstream::kafka::create_topic)",
                            self.label,
                            self.settings.config.bootstrap_servers()
                        );
                    }
                }
            }
        }
        Ok(partitions)
    }

    fn watermarks(&self, partition: &TopicPartition) -> std::result::Result<(i64, i64), String> {
        self.client()?
            .fetch_watermarks(&partition.topic, partition.partition, self.timeout())
            .map_err(|e| format!("cannot fetch the offsets of {partition}: {e}"))
    }

    /// The group's committed offsets for `partitions` (those with one).
    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> std::result::Result<BTreeMap<TopicPartition, i64>, String> {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition(&p.topic, p.partition);
        }
        let committed = self
            .client()?
            .committed_offsets(list, self.timeout())
            .map_err(|e| format!("cannot fetch the group's committed offsets: {e}"))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => {
                    Some((TopicPartition::new(e.topic(), e.partition()), offset))
                }
                _ => None,
            })
            .collect())
    }

    /// Finds the partitions, gives new ones their starting offsets, and returns each
    /// partition's `[from, until)` for a batch now.
    fn plan(&self) -> std::result::Result<Vec<OffsetRange>, String> {
        let partitions = self.partitions()?;
        let mut marks = BTreeMap::new();
        for partition in &partitions {
            marks.insert(partition.clone(), self.watermarks(partition)?);
        }
        let mut positions = lock(&self.positions);
        let new: Vec<TopicPartition> = partitions
            .iter()
            .filter(|p| !positions.next.contains_key(*p))
            .cloned()
            .collect();
        if !new.is_empty() {
            let starts = self.starting_offsets(&new, &marks, positions.started)?;
            if positions.started {
                tracing::info!(
                    "{}: new partition(s) {} found; reading them from their earliest offsets",
                    self.label,
                    names(&new)
                );
            }
            positions.next.extend(starts);
        }
        positions.started = true;
        let mut ranges = Vec::with_capacity(partitions.len());
        let cap = self.settings.partition_cap(partitions.len());
        for partition in partitions {
            let (low, high) = marks[&partition];
            let next = positions.next.get(&partition).copied().unwrap_or(low);
            let from = if next < low {
                tracing::warn!(
                    "{}: offsets {next}..{low} of {partition} were deleted by the broker (retention) before they were read; reading from {low}",
                    self.label
                );
                low
            } else {
                next
            };
            let mut until = high.max(from);
            if let Some(cap) = cap {
                until = until.min(from.saturating_add(i64::try_from(cap).unwrap_or(i64::MAX)));
            }
            ranges.push(OffsetRange {
                topic: partition.topic,
                partition: partition.partition,
                from_offset: from,
                until_offset: until,
            });
        }
        Ok(ranges)
    }

    /// Where the partitions `new` start: by the starting offsets before the first
    /// batch, at their earliest offset once the stream runs.
    fn starting_offsets(
        &self,
        new: &[TopicPartition],
        marks: &BTreeMap<TopicPartition, (i64, i64)>,
        started: bool,
    ) -> std::result::Result<Vec<(TopicPartition, i64)>, String> {
        let reset = |p: &TopicPartition, reset: OffsetReset| {
            let (low, high) = marks[p];
            match reset {
                OffsetReset::Earliest => low,
                OffsetReset::Latest => high,
            }
        };
        let starting = if started {
            &StartingOffsets::Earliest
        } else {
            &self.settings.starting
        };
        let chosen: BTreeMap<TopicPartition, i64> = match starting {
            StartingOffsets::Earliest => BTreeMap::new(),
            StartingOffsets::Latest => new
                .iter()
                .map(|p| (p.clone(), reset(p, OffsetReset::Latest)))
                .collect(),
            StartingOffsets::Committed(_) => self.committed(new)?,
            StartingOffsets::Explicit(offsets, _) => offsets.clone(),
        };
        let otherwise = match starting {
            StartingOffsets::Committed(otherwise) | StartingOffsets::Explicit(_, otherwise) => {
                *otherwise
            }
            StartingOffsets::Latest => OffsetReset::Latest,
            StartingOffsets::Earliest => OffsetReset::Earliest,
        };
        Ok(new
            .iter()
            .map(|p| {
                let offset = chosen
                    .get(p)
                    .copied()
                    .unwrap_or_else(|| reset(p, otherwise));
                (p.clone(), offset)
            })
            .collect())
    }

    /// Notes that the broker could not be reached: reported when it goes away, not
    /// at every attempt.
    fn unreachable(&self, error: &str) {
        let mut health = lock(&self.health);
        let now = Instant::now();
        if health.down_since.is_none() {
            tracing::warn!(
                "{}: cannot reach the Kafka broker at {}: {error}. Batches are empty until it answers again (retrying with backoff); nothing is skipped",
                self.label,
                self.settings.config.bootstrap_servers()
            );
            health.down_since = Some(now);
            health.backoff = FIRST_BACKOFF;
        } else {
            health.backoff = (health.backoff * 2).min(MAX_BACKOFF);
        }
        health.next_try = Some(now + health.backoff);
    }

    fn reachable(&self) {
        let mut health = lock(&self.health);
        if let Some(since) = health.down_since.take() {
            tracing::info!(
                "{}: the Kafka broker at {} answers again after {:.1?}; reading on from where the stream stopped",
                self.label,
                self.settings.config.bootstrap_servers(),
                since.elapsed()
            );
        }
        health.next_try = None;
    }

    fn may_try(&self) -> bool {
        lock(&self.health)
            .next_try
            .is_none_or(|at| Instant::now() >= at)
    }

    /// `ranges` less the offsets the broker has deleted meanwhile (retention): those
    /// can never be read, so waiting for them would stop the stream for good. They are
    /// reported. Fails if the broker does not answer.
    fn without_deleted(
        &self,
        time: Time,
        ranges: &[OffsetRange],
    ) -> std::result::Result<Vec<OffsetRange>, String> {
        ranges
            .iter()
            .map(|range| {
                let mut range = range.clone();
                if range.count() > 0 {
                    let (low, _) = self.watermarks(&range.topic_partition())?;
                    if low > range.from_offset {
                        tracing::warn!(
                            "{}: offsets {}..{} of {} were deleted by the broker (retention) before the unfinished batch {time} could read them again; it runs without them",
                            self.label,
                            range.from_offset,
                            low.min(range.until_offset),
                            range.topic_partition()
                        );
                        range.from_offset = low.min(range.until_offset);
                    }
                }
                Ok(range)
            })
            .collect()
    }

    /// Records `ranges` as batch `time`'s and makes its `Rdd`, which reads them when
    /// computed; with the number of offsets they span.
    fn batch(
        &self,
        time: Time,
        ranges: Vec<OffsetRange>,
        env: &Arc<ExecEnv>,
    ) -> (Rdd<KafkaRecord>, u64) {
        let records = ranges.iter().map(OffsetRange::count).sum();
        self.received.add(records);
        self.ranges.record(time, ranges.clone());
        (self.readers.batch(time, ranges, env), records)
    }

    fn codec_error(&self, reason: String) -> Error {
        Error::Codec {
            action: "decode",
            stream: self.label.clone(),
            reason,
        }
    }
}

fn names(partitions: &[TopicPartition]) -> String {
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl InputSource<KafkaRecord> for DirectInput {
    /// Connects and applies the starting offsets now, so that `Latest` means the
    /// latest offsets at start. An unreachable broker is reported and tried again at
    /// each batch.
    fn start(&self, _ctx: &SourceContext) -> Result<()> {
        let mut defaults = vec![("enable.auto.commit", "false")];
        if let Some(group) = &self.settings.group {
            defaults.push(("group.id", group));
        }
        let client: BaseConsumer = self
            .settings
            .config
            .client_config(&defaults)
            .create()
            .map_err(|e| kafka_error(format!("create the client of {}", self.label), e))?;
        let _ = self.client.set(client);
        match self.plan() {
            Ok(_) => self.reachable(),
            Err(e) => self.unreachable(&e),
        }
        Ok(())
    }

    /// Decides each partition's range; the batch's `Rdd` reads them when computed.
    /// The replay record is the batch time and the ranges.
    ///
    /// The batch's record count is the offsets its ranges span, known now, before
    /// anything is read (as Spark's `KafkaRDD.count`): offsets without a record
    /// (transaction markers, compacted records) are counted too.
    fn cut(&self, time: Time, env: &Arc<ExecEnv>) -> Cut<KafkaRecord> {
        // While backing off, the broker is not asked at all.
        let ranges = match self.may_try().then(|| self.plan()) {
            Some(Ok(ranges)) => {
                self.reachable();
                ranges
            }
            Some(Err(e)) => {
                self.unreachable(&e);
                Vec::new()
            }
            None => Vec::new(),
        };
        {
            let mut positions = lock(&self.positions);
            for range in &ranges {
                positions
                    .next
                    .insert(range.topic_partition(), range.until_offset);
            }
        }
        let replay = crate::checkpoint::encode(&(time.as_millis(), &ranges)).ok();
        let (rdd, records) = self.batch(time, ranges, env);
        Cut {
            rdd,
            records,
            replay,
        }
    }

    fn has_pending(&self) -> bool {
        false
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn rate_controller(&self) -> Option<&Arc<RateController>> {
        self.settings.rate.as_ref()
    }

    fn position(&self) -> Option<Vec<u8>> {
        let positions = lock(&self.positions);
        let next: Vec<(&TopicPartition, &i64)> = positions.next.iter().collect();
        crate::checkpoint::encode(&next).ok()
    }

    fn restore(&self, position: &[u8]) -> Result<()> {
        let next: Vec<(TopicPartition, i64)> =
            crate::checkpoint::decode(position).map_err(|e| self.codec_error(e))?;
        let mut positions = lock(&self.positions);
        positions.next = next.into_iter().collect();
        positions.started = true;
        Ok(())
    }

    /// Gives the recorded ranges again, less offsets the broker deleted meanwhile:
    /// waits for the broker to answer as long as it takes (the batch must not run with
    /// part of its data) unless the context stops. The batch's `Rdd` reads them when
    /// computed, as a cut's does.
    fn replay(&self, replay: &[u8], env: &Arc<ExecEnv>) -> Option<(Rdd<KafkaRecord>, u64)> {
        let (time, recorded): (i64, Vec<OffsetRange>) = crate::checkpoint::decode(replay).ok()?;
        let time = Time::from_millis(time);
        let mut backoff = FIRST_BACKOFF;
        let mut reported = false;
        let ranges = loop {
            let error = match self.without_deleted(time, &recorded) {
                Ok(ranges) => break ranges,
                Err(error) => error,
            };
            if self.stopped.load(Ordering::SeqCst) {
                tracing::warn!(
                    "{}: the context stops before the broker answered for the unfinished batch {time}",
                    self.label
                );
                break recorded;
            }
            if !reported {
                tracing::warn!(
                    "{}: cannot check the offsets of the unfinished batch {time} yet: {error}. Retrying until the broker answers",
                    self.label
                );
                reported = true;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        Some(self.batch(time, ranges, env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cap: Option<u64>, rate: Option<Arc<RateController>>) -> Settings {
        Settings {
            config: KafkaConfig::new("127.0.0.1:9"),
            topics: vec!["t".into()],
            starting: StartingOffsets::Earliest,
            cap,
            group: None,
            rate,
            batch_interval: Duration::from_secs(2),
        }
    }

    #[test]
    fn backpressure_shares_the_estimated_rate_among_partitions() {
        assert_eq!(settings(None, None).partition_cap(4), None);
        assert_eq!(settings(Some(500), None).partition_cap(4), Some(500));
        let rate = Arc::new(RateController::new(Duration::from_secs(2)));
        // No estimate before two batches: only the fixed cap applies.
        assert_eq!(
            settings(Some(500), Some(rate.clone())).partition_cap(4),
            Some(500)
        );
        let second = Duration::from_secs(1);
        rate.batch_completed(Time::from_millis(2_000), 400, second * 2, Duration::ZERO);
        rate.batch_completed(Time::from_millis(4_000), 400, second * 2, Duration::ZERO);
        // 200 records/s over 2 s batches, shared by 4 partitions: 100 each.
        assert_eq!(rate.current_rate(), Some(200.0));
        assert_eq!(
            settings(None, Some(rate.clone())).partition_cap(4),
            Some(100)
        );
        assert_eq!(settings(Some(60), Some(rate)).partition_cap(4), Some(60));
    }
}
