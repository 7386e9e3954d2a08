//! The life of a context: [`Lifecycle`], the start (the graph taken from the stream
//! registry, inputs started, the scheduler launched), what exists while it runs, and
//! the stop.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::shared::ContextShared;
use crate::dstream::store::StatefulStream;
use crate::dstream::{GraphNode, OutputOperation};
use crate::error::{Error, Result};
use crate::scheduler::{BatchLog, CheckpointPlan, JobGraph, QueueDepth, Scheduler, SchedulerParts};
use crate::source::{InputHandle, SourceContext};
use crate::{signals, status_page};

/// Checkpoints are written at least this far apart by default, as in Spark.
const MIN_DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Where a context is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lifecycle {
    Initialized,
    /// Inputs and the scheduler are being started, without the context's lock (an
    /// input's start may wait on I/O). A stop asked for meanwhile is recorded and
    /// done once the start is complete; status pages asked for are served then.
    Starting,
    Active,
    Stopping,
    Stopped,
}

impl Lifecycle {
    #[cfg_attr(not(feature = "status-page"), allow(dead_code))] // read by the page only
    /// The state in words, as the status page shows it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Lifecycle::Initialized => "initialized",
            // The vocabulary of the page's API has no word for the moments of the
            // start; a request then used to wait for the start to complete.
            Lifecycle::Starting | Lifecycle::Active => "active",
            Lifecycle::Stopping => "stopping",
            Lifecycle::Stopped => "stopped",
        }
    }
}

/// What exists only while the context runs.
pub(super) struct Running {
    scheduler: Scheduler,
    pub(super) tokio: NetworkRuntime,
    graph: Arc<JobGraph>,
}

