//! Scale-out through Kafka consumer groups: the same program on several machines.
//!
//! Processes started with one application id form a consumer group (Kafka Streams'
//! design; Kafka is the distributed system, dstream adds no cluster manager):
//!
//! - **Input**: [`KafkaGroup::input_stream`] reads only the input partitions the group
//!   assigns to this process, batch by batch on offset ranges as
//!   [`kafka_stream`](crate::StreamingContext::kafka_stream) does, and commits each
//!   batch's offsets to the group once the batch has completed. Partition-local
//!   programs (maps, filters, writes) need nothing more.
//! - **Re-keying**: [`GroupStream::repartition_by_key`] sends each record's key-value
//!   pairs through the repartition topic `<app-id>-<name>-repartition`, at the
//!   partition the key's fixed-seed hash gives, each pair tagged with its identity
//!   (input partition, offset, index).
//! - **State**: [`Repartitioned::update_state_by_key`] (and
//!   [`map_with_state`](Repartitioned::map_with_state); per batch,
//!   [`reduce_by_key`](Repartitioned::reduce_by_key)) keeps running state in shards,
//!   one per repartition partition, split among the processes by the group. Each
//!   shard's changes go to its partition of the changelog topic
//!   `<app-id>-<name>-changelog`, committed by a marker that records which pairs it has
//!   applied. A process taking a shard over rebuilds it from the changelog; no shared
//!   filesystem is assumed.
//!
//! State is exact after a crash of any process at any moment, without broker
//! transactions: replays write the same pairs, and a shard applies each pair once.
//! Outputs are at-least-once with the same values: a batch done again (its process
//! died after its outputs, before its marker) writes the same states again.
//!
//! ```no_run
//! use dstream::kafka::{KafkaConfig, KafkaGroup, KafkaMessage};
//! use dstream::StreamingContext;
//! use std::time::Duration;
//!
//! fn main() -> dstream::Result<()> {
//!     let config = KafkaConfig::from_env();
//!     let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
//!     let group = KafkaGroup::new(&ssc, "word-count", &config)?;
//!     let counts = group
//!         .input_stream(["lines"])?
//!         .repartition_by_key("counts", |record| {
//!             let text = record.value_text().unwrap_or_default().into_owned();
//!             text.split_whitespace().map(|w| (w.to_string(), 1u64)).collect::<Vec<_>>()
//!         })?
//!         .update_state_by_key(|new: &[u64], total: Option<u64>| {
//!             Some(total.unwrap_or(0) + new.iter().sum::<u64>())
//!         })?;
//!     counts.write_to_kafka(&config, "word-totals", |(word, total)| {
//!         KafkaMessage::keyed(word, total.to_string())
//!     })?;
//!     ssc.start()?;
//!     ssc.await_termination()
//! }
//! ```

mod membership;
mod repartition;
mod shard;
mod writer;

use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use membership::Assignment;
pub use shard::ShardProgress;

use super::record::{KafkaRecord, TopicPartition};
use super::{KafkaConfig, create_topic, kafka_error};
use crate::context::StreamingContext;
use crate::dstream::{DStream, State, StateData, StateSpec};
use crate::error::{Error, Result, lock};
use crate::rdd::{Data, HashPartitioner, Key};
use crate::time::Time;
use membership::{CompletionListener, GroupState};
use repartition::{GroupInput, KeyBy, Rekey};
use shard::ShardInput;
use writer::Writer;

/// One process's membership in an application's consumer group: where its group
/// input and keyed state come from. See the [module documentation](self).
///
/// ```no_run
/// use dstream::kafka::{KafkaConfig, KafkaGroup};
/// use dstream::StreamingContext;
/// use std::time::Duration;
/// # fn main() -> dstream::Result<()> {
/// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
/// let group = KafkaGroup::new(&ssc, "click-report", &KafkaConfig::from_env())?
///     .max_records_per_partition(10_000);
/// let clicks = group.input_stream(["clicks"])?;
/// clicks.count().pprint()?;
/// # Ok(())
/// # }
/// ```
pub struct KafkaGroup {
    ssc: StreamingContext,
    config: KafkaConfig,
    state: Arc<GroupState>,
    cap: Option<u64>,
    input: Mutex<bool>,
}

