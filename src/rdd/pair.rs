//! The shuffling operations: by key on pair `Rdd`s, by element on any `Rdd`.
//!
//! Each is written once, on [`PartitionedRdd`], with the partitioner given there; the
//! plain methods on `Rdd` hand it the default, as many partitions as the pool has
//! threads (see `partitioned.rs`).

use std::sync::Arc;

use super::partitioned::PartitionedRdd;
use super::shuffle::{Aggregator, Partitioning, Shuffled, Staged, scatter};
use super::{Data, Key, Partitioner, Rdd};

impl<K: Data, V: Data> Rdd<(K, V)> {
    /// Combines the values of each key with three functions, as Spark's
    /// `combineByKey`: `create` turns a key's first value into a combiner,
    /// `merge_value` adds a value to a combiner (map side), `merge_combiners` merges two
    /// combiners (reduce side).
    ///
    /// ```
    /// use dstream::Rdd;
    /// // Average per key: (sum, count) combiners.
    /// let scores = Rdd::from_vec(vec![("a", 1.0), ("b", 4.0), ("a", 3.0)], 2);
    /// let mut avg = scores
    ///     .combine_by_key(|v| (v, 1), |(s, n), v| (s + v, n + 1), |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2))
    ///     .map_values(|(sum, n)| sum / n as f64)
    ///     .collect();
    /// avg.sort_by(|a, b| a.0.cmp(b.0));
    /// assert_eq!(avg, vec![("a", 2.0), ("b", 4.0)]);
    /// ```
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> Rdd<(K, C)>
    where
        K: Key,
    {
        self.with_default_partitions()
            .combine_by_key(create, merge_value, merge_combiners)
    }

    /// Merges the values of each key with `f`, combining map-side first.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let mut counts = Rdd::from_vec(vec![("a", 1), ("b", 1), ("a", 1)], 2)
    ///     .reduce_by_key(|x, y| x + y)
    ///     .collect();
    /// counts.sort();
    /// assert_eq!(counts, vec![("a", 2), ("b", 1)]);
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)>
    where
        K: Key,
    {
        self.with_default_partitions().reduce_by_key(f)
    }

    /// Merges the values of each key with `f`, starting from `zero` in each partition.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let mut max = Rdd::from_vec(vec![("a", 3), ("a", 7), ("b", -1)], 2)
    ///     .fold_by_key(0, |x: i32, y| x.max(y))
    ///     .collect();
    /// max.sort();
    /// assert_eq!(max, vec![("a", 7), ("b", 0)]);
    /// ```
    pub fn fold_by_key(&self, zero: V, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)>
    where
        K: Key,
    {
        self.with_default_partitions().fold_by_key(zero, f)
    }

    /// Collects the values of each key into a `Vec`, in arrival order: partition by
    /// partition, and within a partition as they come.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let mut groups = Rdd::from_vec(vec![("a", 1), ("b", 2), ("a", 3)], 2).group_by_key().collect();
    /// groups.sort();
    /// assert_eq!(groups, vec![("a", vec![1, 3]), ("b", vec![2])]);
    /// ```
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)>
    where
        K: Key,
    {
        self.with_default_partitions().group_by_key()
    }

    /// Moves every pair to the partition `partitioner` assigns its key, without
    /// combining. A number is a partitioner too: `partition_by(4)` hashes keys into
    /// four partitions.
    ///
    /// ```
    /// use dstream::{HashPartitioner, Partitioner, Rdd};
    /// let p = HashPartitioner::new(3);
    /// let parts = Rdd::from_vec((0..30).map(|i| (i % 5, i)).collect(), 2)
    ///     .partition_by(p)
    ///     .glom()
    ///     .collect();
    /// for (index, part) in parts.iter().enumerate() {
    ///     assert!(part.iter().all(|(k, _)| p.partition(k) == index));
    /// }
    /// assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 30);
    /// ```
    pub fn partition_by(&self, partitioner: impl Partitioner<K>) -> Rdd<(K, V)>
    where
        K: Key,
    {
        let partitioning = Partitioning::of(&Arc::new(partitioner));
        let outputs = partitioning.num_partitions();
        let parent = self.clone();
        self.derive(Staged::new(outputs, move || {
            scatter(&parent, outputs, |_, _, (key, _)| {
                partitioning.partition_of_key(key)
            })
        }))
    }

    pub(crate) fn shuffle_combine<C: Data>(
        &self,
        aggregator: Aggregator<V, C>,
        partitioning: Partitioning<K>,
    ) -> Rdd<(K, C)>
    where
        K: Key,
    {
        self.derive(Shuffled::new(self.clone(), partitioning, aggregator))
    }
}

