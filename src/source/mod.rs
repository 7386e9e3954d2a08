//! Input streams: where batches get their data.
//!
//! Each input stream has an `InputSource`: started with the context, asked at every
//! batch time for the data of the interval that just ended (`cut`), stopped with the
//! context. Receiver-based sources (`socket`, user [`Receiver`]s) collect records in a
//! `buffer::BlockBuffer` as they arrive; the others (`file`, `queue`, `rate`) produce
//! a batch's data when it is cut.
//!
//! [`FileStreamOptions`] are the options of the file streams. Receivers' rates are
//! bounded by a `limiter::RateLimiter` and, with backpressure, set by a
//! [`RateController`] after every batch.

pub(crate) mod buffer;
mod file;
mod limiter;
mod lines;
mod queue;
mod rate;
mod rate_controller;
mod receiver;
mod socket;
mod status;
mod wal;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::dstream::{GraphNode, StreamNode};
use crate::error::{Result, Unwound, catch_panic};
use crate::rdd::{Data, ExecEnv, Rdd};
use crate::time::{Clock, Time};

pub(crate) use buffer::BufferSettings;
pub use file::FileStreamOptions;
pub(crate) use file::{BinaryRecords, FileInput, TextLines};
pub(crate) use limiter::RateLimiter;
pub(crate) use queue::QueueInput;
pub use queue::RddQueue;
pub(crate) use rate::RateInput;
pub use rate_controller::{PidRateEstimator, RateController};
pub(crate) use receiver::ReceiverInput;
pub use receiver::{Receiver, ReceiverSink};
pub(crate) use socket::SocketInput;
pub(crate) use status::ReceiverRegistry;
pub(crate) use status::ReceiverReporter;
pub use status::{ReceiverState, ReceiverStatus};

/// What sources get from the context when it starts.
#[derive(Clone)]
pub(crate) struct SourceContext {
    /// The runtime network receivers run on.
    pub(crate) tokio: tokio::runtime::Handle,
    /// How long a failed receiver waits before it tries again.
    pub(crate) restart_delay: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    /// The time just before the first batch: rows of the rate source count from here.
    pub(crate) origin: Time,
    /// Where receivers report their state.
    pub(crate) receivers: Arc<ReceiverRegistry>,
    /// The input stream being started: its id and how messages name it.
    pub(crate) stream_id: usize,
    pub(crate) stream: String,
    /// The checkpoint directory, when receivers keep a write-ahead log in it.
    pub(crate) write_ahead_log: Option<PathBuf>,
}

impl SourceContext {
    /// Registers the receiver of the stream being started, reading from `source`.
    pub(crate) fn register_receiver(&self, source: String) -> ReceiverReporter {
        self.receivers.register(
            self.stream_id,
            self.stream.clone(),
            source,
            self.clock.clone(),
        )
    }
}

/// A batch's data from one input.
pub(crate) struct Cut<T> {
    pub(crate) rdd: Rdd<T>,
    pub(crate) records: u64,
    /// How to give the same data again after a crash, for replayable sources.
    pub(crate) replay: Option<Vec<u8>>,
}

/// One kind of input, producing elements of type `T`.
pub(crate) trait InputSource<T>: Send + Sync + 'static {
    /// Starts receiving (connects, spawns receivers, snapshots directories).
    fn start(&self, ctx: &SourceContext) -> Result<()>;

    /// The data of the batch at `time`.
    fn cut(&self, time: Time, env: &Arc<ExecEnv>) -> Cut<T>;

    /// The data of a batch time that passed while the scheduler held cuts back, when a
    /// later batch time is cut right after it. Sources that buffer what arrives
    /// (receivers) give nothing here, so that what waited goes to that later batch as
    /// one, rather than a full buffer to each batch time that passed; the others give
    /// the data of `time` as [`cut`](Self::cut) does.
    fn cut_passed(&self, time: Time, env: &Arc<ExecEnv>) -> Cut<T> {
        self.cut(time, env)
    }

    /// Whether data is waiting that a final batch should process on graceful stop.
    fn has_pending(&self) -> bool;

    /// Stops receiving. Data received before stays available to `cut`.
    fn stop(&self);

    /// The controller that sets this input's rate from batch completions, when
    /// backpressure is on and the input can be slowed down.
    fn rate_controller(&self) -> Option<&Arc<RateController>> {
        None
    }

    /// Where a replayable source stands after its last cut, for a checkpoint.
    fn position(&self) -> Option<Vec<u8>> {
        None
    }

    /// Continues from a checkpointed position (called before `start`).
    fn restore(&self, _position: &[u8]) -> Result<()> {
        Ok(())
    }

    /// The data a cut recorded as `replay`, again: `None` if it cannot be given again.
    fn replay(&self, _replay: &[u8], _env: &Arc<ExecEnv>) -> Option<(Rdd<T>, u64)> {
        None
    }

    /// A checkpoint was written with this input's `position` and the `replays` of its
    /// unfinished batches; the directory keeps the last `kept` checkpoints. Sources
    /// that keep a log release what no kept checkpoint needs.
    fn checkpointed(&self, _position: Option<&[u8]>, _replays: &[&[u8]], _kept: usize) {}
}

