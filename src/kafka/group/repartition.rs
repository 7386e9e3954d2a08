//! Stage 1: the group's input. Each batch reads, for every input partition this
//! process owns, the offsets from where the partition stands to its latest offset
//! (capped), as the direct stream does. Keyed operations then write each record's
//! key-value pairs to their repartition topic, at the partition the key's fixed-seed
//! hash gives, each pair carrying its identity: input partition, input offset, and
//! its index among the pairs of that input record. Offsets are committed to the group
//! once the batch has completed.
//!
//! A partition read again (after a crash, or by the next owner) from an older offset
//! writes the same pairs with the same identities, provided the user's function is
//! deterministic; the shards skip those they applied.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::super::reader::Readers;
use super::super::record::{KafkaRecord, TopicPartition};
use super::super::{KafkaConfig, kafka_error};
use super::membership::{GroupContext, GroupState};
use super::writer::Writer;
use crate::error::{Result, lock};
use crate::rdd::{ExecEnv, HashPartitioner, Partitioner, Rdd};
use crate::source::{Cut, InputSource, ReceivedCounter, ReceiverReporter, SourceContext};
use crate::time::Time;

/// Where a re-keyed pair goes: `(partition, key, value)`.
pub(super) type PairSink<'a> = dyn FnMut(i32, &[u8], &[u8]) + 'a;

/// A keyed operation's first stage: what it writes for one input record.
pub(super) trait Rekey: Send + Sync {
    fn topic(&self) -> &str;

    /// Calls `out(partition, key, value)` for every pair of `record`.
    fn rekey(
        &self,
        record: &KafkaRecord,
        out: &mut PairSink<'_>,
    ) -> std::result::Result<(), String>;
}

/// The identity and value of one pair in the repartition topic (its key is the
/// record's key).
#[derive(Serialize)]
pub(super) struct Pair<'a, V> {
    pub(super) topic: &'a str,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) index: u32,
    pub(super) value: &'a V,
}

/// The pairs a keyed operation makes of one record, given to the `FnMut` one by one.
pub(super) type PairsOf<K, V> = Arc<dyn Fn(&KafkaRecord, &mut dyn FnMut(K, V)) + Send + Sync>;

pub(super) struct KeyBy<K, V> {
    pub(super) topic: String,
    pub(super) partitioner: HashPartitioner,
    pub(super) pairs: PairsOf<K, V>,
}

impl<K, V> Rekey for KeyBy<K, V>
where
    K: Hash + Serialize,
    V: Serialize,
{
    fn topic(&self) -> &str {
        &self.topic
    }

    fn rekey(
        &self,
        record: &KafkaRecord,
        out: &mut PairSink<'_>,
    ) -> std::result::Result<(), String> {
        let mut index = 0u32;
        let mut failure = None;
        (self.pairs)(record, &mut |key, value| {
            if failure.is_some() {
                return;
            }
            let mut write = || -> std::result::Result<(), String> {
                let shard = i32::try_from(self.partitioner.partition(&key)).unwrap_or(0);
                let pair = Pair {
                    topic: &record.topic,
                    partition: record.partition,
                    offset: record.offset,
                    index,
                    value: &value,
                };
                out(
                    shard,
                    &crate::checkpoint::encode(&key)?,
                    &crate::checkpoint::encode(&pair)?,
                );
                index = index
                    .checked_add(1)
                    .ok_or("a record made more than 2^32 pairs")?;
                Ok(())
            };
            failure = write().err();
        });
        failure.map_or(Ok(()), Err)
    }
}

pub(super) struct GroupInput {
    pub(super) state: Arc<GroupState>,
    pub(super) config: KafkaConfig,
    pub(super) topics: Vec<String>,
    pub(super) cap: Option<u64>,
    pub(super) rekeys: Arc<Mutex<Vec<Arc<dyn Rekey>>>>,
    pub(super) writer: Writer,
    pub(super) received: Arc<ReceivedCounter>,
    /// Where each owned input partition continues, with the epoch it was taken over in.
    positions: Mutex<BTreeMap<TopicPartition, (u64, i64)>>,
    readers: Readers,
    /// Shows the assignment on the status page (as the input's source), with the
    /// rebalance count it shows.
    status: Mutex<Option<(ReceiverReporter, u64)>>,
}

