//! The shuffle that every pair operation shares.
//!
//! Map side: each input partition, in parallel, combines its records into one hash
//! table per output partition (map-side combine). Reduce side: each output partition,
//! in parallel, merges the tables addressed to it. A record's key is hashed once; that
//! hash picks the output partition and places the key in the tables, and is kept in the
//! table so merging and growing never hash again.
//!
//! Operations that need more than `(key, combined value)` pairs, such as `cogroup` and
//! stateful streams, call [`combine`] and work on the merged tables directly.

use std::any::Any;
use std::hash::Hash;
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rayon::prelude::*;

use super::partitioner::hash_key;
use super::{Data, HashPartitioner, Key, PartitionIter, Partitioner, Rdd, RddNode};
use crate::rdd::materialized::{ClonedPartition, OnceFrom, SharedPartitions, empty_partitions};

/// How a shuffle combines the values of one key: Spark's `createCombiner`,
/// `mergeValue` and `mergeCombiners`.
pub(crate) struct Aggregator<V, C> {
    pub(crate) create: Arc<dyn Fn(V) -> C + Send + Sync>,
    pub(crate) merge_value: Arc<dyn Fn(C, V) -> C + Send + Sync>,
    pub(crate) merge_combiners: Arc<dyn Fn(C, C) -> C + Send + Sync>,
}

impl<V, C> Clone for Aggregator<V, C> {
    fn clone(&self) -> Self {
        Aggregator {
            create: self.create.clone(),
            merge_value: self.merge_value.clone(),
            merge_combiners: self.merge_combiners.clone(),
        }
    }
}

impl<V: 'static> Aggregator<V, Vec<V>> {
    /// Collects all values of a key into a `Vec`.
    pub(crate) fn grouping() -> Self {
        Aggregator {
            create: Arc::new(|v| vec![v]),
            merge_value: Arc::new(|mut c: Vec<V>, v| {
                c.push(v);
                c
            }),
            merge_combiners: Arc::new(|mut a: Vec<V>, mut b: Vec<V>| {
                a.append(&mut b);
                a
            }),
        }
    }
}

/// Where a shuffle sends each key.
pub(crate) enum Partitioning<K> {
    /// By the fixed-seed hash; the hash is reused for the tables.
    Hash(HashPartitioner),
    /// By a user's partitioner, whose number of partitions is read once.
    Custom {
        partitioner: Arc<dyn Partitioner<K>>,
        partitions: usize,
    },
}

impl<K> Clone for Partitioning<K> {
    fn clone(&self) -> Self {
        match self {
            Partitioning::Hash(p) => Partitioning::Hash(*p),
            Partitioning::Custom {
                partitioner,
                partitions,
            } => Partitioning::Custom {
                partitioner: partitioner.clone(),
                partitions: *partitions,
            },
        }
    }
}

impl<K: Hash + 'static> Partitioning<K> {
    pub(crate) fn hash(partitions: usize) -> Self {
        Partitioning::Hash(HashPartitioner::new(partitions))
    }

    /// How `partitioner` places keys. A count or a [`HashPartitioner`] places them as
    /// the `Hash` variant does, which reuses the hash the tables need instead of
    /// hashing each key a second time, so they take that path.
    pub(crate) fn of<P: Partitioner<K>>(partitioner: &Arc<P>) -> Self {
        let any: &dyn Any = &**partitioner;
        if let Some(&count) = any.downcast_ref::<usize>() {
            return Partitioning::hash(count);
        }
        if let Some(&hash) = any.downcast_ref::<HashPartitioner>() {
            return Partitioning::Hash(hash);
        }
        Partitioning::Custom {
            partitions: partitioner.num_partitions().max(1),
            partitioner: partitioner.clone(),
        }
    }

    pub(crate) fn num_partitions(&self) -> usize {
        match self {
            Partitioning::Hash(p) => p.num_partitions(),
            Partitioning::Custom { partitions, .. } => *partitions,
        }
    }

    /// The partition of `key`, hashing it when needed.
    pub(crate) fn partition_of_key(&self, key: &K) -> usize {
        self.partition(hash_key(key), key)
    }

    /// The partition of `key`, whose fixed-seed hash is `hash`.
    #[inline]
    pub(crate) fn partition(&self, hash: u64, key: &K) -> usize {
        match self {
            Partitioning::Hash(p) => p.partition_of_hash(hash),
            Partitioning::Custom {
                partitioner,
                partitions,
            } => partitioner.partition(key) % partitions,
        }
    }
}

/// One key's entry in a shuffle table.
///
/// `value` is an `Option` so that merge functions, which take their arguments by
/// value, can be applied in place; it is `None` only while a merge runs, or after a
/// user function panicked in one (and then the batch fails anyway).
pub(crate) struct Slot<K, C> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: Option<C>,
}

/// A table of combined values, one per output partition of a shuffle.
pub(crate) type Table<K, C> = HashTable<Slot<K, C>>;

