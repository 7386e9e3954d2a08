//! [`ContextShared`]: the state behind every handle to a context, and what the status
//! page reads from it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use super::lifecycle::{Lifecycle, Running};
use super::recovery::Recovery;
use crate::checkpoint::CheckpointDir;
use crate::config::StreamingConfig;
use crate::dstream::{StateSize, StreamRegistry};
use crate::error::{Error, Result};
use crate::scheduler::{BatchHistory, ListenerBus, Progress};
use crate::source::{
    BufferSettings, BufferedRecords, InputHandle, RateController, RateLimiter, ReceivedCounter,
    ReceiverRegistry, ReceiverStatus,
};
use crate::status_page::StatusSource;
use crate::time::Clock;

/// The parts of a context shared by its handles and its threads.
pub(crate) struct ContextShared {
    /// What the streams share and register: the pool, the batch grid, the outputs
    /// and stateful streams.
    pub(super) streams: Arc<StreamRegistry>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: StreamingConfig,
    pub(super) listeners: Arc<ListenerBus>,
    #[cfg_attr(not(feature = "status-page"), allow(dead_code))] // read by the page only
    /// Recent batches, for the status page.
    pub(super) history: Arc<BatchHistory>,
    pub(super) receivers: Arc<ReceiverRegistry>,
    pub(super) progress: Arc<Progress>,
    pub(super) received: Arc<ReceivedCounter>,
    pub(super) buffered: Arc<BufferedRecords>,
    /// The generator's and executor's thread ids, once started.
    pub(super) scheduler_threads: OnceLock<Vec<ThreadId>>,
    /// Where the status page listens, if the configuration asked for one.
    pub(super) status_page_address: Option<SocketAddr>,
    pub(super) inner: Mutex<Inner>,
}

/// What changes as the context is set up and run, under one lock.
pub(super) struct Inner {
    pub(super) lifecycle: Lifecycle,
    pub(super) inputs: Vec<Arc<dyn InputHandle>>,
    /// Set by [`StreamingContext::checkpoint`](super::StreamingContext::checkpoint).
    pub(super) checkpoint_dir: Option<CheckpointDir>,
    /// Set by [`StreamingContext::remember`](super::StreamingContext::remember).
    pub(super) remember: Option<Duration>,
    pub(super) recovery: Option<Recovery>,
    pub(super) running: Option<Running>,
    /// A stop asked for while the context was starting (graceful or not).
    pub(super) stop_requested: Option<bool>,
    /// The status page's listener, bound when the context was built and served from
    /// the start on.
    pub(super) status_page: Option<std::net::TcpListener>,
}

impl ContextShared {
    pub(super) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a new receiver's buffer needs: its bounds, its rate limit and, with
    /// backpressure, the controller that sets its rate.
    pub(super) fn receiver_settings(&self) -> (BufferSettings, Option<Arc<RateController>>) {
        let config = &self.config;
        let controller = config
            .backpressure
            .then(|| Arc::new(config.rate_controller()));
        let settings = BufferSettings {
            received: self.received.clone(),
            buffered: self.buffered.clone(),
            limit: config.max_buffered_records,
            block_size: config.block_size,
            limiter: RateLimiter::new(
                self.clock.clone(),
                config.receiver_max_rate,
                controller.clone(),
            ),
        };
        (settings, controller)
    }

    /// Fails with [`Error::NotStarted`] before the start.
    pub(super) fn check_started(&self) -> Result<()> {
        match self.inner().lifecycle {
            Lifecycle::Initialized => Err(Error::NotStarted),
            _ => Ok(()),
        }
    }

    /// How the context ended: the first failure, if any.
    pub(super) fn termination_result(&self) -> Result<()> {
        match self.progress.failure() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl ContextShared {
    /// The context as the status page reads it, held weakly.
    pub(super) fn status_source(self: &Arc<Self>) -> Weak<dyn StatusSource> {
        let weak: Weak<ContextShared> = Arc::downgrade(self);
        weak
    }
}

impl StatusSource for ContextShared {
    fn status_name(&self) -> &'static str {
        self.inner().lifecycle.name()
    }

    fn batch_interval(&self) -> Duration {
        self.streams.timeline().batch_interval()
    }

    fn parallelism(&self) -> usize {
        self.streams.parallelism()
    }

    fn history(&self) -> &BatchHistory {
        &self.history
    }

    fn receiver_statuses(&self) -> Vec<ReceiverStatus> {
        self.receivers.snapshot()
    }

    fn state_sizes(&self) -> Vec<StateSize> {
        self.streams.state_sizes()
    }
}
