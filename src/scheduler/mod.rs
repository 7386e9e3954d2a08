//! The scheduler: a job generator and a job executor, each on its own thread.
//!
//! The **generator** waits on the clock for each batch time `t`, cuts every input's
//! data for `t`, asks every output operation for its job at `t` (computing the stream
//! graph, which only builds lazy `Rdd`s) and queues the batch. The **executor** takes
//! batches in order and runs their jobs one after the other on the context's thread
//! pool. A batch that takes longer than the interval delays the next ones (scheduling
//! delay); no batch is ever dropped, except by a non-graceful stop.
//!
//! A panic in a user function fails its batch: the error, naming the batch time, is
//! recorded in `Progress` and the context stops.

pub(crate) mod history;
mod listener;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

pub(crate) use history::BatchHistory;
pub(crate) use listener::ListenerBus;
pub use listener::{BatchInfo, RebalanceInfo, StreamingListener};
// The clocks and the rate controller live in the layers below, where sources use
// them; these paths are kept for programs that name them here.
pub use crate::source::{PidRateEstimator, RateController};
pub use crate::time::{Clock, ManualClock, SystemClock};

use crate::checkpoint::{
    Checkpoint, CheckpointDir, KEEP_CHECKPOINTS, PendingBatch, STATE_CODEC, StateTypes,
    StreamIdentity,
};
use crate::dstream::store::StatefulStream;
use crate::dstream::{GraphNode, Job, OutputOperation};
use crate::error::{Cause, Error, Result, Unwound, catch_panic};
use crate::rdd::ExecEnv;
use crate::source::InputHandle;
use crate::time::{Time, duration_millis};

/// How often a waiting generator looks at its stop signal.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How many completed batches' figures are kept for [`Progress::wait_batch`].
const KEPT_BATCH_INFOS: usize = 1024;

/// The stream graph as it was when the context started.
pub(crate) struct JobGraph {
    pub(crate) inputs: Vec<Arc<dyn InputHandle>>,
    pub(crate) outputs: Vec<Arc<dyn OutputOperation>>,
    /// Every stream the outputs read, inputs included.
    pub(crate) nodes: Vec<Arc<dyn GraphNode>>,
    /// Streams computed at every batch time even if no output asks: the parents of
    /// windows, whose `Rdd`s windows read later.
    pub(crate) eager: Vec<Arc<dyn GraphNode>>,
    /// Streams with state, advanced every batch.
    pub(crate) stateful: Vec<Arc<dyn StatefulStream>>,
}

/// What a job does, for messages.
#[derive(Clone, Copy)]
enum JobOrigin {
    Output(usize),
    State(usize),
}

/// Why a batch failed: the message its `BatchInfo` shows, and the error itself (none
/// for a panic).
struct Failure {
    message: String,
    cause: Option<Cause>,
}

struct Batch {
    info: BatchInfo,
    /// What each input gave the batch, in the graph's input order.
    input_records: Vec<u64>,
    /// The jobs, or why the graph could not be computed for this batch.
    jobs: std::result::Result<Vec<(JobOrigin, Job)>, Failure>,
}

/// Batches generated but not completed, with what each input gave them, and the
/// inputs' positions after the last cut: what a checkpoint records about inputs.
#[derive(Default)]
pub(crate) struct BatchLog {
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    unfinished: BTreeMap<Time, Vec<Option<Vec<u8>>>>,
    positions: Vec<Option<Vec<u8>>>,
    generated: Option<Time>,
}

