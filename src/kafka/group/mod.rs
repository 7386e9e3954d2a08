//! Scale-out through Kafka consumer groups: the same program on several machines.
//! What a user sees is on [`KafkaGroup`]. The stages: `membership` (the group member
//! and its assignment), `repartition` (the group's input and the re-keying into
//! repartition topics), `shard` (keyed state in shards backed by changelog topics),
//! and `window` and `join`, the logic of the windowed and joined keyed operations.

mod join;
mod membership;
mod repartition;
mod shard;
mod window;
mod writer;

use std::hash::Hash;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use join::Side;
use membership::{CompletionListener, GroupState};
use repartition::{GroupInput, KeyBy, PairsOf, Rekey};
use shard::{EachKey, ShardInput, ShardOperation};
use window::{Inverse, WindowReduce};
use writer::Writer;

/// One process's membership in an application's consumer group: where its group
/// input and keyed state come from.
///
/// Processes started with one application id form a consumer group (Kafka Streams'
/// design; Kafka is the distributed system, dstream adds no cluster manager):
///
/// - **Input**: [`KafkaGroup::input_stream`] reads only the input partitions the group
///   assigns to this process, batch by batch on offset ranges as
///   [`kafka_stream`](crate::StreamingContext::kafka_stream) does, and commits each
///   batch's offsets to the group once the batch has completed. Partition-local
///   programs (maps, filters, writes) need nothing more.
/// - **Re-keying**: [`GroupStream::repartition_by_key`] sends each record's key-value
///   pairs through the repartition topic `<app-id>-<name>-repartition`, at the
///   partition the key's fixed-seed hash gives, each pair tagged with its identity
///   (input partition, offset, index); a batch's pairs for one shard from one input
///   partition travel packed in one record.
/// - **State**: [`Repartitioned::update_state_by_key`] (and
///   [`map_with_state`](Repartitioned::map_with_state); per batch,
///   [`reduce_by_key`](Repartitioned::reduce_by_key); over windows,
///   [`reduce_by_key_and_window`](Repartitioned::reduce_by_key_and_window) and its
///   incremental forms) keeps running state in shards, one per repartition partition,
///   split among the processes by the group. Each shard's changes go to its partition
///   of the changelog topic `<app-id>-<name>-changelog`, committed by a marker that
///   records which pairs it has applied. A process taking a shard over rebuilds it from
///   the changelog; no shared filesystem is assumed.
/// - **Joins**: [`Repartitioned::join`] (and the outer joins and
///   [`cogroup`](Repartitioned::cogroup)) send both sides' pairs through one
///   repartition topic, so that a key's pairs of both sides meet in one shard batch.
///
/// State is exact after a crash of any process at any moment, without broker
/// transactions: replays write the same pairs, and a shard applies each pair once.
/// Outputs are at-least-once with the same values: a batch done again (its process
/// died after its outputs, before its marker) writes the same states again.
///
/// ```no_run
/// use dstream::kafka::{KafkaConfig, KafkaGroup, KafkaMessage};
/// use dstream::StreamingContext;
/// use std::time::Duration;
///
/// fn main() -> dstream::Result<()> {
///     let config = KafkaConfig::from_env();
///     let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
///     let group = KafkaGroup::new(&ssc, "word-count", &config)?;
///     let counts = group
///         .input_stream(["lines"])?
///         .repartition_by_key("counts", |record| {
///             let text = record.value_text().unwrap_or_default().into_owned();
///             text.split_whitespace().map(|w| (w.to_string(), 1u64)).collect::<Vec<_>>()
///         })?
///         .update_state_by_key(|new: &[u64], total: Option<u64>| {
///             Some(total.unwrap_or(0) + new.iter().sum::<u64>())
///         })?;
///     counts.write_to_kafka(&config, "word-totals", |(word, total)| {
///         KafkaMessage::keyed(word, total.to_string())
///     })?;
///     ssc.start()?;
///     ssc.await_termination()
/// }
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
    /// Follow it with a keyed operation: [`Repartitioned::update_state_by_key`],
    /// [`map_with_state`](Repartitioned::map_with_state),
    /// [`reduce_by_key`](Repartitioned::reduce_by_key),
    /// [`reduce_by_key_and_window`](Repartitioned::reduce_by_key_and_window) (and its
    /// incremental forms), or a join with another `Repartitioned` of the same input
    /// ([`join`](Repartitioned::join), the outer joins,
    /// [`cogroup`](Repartitioned::cogroup)). The keyed operation creates the topics, and
    /// fails if the broker cannot, or if the program has another keyed operation of the
    /// same name. Fails if `name` is not a valid topic name part.
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
        Ok(Repartitioned {
            stream: self.clone(),
            name: name.to_string(),
            pairs: Arc::new(move |record, emit| {
                for (key, value) in f(record) {
                    emit(key, value);
                }
            }),
        })
    }

    /// Creates the repartition and changelog topics of the keyed operation `name`
    /// (unless they exist), and its re-keying into the repartition topic.
    fn topics_of<K, V>(&self, name: &str, pairs: PairsOf<K, V>) -> Result<Topics>
    where
        K: Hash + Serialize + 'static,
        V: Serialize + 'static,
    {
        let app = &self.state.app_id;
        let repartition = format!("{app}-{name}-repartition");
        let changelog = format!("{app}-{name}-changelog");
        if lock(&self.rekeys).iter().any(|r| r.topic() == repartition) {
            return Err(kafka_error(
                format!("create the keyed operation {name:?}"),
                "the program has a keyed operation of that name already; give each its own name",
            ));
        }
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
            pairs,
        });
        Ok(Topics {
            rekey,
            repartition,
            changelog,
        })
    }
}

