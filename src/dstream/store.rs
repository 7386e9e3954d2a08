//! The state of stateful streams (`update_state_by_key`, `map_with_state`) and
//! incremental windows (`reduce_by_key_and_window` with an inverse function).
//!
//! A [`StateStore`] holds one hash table per partition, keys placed by the same
//! partitioner as the stream's shuffles (the default hash or the one given with
//! `partitioned`), so a batch's shuffled data meets its state partition by partition. Each batch applies a [`StateStep`] to the store: steps run once, in batch
//! order (a step first runs the step before it), and update the tables in place. A
//! batch's result is a snapshot: the tables' `Arc`s. While a snapshot is held (an
//! output kept the `Rdd`), the next step copies the partition it changes; once it is
//! dropped, which is normal after the batch, the next step changes the table in place.
//!
//! [`StateCore`] keeps the steps of recent batches and is what the scheduler and the
//! checkpoint see of a stateful stream ([`StatefulStream`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use hashbrown::HashTable;
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::{GraphNode, Job};
use crate::error::{Error, Result};
use crate::rdd::materialized::SharedPartitions;
use crate::rdd::partitioner::hash_key;
use crate::rdd::shuffle::Partitioning;
use crate::rdd::{Data, Key, PartitionIter, Rdd, RddNode};
use crate::time::Time;

/// One key's state.
#[derive(Clone)]
pub(crate) struct StateEntry<K, S> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    /// `None` only while an update function runs (it takes the state by value).
    pub(crate) state: Option<S>,
    /// The batch that last gave this key data (for `map_with_state` timeouts).
    pub(crate) updated: Time,
}

/// The state of one partition.
pub(crate) type StateTable<K, S> = HashTable<StateEntry<K, S>>;

/// A state table per partition, and the last batch applied to them.
pub(crate) struct StateStore<K, S> {
    /// Where each key lives: the partitioner the stream's shuffles use, so a batch's
    /// data meets its keys' state partition by partition.
    partitioning: Partitioning<K>,
    tables: Mutex<Tables<K, S>>,
    /// The number of keys after the last update, readable without waiting for one
    /// that is running (the status page asks while batches run).
    keys: AtomicUsize,
}

struct Tables<K, S> {
    partitions: Vec<Arc<StateTable<K, S>>>,
    applied: Option<Time>,
}

/// The tables as they were after one batch.
pub(crate) type Snapshot<K, S> = Arc<Vec<Arc<StateTable<K, S>>>>;

impl<K: Key, S: Data> StateStore<K, S> {
    pub(crate) fn new(partitioning: Partitioning<K>) -> Self {
        StateStore {
            tables: Mutex::new(Tables {
                partitions: (0..partitioning.num_partitions())
                    .map(|_| Arc::new(HashTable::new()))
                    .collect(),
                applied: None,
            }),
            keys: AtomicUsize::new(0),
            partitioning,
        }
    }

    /// The number of keys after the last applied batch.
    pub(crate) fn num_keys(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    fn count_keys(&self, tables: &Tables<K, S>) {
        let keys = tables.partitions.iter().map(|table| table.len()).sum();
        self.keys.store(keys, Ordering::Relaxed);
    }

    fn tables(&self) -> MutexGuard<'_, Tables<K, S>> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn partitioning(&self) -> &Partitioning<K> {
        &self.partitioning
    }

    pub(crate) fn num_partitions(&self) -> usize {
        self.partitioning.num_partitions()
    }

    /// Updates every partition in parallel with `update(table, input)`, in place where
    /// no snapshot shares the table, and returns the new snapshot and what `update`
    /// emitted per partition. Runs inside the context's pool.
    pub(crate) fn apply<I: Send, M: Send>(
        &self,
        time: Time,
        inputs: Vec<I>,
        update: impl Fn(&mut StateTable<K, S>, I) -> Vec<M> + Sync,
    ) -> (Snapshot<K, S>, Vec<Vec<M>>) {
        let mut tables = self.tables();
        let emitted = tables
            .partitions
            .par_iter_mut()
            .zip(inputs)
            .map(|(table, input)| update(Arc::make_mut(table), input))
            .collect();
        tables.applied = Some(time);
        self.count_keys(&tables);
        (Arc::new(tables.partitions.clone()), emitted)
    }