impl BatchLog {
    fn state(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generated(
        &self,
        time: Time,
        replays: Vec<Option<Vec<u8>>>,
        positions: Vec<Option<Vec<u8>>>,
    ) {
        let mut state = self.state();
        state.unfinished.insert(time, replays);
        state.positions = positions;
        state.generated = Some(time);
    }

    fn completed(&self, time: Time) {
        let mut state = self.state();
        let later = state
            .unfinished
            .split_off(&Time::from_millis(time.as_millis() + 1));
        state.unfinished = later;
    }
}

/// Where and how often checkpoints are written.
pub(crate) struct CheckpointPlan {
    pub(crate) dir: CheckpointDir,
    pub(crate) interval: Duration,
    pub(crate) zero: Time,
}

/// What has completed so far, and whether and why the context terminated.
#[derive(Default)]
pub(crate) struct Progress {
    state: Mutex<ProgressState>,
    changed: Condvar,
}

#[derive(Default)]
struct ProgressState {
    last_completed: Option<Time>,
    recent: VecDeque<BatchInfo>,
    failure: Option<Error>,
    terminated: bool,
    /// Batches go on after a failure (see `SchedulerParts::continue_after_failure`):
    /// then a failure ends waits for the termination, and no longer ends waits for
    /// later batches.
    continues_after_failure: bool,
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn completed(&self, info: BatchInfo) {
        let mut state = self.state();
        state.last_completed = Some(info.batch_time);
        if state.recent.len() == KEPT_BATCH_INFOS {
            state.recent.pop_front();
        }
        state.recent.push_back(info);
        self.changed.notify_all();
    }

    /// Records the error that stops the context; the first one wins.
    fn fail(&self, error: Error) {
        let mut state = self.state();
        state.failure.get_or_insert(error);
        self.changed.notify_all();
    }

    pub(crate) fn terminate(&self) {
        self.state().terminated = true;
        self.changed.notify_all();
    }

    pub(crate) fn failure(&self) -> Option<Error> {
        self.state().failure.clone()
    }

    fn continue_after_failure(&self) {
        self.state().continues_after_failure = true;
    }