/// A keyed operation's topics, and what writes to its repartition topic.
struct Topics {
    rekey: Arc<dyn Rekey>,
    repartition: String,
    changelog: String,
}

/// Key-value pairs on their way through a repartition topic; made by
/// [`GroupStream::repartition_by_key`].
#[must_use = "pairs are re-keyed only for a keyed operation such as update_state_by_key"]
pub struct Repartitioned<K, V> {
    stream: GroupStream,
    name: String,
    pairs: PairsOf<K, V>,
}

// The joins' element types are spelled out, as `DStream`'s are.
#[allow(clippy::type_complexity)]
impl<K, V> Repartitioned<K, V>
where
    K: Key + Serialize + DeserializeOwned,
    V: Send + Sync + Serialize + DeserializeOwned + 'static,
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
            EachKey(
                move |_, key: &K, values: Vec<V>, state: Option<S>, out: &mut Vec<(K, S)>| {
                    let new = update(&values, state);
                    if let Some(new) = &new {
                        out.push((key.clone(), new.clone()));
                    }
                    new
                },
            ),
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
            EachKey(
                move |_, key: &K, values: Vec<V>, _: Option<()>, out: &mut Vec<(K, V)>| {
                    if let Some(value) = values.into_iter().reduce(&f) {
                        out.push((key.clone(), value));
                    }
                    None
                },
            ),
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
            EachKey(
                move |time, key: &K, values: Vec<V>, state: Option<S>, out: &mut Vec<M>| {
                    let mut state = State::of(state);
                    for value in values {
                        out.extend(function(time, key, Some(value), &mut state));
                    }
                    state.into_value()
                },
            ),
        )
    }

    /// The values of each key in each window merged with `f`, as
    /// [`DStream::reduce_by_key_and_window`], across the group: each shard keeps, per
    /// key, what every batch in the window reduced the key's values to (in its state,
    /// backed by the changelog), and at each slide merges them. A batch's values are
    /// those its shard took in that batch, so each pair is counted in the windows of
    /// exactly one batch, also after a crash. `length` and `slide` must be multiples of
    /// the batch interval; the stream has a window every `slide`, as in Spark.
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let group = KafkaGroup::new(&ssc, "trending", &KafkaConfig::from_env())?;
    /// let last_minute = group
    ///     .input_stream(["lines"])?
    ///     .repartition_by_key("words", |record| {
    ///         let text = record.value_text().unwrap_or_default().into_owned();
    ///         text.split_whitespace().map(|w| (w.to_string(), 1u64)).collect::<Vec<_>>()
    ///     })?
    ///     .reduce_by_key_and_window(|a, b| a + b, Duration::from_secs(60), Duration::from_secs(10))?;
    /// last_minute.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key_and_window(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>>
    where
        V: StateData,
    {
        self.windowed("kafka_group_window", f, None, length, slide)
    }

    /// The values of each key in each window merged with `f`, incrementally, as
    /// [`DStream::reduce_by_key_and_window_inv`] and the seed's
    /// `reduceByKeyAndWindow(f, invF, 20, 10)`, across the group: each slide, the
    /// previous window's value plus the batches entering, minus (with `inverse`) the
    /// batches leaving. Keys stay with their value when all their batches have left
    /// (a count of 0), as in Spark; use
    /// [`reduce_by_key_and_window_inv_with`](Self::reduce_by_key_and_window_inv_with)
    /// to drop them. Otherwise as [`reduce_by_key_and_window`](Self::reduce_by_key_and_window).
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// # let group = KafkaGroup::new(&ssc, "trending", &KafkaConfig::from_env())?;
    /// let counts = group
    ///     .input_stream(["lines"])?
    ///     .repartition_by_key("words", |record| {
    ///         let text = record.value_text().unwrap_or_default().into_owned();
    ///         text.split_whitespace().map(|w| (w.to_string(), 1i64)).collect::<Vec<_>>()
    ///     })?
    ///     .reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, Duration::from_secs(20), Duration::from_secs(10))?;
    /// counts.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key_and_window_inv(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>>
    where
        V: StateData,
    {
        self.reduce_by_key_and_window_inv_with(f, inverse, length, slide, |_, _| true)
    }

    /// [`reduce_by_key_and_window_inv`](Self::reduce_by_key_and_window_inv), keeping
    /// only the keys for which `keep(key, value)` is true, for example
    /// `|_, count| *count != 0`: the others leave the state and the stream. `keep`
    /// should only drop keys whose batches have all left the window.
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// # let group = KafkaGroup::new(&ssc, "trending", &KafkaConfig::from_env())?;
    /// let counts = group
    ///     .input_stream(["lines"])?
    ///     .repartition_by_key("words", |record| {
    ///         let text = record.value_text().unwrap_or_default().into_owned();
    ///         text.split_whitespace().map(|w| (w.to_string(), 1i64)).collect::<Vec<_>>()
    ///     })?
    ///     .reduce_by_key_and_window_inv_with(
    ///         |a, b| a + b,
    ///         |a, b| a - b,
    ///         Duration::from_secs(20),
    ///         Duration::from_secs(10),
    ///         |_, count| *count != 0,
    ///     )?;
    /// counts.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key_and_window_inv_with(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Result<DStream<(K, V)>>
    where
        V: StateData,
    {
        let inverse = Inverse {
            inverse: Box::new(inverse),
            keep: Box::new(keep),
        };
        self.windowed("kafka_group_window_inv", f, Some(inverse), length, slide)
    }

    fn windowed(
        self,
        kind: &'static str,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: Option<Inverse<K, V>>,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>>
    where
        V: StateData,
    {
        let records = &self.stream.records;
        records.check_window(kind, length, slide)?;
        let batch = records.slide_duration();
        let operation = WindowReduce {
            f: Box::new(f),
            inverse,
            length,
            slide,
            timeline: records.registry().timeline().clone(),
        };
        let windows = self.in_shards(kind, operation)?;
        // The shards emit at slide times only; this stream has an Rdd only then.
        if slide == batch {
            Ok(windows)
        } else {
            windows.window(batch, slide)
        }
    }

    /// Each key's values of both streams in each batch, as [`DStream::cogroup`], across
    /// the group: both sides' pairs go through one repartition topic,
    /// `<app-id>-<name>-join-<other name>-repartition`, so that a key's pairs of both
    /// sides meet in its shard in the batch that takes them. Both must come from the
    /// same [`GroupStream`] (read several topics with one `input_stream`, and pick each
    /// side's records in its function). Each pair is taken in exactly one batch, also
    /// after a crash; a batch done again may group pairs differently from the lost one.
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let group = KafkaGroup::new(&ssc, "orders-and-payments", &KafkaConfig::from_env())?;
    /// let records = group.input_stream(["orders", "payments"])?;
    /// let of = |topic: &'static str| {
    ///     move |record: &dstream::kafka::KafkaRecord| {
    ///         (record.topic == topic)
    ///             .then(|| record.key_text().map(|id| (id.into_owned(), record.offset)))
    ///             .flatten()
    ///     }
    /// };
    /// let orders = records.repartition_by_key("orders", of("orders"))?;
    /// let payments = records.repartition_by_key("payments", of("payments"))?;
    /// orders.cogroup(payments)?.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cogroup<W>(self, other: Repartitioned<K, W>) -> Result<DStream<(K, (Vec<V>, Vec<W>))>>
    where
        V: Data,
        W: Data + Serialize + DeserializeOwned,
    {
        self.sides("cogroup", other)?.in_shards(
            "kafka_group_cogroup",
            EachKey(
                |_, key: &K, values: Vec<Side<V, W>>, _: Option<()>, out: &mut Vec<_>| {
                    out.push((key.clone(), join::split(values)));
                    None
                },
            ),
        )
    }

    /// The pairs of both streams with the same key in the same batch, as
    /// [`DStream::join`], across the group; see [`cogroup`](Self::cogroup) for how the
    /// pairs meet.
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let group = KafkaGroup::new(&ssc, "clicks-with-views", &KafkaConfig::from_env())?;
    /// let records = group.input_stream(["clicks", "views"])?;
    /// let clicks = records.repartition_by_key("clicks", |r| {
    ///     (r.topic == "clicks").then(|| (r.key.clone(), r.offset))
    /// })?;
    /// let views = records.repartition_by_key("views", |r| {
    ///     (r.topic == "views").then(|| (r.key.clone(), r.offset))
    /// })?;
    /// clicks.join(views)?.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn join<W>(self, other: Repartitioned<K, W>) -> Result<DStream<(K, (V, W))>>
    where
        V: Data,
        W: Data + Serialize + DeserializeOwned,
    {
        self.joined("join", other, (false, false), |v, w| v.zip(w))
    }

    /// [`join`](Self::join) that keeps the left stream's pairs without a match, with
    /// `None`, as [`DStream::left_outer_join`].
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// # let group = KafkaGroup::new(&ssc, "clicks-with-views", &KafkaConfig::from_env())?;
    /// # let records = group.input_stream(["clicks", "views"])?;
    /// # let side = |topic: &'static str| move |r: &dstream::kafka::KafkaRecord| (r.topic == topic).then(|| (r.key.clone(), r.offset));
    /// let clicks = records.repartition_by_key("clicks", side("clicks"))?;
    /// let views = records.repartition_by_key("views", side("views"))?;
    /// clicks.left_outer_join(views)?.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn left_outer_join<W>(
        self,
        other: Repartitioned<K, W>,
    ) -> Result<DStream<(K, (V, Option<W>))>>
    where
        V: Data,
        W: Data + Serialize + DeserializeOwned,
    {
        self.joined("left_outer_join", other, (true, false), |v, w| {
            v.map(|v| (v, w))
        })
    }

    /// [`join`](Self::join) that keeps the right stream's pairs without a match, with
    /// `None`, as [`DStream::right_outer_join`].
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// # let group = KafkaGroup::new(&ssc, "clicks-with-views", &KafkaConfig::from_env())?;
    /// # let records = group.input_stream(["clicks", "views"])?;
    /// # let side = |topic: &'static str| move |r: &dstream::kafka::KafkaRecord| (r.topic == topic).then(|| (r.key.clone(), r.offset));
    /// let clicks = records.repartition_by_key("clicks", side("clicks"))?;
    /// let views = records.repartition_by_key("views", side("views"))?;
    /// clicks.right_outer_join(views)?.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn right_outer_join<W>(
        self,
        other: Repartitioned<K, W>,
    ) -> Result<DStream<(K, (Option<V>, W))>>
    where
        V: Data,
        W: Data + Serialize + DeserializeOwned,
    {
        self.joined("right_outer_join", other, (false, true), |v, w| {
            w.map(|w| (v, w))
        })
    }

    /// [`join`](Self::join) that keeps both streams' pairs without a match, with
    /// `None`, as [`DStream::full_outer_join`].
    ///
    /// ```no_run
    /// # use dstream::kafka::{KafkaConfig, KafkaGroup};
    /// # use dstream::StreamingContext;
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// # let group = KafkaGroup::new(&ssc, "clicks-with-views", &KafkaConfig::from_env())?;
    /// # let records = group.input_stream(["clicks", "views"])?;
    /// # let side = |topic: &'static str| move |r: &dstream::kafka::KafkaRecord| (r.topic == topic).then(|| (r.key.clone(), r.offset));
    /// let clicks = records.repartition_by_key("clicks", side("clicks"))?;
    /// let views = records.repartition_by_key("views", side("views"))?;
    /// clicks.full_outer_join(views)?.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn full_outer_join<W>(
        self,
        other: Repartitioned<K, W>,
    ) -> Result<DStream<(K, (Option<V>, Option<W>))>>
    where
        V: Data,
        W: Data + Serialize + DeserializeOwned,
    {
        self.joined("full_outer_join", other, (true, true), |v, w| Some((v, w)))
    }

    /// A join of the pairings that `outer` allows, each made into a value by `make`.
    fn joined<W, J: Data>(
        self,
        operation: &'static str,
        other: Repartitioned<K, W>,
        outer: (bool, bool),
        make: impl Fn(Option<V>, Option<W>) -> Option<J> + Send + Sync + 'static,
    ) -> Result<DStream<(K, J)>>
    where
        V: Data,
        W: Data + Serialize + DeserializeOwned,
    {
        self.sides(operation, other)?.in_shards(
            operation,
            EachKey(
                move |_, key: &K, values: Vec<Side<V, W>>, _: Option<()>, out: &mut Vec<_>| {
                    let (left, right) = join::split(values);
                    join::pairings(&left, &right, outer, |v, w| {
                        out.extend(make(v, w).map(|joined| (key.clone(), joined)));
                    });
                    None
                },
            ),
        )
    }

    /// Both streams' pairs as one, each value tagged with its side.
    fn sides<W>(
        self,
        operation: &'static str,
        other: Repartitioned<K, W>,
    ) -> Result<Repartitioned<K, Side<V, W>>>
    where
        W: Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        if !Arc::ptr_eq(&self.stream.state, &other.stream.state) {
            return Err(Error::IncompatibleStreams {
                operation,
                reason: "across a Kafka group, both sides must come from the same GroupStream: read every topic with one input_stream".into(),
            });
        }
        let (left, right) = (self.pairs, other.pairs);
        Ok(Repartitioned {
            stream: self.stream,
            name: format!("{}-join-{}", self.name, other.name),
            pairs: Arc::new(move |record, emit| {
                left(record, &mut |key, value| emit(key, Side::Left(value)));
                right(record, &mut |key, value| emit(key, Side::Right(value)));
            }),
        })
    }

    /// Runs `operation` in the shards of this operation's repartition topic, as the
    /// stream `kind`.
    fn in_shards<S: StateData, U: Data>(
        self,
        kind: &'static str,
        operation: impl ShardOperation<K, V, S, U> + 'static,
    ) -> Result<DStream<U>> {
        let stream = self.stream;
        let topics = stream.topics_of(&self.name, self.pairs)?;
        let input = ShardInput::<K, V, S, U>::new(
            stream.state.clone(),
            stream.config.clone(),
            topics.repartition,
            topics.changelog,
            Box::new(operation),
        )?;
        lock(&stream.rekeys).push(topics.rekey);
        Ok(stream.ssc.input(kind, input))
    }
}
