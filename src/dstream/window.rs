//! Windows: operations over the last `length` of a stream, every `slide`.
//!
//! Length and slide must be positive multiples of the parent stream's slide (the batch
//! interval, unless the parent is itself a window); results exist only at slide
//! boundaries, as in Spark. The parent keeps each batch's `Rdd` for as long as a window
//! needs it, and no longer.
//!
//! * [`window`](DStream::window) is the union of the batches in the window.
//! * The reductions without an inverse reduce each batch once, remember the small
//!   per-batch results, and combine those at each slide.
//! * [`reduce_by_key_and_window_inv`](DStream::reduce_by_key_and_window_inv) is
//!   incremental: `window(t) = window(t - slide) + entering batches - leaving batches`,
//!   kept in a [`StateStore`](super::store::StateStore) updated in place. Each batch is
//!   reduced once when it enters and once when it leaves, however long the window.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::partitioned::PartitionedDStream;
use super::state::StateData;
use super::store::{StateCore, StateEntry, StateStore, StateTable, Stepper, Work, snapshot_view};
use super::{Compute, DStream, StreamNode};
use crate::error::{Error, Result};
use crate::rdd::partitioner::hash_key;
use crate::rdd::shuffle::{Aggregator, Partitioning};
use crate::rdd::{Data, Key, Partitioner, Rdd};
use crate::time::{Time, is_positive_multiple};

/// The union of a parent's `Rdd`s over `(t - length, t]`.
struct Windowed<T> {
    parent: Arc<StreamNode<T>>,
    length: Duration,
}

impl<T: Data> Compute<T> for Windowed<T> {
    fn compute(&self, time: Time) -> Option<Rdd<T>> {
        let rdds = batches_in(&self.parent, time - self.length, time);
        let (first, rest) = rdds.split_first()?;
        Some(Rdd::union_all(first, rest))
    }
}

/// The parent's `Rdd`s at its batch times in `(after, upto]`.
fn batches_in<T: Data>(parent: &StreamNode<T>, after: Time, upto: Time) -> Vec<Rdd<T>> {
    let step = parent_slide(parent);
    let mut rdds = Vec::new();
    let mut time = after + step;
    while time <= upto {
        if let Some(rdd) = parent.get_or_compute(time) {
            rdds.push(rdd);
        }
        time = time + step;
    }
    rdds
}

fn parent_slide<T: Data>(parent: &StreamNode<T>) -> Duration {
    use super::GraphNode as _;
    parent.meta().slide
}

impl<T: Data> DStream<T> {
    /// Checks a window's length and slide against this stream's slide.
    pub(crate) fn check_window(
        &self,
        operation: &'static str,
        length: Duration,
        slide: Duration,
    ) -> Result<()> {
        let base = self.slide_duration();
        let base_name = if base == self.registry().timeline().batch_interval() {
            "batch interval"
        } else {
            "parent stream's slide"
        };
        for (what, duration) in [("window length", length), ("slide", slide)] {
            if !is_positive_multiple(duration, base) {
                return Err(Error::NotAMultiple {
                    operation,
                    what,
                    duration,
                    base_name,
                    base,
                });
            }
        }
        Ok(())
    }

    /// A stream of windows: each `slide`, all elements of the last `length`.
    ///
    /// ```
    /// use dstream::{Error, RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// let lines = ssc.queue_stream(&RddQueue::<String>::new(), true, None);
    /// let last_minute = lines.window(Duration::from_secs(60), Duration::from_secs(20))?;
    /// # let _ = last_minute;
    /// let err = lines.window(Duration::from_secs(25), Duration::from_secs(10)).unwrap_err();
    /// assert!(matches!(err, Error::NotAMultiple { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn window(&self, length: Duration, slide: Duration) -> Result<DStream<T>> {
        self.check_window("window", length, slide)?;
        self.node().require_lookback(length);
        self.registry().register_eager(self.node().clone());
        Ok(DStream::create(
            self.registry(),
            "window",
            slide,
            vec![self.node().clone() as Arc<dyn super::GraphNode>],
            Windowed {
                parent: self.node().clone(),
                length,
            },
        ))
    }

    /// The number of elements in each window (one element per window, 0 included).
    /// Each batch is counted once; a window adds up its batches' counts.
    pub fn count_by_window(&self, length: Duration, slide: Duration) -> Result<DStream<u64>> {
        self.check_window("count_by_window", length, slide)?;
        Ok(self
            .count()
            .window(length, slide)?
            .reduce(|a, b| a + b)
            .renamed("count_by_window"))
    }

    /// Each window's elements merged with `f`: one element per non-empty window. Each
    /// batch is reduced once; a window merges its batches' results.
    pub fn reduce_by_window(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<T>> {
        self.check_window("reduce_by_window", length, slide)?;
        let f = Arc::new(f);
        let per_batch = f.clone();
        Ok(self
            .reduce(move |a, b| per_batch(a, b))
            .window(length, slide)?
            .reduce(move |a, b| f(a, b))
            .renamed("reduce_by_window"))
    }

    fn renamed(self, kind: &'static str) -> Self {
        self.map_rdd(kind, |rdd| rdd)
    }
}

