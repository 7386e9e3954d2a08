//! [`DStream`]: a stream of `Rdd`s, one per batch, and the graph of operations
//! between streams.
//!
//! Every stream is a `StreamNode`: an identity (`NodeMeta`), the `Rdd`s it has
//! generated for recent batch times, and a `Compute` that makes the `Rdd` for a new
//! time from its parents' `Rdd`s. Computing a stream only builds `Rdd`s, which are lazy;
//! the work happens when the batch's output operations run.
//!
//! Modules: `transform` (per-batch operations on any stream), `pair` (operations on
//! streams of pairs), `partitioned` (choosing a keyed operation's partitioner), `window` (windows, plain and incremental), `state`
//! (`update_state_by_key`, `map_with_state`), `store` (the state store and per-batch
//! steps that state and incremental windows share), `output` (`foreach_rdd`,
//! `pprint`, `save_as_text_files`), `job` (the work they hand the scheduler),
//! `registry` (what streams register with their context, and share).

mod job;
mod json;
mod output;
mod pair;
mod partitioned;
mod registry;
pub(crate) mod state;
pub(crate) mod store;
mod transform;
mod window;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::rdd::{Data, Rdd};
use crate::time::{Time, duration_millis};

pub(crate) use job::Job;
pub use json::RejectedJson;
pub(crate) use output::OutputOperation;
pub use output::OutputResult;
pub use partitioned::PartitionedDStream;
pub(crate) use registry::StreamRegistry;
pub use state::{MapWithStateStream, State, StateData, StateSpec};
pub use store::StateSize;

/// The batch grid shared by every stream of a context.
pub(crate) struct Timeline {
    batch_interval: Duration,
    /// One batch interval before the first batch: every valid batch time is
    /// `zero + k * slide` for the stream's slide and some `k > 0`.
    zero: OnceLock<Time>,
}

impl Timeline {
    pub(crate) fn new(batch_interval: Duration) -> Self {
        Timeline {
            batch_interval,
            zero: OnceLock::new(),
        }
    }

    pub(crate) fn batch_interval(&self) -> Duration {
        self.batch_interval
    }

    /// Fixes the grid so that `first_batch` is the first batch time.
    pub(crate) fn start_at(&self, first_batch: Time) {
        let _ = self.zero.set(first_batch - self.batch_interval);
    }

    pub(crate) fn zero(&self) -> Option<Time> {
        self.zero.get().copied()
    }
}

/// What identifies a stream, whatever its element type.
pub(crate) struct NodeMeta {
    /// Registration order in the context, from 0.
    pub(crate) id: usize,
    /// The operation that made the stream, for example `reduce_by_key`.
    pub(crate) kind: &'static str,
    /// A name given with [`DStream::name`].
    pub(crate) name: Mutex<Option<String>>,
    /// How often the stream has an `Rdd`: the batch interval, or a window's slide.
    pub(crate) slide: Duration,
    pub(crate) parents: Vec<Arc<dyn GraphNode>>,
    pub(crate) timeline: Arc<Timeline>,
}

impl NodeMeta {
    /// How the stream is named in messages: `#3 reduce_by_key "counts"`.
    pub(crate) fn describe(&self) -> String {
        match &*self.name.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(name) => format!("#{} {} {:?}", self.id, self.kind, name),
            None => format!("#{} {}", self.id, self.kind),
        }
    }

    /// Whether the stream has an `Rdd` at `time`.
    pub(crate) fn is_valid_time(&self, time: Time) -> bool {
        self.timeline
            .zero()
            .is_some_and(|zero| time > zero && time.is_multiple_of(self.slide, zero))
    }
}

/// A stream node as the scheduler sees it: identity and memory management, no types.
pub(crate) trait GraphNode: Send + Sync + 'static {
    fn meta(&self) -> &NodeMeta;

    /// Forgets the `Rdd`s that no operation needs once batch `time` has completed.
    fn forget_before(&self, time: Time);

    /// Computes (lazily: builds) and remembers the stream's `Rdd` for `time`.
    fn generate(&self, time: Time);
}

/// How a stream makes its `Rdd` for a batch time from its parents' `Rdd`s.
pub(crate) trait Compute<T>: Send + Sync + 'static {
    /// The `Rdd` for `time`, or `None` when the stream has none then.
    fn compute(&self, time: Time) -> Option<Rdd<T>>;
}

/// One stream: its identity, its recent `Rdd`s and how to compute new ones.
pub(crate) struct StreamNode<T> {
    meta: NodeMeta,
    /// How far back (ms) windows over this stream read its `Rdd`s.
    lookback: AtomicI64,
    generated: Mutex<BTreeMap<Time, Rdd<T>>>,
    compute: Box<dyn Compute<T>>,
}