/// An input stream as the scheduler sees it.
pub(crate) trait InputHandle: Send + Sync + 'static {
    fn node(&self) -> Arc<dyn GraphNode>;
    fn start(&self, ctx: &SourceContext) -> Result<()>;
    /// Cuts the batch at `time` into the stream: its record count and replay record,
    /// or why the cut failed (the batch fails with it). `passed`: a batch time that
    /// passed while cuts were held, with a later one cut right after it (see
    /// [`InputSource::cut_passed`]).
    fn generate(&self, time: Time, passed: bool) -> std::result::Result<Generated, String>;
    /// Gives the batch at `time` what `replay` recorded, or nothing if that is lost.
    fn regenerate(&self, time: Time, replay: Option<&[u8]>) -> u64;
    fn has_pending(&self) -> bool;
    fn stop(&self);
    fn rate_controller(&self) -> Option<Arc<RateController>>;
    fn position(&self) -> Option<Vec<u8>>;
    fn restore(&self, position: &[u8]) -> Result<()>;
    fn checkpointed(&self, position: Option<&[u8]>, replays: &[&[u8]], kept: usize);
}

/// Records accepted by a context's inputs so far: by receivers as they arrive, by
/// file and rate streams when a batch is cut. Queue streams are not counted.
///
/// Counting is an atomic add; the lock and the wake-up are paid only while someone
/// waits for the count (`await_records_received`), not per stored block.
#[derive(Default)]
pub(crate) struct ReceivedCounter {
    count: AtomicU64,
    /// How many threads are in `wait_for`.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    grew: Condvar,
}

impl ReceivedCounter {
    pub(crate) fn add(&self, records: u64) {
        if records > 0 {
            self.count.fetch_add(records, Ordering::SeqCst);
            if self.waiters.load(Ordering::SeqCst) > 0 {
                // Under the lock, so that a waiter between its check and its wait
                // cannot miss this.
                let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
                self.grew.notify_all();
            }
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until at least `at_least` records were accepted; the count, or `None`
    /// if `timeout` passed first.
    pub(crate) fn wait_for(&self, at_least: u64, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let reached = loop {
            let count = self.get();
            if count >= at_least {
                break Some(count);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            guard = self
                .grew
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        reached
    }
}

/// Records that receivers hold and no batch has taken yet, now and at most so far:
/// two atomics, so that storing a block takes no lock of its own here.
#[derive(Default)]
pub(crate) struct BufferedRecords {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl BufferedRecords {
    pub(crate) fn add(&self, records: usize) {
        let now = self.now.fetch_add(records, Ordering::SeqCst) + records;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    pub(crate) fn remove(&self, records: usize) {
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_sub(records))
            });
    }

    pub(crate) fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// What a cut gave a batch: its record count and its replay record.
pub(crate) type Generated = (u64, Option<Vec<u8>>);

/// An input stream's node joined to its source.
pub(crate) struct InputStream<T> {
    node: Arc<StreamNode<T>>,
    source: Box<dyn InputSource<T>>,
    env: Arc<ExecEnv>,
}

impl<T: Data> InputStream<T> {
    pub(crate) fn new(
        node: Arc<StreamNode<T>>,
        source: impl InputSource<T>,
        env: Arc<ExecEnv>,
    ) -> Self {
        InputStream {
            node,
            source: Box::new(source),
            env,
        }
    }
}

impl<T: Data> InputHandle for InputStream<T> {
    fn node(&self) -> Arc<dyn GraphNode> {
        self.node.clone()
    }

    fn start(&self, ctx: &SourceContext) -> Result<()> {
        let meta = self.node.meta();
        self.source.start(&SourceContext {
            stream_id: meta.id,
            stream: meta.describe(),
            ..ctx.clone()
        })
    }

    fn generate(&self, time: Time, passed: bool) -> std::result::Result<Generated, String> {
        let cut = catch_panic(|| {
            if passed {
                self.source.cut_passed(time, &self.env)
            } else {
                self.source.cut(time, &self.env)
            }
        });
        match cut {
            Ok(cut) => {
                self.node.put(time, cut.rdd);
                Ok((cut.records, cut.replay))
            }
            Err(unwound) => {
                // A user function that runs while a batch is cut (a Kafka group's
                // re-keying or shard update) failed. The batch fails; its data is
                // unknown, so whatever computes it (a later window) fails too.
                let why = match unwound {
                    Unwound::Panic(panic) => panic,
                    Unwound::Failed(error) => error.to_string(),
                };
                let message = format!(
                    "{} failed to cut the batch: {why}",
                    self.node.meta().describe()
                );
                let failing = message.clone();
                let rdd = Rdd::from_partitions_in(vec![vec![()]], self.env.clone()).flat_map(
                    move |()| -> Vec<T> { std::panic::resume_unwind(Box::new(failing.clone())) },
                );
                self.node.put(time, rdd);
                Err(message)
            }
        }
    }

    fn regenerate(&self, time: Time, replay: Option<&[u8]>) -> u64 {
        let replayed = replay.and_then(|replay| self.source.replay(replay, &self.env));
        let (rdd, records) = replayed.unwrap_or_else(|| {
            tracing::warn!(
                "{} cannot give the unfinished batch {time} its data again after the restart; the batch runs without it",
                self.node.meta().describe()
            );
            (Rdd::empty_in(self.env.clone()), 0)
        });
        self.node.put(time, rdd);
        records
    }

    fn has_pending(&self) -> bool {
        self.source.has_pending()
    }

    fn stop(&self) {
        self.source.stop();
    }

    fn rate_controller(&self) -> Option<Arc<RateController>> {
        self.source.rate_controller().cloned()
    }

    fn position(&self) -> Option<Vec<u8>> {
        self.source.position()
    }

    fn restore(&self, position: &[u8]) -> Result<()> {
        self.source.restore(position)
    }

    fn checkpointed(&self, position: Option<&[u8]>, replays: &[&[u8]], kept: usize) {
        self.source.checkpointed(position, replays, kept);
    }
}

/// Input streams have no parents: their `Rdd`s are put in by the scheduler.
pub(crate) struct NoCompute;

impl<T: Data> crate::dstream::Compute<T> for NoCompute {
    fn compute(&self, _time: Time) -> Option<Rdd<T>> {
        None
    }
}