impl KafkaGroup {
    /// Joins (once the context starts) the consumer group `app_id` on the brokers of
    /// `config`. Every process of the application uses the same id; it also names the
    /// group's internal topics. Fails if the id is not a valid topic name part
    /// (letters, digits, `.`, `_`, `-`).
    pub fn new(
        ssc: &StreamingContext,
        app_id: impl Into<String>,
        config: &KafkaConfig,
    ) -> Result<Self> {
        let app_id = app_id.into();
        check_name("application id", &app_id)?;
        let state = GroupState::new(app_id, ssc.listener_bus());
        let writer = Arc::new(Writer::new(config)?);
        ssc.add_listener(CompletionListener {
            state: state.clone(),
            writer,
        });
        Ok(KafkaGroup {
            ssc: ssc.clone(),
            config: config.clone(),
            state,
            cap: None,
            input: Mutex::new(false),
        })
    }

    /// Reads at most `records` records per partition in one batch; the rest waits for
    /// later batches. Default: no limit.
    pub fn max_records_per_partition(mut self, records: u64) -> Self {
        self.cap = Some(records.max(1));
        self
    }

    /// The records of `topics` in the partitions the group assigns to this process.
    /// A partition taken over starts at the group's committed offset (the earliest
    /// one if the group never committed it). One input stream per group.
    pub fn input_stream<S: Into<String>>(
        &self,
        topics: impl IntoIterator<Item = S>,
    ) -> Result<GroupStream> {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        let invalid = |reason: &str| kafka_error("create the group's input_stream", reason);
        if topics.is_empty() || topics.iter().any(String::is_empty) {
            return Err(invalid("name at least one topic, and no empty topic name"));
        }
        let mut created = lock(&self.input);
        if *created {
            return Err(invalid(
                "a KafkaGroup has one input stream: name every topic in one input_stream call",
            ));
        }
        let rekeys: Arc<Mutex<Vec<Arc<dyn Rekey>>>> = Arc::default();
        let input = GroupInput::new(
            self.state.clone(),
            self.config.clone(),
            topics.clone(),
            self.cap,
            rekeys.clone(),
            self.ssc.received_counter(),
        )?;
        *created = true;
        Ok(GroupStream {
            records: self.ssc.input("kafka_group_input", input),
            ssc: self.ssc.clone(),
            config: self.config.clone(),
            state: self.state.clone(),
            topics,
            rekeys,
        })
    }

    /// The partitions and shards this process owns now, and how often that changed.
    pub fn assignment(&self) -> Assignment {
        self.state.assignment()
    }

    /// How far each shard of the keyed operation `name` of application `app_id` is, as
    /// its changelog says: what a process taking the shards over would start from.
    ///
    /// ```no_run
    /// use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// let shards = KafkaGroup::shard_progress(&KafkaConfig::from_env(), "word-count", "counts").unwrap();
    /// let applied: u64 = shards.iter().map(|s| s.applied).sum();
    /// # let _ = applied;
    /// ```
    pub fn shard_progress(
        config: &KafkaConfig,
        app_id: &str,
        name: &str,
    ) -> Result<Vec<ShardProgress>> {
        let topic = format!("{app_id}-{name}-changelog");
        let client = shard::meta_client(config)?;
        let partitions = partition_count(&client, &topic, config)?;
        (0..partitions)
            .map(|p| {
                shard::recover(config, &client, &TopicPartition::new(&topic, p))
                    .map(|recovered| ShardProgress::of(p, &recovered))
                    .map_err(|e| kafka_error(format!("read the changelog {topic:?}"), e))
            })
            .collect()
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(kafka_error(
            format!("use {name:?} as a kafka group's {what}"),
            "it names topics, so use only letters, digits, '.', '_' and '-'",
        ))
    }
}

fn partition_count(client: &BaseConsumer, topic: &str, config: &KafkaConfig) -> Result<i32> {
    let action = || format!("read the partitions of topic {topic:?}");
    let metadata = client
        .fetch_metadata(Some(topic), config.timeout())
        .map_err(|e| kafka_error(action(), e))?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    match i32::try_from(count) {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(kafka_error(
            action(),
            "the topic does not exist; create it first",
        )),
    }
}

/// The input of a [`KafkaGroup`]: a `DStream<KafkaRecord>` of the partitions this
/// process owns (it dereferences to one), from which keyed operations re-key through
/// Kafka.
#[derive(Clone)]
pub struct GroupStream {
    records: DStream<KafkaRecord>,
    ssc: StreamingContext,
    config: KafkaConfig,
    state: Arc<GroupState>,
    topics: Vec<String>,
    rekeys: Arc<Mutex<Vec<Arc<dyn Rekey>>>>,
}