impl<T: Data> StreamNode<T> {
    pub(crate) fn new(meta: NodeMeta, compute: impl Compute<T>) -> Self {
        StreamNode {
            meta,
            lookback: AtomicI64::new(0),
            generated: Mutex::new(BTreeMap::new()),
            compute: Box::new(compute),
        }
    }

    fn generated(&self) -> std::sync::MutexGuard<'_, BTreeMap<Time, Rdd<T>>> {
        self.generated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The `Rdd` of `time`: remembered, or computed now and remembered.
    pub(crate) fn get_or_compute(&self, time: Time) -> Option<Rdd<T>> {
        if !self.meta.is_valid_time(time) {
            return None;
        }
        if let Some(rdd) = self.generated().get(&time) {
            return Some(rdd.clone());
        }
        let rdd = self.compute.compute(time)?;
        Some(self.generated().entry(time).or_insert(rdd).clone())
    }

    /// Records the `Rdd` of `time` (input streams get their data this way).
    pub(crate) fn put(&self, time: Time, rdd: Rdd<T>) {
        self.generated().insert(time, rdd);
    }

    /// The `Rdd`s remembered now, oldest first.
    pub(crate) fn remembered(&self) -> Vec<(Time, Rdd<T>)> {
        self.generated()
            .iter()
            .map(|(time, rdd)| (*time, rdd.clone()))
            .collect()
    }

    /// Keeps `Rdd`s for `length` after their batch completes, for a window over this
    /// stream.
    pub(crate) fn require_lookback(&self, length: Duration) {
        self.lookback
            .fetch_max(duration_millis(length), Ordering::Relaxed);
    }
}

impl<T: Data> GraphNode for StreamNode<T> {
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }

    fn forget_before(&self, time: Time) {
        let keep_after =
            Time::from_millis(time.as_millis() - self.lookback.load(Ordering::Relaxed));
        let mut generated = self.generated();
        let kept = generated.split_off(&Time::from_millis(keep_after.as_millis() + 1));
        *generated = kept;
    }

    fn generate(&self, time: Time) {
        let _ = self.get_or_compute(time);
    }
}

/// A stream of [`Rdd`]s, one per batch: the result of an input stream or of operations
/// on other streams. Operations on a `DStream` describe work; it is done batch by
/// batch once the [`StreamingContext`](crate::StreamingContext) starts.
///
/// ```
/// use dstream::{ManualClock, RddQueue, StreamingConfig, StreamingContext, Time};
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// # fn main() -> dstream::Result<()> {
/// let clock = ManualClock::new(Time::from_millis(0));
/// let ssc = StreamingContext::builder()
///     .config(StreamingConfig {
///         batch_interval: Duration::from_secs(1),
///         ..StreamingConfig::default()
///     })
///     .clock(clock.clone())
///     .build()?;
/// let queue = RddQueue::new();
/// queue.push(ssc.parallelize(vec!["to be", "or not to be"]));
/// let counts = ssc
///     .queue_stream(&queue, true, None)
///     .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
///     .map(|word| (word, 1))
///     .reduce_by_key(|a, b| a + b);
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// counts.foreach_rdd(move |rdd, _time| sink.lock().unwrap().extend(rdd.collect()))?;
///
/// ssc.start()?;
/// clock.advance(Duration::from_secs(1));
/// ssc.await_batch(Time::from_millis(1000), Duration::from_secs(30))?;
/// ssc.stop(false)?;
///
/// let mut seen = seen.lock().unwrap().clone();
/// seen.sort();
/// assert_eq!(seen, vec![("be".into(), 2), ("not".into(), 1), ("or".into(), 1), ("to".into(), 2)]);
/// # Ok(())
/// # }
/// ```
pub struct DStream<T> {
    node: Arc<StreamNode<T>>,
    registry: Arc<StreamRegistry>,
}

impl<T> Clone for DStream<T> {
    fn clone(&self) -> Self {
        DStream {
            node: self.node.clone(),
            registry: self.registry.clone(),
        }
    }
}

impl<T: Data> fmt::Debug for DStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DStream")
            .field("stream", &self.node.meta.describe())
            .field("slide", &self.node.meta.slide)
            .finish()
    }
}

