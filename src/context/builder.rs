//! [`StreamingContextBuilder`]: the settings of a new context, and building it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::StreamingContext;
use super::lifecycle::Lifecycle;
use super::shared::{ContextShared, Inner};
use crate::checkpoint::CheckpointDir;
use crate::config::{Parallelism, StreamingConfig};
use crate::dstream::{StreamRegistry, Timeline};
use crate::error::{Error, Result};
use crate::rdd::ExecEnv;
use crate::scheduler::{BatchHistory, ListenerBus, Progress};
use crate::source::{BufferedRecords, ReceivedCounter, ReceiverRegistry};
use crate::time::{Clock, SystemClock};

/// Settings for a [`StreamingContext`]; made by [`StreamingContext::builder`]. Each
/// method sets one field of a [`StreamingConfig`] (see there for the defaults);
/// [`config`](Self::config) sets them all at once.
///
/// ```
/// use dstream::{ManualClock, StreamingContext};
/// use std::time::Duration;
/// # fn main() -> dstream::Result<()> {
/// let ssc = StreamingContext::builder()
///     .batch_interval(Duration::from_secs(10))
///     .master("local[2]")
///     .receiver_max_rate(10_000)
///     .backpressure(true)
///     .max_buffered_records(100_000)
///     .clock(ManualClock::default())
///     .build()?;
/// assert_eq!(ssc.parallelism(), 2);
/// assert_eq!(ssc.config().receiver_max_rate, Some(10_000));
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct StreamingContextBuilder {
    config: StreamingConfig,
    /// A master setting that could not be parsed, reported by `build`.
    master_error: Option<Error>,
    clock: Arc<dyn Clock>,
}

impl StreamingContextBuilder {
    /// The defaults, on the system clock.
    pub(super) fn new() -> StreamingContextBuilder {
        StreamingContextBuilder {
            config: StreamingConfig::default(),
            master_error: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Every setting at once, replacing those set before.
    pub fn config(mut self, config: StreamingConfig) -> Self {
        self.config = config;
        self.master_error = None;
        self
    }

    /// The batch interval: a positive whole number of milliseconds. Required.
    pub fn batch_interval(mut self, interval: Duration) -> Self {
        self.config.batch_interval = interval;
        self
    }

    /// The parallelism as Spark's master setting: `"local[*]"`, `"local[N]"`,
    /// `"local"`, or a number. Default: one thread per logical core.
    pub fn master(mut self, master: &str) -> Self {
        match Parallelism::parse(master) {
            Ok(parallelism) => {
                self.config.parallelism = parallelism;
                self.master_error = None;
            }
            Err(e) => self.master_error = Some(e),
        }
        self
    }

    /// The parallelism as a value.
    pub fn parallelism(mut self, parallelism: Parallelism) -> Self {
        self.config.parallelism = parallelism;
        self.master_error = None;
        self
    }

    /// The clock that times batches. Default: the system clock. Tests pass a
    /// [`ManualClock`](crate::ManualClock) and advance it batch by batch.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a receiver waits after a failure (a refused or closed connection)
    /// before trying again. Default: 2 s, as Spark.
    pub fn receiver_restart_delay(mut self, delay: Duration) -> Self {
        self.config.receiver_restart_delay = delay;
        self
    }

    /// The most records per second each receiver (socket, user receivers) accepts,
    /// as Spark's `spark.streaming.receiver.maxRate`. A receiver over its rate waits
    /// before storing its next block (a socket's sender is then slowed by TCP). The
    /// rate follows the context's clock. Default: no limit.
    pub fn receiver_max_rate(mut self, records_per_second: u64) -> Self {
        self.config.receiver_max_rate = Some(records_per_second);
        self
    }

    /// Backpressure, as Spark's `spark.streaming.backpressure.enabled`: after every
    /// batch a PID rate estimator sets each receiver's rate from how fast the batch was
    /// processed and how long it waited, so the scheduling delay stays bounded when
    /// input arrives faster than it is processed (never above
    /// [`receiver_max_rate`](Self::receiver_max_rate)). Default: off.
    pub fn backpressure(mut self, enabled: bool) -> Self {
        self.config.backpressure = enabled;
        self
    }

    /// Bounds memory: each receiver holds at most `records` records that no batch has
    /// taken, and stops receiving while it is full; a batch is then cut only when no
    /// other batch waits to run, so input waits in the receivers rather than in
    /// queued batches. Default: no bound, as in Spark.
    pub fn max_buffered_records(mut self, records: usize) -> Self {
        self.config.max_buffered_records = Some(records);
        self
    }

    /// Records a receiver stores per block, the unit of its rate limit. Default: 1024.
    pub fn block_size(mut self, records: usize) -> Self {
        self.config.block_size = records;
        self
    }

    /// Saves checkpoints in `directory`, as [`StreamingContext::checkpoint`].
    pub fn checkpoint_dir(mut self, directory: impl Into<PathBuf>) -> Self {
        self.config.checkpoint_dir = Some(directory.into());
        self
    }

    /// How often checkpoints are written, a multiple of the batch interval (a
    /// stream's own checkpoint interval wins). Default: the smallest multiple of the
    /// batch interval that is at least 10 s.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.config.checkpoint_interval = Some(interval);
        self
    }

    /// Every stream keeps its `Rdd`s for `duration` after their batch, on top of what
    /// its windows need, as Spark's `ssc.remember`. Default: only what windows need.
    pub fn remember(mut self, duration: Duration) -> Self {
        self.config.remember = Some(duration);
        self
    }

    /// Where the live status page listens. Default: off.
    pub fn status_page(mut self, address: SocketAddr) -> Self {
        self.config.status_page = Some(address);
        self
    }

    /// How long a graceful stop may take before batches still queued are dropped.
    /// Default: ten batch intervals (as Spark's `spark.streaming.gracefulStopTimeout`),
    /// but at least 30 s.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = Some(timeout);
        self
    }

