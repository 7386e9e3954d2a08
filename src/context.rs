//! [`StreamingContext`]: the entry point. It holds the batch interval, the thread pool,
//! the clock and the stream graph; it creates input streams, starts and stops the
//! scheduler, and reports how the stream ended.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use crate::checkpoint::recovery::{Stored, check_state_types, match_streams};
use crate::checkpoint::{Checkpoint, CheckpointDir, PendingBatch};
use crate::config::StreamingConfig;
use crate::dstream::store::StatefulStream;
use crate::dstream::{DStream, GraphNode, OutputOperation, StateSize, Timeline};
use crate::error::{Error, Result};
use crate::rdd::{Data, ExecEnv, Rdd};
use crate::scheduler::{
    BatchHistory, BatchInfo, BatchLog, CheckpointPlan, JobGraph, ListenerBus, Progress, QueueDepth,
    Scheduler, SchedulerParts, StreamingListener, identity,
};
use crate::source::{
    BinaryRecords, BufferSettings, BufferedRecords, FileInput, FileStreamOptions, InputHandle,
    InputSource, InputStream, NoCompute, QueueInput, RateController, RateInput, RateLimiter,
    RddQueue, ReceivedCounter, Receiver, ReceiverInput, ReceiverRegistry, ReceiverStatus,
    SocketInput, SourceContext, TextLines,
};
use crate::status_page;
use crate::time::{Clock, SystemClock, Time};

/// Kept here too, where the builder takes it, for programs that name this path.
pub use crate::config::Parallelism;

/// Checkpoints are written at least this far apart by default, as in Spark.
const MIN_DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

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
                env: ExecEnv::with_pool(Arc::new(pool)),
                clock: self.clock,
                timeline: Arc::new(Timeline::new(config.batch_interval)),
                listeners,
                history,
                receivers: Arc::new(ReceiverRegistry::default()),
                progress: Arc::new(Progress::default()),
                received: Arc::new(ReceivedCounter::default()),
                buffered: Arc::new(BufferedRecords::default()),
                scheduler_threads: OnceLock::new(),
                inner: Mutex::new(Inner {
                    lifecycle: Lifecycle::Initialized,
                    next_stream_id: 0,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    stateful: Vec::new(),
                    eager: Vec::new(),
                    checkpoint_dir,
                    stop_on_signal: config.stop_on_signal,
                    remember: config.remember,
                    recovery: None,
                    running: None,
                    status_pages: Vec::new(),
                }),
                config,
            }),
        })
    }
}

/// The entry point of a streaming program: creates input streams, then runs them
/// batch by batch once started. Clones are handles to the same context, so one can
/// be given to another thread (a Ctrl-C handler, say) to stop it.
///
/// Several contexts may run in one process.
///
/// ```no_run
/// use dstream::StreamingContext;
/// use std::time::Duration;
///
/// fn main() -> dstream::Result<()> {
///     let ssc = StreamingContext::new("local[*]", Duration::from_secs(10))?;
///     let lines = ssc.socket_text_stream("localhost", 9999);
///     let word_counts = lines
///         .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
///         .map(|word| (word, 1))
///         .reduce_by_key(|x, y| x + y);
///     word_counts.pprint()?;
///     ssc.start()?;
///     ssc.await_termination()
/// }
/// ```
#[derive(Clone)]
pub struct StreamingContext {
    shared: Arc<ContextShared>,
}

impl std::fmt::Debug for StreamingContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingContext")
            .field("batch_interval", &self.batch_interval())
            .field("parallelism", &self.parallelism())
            .finish_non_exhaustive()
    }
}

impl StreamingContext {
    /// A context with the given parallelism (`"local[*]"`, `"local[N]"`, or a number)
    /// and batch interval, on the system clock.
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// assert!(StreamingContext::new("local[2]", Duration::ZERO).is_err());
    /// ```
    pub fn new(master: &str, batch_interval: Duration) -> Result<StreamingContext> {
        StreamingContext::builder()
            .master(master)
            .batch_interval(batch_interval)
            .build()
    }