impl<T: Data> DStream<T> {
    /// Makes a new stream node in `registry`.
    pub(crate) fn create(
        registry: &Arc<StreamRegistry>,
        kind: &'static str,
        slide: Duration,
        parents: Vec<Arc<dyn GraphNode>>,
        compute: impl Compute<T>,
    ) -> DStream<T> {
        let meta = NodeMeta {
            id: registry.next_stream_id(),
            kind,
            name: Mutex::new(None),
            slide,
            parents,
            timeline: registry.timeline().clone(),
        };
        DStream {
            node: Arc::new(StreamNode::new(meta, compute)),
            registry: registry.clone(),
        }
    }

    /// Makes a stream computed from this one, sliding with it.
    pub(crate) fn derive<U: Data>(
        &self,
        kind: &'static str,
        compute: impl Compute<U>,
    ) -> DStream<U> {
        DStream::create(
            &self.registry,
            kind,
            self.node.meta.slide,
            vec![self.node.clone() as Arc<dyn GraphNode>],
            compute,
        )
    }

    pub(crate) fn node(&self) -> &Arc<StreamNode<T>> {
        &self.node
    }

    /// The registry of this stream's context.
    pub(crate) fn registry(&self) -> &Arc<StreamRegistry> {
        &self.registry
    }

    /// Names the stream. Names appear in messages and make checkpoint recovery match
    /// streams by name rather than by the order they were defined in.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[1]", Duration::from_secs(1))?;
    /// let numbers = ssc.queue_stream(&RddQueue::<i32>::new(), true, None).name("numbers");
    /// assert!(format!("{numbers:?}").contains("numbers"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(self, name: impl Into<String>) -> Self {
        *self
            .node
            .meta
            .name
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(name.into());
        self
    }

    /// The `Rdd`s this stream still remembers for batch times from `from` to `to`
    /// (both included), oldest first, as Spark's `slice`. A stream forgets a batch's
    /// `Rdd` once the batch has completed, unless its windows or the context's
    /// [`remember`](crate::StreamingContext::remember) duration keep it longer.
    ///
    /// ```
    /// use dstream::{ManualClock, RddQueue, StreamingConfig, StreamingContext, Time};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let clock = ManualClock::default();
    /// let ssc = StreamingContext::builder()
    ///     .config(StreamingConfig {
    ///         batch_interval: Duration::from_secs(1),
    ///         ..StreamingConfig::default()
    ///     })
    ///     .clock(clock.clone())
    ///     .build()?;
    /// ssc.remember(Duration::from_secs(2))?;
    /// let queue = RddQueue::new();
    /// for n in 1..=3 {
    ///     queue.push(ssc.parallelize(vec![n]));
    /// }
    /// let numbers = ssc.queue_stream(&queue, true, None);
    /// numbers.foreach_rdd(|_, _| ())?;
    /// ssc.start()?;
    /// for second in 1..=3 {
    ///     clock.advance(Duration::from_secs(1));
    ///     ssc.await_batch(Time::from_millis(second * 1000), Duration::from_secs(30))?;
    /// }
    /// let kept: Vec<_> = numbers
    ///     .slice(Time::from_millis(0), Time::from_millis(3000))
    ///     .into_iter()
    ///     .map(|(time, rdd)| (time.as_millis(), rdd.collect()))
    ///     .collect();
    /// assert_eq!(kept, vec![(2000, vec![2]), (3000, vec![3])]);
    /// ssc.stop(false)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn slice(&self, from: Time, to: Time) -> Vec<(Time, Rdd<T>)> {
        self.node
            .remembered()
            .into_iter()
            .filter(|(time, _)| (from..=to).contains(time))
            .collect()
    }

    /// How often this stream has an `Rdd`: the batch interval, or a window's slide.
    pub fn slide_duration(&self) -> Duration {
        self.node.meta.slide
    }

    /// Checks that `others` can be combined with this stream by `operation`: same
    /// context, same slide.
    pub(crate) fn check_compatible<U: Data>(
        &self,
        operation: &'static str,
        other: &DStream<U>,
    ) -> Result<()> {
        if !Arc::ptr_eq(&self.registry, &other.registry) {
            return Err(Error::IncompatibleStreams {
                operation,
                reason: format!(
                    "{} and {} belong to different streaming contexts",
                    self.node.meta.describe(),
                    other.node.meta.describe()
                ),
            });
        }
        if self.node.meta.slide != other.node.meta.slide {
            return Err(Error::IncompatibleStreams {
                operation,
                reason: format!(
                    "{} slides every {:?} but {} every {:?}; window both to the same slide first",
                    self.node.meta.describe(),
                    self.node.meta.slide,
                    other.node.meta.describe(),
                    other.node.meta.slide
                ),
            });
        }
        Ok(())
    }
}
