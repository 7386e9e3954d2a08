//! The end-to-end word-count benchmark: dstream measured with the same harness, corpus
//! and socket server as Spark Streaming and Flink.
//!
//! It speaks the protocol of the benchmark harness's `bench.sh` (engine `dstream`) and
//! has the semantics of its reference program, `spark/JavaWordCountBench.java`:
//!
//! ```text
//! wordcount_bench WORKLOAD MODE EXPECTED_WORDS [key=value ...]
//! ```
//!
//! * WORKLOAD
//!   * `W1`: `lines -> flat_map(split ' ') -> (word, 1) -> reduce_by_key(+) ->
//!     foreach_rdd(sum of the counts)`;
//!   * `W2`: `... -> update_state_by_key(running count)` with a checkpoint directory
//!     `-> foreach_rdd(number of keys, sum of the counts)`; the run ends when the
//!     state's sum equals EXPECTED_WORDS;
//!   * `W3`: `... -> reduce_by_key_and_window_inv_with(+, -, window 4 batches, slide 1
//!     batch, `threads` partitions, keep count != 0)` with a checkpoint directory
//!     `-> foreach_rdd(sum of the window)`. The words counted per batch are recovered
//!     from the window sums, `b_t = W_t - W_{t-1} + b_{t-4}`, so the pipeline does no
//!     extra work.
//! * MODE
//!   * `socket`: `socket_text_stream(host, port)`; the harness serves the corpus with
//!     `nc -lk` and keeps the connection open;
//!   * `files`: `text_file_stream(watch)`; a feeder thread hard-links (or copies) the
//!     pre-split part files of `parts` into `watch`, `filesPerBatch` per batch interval;
//!   * `queue`: the corpus is loaded into `chunks` `Rdd`s before the start (not timed)
//!     and fed one per batch by `queue_stream`; W1 only, as in the Java program.
//! * keys: `host=127.0.0.1 port=9999 batch_ms=1000 threads=2 backpressure=false
//!   max_rate=N max_buffered=N checkpoint=DIR expectedDistinct=N corpus=FILE (queue)
//!   chunks=40 (queue) parts=DIR watch=DIR filesPerBatch=2 (files) timeout_s=900`.
//!   `batchMs`, `timeoutS`, `spark.streaming.backpressure.enabled` and
//!   `spark.streaming.receiver.maxRate` are accepted as in the Java program; an unknown
//!   key is an error.
//!
//! The program stops itself once the words counted reach EXPECTED_WORDS and prints one
//! line on stdout, `RESULT key=value ...`, with the figures of the harness's "Metrics"
//! section, taken from a [`StreamingListener`]:
//!
//! * `wall_s`: the processing end of the batch in which the count reached the total,
//!   minus the start of the interval of the first non-empty batch (its batch time minus
//!   the batch interval); `words_per_s = words / wall_s`;
//! * `proc_*`, `sched_*`: processing and scheduling delays of the batches from the
//!   first non-empty one to the last; `busy_words_per_s = words / sum(processing)`;
//! * `ok=true` only if exactly EXPECTED_WORDS were counted (an overshoot is `ok=false`);
//! * extras: `startup_to_first_batch_s` (start of that first interval minus the call
//!   to `start`: negative when data arrived in the very first batch, whose interval
//!   began before the program started) and `wall_since_start_s` (`wall_s` counted
//!   from the later of the two), `threads`, `batch_ms`; per-batch figures go to stderr.
//!
//! Then it stops the context without waiting for queued batches and exits with 0
//! (`ok=true`) or 1. What `bench.sh` runs for one repetition, from the project root:
//!
//! ```text
//! cargo build --release --example wordcount_bench
//! nc -lk 127.0.0.1 9999 < c4m.txt &
//! target/release/examples/wordcount_bench W1 socket 40000830 port=9999 \
//!     checkpoint=/tmp/ckpt expectedDistinct=100000 corpus=c4m.txt
//! ```
//!
//! or simply `bench.sh dstream W1 socket c4m.txt 3` with `DSTREAM_BIN` pointing at the
//! binary. The word split is deliberately the plain user code
//! (`line.split(' ').map(String::from)`): the benchmark measures what users get.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail, ensure};
use dstream::{
    BatchInfo, DStream, Data, Parallelism, Rdd, RddQueue, StreamingContext, StreamingListener, Time,
};

