//! User-defined sources: implement [`Receiver`] and pass it to
//! [`StreamingContext::receiver_stream`](crate::StreamingContext::receiver_stream).
//!
//! A receiver runs on a thread of its own. When it returns an error or panics, it is
//! run again after the restart delay, as Spark restarts receivers; the application
//! keeps running. Each change (running, failed with an error, stopped) goes to the
//! context's receiver registry, which logs it once.

use std::error::Error as StdError;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::buffer::{BlockBuffer, BufferSettings};
use super::status::ReceiverReporter;
use super::{Cut, InputSource, RateController, SourceContext};
use crate::error::{Error, Result, panic_message};
use crate::rdd::{Data, ExecEnv, Rdd};
use crate::time::Time;

/// How long `stop` waits for a receiver thread to notice the stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A source of records that runs on its own thread.
///
/// `receive` should store records through the sink until
/// [`ReceiverSink::is_stopped`] says to stop, then return `Ok(())`. Returning `Ok(())`
/// earlier ends the receiver for good (the source is exhausted); returning an error
/// restarts it after a delay.
///
/// ```
/// use dstream::{Receiver, ReceiverSink};
///
/// /// Counts up from zero until stopped.
/// struct Counter(u64);
///
/// impl Receiver for Counter {
///     type Item = u64;
///
///     fn receive(&mut self, sink: &ReceiverSink<u64>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///         while !sink.is_stopped() && self.0 < 1_000 {
///             sink.store(self.0);
///             self.0 += 1;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Receiver: Send + 'static {
    /// The records this receiver produces. They are serializable so that, with a
    /// checkpoint directory, they can be written to the receiver's write-ahead log.
    type Item: Data + serde::Serialize + serde::de::DeserializeOwned;

    /// Receives records into `sink` until stopped.
    fn receive(
        &mut self,
        sink: &ReceiverSink<Self::Item>,
    ) -> std::result::Result<(), Box<dyn StdError + Send + Sync>>;
}

/// Where a [`Receiver`] stores its records.
pub struct ReceiverSink<T> {
    buffer: Arc<BlockBuffer<Vec<T>>>,
    control: Arc<Control>,
}

/// Stop flag and wake-up shared by a receiver thread and the context.
#[derive(Default)]
struct Control {
    stopped: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Control {
    fn stop(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sleeps for `delay` unless stopped first; returns whether it was stopped.
    fn sleep(&self, delay: Duration) -> bool {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .wake
            .wait_timeout_while(guard, delay, |_| !self.is_stopped())
            .unwrap_or_else(PoisonError::into_inner);
        self.is_stopped()
    }
}

impl<T: Data + serde::Serialize + serde::de::DeserializeOwned> ReceiverSink<T> {
    /// Stores one record for the next batch. Waits while the receiver is over its
    /// rate (checked once per block of records) or its buffer holds
    /// `max_buffered_records`. Returns `false`, dropping the record, once the context
    /// has stopped; while it is stopping, records are still taken, without waiting.
    pub fn store(&self, item: T) -> bool {
        self.buffer.push(item)
    }

    /// Stores many records at once (cheaper than one by one), block by block, with
    /// the same waits as [`store`](Self::store). Returns `false`, dropping what is
    /// left, once the context has stopped.
    pub fn store_all(&self, items: impl IntoIterator<Item = T>) -> bool {
        self.buffer.push_block(items.into_iter().collect())
    }

    /// Whether the context asked the receiver to stop.
    pub fn is_stopped(&self) -> bool {
        self.control.is_stopped()
    }
}

/// The input source of `receiver_stream`.
pub(crate) struct ReceiverInput<R: Receiver> {
    receiver: Mutex<Option<R>>,
    buffer: Arc<BlockBuffer<Vec<R::Item>>>,
    control: Arc<Control>,
    thread: Mutex<Option<(JoinHandle<()>, crossbeam_channel::Receiver<()>)>>,
    rate_controller: Option<Arc<RateController>>,
}

impl<R: Receiver> ReceiverInput<R> {
    pub(crate) fn new(
        receiver: R,
        settings: BufferSettings,
        rate_controller: Option<Arc<RateController>>,
    ) -> Self {
        ReceiverInput {
            receiver: Mutex::new(Some(receiver)),
            buffer: Arc::new(BlockBuffer::new(settings)),
            control: Arc::new(Control::default()),
            thread: Mutex::new(None),
            rate_controller,
        }
    }
}

impl<R: Receiver> InputSource<R::Item> for ReceiverInput<R> {
    fn start(&self, ctx: &SourceContext) -> Result<()> {
        let Some(mut receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Err(Error::AlreadyStarted);
        };
        self.buffer.open_log(ctx)?;
        let sink = ReceiverSink {
            buffer: self.buffer.clone(),
            control: self.control.clone(),
        };
        let delay = ctx.restart_delay;
        let mut status = ctx.register_receiver(std::any::type_name::<R>().to_string());
        let (finish, finished) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("dstream-receiver".into())
            .spawn(move || {
                run_receiver(&mut receiver, &sink, &mut status, delay);
                status.stopped();
                drop(finish);
            })
            .map_err(|e| Error::Runtime {
                what: "receiver thread",
                reason: e.to_string(),
            })?;
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some((thread, finished));
        Ok(())
    }

    fn cut(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<R::Item> {
        self.buffer.cut(env)
    }

    fn cut_passed(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<R::Item> {
        self.buffer.nothing(env)
    }

    fn position(&self) -> Option<Vec<u8>> {
        self.buffer.position()
    }

    fn restore(&self, position: &[u8]) -> Result<()> {
        self.buffer.restore(position)
    }

    fn replay(&self, replay: &[u8], env: &Arc<ExecEnv>) -> Option<(Rdd<R::Item>, u64)> {
        self.buffer.replay(replay, env)
    }

    fn checkpointed(&self, position: Option<&[u8]>, replays: &[&[u8]], kept: usize) {
        self.buffer.checkpointed(position, replays, kept);
    }

    fn has_pending(&self) -> bool {
        self.buffer.has_pending()
    }

    fn rate_controller(&self) -> Option<&Arc<RateController>> {
        self.rate_controller.as_ref()
    }

    fn stop(&self) {
        self.buffer.drain();
        self.control.stop();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((thread, finished)) = thread {
            match finished.recv_timeout(STOP_GRACE) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => tracing::warn!(
                    "receiver_stream: the receiver did not return within {STOP_GRACE:?} of being stopped; leaving its thread behind"
                ),
                _ => {
                    let _ = thread.join();
                }
            }
        }
        self.buffer.close();
    }
}

/// Runs `receiver` until it finishes or is stopped, restarting it after errors.
fn run_receiver<R: Receiver>(
    receiver: &mut R,
    sink: &ReceiverSink<R::Item>,
    status: &mut ReceiverReporter,
    delay: Duration,
) {
    while !sink.is_stopped() {
        status.connected();
        let error = match catch_unwind(AssertUnwindSafe(|| receiver.receive(sink))) {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("the receiver failed: {e}"),
            Err(panic) => format!("the receiver panicked: {}", panic_message(&*panic)),
        };
        status.retrying(error, delay);
        if sink.control.sleep(delay) {
            return;
        }
    }
}
