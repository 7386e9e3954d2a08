//! `cogroup` and the joins built on it.
//!
//! Both sides are shuffled with the same partitioner (grouping values per key,
//! map-side), then each output partition merges its two groups, in parallel. The joins
//! turn each key's two groups into pairs.

use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rayon::prelude::*;

use super::materialized::{ClonedPartition, OnceFrom, SharedPartitions, empty_partitions};
use super::partitioned::PartitionedRdd;
use super::shuffle::{self, Aggregator, Partitioning, Slot, Table};
use super::{Data, Key, PartitionIter, Partitioner, Rdd, RddNode};

/// For each key: its values on the left and its values on the right.
type Groups<V, W> = (Vec<V>, Vec<W>);

/// The two `Rdd`s being grouped together.
type Sides<K, V, W> = (Rdd<(K, V)>, Rdd<(K, W)>);

/// For each key: the key and its two groups.
type Grouped<K, V, W> = SharedPartitions<(K, Groups<V, W>)>;

struct CoGrouped<K, V, W> {
    partitioning: Partitioning<K>,
    output: OnceFrom<Sides<K, V, W>, Grouped<K, V, W>>,
}

impl<K: Key, V: Data, W: Data> CoGrouped<K, V, W> {
    fn output(&self) -> &Grouped<K, V, W> {
        self.output.get(
            |(left, right)| {
                let (left, right) = rayon::join(
                    || shuffle::combine(&left, &self.partitioning, &Aggregator::grouping()),
                    || shuffle::combine(&right, &self.partitioning, &Aggregator::grouping()),
                );
                let merged = left
                    .into_par_iter()
                    .zip(right)
                    .map(|(left, right)| merge_groups(left, right))
                    .collect();
                Arc::new(merged)
            },
            || empty_partitions(self.partitioning.num_partitions()),
        )
    }
}

/// Joins one output partition's left and right groups by key.
fn merge_groups<K: Key, V, W>(
    left: Table<K, Vec<V>>,
    right: Table<K, Vec<W>>,
) -> Vec<(K, Groups<V, W>)> {
    let mut both: Table<K, Groups<V, W>> = HashTable::with_capacity(left.len() + right.len());
    for slot in left {
        let values = slot.value.unwrap_or_default();
        both.insert_unique(
            slot.hash,
            Slot {
                hash: slot.hash,
                key: slot.key,
                value: Some((values, Vec::new())),
            },
            |s| s.hash,
        );
    }
    for slot in right {
        let values = slot.value.unwrap_or_default();
        match both.entry(slot.hash, |s| s.key == slot.key, |s| s.hash) {
            Entry::Occupied(mut occupied) => {
                if let Some(groups) = occupied.get_mut().value.as_mut() {
                    groups.1 = values;
                }
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Slot {
                    hash: slot.hash,
                    key: slot.key,
                    value: Some((Vec::new(), values)),
                });
            }
        }
    }
    shuffle::into_pairs(both)
}

impl<K: Key, V: Data, W: Data> RddNode<(K, Groups<V, W>)> for CoGrouped<K, V, W> {
    fn num_partitions(&self) -> usize {
        self.partitioning.num_partitions()
    }

    fn prepare(&self) {
        self.output();
    }

    fn compute(&self, partition: usize) -> PartitionIter<(K, Groups<V, W>)> {
        Box::new(ClonedPartition::new(self.output().clone(), partition))
    }
}