// The word count makes tens of millions of small Strings; with glibc's allocator the
// program spends more time in malloc and free than in the engine. mimalloc is what a
// throughput-minded program would link, so the benchmark does (see the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The keys the program understands (aliases of the Java program included).
const KNOWN_KEYS: &[&str] = &[
    "host",
    "port",
    "batch_ms",
    "batchMs",
    "threads",
    "checkpoint",
    "expectedDistinct",
    "corpus",
    "chunks",
    "parts",
    "watch",
    "filesPerBatch",
    "timeout_s",
    "timeoutS",
    "backpressure",
    "spark.streaming.backpressure.enabled",
    "max_rate",
    "spark.streaming.receiver.maxRate",
    "max_buffered",
];

/// The window of W3, in batch intervals; it slides by one batch interval.
const WINDOW_BATCHES: usize = 4;

/// How long to wait for the listener to report the last batch after the count is reached.
const LAST_BATCH_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// Stateless `reduce_by_key`.
    W1,
    /// `update_state_by_key`.
    W2,
    /// Incremental window with an inverse function.
    W3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Socket,
    Files,
    Queue,
}

impl FromStr for Workload {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "W1" => Ok(Workload::W1),
            "W2" => Ok(Workload::W2),
            "W3" => Ok(Workload::W3),
            _ => bail!("unknown workload {s:?} (W1, W2 or W3)"),
        }
    }
}

impl FromStr for Mode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "socket" => Ok(Mode::Socket),
            "files" => Ok(Mode::Files),
            "queue" => Ok(Mode::Queue),
            _ => bail!("unknown mode {s:?} (socket, files or queue)"),
        }
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Socket => "socket",
            Mode::Files => "files",
            Mode::Queue => "queue",
        }
    }
}

/// The command line: three positional arguments and `key=value` options.
struct Args {
    workload: Workload,
    mode: Mode,
    expected: i64,
    options: BTreeMap<String, String>,
}

impl Args {
    fn parse(args: &[String]) -> anyhow::Result<Args> {
        let [workload, mode, expected, options @ ..] = args else {
            bail!(
                "usage: wordcount_bench W1|W2|W3 socket|files|queue EXPECTED_WORDS [key=value ...]"
            );
        };
        let mut parsed = BTreeMap::new();
        for option in options {
            let (key, value) = option
                .split_once('=')
                .with_context(|| format!("option {option:?} is not key=value"))?;
            ensure!(
                KNOWN_KEYS.contains(&key),
                "unknown option {key:?} (known: {})",
                KNOWN_KEYS.join(", ")
            );
            parsed.insert(key.to_string(), value.to_string());
        }
        let (workload, mode) = (workload.parse()?, mode.parse()?);
        ensure!(
            workload == Workload::W1 || mode != Mode::Queue,
            "queue mode supports W1 only, as in the Java program (a queue stream cannot be \
             checkpointed, and W2 and W3 need checkpointing)"
        );
        Ok(Args {
            workload,
            mode,
            expected: expected
                .parse()
                .with_context(|| format!("EXPECTED_WORDS {expected:?} is not a number"))?,
            options: parsed,
        })
    }

    /// The value of the first of `keys` that was given.
    fn raw<'k>(&self, keys: &[&'k str]) -> Option<(&'k str, &str)> {
        keys.iter()
            .find_map(|&k| self.options.get(k).map(|v| (k, v.as_str())))
    }

    /// The parsed value of the first of `keys` that was given, else `default`.
    fn get<T: FromStr>(&self, keys: &[&str], default: T) -> anyhow::Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.raw(keys) {
            Some((key, value)) => value
                .parse()
                .with_context(|| format!("option {key}={value:?} is not valid")),
            None => Ok(default),
        }
    }

    /// A path that must be given; `needed_by` names what requires it.
    fn path(&self, key: &str, needed_by: &str) -> anyhow::Result<PathBuf> {
        self.raw(&[key])
            .map(|(_, value)| PathBuf::from(value))
            .with_context(|| format!("{key}=... is required by {needed_by}"))
    }
}

/// What the output operation counted, shared with `main`.
struct Counter {
    expected: i64,
    counts: Mutex<Counts>,
    reached: Condvar,
}

