//! The end-to-end word-count benchmark: dstream measured with the same harness, corpus
//! and socket server as Spark Streaming and Flink.
//!
//! It speaks the protocol of the benchmark harness's `bench.sh` (engine `dstream`) and
//! has the semantics of its reference program, `spark/JavaWordCountBench.java`:
//!
//! ```text
//! wordcount_bench WORKLOAD MODE [EXPECTED_WORDS] [key=value ...]
//! ```
//!
//! On its own (no EXPECTED_WORDS, no `port=`), it generates a corpus in memory
//! (`corpus.rs`: Zipf words over a 100k vocabulary, 5-15 words per line, fixed seed)
//! or reads `corpus=FILE`, feeds it itself and checks the count against the corpus:
//! `cargo run --release --example wordcount_bench -- W1 socket` from the repository
//! root (this program is an example of the workspace's benchmark package,
//! `dstream-benches` in `benches/`, a default member; `-p dstream-benches` names it
//! from anywhere in the workspace).
//!
//! * WORKLOAD
//!   * `W1`: `lines -> flat_map_into(split ' ') -> (word, 1) -> reduce_by_key(+) ->
//!     foreach_rdd(sum of the counts)`, the word split as the README writes it
//!     (`split=collect`: `flat_map(|line| ...collect::<Vec<_>>())` instead);
//!   * `W2`: `... -> update_state_by_key(running count)` with a checkpoint directory
//!     `-> foreach_rdd(number of keys, sum of the counts)`; the run ends when the
//!     state's sum equals the corpus's words; `variant=map_with_state` keeps the
//!     running count with `map_with_state` and reads its `state_snapshots`;
//!   * `W3`: `... -> partitioned(threads).reduce_by_key_and_window_inv_with(+, -,
//!     window 4 batches, slide 1 batch, keep count != 0)` with a checkpoint directory
//!     `-> foreach_rdd(sum of the window)`. The words counted per batch are recovered
//!     from the window sums, `b_t = W_t - W_{t-1} + b_{t-4}`, so the pipeline does no
//!     extra work.
//! * MODE
//!   * `socket`: `socket_text_stream(host, port)`; the harness serves the corpus with
//!     `nc -lk` and keeps the connection open; without `port=` the program serves it
//!     the same way from a thread of its own;
//!   * `files`: `text_file_stream(watch)`; a feeder thread hard-links (or copies) the
//!     pre-split part files of `parts` into `watch`, `filesPerBatch` per batch interval
//!     (without `parts=`, the corpus is split into 80 files in a temporary directory);
//!   * `queue`: the corpus is loaded into `chunks` `Rdd`s before the start (not timed)
//!     and fed one per batch by `queue_stream`; W1 only, as in the Java program. The
//!     engine-only figure is `busy_words_per_s`, since the queue sets the pace;
//!   * `latency`: W1 over a socket fed at `rate` words per second for `duration_s`,
//!     each line stamped with its send time; reports every line's latency from its
//!     stamp to the end of its batch's output (`latency_p50_ms`, `latency_p99_ms`,
//!     `latency_max_ms`, after `warmup_s`);
//!   * `overload`: W1 over a socket that the program floods itself, from a thread, with
//!     the line `the quick brown fox` as fast as the socket takes it (what `yes "the
//!     quick brown fox" | nc -lk PORT` does), for `duration_s` (default 60), to see what
//!     an input faster than the pipeline does to the scheduling delay and the memory
//!     under `backpressure=`, `max_buffered=` and `max_rate=`. It samples the process's
//!     resident memory every second (`VmRSS` of `/proc/self/status`: Linux only, 0
//!     elsewhere) and prints its own `RESULT` line (`overload.rs` describes it); it
//!     ends after `duration_s` without waiting for queued batches, with 0. `rss_limit_mb`
//!     (default half the machine's memory) ends it early, and says so, before an
//!     unbounded run exhausts the machine.
//! * `keys=compact` makes the words `CompactString`s (inline up to 24 bytes, no heap
//!   allocation) instead of `String`s, in any workload: what the README recommends for
//!   short keys.
//! * keys: `host=127.0.0.1 port=9999 batch_ms=1000 threads=2 backpressure=false
//!   max_rate=N max_buffered=N checkpoint=DIR expectedDistinct=N corpus=FILE
//!   lines=1000000 seed=42 (generator) chunks=10 (queue) parts=DIR watch=DIR
//!   filesPerBatch=8 (files) variant=... (W2) rate=1000000 duration_s=10 warmup_s=1
//!   (latency; overload: duration_s=60) rss_limit_mb=N (overload) keys=string
//!   status_page=ADDR timeout_s=900 split=into wal=true`. `batchMs`, `timeoutS`,
//!   `spark.streaming.backpressure.enabled`, `spark.streaming.receiver.maxRate` and
//!   `spark.streaming.receiver.writeAheadLog.enable` are accepted as in Spark; an
//!   unknown key is an error. `wal=false` turns the receivers' write-ahead log off (it
//!   is on whenever there is a checkpoint directory: W2 and W3).
//!
//! The program stops itself once the words counted reach the corpus's and prints one
//! line on stdout, `RESULT key=value ...`, with the figures of the harness's "Metrics"
//! section, taken from a [`StreamingListener`]:
//!
//! * `wall_s`: the processing end of the batch in which the count reached the total,
//!   minus the start of the interval of the first non-empty batch (its batch time minus
//!   the batch interval); `words_per_s = words / wall_s`;
//! * `proc_*`, `sched_*`: processing and scheduling delays of the batches from the
//!   first non-empty one to the last; `busy_words_per_s = words / sum(processing)`;
//! * `ok=true` only if exactly the corpus's words were counted (an overshoot is
//!   `ok=false`); `mb_per_s` is the corpus's bytes over `wall_s`;
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
use compact_str::CompactString;
use dstream::{
    BatchInfo, DStream, Data, Key, Parallelism, Rdd, RddQueue, State, StateData, StateSpec,
    StreamingConfig, StreamingContext, StreamingListener, Time,
};