    /// The current tables and the last batch applied to them.
    pub(crate) fn current(&self) -> (Snapshot<K, S>, Option<Time>) {
        let tables = self.tables();
        (Arc::new(tables.partitions.clone()), tables.applied)
    }

    /// Replaces the state with `entries`, each placed by the store's partitioner (which
    /// may differ from the one that saved them: a checkpoint holds no placement).
    pub(crate) fn load(&self, entries: Vec<(K, S, Time)>, applied: Time) {
        let mut partitions: Vec<StateTable<K, S>> = (0..self.num_partitions())
            .map(|_| HashTable::new())
            .collect();
        for (key, state, updated) in entries {
            let hash = hash_key(&key);
            let table = &mut partitions[self.partitioning.partition(hash, &key)];
            table.insert_unique(
                hash,
                StateEntry {
                    hash,
                    key,
                    state: Some(state),
                    updated,
                },
                |e| e.hash,
            );
        }
        let mut tables = self.tables();
        tables.partitions = partitions.into_iter().map(Arc::new).collect();
        tables.applied = Some(applied);
        self.count_keys(&tables);
    }
}

/// Serializes the entries of a snapshot as a sequence of `(key, state, updated ms)`,
/// without copying them.
pub(crate) struct EntriesOf<'a, K, S>(pub(crate) &'a [Arc<StateTable<K, S>>]);

impl<K: Serialize, S: Serialize> Serialize for EntriesOf<'_, K, S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> std::result::Result<Z::Ok, Z::Error> {
        let entries = || {
            self.0
                .iter()
                .flat_map(|t| t.iter())
                .filter_map(|e| e.state.as_ref().map(|s| (&e.key, s, e.updated.as_millis())))
        };
        let mut seq = serializer.serialize_seq(Some(entries().count()))?;
        for entry in entries() {
            seq.serialize_element(&entry)?;
        }
        seq.end()
    }
}

/// The entries of a snapshot, cloned, partition by partition.
fn snapshot_pairs<K: Clone, S: Clone>(table: &StateTable<K, S>) -> Vec<(K, S)> {
    table
        .iter()
        .filter_map(|e| e.state.clone().map(|s| (e.key.clone(), s)))
        .collect()
}

/// What a step does to the store; returns the snapshot and emitted records.
pub(crate) type Work<K, S, M> =
    Box<dyn FnOnce(&StateStore<K, S>, Time) -> (Snapshot<K, S>, Vec<Vec<M>>) + Send>;

/// One batch's change to a store. Runs at most once, after the step before it.
pub(crate) struct StateStep<K, S, M> {
    time: Time,
    store: Arc<StateStore<K, S>>,
    previous: Mutex<Option<Arc<StateStep<K, S, M>>>>,
    work: Mutex<Option<Work<K, S, M>>>,
    output: OnceLock<(Snapshot<K, S>, SharedPartitions<M>)>,
}

impl<K: Key, S: Data, M: Data> StateStep<K, S, M> {
    fn new(
        time: Time,
        store: Arc<StateStore<K, S>>,
        previous: Option<Arc<StateStep<K, S, M>>>,
        work: Work<K, S, M>,
    ) -> Self {
        StateStep {
            time,
            store,
            previous: Mutex::new(previous),
            work: Mutex::new(Some(work)),
            output: OnceLock::new(),
        }
    }

    /// Applies the step (the previous one first) and returns its snapshot and output.
    pub(crate) fn run(&self) -> &(Snapshot<K, S>, SharedPartitions<M>) {
        self.output.get_or_init(|| {
            // Taking the link also releases the previous snapshot, so that this step
            // can update the tables in place.
            let previous = self
                .previous
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(previous) = previous {
                previous.run();
            }
            let work = self
                .work
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            match work {
                Some(work) => {
                    let (snapshot, emitted) = work(&self.store, self.time);
                    (snapshot, Arc::new(emitted))
                }
                None => (self.store.current().0, Arc::new(Vec::new())),
            }
        })
    }
}

