//! Per-batch operations: each batch's `Rdd` is made from the parents' `Rdd`s of the
//! same batch time. All of them are one of four computes: [`Transformed`] (one
//! parent), [`TransformedWith`] (two parents), [`TransformedAll`] and [`Unioned`] (any
//! number).

use std::sync::Arc;

use super::partitioned::PartitionedDStream;
use super::{Compute, DStream, GraphNode, StreamNode};
use crate::error::Result;
use crate::rdd::Deferred;
use crate::rdd::{Data, Key, PartitionIter, Partitioner, Rdd};
use crate::time::Time;

type RddFn<A, T> = dyn Fn(Rdd<A>, Time) -> Rdd<T> + Send + Sync;
type RddFn2<A, B, T> = dyn Fn(Rdd<A>, Rdd<B>, Time) -> Rdd<T> + Send + Sync;
type RddFnAll<A, T> = dyn Fn(Vec<Rdd<A>>, Time) -> Rdd<T> + Send + Sync;

/// A stream whose `Rdd` at `t` is a function of its parent's `Rdd` at `t`.
pub(crate) struct Transformed<A, T> {
    parent: Arc<StreamNode<A>>,
    f: Box<RddFn<A, T>>,
}

impl<A: Data, T: Data> Compute<T> for Transformed<A, T> {
    fn compute(&self, time: Time) -> Option<Rdd<T>> {
        self.parent
            .get_or_compute(time)
            .map(|rdd| (self.f)(rdd, time))
    }
}

/// A stream whose `Rdd` at `t` is a function of two parents' `Rdd`s at `t`.
struct TransformedWith<A, B, T> {
    left: Arc<StreamNode<A>>,
    right: Arc<StreamNode<B>>,
    f: Box<RddFn2<A, B, T>>,
}

impl<A: Data, B: Data, T: Data> Compute<T> for TransformedWith<A, B, T> {
    fn compute(&self, time: Time) -> Option<Rdd<T>> {
        let left = self.left.get_or_compute(time)?;
        let right = self.right.get_or_compute(time)?;
        Some((self.f)(left, right, time))
    }
}

/// A stream whose `Rdd` at `t` is a function of several parents' `Rdd`s at `t`.
struct TransformedAll<A, T> {
    parents: Vec<Arc<StreamNode<A>>>,
    f: Box<RddFnAll<A, T>>,
}

impl<A: Data, T: Data> Compute<T> for TransformedAll<A, T> {
    fn compute(&self, time: Time) -> Option<Rdd<T>> {
        let rdds = self
            .parents
            .iter()
            .map(|p| p.get_or_compute(time))
            .collect::<Option<Vec<_>>>()?;
        Some((self.f)(rdds, time))
    }
}

/// The union of several streams' `Rdd`s at `t`.
struct Unioned<T> {
    parents: Vec<Arc<StreamNode<T>>>,
}

impl<T: Data> Compute<T> for Unioned<T> {
    fn compute(&self, time: Time) -> Option<Rdd<T>> {
        let rdds: Vec<Rdd<T>> = self
            .parents
            .iter()
            .filter_map(|p| p.get_or_compute(time))
            .collect();
        let (first, rest) = rdds.split_first()?;
        Some(Rdd::union_all(first, rest))
    }
}

impl<T: Data> DStream<T> {
    /// A stream made by applying `f` to each batch's `Rdd`.
    pub(crate) fn map_rdd<U: Data>(
        &self,
        kind: &'static str,
        f: impl Fn(Rdd<T>) -> Rdd<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.derive(
            kind,
            Transformed {
                parent: self.node().clone(),
                f: Box::new(move |rdd, _| f(rdd)),
            },
        )
    }

    /// Applies `f` to each batch's `Rdd` and its batch time: any `Rdd` operation, per
    /// batch. `f` runs on the scheduler's thread when the batch is generated; the
    /// `Rdd` it returns is computed when the batch runs.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let pairs = ssc.queue_stream(&RddQueue::<(String, i32)>::new(), true, None);
    /// let top = pairs.transform(|rdd, _time| rdd.map(|(w, c)| (c, w)).sort_by_key(false));
    /// # let _ = top;
    /// # Ok(())
    /// # }
    /// ```
    pub fn transform<U: Data>(
        &self,
        f: impl Fn(Rdd<T>, Time) -> Rdd<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.transform_as("transform", f)
    }

