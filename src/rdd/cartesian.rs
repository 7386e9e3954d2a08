//! `cartesian`: every pair of an element of one `Rdd` and an element of another.

use std::sync::Arc;

use super::{Data, PartitionIter, Rdd, RddNode};

/// Partition `i * right_partitions + j` pairs the left `Rdd`'s partition `i` with the
/// right one's partition `j`, as Spark's `CartesianRDD`: no shuffle, each side
/// computed once per partition it meets.
struct Cartesian<T, U> {
    left: Rdd<T>,
    right: Rdd<U>,
}

impl<T: Data, U: Data> RddNode<(T, U)> for Cartesian<T, U> {
    fn num_partitions(&self) -> usize {
        self.left.num_partitions() * self.right.num_partitions()
    }

    fn prepare(&self) {
        self.left.prepare();
        self.right.prepare();
    }

    fn compute(&self, partition: usize) -> PartitionIter<(T, U)> {
        let columns = self.right.num_partitions();
        let right: Arc<[U]> = self.right.compute(partition % columns).collect();
        Box::new(self.left.compute(partition / columns).flat_map(move |a| {
            let right = right.clone();
            (0..right.len()).map(move |j| (a.clone(), right[j].clone()))
        }))
    }
}

impl<T: Data> Rdd<T> {
    /// Every pair `(a, b)` of an element `a` of this `Rdd` and an element `b` of
    /// `other`, in `num_partitions() * other.num_partitions()` partitions.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let pairs = Rdd::from_vec(vec![1, 2], 2).cartesian(&Rdd::from_vec(vec!['x', 'y'], 1));
    /// assert_eq!(pairs.num_partitions(), 2);
    /// assert_eq!(pairs.collect(), vec![(1, 'x'), (1, 'y'), (2, 'x'), (2, 'y')]);
    /// ```
    pub fn cartesian<U: Data>(&self, other: &Rdd<U>) -> Rdd<(T, U)> {
        self.derive(Cartesian {
            left: self.clone(),
            right: other.clone(),
        })
    }
}