impl Deref for GroupStream {
    type Target = DStream<KafkaRecord>;

    fn deref(&self) -> &DStream<KafkaRecord> {
        &self.records
    }
}

impl GroupStream {
    /// The records, as a plain stream.
    pub fn records(&self) -> DStream<KafkaRecord> {
        self.records.clone()
    }

    /// Re-keys every record into the key-value pairs `f` makes of it, through the
    /// repartition topic `<app-id>-<name>-repartition` (created with as many
    /// partitions as the input topics have at most, unless it exists), so that all
    /// pairs of a key meet in one shard, whichever process read them. `f` must be
    /// deterministic: a record read again must give the same pairs in the same order.
    /// Keys and values travel serialised (serde, bincode); every process must run the
    /// same build, so that keys hash to the same shards.
    ///
    /// Follow it with [`Repartitioned::update_state_by_key`],
    /// [`reduce_by_key`](Repartitioned::reduce_by_key) or
    /// [`map_with_state`](Repartitioned::map_with_state). Fails if `name` is not a
    /// valid topic name part or the broker cannot create the topics.
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let group = KafkaGroup::new(&ssc, "clicks-per-user", &KafkaConfig::from_env())?;
    /// let clicks = group.input_stream(["clicks"])?;
    /// let by_user = clicks.repartition_by_key("per-user", |record| {
    ///     record.key_text().map(|user| (user.into_owned(), 1u64))
    /// })?;
    /// # let _ = by_user;
    /// # Ok(())
    /// # }
    /// ```
    pub fn repartition_by_key<K, V, I>(
        &self,
        name: &str,
        f: impl Fn(&KafkaRecord) -> I + Send + Sync + 'static,
    ) -> Result<Repartitioned<K, V>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Hash + Serialize,
        V: Serialize,
    {
        check_name("keyed operation name", name)?;
        let app = &self.state.app_id;
        let repartition = format!("{app}-{name}-repartition");
        let changelog = format!("{app}-{name}-changelog");
        let client = shard::meta_client(&self.config)?;
        let mut input_partitions = 1;
        for topic in &self.topics {
            input_partitions = input_partitions.max(partition_count(&client, topic, &self.config)?);
        }
        create_topic(&self.config, &repartition, input_partitions)?;
        let shards = partition_count(&client, &repartition, &self.config)?;
        create_topic(&self.config, &changelog, shards)?;
        let changelog_partitions = partition_count(&client, &changelog, &self.config)?;
        if changelog_partitions != shards {
            return Err(kafka_error(
                format!("use the changelog topic {changelog:?}"),
                format!(
                    "it has {changelog_partitions} partitions and the repartition topic {repartition:?} has {shards}; delete both, or give the operation a new name"
                ),
            ));
        }
        let rekey: Arc<dyn Rekey> = Arc::new(KeyBy {
            topic: repartition.clone(),
            partitioner: HashPartitioner::new(usize::try_from(shards).unwrap_or(1)),
            f,
        });
        Ok(Repartitioned {
            stream: self.clone(),
            rekey,
            repartition,
            changelog,
            pairs: PhantomData,
        })
    }
}

