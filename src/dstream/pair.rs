//! Operations on streams of `(key, value)` pairs, batch by batch.
//!
//! Each applies the `Rdd` operation of the same name to every batch. The keyed ones
//! are written once, on [`PartitionedDStream`], with the partitioner chosen there; the
//! plain methods hand it the default.

use std::sync::Arc;

use super::DStream;
use super::partitioned::PartitionedDStream;
use crate::error::Result;
use crate::rdd::shuffle::Aggregator;
use crate::rdd::{Data, Key, Partitioner};

impl<K: Data, V: Data> DStream<(K, V)> {
    /// Applies `f` to every value, keeping the keys.
    pub fn map_values<U: Data>(
        &self,
        f: impl Fn(V) -> U + Send + Sync + 'static,
    ) -> DStream<(K, U)> {
        let f = Arc::new(f);
        self.map_rdd("map_values", move |rdd| {
            let f = f.clone();
            rdd.map_values(move |v| f(v))
        })
    }

    /// Applies `f` to every value and pairs each result with the value's key.
    pub fn flat_map_values<U: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> DStream<(K, U)>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.map_rdd("flat_map_values", move |rdd| {
            let f = f.clone();
            rdd.flat_map_values(move |v| f(v))
        })
    }
}

// The join result types are spelled out, as Spark's are, rather than hidden behind
// aliases: a reader sees at once what each join yields.
#[allow(clippy::type_complexity)]
impl<K: Data, V: Data> DStream<(K, V)> {
    /// Merges the values of each key within each batch: the count of the classic word
    /// count.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let word_counts = pairs.reduce_by_key(|x, y| x + y);
    /// # let _ = word_counts;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)>
    where
        K: Key,
    {
        self.with_default_partitions().reduce_by_key(f)
    }

    /// Collects the values of each key within each batch.
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)>
    where
        K: Key,
    {
        self.with_default_partitions().group_by_key()
    }

    /// Combines the values of each key within each batch, as
    /// [`Rdd::combine_by_key`](crate::Rdd::combine_by_key).
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> DStream<(K, C)>
    where
        K: Key,
    {
        self.with_default_partitions()
            .combine_by_key(create, merge_value, merge_combiners)
    }

    /// Joins each batch with the batch of `other` at the same time (inner join).
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let clicks = ssc.queue_stream(&RddQueue::<(u32, String)>::new(), true, None);
    /// let users = ssc.queue_stream(&RddQueue::<(u32, String)>::new(), true, None);
    /// let named_clicks = clicks.join(&users)?;
    /// # let _ = named_clicks;
    /// # Ok(())
    /// # }
    /// ```
    pub fn join<W: Data>(&self, other: &DStream<(K, W)>) -> Result<DStream<(K, (V, W))>>
    where
        K: Key,
    {
        self.with_default_partitions().join(other)
    }

    /// Left outer join of each batch with the batch of `other` at the same time.
    pub fn left_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (V, Option<W>))>>
    where
        K: Key,
    {
        self.with_default_partitions().left_outer_join(other)
    }

    /// Right outer join of each batch with the batch of `other` at the same time.
    pub fn right_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Option<V>, W))>>
    where
        K: Key,
    {
        self.with_default_partitions().right_outer_join(other)
    }

    /// Full outer join of each batch with the batch of `other` at the same time.
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Option<V>, Option<W>))>>
    where
        K: Key,
    {
        self.with_default_partitions().full_outer_join(other)
    }

    /// For every key in either batch: its values here and in `other`, batch by batch.
    pub fn cogroup<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Vec<V>, Vec<W>))>>
    where
        K: Key,
    {
        self.with_default_partitions().cogroup(other)
    }
}

#[allow(clippy::type_complexity)]
impl<K: Data, V: Data, P: Send + Sync + 'static> PartitionedDStream<(K, V), P> {
    /// [`DStream::reduce_by_key`] with this partitioner.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let word_counts = pairs.partitioned(8).reduce_by_key(|x, y| x + y);
    /// # let _ = word_counts;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.shuffle_combine("reduce_by_key", crate::rdd::reducing(f))
    }

    /// [`DStream::group_by_key`] with this partitioner.
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        self.shuffle_combine("group_by_key", Aggregator::grouping())
    }

    /// [`DStream::combine_by_key`] with this partitioner.
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> DStream<(K, C)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let aggregator = Aggregator {
            create: Arc::new(create),
            merge_value: Arc::new(merge_value),
            merge_combiners: Arc::new(merge_combiners),
        };
        self.shuffle_combine("combine_by_key", aggregator)
    }

    /// Every batch shuffled and combined by `aggregator`.
    pub(super) fn shuffle_combine<C: Data>(
        &self,
        kind: &'static str,
        aggregator: Aggregator<V, C>,
    ) -> DStream<(K, C)>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let partitioning = self.partitioning();
        self.stream.map_rdd(kind, move |rdd| {
            rdd.shuffle_combine(aggregator.clone(), partitioning.clone())
        })
    }

    /// [`DStream::join`] with this partitioner.
    pub fn join<W: Data>(&self, other: &DStream<(K, W)>) -> Result<DStream<(K, (V, W))>>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let partitioned = self.per_batch();
        self.stream
            .combine_with("join", other, move |a, b, _| partitioned(&a).join(&b))
    }

    /// [`DStream::left_outer_join`] with this partitioner.
    pub fn left_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (V, Option<W>))>>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let partitioned = self.per_batch();
        self.stream
            .combine_with("left_outer_join", other, move |a, b, _| {
                partitioned(&a).left_outer_join(&b)
            })
    }

    /// [`DStream::right_outer_join`] with this partitioner.
    pub fn right_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Option<V>, W))>>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let partitioned = self.per_batch();
        self.stream
            .combine_with("right_outer_join", other, move |a, b, _| {
                partitioned(&a).right_outer_join(&b)
            })
    }

    /// [`DStream::full_outer_join`] with this partitioner.
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Option<V>, Option<W>))>>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let partitioned = self.per_batch();
        self.stream
            .combine_with("full_outer_join", other, move |a, b, _| {
                partitioned(&a).full_outer_join(&b)
            })
    }

    /// [`DStream::cogroup`] with this partitioner.
    pub fn cogroup<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Vec<V>, Vec<W>))>>
    where
        K: Key,
        P: Partitioner<K>,
    {
        let partitioned = self.per_batch();
        self.stream
            .combine_with("cogroup", other, move |a, b, _| partitioned(&a).cogroup(&b))
    }
}