/// A step's state after the batch, as an `Rdd` of `(key, state)`.
pub(crate) struct SnapshotView<K, S, M> {
    pub(crate) step: Arc<StateStep<K, S, M>>,
}

impl<K: Key, S: Data, M: Data> RddNode<(K, S)> for SnapshotView<K, S, M> {
    fn num_partitions(&self) -> usize {
        self.step.store.num_partitions()
    }

    fn prepare(&self) {
        self.step.run();
    }

    fn compute(&self, partition: usize) -> PartitionIter<(K, S)> {
        let snapshot = self.step.run().0.clone();
        Box::new(snapshot_pairs(&snapshot[partition]).into_iter())
    }
}

/// What a step emitted (the mapped records of `map_with_state`), as an `Rdd`.
pub(crate) struct EmittedView<K, S, M> {
    pub(crate) step: Arc<StateStep<K, S, M>>,
}

impl<K: Key, S: Data, M: Data> RddNode<M> for EmittedView<K, S, M> {
    fn num_partitions(&self) -> usize {
        self.step.store.num_partitions()
    }

    fn prepare(&self) {
        self.step.run();
    }

    fn compute(&self, partition: usize) -> PartitionIter<M> {
        let emitted = self.step.run().1.clone();
        Box::new(crate::rdd::materialized::ClonedPartition::new(
            emitted, partition,
        ))
    }
}

/// How one kind of stateful stream makes its steps.
pub(crate) trait Stepper<K, S, M>: Send + Sync + 'static {
    /// The operation, for messages: `update_state_by_key`.
    fn operation(&self) -> &'static str;

    /// The work of the batch at `time`, or `None` if the stream has no batch then.
    fn work(&self, time: Time) -> Option<Work<K, S, M>>;

    /// Extra data a checkpoint needs besides the store (a window's recent slices).
    fn encode_extra(&self, _upto: Time) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Restores what [`encode_extra`](Stepper::encode_extra) saved.
    fn restore_extra(&self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// The steps of recent batches, by batch time.
type Steps<K, S, M> = BTreeMap<Time, Arc<StateStep<K, S, M>>>;

/// A stateful stream: its store, the steps of recent batches, and how to make them.
pub(crate) struct StateCore<K, S, M> {
    store: Arc<StateStore<K, S>>,
    stepper: Box<dyn Stepper<K, S, M>>,
    slide: Duration,
    steps: Mutex<Steps<K, S, M>>,
    /// The stream users see, which names this state in checkpoints and messages.
    stream: OnceLock<Arc<dyn GraphNode>>,
    checkpoint_interval: Mutex<Option<Duration>>,
    /// Set by `accept_checkpointed_types`: recovery may restore other recorded types.
    accepts_any_types: AtomicBool,
}

impl<K: Key, S: Data, M: Data> StateCore<K, S, M> {
    pub(crate) fn new(
        store: Arc<StateStore<K, S>>,
        slide: Duration,
        stepper: impl Stepper<K, S, M>,
    ) -> Self {
        StateCore {
            store,
            stepper: Box::new(stepper),
            slide,
            steps: Mutex::new(BTreeMap::new()),
            stream: OnceLock::new(),
            checkpoint_interval: Mutex::new(None),
            accepts_any_types: AtomicBool::new(false),
        }
    }

    fn steps(&self) -> MutexGuard<'_, Steps<K, S, M>> {
        self.steps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How a stream shows this state's steps: through `view`, on `env`.
    pub(crate) fn view<T>(
        self: &Arc<Self>,
        view: ViewFn<K, S, M, T>,
        env: &Arc<crate::rdd::ExecEnv>,
    ) -> StepView<K, S, M, T> {
        StepView {
            core: self.clone(),
            view,
            env: env.clone(),
        }
    }

    /// The step of the batch at `time`, made on first request.
    pub(crate) fn step(&self, time: Time) -> Option<Arc<StateStep<K, S, M>>> {
        let valid = self
            .stream
            .get()
            .is_some_and(|stream| stream.meta().is_valid_time(time));
        if !valid {
            return None;
        }
        if let Some(step) = self.steps().get(&time) {
            return Some(step.clone());
        }
        let work = self.stepper.work(time)?;
        let mut steps = self.steps();
        if let Some(step) = steps.get(&time) {
            return Some(step.clone());
        }
        let previous = steps.get(&(time - self.slide)).cloned();
        let step = Arc::new(StateStep::new(time, self.store.clone(), previous, work));
        steps.insert(time, step.clone());
        Some(step)
    }
}

/// How many keys a stateful stream holds, as
/// [`StreamingContext::state_sizes`](crate::StreamingContext::state_sizes) reports it.
///
/// ```
/// use dstream::{ManualClock, RddQueue, StreamingConfig, StreamingContext};
/// use std::time::Duration;
/// # fn main() -> dstream::Result<()> {
/// let ssc = StreamingContext::builder()
///     .config(StreamingConfig {
///         batch_interval: Duration::from_secs(1),
///         ..StreamingConfig::default()
///     })
///     .clock(ManualClock::default())
///     .build()?;
/// let totals = ssc
///     .queue_stream(&RddQueue::<(String, u32)>::new(), true, None)
///     .update_state_by_key(|new: &[u32], total: Option<u32>| Some(new.iter().sum::<u32>() + total.unwrap_or(0)))
///     .name("totals");
/// totals.pprint()?;
/// let sizes = ssc.state_sizes();
/// assert_eq!(sizes[0].stream, "#1 update_state_by_key \"totals\"");
/// assert_eq!((sizes[0].operation, sizes[0].keys), ("update_state_by_key", 0));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StateSize {
    /// The id of the stream that shows the state (its registration order).
    pub stream_id: usize,
    /// The stream, as messages name it: `#3 update_state_by_key "totals"`.
    pub stream: String,
    /// `update_state_by_key`, `map_with_state` or `reduce_by_key_and_window`.
    pub operation: &'static str,
    /// Keys held after the last batch that updated the state.
    pub keys: usize,
}

