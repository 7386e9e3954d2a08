//! Batch events and the figures that come with them.
//!
//! Register a [`StreamingListener`] with
//! [`StreamingContext::add_listener`](crate::StreamingContext::add_listener) to receive
//! a [`BatchInfo`] when each batch is submitted, starts and completes. Events are
//! delivered on the scheduler's threads, in order; keep listeners quick. A panicking
//! listener is logged and does not disturb the stream.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::time::Time;

/// The figures of one batch.
///
/// ```
/// use dstream::{BatchInfo, Time};
/// use std::time::Duration;
///
/// let info = BatchInfo {
///     batch_time: Time::from_millis(10_000),
///     num_records: 42,
///     submission_time: Time::from_millis(10_001),
///     processing_start_time: Some(Time::from_millis(10_003)),
///     processing_end_time: Some(Time::from_millis(10_010)),
///     output_operations: 1,
///     failure: None,
/// };
/// assert_eq!(info.scheduling_delay(), Some(Duration::from_millis(3)));
/// assert_eq!(info.processing_delay(), Some(Duration::from_millis(7)));
/// assert_eq!(info.total_delay(), Some(Duration::from_millis(10)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch's time: the end of the interval whose input it holds.
    pub batch_time: Time,
    /// Records the input streams delivered into this batch.
    pub num_records: u64,
    /// When the batch was generated and queued.
    pub submission_time: Time,
    /// When its first output operation started, once it has.
    pub processing_start_time: Option<Time>,
    /// When its last output operation ended, once it has.
    pub processing_end_time: Option<Time>,
    /// How many output operations ran for this batch.
    pub output_operations: usize,
    /// Why the batch failed, if it did.
    pub failure: Option<String>,
}

impl BatchInfo {
    /// How long the batch waited for earlier batches: processing start minus batch time.
    pub fn scheduling_delay(&self) -> Option<Duration> {
        self.processing_start_time
            .map(|start| start.saturating_since(self.batch_time))
    }

    /// How long the output operations took: processing end minus processing start.
    pub fn processing_delay(&self) -> Option<Duration> {
        Some(
            self.processing_end_time?
                .saturating_since(self.processing_start_time?),
        )
    }

    /// Scheduling delay plus processing delay: processing end minus batch time.
    pub fn total_delay(&self) -> Option<Duration> {
        self.processing_end_time
            .map(|end| end.saturating_since(self.batch_time))
    }
}

/// A change in what this process owns in its Kafka consumer group, when it runs as
/// one of several copies of a program (see `dstream::kafka::KafkaGroup`, feature
/// `kafka`). Partitions are `(topic, partition)`; the group's shards are the partitions
/// of its repartition topics.
///
/// ```
/// use dstream::{RebalanceInfo, StreamingListener};
///
/// struct LogMoves;
///
/// impl StreamingListener for LogMoves {
///     fn on_rebalance(&self, change: &RebalanceInfo) {
///         println!("took {:?}, gave up {:?}", change.taken, change.given_up);
///     }
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebalanceInfo {
    /// The group: the application id.
    pub group: String,
    /// Partitions this process owns now and did not before.
    pub taken: Vec<(String, i32)>,
    /// Partitions it owned before and gave up (after the batches it had cut completed).
    pub given_up: Vec<(String, i32)>,
    /// Everything it owns now.
    pub owned: Vec<(String, i32)>,
    /// How many assignments it has received since it started, this one included.
    pub rebalances: u64,
}

/// Receives the scheduler's events. Every method does nothing unless overridden.
///
/// ```
/// use dstream::{BatchInfo, StreamingListener};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Default)]
/// struct RecordCounter(AtomicU64);
///
/// impl StreamingListener for RecordCounter {
///     fn on_batch_completed(&self, batch: &BatchInfo) {
///         self.0.fetch_add(batch.num_records, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait StreamingListener: Send + Sync + 'static {
    /// The context started; the first batch will have time `first_batch_time`.
    fn on_streaming_started(&self, first_batch_time: Time) {
        let _ = first_batch_time;
    }

    /// A batch was generated and queued for processing.
    fn on_batch_submitted(&self, batch: &BatchInfo) {
        let _ = batch;
    }

    /// A batch's first output operation is starting.
    fn on_batch_started(&self, batch: &BatchInfo) {
        let _ = batch;
    }

    /// A batch finished: all its output operations ran, or one failed (see
    /// [`BatchInfo::failure`]).
    fn on_batch_completed(&self, batch: &BatchInfo) {
        let _ = batch;
    }

    /// The context stopped.
    fn on_streaming_stopped(&self) {}

    /// The process's share of its Kafka consumer group changed (scale-out only).
    fn on_rebalance(&self, change: &RebalanceInfo) {
        let _ = change;
    }
}

/// A shared listener: register `Arc::clone(&listener)` and keep the other handle to
/// read what it gathered.
impl<L: StreamingListener + ?Sized> StreamingListener for Arc<L> {
    fn on_streaming_started(&self, first_batch_time: Time) {
        (**self).on_streaming_started(first_batch_time);
    }

    fn on_batch_submitted(&self, batch: &BatchInfo) {
        (**self).on_batch_submitted(batch);
    }

    fn on_batch_started(&self, batch: &BatchInfo) {
        (**self).on_batch_started(batch);
    }

    fn on_batch_completed(&self, batch: &BatchInfo) {
        (**self).on_batch_completed(batch);
    }

    fn on_streaming_stopped(&self) {
        (**self).on_streaming_stopped();
    }

    fn on_rebalance(&self, change: &RebalanceInfo) {
        (**self).on_rebalance(change);
    }
}

/// Delivers events to the registered listeners.
#[derive(Default)]
pub(crate) struct ListenerBus {
    listeners: Mutex<Vec<Arc<dyn StreamingListener>>>,
}

impl ListenerBus {
    pub(crate) fn add(&self, listener: Arc<dyn StreamingListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Calls `event` on every listener; a panic in one is logged and contained.
    pub(crate) fn post(&self, event: impl Fn(&dyn StreamingListener)) {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in listeners {
            if catch_unwind(AssertUnwindSafe(|| event(&*listener))).is_err() {
                tracing::error!("a StreamingListener panicked while handling an event; ignored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Panicky;
    impl StreamingListener for Panicky {
        fn on_streaming_stopped(&self) {
            panic!("listener bug");
        }
    }

    #[derive(Default)]
    struct Counting(AtomicUsize);
    impl StreamingListener for Counting {
        fn on_streaming_stopped(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_panicking_listener_does_not_stop_the_others() {
        let bus = ListenerBus::default();
        let counting = Arc::new(Counting::default());
        bus.add(Arc::new(Panicky));
        bus.add(counting.clone());
        bus.post(|l| l.on_streaming_stopped());
        assert_eq!(counting.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn delays_are_missing_until_known() {
        let info = BatchInfo {
            batch_time: Time::from_millis(1000),
            num_records: 0,
            submission_time: Time::from_millis(1000),
            processing_start_time: None,
            processing_end_time: None,
            output_operations: 0,
            failure: None,
        };
        assert_eq!(info.scheduling_delay(), None);
        assert_eq!(info.processing_delay(), None);
        assert_eq!(info.total_delay(), None);
    }
}
