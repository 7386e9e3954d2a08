//! Partitions held in memory: parallelized data, caches, the outputs of shuffles, and
//! inputs fetched on first use. Reading one hands out clones, so the data can be read
//! again.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::{Data, PartitionIter, Rdd, RddNode};
#[cfg(feature = "kafka")]
use crate::error::{Result, fail_computation, lock};

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

/// How [`Loaded`] fetches one partition's elements.
#[cfg(feature = "kafka")]
pub(crate) type Loader<T> = Box<dyn Fn(usize) -> Result<Vec<T>> + Send + Sync>;

/// Partitions whose data lives outside the process (an input's records on a broker)
/// and is fetched when a partition is first computed: by the pool thread computing
/// it, one partition at a time, so that fetching runs in parallel on the pool as any
/// other partition's work, with no thread of its own.
///
/// A fetched partition is kept: an `Rdd` read by several outputs, or again by a later
/// window, gets the same elements without fetching again (the source may have dropped
/// them meanwhile). A failed fetch fails the computation with its error (see
/// [`fail_computation`]) and keeps nothing, so a later computation fetches again.
/// Computations of the same partition wait for each other: a fetch runs once.
///
/// Only the Kafka direct stream fetches this way, hence the feature gate.
#[cfg(feature = "kafka")]
pub(crate) struct Loaded<T> {
    load: Loader<T>,
    partitions: Vec<Mutex<Option<SharedPartitions<T>>>>,
}

#[cfg(feature = "kafka")]
impl<T: Data> Loaded<T> {
    pub(crate) fn new(num_partitions: usize, load: Loader<T>) -> Self {
        Loaded {
            load,
            partitions: (0..num_partitions).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Partition `partition`, fetched now if no computation has fetched it yet. Held as
    /// a one-partition `SharedPartitions` so that reading it is a `ClonedPartition`.
    fn data(&self, partition: usize) -> SharedPartitions<T> {
        let Some(slot) = self.partitions.get(partition) else {
            return empty_partitions(1);
        };
        let mut slot = lock(slot);
        if let Some(data) = &*slot {
            return data.clone();
        }
        match (self.load)(partition) {
            Ok(elements) => slot.insert(Arc::new(vec![elements])).clone(),
            Err(error) => {
                drop(slot);
                fail_computation(error)
            }
        }
    }
}

#[cfg(feature = "kafka")]
impl<T: Data> RddNode<T> for Loaded<T> {
    fn num_partitions(&self) -> usize {
        self.partitions.len()
    }

    fn prepare(&self) {}

    fn compute(&self, partition: usize) -> PartitionIter<T> {
        Box::new(ClonedPartition::new(self.data(partition), 0))
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

    #[cfg(feature = "kafka")]
    #[test]
    fn loaded_partitions_are_fetched_once_when_computed_and_a_failed_fetch_keeps_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use crate::error::{Error, Unwound, catch_panic};

        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let loaded = Loaded::new(
            2,
            Box::new(move |partition| {
                // The first fetch of partition 1 fails, as a broker gone mid-batch.
                if counted.fetch_add(1, Ordering::SeqCst) == 0 && partition == 1 {
                    return Err(Error::Kafka {
                        action: "read offsets 0..2 of t-1".into(),
                        reason: "the broker is gone".into(),
                    });
                }
                Ok(vec![partition * 10, partition * 10 + 1])
            }),
        );
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            0,
            "nothing before computing"
        );
        let failed = catch_panic(|| loaded.compute(1).count()).unwrap_err();
        assert!(
            matches!(&failed, Unwound::Failed(Error::Kafka { reason, .. }) if reason == "the broker is gone"),
            "{failed:?}"
        );
        assert_eq!(loaded.compute(1).collect::<Vec<_>>(), vec![10, 11]);
        assert_eq!(loaded.compute(0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        assert_eq!(loaded.compute(1).collect::<Vec<_>>(), vec![10, 11]);
        assert_eq!(loaded.compute(0).size_hint(), (2, Some(2)));
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "kept, not fetched again");
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