    /// Waits until the context terminated (or, when batches go on after a failure,
    /// until one failed); `false` if `timeout` passed first.
    pub(crate) fn wait_terminated(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.state();
        let ended = |state: &ProgressState| {
            state.terminated || (state.continues_after_failure && state.failure.is_some())
        };
        while !ended(&state) {
            state = match deadline {
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }

    /// Waits until the batch at `time` has completed and returns its figures.
    pub(crate) fn wait_batch(&self, time: Time, timeout: Duration) -> Result<BatchInfo> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if state.last_completed.is_some_and(|done| done >= time) {
                return state
                    .recent
                    .iter()
                    .find(|info| info.batch_time == time)
                    .cloned()
                    .ok_or_else(|| match state.recent.front() {
                        Some(oldest) if oldest.batch_time > time => Error::BatchNotKept {
                            time,
                            kept: KEPT_BATCH_INFOS,
                        },
                        _ => Error::NotABatchTime { time },
                    });
            }
            if let Some(failure) = &state.failure
                && !state.continues_after_failure
            {
                return Err(failure.clone());
            }
            if state.terminated {
                return Err(Error::AlreadyStopped);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("batch {time} to complete"),
                    after: timeout,
                });
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Asks the scheduler threads to stop.
#[derive(Default)]
struct StopSignal {
    requested: AtomicBool,
    graceful: AtomicBool,
}

/// What the scheduler threads share.
pub(crate) struct SchedulerParts {
    pub(crate) graph: Arc<JobGraph>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) env: Arc<ExecEnv>,
    pub(crate) listeners: Arc<ListenerBus>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) batch_interval: Duration,
    /// Unfinished batches of a recovered checkpoint, run again first.
    pub(crate) replay: Vec<PendingBatch>,
    /// The first batch to generate from the clock.
    pub(crate) first_batch: Time,
    pub(crate) checkpoint: Option<CheckpointPlan>,
    /// Whether to cut a batch only when no other batch waits to run, so that input
    /// waits in the receivers (bounded buffers, rate limits) rather than in queued
    /// batches: on with a bounded buffer or backpressure.
    pub(crate) hold_cuts_while_queued: bool,
    /// How long streams keep their `Rdd`s after a batch, beyond what windows need.
    pub(crate) remember: Duration,
    /// How long a graceful stop may take before queued batches are dropped.
    pub(crate) stop_timeout: Duration,
    pub(crate) queue: QueueDepth,
    pub(crate) log: BatchLog,
    /// Called (on the executor thread) after a batch failed, to stop the context.
    pub(crate) on_failure: Box<dyn Fn() + Send + Sync>,
    /// Whether batches go on after a batch whose jobs failed, as in Spark (the
    /// configuration's `continue_after_failed_batch`, for programs without state).
    pub(crate) continue_after_failure: bool,
}

/// The running generator and executor threads.
pub(crate) struct Scheduler {
    parts: Arc<SchedulerParts>,
    stop: Arc<StopSignal>,
    generator: JoinHandle<()>,
    executor: JoinHandle<()>,
    /// Closed when the generator thread ends.
    generator_done: Receiver<()>,
    /// Closed when the executor thread ends.
    executor_done: Receiver<()>,
    thread_ids: [ThreadId; 2],
}

impl Scheduler {
    pub(crate) fn start(parts: SchedulerParts) -> Result<Scheduler> {
        if parts.continue_after_failure {
            parts.progress.continue_after_failure();
        }
        if let Some(plan) = &parts.checkpoint
            && parts.replay.is_empty()
            && parts.first_batch == plan.zero + parts.batch_interval
        {
            // A fresh start: checkpoint the inputs' starting positions (for the file
            // source, the files already there) before any batch, so that a program
            // killed before its first regular checkpoint restarts from here and does
            // not take the files that arrived meanwhile for files that were already
            // there.
            let positions = parts.graph.inputs.iter().map(|i| i.position()).collect();
            parts.log.state().positions = positions;
            write_checkpoint(&parts, plan.zero)?;
        }
        let parts = Arc::new(parts);
        let stop = Arc::new(StopSignal::default());
        let (batches, queue) = crossbeam_channel::unbounded::<Batch>();
        let spawn_error = |e: std::io::Error| Error::Runtime {
            what: "scheduler thread",
            reason: e.to_string(),
        };
        let (done, executor_done) = crossbeam_channel::bounded::<()>(0);
        let executor = {
            let (parts, stop) = (parts.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dstream-executor".into())
                .spawn(move || {
                    run_executor(&parts, &stop, &queue);
                    drop(done);
                })
                .map_err(spawn_error)?
        };
        let (generated_all, generator_done) = crossbeam_channel::bounded::<()>(0);
        let generator = {
            let (parts, stop) = (parts.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dstream-generator".into())
                .spawn(move || {
                    run_generator(&parts, &stop, batches);
                    drop(generated_all);
                })
                .map_err(spawn_error)?
        };
        let thread_ids = [generator.thread().id(), executor.thread().id()];
        Ok(Scheduler {
            parts,
            stop,
            generator,
            executor,
            generator_done,
            executor_done,
            thread_ids,
        })
    }

    /// The generator's and the executor's thread ids.
    pub(crate) fn thread_ids(&self) -> [ThreadId; 2] {
        self.thread_ids
    }

    /// Stops both threads and waits for them. Gracefully: a last batch takes what the
    /// inputs still hold, and every queued batch runs. Otherwise the batch running now
    /// finishes and queued batches are dropped.
    ///
    /// A graceful stop that takes longer than the stop timeout drops the batches still
    /// queued then (they stay recorded as unfinished in the checkpoint). A graceful
    /// stop also writes a last checkpoint, so that a restart has nothing to run again.
    ///
    /// Whatever the threads are doing, this returns within the stop timeout: a thread
    /// still busy then (a batch blocked in a user function or in an input) is left
    /// behind, with a warning, rather than waited for without end.
    pub(crate) fn stop(self, graceful: bool) {
        use crossbeam_channel::RecvTimeoutError::Timeout;

        self.stop.graceful.store(graceful, Ordering::SeqCst);
        self.stop.requested.store(true, Ordering::SeqCst);
        let timeout = self.parts.stop_timeout;
        let deadline = Instant::now() + timeout;
        let generator_ended = !matches!(self.generator_done.recv_deadline(deadline), Err(Timeout));
        if !generator_ended {
            tracing::warn!(
                "computing a batch (an input or a transform function) did not finish within the stop timeout of {timeout:?}; the context stops without it, and batches still queued are dropped"
            );
            // The executor must not wait for batches that will never be queued.
            self.stop.graceful.store(false, Ordering::SeqCst);
        }
        let executor_ended = match self.executor_done.recv_deadline(deadline) {
            Err(Timeout) => {
                tracing::warn!(
                    "the running batch did not finish within the stop timeout of {timeout:?}; the context stops without it, and batches still queued are dropped"
                );
                self.stop.graceful.store(false, Ordering::SeqCst);
                false
            }
            _ => true,
        };
        // Joining a thread left behind would wait for it; the ones that ended join at once.
        if generator_ended {
            let _ = self.generator.join();
        }
        if executor_ended {
            let _ = self.executor.join();
        }
        let completed = self.parts.progress.state().last_completed;
        let healthy = self.parts.progress.failure().is_none();
        if let (true, true, true, Some(_), Some(time)) = (
            graceful,
            healthy,
            generator_ended && executor_ended,
            &self.parts.checkpoint,
            completed,
        ) && let Err(e) = write_checkpoint(&self.parts, time)
        {
            tracing::error!("the last checkpoint could not be written: {e}");
        }
    }
}

fn run_generator(parts: &SchedulerParts, stop: &StopSignal, batches: Sender<Batch>) {
    for pending in &parts.replay {
        if stop.requested.load(Ordering::SeqCst) && !stop.graceful.load(Ordering::SeqCst) {
            return;
        }
        let inputs = BatchInputs::Replay(&pending.inputs);
        if !queue_batch(parts, &batches, generate_batch(parts, pending.time, inputs)) {
            return;
        }
    }
    let mut next = parts.first_batch;
    loop {
        if stop.requested.load(Ordering::SeqCst) {
            let drain = stop.graceful.load(Ordering::SeqCst)
                && parts.graph.inputs.iter().any(|input| input.has_pending());
            if drain {
                queue_batch(
                    parts,
                    &batches,
                    generate_batch(parts, next, BatchInputs::Cut),
                );
            }
            return;
        }
        if parts.hold_cuts_while_queued && !parts.queue.is_empty() {
            // A batch is already waiting to run: let the input wait in the receivers.
            parts.queue.wait_empty(STOP_POLL);
            continue;
        }
        let now = parts.clock.wait_until(next, STOP_POLL);
        // Every batch time that has passed is generated now. With cuts held, the
        // generator wakes late, by up to a batch's processing time: the receivers give
        // what waited in their buffers to the last of these batches, and nothing to the
        // others, so that the batches after them are cut on time again. Were they
        // generated one per wait, each with a full buffer, each would wait behind the
        // one before and the delay would grow without end although the buffers are
        // bounded.
        while now >= next {
            let inputs = if parts.hold_cuts_while_queued && now >= next + parts.batch_interval {
                BatchInputs::Passed
            } else {
                BatchInputs::Cut
            };
            if !queue_batch(parts, &batches, generate_batch(parts, next, inputs)) {
                return; // the executor ended after a failure
            }
            next = next + parts.batch_interval;
        }
    }
}

/// How many batches are queued and not yet taken by the executor.
#[derive(Default)]
pub(crate) struct QueueDepth {
    queued: Mutex<usize>,
    taken: Condvar,
}

impl QueueDepth {
    fn queued(&self) -> MutexGuard<'_, usize> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn added(&self) {
        *self.queued() += 1;
    }

    fn taken(&self) {
        let mut queued = self.queued();
        *queued = queued.saturating_sub(1);
        self.taken.notify_all();
    }

    fn is_empty(&self) -> bool {
        *self.queued() == 0
    }

    /// Waits (at most `max_wait`) until the executor has taken every queued batch.
    fn wait_empty(&self, max_wait: Duration) {
        let queued = self.queued();
        let _ = self
            .taken
            .wait_timeout_while(queued, max_wait, |queued| *queued > 0)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Queues `batch` for the executor; `false` if the executor has ended.
fn queue_batch(parts: &SchedulerParts, batches: &Sender<Batch>, batch: Batch) -> bool {
    parts.queue.added();
    let sent = batches.send(batch).is_ok();
    if !sent {
        parts.queue.taken();
    }
    sent
}

/// Where a batch's input comes from.
enum BatchInputs<'a> {
    /// Cut from the inputs now.
    Cut,
    /// Cut from the inputs now, for a batch time that passed while cuts were held and
    /// is followed at once by a later one: receivers give theirs to that later batch.
    Passed,
    /// Given again, after a restart, from what each input recorded.
    Replay(&'a [Option<Vec<u8>>]),
}

/// Gives the inputs their data for `time`, and asks every output operation for its
/// job and every stateful stream for its update.
fn generate_batch(parts: &SchedulerParts, time: Time, inputs: BatchInputs<'_>) -> Batch {
    let graph = &parts.graph;
    let mut input_records = Vec::with_capacity(graph.inputs.len());
    let mut replays = Vec::with_capacity(graph.inputs.len());
    let mut failed_input = None;
    for (index, input) in graph.inputs.iter().enumerate() {
        match inputs {
            BatchInputs::Cut | BatchInputs::Passed => {
                let passed = matches!(inputs, BatchInputs::Passed);
                let (records, replay) = input.generate(time, passed).unwrap_or_else(|why| {
                    failed_input.get_or_insert(why);
                    (0, None)
                });
                input_records.push(records);
                replays.push(replay);
            }
            BatchInputs::Replay(recorded) => {
                let replay = recorded.get(index).cloned().flatten();
                input_records.push(input.regenerate(time, replay.as_deref()));
                replays.push(replay);
            }
        }
    }
    let num_records = input_records.iter().sum();
    let positions = graph.inputs.iter().map(|input| input.position()).collect();
    parts.log.generated(time, replays, positions);

    // Also when an input failed: the streams of the batch are made all the same (each
    // computation that needs the failed input fails), so later batches see them.
    let jobs = computed_jobs(graph, time);
    let jobs = match failed_input {
        Some(message) => Err(Failure {
            message,
            cause: None,
        }),
        None => jobs,
    };
    let info = BatchInfo {
        batch_time: time,
        num_records,
        submission_time: parts.clock.now(),
        processing_start_time: None,
        processing_end_time: None,
        output_operations: jobs.as_ref().map_or(0, |jobs| {
            jobs.iter()
                .filter(|(origin, _)| matches!(origin, JobOrigin::Output(_)))
                .count()
        }),
        failure: None,
    };
    parts.listeners.post(|l| l.on_batch_submitted(&info));
    Batch {
        info,
        input_records,
        jobs,
    }
}

/// Every output operation's job and every stateful stream's update for batch `time`,
/// or why computing the streams failed.
fn computed_jobs(
    graph: &JobGraph,
    time: Time,
) -> std::result::Result<Vec<(JobOrigin, Job)>, Failure> {
    catch_panic(|| {
        for node in &graph.eager {
            node.generate(time);
        }
        let outputs = graph
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(index, output)| {
                output.job(time).map(|job| (JobOrigin::Output(index), job))
            });
        let states = graph
            .stateful
            .iter()
            .enumerate()
            .filter_map(|(index, state)| {
                state
                    .maintenance(time)
                    .map(|job| (JobOrigin::State(index), job))
            });
        outputs.chain(states).collect::<Vec<_>>()
    })
    .map_err(|unwound| match unwound {
        Unwound::Panic(panic) => Failure {
            message: format!("computing the streams panicked: {panic}"),
            cause: None,
        },
        Unwound::Failed(error) => Failure {
            message: format!("computing the streams failed: {error}"),
            cause: Some(Arc::new(error)),
        },
    })
}

fn run_executor(parts: &SchedulerParts, stop: &StopSignal, queue: &Receiver<Batch>) {
    loop {
        // Waits in steps, so that a stop that gave up on a stuck generator (which
        // then never closes the queue) still ends this thread.
        let mut batch = match queue.recv_timeout(STOP_POLL) {
            Ok(batch) => batch,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if stop.requested.load(Ordering::SeqCst) && !stop.graceful.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        parts.queue.taken();
        if stop.requested.load(Ordering::SeqCst) && !stop.graceful.load(Ordering::SeqCst) {
            return;
        }
        let input_records = std::mem::take(&mut batch.input_records);
        let (info, cause) = run_batch(parts, batch);
        let time = info.batch_time;
        let failure = info.failure.clone();
        parts.listeners.post(|l| l.on_batch_completed(&info));
        update_rates(parts, &info, &input_records);
        let remembered_from = Time::from_millis(time.as_millis() - duration_millis(parts.remember));
        for node in &parts.graph.nodes {
            node.forget_before(remembered_from);
        }
        for state in &parts.graph.stateful {
            state.forget_before(time);
        }
        parts.log.completed(time);
        let failure = match failure {
            Some(message) => Some(Error::BatchFailed {
                time,
                message,
                cause,
            }),
            None => checkpoint_if_due(parts, time).err(),
        };
        parts.progress.completed(info);
        if let Some(error) = failure {
            let batch_failed = matches!(error, Error::BatchFailed { .. });
            parts.progress.fail(error);
            if batch_failed && parts.continue_after_failure {
                continue;
            }
            (parts.on_failure)();
            return;
        }
    }
}

/// Tells each input's rate controller (with backpressure) how its records of the
/// completed batch were processed.
fn update_rates(parts: &SchedulerParts, info: &BatchInfo, input_records: &[u64]) {
    let (Some(end), Some(processing), Some(scheduling)) = (
        info.processing_end_time,
        info.processing_delay(),
        info.scheduling_delay(),
    ) else {
        return;
    };
    for (input, &records) in parts.graph.inputs.iter().zip(input_records) {
        if let Some(controller) = input.rate_controller() {
            controller.batch_completed(end, records, processing, scheduling);
        }
    }
}

/// Writes a checkpoint after batch `time` if one is due then.
fn checkpoint_if_due(parts: &SchedulerParts, time: Time) -> Result<()> {
    match &parts.checkpoint {
        Some(plan) if time.is_multiple_of(plan.interval, plan.zero) => {
            write_checkpoint(parts, time)
        }
        _ => Ok(()),
    }
}

/// Writes a checkpoint of the state after batch `completed` (the executor has not
/// started the next batch) and of the inputs as the generator left them.
fn write_checkpoint(parts: &SchedulerParts, completed: Time) -> Result<()> {
    let Some(plan) = &parts.checkpoint else {
        return Ok(());
    };
    let graph = &parts.graph;
    let mut states = Vec::with_capacity(graph.stateful.len());
    let mut stored = Vec::with_capacity(graph.stateful.len());
    for state in &graph.stateful {
        if let Some(stream) = state.stream() {
            states.push((identity(&*stream), state.encode()?));
            stored.push(state.stored_types().to_string());
        }
    }
    let (generated, positions, pending) = {
        let log = parts.log.state();
        let pending = log
            .unfinished
            .iter()
            .filter(|(time, _)| **time > completed)
            .map(|(time, inputs)| PendingBatch {
                time: *time,
                inputs: inputs.clone(),
            })
            .collect();
        (
            log.generated.unwrap_or(completed),
            log.positions.clone(),
            pending,
        )
    };
    let inputs: Vec<(StreamIdentity, Option<Vec<u8>>)> = graph
        .inputs
        .iter()
        .zip(positions.into_iter().chain(std::iter::repeat(None)))
        .map(|(input, position)| (identity(&*input.node()), position))
        .collect();
    let checkpoint = Checkpoint {
        batch_interval_ms: duration_millis(parts.batch_interval),
        zero: plan.zero,
        completed,
        generated: generated.max(completed),
        inputs,
        states,
        pending,
        state_types: Some(StateTypes {
            codec: STATE_CODEC,
            stored,
        }),
    };
    plan.dir.write(&checkpoint)?;
    // Inputs that keep a log may now drop what no kept checkpoint needs.
    for (index, input) in graph.inputs.iter().enumerate() {
        let replays: Vec<&[u8]> = checkpoint
            .pending
            .iter()
            .filter_map(|batch| batch.inputs.get(index)?.as_deref())
            .collect();
        let position = checkpoint.inputs[index].1.as_deref();
        input.checkpointed(position, &replays, KEEP_CHECKPOINTS);
    }
    Ok(())
}

/// How a checkpoint names a stream.
pub(crate) fn identity(node: &dyn GraphNode) -> StreamIdentity {
    let meta = node.meta();
    StreamIdentity {
        id: meta.id,
        kind: meta.kind.to_string(),
        name: meta
            .name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    }
}

/// Runs a batch's jobs in order; the first failure ends the batch, and its error is
/// returned beside the batch's figures.
fn run_batch(parts: &SchedulerParts, batch: Batch) -> (BatchInfo, Option<Cause>) {
    let mut info = batch.info;
    info.processing_start_time = Some(parts.clock.now());
    parts.listeners.post(|l| l.on_batch_started(&info));
    let mut cause = None;
    match batch.jobs {
        Err(failure) => {
            info.failure = Some(failure.message);
            cause = failure.cause;
        }
        Ok(jobs) => {
            for (origin, job) in jobs {
                let outcome = catch_panic(|| parts.env.run(job));
                let failure = match outcome {
                    Ok(Ok(())) => continue,
                    Ok(Err(error)) => (error.to_string(), Some(error)),
                    Err(Unwound::Panic(panic)) => {
                        (format!("a user function panicked: {panic}"), None)
                    }
                    Err(Unwound::Failed(error)) => {
                        (error.to_string(), Some(Arc::new(error) as Cause))
                    }
                };
                info.failure = Some(format!("{}: {}", describe(parts, origin), failure.0));
                cause = failure.1;
                break;
            }
        }
    }
    info.processing_end_time = Some(parts.clock.now());
    (info, cause)
}

/// Names the source of a job in messages.
fn describe(parts: &SchedulerParts, origin: JobOrigin) -> String {
    match origin {
        JobOrigin::Output(index) => format!(
            "output operation {} ({})",
            index + 1,
            parts.graph.outputs[index].describe()
        ),
        JobOrigin::State(index) => {
            let state = &parts.graph.stateful[index];
            match state.stream() {
                Some(stream) => format!("the state update of {}", stream.meta().describe()),
                None => format!("the state update of {}", state.operation()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_recovered() {
        let err = catch_panic(|| panic!("boom {}", 42)).unwrap_err();
        assert!(matches!(err, Unwound::Panic(message) if message == "boom 42"));
        let err = catch_panic(|| std::panic::panic_any(7u8)).unwrap_err();
        assert!(matches!(err, Unwound::Panic(message) if message == "(a panic without a message)"));
    }

    #[test]
    fn a_failed_computation_keeps_its_error() {
        let failure = Error::Kafka {
            action: "read offsets 0..3 of t-0".into(),
            reason: "the broker is gone".into(),
        };
        // As `error::fail_computation` fails a partition's computation.
        let err = catch_panic(|| std::panic::resume_unwind(Box::new(failure))).unwrap_err();
        let Unwound::Failed(error) = err else {
            panic!("not a failure: {err:?}");
        };
        assert_eq!(
            error.to_string(),
            "Kafka: cannot read offsets 0..3 of t-0: the broker is gone"
        );
    }

    #[test]
    fn waiting_for_a_batch_reports_failure() {
        let progress = Progress::default();
        progress.fail(Error::BatchFailed {
            time: Time::from_millis(1000),
            message: "x".into(),
            cause: None,
        });
        let err = progress
            .wait_batch(Time::from_millis(2000), Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(err, Error::BatchFailed { .. }));
    }

    #[test]
    fn waiting_for_a_batch_times_out() {
        let progress = Progress::default();
        let err = progress
            .wait_batch(Time::from_millis(1000), Duration::from_millis(1))
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }));
        assert!(!progress.wait_terminated(Some(Duration::from_millis(1))));
    }
}