impl GroupInput {
    pub(super) fn new(
        state: Arc<GroupState>,
        config: KafkaConfig,
        topics: Vec<String>,
        cap: Option<u64>,
        rekeys: Arc<Mutex<Vec<Arc<dyn Rekey>>>>,
        received: Arc<ReceivedCounter>,
    ) -> Result<Self> {
        let writer = Writer::new(&config)?;
        Ok(GroupInput {
            readers: Readers::new(config.clone()),
            state,
            config,
            topics,
            cap,
            rekeys,
            writer,
            received,
            positions: Mutex::new(BTreeMap::new()),

            status: Mutex::new(None),
        })
    }

    /// The assignment as the status page shows it.
    fn describe(&self) -> String {
        let assignment = self.state.assignment();
        let owned: Vec<String> = assignment.owned.iter().map(ToString::to_string).collect();
        format!(
            "consumer group {:?} at {}: owns {}; {} rebalance(s)",
            self.state.app_id,
            self.config.bootstrap_servers(),
            if owned.is_empty() {
                "no partition yet".to_string()
            } else {
                owned.join(", ")
            },
            assignment.rebalances
        )
    }

    fn show_assignment(&self) {
        let rebalances = self.state.assignment().rebalances;
        if let Some((reporter, shown)) = lock(&self.status).as_mut()
            && *shown != rebalances
        {
            reporter.set_source(self.describe());
            *shown = rebalances;
        }
    }

    fn label(&self) -> String {
        format!("kafka group {:?}", self.state.app_id)
    }

    /// The ranges this batch reads: from each owned partition's position (the group's
    /// committed offset, else the earliest, for a partition just taken over) to its
    /// latest offset, capped.
    fn plan(&self) -> std::result::Result<Vec<(TopicPartition, i64, i64)>, String> {
        let owned = self.state.owned_of(&self.topics);
        let consumer = self.state.consumer().ok_or("not started")?;
        let timeout = self.config.timeout();
        let mut positions = lock(&self.positions);
        // A partition taken over (again) starts from what the group committed, not
        // from where this process last read: another owner may have gone further.
        positions.retain(|p, (epoch, _)| owned.contains(&(p.clone(), *epoch)));
        let missing: Vec<&(TopicPartition, u64)> = owned
            .iter()
            .filter(|(p, _)| !positions.contains_key(p))
            .collect();
        if !missing.is_empty() {
            let mut list = TopicPartitionList::new();
            for (p, _) in &missing {
                list.add_partition(&p.topic, p.partition);
            }
            let epochs: BTreeMap<&TopicPartition, u64> =
                missing.iter().map(|(p, epoch)| (p, *epoch)).collect();
            let committed = consumer
                .committed_offsets(list, timeout)
                .map_err(|e| format!("cannot read the group's committed offsets: {e}"))?;
            for element in committed.elements() {
                let partition = TopicPartition::new(element.topic(), element.partition());
                let offset = match element.offset() {
                    Offset::Offset(offset) => offset,
                    _ => {
                        consumer
                            .fetch_watermarks(&partition.topic, partition.partition, timeout)
                            .map_err(|e| format!("{partition}: {e}"))?
                            .0
                    }
                };
                tracing::info!("{}: reading {partition} from offset {offset}", self.label());
                let epoch = epochs.get(&partition).copied().unwrap_or_default();
                positions.insert(partition, (epoch, offset));
            }
        }
        let mut ranges = Vec::with_capacity(owned.len());
        for (partition, _) in owned {
            let Some(&(_, from)) = positions.get(&partition) else {
                continue;
            };
            let (_, high) = consumer
                .fetch_watermarks(&partition.topic, partition.partition, timeout)
                .map_err(|e| format!("{partition}: {e}"))?;
            let mut until = high.max(from);
            if let Some(cap) = self.cap {
                until = until.min(from.saturating_add(i64::try_from(cap).unwrap_or(i64::MAX)));
            }
            ranges.push((partition, from, until));
        }
        Ok(ranges)
    }

    /// Reads the ranges, one thread per partition; a partition that could not be read
    /// whole gives what it got.
    fn read(&self, ranges: &[(TopicPartition, i64, i64)]) -> Vec<(Vec<KafkaRecord>, i64)> {
        let stall = self.config.timeout();
        std::thread::scope(|scope| {
            let running: Vec<_> = ranges
                .iter()
                .map(|(partition, from, until)| {
                    if from >= until {
                        return None;
                    }
                    let reader = match self.readers.reader(partition) {
                        Ok(reader) => reader,
                        Err(e) => {
                            tracing::warn!("{}: {e}", self.label());
                            return None;
                        }
                    };
                    Some(scope.spawn(move || lock(&reader).read_available(*from, *until, stall)))
                })
                .collect();
            running
                .into_iter()
                .zip(ranges)
                .map(
                    |(thread, (partition, from, _))| match thread.map(|t| t.join()) {
                        None | Some(Err(_)) => (Vec::new(), *from),
                        Some(Ok(read)) => {
                            // What was read counts; the rest is read in the next batch.
                            if let Some(why) = read.stopped {
                                tracing::warn!("{}: {partition}: {why}", self.label());
                            }
                            (read.records, read.reached)
                        }
                    },
                )
                .collect()
        })
    }