impl<T: StateData> DStream<T> {
    /// Each window's elements merged with `f`, incrementally: `inverse` takes leaving
    /// batches out of the previous window. Needs a checkpoint directory.
    pub fn reduce_by_window_inv(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        inverse: impl Fn(T, T) -> T + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<T>> {
        self.check_window("reduce_by_window_inv", length, slide)?;
        Ok(self
            .map(|x| ((), x))
            .inverse_window(
                "reduce_by_window_inv",
                f,
                inverse,
                length,
                slide,
                Partitioning::hash(1),
                None,
            )?
            .map(|(_, x)| x))
    }

    /// How often each element occurs in each window, incrementally; elements whose
    /// count falls to zero are dropped. Needs a checkpoint directory.
    pub fn count_by_value_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(T, u64)>>
    where
        T: Key,
    {
        self.with_default_partitions()
            .count_by_value_and_window(length, slide)
    }
}

impl<T: StateData, P: Send + Sync + 'static> PartitionedDStream<T, P> {
    /// [`DStream::count_by_value_and_window`] with this partitioner (of the elements).
    pub fn count_by_value_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(T, u64)>>
    where
        T: Key,
        P: Partitioner<T>,
    {
        self.stream
            .check_window("count_by_value_and_window", length, slide)?;
        self.stream.map(|x| (x, 1u64)).inverse_window(
            "count_by_value_and_window",
            |a, b| a + b,
            |a, b| a - b,
            length,
            slide,
            self.partitioning(),
            Some(Arc::new(|_: &T, count: &u64| *count != 0)),
        )
    }
}

type ReduceFn<V> = Arc<dyn Fn(V, V) -> V + Send + Sync>;
type FilterFn<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

impl<K: Data, V: Data> DStream<(K, V)> {
    /// The values of each key in each window, collected in arrival order: oldest
    /// batch first, as Spark and PySpark give them.
    pub fn group_by_key_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, Vec<V>)>>
    where
        K: Key,
    {
        self.with_default_partitions()
            .group_by_key_and_window(length, slide)
    }

    /// The values of each key in each window merged with `f`. Each batch is reduced
    /// once; a window merges its batches' results.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let windowed = pairs.reduce_by_key_and_window(|x, y| x + y, Duration::from_secs(20), Duration::from_secs(10))?;
    /// windowed.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>>
    where
        K: Key,
    {
        self.with_default_partitions()
            .reduce_by_key_and_window(f, length, slide)
    }

    /// The values of each key in each window merged with `f`, incrementally, as the
    /// seed's `reduceByKeyAndWindow(lambda x, y: x + y, lambda x, y: x - y, 20, 10)`:
    /// the previous window's result, plus the batches entering, minus (with `inverse`)
    /// the batches leaving. Keys stay with their reduced value when all their batches
    /// have left (a count of 0); use
    /// [`reduce_by_key_and_window_inv_with`](DStream::reduce_by_key_and_window_inv_with)
    /// to drop them. Needs a checkpoint directory.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// ssc.checkpoint(std::env::temp_dir().join("dstream-doc-window-inv"))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let windowed = pairs.reduce_by_key_and_window_inv(
    ///     |x, y| x + y,
    ///     |x, y| x - y,
    ///     Duration::from_secs(20),
    ///     Duration::from_secs(10),
    /// )?;
    /// windowed.pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>>
    where
        K: Key + Serialize + DeserializeOwned,
        V: StateData,
    {
        self.with_default_partitions()
            .reduce_by_key_and_window_inv(f, inverse, length, slide)
    }

    /// [`reduce_by_key_and_window_inv`](DStream::reduce_by_key_and_window_inv),
    /// keeping only the keys for which `keep(key, value)` is true, for example
    /// `|_, count| *count != 0`. `keep` should only drop keys whose batches have all
    /// left the window.
    pub fn reduce_by_key_and_window_inv_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Result<DStream<(K, V)>>
    where
        K: Key + Serialize + DeserializeOwned,
        V: StateData,
    {
        self.with_default_partitions()
            .reduce_by_key_and_window_inv_with(f, inverse, length, slide, keep)
    }

    #[allow(clippy::too_many_arguments)] // private: the public variants name them
    fn inverse_window(
        &self,
        operation: &'static str,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        partitioning: Partitioning<K>,
        keep: Option<FilterFn<K, V>>,
    ) -> Result<DStream<(K, V)>>
    where
        K: Key + Serialize + DeserializeOwned,
        V: StateData,
    {
        self.check_window(operation, length, slide)?;
        let f: ReduceFn<V> = Arc::new(f);
        let per_batch = f.clone();
        let store = Arc::new(StateStore::new(partitioning.clone()));
        // Each batch is reduced with the store's partitioner, so that partition `i` of
        // a reduced batch holds exactly the keys of the store's partition `i`.
        let reduced = self.map_rdd("reduce_by_key", move |rdd| {
            let per_batch = per_batch.clone();
            rdd.shuffle_combine(
                crate::rdd::reducing(move |a, b| per_batch(a, b)),
                partitioning.clone(),
            )
        });
        reduced.node().require_lookback(length + slide);
        self.registry().register_eager(reduced.node().clone());
        let core = Arc::new(StateCore::new(
            store.clone(),
            slide,
            InverseWindow {
                operation,
                reduced: reduced.node().clone(),
                store,
                length,
                slide,
                reduce: f,
                inverse: Arc::new(inverse),
                keep,
            },
        ));
        let stream = DStream::create(
            self.registry(),
            operation,
            slide,
            vec![reduced.node().clone() as Arc<dyn super::GraphNode>],
            core.view(snapshot_view, self.registry().env()),
        );
        self.registry()
            .register_stateful(core, stream.node().clone());
        Ok(stream)
    }
}

