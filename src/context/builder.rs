//! [`StreamingContextBuilder`]: the configuration and clock of a new context, and
//! building it.

use std::sync::{Arc, Mutex, OnceLock};

use super::StreamingContext;
use super::lifecycle::Lifecycle;
use super::shared::{ContextShared, Inner};
use crate::config::StreamingConfig;
use crate::dstream::{StreamRegistry, Timeline};
use crate::error::{Error, Result};
use crate::rdd::ExecEnv;
use crate::scheduler::{BatchHistory, ListenerBus, Progress};
use crate::source::{BufferedRecords, ReceivedCounter, ReceiverRegistry};
use crate::status_page;
use crate::time::{Clock, SystemClock};

/// How to make a [`StreamingContext`]: its [`StreamingConfig`] and the clock that
/// times its batches; made by [`StreamingContext::builder`]. The settings live in the
/// configuration only; the clock is no setting but a part of the program (tests pass a
/// [`ManualClock`](crate::ManualClock)).
///
/// ```
/// use dstream::{ManualClock, Parallelism, StreamingConfig, StreamingContext};
/// use std::time::Duration;
/// # fn main() -> dstream::Result<()> {
/// let ssc = StreamingContext::builder()
///     .config(StreamingConfig {
///         batch_interval: Duration::from_secs(10),
///         parallelism: Parallelism::threads_exactly(2),
///         receiver_max_rate: Some(10_000),
///         ..StreamingConfig::default()
///     })
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
    clock: Arc<dyn Clock>,
}

impl StreamingContextBuilder {
    /// The default settings (which need a batch interval), on the system clock.
    pub(super) fn new() -> StreamingContextBuilder {
        StreamingContextBuilder {
            config: StreamingConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The settings of the context.
    pub fn config(mut self, config: StreamingConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock that times batches. Default: the system clock. Tests pass a
    /// [`ManualClock`](crate::ManualClock) and advance it batch by batch.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Makes the context, checking the settings, and binds the status page's address
    /// if the configuration asks for one.
    pub fn build(self) -> Result<StreamingContext> {
        let config = self.config;
        config.validate()?;
        let (status_page, status_page_address) = match config.status_page {
            Some(address) => {
                let listener = status_page::bind(&address.to_string())?;
                let local = status_page::local_address(&listener)?;
                tracing::info!("status page: http://{local}/");
                (Some(listener), Some(local))
            }
            None => (None, None),
        };
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
                status_page_address,
                inner: Mutex::new(Inner {
                    lifecycle: Lifecycle::Initialized,
                    inputs: Vec::new(),
                    checkpoint_dir: None,
                    remember: None,
                    recovery: None,
                    running: None,
                    stop_requested: None,
                    status_page,
                }),
                config,
            }),
        })
    }
}
