//! Stage 1: the group's input. Each batch reads, for every input partition this
//! process owns, the offsets from where the partition stands to its latest offset
//! (capped), as the direct stream does. Keyed operations then write each record's
//! key-value pairs to their repartition topic, at the partition the key's fixed-seed
//! hash gives, each pair carrying its identity: input partition, input offset, and
//! its index among the pairs of that input record. The pairs of a batch bound for one
//! shard from one input partition travel packed in one record (or a few, if large).
//! Offsets are committed to the group once the batch has completed.
//!
//! A partition read again (after a crash, or by the next owner) from an older offset
//! writes the same pairs with the same identities, provided the user's function is
//! deterministic, though perhaps packed differently; the shards skip those they
//! applied.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::super::reader::Readers;
use super::super::record::{KafkaRecord, TopicPartition};
use super::super::{KafkaConfig, kafka_error};
use super::membership::{GroupContext, GroupState};
use super::writer::Writer;
use crate::error::{Result, lock};
use crate::rdd::{ExecEnv, HashPartitioner, Partitioner, Rdd};
use crate::source::{Cut, InputSource, ReceivedCounter, ReceiverReporter, SourceContext};
use crate::time::Time;

/// Where a keyed operation's packs go: `(partition of the repartition topic, record)`.
pub(super) type PackSink<'a> = dyn FnMut(i32, &[u8]) + 'a;

/// A keyed operation's first stage: what it writes for the records of a batch.
pub(super) trait Rekey: Send + Sync {
    fn topic(&self) -> &str;

    /// Writes the pairs of `records`, consecutive records of one input partition in
    /// offset order, to `out`, packed by the shard their key belongs to.
    fn rekey(
        &self,
        records: &[KafkaRecord],
        out: &mut PackSink<'_>,
    ) -> std::result::Result<(), String>;
}

/// Pairs bound for one shard from consecutive records of one input partition, in
/// offset order, each with its identity `(input offset, index among the pairs of its
/// record, key, value)`: one record of the repartition topic. Packing keeps the
/// identities, so the shards deduplicate pair by pair however a replay packs them;
/// it saves the broker a record per pair.
#[derive(Serialize, Deserialize)]
pub(super) struct Pack<K, V> {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) pairs: Vec<(i64, u32, K, V)>,
}

/// At most this many pairs in a pack, and a pack bigger than `MAX_PACK_BYTES` is
/// split: Kafka's producers and brokers refuse records over 1 MB by default.
const PACK_PAIRS: usize = 4096;
const MAX_PACK_BYTES: usize = 512 * 1024;

/// The pairs a keyed operation makes of one record, given to the `FnMut` one by one.
pub(super) type PairsOf<K, V> = Arc<dyn Fn(&KafkaRecord, &mut dyn FnMut(K, V)) + Send + Sync>;

pub(super) struct KeyBy<K, V> {
    pub(super) topic: String,
    pub(super) partitioner: HashPartitioner,
    pub(super) pairs: PairsOf<K, V>,
}