mod corpus;
mod latency;
mod overload;

use corpus::{Corpus, CorpusServer, ScratchDir};
use latency::{LatencyLog, PacedServer};

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
    "lines",
    "seed",
    "variant",
    "rate",
    "duration_s",
    "warmup_s",
    "keys",
    "status_page",
    "spark.streaming.backpressure.enabled",
    "max_rate",
    "spark.streaming.receiver.maxRate",
    "max_buffered",
    "rss_limit_mb",
    "split",
    "wal",
    "spark.streaming.receiver.writeAheadLog.enable",
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
    /// Socket input sent at a fixed rate, each line stamped with its send time.
    Latency,
    /// Socket input sent as fast as the socket takes it, for a fixed time.
    Overload,
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
            "latency" => Ok(Mode::Latency),
            "overload" => Ok(Mode::Overload),
            _ => bail!("unknown mode {s:?} (socket, files, queue, latency or overload)"),
        }
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Socket => "socket",
            Mode::Files => "files",
            Mode::Queue => "queue",
            Mode::Latency => "latency",
            Mode::Overload => "overload",
        }
    }
}

/// The command line: two or three positional arguments and `key=value` options.
struct Args {
    workload: Workload,
    mode: Mode,
    /// The corpus's word count when given on the command line (as the harness does);
    /// otherwise counted from the corpus.
    expected: Option<i64>,
    options: BTreeMap<String, String>,
}

impl Args {
    fn parse(args: &[String]) -> anyhow::Result<Args> {
        let usage = "usage: wordcount_bench W1|W2|W3 socket|files|queue|latency|overload \
                     [EXPECTED_WORDS] [key=value ...]";
        let [workload, mode, rest @ ..] = args else {
            bail!("{usage}");
        };
        let (expected, options) = match rest {
            [first, options @ ..] if !first.contains('=') => (
                Some(
                    first
                        .parse()
                        .with_context(|| format!("EXPECTED_WORDS {first:?} is not a number"))?,
                ),
                options,
            ),
            options => (None, options),
        };
        let mut parsed = BTreeMap::new();
        for option in options {
            let (key, value) = option
                .split_once('=')
                .with_context(|| format!("option {option:?} is not key=value ({usage})"))?;
            ensure!(
                KNOWN_KEYS.contains(&key),
                "unknown option {key:?} (known: {})",
                KNOWN_KEYS.join(", ")
            );
            parsed.insert(key.to_string(), value.to_string());
        }
        let (workload, mode) = (workload.parse()?, mode.parse()?);
        ensure!(
            workload == Workload::W1
                || !matches!(mode, Mode::Queue | Mode::Latency | Mode::Overload),
            "queue, latency and overload modes run W1 only (a queue stream cannot be \
             checkpointed, as in the Java program, and latency and overload are measured on \
             the stateless count)"
        );
        Ok(Args {
            workload,
            mode,
            expected,
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
}

/// What the output operation counted, shared with `main`.
struct Counter {
    counts: Mutex<Counts>,
    reached: Condvar,
}

#[derive(Default)]
struct Counts {
    /// The corpus's words: the run ends when `total` reaches it.
    expected: i64,
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
            counts: Mutex::new(Counts {
                expected,
                ..Counts::default()
            }),
            reached: Condvar::new(),
        })
    }