    /// Stops the context gracefully on SIGINT or SIGTERM, as
    /// [`StreamingContext::stop_on_signal`]. Default: off.
    pub fn stop_on_signal(mut self, enabled: bool) -> Self {
        self.config.stop_on_signal = enabled;
        self
    }

    /// Lets batches go on after one fails, as Spark does, instead of stopping the
    /// context; `await_termination` still returns the first failure, at once. A
    /// program with state stops on a failed batch all the same (see
    /// [`StreamingConfig::continue_after_failed_batch`]). Default: off.
    pub fn continue_after_failed_batch(mut self, enabled: bool) -> Self {
        self.config.continue_after_failed_batch = enabled;
        self
    }

    /// With backpressure, the rate until the first batch has been measured (see
    /// [`StreamingConfig::backpressure_initial_rate`]). Default: none.
    pub fn backpressure_initial_rate(mut self, records_per_second: u64) -> Self {
        self.config.backpressure_initial_rate = Some(records_per_second);
        self
    }

    /// Whether receivers write what they store to a write-ahead log in the checkpoint
    /// directory (see [`StreamingConfig::receiver_write_ahead_log`]). Default: on.
    pub fn receiver_write_ahead_log(mut self, enabled: bool) -> Self {
        self.config.receiver_write_ahead_log = enabled;
        self
    }

    /// Makes the context, checking the settings.
    pub fn build(self) -> Result<StreamingContext> {
        if let Some(error) = self.master_error {
            return Err(error);
        }
        let config = self.config;
        config.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.parallelism.threads())
            .thread_name(|i| format!("dstream-worker-{i}"))
            .build()
            .map_err(|e| Error::Runtime {
                what: "worker pool",
                reason: e.to_string(),
            })?;
        let listeners = Arc::new(ListenerBus::default());
        let history = Arc::new(BatchHistory::default());
        listeners.add(history.clone());
        let checkpoint_dir = config.checkpoint_dir.as_deref().map(CheckpointDir::new);
        Ok(StreamingContext {
            shared: Arc::new(ContextShared {
                streams: Arc::new(StreamRegistry::new(
                    ExecEnv::with_pool(Arc::new(pool)),
                    Arc::new(Timeline::new(config.batch_interval)),
                )),
                clock: self.clock,
                listeners,
                history,
                receivers: Arc::new(ReceiverRegistry::default()),
                progress: Arc::new(Progress::default()),
                received: Arc::new(ReceivedCounter::default()),
                buffered: Arc::new(BufferedRecords::default()),
                scheduler_threads: OnceLock::new(),
                inner: Mutex::new(Inner {
                    lifecycle: Lifecycle::Initialized,
                    inputs: Vec::new(),
                    checkpoint_dir,
                    stop_on_signal: config.stop_on_signal,
                    remember: config.remember,
                    recovery: None,
                    running: None,
                    stop_requested: None,
                    status_pages: Vec::new(),
                }),
                config,
            }),
        })
    }
}