/// The tokio runtime of the network receivers and the status page. It shuts down
/// without waiting wherever it is dropped: the last handle to a context may be let go
/// on one of the runtime's own threads (by a status page request), where a plain drop
/// of a runtime panics.
pub(super) struct NetworkRuntime {
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl NetworkRuntime {
    fn start() -> Result<NetworkRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dstream-net")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime {
                what: "network runtime",
                reason: e.to_string(),
            })?;
        Ok(NetworkRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for NetworkRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ContextShared {
    pub(super) fn start(self: &Arc<Self>) -> Result<()> {
        let mut inner = self.inner();
        match inner.lifecycle {
            Lifecycle::Initialized => {}
            Lifecycle::Starting | Lifecycle::Active | Lifecycle::Stopping => {
                return Err(Error::AlreadyStarted);
            }
            Lifecycle::Stopped => return Err(Error::AlreadyStopped),
        }
        let checkpoint_dir = inner.checkpoint_dir.clone();
        // From here on no output may be added: the graph is the one taken now.
        let streams = self.streams.close_if(|streams| {
            if streams.outputs.is_empty() {
                return Err(Error::NoOutputOperations);
            }
            match (&checkpoint_dir, streams.stateful.first()) {
                (None, Some(state)) => Err(Error::CheckpointRequired {
                    operation: state
                        .stream()
                        .map_or_else(|| state.operation().to_string(), |s| s.meta().describe()),
                }),
                (Some(dir), _) => dir.ensure_writable(),
                (None, None) => Ok(()),
            }
        })?;
        let graph = Arc::new(JobGraph {
            inputs: inner.inputs.clone(),
            nodes: reachable_streams(
                &streams.outputs,
                &inner.inputs,
                &streams.stateful,
                &streams.eager,
            ),
            outputs: streams.outputs,
            eager: streams.eager,
            stateful: streams.stateful,
        });
        let timeline = self.streams.timeline();
        let batch_interval = timeline.batch_interval();
        let (zero, first_batch, replay) = match inner.recovery.take() {
            Some(recovery) => {
                self.clock.resume_at(recovery.generated);
                (
                    recovery.zero,
                    recovery.generated + batch_interval,
                    recovery.pending,
                )
            }
            None => {
                let first = self.clock.now().next_multiple(batch_interval);
                (first - batch_interval, first, Vec::new())
            }
        };
        timeline.start_at(zero + batch_interval);
        let first_run = replay.first().map_or(first_batch, |batch| batch.time);
        let checkpoint = checkpoint_dir.map(|dir| CheckpointPlan {
            dir,
            interval: checkpoint_interval(
                &graph.stateful,
                batch_interval,
                self.config.checkpoint_interval,
            ),
            zero,
        });

        // Whatever happens next, this context is used up.
        inner.lifecycle = Lifecycle::Stopped;
        let tokio = NetworkRuntime::start()?;
        if let Some(listener) = inner.status_page.take()
            && let Err(e) = status_page::serve(listener, tokio.handle(), self.status_source())
        {
            tracing::error!("{e}");
        }
        if self.config.stop_on_signal
            && let Err(e) = signals::stop_on_signal(tokio.handle(), self.graceful_stop())
        {
            drop(tokio);
            self.progress.terminate();
            return Err(e);
        }
        // Inputs may wait on I/O as they start (a directory listing, a broker): the
        // lock is let go meanwhile, so that other handles are not held up.
        let remember = inner.remember.unwrap_or_default();
        inner.lifecycle = Lifecycle::Starting;
        drop(inner);

        let sources = SourceContext {
            tokio: tokio.handle().clone(),
            restart_delay: self.config.receiver_restart_delay,
            clock: self.clock.clone(),
            origin: zero,
            receivers: self.receivers.clone(),
            stream_id: 0,
            stream: String::new(),
            write_ahead_log: checkpoint
                .as_ref()
                .filter(|_| self.config.receiver_write_ahead_log)
                .map(|plan| plan.dir.path().to_path_buf()),
        };
        for (started, input) in graph.inputs.iter().enumerate() {
            if let Err(e) = input.start(&sources) {
                graph.inputs[..started].iter().for_each(|i| i.stop());
                drop(tokio);
                self.start_failed();
                return Err(e);
            }
        }
        let weak: Weak<ContextShared> = Arc::downgrade(self);
        let continue_after_failure = self.config.continue_after_failed_batch;
        if continue_after_failure && !graph.stateful.is_empty() {
            tracing::warn!(
                "continue_after_failed_batch is on, but this program keeps state, which cannot skip a batch: a failed batch stops the context"
            );
        }
        let parts = SchedulerParts {
            graph: graph.clone(),
            clock: self.clock.clone(),
            env: self.streams.env().clone(),
            listeners: self.listeners.clone(),
            progress: self.progress.clone(),
            batch_interval,
            replay,
            first_batch,
            checkpoint,
            hold_cuts_while_queued: self.config.max_buffered_records.is_some()
                || self.config.backpressure,
            remember,
            stop_timeout: self.config.effective_stop_timeout(),
            queue: QueueDepth::default(),
            log: BatchLog::default(),
            on_failure: Box::new(move || {
                if let Some(shared) = weak.upgrade() {
                    ContextShared::stop(&shared, false);
                }
            }),
            continue_after_failure: continue_after_failure && graph.stateful.is_empty(),
        };
        let scheduler = match Scheduler::start(parts) {
            Ok(scheduler) => scheduler,
            Err(e) => {
                graph.inputs.iter().for_each(|i| i.stop());
                drop(tokio);
                self.start_failed();
                return Err(e);
            }
        };
        let _ = self.scheduler_threads.set(scheduler.thread_ids().to_vec());

        let mut inner = self.inner();
        inner.running = Some(Running {
            scheduler,
            tokio,
            graph,
        });
        inner.lifecycle = Lifecycle::Active;
        let stop_requested = inner.stop_requested.take();
        drop(inner);
        self.listeners.post(|l| l.on_streaming_started(first_run));
        if let Some(graceful) = stop_requested {
            // Whoever asked waits for the termination; the stop runs on a thread of
            // its own, as it would have had it come once the start was complete.
            let shared = self.clone();
            let spawned = std::thread::Builder::new()
                .name("dstream-stop".into())
                .spawn(move || ContextShared::stop(&shared, graceful));
            if let Err(e) = spawned {
                tracing::error!("cannot start a thread to stop the streaming context: {e}");
            }
        }
        Ok(())
    }

    /// Ends a start that failed once the lock was let go: the context is used up, and
    /// whoever waits for its termination is woken.
    fn start_failed(&self) {
        let mut inner = self.inner();
        inner.lifecycle = Lifecycle::Stopped;
        inner.status_page = None;
        inner.stop_requested = None;
        drop(inner);
        self.progress.terminate();
    }

    /// Stops the context (see [`StreamingContext::stop`]).
    pub(super) fn stop(self: &Arc<Self>, graceful: bool) {
        let running = {
            let mut inner = self.inner();
            match inner.lifecycle {
                Lifecycle::Initialized => {
                    inner.lifecycle = Lifecycle::Stopped;
                    // A context stopped before its start frees the page's port.
                    inner.status_page = None;
                    self.streams.close();
                    self.progress.terminate();
                    return;
                }
                Lifecycle::Stopped => return,
                Lifecycle::Starting => {
                    inner.stop_requested.get_or_insert(graceful);
                    None
                }
                Lifecycle::Stopping => None,
                Lifecycle::Active => {
                    inner.lifecycle = Lifecycle::Stopping;
                    inner.running.take()
                }
            }
        };
        let Some(running) = running else {
            // Someone else is stopping it; wait for them, unless that would deadlock.
            if !self.on_own_thread() {
                self.progress.wait_terminated(None);
            }
            return;
        };
        if self.on_own_thread() {
            // Joining the scheduler from its own threads would deadlock.
            let shared = self.clone();
            let spawned = std::thread::Builder::new()
                .name("dstream-stop".into())
                .spawn(move || shared.shut_down(running, graceful));
            if let Err(e) = spawned {
                tracing::error!("cannot start a thread to stop the streaming context: {e}");
            }
            return;
        }
        self.shut_down(running, graceful);
    }

    /// The graceful stop that a signal runs; it holds the context weakly, so that
    /// the handler, which stays installed, never keeps a context alive.
    fn graceful_stop(self: &Arc<Self>) -> impl FnOnce() + Send + 'static {
        let weak: Weak<ContextShared> = Arc::downgrade(self);
        move || {
            if let Some(shared) = weak.upgrade() {
                ContextShared::stop(&shared, true);
            }
        }
    }

    /// Whether the caller is one of the threads a stop must wait for.
    fn on_own_thread(&self) -> bool {
        let current = std::thread::current().id();
        self.streams.env().is_worker_thread()
            || self
                .scheduler_threads
                .get()
                .is_some_and(|ids| ids.contains(&current))
    }

    fn shut_down(&self, running: Running, graceful: bool) {
        for input in &running.graph.inputs {
            input.stop();
        }
        running.scheduler.stop(graceful);
        drop(running.tokio);
        self.inner().lifecycle = Lifecycle::Stopped;
        self.progress.terminate();
        self.listeners.post(|l| l.on_streaming_stopped());
    }
}

