//! Partitions held in memory: parallelized data, caches and the outputs of shuffles.
//! Reading one hands out clones, so the data can be read again.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::{Data, PartitionIter, Rdd, RddNode};

/// Partitions held in memory, shared by the `Rdd` and the iterators reading it.
pub(crate) type SharedPartitions<T> = Arc<Vec<Vec<T>>>;

/// Partitions that are already in memory.
pub(crate) struct Materialized<T> {
    partitions: SharedPartitions<T>,
}

impl<T: Data> Materialized<T> {
    pub(crate) fn new(partitions: Vec<Vec<T>>) -> Self {
        Materialized {
            partitions: Arc::new(partitions),
        }
    }
}

impl<T: Data> RddNode<T> for Materialized<T> {
    fn num_partitions(&self) -> usize {
        self.partitions.len()
    }

    fn prepare(&self) {}

    fn compute(&self, partition: usize) -> PartitionIter<T> {
        Box::new(ClonedPartition::new(self.partitions.clone(), partition))
    }

    fn known_len(&self) -> Option<u64> {
        Some(self.partitions.iter().map(|p| p.len() as u64).sum())
    }
}

/// A value computed once from an input that is released afterwards.
///
/// Nodes that materialise their partitions (caches, shuffles, sorts) hold their
/// parents only until they have computed: a remembered `Rdd` then keeps its own data
/// alive, not its whole lineage.
pub(crate) struct OnceFrom<I, O> {
    input: Mutex<Option<I>>,
    output: OnceLock<O>,
}

impl<I, O> OnceFrom<I, O> {
    pub(crate) fn new(input: I) -> Self {
        OnceFrom {
            input: Mutex::new(Some(input)),
            output: OnceLock::new(),
        }
    }

    /// The output, computed by `make` from the input on first call. If an earlier
    /// `make` panicked (failing its batch), `fallback` stands in.
    pub(crate) fn get(&self, make: impl FnOnce(I) -> O, fallback: impl FnOnce() -> O) -> &O {
        self.output.get_or_init(|| {
            let input = self
                .input
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            match input {
                Some(input) => make(input),
                None => fallback(),
            }
        })
    }
}

/// An `Rdd` that materialises its parent on first use (see [`Rdd::cache`]).
pub(crate) struct Cached<T> {
    partitions: usize,
    data: OnceFrom<Rdd<T>, SharedPartitions<T>>,
}

impl<T: Data> Cached<T> {
    pub(crate) fn new(parent: Rdd<T>) -> Self {
        Cached {
            partitions: parent.num_partitions(),
            data: OnceFrom::new(parent),
        }
    }

    fn data(&self) -> &SharedPartitions<T> {
        self.data.get(
            |parent| Arc::new(parent.compute_all()),
            || empty_partitions(self.partitions),
        )
    }
}

impl<T: Data> RddNode<T> for Cached<T> {
    fn num_partitions(&self) -> usize {
        self.partitions
    }

    fn prepare(&self) {
        self.data();
    }

    fn compute(&self, partition: usize) -> PartitionIter<T> {
        Box::new(ClonedPartition::new(self.data().clone(), partition))
    }
}

/// Partitions computed by a function the first time they are needed: the results of
/// actions that a stream hands on as a one-element `Rdd` (`count`, `reduce`).
pub(crate) struct Deferred<T> {
    data: OnceFrom<Box<dyn FnOnce() -> Vec<T> + Send>, SharedPartitions<T>>,
}

impl<T: Data> Deferred<T> {
    pub(crate) fn new(make: impl FnOnce() -> Vec<T> + Send + 'static) -> Self {
        Deferred {
            data: OnceFrom::new(Box::new(make)),
        }
    }

    fn data(&self) -> &SharedPartitions<T> {
        self.data
            .get(|make| Arc::new(vec![make()]), || empty_partitions(1))
    }
}

impl<T: Data> RddNode<T> for Deferred<T> {
    fn num_partitions(&self) -> usize {
        1
    }

    fn prepare(&self) {
        self.data();
    }

    fn compute(&self, partition: usize) -> PartitionIter<T> {
        Box::new(ClonedPartition::new(self.data().clone(), partition))
    }
}

/// `partitions` empty partitions.
pub(crate) fn empty_partitions<T>(partitions: usize) -> SharedPartitions<T> {
    Arc::new((0..partitions.max(1)).map(|_| Vec::new()).collect())
}

/// Iterates one partition of shared in-memory data, cloning each element.
pub(crate) struct ClonedPartition<T> {
    partitions: SharedPartitions<T>,
    partition: usize,
    next: usize,
}

impl<T> ClonedPartition<T> {
    pub(crate) fn new(partitions: SharedPartitions<T>, partition: usize) -> Self {
        ClonedPartition {
            partitions,
            partition,
            next: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.partitions
            .get(self.partition)
            .map_or(0, |p| p.len() - self.next)
    }
}

impl<T: Clone> Iterator for ClonedPartition<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let item = self.partitions.get(self.partition)?.get(self.next)?.clone();
        self.next += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

/// Splits `data` into `num_partitions` (at least one) contiguous parts whose sizes
/// differ by at most one, larger parts first.
pub(crate) fn split_evenly<T>(data: Vec<T>, num_partitions: usize) -> Vec<Vec<T>> {
    let n = num_partitions.max(1);
    let (base, extra) = (data.len() / n, data.len() % n);
    let mut rest = data.into_iter();
    (0..n)
        .map(|i| rest.by_ref().take(base + usize::from(i < extra)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_evenly_keeps_order_and_balances() {
        let parts = split_evenly((0..7).collect::<Vec<_>>(), 3);
        assert_eq!(parts, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
        assert_eq!(split_evenly(Vec::<u8>::new(), 0), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn cloned_partition_reports_its_length() {
        let data = Arc::new(vec![vec![1, 2, 3], vec![]]);
        let mut it = ClonedPartition::new(data.clone(), 0);
        assert_eq!(it.size_hint(), (3, Some(3)));
        it.next();
        assert_eq!(it.size_hint(), (2, Some(2)));
        assert_eq!(ClonedPartition::new(data, 1).count(), 0);
    }
}