    /// Settings for a new context.
    pub fn builder() -> StreamingContextBuilder {
        StreamingContextBuilder {
            config: StreamingConfig::default(),
            master_error: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// A context with every setting from `config`, on the system clock.
    ///
    /// ```
    /// use dstream::{StreamingConfig, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let mut config = StreamingConfig::default();
    /// config.batch_interval = Duration::from_millis(500);
    /// config.backpressure = true;
    /// let ssc = StreamingContext::from_config(config)?;
    /// assert_eq!(ssc.batch_interval(), Duration::from_millis(500));
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_config(config: StreamingConfig) -> Result<StreamingContext> {
        StreamingContext::builder().config(config).build()
    }

    /// The settings this context was built with.
    pub fn config(&self) -> &StreamingConfig {
        &self.shared.config
    }

    /// The batch interval.
    pub fn batch_interval(&self) -> Duration {
        self.shared.timeline.batch_interval()
    }

    /// The number of worker threads, and the default number of partitions.
    pub fn parallelism(&self) -> usize {
        self.shared.parallelism()
    }

    /// Records accepted so far by the input streams: by receivers (socket, user
    /// receivers) as they arrive, by file and rate streams as batches are cut. Queue
    /// streams are not counted.
    pub fn records_received(&self) -> u64 {
        self.shared.received.get()
    }

    /// Records that receivers hold now and no batch has taken yet, over all receivers.
    /// With [`max_buffered_records`](StreamingContextBuilder::max_buffered_records),
    /// each receiver holds at most that many.
    pub fn records_buffered(&self) -> usize {
        self.shared.buffered.now()
    }

    /// The most records receivers held at once since the context was made (see
    /// [`records_buffered`](Self::records_buffered)): what a bound on buffered records
    /// has to allow for.
    pub fn peak_records_buffered(&self) -> usize {
        self.shared.buffered.peak()
    }

    /// Waits until the inputs have accepted at least `at_least` records (see
    /// [`records_received`](Self::records_received)) and returns the count. With a
    /// [`ManualClock`](crate::ManualClock), this is how a test knows that data sent to
    /// a socket has arrived before it advances the clock.
    pub fn await_records_received(&self, at_least: u64, timeout: Duration) -> Result<u64> {
        self.shared
            .received
            .wait_for(at_least, timeout)
            .ok_or_else(|| Error::Timeout {
                what: format!(
                    "{at_least} records to be received (have {})",
                    self.shared.received.get()
                ),
                after: timeout,
            })
    }

    /// An `Rdd` of `data` on this context's pool, in as many partitions as there are
    /// threads (fewer for small data): for [`RddQueue`]s and joins with static data.
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// assert_eq!(ssc.parallelize(vec![1, 2, 3]).count(), 3);
    /// ```
    pub fn parallelize<T: Data>(&self, data: Vec<T>) -> Rdd<T> {
        let partitions = self.parallelism().min(data.len()).max(1);
        Rdd::from_vec_in(data, partitions, self.shared.env.clone())
    }

    /// Lines of text from a TCP server at `host:port`, such as `nc -lk 9999`.
    ///
    /// The connection is made when the context starts. If it is refused or the server
    /// closes it, the receiver logs that and reconnects after the restart delay; the
    /// stream keeps running. Lines end at `\n` (a `\r` before it is dropped); a line
    /// that is not valid UTF-8 is decoded lossily and counted in a warning.
    ///
    /// A rate limit, backpressure or a bound on buffered records make the receiver stop
    /// reading while it may not store more; the server is then held back by TCP.
    pub fn socket_text_stream(&self, host: &str, port: u16) -> DStream<String> {
        let (settings, controller) = self.shared.receiver_settings();
        self.input(
            "socket_text_stream",
            SocketInput::new(host, port, settings, controller),
        )
    }

    /// The lines of each new file that appears in `directory` after start, each file
    /// read once, oldest modification time first. Names starting with `.` or `_` are
    /// ignored: write a file under such a name and rename it into place, so that it is
    /// never read half-written. Unreadable files are logged and skipped.
    ///
    /// `directory` may be a pattern: `*` and `?` in its components match directories,
    /// so `logs/*/` watches every directory in `logs`, those created later too
    /// (wildcards do not match names starting with `.` or `_`). A pattern that matches
    /// nothing is reported once in the log and watched on.
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// let lines = ssc.text_file_stream("incoming");
    /// let all_days = ssc.text_file_stream("logs/2024-*/");
    /// # let _ = (lines, all_days);
    /// ```
    pub fn text_file_stream(&self, directory: impl AsRef<Path>) -> DStream<String> {
        self.text_file_stream_with(directory, FileStreamOptions::new())
    }

    /// [`text_file_stream`](Self::text_file_stream) with options: with
    /// `new_files_only(false)`, the files already in the directory at start are read in
    /// the first batch. Files read are recorded in checkpoints, so none is read again
    /// after a restart.
    ///
    /// ```
    /// use dstream::{FileStreamOptions, StreamingContext};
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// let everything = FileStreamOptions::new().new_files_only(false);
    /// let lines = ssc.text_file_stream_with("incoming", everything);
    /// # let _ = lines;
    /// ```
    pub fn text_file_stream_with(
        &self,
        directory: impl AsRef<Path>,
        options: FileStreamOptions,
    ) -> DStream<String> {
        let received = self.shared.received.clone();
        self.input(
            "text_file_stream",
            FileInput::new(directory.as_ref(), TextLines, options, received),
        )
    }

    /// The fixed-length records of each new file in `directory`, `record_length` bytes
    /// each, as Spark's `binaryRecordsStream`. Files are found as by
    /// [`text_file_stream`](Self::text_file_stream) (patterns included). A file whose
    /// length is not a multiple of `record_length` is logged and skipped whole. A
    /// `record_length` of 0 is an [`Error::InvalidRecordLength`].
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// // Readings of 8 bytes: a big-endian u32 sensor id and an f32 value.
    /// let readings = ssc.binary_records_stream("incoming", 8)?.map(|record| {
    ///     let id = u32::from_be_bytes(record[..4].try_into().unwrap());
    ///     let value = f32::from_be_bytes(record[4..].try_into().unwrap());
    ///     (id, value)
    /// });
    /// # let _ = readings;
    /// # Ok(())
    /// # }
    /// ```
    pub fn binary_records_stream(
        &self,
        directory: impl AsRef<Path>,
        record_length: usize,
    ) -> Result<DStream<Vec<u8>>> {
        self.binary_records_stream_with(directory, record_length, FileStreamOptions::new())
    }

    /// [`binary_records_stream`](Self::binary_records_stream) with options (see
    /// [`text_file_stream_with`](Self::text_file_stream_with)).
    ///
    /// ```
    /// use dstream::{FileStreamOptions, StreamingContext};
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// let everything = FileStreamOptions::new().new_files_only(false);
    /// let records = ssc.binary_records_stream_with("incoming", 16, everything).unwrap();
    /// # let _ = records;
    /// ```
    pub fn binary_records_stream_with(
        &self,
        directory: impl AsRef<Path>,
        record_length: usize,
        options: FileStreamOptions,
    ) -> Result<DStream<Vec<u8>>> {
        let directory = directory.as_ref();
        let format = BinaryRecords::new(directory, record_length)?;
        let received = self.shared.received.clone();
        Ok(self.input(
            "binary_records_stream",
            FileInput::new(directory, format, options, received),
        ))
    }

    /// Batches from a queue of `Rdd`s: one per batch (`one_at_a_time`) or all queued
    /// at once; `default` (or an empty `Rdd`) when the queue is empty.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// let queue = RddQueue::new();
    /// queue.push(ssc.parallelize(vec![1, 2, 3]));
    /// let numbers = ssc.queue_stream(&queue, true, None);
    /// # let _ = numbers;
    /// ```
    pub fn queue_stream<T: Data>(
        &self,
        queue: &RddQueue<T>,
        one_at_a_time: bool,
        default: Option<Rdd<T>>,
    ) -> DStream<T> {
        self.input(
            "queue_stream",
            QueueInput::new(queue.clone(), one_at_a_time, default),
        )
    }

    /// Generated `(timestamp, value)` rows, `rows_per_second` of them per second:
    /// value `i` is stamped `i / rows_per_second` seconds after the interval before the
    /// first batch. Each batch holds the rows stamped in its interval.
    pub fn rate_stream(&self, rows_per_second: u64) -> DStream<(Time, u64)> {
        let received = self.shared.received.clone();
        self.input("rate_stream", RateInput::new(rows_per_second, received))
    }

    /// Records from a user-defined [`Receiver`], run on a thread of its own.
    /// Its stores wait while it is over its rate or its buffer is full (see
    /// [`ReceiverSink::store`](crate::ReceiverSink::store)).
    pub fn receiver_stream<R: Receiver>(&self, receiver: R) -> DStream<R::Item> {
        let (settings, controller) = self.shared.receiver_settings();
        self.input(
            "receiver_stream",
            ReceiverInput::new(receiver, settings, controller),
        )
    }

    /// The union of many streams of this context, batch by batch.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let streams: Vec<_> = (0..3).map(|_| ssc.queue_stream(&RddQueue::<u8>::new(), true, None)).collect();
    /// let all = ssc.union(&streams)?;
    /// # let _ = all;
    /// # Ok(())
    /// # }
    /// ```
    pub fn union<T: Data>(&self, streams: &[DStream<T>]) -> Result<DStream<T>> {
        let (first, rest) = self.own_streams("union", streams)?;
        DStream::union_all(first, rest)
    }

    /// The first of `streams` and the rest, if there is one and it is this context's
    /// (`operation` checks that the others fit with it).
    fn own_streams<'a, T: Data>(
        &self,
        operation: &'static str,
        streams: &'a [DStream<T>],
    ) -> Result<(&'a DStream<T>, &'a [DStream<T>])> {
        let Some((first, rest)) = streams.split_first() else {
            return Err(Error::IncompatibleStreams {
                operation,
                reason: "no streams were given".into(),
            });
        };
        if !Arc::ptr_eq(first.context(), &self.shared) {
            return Err(Error::IncompatibleStreams {
                operation,
                reason: "the streams belong to another streaming context".into(),
            });
        }
        Ok((first, rest))
    }

    /// A stream made by `f` from the `Rdd`s of all `streams` (in the order given) at
    /// each batch time, as Spark's `ssc.transform(dstreams, f)`. The streams must
    /// belong to this context and slide alike.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let streams: Vec<_> = (0..3).map(|_| ssc.queue_stream(&RddQueue::<u32>::new(), true, None)).collect();
    /// // The elements of the first stream that none of the others has.
    /// let only_first = ssc.transform(&streams, |rdds, _time| {
    ///     let others = rdds[1].union(&rdds[2]).map(|x| (x, ()));
    ///     rdds[0].map(|x| (x, ())).left_outer_join(&others)
    ///         .filter(|(_, (_, other))| other.is_none())
    ///         .keys()
    /// })?;
    /// # let _ = only_first;
    /// # Ok(())
    /// # }
    /// ```
    pub fn transform<T: Data, U: Data>(
        &self,
        streams: &[DStream<T>],
        f: impl Fn(Vec<Rdd<T>>, Time) -> Rdd<U> + Send + Sync + 'static,
    ) -> Result<DStream<U>> {
        let (first, rest) = self.own_streams("transform", streams)?;
        DStream::transform_all(first, rest, f)
    }

    pub(crate) fn input<T: Data>(
        &self,
        kind: &'static str,
        source: impl InputSource<T>,
    ) -> DStream<T> {
        let stream = DStream::create(
            &self.shared,
            kind,
            self.batch_interval(),
            Vec::new(),
            NoCompute,
        );
        let input = InputStream::new(stream.node().clone(), source, self.shared.env.clone());
        self.shared.inner().inputs.push(Arc::new(input));
        stream
    }

    /// What counts the records the inputs accept.
    #[cfg(feature = "kafka")]
    pub(crate) fn received_counter(&self) -> Arc<ReceivedCounter> {
        self.shared.received.clone()
    }

    /// Saves checkpoints in `directory`: the state of stateful streams and the
    /// positions of the inputs, every checkpoint interval. Stateful streams and
    /// incremental windows need it. The directory is created if needed; `start`
    /// fails if it cannot be written.
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(10)).unwrap();
    /// ssc.checkpoint("checkpoint").unwrap();
    /// ```
    pub fn checkpoint(&self, directory: impl AsRef<Path>) -> Result<()> {
        let mut inner = self.shared.inner();
        if inner.lifecycle != Lifecycle::Initialized {
            return Err(Error::AddedAfterStart {
                operation: "checkpoint",
            });
        }
        inner.checkpoint_dir = Some(CheckpointDir::new(directory.as_ref()));
        Ok(())
    }