impl<K: Data, V: Data, P: Send + Sync + 'static> PartitionedDStream<(K, V), P> {
    /// [`DStream::group_by_key_and_window`] with this partitioner, for each batch's
    /// grouping and each window's.
    pub fn group_by_key_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, Vec<V>)>>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.stream
            .check_window("group_by_key_and_window", length, slide)?;
        let partitioning = self.partitioning();
        let concatenating = Aggregator {
            create: Arc::new(|vs| vs),
            merge_value: Arc::new(|mut a: Vec<V>, mut b| {
                a.append(&mut b);
                a
            }),
            merge_combiners: Arc::new(|mut a: Vec<V>, mut b| {
                a.append(&mut b);
                a
            }),
        };
        Ok(self
            .group_by_key()
            .window(length, slide)?
            .map_rdd("group_by_key_and_window", move |rdd| {
                rdd.shuffle_combine(concatenating.clone(), partitioning.clone())
            }))
    }

    /// [`DStream::reduce_by_key_and_window`] with this partitioner, for each batch's
    /// reduction and each window's.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let windowed = pairs
    ///     .partitioned(4)
    ///     .reduce_by_key_and_window(|x, y| x + y, Duration::from_secs(20), Duration::from_secs(10))?;
    /// # let _ = windowed;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.stream
            .check_window("reduce_by_key_and_window", length, slide)?;
        let partitioning = self.partitioning();
        let f: ReduceFn<V> = Arc::new(f);
        let per_batch = f.clone();
        let per_window = crate::rdd::reducing(move |a, b| f(a, b));
        Ok(self
            .reduce_by_key(move |a, b| per_batch(a, b))
            .window(length, slide)?
            .map_rdd("reduce_by_key_and_window", move |rdd| {
                rdd.shuffle_combine(per_window.clone(), partitioning.clone())
            }))
    }

    /// [`DStream::reduce_by_key_and_window_inv`] with the window's state kept in this
    /// partitioner's partitions.
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>>
    where
        K: Key + Serialize + DeserializeOwned,
        V: StateData,
        P: Partitioner<K>,
    {
        self.stream.inverse_window(
            "reduce_by_key_and_window",
            f,
            inverse,
            length,
            slide,
            self.partitioning(),
            None,
        )
    }

    /// [`DStream::reduce_by_key_and_window_inv_with`] with the window's state kept in
    /// this partitioner's partitions.
    pub fn reduce_by_key_and_window_inv_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Result<DStream<(K, V)>>
    where
        K: Key + Serialize + DeserializeOwned,
        V: StateData,
        P: Partitioner<K>,
    {
        self.stream.inverse_window(
            "reduce_by_key_and_window",
            f,
            inverse,
            length,
            slide,
            self.partitioning(),
            Some(Arc::new(keep)),
        )
    }
}

/// The stepper of an incremental window.
struct InverseWindow<K, V> {
    operation: &'static str,
    /// Each batch reduced by key, partitioned like the store.
    reduced: Arc<StreamNode<(K, V)>>,
    store: Arc<StateStore<K, V>>,
    length: Duration,
    slide: Duration,
    reduce: ReduceFn<V>,
    inverse: ReduceFn<V>,
    keep: Option<FilterFn<K, V>>,
}