/// Key-value pairs on their way through a repartition topic; made by
/// [`GroupStream::repartition_by_key`].
#[must_use = "pairs are re-keyed only for a keyed operation such as update_state_by_key"]
pub struct Repartitioned<K, V> {
    stream: GroupStream,
    rekey: Arc<dyn Rekey>,
    repartition: String,
    changelog: String,
    pairs: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Repartitioned<K, V>
where
    K: Key + Serialize + DeserializeOwned,
    V: Send + Sync + DeserializeOwned + 'static,
{
    /// Running state per key, as [`DStream::update_state_by_key`], kept in shards
    /// across the group's processes and backed by the changelog topic. Each batch's
    /// stream holds the keys that received pairs in that batch with their new state
    /// (keys whose state `update` removed are left out); `update` is called only for
    /// those keys, with their pairs' values in the order the shard received them.
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let group = KafkaGroup::new(&ssc, "word-count", &KafkaConfig::from_env())?;
    /// let totals = group
    ///     .input_stream(["lines"])?
    ///     .repartition_by_key("counts", |record| {
    ///         let text = record.value_text().unwrap_or_default().into_owned();
    ///         text.split_whitespace().map(|w| (w.to_string(), 1u64)).collect::<Vec<_>>()
    ///     })?
    ///     .update_state_by_key(|new: &[u64], total: Option<u64>| {
    ///         Some(total.unwrap_or(0) + new.iter().sum::<u64>())
    ///     })?;
    /// totals.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_state_by_key<S: StateData>(
        self,
        update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> Result<DStream<(K, S)>> {
        self.in_shards(
            "kafka_group_state",
            move |_, key: &K, values: Vec<V>, state: Option<S>, out: &mut Vec<(K, S)>| {
                let new = update(&values, state);
                if let Some(new) = &new {
                    out.push((key.clone(), new.clone()));
                }
                new
            },
        )
    }

    /// The values of each key reduced with `f` in each batch, as
    /// [`DStream::reduce_by_key`], but across the group: every pair of a key meets in
    /// its shard, whichever process read the record it came from. A batch's stream
    /// holds the keys that received pairs in that batch, in the shards this process
    /// owns. Each pair is reduced in exactly one batch, also after a crash (the
    /// shards' changelogs record which pairs they have taken); a batch done again
    /// after a crash may group pairs differently from the lost one.
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let group = KafkaGroup::new(&ssc, "clicks-per-second", &KafkaConfig::from_env())?;
    /// let per_user = group
    ///     .input_stream(["clicks"])?
    ///     .repartition_by_key("per-user", |record| {
    ///         record.key_text().map(|user| (user.into_owned(), 1u64))
    ///     })?
    ///     .reduce_by_key(|a, b| a + b)?;
    /// per_user.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Result<DStream<(K, V)>>
    where
        V: Data,
    {
        self.in_shards(
            "kafka_group_reduce",
            move |_, key: &K, values: Vec<V>, _: Option<()>, out: &mut Vec<(K, V)>| {
                if let Some(value) = values.into_iter().reduce(&f) {
                    out.push((key.clone(), value));
                }
                None
            },
        )
    }

    /// Running state per key with a mapping function, as [`DStream::map_with_state`],
    /// kept in shards across the group's processes like
    /// [`update_state_by_key`](Self::update_state_by_key): the function is called once
    /// for every pair, in the order its shard received them, and its results form the
    /// stream. The spec's timeout and initial state are not supported across a group
    /// yet (asking for them is an error).
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::{State, StateSpec, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let group = KafkaGroup::new(&ssc, "click-numbers", &KafkaConfig::from_env())?;
    /// // Each click, numbered per user.
    /// let numbered = group
    ///     .input_stream(["clicks"])?
    ///     .repartition_by_key("per-user", |record| {
    ///         record.key_text().map(|user| (user.into_owned(), record.offset))
    ///     })?
    ///     .map_with_state(StateSpec::function(
    ///         |user: &String, offset: Option<i64>, count: &mut State<u64>| {
    ///             let n = count.get().copied().unwrap_or(0) + 1;
    ///             count.update(n);
    ///             (user.clone(), offset, n)
    ///         },
    ///     ))?;
    /// numbered.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn map_with_state<S: StateData, M: Data>(
        self,
        spec: StateSpec<K, V, S, M>,
    ) -> Result<DStream<M>> {
        let (function, timeout, initial) = spec.into_parts();
        if timeout.is_some() || initial.is_some() {
            return Err(Error::IncompatibleStreams {
                operation: "map_with_state in a Kafka group",
                reason: "a StateSpec with a timeout or an initial state is not supported across a group yet; use the spec's function alone".into(),
            });
        }
        self.in_shards(
            "kafka_group_map_with_state",
            move |time, key: &K, values: Vec<V>, state: Option<S>, out: &mut Vec<M>| {
                let mut state = State::of(state);
                for value in values {
                    out.extend(function(time, key, Some(value), &mut state));
                }
                state.into_value()
            },
        )
    }

    /// Runs `apply` in the shards of the repartition topic, as the stream `operation`.
    fn in_shards<S: StateData, U: Data>(
        self,
        operation: &'static str,
        apply: impl Fn(Time, &K, Vec<V>, Option<S>, &mut Vec<U>) -> Option<S> + Send + Sync + 'static,
    ) -> Result<DStream<U>> {
        let stream = self.stream;
        let input = ShardInput::<K, V, S, U>::new(
            stream.state.clone(),
            stream.config.clone(),
            self.repartition,
            self.changelog,
            Box::new(apply),
        )?;
        lock(&stream.rekeys).push(self.rekey);
        Ok(stream.ssc.input(operation, input))
    }
}
