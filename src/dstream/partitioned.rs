//! [`PartitionedDStream`]: how a keyed operation on a stream chooses its
//! partitioning, as [`PartitionedRdd`](crate::PartitionedRdd) does for an `Rdd`.
//!
//! `pairs.partitioned(8).reduce_by_key(f)` is Spark's `reduceByKey(f, 8)`,
//! `pairs.partitioned(MyPartitioner).update_state_by_key(f)` its
//! `updateStateByKey(f, partitioner)`. Each keyed operation is written once, on the
//! view; the plain method on `DStream` hands it the default, as many partitions as the
//! context has worker threads.

use std::hash::Hash;
use std::sync::Arc;

use super::DStream;
use crate::rdd::shuffle::Partitioning;
use crate::rdd::{Data, PartitionedRdd, Partitioner, Rdd};

/// A [`DStream`] whose next keyed operation shuffles every batch with a chosen
/// partitioner: a number of partitions (hashed, as
/// [`HashPartitioner`](crate::HashPartitioner)) or any [`Partitioner`]. Made by
/// [`DStream::partitioned`]; its methods are the keyed operations of `DStream`, which
/// they document. State (`update_state_by_key`, `map_with_state`, incremental
/// windows) is kept partitioned by it too. Cheap to make and to clone.
///
/// ```
/// use dstream::{Partitioner, RddQueue, StreamingContext};
/// use std::time::Duration;
///
/// /// Words by their first letter: a to m in partition 0, the rest in partition 1.
/// struct ByFirstLetter;
/// impl Partitioner<String> for ByFirstLetter {
///     fn num_partitions(&self) -> usize { 2 }
///     fn partition(&self, word: &String) -> usize { usize::from(word.as_str() > "n") }
/// }
///
/// # fn main() -> dstream::Result<()> {
/// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
/// let pairs = ssc.queue_stream(&RddQueue::<(String, u32)>::new(), true, None);
/// let counts = pairs.partitioned(ByFirstLetter).reduce_by_key(|a, b| a + b);
/// let in_eight = pairs.partitioned(8).group_by_key();
/// # let _ = (counts, in_eight);
/// # Ok(())
/// # }
/// ```
pub struct PartitionedDStream<T, P> {
    pub(super) stream: DStream<T>,
    partitioner: Arc<P>,
}

impl<T, P> Clone for PartitionedDStream<T, P> {
    fn clone(&self) -> Self {
        PartitionedDStream {
            stream: self.stream.clone(),
            partitioner: self.partitioner.clone(),
        }
    }
}

impl<T: Data> DStream<T> {
    /// This stream with the partitioner its next keyed operation shuffles with, every
    /// batch: a number of partitions (`pairs.partitioned(8)`, keys placed by their
    /// hash), a [`HashPartitioner`](crate::HashPartitioner) or any [`Partitioner`] of
    /// its keys. Without it, keyed operations hash into as many partitions as the
    /// context has worker threads.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let word_counts = pairs.partitioned(4).reduce_by_key(|x, y| x + y);
    /// # let _ = word_counts;
    /// # Ok(())
    /// # }
    /// ```
    pub fn partitioned<P: Send + Sync + 'static>(
        &self,
        partitioner: P,
    ) -> PartitionedDStream<T, P> {
        PartitionedDStream {
            stream: self.clone(),
            partitioner: Arc::new(partitioner),
        }
    }

    /// This stream with the default partitioning of keyed operations: as many
    /// partitions as the context has worker threads.
    pub(super) fn with_default_partitions(&self) -> PartitionedDStream<T, usize> {
        self.partitioned(self.registry().parallelism())
    }
}

impl<T, P: Send + Sync + 'static> PartitionedDStream<T, P> {
    /// Where the operation sends each key.
    pub(super) fn partitioning<K: Hash + 'static>(&self) -> Partitioning<K>
    where
        P: Partitioner<K>,
    {
        Partitioning::of(&self.partitioner)
    }

    /// A function that gives a batch's `Rdd` this partitioner, for operations written
    /// on `Rdd`s.
    pub(super) fn per_batch<R: Data>(
        &self,
    ) -> impl Fn(&Rdd<R>) -> PartitionedRdd<R, P> + Send + Sync + 'static {
        let partitioner = self.partitioner.clone();
        move |rdd| rdd.partitioned_by(partitioner.clone())
    }
}
