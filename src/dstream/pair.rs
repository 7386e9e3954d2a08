//! Operations on streams of `(key, value)` pairs, batch by batch.
//!
//! Each applies the `Rdd` operation of the same name to every batch. The
//! `_with_partitions` variants choose the number of partitions of the shuffle.

use std::sync::Arc;

use super::DStream;
use crate::error::Result;
use crate::rdd::{Data, Key};

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
        let parallelism = self.registry().parallelism();
        self.reduce_by_key_with_partitions(f, parallelism)
    }

    /// [`reduce_by_key`](DStream::reduce_by_key) into `partitions` partitions.
    pub fn reduce_by_key_with_partitions(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitions: usize,
    ) -> DStream<(K, V)>
    where
        K: Key,
    {
        let aggregator = crate::rdd::reducing(f);
        self.map_rdd("reduce_by_key", move |rdd| {
            rdd.shuffle_combine(aggregator.clone(), partitions)
        })
    }

    /// Collects the values of each key within each batch.
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)>
    where
        K: Key,
    {
        let parallelism = self.registry().parallelism();
        self.group_by_key_with_partitions(parallelism)
    }

    /// [`group_by_key`](DStream::group_by_key) into `partitions` partitions.
    pub fn group_by_key_with_partitions(&self, partitions: usize) -> DStream<(K, Vec<V>)>
    where
        K: Key,
    {
        self.map_rdd("group_by_key", move |rdd| {
            rdd.group_by_key_with_partitions(partitions)
        })
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
        let parallelism = self.registry().parallelism();
        self.combine_by_key_with_partitions(create, merge_value, merge_combiners, parallelism)
    }

    /// [`combine_by_key`](DStream::combine_by_key) into `partitions` partitions.
    pub fn combine_by_key_with_partitions<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
        partitions: usize,
    ) -> DStream<(K, C)>
    where
        K: Key,
    {
        let aggregator = crate::rdd::shuffle::Aggregator {
            create: Arc::new(create),
            merge_value: Arc::new(merge_value),
            merge_combiners: Arc::new(merge_combiners),
        };
        self.map_rdd("combine_by_key", move |rdd| {
            rdd.shuffle_combine(aggregator.clone(), partitions)
        })
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
        let parallelism = self.registry().parallelism();
        self.join_with_partitions(other, parallelism)
    }

    /// [`join`](DStream::join) into `partitions` partitions.
    pub fn join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (V, W))>>
    where
        K: Key,
    {
        self.combine_with("join", other, move |a, b, _| {
            a.join_with_partitions(&b, partitions)
        })
    }

    /// Left outer join of each batch with the batch of `other` at the same time.
    pub fn left_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (V, Option<W>))>>
    where
        K: Key,
    {
        let parallelism = self.registry().parallelism();
        self.left_outer_join_with_partitions(other, parallelism)
    }

    /// [`left_outer_join`](DStream::left_outer_join) into `partitions` partitions.
    pub fn left_outer_join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (V, Option<W>))>>
    where
        K: Key,
    {
        self.combine_with("left_outer_join", other, move |a, b, _| {
            a.left_outer_join_with_partitions(&b, partitions)
        })
    }

    /// Right outer join of each batch with the batch of `other` at the same time.
    pub fn right_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Option<V>, W))>>
    where
        K: Key,
    {
        let parallelism = self.registry().parallelism();
        self.right_outer_join_with_partitions(other, parallelism)
    }

    /// [`right_outer_join`](DStream::right_outer_join) into `partitions` partitions.
    pub fn right_outer_join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (Option<V>, W))>>
    where
        K: Key,
    {
        self.combine_with("right_outer_join", other, move |a, b, _| {
            a.right_outer_join_with_partitions(&b, partitions)
        })
    }

    /// Full outer join of each batch with the batch of `other` at the same time.
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Option<V>, Option<W>))>>
    where
        K: Key,
    {
        let parallelism = self.registry().parallelism();
        self.full_outer_join_with_partitions(other, parallelism)
    }

    /// [`full_outer_join`](DStream::full_outer_join) into `partitions` partitions.
    pub fn full_outer_join_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (Option<V>, Option<W>))>>
    where
        K: Key,
    {
        self.combine_with("full_outer_join", other, move |a, b, _| {
            a.full_outer_join_with_partitions(&b, partitions)
        })
    }

    /// For every key in either batch: its values here and in `other`, batch by batch.
    pub fn cogroup<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> Result<DStream<(K, (Vec<V>, Vec<W>))>>
    where
        K: Key,
    {
        let parallelism = self.registry().parallelism();
        self.cogroup_with_partitions(other, parallelism)
    }

    /// [`cogroup`](DStream::cogroup) into `partitions` partitions.
    pub fn cogroup_with_partitions<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        partitions: usize,
    ) -> Result<DStream<(K, (Vec<V>, Vec<W>))>>
    where
        K: Key,
    {
        self.combine_with("cogroup", other, move |a, b, _| {
            a.cogroup_with_partitions(&b, partitions)
        })
    }
}