    /// Makes every stream keep its `Rdd`s for `duration` after their batch, on top of
    /// what its windows need, as Spark's `ssc.remember` (the builder's
    /// [`remember`](StreamingContextBuilder::remember), for a context already built).
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// ssc.remember(Duration::from_secs(60)).unwrap();
    /// ```
    pub fn remember(&self, duration: Duration) -> Result<()> {
        let mut inner = self.shared.inner();
        if inner.lifecycle != Lifecycle::Initialized {
            return Err(Error::AddedAfterStart {
                operation: "remember",
            });
        }
        inner.remember = Some(duration);
        Ok(())
    }

    /// Builds the program with `create` and, if `directory` holds a checkpoint,
    /// recovers it: the state of every stateful stream and the position of every
    /// replayable input are restored, and batches that were generated but not
    /// finished run again from their recorded input (the same files, the same rows),
    /// so nothing is lost and nothing counted twice.
    ///
    /// Rust closures cannot be saved, so `create` always runs; its inputs and stateful
    /// streams are matched with the checkpoint's by name (see [`DStream::name`]) or
    /// else by the order they were defined in. A mismatch is an error naming the first
    /// stream that differs. Operations without state may change freely between runs.
    /// A stateful stream must also store the same types as the checkpoint recorded
    /// for it ([`Error::StateTypeMismatch`] names the stream and both types; see
    /// [`DStream::accept_checkpointed_types`] for a renamed type). Checkpoints written
    /// before dstream recorded types are recovered unchecked, with a warning.
    /// A [`ManualClock`](crate::ManualClock) is moved to the last batch the checkpoint
    /// knows of.
    ///
    /// ```no_run
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    ///
    /// fn main() -> dstream::Result<()> {
    ///     let ssc = StreamingContext::get_or_create("checkpoint", || {
    ///         let ssc = StreamingContext::new("local[*]", Duration::from_secs(10))?;
    ///         let counts = ssc
    ///             .text_file_stream("incoming")
    ///             .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
    ///             .map(|word| (word, 1))
    ///             .update_state_by_key(|new: &[i32], total: Option<i32>| {
    ///                 Some(new.iter().sum::<i32>() + total.unwrap_or(0))
    ///             });
    ///         counts.pprint()?;
    ///         Ok(ssc)
    ///     })?;
    ///     ssc.start()?;
    ///     ssc.await_termination()
    /// }
    /// ```
    pub fn get_or_create(
        directory: impl AsRef<Path>,
        create: impl FnOnce() -> Result<StreamingContext>,
    ) -> Result<StreamingContext> {
        let directory = directory.as_ref();
        let saved = CheckpointDir::new(directory).load_latest()?;
        let ssc = create()?;
        ssc.checkpoint(directory)?;
        if let Some(saved) = saved {
            ssc.shared.recover(directory, saved)?;
        }
        Ok(ssc)
    }

