//! `queue_stream`: batches taken from an in-memory queue of `Rdd`s, for tests and
//! teaching.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Cut, InputSource, SourceContext};
use crate::error::Result;
use crate::rdd::{Data, ExecEnv, Rdd};
use crate::time::Time;

/// A queue of `Rdd`s feeding a [`queue_stream`](crate::StreamingContext::queue_stream).
/// Clones share the same queue, so `Rdd`s can be pushed while the stream runs.
///
/// ```
/// use dstream::{Rdd, RddQueue};
/// let queue = RddQueue::new();
/// queue.push(Rdd::from_vec(vec![1, 2, 3], 1));
/// assert_eq!(queue.len(), 1);
/// ```
pub struct RddQueue<T> {
    rdds: Arc<Mutex<VecDeque<Rdd<T>>>>,
}

impl<T> Clone for RddQueue<T> {
    fn clone(&self) -> Self {
        RddQueue {
            rdds: self.rdds.clone(),
        }
    }
}

impl<T: Data> Default for RddQueue<T> {
    fn default() -> Self {
        RddQueue {
            rdds: Arc::new(Mutex::new(VecDeque::new())),
        }
    }
}

impl<T: Data> RddQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn rdds(&self) -> std::sync::MutexGuard<'_, VecDeque<Rdd<T>>> {
        self.rdds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an `Rdd` at the back of the queue.
    pub fn push(&self, rdd: Rdd<T>) {
        self.rdds().push_back(rdd);
    }

    /// How many `Rdd`s are waiting.
    pub fn len(&self) -> usize {
        self.rdds().len()
    }

    /// Whether no `Rdd` is waiting.
    pub fn is_empty(&self) -> bool {
        self.rdds().is_empty()
    }
}

pub(crate) struct QueueInput<T> {
    queue: RddQueue<T>,
    one_at_a_time: bool,
    default: Option<Rdd<T>>,
}

impl<T: Data> QueueInput<T> {
    pub(crate) fn new(queue: RddQueue<T>, one_at_a_time: bool, default: Option<Rdd<T>>) -> Self {
        QueueInput {
            queue,
            one_at_a_time,
            default,
        }
    }
}

impl<T: Data> InputSource<T> for QueueInput<T> {
    fn start(&self, _ctx: &SourceContext) -> Result<()> {
        Ok(())
    }

    /// Takes the next `Rdd` (or all of them, unioned), else the default. Its records
    /// are counted where that needs no computing (`Rdd`s of data in memory, such as
    /// `parallelize`'s): counting others would compute them twice, so they count 0,
    /// as all queue streams do in Spark.
    fn cut(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<T> {
        let taken: Vec<Rdd<T>> = {
            let mut rdds = self.queue.rdds();
            if self.one_at_a_time {
                rdds.pop_front().into_iter().collect()
            } else {
                rdds.drain(..).collect()
            }
        };
        let rdd = match taken.split_first() {
            Some((first, [])) => first.clone(),
            Some((first, rest)) => Rdd::union_all(first, rest),
            None => self
                .default
                .clone()
                .unwrap_or_else(|| Rdd::empty_in(env.clone())),
        };
        Cut {
            records: rdd.known_len().unwrap_or(0),
            rdd,
            replay: None,
        }
    }

    fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    fn stop(&self) {}
}