impl<K, V> Stepper<K, V, ()> for InverseWindow<K, V>
where
    K: Key + Serialize + DeserializeOwned,
    V: StateData,
{
    fn operation(&self) -> &'static str {
        self.operation
    }

    fn work(&self, time: Time) -> Option<Work<K, V, ()>> {
        let entering = batches_in(&self.reduced, time - self.slide, time);
        let leaving = batches_in(
            &self.reduced,
            time - self.slide - self.length,
            time - self.length,
        );
        let (reduce, inverse, keep) =
            (self.reduce.clone(), self.inverse.clone(), self.keep.clone());
        Some(Box::new(move |store, time| {
            for rdd in entering.iter().chain(&leaving) {
                rdd.prepare();
            }
            let partitions: Vec<usize> = (0..store.num_partitions()).collect();
            store.apply(time, partitions, |table, partition| {
                let mut touched = keep.as_ref().map(|_| Vec::new());
                for rdd in &leaving {
                    for (key, value) in rdd.compute(partition) {
                        let hash = hash_key(&key);
                        if let Some(entry) = table.find_mut(hash, |e| e.key == key) {
                            entry.state = entry.state.take().map(|old| inverse(old, value));
                            if let Some(touched) = touched.as_mut() {
                                touched.push((hash, key));
                            }
                        }
                    }
                }
                for rdd in &entering {
                    for (key, value) in rdd.compute(partition) {
                        merge_entering(table, key, value, &*reduce, time, touched.as_mut());
                    }
                }
                if let (Some(keep), Some(touched)) = (&keep, touched) {
                    drop_unkept(table, touched, &**keep);
                }
                Vec::new()
            })
        }))
    }

    /// The reduced batches the window still has to take out later.
    fn encode_extra(&self, upto: Time) -> Result<Vec<u8>> {
        let slices: Vec<(i64, Vec<(K, V)>)> = self
            .reduced
            .remembered()
            .into_iter()
            .filter(|(time, _)| *time <= upto)
            .map(|(time, rdd)| (time.as_millis(), rdd.collect()))
            .collect();
        crate::checkpoint::encode(&slices).map_err(|reason| Error::Codec {
            action: "encode",
            stream: self.operation.to_string(),
            reason,
        })
    }

    fn restore_extra(&self, bytes: &[u8]) -> Result<()> {
        let slices: Vec<(i64, Vec<(K, V)>)> =
            crate::checkpoint::decode(bytes).map_err(|reason| Error::Codec {
                action: "decode",
                stream: self.operation.to_string(),
                reason,
            })?;
        let partitioning = self.store.partitioning();
        for (time, pairs) in slices {
            let mut partitions: Vec<Vec<(K, V)>> = vec![Vec::new(); partitioning.num_partitions()];
            for pair in pairs {
                partitions[partitioning.partition_of_key(&pair.0)].push(pair);
            }
            let env = crate::rdd::ExecEnv::global();
            self.reduced.put(
                Time::from_millis(time),
                Rdd::from_partitions_in(partitions, env),
            );
        }
        Ok(())
    }
}

/// Adds an entering batch's reduced value to the window, noting the key in
/// `touched` when the window has a filter.
fn merge_entering<K: Key, V>(
    table: &mut StateTable<K, V>,
    key: K,
    value: V,
    reduce: &(dyn Fn(V, V) -> V + Send + Sync),
    time: Time,
    touched: Option<&mut Vec<(u64, K)>>,
) {
    let hash = hash_key(&key);
    if let Some(touched) = touched {
        touched.push((hash, key.clone()));
    }
    match table.find_mut(hash, |e| e.key == key) {
        Some(entry) => {
            entry.state = entry.state.take().map(|old| reduce(old, value));
            entry.updated = time;
        }
        None => {
            table.insert_unique(
                hash,
                StateEntry {
                    hash,
                    key,
                    state: Some(value),
                    updated: time,
                },
                |e| e.hash,
            );
        }
    }
}

/// Applies the window's filter to the keys this step changed (the others passed it
/// before and have not changed).
fn drop_unkept<K: Key, V>(
    table: &mut StateTable<K, V>,
    touched: Vec<(u64, K)>,
    keep: &(dyn Fn(&K, &V) -> bool + Send + Sync),
) {
    for (hash, key) in touched {
        if let Ok(found) = table.find_entry(hash, |e| e.key == key) {
            let entry = found.get();
            let kept = entry.state.as_ref().is_some_and(|v| keep(&entry.key, v));
            if !kept {
                found.remove();
            }
        }
    }
}
