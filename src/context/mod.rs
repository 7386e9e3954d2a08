//! [`StreamingContext`]: the entry point. It holds the batch interval, the thread pool,
//! the clock and the stream graph; it creates input streams, starts and stops the
//! scheduler, and reports how the stream ended.
//!
//! This file is the public face; the rest is one concept per file: `builder` (a
//! configuration and a clock, and building a context), `shared` (the state behind every handle, and what
//! the status page reads), `lifecycle` (start, stop, what exists while running) and
//! `recovery` (`get_or_create`, restoring a checkpoint).

mod builder;
mod lifecycle;
mod recovery;
mod shared;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use self::lifecycle::Lifecycle;
use self::shared::ContextShared;
use crate::checkpoint::CheckpointDir;
use crate::config::StreamingConfig;
use crate::dstream::{DStream, StateSize};
use crate::error::{Error, Result};
use crate::rdd::{Data, Rdd};
use crate::scheduler::{BatchInfo, StreamingListener};
use crate::source::{
    BinaryRecords, FileInput, FileStreamOptions, InputSource, InputStream, NoCompute, QueueInput,
    RateInput, RddQueue, Receiver, ReceiverInput, ReceiverStatus, SocketInput, TextLines,
};
use crate::time::Time;

pub use self::builder::StreamingContextBuilder;
/// Kept here too, for programs that name this path.
pub use crate::config::Parallelism;

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
    /// and batch interval, on the system clock: Spark's
    /// `new StreamingContext(master, appName, batchDuration)`, a
    /// [`from_config`](Self::from_config) with only those two settings made.
    ///
    /// ```
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// assert!(StreamingContext::new("local[2]", Duration::ZERO).is_err());
    /// ```
    pub fn new(master: &str, batch_interval: Duration) -> Result<StreamingContext> {
        StreamingContext::from_config(StreamingConfig {
            batch_interval,
            parallelism: Parallelism::parse(master)?,
            ..StreamingConfig::default()
        })
    }

    /// A new context's configuration and clock (tests give a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn builder() -> StreamingContextBuilder {
        StreamingContextBuilder::new()
    }

    /// A context with every setting from `config`, on the system clock.
    ///
    /// ```
    /// use dstream::{StreamingConfig, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let config = StreamingConfig {
    ///     batch_interval: Duration::from_millis(500),
    ///     backpressure: true,
    ///     ..StreamingConfig::default()
    /// };
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
        self.shared.streams.timeline().batch_interval()
    }

    /// The number of worker threads, and the default number of partitions.
    pub fn parallelism(&self) -> usize {
        self.shared.streams.parallelism()
    }

    /// Records accepted so far by the input streams: by receivers (socket, user
    /// receivers) as they arrive, by file and rate streams as batches are cut. Queue
    /// streams are not counted.
    pub fn records_received(&self) -> u64 {
        self.shared.received.get()
    }

    /// Records that receivers hold now and no batch has taken yet, over all receivers.
    /// With [`max_buffered_records`](StreamingConfig::max_buffered_records),
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
        Rdd::from_vec_in(data, partitions, self.shared.streams.env().clone())
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
        if !Arc::ptr_eq(first.registry(), &self.shared.streams) {
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
            &self.shared.streams,
            kind,
            self.batch_interval(),
            Vec::new(),
            NoCompute,
        );
        let input = InputStream::new(
            stream.node().clone(),
            source,
            self.shared.streams.env().clone(),
        );
        self.shared.inner().inputs.push(Arc::new(input));
        stream
    }

    /// Where events for the context's listeners go.
    #[cfg(feature = "kafka")]
    pub(crate) fn listener_bus(&self) -> Arc<crate::scheduler::ListenerBus> {
        self.shared.listeners.clone()
    }

    /// What counts the records the inputs accept.
    #[cfg(feature = "kafka")]
    pub(crate) fn received_counter(&self) -> Arc<crate::source::ReceivedCounter> {
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
    /// what its windows need, as Spark's `ssc.remember`. Default: only what windows
    /// need. Call it before [`start`](Self::start).
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

    /// Registers a listener for batch events.
    pub fn add_listener(&self, listener: impl StreamingListener) {
        self.shared.listeners.add(Arc::new(listener));
    }

    /// Where the live status page listens, when the configuration's
    /// [`status_page`](StreamingConfig::status_page) asked for one: the port it bound,
    /// where port 0 asked for any free one. The page is served from the start until
    /// the context stops.
    ///
    /// ```
    /// use dstream::{StreamingConfig, StreamingContext};
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let config = StreamingConfig {
    ///     batch_interval: Duration::from_secs(1),
    ///     status_page: Some("127.0.0.1:0".parse().unwrap()),
    ///     ..StreamingConfig::default()
    /// };
    /// let ssc = StreamingContext::from_config(config.clone())?;
    /// let address = ssc.status_page_address().unwrap();
    /// assert!(address.ip().is_loopback() && address.port() != 0);
    /// // The same port again is a clear error.
    /// let taken = StreamingConfig { status_page: Some(address), ..config };
    /// assert!(StreamingContext::from_config(taken).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn status_page_address(&self) -> Option<SocketAddr> {
        self.shared.status_page_address
    }

    /// The status of every receiver (socket and user receivers), in the order the
    /// streams were created: connected, retrying (with the last error) or stopped.
    /// Empty before the start.
    pub fn receiver_statuses(&self) -> Vec<ReceiverStatus> {
        self.shared.receivers.snapshot()
    }

    /// The number of keys each stateful stream (`update_state_by_key`,
    /// `map_with_state`, `reduce_by_key_and_window` with an inverse function) holds
    /// after its last batch. Cheap: the stores keep the count.
    pub fn state_sizes(&self) -> Vec<StateSize> {
        self.shared.streams.state_sizes()
    }

    /// Starts receiving and processing. Fails if there is no output operation, if the
    /// context was started or stopped before, or if an input cannot start (for example
    /// a directory that does not exist).
    pub fn start(&self) -> Result<()> {
        self.shared.start()
    }

    /// Blocks until the context stops; returns the error that stopped it, if any (a
    /// failed batch names its time and the panic message). With
    /// [`continue_after_failed_batch`](StreamingConfig::continue_after_failed_batch),
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