/// A stateful stream as the scheduler and the checkpoint see it.
pub(crate) trait StatefulStream: Send + Sync + 'static {
    /// The user-visible stream this state belongs to.
    fn stream(&self) -> Option<Arc<dyn GraphNode>>;

    /// Makes `stream` the one that names this state in checkpoints and messages.
    fn attach(&self, stream: Arc<dyn GraphNode>);

    /// The operation, for messages.
    fn operation(&self) -> &'static str;

    /// The interval set with `checkpoint_interval`, if any.
    fn checkpoint_interval(&self) -> Option<Duration>;

    fn set_checkpoint_interval(&self, interval: Duration);

    /// Work that applies the batch at `time` to the state even if no output reads the
    /// stream then: state advances every batch, in order.
    fn maintenance(&self, time: Time) -> Option<Job>;

    /// Forgets the steps of batches up to `time`.
    fn forget_before(&self, time: Time);

    /// The state after the last applied batch, encoded for a checkpoint.
    fn encode(&self) -> Result<Vec<u8>>;

    /// Replaces the state with a checkpoint's, as of batch `time`.
    fn restore(&self, bytes: &[u8], time: Time) -> Result<()>;

    /// The number of keys in the state after the last applied batch; cheap, and does
    /// not wait for a batch that is updating the state.
    fn num_keys(&self) -> usize;

    /// What the state stores (and checkpoints), as [`std::any::type_name`] names it:
    /// `(K, S)`, the key and state types, or the key and value types of a window.
    fn stored_types(&self) -> &'static str;

    /// Whether recovery may restore a checkpoint that recorded other types.
    fn accepts_any_types(&self) -> bool;

    /// Lets recovery restore a checkpoint that recorded other types.
    fn accept_any_types(&self);
}

/// The checkpointed form of one stateful stream.
#[derive(serde::Deserialize)]
struct SavedState<K, S> {
    entries: Vec<(K, S, i64)>,
    extra: Vec<u8>,
}

#[derive(Serialize)]
struct SavingState<'a, K, S> {
    entries: EntriesOf<'a, K, S>,
    extra: Vec<u8>,
}

impl<K, S, M> StateCore<K, S, M>
where
    K: Key + Serialize + DeserializeOwned,
    S: Data + Serialize + DeserializeOwned,
    M: Data,
{
    fn describe(&self) -> String {
        self.stream.get().map_or_else(
            || self.stepper.operation().to_string(),
            |s| s.meta().describe(),
        )
    }
}