// The join result types are spelled out, as Spark's are, rather than hidden behind
// aliases: a reader sees at once what each join yields.
#[allow(clippy::type_complexity)]
impl<K: Data, V: Data> Rdd<(K, V)> {
    /// For every key in either `Rdd`: its values here and its values in `other`.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let a = Rdd::from_vec(vec![("x", 1), ("x", 2), ("y", 3)], 2);
    /// let b = Rdd::from_vec(vec![("x", 'a'), ("z", 'b')], 1);
    /// let mut groups = a.cogroup(&b).collect();
    /// groups.sort();
    /// assert_eq!(groups, vec![
    ///     ("x", (vec![1, 2], vec!['a'])),
    ///     ("y", (vec![3], vec![])),
    ///     ("z", (vec![], vec!['b'])),
    /// ]);
    /// ```
    pub fn cogroup<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Vec<V>, Vec<W>))>
    where
        K: Key,
    {
        self.with_default_partitions().cogroup(other)
    }

    /// Pairs every value here with every value of the same key in `other` (inner join).
    ///
    /// ```
    /// use dstream::Rdd;
    /// let a = Rdd::from_vec(vec![("x", 1), ("y", 2)], 2);
    /// let b = Rdd::from_vec(vec![("x", 'a'), ("x", 'b'), ("z", 'c')], 2);
    /// let mut joined = a.join(&b).collect();
    /// joined.sort();
    /// assert_eq!(joined, vec![("x", (1, 'a')), ("x", (1, 'b'))]);
    /// ```
    pub fn join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))>
    where
        K: Key,
    {
        self.with_default_partitions().join(other)
    }

    /// Like [`join`](Rdd::join), keeping keys that only this `Rdd` has, with `None`.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let a = Rdd::from_vec(vec![("x", 1), ("y", 2)], 2);
    /// let b = Rdd::from_vec(vec![("x", 'a')], 1);
    /// let mut joined = a.left_outer_join(&b).collect();
    /// joined.sort();
    /// assert_eq!(joined, vec![("x", (1, Some('a'))), ("y", (2, None))]);
    /// ```
    pub fn left_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))>
    where
        K: Key,
    {
        self.with_default_partitions().left_outer_join(other)
    }

    /// Like [`join`](Rdd::join), keeping keys that only `other` has, with `None`.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let a = Rdd::from_vec(vec![("x", 1)], 1);
    /// let b = Rdd::from_vec(vec![("x", 'a'), ("z", 'c')], 2);
    /// let mut joined = a.right_outer_join(&b).collect();
    /// joined.sort();
    /// assert_eq!(joined, vec![("x", (Some(1), 'a')), ("z", (None, 'c'))]);
    /// ```
    pub fn right_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, W))>
    where
        K: Key,
    {
        self.with_default_partitions().right_outer_join(other)
    }

    /// Like [`join`](Rdd::join), keeping keys that only one side has, with `None` for
    /// the other side.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let a = Rdd::from_vec(vec![("x", 1), ("y", 2)], 1);
    /// let b = Rdd::from_vec(vec![("x", 'a'), ("z", 'c')], 1);
    /// let mut joined = a.full_outer_join(&b).collect();
    /// joined.sort();
    /// assert_eq!(joined, vec![
    ///     ("x", (Some(1), Some('a'))),
    ///     ("y", (Some(2), None)),
    ///     ("z", (None, Some('c'))),
    /// ]);
    /// ```
    pub fn full_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, Option<W>))>
    where
        K: Key,
    {
        self.with_default_partitions().full_outer_join(other)
    }
}

#[allow(clippy::type_complexity)]
impl<K: Data, V: Data, P> PartitionedRdd<(K, V), P> {
    /// [`Rdd::cogroup`] with this partitioner, which places the keys of both sides.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let a = Rdd::from_vec(vec![("x", 1), ("y", 3)], 2);
    /// let b = Rdd::from_vec(vec![("x", 'a')], 1);
    /// assert_eq!(a.partitioned(3).cogroup(&b).num_partitions(), 3);
    /// ```
    pub fn cogroup<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Vec<V>, Vec<W>))>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.rdd.derive(CoGrouped {
            partitioning: self.partitioning(),
            output: OnceFrom::new((self.rdd.clone(), other.clone())),
        })
    }

    /// [`Rdd::join`] with this partitioner.
    pub fn join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.cogroup(other)
            .flat_map(|(k, (vs, ws))| pairs(&k, &vs, &ws, |v, w| (v.clone(), w.clone())))
    }

    /// [`Rdd::left_outer_join`] with this partitioner.
    pub fn left_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let ws: Vec<Option<W>> = optional(ws);
            pairs(&k, &vs, &ws, |v, w| (v.clone(), w.clone()))
        })
    }

    /// [`Rdd::right_outer_join`] with this partitioner.
    pub fn right_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, W))>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let vs: Vec<Option<V>> = optional(vs);
            pairs(&k, &vs, &ws, |v, w| (v.clone(), w.clone()))
        })
    }

    /// [`Rdd::full_outer_join`] with this partitioner.
    pub fn full_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, Option<W>))>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let (vs, ws): (Vec<Option<V>>, Vec<Option<W>>) = (optional(vs), optional(ws));
            pairs(&k, &vs, &ws, |v, w| (v.clone(), w.clone()))
        })
    }
}

/// Every `(key, make(v, w))` for `v` in `vs` and `w` in `ws`.
fn pairs<K: Clone, V, W, R>(
    key: &K,
    vs: &[V],
    ws: &[W],
    make: impl Fn(&V, &W) -> R,
) -> Vec<(K, R)> {
    let mut out = Vec::with_capacity(vs.len() * ws.len());
    for v in vs {
        for w in ws {
            out.push((key.clone(), make(v, w)));
        }
    }
    out
}

/// The values as `Some`, or a single `None` when there are none (the outer side of an
/// outer join).
fn optional<T>(values: Vec<T>) -> Vec<Option<T>> {
    if values.is_empty() {
        vec![None]
    } else {
        values.into_iter().map(Some).collect()
    }
}
