//! State that lives across batches: `update_state_by_key` and `map_with_state`.
//!
//! Both shuffle each batch's pairs by key into the partitions of their
//! [`StateStore`](super::store::StateStore) and update the state there, in place.
//! `update_state_by_key` calls its function for every key each batch, as Spark does;
//! `map_with_state` only for the keys that have new data (and for keys timing out), so
//! a batch that touches few keys costs little however large the state is.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::partitioned::PartitionedDStream;
use super::store::{
    StateCore, StateEntry, StateStore, StateTable, Stepper, Work, emitted_view, snapshot_view,
};
use super::{DStream, GraphNode, StreamNode};
use crate::error::{Error, Result, fail_computation};
use crate::rdd::shuffle::{self, Aggregator, Partitioning, Table};
use crate::rdd::{Data, Key, Partitioner, Rdd};
use crate::time::{Time, is_positive_multiple};

/// What state must be: [`Data`] that a checkpoint can save and load.
pub trait StateData: Data + Serialize + DeserializeOwned {}
impl<T: Data + Serialize + DeserializeOwned> StateData for T {}

type UpdateFn<V, S> = dyn Fn(Time, &[V], Option<S>) -> Option<S> + Send + Sync;

/// Runs the work it is given, once: what a partition's updates run inside (see
/// [`DStream::update_state_by_key_scoped`]).
pub type PartitionScope = dyn Fn(&mut dyn FnMut()) + Send + Sync;

/// A state to start from, handed to the first step only.
struct InitialState<K, S>(Mutex<Option<Rdd<(K, S)>>>);

impl<K: Key, S: Data> InitialState<K, S> {
    fn new(initial: Option<Rdd<(K, S)>>) -> Self {
        InitialState(Mutex::new(initial))
    }

    fn take(&self) -> Option<Rdd<(K, S)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Puts the initial state in `store` if it is empty (no checkpoint restored it).
    fn load(initial: Option<Rdd<(K, S)>>, store: &StateStore<K, S>, time: Time) {
        if let Some(initial) = initial
            && store.current().1.is_none()
        {
            let entries = initial
                .collect()
                .into_iter()
                .map(|(k, s)| (k, s, time))
                .collect();
            store.load(entries, time - Duration::from_millis(1));
        }
    }
}

/// A batch's values grouped by key, one table per partition of `store`.
fn new_values<K: Key, V: Data, S: Data>(
    batch: &Rdd<(K, V)>,
    store: &StateStore<K, S>,
) -> Vec<Table<K, Vec<V>>> {
    shuffle::combine(batch, store.partitioning(), &Aggregator::grouping())
}

/// The stepper of `update_state_by_key`.
struct UpdateByKey<K, V, S> {
    parent: Arc<StreamNode<(K, V)>>,
    update: Arc<UpdateFn<V, S>>,
    initial: InitialState<K, S>,
    scope: Option<Arc<PartitionScope>>,
}

impl<K: Key, V: Data, S: Data> Stepper<K, S, ()> for UpdateByKey<K, V, S> {
    fn operation(&self) -> &'static str {
        "update_state_by_key"
    }

    fn work(&self, time: Time) -> Option<Work<K, S, ()>> {
        let batch = self.parent.get_or_compute(time)?;
        let (initial, update) = (self.initial.take(), self.update.clone());
        let scope = self.scope.clone();
        Some(Box::new(move |store, time| {
            InitialState::load(initial, store, time);
            store.apply(time, new_values(&batch, store), |table, new| {
                match &scope {
                    Some(scope) => {
                        let mut new = Some(new);
                        scope(&mut || {
                            if let Some(new) = new.take() {
                                update_every_key(table, new, &*update, time);
                            }
                        });
                    }
                    None => update_every_key(table, new, &*update, time),
                }
                Vec::new()
            })
        }))
    }
}

/// An update function that does not need the batch time.
fn without_time<V, S>(
    update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
) -> impl Fn(Time, &[V], Option<S>) -> Option<S> + Send + Sync + 'static {
    move |_, values, state| update(values, state)
}