    /// Makes SIGINT (Ctrl-C) and SIGTERM stop the context gracefully once it has
    /// started: receivers stop accepting, everything already accepted is processed and
    /// output, a last checkpoint is written, and
    /// [`await_termination`](Self::await_termination) returns `Ok`, so `main` can
    /// return and the process exit with status 0. A second signal during that stop
    /// exits the process at once with status 128 + the signal's number (130 for
    /// SIGINT, 143 for SIGTERM). Call it before [`start`](Self::start).
    ///
    /// The handlers stay installed for the life of the process: once the context has
    /// stopped these signals no longer end it by themselves.
    ///
    /// ```no_run
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    ///
    /// fn main() -> dstream::Result<()> {
    ///     let ssc = StreamingContext::new("local[*]", Duration::from_secs(1))?;
    ///     ssc.socket_text_stream("localhost", 9999).pprint()?;
    ///     ssc.stop_on_signal()?;
    ///     ssc.start()?;
    ///     ssc.await_termination() // returns Ok after Ctrl-C, once all is processed
    /// }
    /// ```
    pub fn stop_on_signal(&self) -> Result<()> {
        let mut inner = self.shared.inner();
        if inner.lifecycle != Lifecycle::Initialized {
            return Err(Error::AddedAfterStart {
                operation: "stop_on_signal",
            });
        }
        inner.stop_on_signal = true;
        Ok(())
    }