    /// Latency mode: the total is known once the sender has finished.
    fn set_expected(&self, expected: i64) {
        let mut counts = self.counts();
        counts.expected = expected;
        self.add(&mut counts, Time::from_millis(0), 0);
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
        if counts.total >= counts.expected && counts.reached_at.is_none() {
            // With no words, the count was reached by a change of the expected total:
            // in the last batch that counted any.
            counts.reached_at = if words != 0 {
                Some(time)
            } else {
                counts.by_batch.keys().next_back().copied()
            };
            counts.overshoot = counts.total - counts.expected;
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

/// The word count of a workload, for a word type `K`.
struct Pipeline {
    workload: Workload,
    map_with_state: bool,
    /// Latency mode: the first token of a line is its send time, not a word.
    skip_stamp: bool,
    /// `split=collect`: `flat_map` with a `Vec` per line, as before `flat_map_into`.
    collect_words: bool,
    batch: Duration,
    threads: usize,
    counter: Arc<Counter>,
}

impl Pipeline {
    /// Adds the workload's transformations and its output to `lines`. `K` is the word
    /// type: `String`, as users write it, or an inline short string.
    fn build<K>(self, lines: &DStream<String>) -> anyhow::Result<()>
    where
        K: Key + StateData + for<'a> From<&'a str>,
    {
        let skip = usize::from(self.skip_stamp);
        let words = if self.collect_words {
            lines.flat_map(move |line| line.split(' ').skip(skip).map(K::from).collect::<Vec<_>>())
        } else {
            lines.flat_map_into(move |line, words| {
                words.extend(line.split(' ').skip(skip).map(K::from));
            })
        };
        let pairs = words.map(|word| (word, 1));
        let (counter, batch) = (self.counter, self.batch);
        match self.workload {
            Workload::W1 => {
                let counts = pairs.reduce_by_key(|a, b| a + b);
                counts.foreach_rdd(move |rdd, time| {
                    let words = rdd.map(|(_, count)| i64::from(count)).fold(0, |a, b| a + b);
                    counter.record(time, words);
                })?;
            }
            Workload::W2 if self.map_with_state => {
                let running = pairs.map_with_state(StateSpec::function(
                    |_word: &K, count: Option<i32>, total: &mut State<i64>| {
                        let sum = total.get().copied().unwrap_or(0) + i64::from(count.unwrap_or(0));
                        total.update(sum);
                    },
                ));
                running.state_snapshots().foreach_rdd(move |rdd, time| {
                    let (keys, sum) = keys_and_sum(&rdd);
                    counter.record_state(time, keys, sum);
                })?;
            }
            Workload::W2 => {
                let state = pairs.update_state_by_key(|new: &[i32], running: Option<i64>| {
                    Some(running.unwrap_or(0) + new.iter().map(|&v| i64::from(v)).sum::<i64>())
                });
                state.foreach_rdd(move |rdd, time| {
                    let (keys, sum) = keys_and_sum(&rdd);
                    counter.record_state(time, keys, sum);
                })?;
            }
            Workload::W3 => {
                let windowed = pairs
                    .partitioned(self.threads)
                    .reduce_by_key_and_window_inv_with(
                        |a, b| a + b,
                        |a, b| a - b,
                        batch * WINDOW_BATCHES as u32,
                        batch,
                        |_, count| *count != 0,
                    )?;
                windowed.foreach_rdd(move |rdd, time| {
                    let (keys, sum) = keys_and_sum(&rdd);
                    counter.record_window(time, batch, keys, sum);
                })?;
            }
        }
        Ok(())
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

/// Queue mode: the corpus's lines as `chunks` `Rdd`s, in the context's partitions.
fn load_queue(
    ssc: &StreamingContext,
    lines: Vec<String>,
    chunks: usize,
) -> anyhow::Result<RddQueue<String>> {
    ensure!(chunks > 0, "chunks must be positive");
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

/// The corpus: `corpus=FILE`, else generated (`lines=N`, default 1,000,000, `seed=42`).
fn load_corpus(args: &Args) -> anyhow::Result<Corpus> {
    match args.raw(&["corpus"]) {
        Some((_, path)) => Corpus::read(Path::new(path)),
        None => Ok(Corpus::generate(
            args.get(&["lines"], 1_000_000)?,
            args.get(&["seed"], 42)?,
        )),
    }
}

/// The context with the options' batch interval, threads and input limits.
fn build_context(args: &Args, batch: Duration, threads: usize) -> anyhow::Result<StreamingContext> {
    // backpressure=true: the PID rate estimator; max_rate=N: at most N lines/s;
    // max_buffered=N: receivers hold at most N lines no batch has taken (0: no bound).
    let backpressure: bool = args.get(
        &["backpressure", "spark.streaming.backpressure.enabled"],
        false,
    )?;
    let max_rate: u64 = args.get(&["max_rate", "spark.streaming.receiver.maxRate"], 0)?;
    let max_buffered: usize = args.get(&["max_buffered"], 0)?;
    // wal=false: no receiver write-ahead log (it is on whenever there is a checkpoint
    // directory, as in W2 and W3), to measure what it costs.
    let wal: bool = args.get(
        &["wal", "spark.streaming.receiver.writeAheadLog.enable"],
        true,
    )?;
    // status_page=ADDR: serve the live status page while the benchmark runs, to check
    // that watching a stream does not slow it.
    let status_page = args
        .raw(&["status_page"])
        .map(|(key, value)| {
            value
                .parse::<std::net::SocketAddr>()
                .with_context(|| format!("option {key}={value:?} is not an address"))
        })
        .transpose()?;
    Ok(StreamingContext::from_config(StreamingConfig {
        batch_interval: batch,
        parallelism: Parallelism::threads_exactly(threads),
        backpressure,
        receiver_write_ahead_log: wal,
        receiver_max_rate: (max_rate > 0).then_some(max_rate),
        max_buffered_records: (max_buffered > 0).then_some(max_buffered),
        status_page,
        ..StreamingConfig::default()
    })?)
}

fn main() -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // stdout carries the RESULT line the harness reads: logs go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = Args::parse(&argv)?;
    let batch_ms: u64 = args.get(&["batch_ms", "batchMs"], 1000)?;
    let threads: usize = args.get(&["threads"], 2)?;
    let timeout = Duration::from_secs(args.get(&["timeout_s", "timeoutS"], 900)?);
    let batch = Duration::from_millis(batch_ms);
    if args.mode == Mode::Overload {
        // No corpus and no count to reach: its own input, its own report.
        return overload::run(&args, batch, threads);
    }
    let map_with_state = match args.raw(&["variant"]) {
        None | Some((_, "update_state_by_key")) => false,
        Some((_, "map_with_state")) if args.workload == Workload::W2 => true,
        Some((_, other)) => {
            bail!("variant={other:?}: W2 has the variants update_state_by_key and map_with_state")
        }
    };

    // The harness serves its own corpus and says how many words it holds; without it
    // the program loads (or generates) the corpus and serves it itself.
    let harness_socket = args.mode == Mode::Socket && args.raw(&["port"]).is_some();
    let harness_files = args.mode == Mode::Files && args.raw(&["parts"]).is_some();
    let corpus = if (harness_socket || harness_files) && args.expected.is_some() {
        None
    } else {
        Some(load_corpus(&args)?)
    };
    let expected = match (args.expected, &corpus) {
        // The sender decides how many words it sends; the total is set when it is done.
        _ if args.mode == Mode::Latency => i64::MAX,
        (Some(words), _) => words,
        (None, Some(corpus)) => corpus.words as i64,
        (None, None) => unreachable!("the corpus is loaded when no count is given"),
    };
    let expected_distinct: i64 = args.get(
        &["expectedDistinct"],
        corpus.as_ref().map_or(-1, |c| c.distinct as i64),
    )?;
    // In latency mode the sender decides what is sent, not the corpus.
    let corpus_bytes = corpus
        .as_ref()
        .filter(|_| args.mode != Mode::Latency)
        .map(|c| c.text.len() as u64)
        .or_else(|| {
            args.raw(&["corpus"])
                .and_then(|(_, path)| std::fs::metadata(path).ok())
                .map(|m| m.len())
        });

    let ssc = build_context(&args, batch, threads)?;
    if let Some(address) = ssc.status_page_address() {
        eprintln!("status page: http://{address}/");
    }
    let _checkpoint_scratch;
    if args.workload != Workload::W1 {
        let directory = match args.raw(&["checkpoint"]) {
            Some((_, dir)) => PathBuf::from(dir),
            None => {
                let scratch = ScratchDir::new("wordcount-bench-checkpoint")?;
                let dir = scratch.0.clone();
                _checkpoint_scratch = scratch;
                dir
            }
        };
        ssc.checkpoint(directory)?;
    }

    // ---- input
    let mut feeder = None;
    let mut queue_load_ms = None;
    let mut _servers: (Option<CorpusServer>, Option<ScratchDir>) = (None, None);
    let mut paced = None;
    let host = args.raw(&["host"]).map_or("127.0.0.1", |(_, h)| h);
    let lines: DStream<String> = match args.mode {
        Mode::Socket if harness_socket => ssc.socket_text_stream(host, args.get(&["port"], 9999)?),
        Mode::Socket => {
            let corpus = corpus.as_ref().expect("loaded when no port is given");
            let server = CorpusServer::start(Arc::new(corpus.text.clone()))?;
            let port = server.port();
            _servers.0 = Some(server);
            ssc.socket_text_stream("127.0.0.1", port)
        }
        Mode::Files => {
            let parts = match args.raw(&["parts"]) {
                Some((_, parts)) => PathBuf::from(parts),
                None => {
                    let scratch = ScratchDir::new("wordcount-bench-files")?;
                    let parts = scratch.0.join("parts");
                    corpus
                        .as_ref()
                        .expect("loaded when no parts are given")
                        .write_parts(&parts, 80)?;
                    _servers.1 = Some(scratch);
                    parts
                }
            };
            let watch = match (args.raw(&["watch"]), &_servers.1) {
                (Some((_, watch)), _) => PathBuf::from(watch),
                (None, Some(scratch)) => scratch.0.join("watch"),
                (None, None) => bail!("watch=DIR is required with parts=DIR"),
            };
            let per_batch = args.get(&["filesPerBatch"], 8)?;
            feeder = Some(Feeder::new(&parts, &watch, per_batch, batch)?);
            ssc.text_file_stream(&watch)
        }
        Mode::Queue => {
            let started = Instant::now();
            let corpus = corpus.as_ref().expect("loaded in queue mode");
            let queue = load_queue(&ssc, corpus.line_strings(), args.get(&["chunks"], 10)?)?;
            queue_load_ms = Some(started.elapsed().as_millis());
            ssc.queue_stream(&queue, true, None)
        }
        Mode::Overload => unreachable!("overload mode has returned above"),
        Mode::Latency => {
            let corpus = corpus.as_ref().expect("loaded in latency mode");
            let server = PacedServer::start(
                corpus.line_strings(),
                args.get(&["rate"], 1_000_000.0)?,
                Duration::from_secs_f64(args.get(&["duration_s"], 10.0)?),
            )?;
            let port = server.port();
            paced = Some(server);
            ssc.socket_text_stream("127.0.0.1", port)
        }
    };

    // ---- pipeline: the classic word count, as users write it
    let counter = Counter::new(expected);
    let latencies = Arc::new(LatencyLog::default());
    let pipeline = Pipeline {
        workload: args.workload,
        map_with_state,
        skip_stamp: args.mode == Mode::Latency,
        collect_words: match args.get(&["split"], "into".to_string())?.as_str() {
            "into" => false,
            "collect" => true,
            other => anyhow::bail!("split={other}: expected into or collect"),
        },
        batch,
        threads,
        counter: counter.clone(),
    };
    match args.raw(&["keys"]) {
        None | Some((_, "string")) => pipeline.build::<String>(&lines)?,
        Some((_, "compact")) => pipeline.build::<CompactString>(&lines)?,
        Some((_, other)) => bail!("keys={other:?}: the word types are string and compact"),
    }
    if args.mode == Mode::Latency {
        // Registered last, so it ends each batch's output: stamps are collected, then
        // every line's latency is taken at the end of its batch.
        let latencies = latencies.clone();
        let warmup_us = (args.get(&["warmup_s"], 1.0)? * 1e6) as u64;
        let from = latency::now_micros() + warmup_us;
        lines.foreach_rdd(move |rdd, _time| {
            let stamps: Vec<u64> = rdd
                .flat_map(|line| latency::stamp_of(&line))
                .filter(move |&stamp| stamp >= from)
                .collect();
            latencies.record(&stamps);
        })?;
    }
    let log = Arc::new(BatchLog::default());
    ssc.add_listener(log.clone());

    // ---- run until the count is reached
    let start = Time::now();
    ssc.start()?;
    if let Some(feeder) = feeder.as_mut() {
        feeder.start()?;
    }
    let reached = match &paced {
        // The latency sender decides the total: wait for it to finish, then for the count.
        Some(server) => {
            let deadline = Instant::now() + timeout;
            while !server.sent().done.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            counter.set_expected(server.sent().words.load(Ordering::SeqCst) as i64);
            counter.wait_reached(deadline.saturating_duration_since(Instant::now()))
        }
        None => counter.wait_reached(timeout),
    };
    if let Some(last) = reached
        && !log.wait_for(last, LAST_BATCH_WAIT)
    {
        eprintln!("warning: the listener did not report batch {last} within {LAST_BATCH_WAIT:?}");
    }

    // ---- report
    let counts = counter.counts();
    let batches = log.batches();
    let report = Report::new(&counts, &batches, reached, batch, start);
    let mut line = report.line(&args, &counts, threads, batch_ms);
    if let Some(bytes) = corpus_bytes
        && report.wall_s > 0.0
    {
        let _ = write!(line, " mb_per_s={:.1}", bytes as f64 / 1e6 / report.wall_s);
    }
    if let Some(corpus) = &corpus {
        let _ = write!(line, " corpus={}", corpus.origin);
    }
    if map_with_state {
        let _ = write!(line, " variant=map_with_state");
    }
    if let Some((_, keys)) = args.raw(&["keys"]) {
        let _ = write!(line, " keys={keys}");
    }
    if let Some(server) = &paced {
        let (count, p50, p99, max) = latencies.summary();
        let _ = write!(
            line,
            " rate_words_per_s={} latency_lines={count} latency_p50_ms={p50:.1} \
             latency_p99_ms={p99:.1} latency_max_ms={max:.1}",
            args.get(&["rate"], 1_000_000.0)?,
        );
        let _ = write!(
            line,
            " sent_lines={}",
            server.sent().lines.load(Ordering::SeqCst)
        );
    }
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
            ok: reached.is_some() && counts.overshoot == 0 && counts.total == counts.expected,
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

    fn line(&self, args: &Args, counts: &Counts, threads: usize, batch_ms: u64) -> String {
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
            Mode::Socket | Mode::Files | Mode::Latency | Mode::Overload => self.records.to_string(),
        };
        let p99 = sorted
            .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0);
        format!(
            "RESULT engine=dstream workload={:?} mode={} ok={} lines={lines} words={} expected={} \
             batches={} wall_s={:.3} words_per_s={:.0} proc_mean_ms={:.1} proc_median_ms={} \
             proc_p99_ms={p99} proc_max_ms={} sched_mean_ms={:.1} sched_max_ms={} busy_words_per_s={:.0} \
             startup_to_first_batch_s={:.1} wall_since_start_s={:.3} threads={threads} \
             batch_ms={batch_ms}",
            args.workload,
            args.mode.name(),
            self.ok,
            self.words,
            counts.expected,
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