    /// A [`transform`](Self::transform) that names its operation `kind`.
    pub(crate) fn transform_as<U: Data>(
        &self,
        kind: &'static str,
        f: impl Fn(Rdd<T>, Time) -> Rdd<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.derive(
            kind,
            Transformed {
                parent: self.node().clone(),
                f: Box::new(f),
            },
        )
    }

    /// Applies `f` to the `Rdd`s of this stream and `other` at each batch time. The
    /// streams must come from the same context and slide alike.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let words = ssc.queue_stream(&RddQueue::<String>::new(), true, None);
    /// let banned = ssc.queue_stream(&RddQueue::<String>::new(), true, None);
    /// let allowed = words.transform_with(&banned, |words, banned, _time| {
    ///     words.map(|w| (w, ())).left_outer_join(&banned.map(|b| (b, ())))
    ///         .filter(|(_, (_, ban))| ban.is_none())
    ///         .keys()
    /// })?;
    /// # let _ = allowed;
    /// # Ok(())
    /// # }
    /// ```
    pub fn transform_with<U: Data, V: Data>(
        &self,
        other: &DStream<U>,
        f: impl Fn(Rdd<T>, Rdd<U>, Time) -> Rdd<V> + Send + Sync + 'static,
    ) -> Result<DStream<V>> {
        self.combine_with("transform_with", other, f)
    }

    /// A two-parent stream, after checking that the parents fit together.
    pub(crate) fn combine_with<U: Data, V: Data>(
        &self,
        kind: &'static str,
        other: &DStream<U>,
        f: impl Fn(Rdd<T>, Rdd<U>, Time) -> Rdd<V> + Send + Sync + 'static,
    ) -> Result<DStream<V>> {
        self.check_compatible(kind, other)?;
        Ok(DStream::create(
            self.registry(),
            kind,
            self.slide_duration(),
            vec![
                self.node().clone() as Arc<dyn GraphNode>,
                other.node().clone() as Arc<dyn GraphNode>,
            ],
            TransformedWith {
                left: self.node().clone(),
                right: other.node().clone(),
                f: Box::new(f),
            },
        ))
    }

    /// A stream made by `f` from the `Rdd`s of `first` and `rest` (in that order) at
    /// each batch time, after checking that they fit together.
    pub(crate) fn transform_all<U: Data>(
        first: &DStream<T>,
        rest: &[DStream<T>],
        f: impl Fn(Vec<Rdd<T>>, Time) -> Rdd<U> + Send + Sync + 'static,
    ) -> Result<DStream<U>> {
        for other in rest {
            first.check_compatible("transform", other)?;
        }
        let streams: Vec<&DStream<T>> = std::iter::once(first).chain(rest).collect();
        Ok(DStream::create(
            first.registry(),
            "transform",
            first.slide_duration(),
            streams
                .iter()
                .map(|s| s.node().clone() as Arc<dyn GraphNode>)
                .collect(),
            TransformedAll {
                parents: streams.iter().map(|s| s.node().clone()).collect(),
                f: Box::new(f),
            },
        ))
    }

    /// The union of several streams of one context that slide alike.
    pub(crate) fn union_all(first: &DStream<T>, rest: &[DStream<T>]) -> Result<DStream<T>> {
        for other in rest {
            first.check_compatible("union", other)?;
        }
        let streams: Vec<&DStream<T>> = std::iter::once(first).chain(rest).collect();
        Ok(DStream::create(
            first.registry(),
            "union",
            first.slide_duration(),
            streams
                .iter()
                .map(|s| s.node().clone() as Arc<dyn GraphNode>)
                .collect(),
            Unioned {
                parents: streams.iter().map(|s| s.node().clone()).collect(),
            },
        ))
    }

    /// Applies `f` to every element.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let lines = ssc.queue_stream(&RddQueue::<String>::new(), true, None);
    /// let lengths = lines.map(|line| line.len());
    /// # let _ = lengths;
    /// # Ok(())
    /// # }
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DStream<U> {
        let f = Arc::new(f);
        self.map_rdd("map", move |rdd| {
            let f = f.clone();
            rdd.map(move |x| f(x))
        })
    }