    /// Registers a listener for batch events.
    pub fn add_listener(&self, listener: impl StreamingListener) {
        self.shared.listeners.add(Arc::new(listener));
    }

    /// Serves a live status page, like the Streaming tab of Spark's UI, at `address`
    /// (`"127.0.0.1:4040"`; a port alone, `"4040"`, means `127.0.0.1:4040`; port 0
    /// takes any free port) and returns the address it listens on. Off unless called.
    ///
    /// The page shows uptime, totals, timelines and histograms of input rate and
    /// delays, the active and recent batches, each receiver's status and each
    /// stateful stream's number of keys, refreshing itself every second; its JSON is
    /// at `/api/v1/summary`, `/api/v1/batches`, `/api/v1/receivers` and
    /// `/api/v1/streams` (fields in the README). It runs on the context's network
    /// runtime and reads only what listeners and the state stores keep anyway, so it
    /// does not slow batches.
    ///
    /// Call it before or after [`start`](Self::start): the address is taken at once,
    /// and the page is served from the start until the context stops. If the port is
    /// taken, this fails with [`Error::StatusPageAddress`] rather than moving to
    /// another port, so that the URL is always the one asked for. The URL is logged.
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let address = ssc.status_page("127.0.0.1:0")?;
    /// assert!(address.ip().is_loopback() && address.port() != 0);
    /// // The same port again is a clear error.
    /// assert!(ssc.status_page(&address.to_string()).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn status_page(&self, address: &str) -> Result<SocketAddr> {
        let listener = status_page::bind(address)?;
        let local = status_page::local_address(&listener)?;
        let mut inner = self.shared.inner();
        match (inner.lifecycle, &inner.running) {
            (Lifecycle::Initialized, _) => inner.status_pages.push(listener),
            (Lifecycle::Active, Some(running)) => status_page::serve(
                listener,
                running.tokio.handle(),
                Arc::downgrade(&self.shared),
            )?,
            _ => return Err(Error::AlreadyStopped),
        }
        tracing::info!("status page: http://{local}/");
        Ok(local)
    }

    /// The status of every receiver (socket and user receivers), in the order the
    /// streams were created: connected, retrying (with the last error) or stopped.
    /// Empty before the start.
    pub fn receiver_statuses(&self) -> Vec<ReceiverStatus> {
        self.shared.receiver_statuses()
    }

    /// The number of keys each stateful stream (`update_state_by_key`,
    /// `map_with_state`, `reduce_by_key_and_window` with an inverse function) holds
    /// after its last batch. Cheap: the stores keep the count.
    pub fn state_sizes(&self) -> Vec<StateSize> {
        self.shared.state_sizes()
    }

    /// Starts receiving and processing. Fails if there is no output operation, if the
    /// context was started or stopped before, or if an input cannot start (for example
    /// a directory that does not exist).
    pub fn start(&self) -> Result<()> {
        // The page a configuration asks for (`DSTREAM_STATUS_PAGE`) opens with the start.
        let configured = self
            .shared
            .config
            .status_page
            .filter(|_| matches!(self.shared.inner().lifecycle, Lifecycle::Initialized));
        if let Some(address) = configured {
            self.status_page(&address.to_string())?;
        }
        self.shared.start()
    }

    /// Blocks until the context stops; returns the error that stopped it, if any (a
    /// failed batch names its time and the panic message). With
    /// [`continue_after_failed_batch`](StreamingContextBuilder::continue_after_failed_batch),
    /// a failed batch ends the wait at once with its error while batches go on.
    pub fn await_termination(&self) -> Result<()> {
        self.shared.check_started()?;
        self.shared.progress.wait_terminated(None);
        self.shared.termination_result()
    }

    /// Like [`await_termination`](Self::await_termination), giving up after `timeout`:
    /// `Ok(true)` if the context stopped, `Ok(false)` if it still runs.
    pub fn await_termination_or_timeout(&self, timeout: Duration) -> Result<bool> {
        self.shared.check_started()?;
        if !self.shared.progress.wait_terminated(Some(timeout)) {
            return Ok(false);
        }
        self.shared.termination_result().map(|()| true)
    }

    /// Blocks until the batch at `time` has completed (or `timeout` passes) and
    /// returns its figures. With a [`ManualClock`](crate::ManualClock), advance the
    /// clock to `time` first. Fails if the batch failed or the context stopped first.
    pub fn await_batch(&self, time: Time, timeout: Duration) -> Result<BatchInfo> {
        self.shared.progress.wait_batch(time, timeout)
    }

    /// Stops the context. With `stop_gracefully`, the receivers stop first and
    /// everything already received is processed before this returns (if that takes
    /// longer than the stop timeout, batches still queued then are dropped); otherwise
    /// the batch running now finishes and queued batches are dropped. Either way this
    /// returns within the stop timeout: a batch still stuck then (in a user function, or
    /// an input that blocks) is left running in the background, with a warning. Stopping
    /// a stopped context does nothing. Called from inside a batch (an output function),
    /// the stop proceeds in the background and this returns at once.
    pub fn stop(&self, stop_gracefully: bool) -> Result<()> {
        ContextShared::stop(&self.shared, stop_gracefully);
        Ok(())
    }
}

