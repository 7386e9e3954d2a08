//! [`PartitionedRdd`]: how a keyed operation chooses its partitioning.
//!
//! Spark overloads each keyed operation three ways: `reduceByKey(f)`,
//! `reduceByKey(f, numPartitions)` and `reduceByKey(f, partitioner)`. Rust has no
//! overloading, so the partitioning is said once, before the operation:
//! `pairs.partitioned(8).reduce_by_key(f)` or
//! `pairs.partitioned(MyPartitioner).join(&other)`. The plain methods
//! (`pairs.reduce_by_key(f)`) are the same operations with the default partitioning,
//! the number of worker threads; each is written once, on the view, and the plain
//! method hands it the default.

use std::hash::Hash;
use std::sync::Arc;

use super::shuffle::Partitioning;
use super::{Data, Partitioner, Rdd};

/// An [`Rdd`] whose next keyed operation shuffles with a chosen partitioner: a number
/// of partitions (hashed, as [`HashPartitioner`](crate::HashPartitioner)) or any
/// [`Partitioner`]. Made by [`Rdd::partitioned`]; its methods are the keyed
/// operations of `Rdd`, which they document. It is cheap to make and to clone, and can
/// serve several operations.
///
/// ```
/// use dstream::{Partitioner, Rdd};
///
/// /// Even keys in partition 0, odd keys in partition 1.
/// struct Parity;
/// impl Partitioner<u32> for Parity {
///     fn num_partitions(&self) -> usize { 2 }
///     fn partition(&self, key: &u32) -> usize { (key % 2) as usize }
/// }
///
/// let pairs = Rdd::from_vec(vec![(1, 10), (2, 20), (3, 30), (1, 1)], 3);
/// let by_parity = pairs.partitioned(Parity);
/// let mut parts = by_parity.reduce_by_key(|a, b| a + b).glom().collect();
/// parts[1].sort();
/// assert_eq!(parts, vec![vec![(2, 20)], vec![(1, 11), (3, 30)]]);
/// assert_eq!(by_parity.group_by_key().num_partitions(), 2);
/// assert_eq!(pairs.partitioned(5).count_by_value().num_partitions(), 5);
/// ```
pub struct PartitionedRdd<T, P> {
    pub(super) rdd: Rdd<T>,
    partitioner: Arc<P>,
}

impl<T, P> Clone for PartitionedRdd<T, P> {
    fn clone(&self) -> Self {
        PartitionedRdd {
            rdd: self.rdd.clone(),
            partitioner: self.partitioner.clone(),
        }
    }
}

impl<T: Data> Rdd<T> {
    /// This `Rdd` with the partitioner its next keyed operation shuffles with: a
    /// number of partitions (`rdd.partitioned(8)`, keys placed by their hash), a
    /// [`HashPartitioner`](crate::HashPartitioner) or any [`Partitioner`] of its keys.
    /// Without it, keyed operations hash into as many partitions as there are worker
    /// threads (`sort_by_key`: as many as this `Rdd` has).
    ///
    /// ```
    /// use dstream::Rdd;
    /// let pairs = Rdd::from_vec(vec![("a", 1), ("b", 2), ("a", 3)], 2);
    /// let counts = pairs.partitioned(4).reduce_by_key(|x, y| x + y);
    /// assert_eq!(counts.num_partitions(), 4);
    /// ```
    pub fn partitioned<P: Send + Sync + 'static>(&self, partitioner: P) -> PartitionedRdd<T, P> {
        self.partitioned_by(Arc::new(partitioner))
    }

    /// [`partitioned`](Rdd::partitioned) with a partitioner already shared, so that a
    /// stream can hand the same one to every batch.
    pub(crate) fn partitioned_by<P>(&self, partitioner: Arc<P>) -> PartitionedRdd<T, P> {
        PartitionedRdd {
            rdd: self.clone(),
            partitioner,
        }
    }
}

impl<T, P> PartitionedRdd<T, P> {
    /// Where the operation sends each key.
    pub(super) fn partitioning<K: Hash + 'static>(&self) -> Partitioning<K>
    where
        P: Partitioner<K>,
    {
        Partitioning::of(&self.partitioner)
    }

    /// The partitioner as given.
    pub(super) fn partitioner(&self) -> &P {
        &self.partitioner
    }
}
