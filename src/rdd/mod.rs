//! [`Rdd`]: an immutable, partitioned dataset computed in parallel on rayon.
//!
//! An `Rdd` is a number of partitions plus a way to compute each of them (an
//! `RddNode`). Building an `Rdd` computes nothing. Narrow operations (`map`,
//! `filter`, `flat_map`, ...) wrap their parent and are fused into one pass per
//! partition, as Spark pipelines them. Wide operations (`reduce_by_key`, `join`, ...)
//! shuffle: every input partition combines map-side into one table per output
//! partition, in parallel, then every output partition merges its tables, in parallel.
//! Actions (`collect`, `count`, ...) first run the stages the result depends on
//! (`RddNode::prepare`), then compute the partitions in parallel.
//!
//! The modules below each hold one concept: `narrow` (fused per-partition operations),
//! `materialized` (partitions held in memory, or fetched on first use), `blocks`
//! (received data as it was stored), `partitioner` (key to partition), `shuffle` (the
//! combining shuffle all pair operations share), `cogroup` (joins), `sort`, `pair` (the
//! pair-RDD API), `partitioned` (choosing a keyed operation's partitioner) and
//! `actions`.

mod actions;
pub(crate) mod blocks;
mod cartesian;
mod cogroup;
pub(crate) mod materialized;
mod narrow;
mod pair;
mod partitioned;
pub(crate) mod partitioner;
pub(crate) mod shuffle;
mod sort;

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use rayon::ThreadPool;

#[cfg(feature = "kafka")]
use crate::error::Result;

pub(crate) use materialized::{Deferred, Materialized};
pub(crate) use pair::reducing;
pub use partitioned::PartitionedRdd;
pub use partitioner::{HashPartitioner, Partitioner};

/// What an element of an [`Rdd`] must be: cloneable (partitions held in memory hand
/// out clones, so an `Rdd` can be read more than once) and shareable across threads.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

/// What a key of a pair [`Rdd`] must be: [`Data`] that can be hashed and compared.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a key: keys are hashed and compared, so they must be `Hash + Eq` (and `Clone + Send + Sync + 'static`)",
    note = "floating-point numbers are neither `Hash` nor `Eq`: key by an integer (such as the value in hundredths) or by `f64::to_bits`"
)]
pub trait Key: Data + Hash + Eq {}
impl<T: Data + Hash + Eq> Key for T {}

/// The elements of one partition, computed on demand.
pub type PartitionIter<T> = Box<dyn Iterator<Item = T>>;

/// How to compute the partitions of one [`Rdd`].
pub(crate) trait RddNode<T>: Send + Sync + 'static {
    /// The number of partitions.
    fn num_partitions(&self) -> usize;

    /// Runs the stages this node depends on (shuffles, caches), once, so that
    /// [`compute`](RddNode::compute) only streams. Called inside the context's pool.
    fn prepare(&self);

    /// The elements of partition `partition`. Only valid after `prepare`.
    fn compute(&self, partition: usize) -> PartitionIter<T>;

    /// The number of elements, where it is known without computing anything (data
    /// already in memory); `None` otherwise. Lets inputs report the records of a
    /// batch they did not receive themselves (queue streams) without running it.
    fn known_len(&self) -> Option<u64> {
        None
    }
}

/// Where an [`Rdd`]'s work runs: a context's thread pool, or rayon's global pool.
pub(crate) struct ExecEnv {
    pool: Option<Arc<ThreadPool>>,
    parallelism: usize,
}

impl ExecEnv {
    /// An environment running on its own pool of `parallelism` threads.
    pub(crate) fn with_pool(pool: Arc<ThreadPool>) -> Arc<ExecEnv> {
        let parallelism = pool.current_num_threads();
        Arc::new(ExecEnv {
            pool: Some(pool),
            parallelism,
        })
    }

    /// The environment of `Rdd`s made outside any context: rayon's global pool.
    pub(crate) fn global() -> Arc<ExecEnv> {
        static GLOBAL: OnceLock<Arc<ExecEnv>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                Arc::new(ExecEnv {
                    pool: None,
                    parallelism: rayon::current_num_threads(),
                })
            })
            .clone()
    }

    /// The default number of partitions of shuffles: the number of threads.
    pub(crate) fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Runs `f` on this environment's pool.
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Whether the calling thread is one of this environment's workers.
    pub(crate) fn is_worker_thread(&self) -> bool {
        self.pool
            .as_ref()
            .is_some_and(|pool| pool.current_thread_index().is_some())
    }
}

/// An immutable, partitioned dataset, computed lazily and in parallel.
///
/// `Rdd`s made by a [`StreamingContext`](crate::StreamingContext) run on its thread
/// pool; those made with [`Rdd::from_vec`] run on rayon's global pool.
///
/// ```
/// use dstream::Rdd;
///
/// let lines = Rdd::from_vec(vec!["a b".to_string(), "b c b".to_string()], 2);
/// let mut counts = lines
///     .flat_map(|line| line.split(' ').map(str::to_string).collect::<Vec<_>>())
///     .map(|word| (word, 1))
///     .reduce_by_key(|a, b| a + b)
///     .collect();
/// counts.sort();
/// assert_eq!(counts, vec![("a".into(), 1), ("b".into(), 3), ("c".into(), 1)]);
/// ```
pub struct Rdd<T> {
    node: Arc<dyn RddNode<T>>,
    env: Arc<ExecEnv>,
}

impl<T> Clone for Rdd<T> {
    fn clone(&self) -> Self {
        Rdd {
            node: self.node.clone(),
            env: self.env.clone(),
        }
    }
}

