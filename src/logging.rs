//! One concise log line per batch, for programs that watch their stream in a terminal.
//!
//! dstream reports through the [`tracing`] crate; the program chooses the subscriber
//! and its filter. Register a [`BatchLogger`] to get, at `info` level under the target
//! [`BATCH_TARGET`], one line per completed batch:
//!
//! ```text
//! INFO dstream::batches: batch 2026-11-21 12:58:12: 1204 records, processing 85 ms, scheduling delay 3 ms
//! ```
//!
//! [`DEFAULT_FILTER`] is a filter for `RUST_LOG`-style subscribers (such as
//! `tracing-subscriber`'s `EnvFilter`) that shows warnings and these lines only.

use crate::scheduler::{BatchInfo, StreamingListener};

/// The target of the per-batch lines.
pub const BATCH_TARGET: &str = "dstream::batches";

/// Warnings from everything, plus the per-batch lines: a good default filter for
/// programs run in a terminal, overridden by `RUST_LOG` where set.
pub const DEFAULT_FILTER: &str = "warn,dstream::batches=info";

/// A listener that logs one line per completed batch: its time, records, processing
/// delay and scheduling delay (and why it failed, if it did).
///
/// ```
/// use dstream::logging::BatchLogger;
/// use dstream::StreamingContext;
/// use std::time::Duration;
///
/// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
/// ssc.add_listener(BatchLogger);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchLogger;

impl StreamingListener for BatchLogger {
    fn on_batch_completed(&self, batch: &BatchInfo) {
        let millis = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_millis());
        let (processing, scheduling) = (
            millis(batch.processing_delay()),
            millis(batch.scheduling_delay()),
        );
        match &batch.failure {
            None => tracing::info!(
                target: BATCH_TARGET,
                "batch {}: {} records, processing {processing} ms, scheduling delay {scheduling} ms",
                batch.batch_time.to_local_string(),
                batch.num_records,
            ),
            Some(failure) => tracing::warn!(
                target: BATCH_TARGET,
                "batch {} failed after {processing} ms: {failure}",
                batch.batch_time.to_local_string(),
            ),
        }
    }
}