#[derive(Default)]
struct Counts {
    /// Words counted so far.
    total: i64,
    /// Words counted per batch, for the batches that counted any.
    by_batch: BTreeMap<Time, i64>,
    /// The batch in which `total` reached the expected count.
    reached_at: Option<Time>,
    /// How far `total` went past the expected count in that batch.
    overshoot: i64,
    /// W2: the state after the last batch.
    state_keys: u64,
    state_sum: i64,
    /// W3: the window sums W_t and the recovered per-batch counts b_t.
    window_sums: Vec<i64>,
    per_batch: Vec<i64>,
    window_keys: u64,
    last_window: Option<Time>,
    /// W3: batches that did not follow the previous one by one batch interval.
    window_gaps: u64,
}

impl Counter {
    fn new(expected: i64) -> Arc<Counter> {
        Arc::new(Counter {
            expected,
            counts: Mutex::new(Counts::default()),
            reached: Condvar::new(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// W1: the batch at `time` counted `words` words.
    fn record(&self, time: Time, words: i64) {
        let mut counts = self.counts();
        self.add(&mut counts, time, words);
    }

    /// W2: the state now holds `keys` keys whose counts sum to `sum`.
    fn record_state(&self, time: Time, keys: u64, sum: i64) {
        let mut counts = self.counts();
        let words = sum - counts.state_sum;
        counts.state_keys = keys;
        counts.state_sum = sum;
        self.add(&mut counts, time, words);
    }

    /// W3: the window ending at `time` holds `keys` keys whose counts sum to `sum`.
    /// The batch's own count is `b_t = W_t - W_{t-1} + b_{t-4}`.
    fn record_window(&self, time: Time, batch: Duration, keys: u64, sum: i64) {
        let mut counts = self.counts();
        if let Some(last) = counts.last_window
            && last + batch != time
        {
            counts.window_gaps += 1;
            eprintln!("warning: window at {time} does not follow the one at {last}");
        }
        counts.last_window = Some(time);
        let t = counts.window_sums.len();
        let previous = t.checked_sub(1).map_or(0, |i| counts.window_sums[i]);
        let leaving = t
            .checked_sub(WINDOW_BATCHES)
            .map_or(0, |i| counts.per_batch[i]);
        let words = sum - previous + leaving;
        counts.window_sums.push(sum);
        counts.per_batch.push(words);
        counts.window_keys = keys;
        self.add(&mut counts, time, words);
    }

    /// Adds the words counted in the batch at `time`; wakes `main` when the total
    /// reaches the expected count.
    fn add(&self, counts: &mut Counts, time: Time, words: i64) {
        if words != 0 {
            counts.by_batch.insert(time, words);
        }
        counts.total += words;
        if counts.total >= self.expected && counts.reached_at.is_none() {
            counts.reached_at = Some(time);
            counts.overshoot = counts.total - self.expected;
            self.reached.notify_all();
        }
    }

    /// Waits until the expected count is reached; the batch in which it was, if so.
    fn wait_reached(&self, timeout: Duration) -> Option<Time> {
        let counts = self.counts();
        let (counts, _) = self
            .reached
            .wait_timeout_while(counts, timeout, |c| c.reached_at.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        counts.reached_at
    }
}

/// Keeps the figures of every completed batch.
#[derive(Default)]
struct BatchLog {
    batches: Mutex<BTreeMap<Time, BatchInfo>>,
    completed: Condvar,
}

impl BatchLog {
    fn batches(&self) -> MutexGuard<'_, BTreeMap<Time, BatchInfo>> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the batch at `time` has completed.
    fn wait_for(&self, time: Time, timeout: Duration) -> bool {
        let batches = self.batches();
        let (batches, _) = self
            .completed
            .wait_timeout_while(batches, timeout, |b| !b.contains_key(&time))
            .unwrap_or_else(PoisonError::into_inner);
        batches.contains_key(&time)
    }
}

impl StreamingListener for BatchLog {
    fn on_batch_completed(&self, batch: &BatchInfo) {
        self.batches().insert(batch.batch_time, batch.clone());
        self.completed.notify_all();
    }
}

/// The number of pairs and the sum of their counts.
fn keys_and_sum<K: Data, V: Data + Into<i64>>(rdd: &Rdd<(K, V)>) -> (u64, i64) {
    rdd.map(|(_, count)| (1u64, count.into()))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// The feeder of files mode: hard-links (or copies) the part files into the watched
/// directory, `per_batch` of them per batch interval, after two intervals.
struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    parts: Vec<PathBuf>,
    watch: PathBuf,
    per_batch: usize,
    interval: Duration,
}

impl Feeder {
    fn new(
        parts: &Path,
        watch: &Path,
        per_batch: usize,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        ensure!(per_batch > 0, "filesPerBatch must be positive");
        std::fs::create_dir_all(watch)
            .with_context(|| format!("cannot create {}", watch.display()))?;
        let mut files = Vec::new();
        for entry in
            std::fs::read_dir(parts).with_context(|| format!("cannot list {}", parts.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        ensure!(!files.is_empty(), "no part files in {}", parts.display());
        Ok(Feeder {
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            parts: files,
            watch: watch.to_path_buf(),
            per_batch,
            interval,
        })
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let (stop, parts, watch) = (self.stop.clone(), self.parts.clone(), self.watch.clone());
        let (per_batch, interval) = (self.per_batch, self.interval);
        let sleep = move |d: Duration| {
            let until = Instant::now() + d;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
            }
            !stop.load(Ordering::Relaxed)
        };
        let thread = std::thread::Builder::new()
            .name("feeder".into())
            .spawn(move || {
                if !sleep(2 * interval) {
                    return;
                }
                for (i, part) in parts.iter().enumerate() {
                    if let Err(e) = place(part, &watch) {
                        eprintln!("feeder: {e:#}");
                        return;
                    }
                    if (i + 1) % per_batch == 0 && !sleep(interval) {
                        return;
                    }
                }
            })?;
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Makes `part` appear in `watch` at once (a hard link, else a copy under a hidden
/// name renamed into place) with the modification time now.
fn place(part: &Path, watch: &Path) -> anyhow::Result<()> {
    let name = part.file_name().context("part file without a name")?;
    let target = watch.join(name);
    if std::fs::hard_link(part, &target).is_err() {
        let hidden = watch.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(part, &hidden)
            .with_context(|| format!("cannot copy {} to {}", part.display(), hidden.display()))?;
        std::fs::rename(&hidden, &target)?;
    }
    std::fs::File::options()
        .write(true)
        .open(&target)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .with_context(|| format!("cannot touch {}", target.display()))?;
    Ok(())
}

/// Queue mode: the corpus as `chunks` `Rdd`s of lines, in the context's partitions.
fn load_queue(
    ssc: &StreamingContext,
    corpus: &Path,
    chunks: usize,
) -> anyhow::Result<RddQueue<String>> {
    ensure!(chunks > 0, "chunks must be positive");
    let text = std::fs::read_to_string(corpus)
        .with_context(|| format!("cannot read {}", corpus.display()))?;
    let lines: Vec<String> = text.lines().map(String::from).collect();
    drop(text);
    let queue = RddQueue::new();
    let per_chunk = lines.len().div_ceil(chunks).max(1);
    let mut lines = lines.into_iter();
    loop {
        let chunk: Vec<String> = lines.by_ref().take(per_chunk).collect();
        if chunk.is_empty() {
            break;
        }
        queue.push(ssc.parallelize(chunk));
    }
    Ok(queue)
}

fn main() -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = Args::parse(&argv)?;
    let batch_ms: u64 = args.get(&["batch_ms", "batchMs"], 1000)?;
    let threads: usize = args.get(&["threads"], 2)?;
    let timeout = Duration::from_secs(args.get(&["timeout_s", "timeoutS"], 900)?);
    let expected_distinct: i64 = args.get(&["expectedDistinct"], -1)?;
    let batch = Duration::from_millis(batch_ms);

    // backpressure=true: the PID rate estimator; max_rate=N: at most N lines/s;
    // max_buffered=N: receivers hold at most N lines no batch has taken (0: no bound).
    let backpressure: bool = args.get(
        &["backpressure", "spark.streaming.backpressure.enabled"],
        false,
    )?;
    let max_rate: u64 = args.get(&["max_rate", "spark.streaming.receiver.maxRate"], 0)?;
    let max_buffered: usize = args.get(&["max_buffered"], 0)?;
    let mut builder = StreamingContext::builder()
        .batch_interval(batch)
        .parallelism(Parallelism::threads_exactly(threads))
        .backpressure(backpressure);
    if max_rate > 0 {
        builder = builder.receiver_max_rate(max_rate);
    }
    if max_buffered > 0 {
        builder = builder.max_buffered_records(max_buffered);
    }
    let ssc = builder.build()?;
    if args.workload != Workload::W1 {
        ssc.checkpoint(args.path("checkpoint", "W2 and W3")?)?;
    }

    // ---- input
    let mut feeder = None;
    let mut queue_load_ms = None;
    let lines: DStream<String> = match args.mode {
        Mode::Socket => {
            let host = args.raw(&["host"]).map_or("127.0.0.1", |(_, h)| h);
            ssc.socket_text_stream(host, args.get(&["port"], 9999)?)
        }
        Mode::Files => {
            let watch = args.path("watch", "files mode")?;
            let per_batch = args.get(&["filesPerBatch"], 2)?;
            feeder = Some(Feeder::new(
                &args.path("parts", "files mode")?,
                &watch,
                per_batch,
                batch,
            )?);
            ssc.text_file_stream(&watch)
        }
        Mode::Queue => {
            let started = Instant::now();
            let queue = load_queue(
                &ssc,
                &args.path("corpus", "queue mode")?,
                args.get(&["chunks"], 40)?,
            )?;
            queue_load_ms = Some(started.elapsed().as_millis());
            ssc.queue_stream(&queue, true, None)
        }
    };

    // ---- pipeline: the classic word count, as users write it
    let counter = Counter::new(args.expected);
    let pairs = lines
        .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|word| (word, 1));
    match args.workload {
        Workload::W1 => {
            let counts = pairs.reduce_by_key(|a, b| a + b);
            let counter = counter.clone();
            counts.foreach_rdd(move |rdd, time| {
                let words = rdd.map(|(_, count)| i64::from(count)).fold(0, |a, b| a + b);
                counter.record(time, words);
            })?;
        }
        Workload::W2 => {
            let state = pairs.update_state_by_key(|new: &[i32], running: Option<i64>| {
                Some(running.unwrap_or(0) + new.iter().map(|&v| i64::from(v)).sum::<i64>())
            });
            let counter = counter.clone();
            state.foreach_rdd(move |rdd, time| {
                let (keys, sum) = keys_and_sum(&rdd);
                counter.record_state(time, keys, sum);
            })?;
        }
        Workload::W3 => {
            let windowed = pairs.reduce_by_key_and_window_inv_with(
                |a, b| a + b,
                |a, b| a - b,
                batch * WINDOW_BATCHES as u32,
                batch,
                threads,
                |_, count| *count != 0,
            )?;
            let counter = counter.clone();
            windowed.foreach_rdd(move |rdd, time| {
                let (keys, sum) = keys_and_sum(&rdd);
                counter.record_window(time, batch, keys, sum);
            })?;
        }
    }
    let log = Arc::new(BatchLog::default());
    ssc.add_listener(log.clone());

    // ---- run until the count is reached
    let start = Time::now();
    ssc.start()?;
    if let Some(feeder) = feeder.as_mut() {
        feeder.start()?;
    }
    let reached = counter.wait_reached(timeout);
    if let Some(last) = reached
        && !log.wait_for(last, LAST_BATCH_WAIT)
    {
        eprintln!("warning: the listener did not report batch {last} within {LAST_BATCH_WAIT:?}");
    }

    // ---- report
    let counts = counter.counts();
    let batches = log.batches();
    let report = Report::new(&args, &counts, &batches, reached, batch, start);
    let mut line = report.line(&args, threads, batch_ms);
    if args.workload == Workload::W2 {
        let _ = write!(
            line,
            " state_keys={} state_sum={}",
            counts.state_keys, counts.state_sum
        );
        if expected_distinct >= 0 {
            let ok = i64::try_from(counts.state_keys).is_ok_and(|k| k == expected_distinct);
            let _ = write!(line, " distinct_ok={ok}");
        }
    }
    if args.workload == Workload::W3 {
        let _ = write!(
            line,
            " window_keys_last={} window_gaps={}",
            counts.window_keys, counts.window_gaps
        );
    }
    if let Some(ms) = queue_load_ms {
        let _ = write!(line, " queue_load_ms={ms}");
    }
    println!("{line}");
    // Per-batch figures on stderr (bench.sh keeps it in its `.err` file).
    for (time, info) in batches.iter() {
        eprintln!(
            "batch {} records={} words={} sched_ms={} proc_ms={}",
            time.as_millis(),
            info.num_records,
            counts.by_batch.get(time).copied().unwrap_or(0),
            info.scheduling_delay().map_or(0, |d| d.as_millis()),
            info.processing_delay().map_or(0, |d| d.as_millis()),
        );
    }
    let ok = report.ok;
    drop((counts, batches));

    drop(feeder);
    ssc.stop(false)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The figures of the `RESULT` line.
struct Report {
    ok: bool,
    records: u64,
    words: i64,
    batches: usize,
    wall_s: f64,
    proc_ms: Vec<u64>,
    sched_ms: Vec<u64>,
    startup_s: f64,
    /// `wall_s` counted from the start of the context when the first non-empty batch's
    /// interval began before it.
    wall_since_start_s: f64,
}

impl Report {
    fn new(
        args: &Args,
        counts: &Counts,
        infos: &BTreeMap<Time, BatchInfo>,
        reached: Option<Time>,
        batch: Duration,
        start: Time,
    ) -> Report {
        // The batches from the first that counted words to the one that reached the
        // total (or the last one seen, when it was not reached).
        let first = counts
            .by_batch
            .iter()
            .find(|(_, words)| **words > 0)
            .map(|(time, _)| *time);
        let last = reached.or_else(|| infos.keys().next_back().copied());
        let measured: Vec<&BatchInfo> = match (first, last) {
            (Some(first), Some(last)) => infos.range(first..=last).map(|(_, i)| i).collect(),
            _ => Vec::new(),
        };
        let millis = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
        let interval_start = first.map(|f| f.as_millis() - batch.as_millis() as i64);
        let end = last
            .and_then(|l| infos.get(&l))
            .and_then(|i| i.processing_end_time)
            .unwrap_or_else(Time::now);
        Report {
            ok: reached.is_some() && counts.overshoot == 0 && counts.total == args.expected,
            records: measured.iter().map(|i| i.num_records).sum(),
            words: counts.total,
            batches: measured.len(),
            wall_s: interval_start.map_or(0.0, |s| (end.as_millis() - s) as f64 / 1000.0),
            proc_ms: measured
                .iter()
                .map(|i| millis(i.processing_delay()))
                .collect(),
            sched_ms: measured
                .iter()
                .map(|i| millis(i.scheduling_delay()))
                .collect(),
            startup_s: interval_start.map_or(0.0, |s| (s - start.as_millis()) as f64 / 1000.0),
            wall_since_start_s: interval_start.map_or(0.0, |s| {
                (end.as_millis() - s.max(start.as_millis())) as f64 / 1000.0
            }),
        }
    }

    fn line(&self, args: &Args, threads: usize, batch_ms: u64) -> String {
        let mean = |xs: &[u64]| {
            if xs.is_empty() {
                0.0
            } else {
                xs.iter().sum::<u64>() as f64 / xs.len() as f64
            }
        };
        let mut sorted = self.proc_ms.clone();
        sorted.sort_unstable();
        let busy_ms: u64 = self.proc_ms.iter().sum();
        let per_s = |ms: f64| {
            if ms > 0.0 {
                self.words as f64 * 1000.0 / ms
            } else {
                0.0
            }
        };
        let lines = match args.mode {
            Mode::Queue => "n/a".to_string(),
            Mode::Socket | Mode::Files => self.records.to_string(),
        };
        format!(
            "RESULT engine=dstream workload={:?} mode={} ok={} lines={lines} words={} expected={} \
             batches={} wall_s={:.3} words_per_s={:.0} proc_mean_ms={:.1} proc_median_ms={} \
             proc_max_ms={} sched_mean_ms={:.1} sched_max_ms={} busy_words_per_s={:.0} \
             startup_to_first_batch_s={:.1} wall_since_start_s={:.3} threads={threads} \
             batch_ms={batch_ms}",
            args.workload,
            args.mode.name(),
            self.ok,
            self.words,
            args.expected,
            self.batches,
            self.wall_s,
            per_s(self.wall_s * 1000.0),
            mean(&self.proc_ms),
            sorted.get(sorted.len() / 2).copied().unwrap_or(0),
            sorted.last().copied().unwrap_or(0),
            mean(&self.sched_ms),
            self.sched_ms.iter().max().copied().unwrap_or(0),
            per_s(busy_ms as f64),
            self.startup_s,
            self.wall_since_start_s,
        )
    }
}