/// Where a context is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Initialized,
    Active,
    Stopping,
    Stopped,
}

/// The parts of a context shared by its handles, its streams and its threads.
pub(crate) struct ContextShared {
    env: Arc<ExecEnv>,
    clock: Arc<dyn Clock>,
    timeline: Arc<Timeline>,
    config: StreamingConfig,
    listeners: Arc<ListenerBus>,
    /// Recent batches, for the status page.
    history: Arc<BatchHistory>,
    receivers: Arc<ReceiverRegistry>,
    progress: Arc<Progress>,
    received: Arc<ReceivedCounter>,
    buffered: Arc<BufferedRecords>,
    /// The generator's and executor's thread ids, once started.
    scheduler_threads: OnceLock<Vec<ThreadId>>,
    inner: Mutex<Inner>,
}

struct Inner {
    lifecycle: Lifecycle,
    next_stream_id: usize,
    inputs: Vec<Arc<dyn InputHandle>>,
    outputs: Vec<Arc<dyn OutputOperation>>,
    stateful: Vec<Arc<dyn StatefulStream>>,
    eager: Vec<Arc<dyn GraphNode>>,
    checkpoint_dir: Option<CheckpointDir>,
    stop_on_signal: bool,
    /// Set by [`StreamingContext::remember`]; the configuration's otherwise.
    remember: Option<Duration>,
    recovery: Option<Recovery>,
    running: Option<Running>,
    /// Status page listeners bound before the start, served from the start on.
    status_pages: Vec<std::net::TcpListener>,
}

/// Where a recovered context resumes.
struct Recovery {
    zero: Time,
    generated: Time,
    pending: Vec<PendingBatch>,
}

/// What exists only while the context runs.
struct Running {
    scheduler: Scheduler,
    tokio: NetworkRuntime,
    graph: Arc<JobGraph>,
}

/// The tokio runtime of the network receivers and the status page. It shuts down
/// without waiting wherever it is dropped: the last handle to a context may be let go
/// on one of the runtime's own threads (by a status page request), where a plain drop
/// of a runtime panics.
struct NetworkRuntime {
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