impl<K, S, M> StatefulStream for StateCore<K, S, M>
where
    K: Key + Serialize + DeserializeOwned,
    S: Data + Serialize + DeserializeOwned,
    M: Data,
{
    fn stream(&self) -> Option<Arc<dyn GraphNode>> {
        self.stream.get().cloned()
    }

    fn attach(&self, stream: Arc<dyn GraphNode>) {
        let _ = self.stream.set(stream);
    }

    fn operation(&self) -> &'static str {
        self.stepper.operation()
    }

    fn checkpoint_interval(&self) -> Option<Duration> {
        *self
            .checkpoint_interval
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_checkpoint_interval(&self, interval: Duration) {
        *self
            .checkpoint_interval
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(interval);
    }

    fn maintenance(&self, time: Time) -> Option<Job> {
        let step = self.step(time)?;
        Some(Box::new(move || {
            step.run();
            Ok(())
        }))
    }

    fn forget_before(&self, time: Time) {
        let mut steps = self.steps();
        let kept = steps.split_off(&Time::from_millis(time.as_millis() + 1));
        *steps = kept;
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let (snapshot, applied) = self.store.current();
        let extra = match applied {
            Some(time) => self.stepper.encode_extra(time)?,
            None => Vec::new(),
        };
        let saving = SavingState {
            entries: EntriesOf(&snapshot),
            extra,
        };
        crate::checkpoint::encode(&saving).map_err(|reason| Error::Codec {
            action: "encode",
            stream: self.describe(),
            reason,
        })
    }

    fn restore(&self, bytes: &[u8], time: Time) -> Result<()> {
        let saved: SavedState<K, S> =
            crate::checkpoint::decode(bytes).map_err(|reason| Error::Codec {
                action: "decode",
                stream: self.describe(),
                reason,
            })?;
        let entries = saved
            .entries
            .into_iter()
            .map(|(k, s, updated)| (k, s, Time::from_millis(updated)))
            .collect();
        self.store.load(entries, time);
        self.stepper.restore_extra(&saved.extra)
    }

    fn num_keys(&self) -> usize {
        self.store.num_keys()
    }

    fn stored_types(&self) -> &'static str {
        std::any::type_name::<(K, S)>()
    }

    fn accepts_any_types(&self) -> bool {
        self.accepts_any_types.load(Ordering::Relaxed)
    }

    fn accept_any_types(&self) {
        self.accepts_any_types.store(true, Ordering::Relaxed);
    }
}

/// Makes the `Rdd` node a stream shows of a step.
pub(crate) type ViewFn<K, S, M, T> = fn(Arc<StateStep<K, S, M>>) -> Box<dyn RddNode<T>>;

/// A view of a stateful stream's steps as the `Rdd`s of a stream.
pub(crate) struct StepView<K, S, M, T> {
    core: Arc<StateCore<K, S, M>>,
    view: ViewFn<K, S, M, T>,
    env: Arc<crate::rdd::ExecEnv>,
}

impl<K: Key, S: Data, M: Data, T: Data> super::Compute<T> for StepView<K, S, M, T> {
    fn compute(&self, time: Time) -> Option<Rdd<T>> {
        let step = self.core.step(time)?;
        Some(Rdd::from_boxed_node((self.view)(step), self.env.clone()))
    }
}

/// A step's snapshot as a boxed node (for [`StepView`]).
pub(crate) fn snapshot_view<K: Key, S: Data, M: Data>(
    step: Arc<StateStep<K, S, M>>,
) -> Box<dyn RddNode<(K, S)>> {
    Box::new(SnapshotView { step })
}