    /// Applies `f` to every element and flattens the results: the word split of the
    /// classic word count.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let lines = ssc.queue_stream(&RddQueue::<String>::new(), true, None);
    /// let words = lines.flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>());
    /// # let _ = words;
    /// # Ok(())
    /// # }
    /// ```
    pub fn flat_map<U: Data, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> DStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.map_rdd("flat_map", move |rdd| {
            let f = f.clone();
            rdd.flat_map(move |x| f(x))
        })
    }

    /// Applies `f` to every element, with a `Vec` to put its results in, and flattens
    /// them (see [`Rdd::flat_map_into`]): the word split of the word count without a
    /// `collect` per line, and the fastest way to write it.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let lines = ssc.queue_stream(&RddQueue::<String>::new(), true, None);
    /// let words = lines.flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)));
    /// # let _ = words;
    /// # Ok(())
    /// # }
    /// ```
    pub fn flat_map_into<U: Data>(
        &self,
        f: impl Fn(&T, &mut Vec<U>) + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.map_rdd("flat_map_into", move |rdd| {
            let f = f.clone();
            rdd.flat_map_into(move |x, out| f(x, out))
        })
    }

    /// Keeps the elements for which `predicate` is true.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let lines = ssc.queue_stream(&RddQueue::<String>::new(), true, None);
    /// let errors = lines.filter(|line| line.contains("ERROR"));
    /// # let _ = errors;
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter(&self, predicate: impl Fn(&T) -> bool + Send + Sync + 'static) -> DStream<T> {
        let predicate = Arc::new(predicate);
        self.map_rdd("filter", move |rdd| {
            let predicate = predicate.clone();
            rdd.filter(move |x| predicate(x))
        })
    }

    /// Transforms each partition of each batch as a whole.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let numbers = ssc.queue_stream(&RddQueue::<i64>::new(), true, None);
    /// let partition_sums = numbers.map_partitions(|part| Some(part.sum::<i64>()));
    /// # let _ = partition_sums;
    /// # Ok(())
    /// # }
    /// ```
    pub fn map_partitions<U: Data, I>(
        &self,
        f: impl Fn(PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> DStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.map_rdd("map_partitions", move |rdd| {
            let f = f.clone();
            rdd.map_partitions(move |part| f(part))
        })
    }

    /// The elements of this stream and `other`, batch by batch.
    ///
    /// ```
    /// # use dstream::{RddQueue, StreamingContext};
    /// # use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// # let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let a = ssc.queue_stream(&RddQueue::<i32>::new(), true, None);
    /// let b = ssc.queue_stream(&RddQueue::<i32>::new(), true, None);
    /// let both = a.union(&b)?;
    /// # let _ = both;
    /// # Ok(())
    /// # }
    /// ```
    pub fn union(&self, other: &DStream<T>) -> Result<DStream<T>> {
        DStream::union_all(self, std::slice::from_ref(other))
    }

    /// Spreads each batch evenly over `partitions` partitions.
    pub fn repartition(&self, partitions: usize) -> DStream<T> {
        self.map_rdd("repartition", move |rdd| rdd.repartition(partitions))
    }

    /// Turns each partition of each batch into one `Vec`.
    pub fn glom(&self) -> DStream<Vec<T>> {
        self.map_rdd("glom", |rdd| rdd.glom())
    }

    /// Keeps each batch's `Rdd` in memory once computed, so that several output
    /// operations on this stream compute it once.
    pub fn cache(&self) -> DStream<T> {
        self.map_rdd("cache", |rdd| rdd.cache())
    }

    /// The number of elements of each batch: one element per batch, 0 included.
    pub fn count(&self) -> DStream<u64> {
        self.map_rdd("count", |rdd| {
            let counted = rdd.clone();
            rdd.derive(Deferred::new(move || vec![counted.count()]))
        })
    }

    /// Each batch's elements merged with `f`: one element per non-empty batch.
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> DStream<T> {
        let f = Arc::new(f);
        self.map_rdd("reduce", move |rdd| {
            let (reduced, f) = (rdd.clone(), f.clone());
            rdd.derive(Deferred::new(move || {
                reduced.reduce(|a, b| f(a, b)).into_iter().collect()
            }))
        })
    }
}

impl<T: Data> DStream<T> {
    /// How often each distinct element occurs in each batch.
    pub fn count_by_value(&self) -> DStream<(T, u64)>
    where
        T: Key,
    {
        self.with_default_partitions().count_by_value()
    }
}

impl<T: Data, P: Send + Sync + 'static> PartitionedDStream<T, P> {
    /// [`DStream::count_by_value`] with this partitioner (of the elements).
    pub fn count_by_value(&self) -> DStream<(T, u64)>
    where
        T: Key,
        P: Partitioner<T>,
    {
        let partitioning = self.partitioning();
        let counting = crate::rdd::reducing(|a, b| a + b);
        self.stream.map_rdd("count_by_value", move |rdd| {
            rdd.map(|x| (x, 1u64))
                .shuffle_combine(counting.clone(), partitioning.clone())
        })
    }
}
