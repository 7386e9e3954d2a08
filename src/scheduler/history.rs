//! Recent batches, kept for the status page by a [`StreamingListener`].
//!
//! The listener does O(1) work per event under a short lock: batches waiting or
//! running are kept by time, completed ones in a ring of the last
//! [`RETAINED_BATCHES`] (as Spark's UI keeps `spark.streaming.ui.retainedBatches`),
//! and totals count every batch since the start. Readers copy what they need under
//! the same lock; the batch path never waits for more than such a copy.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::listener::{BatchInfo, StreamingListener};
use crate::time::Time;

/// How many completed batches are kept.
pub(crate) const RETAINED_BATCHES: usize = 1000;

/// Recent batches and totals, fed by the scheduler's events.
#[derive(Default)]
pub(crate) struct BatchHistory {
    state: Mutex<HistoryState>,
}

#[derive(Default)]
struct HistoryState {
    started: Option<Started>,
    /// Batches submitted and not completed.
    active: BTreeMap<Time, BatchInfo>,
    /// Completed batches, oldest first.
    completed: VecDeque<BatchInfo>,
    totals: BatchTotals,
}

#[cfg_attr(not(feature = "status-page"), allow(dead_code))] // read by the page only
/// When the context started.
#[derive(Clone, Copy)]
struct Started {
    wall: Time,
    instant: Instant,
    first_batch: Time,
}

/// Counts over every batch since the start, not only the retained ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchTotals {
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) records: u64,
}

#[cfg_attr(not(feature = "status-page"), allow(dead_code))] // read by the page only
/// A copy of the history at one moment.
pub(crate) struct HistorySnapshot {
    /// The wall-clock time the context started, and how long ago.
    pub(crate) started: Option<(Time, Duration)>,
    pub(crate) first_batch: Option<Time>,
    /// Batches waiting or running, oldest first.
    pub(crate) active: Vec<BatchInfo>,
    /// The retained completed batches, newest first, at most `limit` of them.
    pub(crate) completed: Vec<BatchInfo>,
    pub(crate) totals: BatchTotals,
}

impl BatchHistory {
    fn state(&self) -> MutexGuard<'_, HistoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg_attr(not(feature = "status-page"), allow(dead_code))] // read by the page only
    /// The history now, with at most `limit` completed batches (the newest).
    pub(crate) fn snapshot(&self, limit: usize) -> HistorySnapshot {
        let state = self.state();
        HistorySnapshot {
            started: state
                .started
                .map(|started| (started.wall, started.instant.elapsed())),
            first_batch: state.started.map(|started| started.first_batch),
            active: state.active.values().cloned().collect(),
            completed: state.completed.iter().rev().take(limit).cloned().collect(),
            totals: state.totals,
        }
    }
}

impl StreamingListener for BatchHistory {
    fn on_streaming_started(&self, first_batch_time: Time) {
        self.state().started = Some(Started {
            wall: Time::now(),
            instant: Instant::now(),
            first_batch: first_batch_time,
        });
    }

    fn on_batch_submitted(&self, batch: &BatchInfo) {
        self.state().active.insert(batch.batch_time, batch.clone());
    }

    fn on_batch_started(&self, batch: &BatchInfo) {
        self.state().active.insert(batch.batch_time, batch.clone());
    }

    fn on_batch_completed(&self, batch: &BatchInfo) {
        let mut state = self.state();
        state.active.remove(&batch.batch_time);
        if state.completed.len() == RETAINED_BATCHES {
            state.completed.pop_front();
        }
        state.completed.push_back(batch.clone());
        state.totals.completed += 1;
        state.totals.records += batch.num_records;
        if batch.failure.is_some() {
            state.totals.failed += 1;
        }
    }

    fn on_streaming_stopped(&self) {
        // A non-graceful stop drops queued batches: they will never complete.
        self.state().active.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seconds: i64, records: u64) -> BatchInfo {
        BatchInfo {
            batch_time: Time::from_millis(seconds * 1000),
            num_records: records,
            submission_time: Time::from_millis(seconds * 1000),
            processing_start_time: None,
            processing_end_time: None,
            output_operations: 1,
            failure: None,
        }
    }

    #[test]
    fn batches_move_from_active_to_completed_and_old_ones_are_dropped() {
        let history = BatchHistory::default();
        history.on_streaming_started(Time::from_millis(1000));
        history.on_batch_submitted(&batch(1, 5));
        history.on_batch_submitted(&batch(2, 7));
        let snapshot = history.snapshot(10);
        assert_eq!(snapshot.first_batch, Some(Time::from_millis(1000)));
        assert_eq!(snapshot.active, vec![batch(1, 5), batch(2, 7)]);

        history.on_batch_completed(&batch(1, 5));
        let snapshot = history.snapshot(10);
        assert_eq!(snapshot.active, vec![batch(2, 7)]);
        assert_eq!(snapshot.completed, vec![batch(1, 5)]);

        for k in 2..=(RETAINED_BATCHES as i64 + 5) {
            history.on_batch_completed(&batch(k, 1));
        }
        let snapshot = history.snapshot(usize::MAX);
        assert_eq!(snapshot.completed.len(), RETAINED_BATCHES);
        assert_eq!(
            snapshot.completed[0].batch_time,
            Time::from_millis(1005 * 1000)
        );
        assert_eq!(
            snapshot.totals,
            BatchTotals {
                completed: RETAINED_BATCHES as u64 + 5,
                failed: 0,
                records: 5 + RETAINED_BATCHES as u64 + 4,
            }
        );
        assert_eq!(history.snapshot(3).completed.len(), 3);
    }
}