/// A step's emitted records as a boxed node (for [`StepView`]).
pub(crate) fn emitted_view<K: Key, S: Data, M: Data>(
    step: Arc<StateStep<K, S, M>>,
) -> Box<dyn RddNode<M>> {
    Box::new(EmittedView { step })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdd::{HashPartitioner, Partitioner};

    fn counts(store: &StateStore<String, i64>) -> Vec<(String, i64)> {
        let (snapshot, _) = store.current();
        let mut all: Vec<_> = snapshot.iter().flat_map(|t| snapshot_pairs(t)).collect();
        all.sort();
        all
    }

    fn add_words(
        store: &StateStore<String, i64>,
        time: Time,
        words: &[&str],
    ) -> Snapshot<String, i64> {
        let mut inputs: Vec<Vec<String>> = vec![Vec::new(); store.num_partitions()];
        for w in words {
            inputs[store.partitioning().partition_of_key(&w.to_string())].push(w.to_string());
        }
        store
            .apply(time, inputs, |table, words| {
                for word in words {
                    let hash = hash_key(&word);
                    match table.find_mut(hash, |e| e.key == word) {
                        Some(e) => *e.state.as_mut().unwrap() += 1,
                        None => {
                            table.insert_unique(
                                hash,
                                StateEntry {
                                    hash,
                                    key: word,
                                    state: Some(1),
                                    updated: time,
                                },
                                |e| e.hash,
                            );
                        }
                    }
                }
                Vec::<()>::new()
            })
            .0
    }

    #[test]
    fn updates_in_place_unless_a_snapshot_is_held() {
        let store = StateStore::new(Partitioning::hash(2));
        let first = add_words(&store, Time::from_millis(1), &["a", "b", "a"]);
        let first_tables: Vec<*const StateTable<String, i64>> =
            first.iter().map(Arc::as_ptr).collect();
        // The snapshot is held: the next update must copy, and the snapshot must not change.
        let second = add_words(&store, Time::from_millis(2), &["a", "c"]);
        let held: Vec<(String, i64)> = {
            let mut v: Vec<_> = first.iter().flat_map(|t| snapshot_pairs(t)).collect();
            v.sort();
            v
        };
        assert_eq!(held, vec![("a".into(), 2), ("b".into(), 1)]);
        assert_eq!(
            counts(&store),
            vec![("a".into(), 3), ("b".into(), 1), ("c".into(), 1)]
        );
        assert_eq!(store.num_keys(), 3);
        drop((first, second));
        // Nothing held: the tables are updated where they are.
        let before: Vec<*const StateTable<String, i64>> =
            store.current().0.iter().map(Arc::as_ptr).collect();
        add_words(&store, Time::from_millis(3), &["a", "b", "c", "d"]);
        let after: Vec<*const StateTable<String, i64>> =
            store.current().0.iter().map(Arc::as_ptr).collect();
        assert_eq!(before, after);
        assert_ne!(first_tables, after);
    }

    #[test]
    fn loading_places_keys_by_the_partitioner() {
        let store: StateStore<String, i64> = StateStore::new(Partitioning::hash(3));
        store.load(
            (0..30)
                .map(|i| (format!("k{i}"), i, Time::from_millis(5)))
                .collect(),
            Time::from_millis(5),
        );
        let (snapshot, applied) = store.current();
        assert_eq!(applied, Some(Time::from_millis(5)));
        assert_eq!(store.num_keys(), 30);
        for (index, table) in snapshot.iter().enumerate() {
            for entry in table.iter() {
                assert_eq!(
                    Partitioner::partition(&HashPartitioner::new(3), &entry.key),
                    index
                );
            }
        }
        assert_eq!(counts(&store).len(), 30);

        // By the number of its decimal digits.
        struct Digits;
        impl Partitioner<String> for Digits {
            fn num_partitions(&self) -> usize {
                2
            }
            fn partition(&self, key: &String) -> usize {
                key.len() - 2
            }
        }
        let store: StateStore<String, i64> = StateStore::new(Partitioning::of(&Arc::new(Digits)));
        store.load(
            [3, 12, 7]
                .map(|i| (format!("k{i}"), i, Time::from_millis(5)))
                .into(),
            Time::from_millis(5),
        );
        let (snapshot, _) = store.current();
        let keys: Vec<Vec<&str>> = snapshot
            .iter()
            .map(|t| {
                let mut keys: Vec<&str> = t.iter().map(|e| e.key.as_str()).collect();
                keys.sort();
                keys
            })
            .collect();
        assert_eq!(keys, vec![vec!["k3", "k7"], vec!["k12"]]);
    }
}
