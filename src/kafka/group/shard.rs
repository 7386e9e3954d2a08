//! Stage 2: keyed state in shards, one per partition of the repartition topic, each
//! backed by its partition of the changelog topic.
//!
//! A batch of shard `s` reads the repartition partition from where the shard stands
//! to its latest offset, skips every pair whose identity (input partition, offset,
//! index) is at or below the last one the shard applied from that input partition,
//! and applies the rest with the keyed operation (which may also visit every key it
//! holds, as a window does at its slides). Once the batch's outputs have completed,
//! it writes the changed keys' new states to the changelog, then a marker that
//! commits them: the repartition offsets it covered, the deduplication table and the
//! count of pairs applied so far.
//!
//! A process taking a shard over reads its changelog from the beginning and follows
//! the chain of markers: a marker counts only if it starts where the previous counted
//! one ended, and only the updates of counted markers apply. Updates of a batch whose
//! marker never came (a crash) are ignored: that batch is done again, and writes its
//! outputs again with the same values.
//!
//! Why deduplication by identity is exact: each writer sends the pairs of one input
//! partition in offset order, a partition is read again only from a committed offset
//! (committed after its pairs were acknowledged), and every replay writes the same
//! pairs. So the first copy of a pair a shard meets comes before any later pair of
//! its input partition, and every later copy is at or below what was applied.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::super::reader::{PartitionReader, Readers};
use super::super::record::TopicPartition;
use super::super::{KafkaConfig, kafka_error};
use super::membership::GroupState;
use super::repartition::Pack;
use super::writer::Outgoing;
use crate::checkpoint::{decode, encode};
use crate::dstream::StateData;
use crate::error::{Result, Unwound, catch_panic, fail_computation, lock};
use crate::rdd::{Data, ExecEnv, Key, Rdd};
use crate::source::{Cut, InputSource, SourceContext};
use crate::time::Time;

/// What commits one batch of a shard in its changelog.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Marker {
    writer: u64,
    batch: u64,
    from: i64,
    until: i64,
    /// Pairs applied by this shard since its start, this batch included.
    applied: u64,
    /// For each input partition, the identity of the last pair applied.
    dedup: Vec<(TopicPartition, i64, u32)>,
}

#[derive(Serialize, Deserialize)]
enum Entry {
    /// The new state of the record's key (`None`: removed), part of batch
    /// `(writer, batch)`.
    Update {
        writer: u64,
        batch: u64,
        state: Option<Vec<u8>>,
    },
    Marker(Marker),
}

/// A key and its new state (`None`: removed), encoded.
type EncodedUpdate = (Vec<u8>, Option<Vec<u8>>);

/// What a shard's batch gives: its stream's records, and the changelog records that
/// commit the batch.
type Advanced<U> = (Vec<U>, Vec<Outgoing>);

/// A shard as its changelog has it: encoded keys and states, and the last counted
/// marker.
pub(super) struct Recovered {
    pub(super) states: HashMap<Vec<u8>, Vec<u8>>,
    pub(super) marker: Option<Marker>,
}

/// A client for watermarks and metadata.
pub(super) fn meta_client(config: &KafkaConfig) -> Result<BaseConsumer> {
    config
        .client_config(&[])
        .create()
        .map_err(|e| kafka_error("create a Kafka client", e))
}

/// Reads a changelog partition whole and follows its markers.
pub(super) fn recover(
    config: &KafkaConfig,
    client: &BaseConsumer,
    partition: &TopicPartition,
) -> std::result::Result<Recovered, String> {
    let (low, high) = client
        .fetch_watermarks(&partition.topic, partition.partition, config.timeout())
        .map_err(|e| format!("{partition}: {e}"))?;
    let mut recovered = Recovered {
        states: HashMap::new(),
        marker: None,
    };
    if low >= high {
        return Ok(recovered);
    }
    let mut reader = PartitionReader::new(config, partition.clone()).map_err(|e| e.to_string())?;
    // A long changelog may take several reads: each that makes progress goes on.
    let mut records = Vec::new();
    let mut reached = low;
    while reached < high {
        let read = reader.read_available(reached, high, config.timeout());
        if read.reached == reached {
            let why = read.stopped.unwrap_or_else(|| "no progress".into());
            return Err(format!("{partition}: {why}"));
        }
        reached = read.reached;
        records.extend(read.records);
    }
    // Updates by batch `(writer, batch)`, until its marker says whether they count.
    let mut uncommitted: HashMap<(u64, u64), Vec<EncodedUpdate>> = HashMap::new();
    for record in records {
        let Some(value) = record.value else { continue };
        let entry: Entry =
            decode(&value).map_err(|e| format!("{partition} offset {}: {e}", record.offset))?;
        match entry {
            Entry::Update {
                writer,
                batch,
                state,
            } => uncommitted
                .entry((writer, batch))
                .or_default()
                .push((record.key.unwrap_or_default(), state)),
            Entry::Marker(marker) => {
                let updates = uncommitted.remove(&(marker.writer, marker.batch));
                let follows = recovered
                    .marker
                    .as_ref()
                    .is_none_or(|last| last.until == marker.from);
                if follows {
                    for (key, state) in updates.into_iter().flatten() {
                        match state {
                            Some(state) => recovered.states.insert(key, state),
                            None => recovered.states.remove(&key),
                        };
                    }
                    recovered.marker = Some(marker);
                }
            }
        }
    }
    Ok(recovered)
}