/// Calls `update` for every key that has state or new values, as Spark's
/// `updateStateByKey`; `None` removes the key.
fn update_every_key<K: Key, V, S>(
    table: &mut StateTable<K, S>,
    mut new: Table<K, Vec<V>>,
    update: &UpdateFn<V, S>,
    time: Time,
) {
    table.retain(|entry| {
        let values = new
            .find_entry(entry.hash, |slot| slot.key == entry.key)
            .ok()
            .and_then(|found| found.remove().0.value)
            .unwrap_or_default();
        match update(time, &values, entry.state.take()) {
            Some(state) => {
                entry.state = Some(state);
                if !values.is_empty() {
                    entry.updated = time;
                }
                true
            }
            None => false,
        }
    });
    for slot in new {
        let values = slot.value.unwrap_or_default();
        if let Some(state) = update(time, &values, None) {
            table.insert_unique(
                slot.hash,
                StateEntry {
                    hash: slot.hash,
                    key: slot.key,
                    state: Some(state),
                    updated: time,
                },
                |e| e.hash,
            );
        }
    }
}

impl<K: Data, V: Data> DStream<(K, V)> {
    /// Keeps a state per key across batches, as Spark's `updateStateByKey`: each
    /// batch, `update(new_values, previous_state)` is called for every key that has new
    /// values or a state, and its result is the key's new state (`None` removes the
    /// key). The stream's batches are the whole state after each batch. The state is
    /// hashed into as many partitions as there are worker threads; with
    /// [`partitioned`](DStream::partitioned), into those of the partitioner given.
    ///
    /// Needs a checkpoint directory ([`StreamingContext::checkpoint`]); the state is
    /// saved there and recovered by
    /// [`StreamingContext::get_or_create`](crate::StreamingContext::get_or_create).
    ///
    /// [`StreamingContext::checkpoint`]: crate::StreamingContext::checkpoint
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// ssc.checkpoint(std::env::temp_dir().join("dstream-doc-update-state"))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// // The seed's updateFunc: add the new values to the previous running count.
    /// let running_counts = pairs.update_state_by_key(|new_values: &[i32], running: Option<i32>| {
    ///     Some(new_values.iter().sum::<i32>() + running.unwrap_or(0))
    /// });
    /// running_counts.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_state_by_key<S: StateData>(
        &self,
        update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
    {
        self.with_default_partitions().update_state_by_key(update)
    }