impl<T: 'static> fmt::Debug for Rdd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rdd")
            .field("partitions", &self.node.num_partitions())
            .finish_non_exhaustive()
    }
}

impl<T: Data> Rdd<T> {
    pub(crate) fn from_node(node: impl RddNode<T>, env: Arc<ExecEnv>) -> Rdd<T> {
        Rdd {
            node: Arc::new(node),
            env,
        }
    }

    pub(crate) fn from_boxed_node(node: Box<dyn RddNode<T>>, env: Arc<ExecEnv>) -> Rdd<T> {
        Rdd {
            node: Arc::from(node),
            env,
        }
    }

    /// An `Rdd` holding `data`, split into `num_partitions` partitions of nearly equal
    /// size (at least one partition), computed on rayon's global pool.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let rdd = Rdd::from_vec((1..=10).collect(), 3);
    /// assert_eq!(rdd.num_partitions(), 3);
    /// assert_eq!(rdd.glom().collect(), vec![vec![1, 2, 3, 4], vec![5, 6, 7], vec![8, 9, 10]]);
    /// ```
    pub fn from_vec(data: Vec<T>, num_partitions: usize) -> Rdd<T> {
        Rdd::from_vec_in(data, num_partitions, ExecEnv::global())
    }

    pub(crate) fn from_vec_in(data: Vec<T>, num_partitions: usize, env: Arc<ExecEnv>) -> Rdd<T> {
        Rdd::from_partitions_in(materialized::split_evenly(data, num_partitions), env)
    }

    /// An `Rdd` whose partitions are exactly `partitions` (an empty `Vec` gives one
    /// empty partition), computed on rayon's global pool.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let rdd = Rdd::from_partitions(vec![vec!['a', 'b'], vec![], vec!['c']]);
    /// assert_eq!(rdd.num_partitions(), 3);
    /// assert_eq!(rdd.glom().collect(), vec![vec!['a', 'b'], vec![], vec!['c']]);
    /// ```
    pub fn from_partitions(partitions: Vec<Vec<T>>) -> Rdd<T> {
        let partitions = if partitions.is_empty() {
            vec![Vec::new()]
        } else {
            partitions
        };
        Rdd::from_partitions_in(partitions, ExecEnv::global())
    }

    pub(crate) fn from_partitions_in(partitions: Vec<Vec<T>>, env: Arc<ExecEnv>) -> Rdd<T> {
        Rdd::from_node(Materialized::new(partitions), env)
    }

    /// An `Rdd` whose partitions are runs of blocks (see `blocks`).
    pub(crate) fn from_blocks_in<B: blocks::Block<Item = T>>(
        partitions: Vec<Vec<B>>,
        env: Arc<ExecEnv>,
    ) -> Rdd<T> {
        Rdd::from_node(blocks::Blocks::new(partitions), env)
    }

    /// An `Rdd` of `num_partitions` partitions whose elements `load` fetches when a
    /// partition is first computed, on the pool thread computing it; kept afterwards
    /// (see `materialized::Loaded`). An error of `load` fails that computation.
    #[cfg(feature = "kafka")]
    pub(crate) fn loaded_in(
        num_partitions: usize,
        load: impl Fn(usize) -> Result<Vec<T>> + Send + Sync + 'static,
        env: Arc<ExecEnv>,
    ) -> Rdd<T> {
        Rdd::from_node(
            materialized::Loaded::new(num_partitions, Box::new(load)),
            env,
        )
    }

    /// An `Rdd` with no elements and one empty partition.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert!(Rdd::<i32>::empty().is_empty());
    /// ```
    pub fn empty() -> Rdd<T> {
        Rdd::empty_in(ExecEnv::global())
    }

    pub(crate) fn empty_in(env: Arc<ExecEnv>) -> Rdd<T> {
        Rdd::from_partitions_in(vec![Vec::new()], env)
    }

    /// The number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.node.num_partitions()
    }

    /// Materialises this `Rdd` the first time it is computed and serves later reads
    /// from memory, so work before it is done once however often it is read.
    ///
    /// ```
    /// use dstream::Rdd;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let seen = calls.clone();
    /// let rdd = Rdd::from_vec(vec![1, 2, 3], 2)
    ///     .map(move |x| { seen.fetch_add(1, Ordering::Relaxed); x * 10 })
    ///     .cache();
    /// assert_eq!(rdd.count(), 3);
    /// assert_eq!(rdd.collect(), vec![10, 20, 30]);
    /// assert_eq!(calls.load(Ordering::Relaxed), 3);
    /// ```
    pub fn cache(&self) -> Rdd<T> {
        Rdd::from_node(materialized::Cached::new(self.clone()), self.env.clone())
    }

    /// Makes a new `Rdd` in the same environment as this one.
    pub(crate) fn derive<U: Data>(&self, node: impl RddNode<U>) -> Rdd<U> {
        Rdd::from_node(node, self.env.clone())
    }

    pub(crate) fn env(&self) -> &Arc<ExecEnv> {
        &self.env
    }

    pub(crate) fn prepare(&self) {
        self.node.prepare();
    }

    pub(crate) fn compute(&self, partition: usize) -> PartitionIter<T> {
        self.node.compute(partition)
    }

    /// The number of elements if it is known without computing (see
    /// [`RddNode::known_len`]).
    pub(crate) fn known_len(&self) -> Option<u64> {
        self.node.known_len()
    }

    /// Computes every partition, in parallel, into memory.
    pub(crate) fn compute_all(&self) -> Vec<Vec<T>> {
        use rayon::prelude::*;
        self.env.run(|| {
            self.prepare();
            (0..self.num_partitions())
                .into_par_iter()
                .map(|p| self.compute(p).collect())
                .collect()
        })
    }
}
