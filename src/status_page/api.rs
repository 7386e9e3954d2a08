//! The JSON documents of the status page's API (`/api/v1/...`). Field names and
//! meanings are stable; the README lists them.

use serde::Serialize;

use crate::scheduler::BatchInfo;
use crate::scheduler::history::{HistorySnapshot, RETAINED_BATCHES};
use crate::time::{Time, duration_millis};

/// `/api/v1/summary`: the context as a whole.
#[derive(Serialize)]
pub(crate) struct Summary {
    /// `initialized`, `active`, `stopping` or `stopped`.
    pub(crate) status: &'static str,
    pub(crate) batch_interval_ms: i64,
    pub(crate) parallelism: usize,
    /// Wall-clock time of the start, ms since the epoch; `null` before it.
    pub(crate) started_at_ms: Option<i64>,
    pub(crate) uptime_ms: u64,
    pub(crate) first_batch_time_ms: Option<i64>,
    pub(crate) batches_completed: u64,
    pub(crate) batches_failed: u64,
    pub(crate) records_processed: u64,
    pub(crate) active_batches: usize,
    pub(crate) receivers: usize,
    pub(crate) stateful_streams: usize,
    /// How many completed batches `/api/v1/batches` keeps.
    pub(crate) retained_batches: usize,
}

impl Summary {
    pub(crate) fn new(
        status: &'static str,
        batch_interval_ms: i64,
        parallelism: usize,
        history: &HistorySnapshot,
        receivers: usize,
        stateful_streams: usize,
    ) -> Summary {
        Summary {
            status,
            batch_interval_ms,
            parallelism,
            started_at_ms: history.started.map(|(wall, _)| wall.as_millis()),
            uptime_ms: history.started.map_or(0, |(_, up)| {
                u64::try_from(up.as_millis()).unwrap_or(u64::MAX)
            }),
            first_batch_time_ms: history.first_batch.map(Time::as_millis),
            batches_completed: history.totals.completed,
            batches_failed: history.totals.failed,
            records_processed: history.totals.records,
            active_batches: history.active.len(),
            receivers,
            stateful_streams,
            retained_batches: RETAINED_BATCHES,
        }
    }
}

/// `/api/v1/batches`: batches waiting or running (oldest first) and the retained
/// completed ones (newest first).
#[derive(Serialize)]
pub(crate) struct Batches {
    pub(crate) batch_interval_ms: i64,
    pub(crate) active: Vec<Batch>,
    pub(crate) completed: Vec<Batch>,
}

impl Batches {
    pub(crate) fn new(history: &HistorySnapshot, batch_interval_ms: i64) -> Batches {
        let convert = |infos: &[BatchInfo]| {
            infos
                .iter()
                .map(|info| Batch::new(info, batch_interval_ms))
                .collect()
        };
        Batches {
            batch_interval_ms,
            active: convert(&history.active),
            completed: convert(&history.completed),
        }
    }
}

/// One batch.
#[derive(Serialize)]
pub(crate) struct Batch {
    pub(crate) batch_time_ms: i64,
    /// The batch time as `pprint` prints it: local time, `YYYY-MM-DD HH:MM:SS`.
    pub(crate) batch_time: String,
    /// `queued`, `processing`, `completed` or `failed`.
    pub(crate) status: &'static str,
    pub(crate) records: u64,
    /// Records per second of the batch's interval.
    pub(crate) input_rate: f64,
    pub(crate) submission_time_ms: i64,
    pub(crate) processing_start_ms: Option<i64>,
    pub(crate) processing_end_ms: Option<i64>,
    pub(crate) scheduling_delay_ms: Option<i64>,
    pub(crate) processing_delay_ms: Option<i64>,
    pub(crate) total_delay_ms: Option<i64>,
    pub(crate) output_operations: usize,
    pub(crate) failure: Option<String>,
}

impl Batch {
    fn new(info: &BatchInfo, batch_interval_ms: i64) -> Batch {
        let status = match (info.processing_end_time, &info.failure) {
            (Some(_), None) => "completed",
            (Some(_), Some(_)) => "failed",
            (None, _) if info.processing_start_time.is_some() => "processing",
            (None, _) => "queued",
        };
        Batch {
            batch_time_ms: info.batch_time.as_millis(),
            batch_time: info.batch_time.to_local_string(),
            status,
            records: info.num_records,
            input_rate: info.num_records as f64 * 1000.0 / batch_interval_ms.max(1) as f64,
            submission_time_ms: info.submission_time.as_millis(),
            processing_start_ms: info.processing_start_time.map(Time::as_millis),
            processing_end_ms: info.processing_end_time.map(Time::as_millis),
            scheduling_delay_ms: info.scheduling_delay().map(duration_millis),
            processing_delay_ms: info.processing_delay().map(duration_millis),
            total_delay_ms: info.total_delay().map(duration_millis),
            output_operations: info.output_operations,
            failure: info.failure.clone(),
        }
    }
}