    /// Writes every pair of the batch to the repartition topics and waits for the
    /// acknowledgements.
    fn rekey_all(&self, partitions: &[Vec<KafkaRecord>]) -> std::result::Result<(), String> {
        let rekeys = lock(&self.rekeys).clone();
        if rekeys.is_empty() {
            return Ok(());
        }
        let mut writes = self.writer.writes();
        let mut failure = None;
        for rekey in &rekeys {
            let topic = rekey.topic();
            let mut out = |shard: i32, key: &[u8], value: &[u8]| {
                writes.send(topic, shard, Some(key), value);
            };
            for record in partitions.iter().flatten() {
                if let Err(e) = rekey.rekey(record, &mut out) {
                    failure.get_or_insert(format!("{}: {e}", record.topic));
                }
            }
        }
        let written = writes.finish();
        match failure {
            Some(e) => Err(format!("a key or value could not be encoded: {e}")),
            None => written,
        }
    }
}

impl InputSource<KafkaRecord> for GroupInput {
    /// Joins the group: subscribes to the input topics and to the repartition topics
    /// of the keyed operations.
    fn start(&self, ctx: &SourceContext) -> Result<()> {
        let consumer = self
            .config
            .client_config(&[
                ("group.id", self.state.app_id.as_str()),
                ("enable.auto.commit", "false"),
                ("auto.offset.reset", "earliest"),
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "1000"),
            ])
            .create_with_context(GroupContext {
                state: Arc::downgrade(&self.state),
            })
            .map_err(|e| kafka_error(format!("join {}", self.label()), e))?;
        let mut topics: Vec<String> = self.topics.clone();
        topics.extend(lock(&self.rekeys).iter().map(|r| r.topic().to_string()));
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        rdkafka::consumer::Consumer::subscribe(&consumer, &names)
            .map_err(|e| kafka_error(format!("subscribe {} to {names:?}", self.label()), e))?;
        self.state.set_consumer(consumer);
        tracing::info!(
            "{}: joining the group for {}",
            self.label(),
            names.join(", ")
        );
        let mut reporter = ctx.register_receiver(self.describe());
        reporter.connected();
        *lock(&self.status) = Some((reporter, 0));
        Ok(())
    }

    fn cut(&self, time: Time, env: &Arc<ExecEnv>) -> Cut<KafkaRecord> {
        self.state.poll();
        self.show_assignment();
        let ranges = match self.plan() {
            Ok(ranges) => ranges,
            Err(e) => {
                tracing::warn!("{}: batch {time} reads nothing: {e}", self.label());
                Vec::new()
            }
        };
        let reads = self.read(&ranges);
        let mut partitions: Vec<Vec<KafkaRecord>> = Vec::with_capacity(reads.len());
        let mut reached = Vec::with_capacity(reads.len());
        for ((partition, _, _), (records, until)) in ranges.iter().zip(reads) {
            partitions.push(records);
            reached.push((partition.clone(), until));
        }
        if let Err(e) = self.rekey_all(&partitions) {
            tracing::warn!(
                "{}: batch {time} could not write to the repartition topic: {e}; its input is read again in the next batch",
                self.label()
            );
            partitions.clear();
            reached.clear();
        }
        {
            let mut positions = lock(&self.positions);
            for (partition, until) in &reached {
                if let Some(position) = positions.get_mut(partition) {
                    position.1 = *until;
                }
            }
        }
        self.state.cut(time, reached);
        let records: u64 = partitions.iter().map(|p| p.len() as u64).sum();
        self.received.add(records);
        let rdd = if partitions.is_empty() {
            Rdd::empty_in(env.clone())
        } else {
            Rdd::from_partitions_in(partitions, env.clone())
        };
        Cut {
            rdd,
            records,
            replay: None,
        }
    }

    fn has_pending(&self) -> bool {
        false
    }

    fn stop(&self) {
        self.state.stop();
        if let Some((reporter, _)) = lock(&self.status).as_mut() {
            reporter.stopped();
        }
    }
}