/// How far one shard of a keyed operation is, as its changelog says.
///
/// ```
/// use dstream::kafka::ShardProgress;
/// let shard = ShardProgress { shard: 0, applied: 12, position: 12, keys: 5 };
/// assert_eq!(shard.applied, 12);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardProgress {
    /// The shard: its partition of the repartition and changelog topics.
    pub shard: i32,
    /// The pairs it applied since its start (each pair once, however often it was
    /// written to the repartition topic).
    pub applied: u64,
    /// The repartition topic offset it has applied up to.
    pub position: i64,
    /// The keys it holds state for.
    pub keys: usize,
}

impl ShardProgress {
    pub(super) fn of(shard: i32, recovered: &Recovered) -> Self {
        ShardProgress {
            shard,
            applied: recovered.marker.as_ref().map_or(0, |m| m.applied),
            position: recovered.marker.as_ref().map_or(0, |m| m.until),
            keys: recovered.states.len(),
        }
    }
}

struct Shard<K, S> {
    /// The epoch the shard was taken over in.
    epoch: u64,
    states: HashMap<K, S>,
    dedup: HashMap<TopicPartition, (i64, u32)>,
    position: i64,
    applied: u64,
    /// Tells this owner's batches from those of earlier owners in the changelog.
    writer: u64,
    batch: u64,
}

/// What a keyed operation does in a shard, one batch at a time.
pub(super) trait ShardOperation<K, V, S, U>: Send + Sync {
    /// Takes the values one key received in a batch (in the order the shard received
    /// them) and the key's state; returns the key's new state (`None`: none) and adds
    /// the records of the batch's stream to `out`.
    fn apply(
        &self,
        time: Time,
        key: &K,
        values: Vec<V>,
        state: Option<S>,
        out: &mut Vec<U>,
    ) -> Option<S>;

    /// Whether the batch at `time` also [visits](Self::visit) the keys that received
    /// nothing in it.
    fn visits_all(&self, _time: Time) -> bool {
        false
    }

    /// Looks at a key that received nothing in a batch that visits every key.
    fn visit(&self, _time: Time, _key: &K, _state: &mut S, _out: &mut Vec<U>) -> Visited {
        Visited::Unchanged
    }
}

/// What a [visit](ShardOperation::visit) did to a key's state.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Visited {
    Unchanged,
    Changed,
    Removed,
}

/// A keyed operation that only looks at the keys that received values.
pub(super) struct EachKey<F>(pub(super) F);

impl<F, K, V, S, U> ShardOperation<K, V, S, U> for EachKey<F>
where
    F: Fn(Time, &K, Vec<V>, Option<S>, &mut Vec<U>) -> Option<S> + Send + Sync,
{
    fn apply(
        &self,
        time: Time,
        key: &K,
        values: Vec<V>,
        state: Option<S>,
        out: &mut Vec<U>,
    ) -> Option<S> {
        (self.0)(time, key, values, state, out)
    }
}

pub(super) struct ShardInput<K, V, S, U> {
    pub(super) state: Arc<GroupState>,
    pub(super) config: KafkaConfig,
    pub(super) repartition: String,
    pub(super) changelog: Arc<str>,
    pub(super) operation: Box<dyn ShardOperation<K, V, S, U>>,
    client: BaseConsumer,
    shards: Mutex<BTreeMap<i32, Shard<K, S>>>,
    readers: Readers,
}

