//! Which partition a key belongs to.
//!
//! Hashing uses fixed seeds, so a key lands in the same partition in every run of the
//! same build: outputs come in a repeatable order, and a restarted process places each
//! key where the previous one did.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;

/// The seed of every key hash in dstream. Changing it changes the partition of keys.
const KEY_HASH_SEED: u64 = 0x6473_7472_6561_6d31; // "dstream1"

/// The fixed-seed hash of a key, shared by partitioning and shuffle tables.
#[inline]
pub(crate) fn hash_key<K: Hash + ?Sized>(key: &K) -> u64 {
    FixedState::with_seed(KEY_HASH_SEED).hash_one(key)
}

/// Assigns keys to partitions.
///
/// Every keyed operation that shuffles takes one through `partitioned`
/// ([`Rdd::partitioned`](crate::Rdd::partitioned),
/// [`DStream::partitioned`](crate::DStream::partitioned)), and
/// [`Rdd::partition_by`](crate::Rdd::partition_by) takes one directly. A number is a
/// partitioner too: `n` places keys as [`HashPartitioner::new(n)`](HashPartitioner::new)
/// does, so `pairs.partitioned(8)` is Spark's `numPartitions = 8`, and
/// `pairs.partitioned(MyPartitioner)` its `partitioner`.
///
/// ```
/// use dstream::{HashPartitioner, Partitioner};
///
/// struct ByFirstLetter;
/// impl Partitioner<String> for ByFirstLetter {
///     fn num_partitions(&self) -> usize { 26 }
///     fn partition(&self, key: &String) -> usize {
///         key.bytes().next().map_or(0, |b| usize::from(b.to_ascii_lowercase().wrapping_sub(b'a')) % 26)
///     }
/// }
/// assert_eq!(ByFirstLetter.partition(&"cat".to_string()), 2);
/// assert!(HashPartitioner::new(4).partition(&"cat") < 4);
/// assert_eq!(Partitioner::<&str>::partition(&4, &"cat"), HashPartitioner::new(4).partition(&"cat"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot place keys of type `{K}`",
    note = "give a number of partitions (`partitioned(8)`), a `HashPartitioner`, or a type that implements `Partitioner<{K}>`"
)]
pub trait Partitioner<K>: Send + Sync + 'static {
    /// How many partitions there are.
    fn num_partitions(&self) -> usize;

    /// The partition of `key`, in `0..num_partitions()`. Out-of-range answers are
    /// wrapped into range.
    fn partition(&self, key: &K) -> usize;
}

/// Partitions keys by a fixed-seed hash: every key always lands in the same partition.
///
/// ```
/// use dstream::{HashPartitioner, Partitioner};
/// let p = HashPartitioner::new(8);
/// assert_eq!(p.partition(&"word"), p.partition(&"word"));
/// assert_eq!(HashPartitioner::new(0).num_partitions(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashPartitioner {
    partitions: usize,
}

impl HashPartitioner {
    /// A partitioner into `partitions` partitions (0 is taken as 1).
    pub fn new(partitions: usize) -> Self {
        HashPartitioner {
            partitions: partitions.max(1),
        }
    }

    /// How many partitions there are.
    pub fn num_partitions(&self) -> usize {
        self.partitions
    }

    /// The partition of a key with this hash.
    ///
    /// Uses the middle bits of the hash, scaled into range without a division, so that
    /// the bits shuffle tables use to place entries (the lowest ones and the top seven)
    /// stay evenly spread inside each partition.
    #[inline]
    pub(crate) fn partition_of_hash(&self, hash: u64) -> usize {
        let middle = (hash >> 20) & 0xFFFF_FFFF;
        ((middle * self.partitions as u64) >> 32) as usize
    }
}

impl<K: Hash> Partitioner<K> for HashPartitioner {
    fn num_partitions(&self) -> usize {
        self.partitions
    }

    fn partition(&self, key: &K) -> usize {
        self.partition_of_hash(hash_key(key))
    }
}

/// A number of partitions, placing keys by their hash as [`HashPartitioner`] does
/// (0 is taken as 1).
///
/// ```
/// use dstream::{HashPartitioner, Partitioner};
/// assert_eq!(Partitioner::<u32>::num_partitions(&0), 1);
/// assert_eq!(Partitioner::partition(&3, &17u32), HashPartitioner::new(3).partition(&17u32));
/// ```
impl<K: Hash> Partitioner<K> for usize {
    fn num_partitions(&self) -> usize {
        (*self).max(1)
    }

    fn partition(&self, key: &K) -> usize {
        HashPartitioner::new(*self).partition_of_hash(hash_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_keys_evenly() {
        let p = HashPartitioner::new(4);
        let mut counts = [0usize; 4];
        for i in 0..40_000 {
            counts[p.partition(&format!("w{i}"))] += 1;
        }
        for c in counts {
            assert!(
                (9_000..11_000).contains(&c),
                "uneven partitions: {counts:?}"
            );
        }
    }

    #[test]
    fn is_stable_across_calls_and_instances() {
        let a = HashPartitioner::new(7);
        let b = HashPartitioner::new(7);
        for i in 0..1000u32 {
            assert_eq!(a.partition(&i), b.partition(&i));
        }
    }
}