    fn handle(&self) -> &tokio::runtime::Handle {
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
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn timeline(&self) -> &Arc<Timeline> {
        &self.timeline
    }

    /// What a new receiver's buffer needs: its bounds, its rate limit and, with
    /// backpressure, the controller that sets its rate.
    fn receiver_settings(&self) -> (BufferSettings, Option<Arc<RateController>>) {
        let config = &self.config;
        let controller = config
            .backpressure
            .then(|| Arc::new(RateController::new(config.batch_interval)));
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

    pub(crate) fn env(&self) -> &Arc<ExecEnv> {
        &self.env
    }

    pub(crate) fn history(&self) -> &BatchHistory {
        &self.history
    }

    pub(crate) fn receiver_statuses(&self) -> Vec<ReceiverStatus> {
        self.receivers.snapshot()
    }

    pub(crate) fn state_sizes(&self) -> Vec<StateSize> {
        let stateful = self.inner().stateful.clone();
        stateful
            .iter()
            .filter_map(|state| {
                let stream = state.stream()?;
                let meta = stream.meta();
                Some(StateSize {
                    stream_id: meta.id,
                    stream: meta.describe(),
                    operation: state.operation(),
                    keys: state.num_keys(),
                })
            })
            .collect()
    }

    /// Where the context is in its life, in words: `initialized`, `active`,
    /// `stopping` or `stopped`.
    pub(crate) fn status_name(&self) -> &'static str {
        match self.inner().lifecycle {
            Lifecycle::Initialized => "initialized",
            Lifecycle::Active => "active",
            Lifecycle::Stopping => "stopping",
            Lifecycle::Stopped => "stopped",
        }
    }

    /// Registers `state` as the state of `stream`, to be advanced every batch and
    /// checkpointed.
    pub(crate) fn register_stateful(
        &self,
        state: Arc<dyn StatefulStream>,
        stream: Arc<dyn GraphNode>,
    ) {
        state.attach(stream);
        self.inner().stateful.push(state);
    }

    /// Has the stream computed every batch, for a window that reads it later.
    pub(crate) fn register_eager(&self, node: Arc<dyn GraphNode>) {
        let mut inner = self.inner();
        let id = node.meta().id;
        if !inner.eager.iter().any(|n| n.meta().id == id) {
            inner.eager.push(node);
        }
    }

    /// Sets the checkpoint interval of the stateful stream `id`; `false` if the stream
    /// has no state.
    pub(crate) fn set_checkpoint_interval(&self, id: usize, interval: Duration) -> bool {
        let inner = self.inner();
        let state = inner
            .stateful
            .iter()
            .find(|s| s.stream().is_some_and(|n| n.meta().id == id));
        match state {
            Some(state) => {
                state.set_checkpoint_interval(interval);
                true
            }
            None => false,
        }
    }

    /// Lets the stateful stream `id` recover a checkpoint that recorded other types;
    /// `false` if the stream has no state.
    pub(crate) fn accept_checkpointed_types(&self, id: usize) -> bool {
        let inner = self.inner();
        let state = inner
            .stateful
            .iter()
            .find(|s| s.stream().is_some_and(|n| n.meta().id == id));
        match state {
            Some(state) => {
                state.accept_any_types();
                true
            }
            None => false,
        }
    }

    /// Restores a checkpoint into the streams `create` built (see
    /// [`StreamingContext::get_or_create`]).
    fn recover(&self, directory: &Path, saved: Checkpoint) -> Result<()> {
        let mismatch = |difference: String| Error::CheckpointMismatch {
            dir: directory.to_path_buf(),
            difference,
        };
        let batch_ms = crate::time::duration_millis(self.timeline.batch_interval());
        if saved.batch_interval_ms != batch_ms {
            return Err(mismatch(format!(
                "it was written with a batch interval of {} ms, and this program uses {batch_ms} ms",
                saved.batch_interval_ms
            )));
        }
        let mut inner = self.inner();
        let current_inputs: Vec<_> = inner.inputs.iter().map(|i| identity(&*i.node())).collect();
        let saved_inputs: Vec<_> = saved.inputs.iter().map(|(id, _)| id.clone()).collect();
        let inputs = match_streams(directory, "input stream", &saved_inputs, &current_inputs)?;
        let current_states: Vec<_> = inner
            .stateful
            .iter()
            .filter_map(|s| s.stream())
            .map(|n| identity(&*n))
            .collect();
        let saved_states: Vec<_> = saved.states.iter().map(|(id, _)| id.clone()).collect();
        let states = match_streams(directory, "stateful stream", &saved_states, &current_states)?;
        let matched: Vec<Stored> = states
            .iter()
            .map(|&index| Stored {
                stream: current_states[index].clone(),
                types: inner.stateful[index].stored_types(),
                accepts_any: inner.stateful[index].accepts_any_types(),
            })
            .collect();
        check_state_types(directory, saved.state_types.as_ref(), &matched)?;

        for ((_, bytes), &index) in saved.states.iter().zip(&states) {
            inner.stateful[index].restore(bytes, saved.completed)?;
        }
        for ((_, position), &index) in saved.inputs.iter().zip(&inputs) {
            if let Some(position) = position {
                inner.inputs[index].restore(position)?;
            }
        }
        let unfinished = saved.pending.len();
        let pending = saved
            .pending
            .into_iter()
            .map(|batch| {
                let mut reordered = vec![None; inner.inputs.len()];
                for (replay, &index) in batch.inputs.into_iter().zip(&inputs) {
                    reordered[index] = replay;
                }
                PendingBatch {
                    time: batch.time,
                    inputs: reordered,
                }
            })
            .collect();
        tracing::info!(
            "recovered the checkpoint of batch {} from {} ({unfinished} unfinished batch(es) will run again)",
            saved.completed,
            directory.display(),
        );
        inner.recovery = Some(Recovery {
            zero: saved.zero,
            generated: saved.generated,
            pending,
        });
        Ok(())
    }

    pub(crate) fn parallelism(&self) -> usize {
        self.env.parallelism()
    }

    pub(crate) fn next_stream_id(&self) -> usize {
        let mut inner = self.inner();
        let id = inner.next_stream_id;
        inner.next_stream_id += 1;
        id
    }

    pub(crate) fn register_output(
        &self,
        kind: &'static str,
        output: Arc<dyn OutputOperation>,
    ) -> Result<()> {
        let mut inner = self.inner();
        if inner.lifecycle != Lifecycle::Initialized {
            return Err(Error::AddedAfterStart { operation: kind });
        }
        inner.outputs.push(output);
        Ok(())
    }

    fn check_started(&self) -> Result<()> {
        match self.inner().lifecycle {
            Lifecycle::Initialized => Err(Error::NotStarted),
            _ => Ok(()),
        }
    }

    fn termination_result(&self) -> Result<()> {
        match self.progress.failure() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn start(self: &Arc<Self>) -> Result<()> {
        let mut inner = self.inner();
        match inner.lifecycle {
            Lifecycle::Initialized => {}
            Lifecycle::Active | Lifecycle::Stopping => return Err(Error::AlreadyStarted),
            Lifecycle::Stopped => return Err(Error::AlreadyStopped),
        }
        if inner.outputs.is_empty() {
            return Err(Error::NoOutputOperations);
        }
        let checkpoint_dir = inner.checkpoint_dir.clone();
        match (&checkpoint_dir, inner.stateful.first()) {
            (None, Some(state)) => {
                return Err(Error::CheckpointRequired {
                    operation: state
                        .stream()
                        .map_or_else(|| state.operation().to_string(), |s| s.meta().describe()),
                });
            }
            (Some(dir), _) => dir.ensure_writable()?,
            (None, None) => {}
        }
        let graph = Arc::new(JobGraph {
            inputs: inner.inputs.clone(),
            nodes: reachable_streams(&inner.outputs, &inner.inputs, &inner.stateful, &inner.eager),
            outputs: inner.outputs.clone(),
            eager: inner.eager.clone(),
            stateful: inner.stateful.clone(),
        });
        let batch_interval = self.timeline.batch_interval();
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
        self.timeline.start_at(zero + batch_interval);
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
        for listener in inner.status_pages.drain(..) {
            if let Err(e) = status_page::serve(listener, tokio.handle(), Arc::downgrade(self)) {
                tracing::error!("{e}");
            }
        }
        if inner.stop_on_signal
            && let Err(e) = crate::signals::stop_on_signal(tokio.handle(), Arc::downgrade(self))
        {
            drop(tokio);
            self.progress.terminate();
            return Err(e);
        }
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
                self.progress.terminate();
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
            env: self.env.clone(),
            listeners: self.listeners.clone(),
            progress: self.progress.clone(),
            batch_interval,
            replay,
            first_batch,
            checkpoint,
            hold_cuts_while_queued: self.config.max_buffered_records.is_some()
                || self.config.backpressure,
            remember: inner.remember.unwrap_or_default(),
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
                self.progress.terminate();
                return Err(e);
            }
        };
        let _ = self.scheduler_threads.set(scheduler.thread_ids().to_vec());

        inner.running = Some(Running {
            scheduler,
            tokio,
            graph,
        });
        inner.lifecycle = Lifecycle::Active;
        drop(inner);
        self.listeners.post(|l| l.on_streaming_started(first_run));
        Ok(())
    }

    /// Stops the context (see [`StreamingContext::stop`]).
    pub(crate) fn stop(self: &Arc<Self>, graceful: bool) {
        let running = {
            let mut inner = self.inner();
            match inner.lifecycle {
                Lifecycle::Initialized => {
                    inner.lifecycle = Lifecycle::Stopped;
                    self.progress.terminate();
                    return;
                }
                Lifecycle::Stopped => return,
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

    /// Whether the caller is one of the threads a stop must wait for.
    fn on_own_thread(&self) -> bool {
        let current = std::thread::current().id();
        self.env.is_worker_thread()
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