/// Adds `value` under `key` to `table`.
#[inline]
pub(crate) fn insert_value<K: Eq, V, C>(
    table: &mut Table<K, C>,
    hash: u64,
    key: K,
    value: V,
    agg: &Aggregator<V, C>,
) {
    match table.entry(hash, |slot| slot.key == key, |slot| slot.hash) {
        Entry::Occupied(mut occupied) => {
            let slot = occupied.get_mut();
            slot.value = slot.value.take().map(|c| (agg.merge_value)(c, value));
        }
        Entry::Vacant(vacant) => {
            vacant.insert(Slot {
                hash,
                key,
                value: Some((agg.create)(value)),
            });
        }
    }
}

/// Merges `incoming`, a combined slot, into `table`.
#[inline]
fn insert_combined<K: Eq, C>(
    table: &mut Table<K, C>,
    incoming: Slot<K, C>,
    merge: &(dyn Fn(C, C) -> C + Send + Sync),
) {
    match table.entry(
        incoming.hash,
        |slot| slot.key == incoming.key,
        |slot| slot.hash,
    ) {
        Entry::Occupied(mut occupied) => {
            let slot = occupied.get_mut();
            slot.value = match (slot.value.take(), incoming.value) {
                (Some(a), Some(b)) => Some(merge(a, b)),
                (a, b) => a.or(b),
            };
        }
        Entry::Vacant(vacant) => {
            vacant.insert(incoming);
        }
    }
}

/// Runs a combining shuffle of `parent` and returns one merged table per output
/// partition. Must run inside the parent's environment (as `prepare` does).
pub(crate) fn combine<K: Key, V: Data, C: Send>(
    parent: &Rdd<(K, V)>,
    partitioning: &Partitioning<K>,
    agg: &Aggregator<V, C>,
) -> Vec<Table<K, C>> {
    parent.prepare();
    let outputs = partitioning.num_partitions();
    let map_outputs: Vec<Vec<Table<K, C>>> = (0..parent.num_partitions())
        .into_par_iter()
        .map(|input| {
            let mut tables: Vec<Table<K, C>> = (0..outputs).map(|_| HashTable::new()).collect();
            for (key, value) in parent.compute(input) {
                let hash = hash_key(&key);
                let target = partitioning.partition(hash, &key);
                insert_value(&mut tables[target], hash, key, value, agg);
            }
            tables
        })
        .collect();
    merge_map_outputs(map_outputs, outputs, &*agg.merge_combiners)
}

/// The reduce side: merges, for every output partition and in parallel, the tables
/// the map side addressed to it.
fn merge_map_outputs<K: Key, C: Send>(
    map_outputs: Vec<Vec<Table<K, C>>>,
    outputs: usize,
    merge: &(dyn Fn(C, C) -> C + Send + Sync),
) -> Vec<Table<K, C>> {
    let mut per_output: Vec<Vec<Table<K, C>>> = (0..outputs).map(|_| Vec::new()).collect();
    for tables in map_outputs {
        for (target, table) in tables.into_iter().enumerate() {
            if !table.is_empty() {
                per_output[target].push(table);
            }
        }
    }
    per_output
        .into_par_iter()
        .map(|mut tables| {
            // Merge into the largest table so it grows the least, keeping the map
            // outputs' order: the tables before it are merged in front of what it
            // holds (nearest first), those after it behind. A merge is associative,
            // not commutative (group_by_key's values stay in arrival order).
            let Some(largest) = (0..tables.len()).max_by_key(|&i| tables[i].len()) else {
                return HashTable::new();
            };
            let after = tables.split_off(largest + 1);
            let mut merged = tables.pop().unwrap_or_default();
            let in_front = |later: C, earlier: C| merge(earlier, later);
            for table in tables.into_iter().rev() {
                merged.reserve(table.len(), |slot| slot.hash);
                for slot in table {
                    insert_combined(&mut merged, slot, &in_front);
                }
            }
            for table in after {
                merged.reserve(table.len(), |slot| slot.hash);
                for slot in table {
                    insert_combined(&mut merged, slot, merge);
                }
            }
            merged
        })
        .collect()
}

/// Drops the bookkeeping of a merged table: its `(key, combined value)` pairs.
pub(crate) fn into_pairs<K, C>(table: Table<K, C>) -> Vec<(K, C)> {
    table
        .into_iter()
        .filter_map(|slot| slot.value.map(|c| (slot.key, c)))
        .collect()
}

/// What a combining shuffle reads: the parent and how to combine its values.
type ShuffleInput<K, V, C> = (Rdd<(K, V)>, Aggregator<V, C>);

/// An `Rdd` of `(key, combined value)`: the output of a combining shuffle.
pub(crate) struct Shuffled<K, V, C> {
    partitioning: Partitioning<K>,
    output: OnceFrom<ShuffleInput<K, V, C>, SharedPartitions<(K, C)>>,
}