impl<K, V, S, U> ShardInput<K, V, S, U>
where
    K: Key + Serialize + DeserializeOwned,
    V: Send + Sync + DeserializeOwned + 'static,
    S: StateData,
    U: Data,
{
    pub(super) fn new(
        state: Arc<GroupState>,
        config: KafkaConfig,
        repartition: String,
        changelog: String,
        operation: Box<dyn ShardOperation<K, V, S, U>>,
    ) -> Result<Self> {
        let client = meta_client(&config)?;
        Ok(ShardInput {
            readers: Readers::new(config.clone()),
            state,
            config,
            repartition,
            changelog: changelog.into(),
            operation,
            client,
            shards: Mutex::new(BTreeMap::new()),
        })
    }

    fn label(&self) -> String {
        format!("kafka group {:?}", self.state.app_id)
    }

    fn take_over(&self, shard: i32, epoch: u64) -> std::result::Result<Shard<K, S>, String> {
        let recovered = recover(
            &self.config,
            &self.client,
            &TopicPartition::new(&*self.changelog, shard),
        )?;
        let mut states = HashMap::with_capacity(recovered.states.len());
        for (key, state) in &recovered.states {
            states.insert(decode::<K>(key)?, decode::<S>(state)?);
        }
        let (low, _) = self
            .client
            .fetch_watermarks(&self.repartition, shard, self.config.timeout())
            .map_err(|e| format!("{}-{shard}: {e}", self.repartition))?;
        let (position, applied, dedup) = match recovered.marker {
            Some(marker) => (
                marker.until,
                marker.applied,
                marker
                    .dedup
                    .into_iter()
                    .map(|(p, offset, index)| (p, (offset, index)))
                    .collect(),
            ),
            None => (low, 0, HashMap::new()),
        };
        if position < low {
            tracing::warn!(
                "{}: offsets {position}..{low} of {}-{shard} were deleted (retention) before shard {shard} applied them",
                self.label(),
                self.repartition
            );
        }
        tracing::info!(
            "{}: took shard {shard} of {} over: {} key(s), {applied} pair(s) applied, continuing at offset {}",
            self.label(),
            self.repartition,
            states.len(),
            position.max(low)
        );
        let mut hasher = DefaultHasher::new();
        (std::process::id(), std::time::SystemTime::now(), shard).hash(&mut hasher);
        Ok(Shard {
            epoch,
            states,
            dedup,
            position: position.max(low),
            applied,
            writer: hasher.finish(),
            batch: 0,
        })
    }

    /// Applies what the shard's repartition partition received since the last batch;
    /// the stream's records, and the changelog records that commit them.
    fn advance(
        &self,
        time: Time,
        number: i32,
        shard: &mut Shard<K, S>,
    ) -> std::result::Result<Advanced<U>, String> {
        let (_, high) = self
            .client
            .fetch_watermarks(&self.repartition, number, self.config.timeout())
            .map_err(|e| format!("{}-{number}: {e}", self.repartition))?;
        let visits = self.operation.visits_all(time);
        let from = shard.position;
        let records = if high > from {
            let reader = self
                .readers
                .reader(&TopicPartition::new(&self.repartition, number))
                .map_err(|e| e.to_string())?;
            let read = lock(&reader).read_available(from, high, self.config.timeout());
            if let Some(why) = &read.stopped {
                tracing::warn!("{}: {why}", self.label());
            }
            shard.position = read.reached;
            read.records
        } else {
            Vec::new()
        };
        if shard.position == from && !visits {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut order: Vec<K> = Vec::new();
        let mut values: HashMap<K, Vec<V>> = HashMap::new();
        let mut applied = 0u64;
        for record in &records {
            let Some(value) = &record.value else { continue };
            let pack: Pack<K, V> = decode(value)?;
            let source = TopicPartition::new(pack.topic, pack.partition);
            let mut last = shard.dedup.get(&source).copied();
            for (offset, index, key, value) in pack.pairs {
                if last.is_some_and(|last| (offset, index) <= last) {
                    continue;
                }
                last = Some((offset, index));
                match values.get_mut(&key) {
                    Some(list) => list.push(value),
                    None => {
                        order.push(key.clone());
                        values.insert(key, vec![value]);
                    }
                }
                applied += 1;
            }
            if let Some(last) = last {
                shard.dedup.insert(source, last);
            }
        }
        shard.applied += applied;
        shard.batch += 1;
        let mut out = Vec::with_capacity(order.len());
        let mut changes = Vec::with_capacity(order.len() + 1);
        let update = |key: &K, state: Option<&S>| -> std::result::Result<Outgoing, String> {
            Ok(Outgoing {
                topic: self.changelog.clone(),
                partition: number,
                key: Some(encode(key)?),
                value: encode(&Entry::Update {
                    writer: shard.writer,
                    batch: shard.batch,
                    state: state.map(encode).transpose()?,
                })?,
            })
        };
        if visits {
            let mut removed = Vec::new();
            for (key, state) in &mut shard.states {
                if values.contains_key(key) {
                    continue;
                }
                match self.operation.visit(time, key, state, &mut out) {
                    Visited::Unchanged => {}
                    Visited::Changed => changes.push(update(key, Some(state))?),
                    Visited::Removed => {
                        changes.push(update(key, None)?);
                        removed.push(key.clone());
                    }
                }
            }
            for key in removed {
                shard.states.remove(&key);
            }
        }
        for key in order {
            let list = values.remove(&key).unwrap_or_default();
            let old = shard.states.remove(&key);
            let had = old.is_some();
            let new = self.operation.apply(time, &key, list, old, &mut out);
            // A key without state before or after (a stateless operation's) needs no
            // changelog record.
            if had || new.is_some() {
                changes.push(update(&key, new.as_ref())?);
            }
            if let Some(new) = new {
                shard.states.insert(key, new);
            }
        }
        if shard.position == from && changes.is_empty() {
            // A visit that changed nothing, with nothing read: nothing to commit.
            return Ok((out, changes));
        }
        let marker = Marker {
            writer: shard.writer,
            batch: shard.batch,
            from,
            until: shard.position,
            applied: shard.applied,
            dedup: shard
                .dedup
                .iter()
                .map(|(p, (offset, index))| (p.clone(), *offset, *index))
                .collect(),
        };
        changes.push(Outgoing {
            topic: self.changelog.clone(),
            partition: number,
            key: None,
            value: encode(&Entry::Marker(marker))?,
        });
        Ok((out, changes))
    }
}

impl<K, V, S, U> InputSource<U> for ShardInput<K, V, S, U>
where
    K: Key + Serialize + DeserializeOwned,
    V: Send + Sync + DeserializeOwned + 'static,
    S: StateData,
    U: Data,
{
    fn start(&self, _ctx: &SourceContext) -> Result<()> {
        Ok(())
    }

    fn cut(&self, time: Time, env: &Arc<ExecEnv>) -> Cut<U> {
        let owned = self.state.owned_of(std::slice::from_ref(&self.repartition));
        let mut shards = lock(&self.shards);
        shards.retain(|number, shard| {
            let kept = owned
                .iter()
                .any(|(p, epoch)| p.partition == *number && *epoch == shard.epoch);
            if !kept {
                tracing::info!(
                    "{}: shard {number} of {} moved away; its state is dropped here",
                    self.label(),
                    self.repartition
                );
            }
            kept
        });
        for (partition, epoch) in &owned {
            if shards.contains_key(&partition.partition) {
                continue;
            }
            match self.take_over(partition.partition, *epoch) {
                Ok(shard) => {
                    shards.insert(partition.partition, shard);
                }
                Err(e) => tracing::warn!(
                    "{}: cannot take shard {} over yet: {e}; trying again next batch",
                    self.label(),
                    partition.partition
                ),
            }
        }
        let mut partitions = Vec::with_capacity(shards.len());
        let mut changelog = Vec::new();
        let mut failed = None;
        for (number, shard) in shards.iter_mut() {
            let advanced = match catch_panic(|| self.advance(time, *number, shard)) {
                Ok(advanced) => advanced,
                Err(unwound) => {
                    failed = Some(unwound);
                    break;
                }
            };
            match advanced {
                Ok((out, records)) => {
                    partitions.push(out);
                    changelog.extend(records);
                }
                Err(e) => {
                    tracing::error!(
                        "{}: shard {number} failed in batch {time}: {e}; it is taken over again from its changelog",
                        self.label()
                    );
                    shard.epoch = u64::MAX;
                }
            }
        }
        if let Some(unwound) = failed {
            // The user's function failed with some keys of the batch applied: every
            // shard is taken over again from its changelog (a failed batch writes none
            // of its changes there), and the failure fails the batch.
            shards.clear();
            drop(shards);
            match unwound {
                Unwound::Panic(panic) => std::panic::resume_unwind(Box::new(panic)),
                Unwound::Failed(error) => fail_computation(error),
            }
        }
        shards.retain(|_, shard| shard.epoch != u64::MAX);
        self.state.add_changelog(time, changelog);
        let rdd = if partitions.is_empty() {
            Rdd::empty_in(env.clone())
        } else {
            Rdd::from_partitions_in(partitions, env.clone())
        };
        // The pairs were counted as input records by the group's input already.
        Cut {
            rdd,
            records: 0,
            replay: None,
        }
    }

    fn has_pending(&self) -> bool {
        false
    }

    fn stop(&self) {}
}