impl<K: Serialize, V: Serialize> KeyBy<K, V> {
    /// Encodes `pairs` as packs of at most `MAX_PACK_BYTES` (unless one pair alone is
    /// bigger) and sends them to `shard`.
    fn send(
        input: &KafkaRecord,
        shard: i32,
        mut pairs: Vec<(i64, u32, K, V)>,
        out: &mut PackSink<'_>,
    ) -> std::result::Result<(), String> {
        let pack = Pack {
            topic: input.topic.clone(),
            partition: input.partition,
            pairs,
        };
        let encoded = crate::checkpoint::encode(&pack)?;
        pairs = pack.pairs;
        if encoded.len() > MAX_PACK_BYTES && pairs.len() > 1 {
            let second = pairs.split_off(pairs.len() / 2);
            Self::send(input, shard, pairs, out)?;
            return Self::send(input, shard, second, out);
        }
        out(shard, &encoded);
        Ok(())
    }
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
        records: &[KafkaRecord],
        out: &mut PackSink<'_>,
    ) -> std::result::Result<(), String> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let mut packs: Vec<Vec<(i64, u32, K, V)>> = (0..self.partitioner.num_partitions())
            .map(|_| Vec::new())
            .collect();
        for record in records {
            let mut index = 0u32;
            let mut too_many = false;
            (self.pairs)(record, &mut |key, value| {
                let shard = self.partitioner.partition(&key);
                packs[shard].push((record.offset, index, key, value));
                index = index.checked_add(1).unwrap_or_else(|| {
                    too_many = true;
                    u32::MAX
                });
            });
            if too_many {
                return Err(format!(
                    "{} offset {}: a record made more than 2^32 pairs",
                    record.topic, record.offset
                ));
            }
        }
        for (shard, pairs) in packs.into_iter().enumerate() {
            let shard = i32::try_from(shard).unwrap_or(0);
            let mut pairs = pairs.into_iter().peekable();
            while pairs.peek().is_some() {
                Self::send(first, shard, pairs.by_ref().take(PACK_PAIRS).collect(), out)?;
            }
        }
        Ok(())
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
            let mut out = |shard: i32, pack: &[u8]| {
                writes.send(topic, shard, None, pack);
            };
            for records in partitions {
                if let Err(e) = rekey.rekey(records, &mut out) {
                    failure.get_or_insert(e);
                }
            }
        }
        let written = writes.finish();
        match failure {
            Some(e) => Err(format!("the batch could not be re-keyed: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, text: &str) -> KafkaRecord {
        KafkaRecord {
            topic: "lines".into(),
            partition: 2,
            offset,
            key: None,
            value: Some(text.as_bytes().to_vec()),
            timestamp: None,
        }
    }

    /// Re-keys `records` by word into `shards` shards; gives the packs each got.
    fn packs(shards: usize, records: &[KafkaRecord]) -> Vec<(i32, Pack<String, String>)> {
        let words = KeyBy {
            topic: "words".into(),
            partitioner: HashPartitioner::new(shards),
            pairs: Arc::new(
                |record: &KafkaRecord, emit: &mut dyn FnMut(String, String)| {
                    let text = record.value_text().unwrap_or_default();
                    for word in text.split(' ') {
                        emit(word.to_string(), word.repeat(1000));
                    }
                },
            ),
        };
        let mut sent = Vec::new();
        words
            .rekey(records, &mut |shard, pack| {
                sent.push((shard, crate::checkpoint::decode(pack).unwrap()));
            })
            .unwrap();
        sent
    }

    #[test]
    fn pairs_are_packed_per_shard_with_their_identities_in_offset_order() {
        let records = [record(7, "a b a"), record(8, "b c")];
        let sent = packs(1, &records);
        assert_eq!(sent.len(), 1);
        let (shard, pack) = &sent[0];
        assert_eq!(
            (*shard, pack.topic.as_str(), pack.partition),
            (0, "lines", 2)
        );
        let identities: Vec<(i64, u32, &str)> = pack
            .pairs
            .iter()
            .map(|(offset, index, key, _)| (*offset, *index, key.as_str()))
            .collect();
        assert_eq!(
            identities,
            vec![
                (7, 0, "a"),
                (7, 1, "b"),
                (7, 2, "a"),
                (8, 0, "b"),
                (8, 1, "c")
            ]
        );

        let sent = packs(3, &records);
        let partitioner = HashPartitioner::new(3);
        for (shard, pack) in &sent {
            for (_, _, key, _) in &pack.pairs {
                assert_eq!(partitioner.partition(key), usize::try_from(*shard).unwrap());
            }
        }
        let pairs: usize = sent.iter().map(|(_, pack)| pack.pairs.len()).sum();
        assert_eq!(pairs, 5);
    }

    #[test]
    fn a_large_pack_is_split_and_keeps_its_order() {
        // 1,000 pairs of about 1 KB each go to one shard: more than a pack may hold.
        let records: Vec<KafkaRecord> = (0..200).map(|i| record(i, "x x x x x")).collect();
        let sent = packs(1, &records);
        assert!(sent.len() > 1, "split into {} packs", sent.len());
        let mut identities = Vec::new();
        for (_, pack) in &sent {
            assert!(crate::checkpoint::encode(pack).unwrap().len() <= MAX_PACK_BYTES);
            identities.extend(
                pack.pairs
                    .iter()
                    .map(|(offset, index, _, _)| (*offset, *index)),
            );
        }
        let want: Vec<(i64, u32)> = (0..200).flat_map(|o| (0..5).map(move |i| (o, i))).collect();
        assert_eq!(identities, want);
    }
}