/// How often to checkpoint: the shortest interval set on a stateful stream, else the
/// configured one, else the smallest multiple of the batch interval that is at least
/// 10 seconds.
fn checkpoint_interval(
    stateful: &[Arc<dyn StatefulStream>],
    batch: Duration,
    configured: Option<Duration>,
) -> Duration {
    let default = configured.unwrap_or_else(|| {
        let batches = MIN_DEFAULT_CHECKPOINT_INTERVAL
            .as_millis()
            .div_ceil(batch.as_millis().max(1));
        batch * u32::try_from(batches).unwrap_or(u32::MAX)
    });
    stateful
        .iter()
        .filter_map(|s| s.checkpoint_interval())
        .min()
        .unwrap_or(default)
}

/// Every stream that is computed while the context runs, so that each forgets what
/// it no longer needs: what outputs read, what stateful streams advance every batch,
/// what windows read later, and their parents.
fn reachable_streams(
    outputs: &[Arc<dyn OutputOperation>],
    inputs: &[Arc<dyn InputHandle>],
    stateful: &[Arc<dyn StatefulStream>],
    eager: &[Arc<dyn GraphNode>],
) -> Vec<Arc<dyn GraphNode>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut nodes = Vec::new();
    let mut stack: Vec<Arc<dyn GraphNode>> = outputs.iter().map(|o| o.stream()).collect();
    stack.extend(inputs.iter().map(|i| i.node()));
    stack.extend(stateful.iter().filter_map(|s| s.stream()));
    stack.extend(eager.iter().cloned());
    while let Some(node) = stack.pop() {
        if seen.insert(node.meta().id) {
            stack.extend(node.meta().parents.iter().cloned());
            nodes.push(node);
        }
    }
    nodes.sort_by_key(|n| n.meta().id);
    nodes
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::super::StreamingContext;
    use crate::config::StreamingConfig;
    use crate::error::{Error, Result};
    use crate::rdd::{ExecEnv, Rdd};
    use crate::source::{Cut, InputSource, SourceContext};
    use crate::time::{ManualClock, Time};

    /// An input whose start waits until the test lets it go.
    struct SlowStart {
        entered: Mutex<mpsc::Sender<()>>,
        release: Mutex<mpsc::Receiver<()>>,
    }

    impl InputSource<u32> for SlowStart {
        fn start(&self, _ctx: &SourceContext) -> Result<()> {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
            Ok(())
        }

        fn cut(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<u32> {
            Cut {
                rdd: Rdd::from_vec_in(Vec::new(), 1, env.clone()),
                records: 0,
                replay: None,
            }
        }

        fn has_pending(&self) -> bool {
            false
        }

        fn stop(&self) {}
    }

    /// A context whose one input starts only when the test sends to the returned
    /// sender; its start runs on the returned thread, and has reached the input when
    /// this returns.
    fn starting_context() -> (
        StreamingContext,
        mpsc::Sender<()>,
        std::thread::JoinHandle<Result<()>>,
    ) {
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: Duration::from_secs(1),
                #[cfg(feature = "status-page")]
                status_page: Some("127.0.0.1:0".parse().unwrap()),
                ..StreamingConfig::default()
            })
            .clock(ManualClock::default())
            .build()
            .unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let input = SlowStart {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        };
        ssc.input("slow_start", input)
            .foreach_rdd(|_, _| ())
            .unwrap();
        let starting = ssc.clone();
        let start = std::thread::spawn(move || starting.start());
        entered.recv_timeout(Duration::from_secs(30)).unwrap();
        (ssc, release, start)
    }

    #[test]
    fn handles_are_not_held_up_while_inputs_start() {
        let (ssc, release, start) = starting_context();
        assert!(matches!(
            ssc.remember(Duration::from_secs(1)),
            Err(Error::AddedAfterStart { .. })
        ));
        assert!(matches!(ssc.start(), Err(Error::AlreadyStarted)));
        #[cfg(feature = "status-page")]
        let page = ssc.status_page_address().unwrap();
        release.send(()).unwrap();
        start.join().unwrap().unwrap();
        #[cfg(feature = "status-page")]
        {
            let mut connection = std::net::TcpStream::connect(page).unwrap();
            std::io::Write::write_all(
                &mut connection,
                b"GET /api/v1/summary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            let mut answer = String::new();
            std::io::Read::read_to_string(&mut connection, &mut answer).unwrap();
            assert!(answer.contains("\"active\""), "{answer}");
        }
        ssc.stop(false).unwrap();
    }

    #[test]
    fn a_stop_while_inputs_start_is_done_once_they_have() {
        let (ssc, release, start) = starting_context();
        let stopping = ssc.clone();
        let stop = std::thread::spawn(move || stopping.stop(true));
        while ssc.shared.inner().stop_requested.is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        release.send(()).unwrap();
        start.join().unwrap().unwrap();
        stop.join().unwrap().unwrap();
        assert!(ssc.await_termination_or_timeout(Duration::ZERO).unwrap());
    }
}