impl<K: Key, V: Data, C: Data> Shuffled<K, V, C> {
    pub(crate) fn new(
        parent: Rdd<(K, V)>,
        partitioning: Partitioning<K>,
        aggregator: Aggregator<V, C>,
    ) -> Self {
        Shuffled {
            partitioning,
            output: OnceFrom::new((parent, aggregator)),
        }
    }

    fn output(&self) -> &SharedPartitions<(K, C)> {
        self.output.get(
            |(parent, aggregator)| {
                let tables = combine(&parent, &self.partitioning, &aggregator);
                Arc::new(tables.into_par_iter().map(into_pairs).collect())
            },
            || empty_partitions(self.partitioning.num_partitions()),
        )
    }
}

impl<K: Key, V: Data, C: Data> RddNode<(K, C)> for Shuffled<K, V, C> {
    fn num_partitions(&self) -> usize {
        self.partitioning.num_partitions()
    }

    fn prepare(&self) {
        self.output();
    }

    fn compute(&self, partition: usize) -> PartitionIter<(K, C)> {
        Box::new(ClonedPartition::new(self.output().clone(), partition))
    }
}

/// Moves every element of `parent` to the output partition `route` picks for it,
/// without combining. `route` gets the input partition, the element's position in it
/// and the element. Must run inside the parent's environment.
pub(crate) fn scatter<T: Data>(
    parent: &Rdd<T>,
    outputs: usize,
    route: impl Fn(usize, usize, &T) -> usize + Sync,
) -> Vec<Vec<T>> {
    parent.prepare();
    let outputs = outputs.max(1);
    let map_outputs: Vec<Vec<Vec<T>>> = (0..parent.num_partitions())
        .into_par_iter()
        .map(|input| {
            let mut buckets: Vec<Vec<T>> = (0..outputs).map(|_| Vec::new()).collect();
            for (position, item) in parent.compute(input).enumerate() {
                let target = route(input, position, &item) % outputs;
                buckets[target].push(item);
            }
            buckets
        })
        .collect();
    let mut per_output: Vec<Vec<Vec<T>>> = (0..outputs).map(|_| Vec::new()).collect();
    for buckets in map_outputs {
        for (target, bucket) in buckets.into_iter().enumerate() {
            per_output[target].push(bucket);
        }
    }
    per_output
        .into_par_iter()
        .map(|buckets| buckets.into_iter().flatten().collect())
        .collect()
}

/// An `Rdd` whose partitions are computed by one parallel stage that needs all of its
/// parent first: `repartition`, `partition_by` and `sort_by_key`.
pub(crate) struct Staged<T> {
    partitions: usize,
    output: OnceFrom<StageFn<T>, SharedPartitions<T>>,
}

/// The stage of a [`Staged`] `Rdd`.
type StageFn<T> = Box<dyn FnOnce() -> Vec<Vec<T>> + Send>;

impl<T: Data> Staged<T> {
    pub(crate) fn new(
        partitions: usize,
        run: impl FnOnce() -> Vec<Vec<T>> + Send + 'static,
    ) -> Self {
        Staged {
            partitions,
            output: OnceFrom::new(Box::new(run)),
        }
    }

    fn output(&self) -> &SharedPartitions<T> {
        self.output
            .get(|run| Arc::new(run()), || empty_partitions(self.partitions))
    }
}

impl<T: Data> RddNode<T> for Staged<T> {
    fn num_partitions(&self) -> usize {
        self.partitions
    }

    fn prepare(&self) {
        self.output();
    }

    fn compute(&self, partition: usize) -> PartitionIter<T> {
        Box::new(ClonedPartition::new(self.output().clone(), partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summing() -> Aggregator<i64, i64> {
        Aggregator {
            create: Arc::new(|v| v),
            merge_value: Arc::new(|c, v| c + v),
            merge_combiners: Arc::new(|a, b| a + b),
        }
    }

    #[test]
    fn combine_sends_each_key_to_its_hash_partition() {
        let data: Vec<(u32, i64)> = (0..1000).map(|i| (i % 37, 1)).collect();
        let rdd = Rdd::from_vec(data, 5);
        let partitioning = Partitioning::hash(3);
        let tables = combine(&rdd, &partitioning, &summing());
        assert_eq!(tables.len(), 3);
        let p = HashPartitioner::new(3);
        let mut total = 0;
        for (index, table) in tables.into_iter().enumerate() {
            for (key, count) in into_pairs(table) {
                assert_eq!(Partitioner::partition(&p, &key), index);
                total += count;
            }
        }
        assert_eq!(total, 1000);
    }

    #[test]
    fn scatter_keeps_every_element_once() {
        let rdd = Rdd::from_vec((0..100).collect::<Vec<u32>>(), 4);
        let out = scatter(&rdd, 3, |_, _, x| *x as usize);
        let mut all: Vec<u32> = out.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(out[1].iter().all(|x| x % 3 == 1));
    }
}