impl<T: Data> Rdd<T> {
    /// This `Rdd` with the default partitioning of keyed operations: as many
    /// partitions as the pool has threads.
    pub(super) fn with_default_partitions(&self) -> PartitionedRdd<T, usize> {
        self.partitioned(self.env().parallelism())
    }
}

impl<K: Data, V: Data, P> PartitionedRdd<(K, V), P> {
    /// [`Rdd::combine_by_key`] with this partitioner.
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> Rdd<(K, C)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.rdd.shuffle_combine(
            Aggregator {
                create: Arc::new(create),
                merge_value: Arc::new(merge_value),
                merge_combiners: Arc::new(merge_combiners),
            },
            self.partitioning(),
        )
    }

    /// [`Rdd::reduce_by_key`] with this partitioner.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let counts = Rdd::from_vec(vec![("a", 1), ("b", 1), ("a", 1)], 2)
    ///     .partitioned(1)
    ///     .reduce_by_key(|x, y| x + y);
    /// assert_eq!(counts.glom().collect().len(), 1);
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.rdd.shuffle_combine(reducing(f), self.partitioning())
    }

    /// [`Rdd::fold_by_key`] with this partitioner.
    pub fn fold_by_key(&self, zero: V, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let f = Arc::new(f);
        let first = f.clone();
        self.rdd.shuffle_combine(
            Aggregator {
                create: Arc::new(move |v| first(zero.clone(), v)),
                merge_value: f.clone(),
                merge_combiners: f,
            },
            self.partitioning(),
        )
    }

    /// [`Rdd::group_by_key`] with this partitioner.
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.rdd
            .shuffle_combine(Aggregator::grouping(), self.partitioning())
    }
}

/// The aggregator of `reduce_by_key`: `f` merges values and combiners alike.
pub(crate) fn reducing<V: 'static>(
    f: impl Fn(V, V) -> V + Send + Sync + 'static,
) -> Aggregator<V, V> {
    let f = Arc::new(f);
    Aggregator {
        create: Arc::new(|v| v),
        merge_value: f.clone(),
        merge_combiners: f,
    }
}

impl<T: Data> Rdd<T> {
    /// How often each distinct element occurs.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let mut counts = Rdd::from_vec(vec!['a', 'b', 'a'], 2).count_by_value().collect();
    /// counts.sort();
    /// assert_eq!(counts, vec![('a', 2), ('b', 1)]);
    /// ```
    pub fn count_by_value(&self) -> Rdd<(T, u64)>
    where
        T: Key,
    {
        self.with_default_partitions().count_by_value()
    }

    /// Each distinct element once.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let mut distinct = Rdd::from_vec(vec![3, 1, 3, 2, 1], 2).distinct().collect();
    /// distinct.sort();
    /// assert_eq!(distinct, vec![1, 2, 3]);
    /// ```
    pub fn distinct(&self) -> Rdd<T>
    where
        T: Key,
    {
        self.with_default_partitions().distinct()
    }
}

impl<T: Data, P> PartitionedRdd<T, P> {
    /// [`Rdd::count_by_value`] with this partitioner (of the elements).
    pub fn count_by_value(&self) -> Rdd<(T, u64)>
    where
        T: Key,
        P: Partitioner<T>,
    {
        self.rdd
            .map(|x| (x, 1u64))
            .shuffle_combine(reducing(|a, b| a + b), self.partitioning())
    }

    /// [`Rdd::distinct`] with this partitioner (of the elements).
    pub fn distinct(&self) -> Rdd<T>
    where
        T: Key,
        P: Partitioner<T>,
    {
        self.rdd
            .map(|x| (x, ()))
            .shuffle_combine(reducing(|a, _| a), self.partitioning())
            .keys()
    }
}

impl<T: Data> Rdd<T> {
    /// Spreads the elements evenly over `partitions` partitions (round robin).
    ///
    /// ```
    /// use dstream::Rdd;
    /// let rdd = Rdd::from_vec((0..10).collect::<Vec<i32>>(), 1).repartition(3);
    /// let sizes: Vec<usize> = rdd.glom().collect().iter().map(Vec::len).collect();
    /// assert_eq!(sizes, vec![4, 3, 3]);
    /// ```
    pub fn repartition(&self, partitions: usize) -> Rdd<T> {
        let partitions = partitions.max(1);
        let parent = self.clone();
        self.derive(Staged::new(partitions, move || {
            scatter(&parent, partitions, |input, position, _| input + position)
        }))
    }
}