    /// [`update_state_by_key`](DStream::update_state_by_key) starting from the
    /// state in `initial` (used when no checkpoint is recovered).
    pub fn update_state_by_key_with_initial<S: StateData>(
        &self,
        update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        initial: Rdd<(K, S)>,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
    {
        self.with_default_partitions()
            .update_state_by_key_with_initial(update, initial)
    }

    /// [`update_state_by_key`](DStream::update_state_by_key) from `initial` if given,
    /// with each partition's calls of `update` made inside one call of `scope`. A
    /// language binding uses it to hold its interpreter's lock across a partition's
    /// calls rather than take it per key (the Python package does). `scope` must run
    /// the work it is given exactly once.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// ssc.checkpoint(std::env::temp_dir().join("dstream-doc-update-scoped"))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let totals = pairs.partitioned(2).update_state_by_key_scoped(
    ///     |new: &[i32], total: Option<i32>| Some(new.iter().sum::<i32>() + total.unwrap_or(0)),
    ///     None,
    ///     |work| work(), // for example: take a lock, run the work, let go
    /// );
    /// # let _ = totals;
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_state_by_key_scoped<S: StateData>(
        &self,
        update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        initial: Option<Rdd<(K, S)>>,
        scope: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
    {
        self.with_default_partitions()
            .update_state_by_key_scoped(update, initial, scope)
    }

    /// [`update_state_by_key`](DStream::update_state_by_key) with a function that
    /// also receives the batch time, as Spark's `updateStateByKey` variants that take
    /// `(Time, K, Seq[V], Option[S])`.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext, Time};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// ssc.checkpoint(std::env::temp_dir().join("dstream-doc-update-time"))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, u32)>::new(), true, None);
    /// // The running count and the last batch that changed it.
    /// let totals = pairs.update_state_by_key_with_time(
    ///     |time: Time, new: &[u32], last: Option<(u32, Time)>| {
    ///         let (count, changed) = last.unwrap_or((0, time));
    ///         Some(if new.is_empty() { (count, changed) } else { (count + new.iter().sum::<u32>(), time) })
    ///     },
    /// );
    /// # let _ = totals;
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_state_by_key_with_time<S: StateData>(
        &self,
        update: impl Fn(Time, &[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
    {
        self.with_default_partitions()
            .update_state_by_key_with_time(update)
    }

    fn update_state<S: StateData>(
        &self,
        update: impl Fn(Time, &[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        partitioning: Partitioning<K>,
        initial: Option<Rdd<(K, S)>>,
        scope: Option<Arc<PartitionScope>>,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
    {
        let store = Arc::new(StateStore::new(partitioning));
        let core = Arc::new(StateCore::new(
            store.clone(),
            self.slide_duration(),
            UpdateByKey {
                parent: self.node().clone(),
                update: Arc::new(update),
                initial: InitialState::new(initial),
                scope,
            },
        ));
        let stream = self.derive(
            "update_state_by_key",
            core.view(snapshot_view, self.registry().env()),
        );
        self.registry()
            .register_stateful(core, stream.node().clone());
        stream
    }
}

impl<K: Data, V: Data, P: Send + Sync + 'static> PartitionedDStream<(K, V), P> {
    /// [`DStream::update_state_by_key`] with the state kept in this partitioner's
    /// partitions: each batch's pairs are shuffled with it, and a key's state lives in
    /// the partition it names.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let running_counts = pairs.partitioned(16).update_state_by_key(|new: &[i32], running: Option<i32>| {
    ///     Some(new.iter().sum::<i32>() + running.unwrap_or(0))
    /// });
    /// # let _ = running_counts;
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_state_by_key<S: StateData>(
        &self,
        update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
        P: Partitioner<K>,
    {
        self.stream
            .update_state(without_time(update), self.partitioning(), None, None)
    }

    /// [`DStream::update_state_by_key_with_initial`] with this partitioner.
    pub fn update_state_by_key_with_initial<S: StateData>(
        &self,
        update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        initial: Rdd<(K, S)>,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
        P: Partitioner<K>,
    {
        self.stream.update_state(
            without_time(update),
            self.partitioning(),
            Some(initial),
            None,
        )
    }

    /// [`DStream::update_state_by_key_scoped`] with this partitioner.
    pub fn update_state_by_key_scoped<S: StateData>(
        &self,
        update: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        initial: Option<Rdd<(K, S)>>,
        scope: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
        P: Partitioner<K>,
    {
        self.stream.update_state(
            without_time(update),
            self.partitioning(),
            initial,
            Some(Arc::new(scope)),
        )
    }

    /// [`DStream::update_state_by_key_with_time`] with this partitioner.
    pub fn update_state_by_key_with_time<S: StateData>(
        &self,
        update: impl Fn(Time, &[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        K: Key + Serialize + DeserializeOwned,
        P: Partitioner<K>,
    {
        self.stream
            .update_state(update, self.partitioning(), None, None)
    }
}

/// A key's state as `map_with_state`'s function sees it.
///
/// ```
/// use dstream::State;
/// let mut state = State::<i32>::default();
/// assert!(!state.exists());
/// state.update(3);
/// assert_eq!(state.get(), Some(&3));
/// state.remove();
/// assert_eq!(state.get(), None);
/// ```
pub struct State<S> {
    value: Option<S>,
    timing_out: bool,
    /// `update` was called while timing out: the batch fails, as in Spark.
    updated_while_timing_out: bool,
}

impl<S> Default for State<S> {
    fn default() -> Self {
        State {
            value: None,
            timing_out: false,
            updated_while_timing_out: false,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for State<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("value", &self.value)
            .field("timing_out", &self.timing_out)
            .finish()
    }
}

impl<S> State<S> {
    /// Whether the key has a state.
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }

    /// The key's state, if any.
    pub fn get(&self) -> Option<&S> {
        self.value.as_ref()
    }

    /// Sets the key's state. Not allowed while the key is timing out (it is removed
    /// after this call, so the update would be lost): that fails the batch with
    /// [`Error::StateTimingOut`](crate::Error::StateTimingOut), as Spark refuses it.
    pub fn update(&mut self, state: S) {
        if self.timing_out {
            self.updated_while_timing_out = true;
        } else {
            self.value = Some(state);
        }
    }

    /// Removes the key's state.
    pub fn remove(&mut self) {
        self.value = None;
    }

    /// Whether the function is called because the key was idle longer than the
    /// timeout; the key is removed after this call.
    pub fn is_timing_out(&self) -> bool {
        self.timing_out
    }

    /// A key's state as a mapping function gets it, outside a timeout.
    #[cfg(feature = "kafka")] // a Kafka group's map_with_state
    pub(crate) fn of(value: Option<S>) -> Self {
        State {
            value,
            ..State::default()
        }
    }

    /// What the mapping function left.
    #[cfg(feature = "kafka")] // a Kafka group's map_with_state
    pub(crate) fn into_value(self) -> Option<S> {
        self.value
    }
}

pub(crate) type MappingFn<K, V, S, M> =
    dyn Fn(Time, &K, Option<V>, &mut State<S>) -> Option<M> + Send + Sync;

/// What [`map_with_state`](DStream::map_with_state) does: the function, and optionally
/// an idle timeout and an initial state. The state's partitioner is chosen as for
/// every keyed operation, with [`DStream::partitioned`].
///
/// ```
/// use dstream::{State, StateSpec};
/// use std::time::Duration;
///
/// // Running count per word; words unseen for a minute are dropped.
/// let spec = StateSpec::function(|word: &String, one: Option<u64>, count: &mut State<u64>| {
///     let total = count.get().copied().unwrap_or(0) + one.unwrap_or(0);
///     count.update(total);
///     (word.clone(), total)
/// })
/// .timeout(Duration::from_secs(60));
/// # let _ = spec;
/// ```
pub struct StateSpec<K, V, S, M> {
    function: Arc<MappingFn<K, V, S, M>>,
    timeout: Option<Duration>,
    initial: Option<Rdd<(K, S)>>,
}

impl<K: Key, V: Data, S: Data, M: Data> StateSpec<K, V, S, M> {
    /// A spec calling `function(key, value, state)` for every new record of a key,
    /// and once with `None` when the key times out. Its results form the stream.
    pub fn function(
        function: impl Fn(&K, Option<V>, &mut State<S>) -> M + Send + Sync + 'static,
    ) -> Self {
        StateSpec::function_with_time(move |_, key, value, state| Some(function(key, value, state)))
    }

    /// A spec calling `function(batch_time, key, value, state)`, as Spark's
    /// `StateSpec.function((time, key, value, state) => Option[M])`: a `None` result
    /// adds nothing to the stream.
    ///
    /// ```
    /// use dstream::{State, StateSpec, Time};
    ///
    /// // Emits a word only the first time it is seen, with the batch that saw it.
    /// let spec = StateSpec::function_with_time(
    ///     |time: Time, word: &String, _: Option<()>, seen: &mut State<bool>| {
    ///         if seen.exists() {
    ///             return None;
    ///         }
    ///         seen.update(true);
    ///         Some((word.clone(), time))
    ///     },
    /// );
    /// # let _ = spec;
    /// ```
    pub fn function_with_time(
        function: impl Fn(Time, &K, Option<V>, &mut State<S>) -> Option<M> + Send + Sync + 'static,
    ) -> Self {
        StateSpec {
            function: Arc::new(function),
            timeout: None,
            initial: None,
        }
    }

    /// Removes keys that received no data for `idle` (the function is called for them
    /// once more, with [`State::is_timing_out`]). Rounded up to whole batches.
    pub fn timeout(mut self, idle: Duration) -> Self {
        self.timeout = Some(idle);
        self
    }

    /// Starts from the state in `initial` (used when no checkpoint is recovered).
    pub fn initial_state(mut self, initial: Rdd<(K, S)>) -> Self {
        self.initial = Some(initial);
        self
    }
}

/// A spec taken apart: the function, the timeout, the initial state.
#[cfg(feature = "kafka")] // a Kafka group's map_with_state
pub(crate) type SpecParts<K, V, S, M> = (
    Arc<MappingFn<K, V, S, M>>,
    Option<Duration>,
    Option<Rdd<(K, S)>>,
);

#[cfg(feature = "kafka")] // a Kafka group's map_with_state
impl<K, V, S, M> StateSpec<K, V, S, M> {
    pub(crate) fn into_parts(self) -> SpecParts<K, V, S, M> {
        (self.function, self.timeout, self.initial)
    }
}

/// Per partition: keys by the batch that last gave them data, to find idle keys
/// without scanning the whole state.
type IdleIndex<K> = BTreeMap<Time, Vec<(u64, K)>>;

/// The stepper of `map_with_state`.
struct MapWithState<K, V, S, M> {
    parent: Arc<StreamNode<(K, V)>>,
    store: Arc<StateStore<K, S>>,
    function: Arc<MappingFn<K, V, S, M>>,
    timeout: Option<Duration>,
    idle: Arc<Vec<Mutex<IdleIndex<K>>>>,
    initial: InitialState<K, S>,
}

impl<K: Key, V: Data, S: Data, M: Data> Stepper<K, S, M> for MapWithState<K, V, S, M> {
    fn operation(&self) -> &'static str {
        "map_with_state"
    }

    fn work(&self, time: Time) -> Option<Work<K, S, M>> {
        let batch = self.parent.get_or_compute(time)?;
        let initial = self.initial.take();
        let (function, timeout, idle) = (self.function.clone(), self.timeout, self.idle.clone());
        let stream = self.parent.meta().describe();
        Some(Box::new(move |store, time| {
            if initial.is_some() {
                InitialState::load(initial, store, time);
                rebuild_idle_index(store, &idle);
            }
            let inputs: Vec<_> = new_values(&batch, store).into_iter().enumerate().collect();
            store.apply(time, inputs, |table, (partition, new)| {
                let mut idle = idle[partition]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let mut emitted =
                    map_new_records(table, new, &*function, time, timeout.map(|_| &mut *idle));
                if let Some(timeout) = timeout {
                    let idle_since = time - timeout;
                    time_out_idle_keys(
                        table,
                        &mut idle,
                        &*function,
                        (time, idle_since),
                        &stream,
                        &mut emitted,
                    );
                }
                emitted
            })
        }))
    }

    fn restore_extra(&self, _bytes: &[u8]) -> Result<()> {
        rebuild_idle_index(&self.store, &self.idle);
        Ok(())
    }
}

/// Calls the function for each new record, key by key, and notes touched keys in
/// the idle index (when there is a timeout).
fn map_new_records<K: Key, V, S, M>(
    table: &mut StateTable<K, S>,
    new: Table<K, Vec<V>>,
    function: &MappingFn<K, V, S, M>,
    time: Time,
    mut idle: Option<&mut IdleIndex<K>>,
) -> Vec<M> {
    let mut emitted = Vec::new();
    for slot in new {
        let previous = match table.find_entry(slot.hash, |e| e.key == slot.key) {
            Ok(found) => found.remove().0.state,
            Err(_) => None,
        };
        let mut state = State {
            value: previous,
            ..State::default()
        };
        for value in slot.value.unwrap_or_default() {
            emitted.extend(function(time, &slot.key, Some(value), &mut state));
        }
        if let Some(value) = state.value {
            if let Some(idle) = idle.as_deref_mut() {
                idle.entry(time)
                    .or_default()
                    .push((slot.hash, slot.key.clone()));
            }
            table.insert_unique(
                slot.hash,
                StateEntry {
                    hash: slot.hash,
                    key: slot.key,
                    state: Some(value),
                    updated: time,
                },
                |e| e.hash,
            );
        }
    }
    emitted
}

/// Calls the function for keys that got no data since before `idle_since` (idle for
/// longer than the timeout, as Spark counts), and removes them. A function that
/// updates such a key's state fails the batch (`stream` names the input in the error).
fn time_out_idle_keys<K: Key, V, S, M>(
    table: &mut StateTable<K, S>,
    idle: &mut IdleIndex<K>,
    function: &MappingFn<K, V, S, M>,
    (time, idle_since): (Time, Time),
    stream: &str,
    emitted: &mut Vec<M>,
) {
    let expired: Vec<Time> = idle.range(..idle_since).map(|(t, _)| *t).collect();
    for touched in expired {
        for (hash, key) in idle.remove(&touched).unwrap_or_default() {
            if let Ok(found) = table.find_entry(hash, |e| e.key == key && e.updated == touched) {
                let (entry, _) = found.remove();
                let mut state = State {
                    value: entry.state,
                    timing_out: true,
                    updated_while_timing_out: false,
                };
                emitted.extend(function(time, &entry.key, None, &mut state));
                if state.updated_while_timing_out {
                    fail_computation(Error::StateTimingOut {
                        stream: stream.to_string(),
                    });
                }
            }
        }
    }
}

/// Rebuilds the idle index from the store's entries (after loading a state).
fn rebuild_idle_index<K: Key, S: Data>(store: &StateStore<K, S>, idle: &[Mutex<IdleIndex<K>>]) {
    let (snapshot, _) = store.current();
    for (table, index) in snapshot.iter().zip(idle) {
        let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
        index.clear();
        for entry in table.iter() {
            index
                .entry(entry.updated)
                .or_default()
                .push((entry.hash, entry.key.clone()));
        }
    }
}

/// The result of [`map_with_state`](DStream::map_with_state): a stream of what the
/// function returned (this dereferences to it), and the state's snapshots.
pub struct MapWithStateStream<K, S, M> {
    mapped: DStream<M>,
    snapshots: DStream<(K, S)>,
}

impl<K, S, M> Deref for MapWithStateStream<K, S, M> {
    type Target = DStream<M>;

    fn deref(&self) -> &DStream<M> {
        &self.mapped
    }
}

impl<K: Data, S: Data, M: Data> MapWithStateStream<K, S, M> {
    /// Names the stream (see [`DStream::name`]); the name identifies its state in
    /// checkpoints.
    pub fn name(self, name: impl Into<String>) -> Self {
        MapWithStateStream {
            mapped: self.mapped.name(name),
            snapshots: self.snapshots,
        }
    }

    /// The whole state after each batch, as `(key, state)` pairs.
    pub fn state_snapshots(&self) -> DStream<(K, S)> {
        self.snapshots.clone()
    }

    /// The stream of what the function returned.
    pub fn mapped(&self) -> DStream<M> {
        self.mapped.clone()
    }
}

impl<K: Data, V: Data> DStream<(K, V)> {
    /// Keeps a state per key and maps each record with it, as Spark's `mapWithState`:
    /// the spec's function runs only for keys with new data (once per record) and for
    /// keys that time out, so a batch costs what it touches, not the whole state.
    /// Needs a checkpoint directory, like all state.
    ///
    /// ```
    /// use dstream::{RddQueue, State, StateSpec, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// ssc.checkpoint(std::env::temp_dir().join("dstream-doc-map-with-state"))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, u64)>::new(), true, None);
    /// let totals = pairs.map_with_state(StateSpec::function(
    ///     |word: &String, n: Option<u64>, total: &mut State<u64>| {
    ///         let sum = total.get().copied().unwrap_or(0) + n.unwrap_or(0);
    ///         total.update(sum);
    ///         (word.clone(), sum)
    ///     },
    /// ));
    /// totals.pprint()?;
    /// totals.state_snapshots().count().pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn map_with_state<S: StateData, M: Data>(
        &self,
        spec: StateSpec<K, V, S, M>,
    ) -> MapWithStateStream<K, S, M>
    where
        K: Key + Serialize + DeserializeOwned,
    {
        self.with_default_partitions().map_with_state(spec)
    }
}

impl<K: Data, V: Data, P: Send + Sync + 'static> PartitionedDStream<(K, V), P> {
    /// [`DStream::map_with_state`] with the state kept in this partitioner's
    /// partitions, as Spark's `StateSpec.partitioner` or `numPartitions`.
    pub fn map_with_state<S: StateData, M: Data>(
        &self,
        spec: StateSpec<K, V, S, M>,
    ) -> MapWithStateStream<K, S, M>
    where
        K: Key + Serialize + DeserializeOwned,
        P: Partitioner<K>,
    {
        let stream = &self.stream;
        let store = Arc::new(StateStore::new(self.partitioning()));
        let idle = Arc::new(
            (0..store.num_partitions())
                .map(|_| Mutex::new(BTreeMap::new()))
                .collect(),
        );
        let core = Arc::new(StateCore::new(
            store.clone(),
            stream.slide_duration(),
            MapWithState {
                parent: stream.node().clone(),
                store,
                function: spec.function,
                timeout: spec.timeout,
                idle,
                initial: InitialState::new(spec.initial),
            },
        ));
        let env = stream.registry().env();
        let mapped = stream.derive("map_with_state", core.view(emitted_view, env));
        let snapshots = mapped.derive("state_snapshots", core.view(snapshot_view, env));
        stream
            .registry()
            .register_stateful(core, mapped.node().clone());
        MapWithStateStream { mapped, snapshots }
    }
}

impl<T: Data> DStream<T> {
    /// Sets how often this stateful stream's state is checkpointed: a multiple of its
    /// slide (default: the smallest multiple of the batch interval that is at least
    /// 10 seconds). Only stateful streams have state to checkpoint.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(char, i32)>::new(), true, None);
    /// let totals = pairs
    ///     .update_state_by_key(|v: &[i32], s: Option<i32>| Some(v.iter().sum::<i32>() + s.unwrap_or(0)))
    ///     .checkpoint_interval(Duration::from_secs(5))?;
    /// assert!(pairs.checkpoint_interval(Duration::from_secs(5)).is_err());
    /// assert!(totals.checkpoint_interval(Duration::from_millis(1500)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoint_interval(self, interval: Duration) -> Result<Self> {
        if !is_positive_multiple(interval, self.slide_duration()) {
            return Err(Error::NotAMultiple {
                operation: "checkpoint_interval",
                what: "checkpoint interval",
                duration: interval,
                base_name: "stream's slide",
                base: self.slide_duration(),
            });
        }
        let id = self.node().meta().id;
        if !self.registry().set_checkpoint_interval(id, interval) {
            return Err(Error::NoState {
                operation: "checkpoint_interval",
                stream: self.node().meta().describe(),
            });
        }
        Ok(self)
    }

    /// Lets this stateful stream recover a checkpoint that recorded other types for
    /// its state, for a change that keeps how serde encodes them: a renamed or moved
    /// type, `String` keys that became `CompactString`, a newtype around the old type.
    /// Recovery otherwise refuses such a checkpoint with
    /// [`Error::StateTypeMismatch`], naming the stream and both types, since bincode
    /// would misread the state silently (an `i64` read as a `u64` comes back doubled).
    /// Call it on the stream that `update_state_by_key`, an incremental window or
    /// (through [`mapped`](MapWithStateStream::mapped))
    /// `map_with_state` returned, while building the program given to
    /// [`get_or_create`](crate::StreamingContext::get_or_create). Checkpoints written
    /// before dstream recorded state types are recovered without this check, with a
    /// warning in the log.
    ///
    /// ```
    /// use compact_str::CompactString;
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(CompactString, u64)>::new(), true, None);
    /// // The checkpoint holds (String, u64): CompactString keys are encoded alike.
    /// let totals = pairs
    ///     .update_state_by_key(|v: &[u64], s: Option<u64>| Some(v.iter().sum::<u64>() + s.unwrap_or(0)))
    ///     .name("totals")
    ///     .accept_checkpointed_types()?;
    /// assert!(pairs.accept_checkpointed_types().is_err()); // no state
    /// # let _ = totals;
    /// # Ok(())
    /// # }
    /// ```
    pub fn accept_checkpointed_types(self) -> Result<Self> {
        if !self
            .registry()
            .accept_checkpointed_types(self.node().meta().id)
        {
            return Err(Error::NoState {
                operation: "accept_checkpointed_types",
                stream: self.node().meta().describe(),
            });
        }
        Ok(self)
    }
}
