//! Helpers shared by the integration tests: a context on a manual clock that tests
//! step batch by batch, and collectors that record each batch's output.
//!
//! Nothing here sleeps: batches happen when a test advances the clock, and waits are
//! on conditions (a batch completed, records arrived), with generous timeouts that
//! only matter when something is broken.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use dstream::{
    BatchInfo, DStream, Data, ManualClock, Parallelism, Partitioner, StreamingConfig,
    StreamingContext, StreamingListener, Time,
};

/// How long any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A context on a manual clock standing at 0, so batch `k` has time `k * interval`.
pub struct Harness {
    pub ssc: StreamingContext,
    pub clock: ManualClock,
    pub interval: Duration,
}

impl Harness {
    pub fn new(interval: Duration) -> Harness {
        Harness::configured(Harness::config(interval))
    }

    /// The settings of the tests' contexts: two threads, receivers that retry soon.
    pub fn config(interval: Duration) -> StreamingConfig {
        StreamingConfig {
            batch_interval: interval,
            parallelism: Parallelism::threads_exactly(2),
            receiver_restart_delay: Duration::from_millis(20),
            ..StreamingConfig::default()
        }
    }

    /// A harness whose context has `config`.
    pub fn configured(config: StreamingConfig) -> Harness {
        let clock = ManualClock::new(Time::from_millis(0));
        let interval = config.batch_interval;
        let ssc = StreamingContext::builder()
            .config(config)
            .clock(clock.clone())
            .build()
            .expect("valid settings");
        Harness {
            ssc,
            clock,
            interval,
        }
    }

    /// A harness with one-second batches and the status page on a free port of
    /// 127.0.0.1, and where the page listens.
    pub fn with_status_page() -> (Harness, SocketAddr) {
        let h = Harness::configured(StreamingConfig {
            status_page: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Harness::config(Duration::from_secs(1))
        });
        let page = h.ssc.status_page_address().expect("a status page");
        (h, page)
    }

    /// A harness with one-second batches.
    pub fn seconds() -> Harness {
        Harness::new(Duration::from_secs(1))
    }

    /// The time of batch `k` (the first batch is 1).
    pub fn batch_time(&self, k: u64) -> Time {
        Time::from_millis(k as i64 * self.interval.as_millis() as i64)
    }

    /// Moves the clock one interval on and waits for that batch to complete.
    pub fn run_batch(&self) -> BatchInfo {
        self.clock.advance(self.interval);
        self.ssc
            .await_batch(self.clock.now(), PATIENCE)
            .unwrap_or_else(|e| panic!("batch at {} did not complete: {e}", self.clock.now()))
    }

    /// Runs `n` batches.
    pub fn run_batches(&self, n: usize) -> Vec<BatchInfo> {
        (0..n).map(|_| self.run_batch()).collect()
    }
}

/// Each batch's elements, as `foreach_rdd` saw them, in partition order.
pub type Batches<T> = Arc<Mutex<Vec<(Time, Vec<T>)>>>;

/// Records every batch of `stream`.
pub fn collect<T: Data>(stream: &DStream<T>) -> Batches<T> {
    let batches: Batches<T> = Arc::default();
    let sink = batches.clone();
    stream
        .foreach_rdd(move |rdd, time| {
            let items = rdd.collect(); // before locking: a panicking batch must not poison
            sink.lock().unwrap().push((time, items));
        })
        .expect("output registers before start");
    batches
}

/// The recorded batches, each sorted (shuffle output order depends on hashing).
pub fn sorted_batches<T: Ord + Clone>(batches: &Batches<T>) -> Vec<Vec<T>> {
    batches
        .lock()
        .unwrap()
        .iter()
        .map(|(_, items)| {
            let mut items = items.clone();
            items.sort();
            items
        })
        .collect()
}

/// The times of the recorded batches, in milliseconds, in the order they ran.
pub fn batch_millis<T>(batches: &Batches<T>) -> Vec<i64> {
    batches
        .lock()
        .unwrap()
        .iter()
        .map(|(time, _)| time.as_millis())
        .collect()
}

/// `(word, count)` pairs from string literals.
pub fn counts(pairs: &[(&str, i32)]) -> Vec<(String, i32)> {
    pairs.iter().map(|(w, c)| (w.to_string(), *c)).collect()
}

/// Words by their first letter: `a` to `h` in partition 0, `i` to `p` in 1, the rest
/// (and the empty word) in 2. Not a hash, so a test can tell it is the one used.
pub struct ByFirstLetter;

impl Partitioner<String> for ByFirstLetter {
    fn num_partitions(&self) -> usize {
        3
    }

    fn partition(&self, word: &String) -> usize {
        match word.bytes().next() {
            Some(b'a'..=b'h') => 0,
            Some(b'i'..=b'p') => 1,
            _ => 2,
        }
    }
}

/// Each batch's partitions as `glom` gave them, each partition sorted.
pub fn sorted_partitions<T: Ord + Clone>(batches: &Batches<Vec<T>>) -> Vec<Vec<Vec<T>>> {
    batches
        .lock()
        .unwrap()
        .iter()
        .map(|(_, partitions)| {
            partitions
                .iter()
                .map(|partition| {
                    let mut partition = partition.clone();
                    partition.sort();
                    partition
                })
                .collect()
        })
        .collect()
}

/// Owned lines from string literals.
pub fn lines(text: &[&str]) -> Vec<String> {
    text.iter().map(|s| s.to_string()).collect()
}

/// Accepts one connection on `listener`, failing the test if none comes in time.
pub fn accept(listener: &TcpListener) -> TcpStream {
    let listener = listener.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(listener.accept().map(|(stream, _)| stream));
    });
    rx.recv_timeout(PATIENCE)
        .expect("the receiver connects")
        .unwrap()
}

/// A TCP server socket on a free loopback port, as the test's line server.
pub fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Prints `STARTED <ms>` with the first batch a program will process, for
/// [`run_child_program`].
pub struct ReportStart;

impl StreamingListener for ReportStart {
    fn on_streaming_started(&self, first_batch: Time) {
        println!("STARTED {}", first_batch.as_millis());
    }
}

/// Runs this test binary again as a child that runs only the test `child_test`, with
/// the environment variable `env` set. The child prints `PROGRESS ...` after each
/// batch; with `kill_after`, it is killed with SIGKILL after that many progress
/// lines (no destructor, no final checkpoint runs). Otherwise it must succeed.
/// Returns the first batch time it reported with [`ReportStart`].
pub fn run_child_program(child_test: &str, env: (&str, &str), kill_after: Option<usize>) -> i64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            child_test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut started, mut progress) = (None, 0);
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints "test <name> ... " before the child's first line.
        if let Some((_, time)) = line.split_once("STARTED ") {
            started = time.trim().parse().ok();
        }
        if line.starts_with("PROGRESS ") {
            progress += 1;
            if Some(progress) == kill_after {
                child.kill().unwrap();
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    if kill_after.is_none() {
        assert!(status.success(), "the program failed: {status}");
    }
    started.expect("the program reported its start")
}

/// The `word count` lines of a file.
pub fn read_counts(path: &Path) -> BTreeMap<String, i64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let (word, count) = line.split_once(' ').unwrap();
            (word.to_string(), count.parse().unwrap())
        })
        .collect()
}

/// The crash tests' program, started: each word's running count over the lines
/// `lines_of` makes, on a manual clock at 0 with one-second batches, checkpointed to
/// `root/checkpoint` every `checkpoint_every` and recovered from there. After each
/// batch it prints `PROGRESS <ms> <sum>`; once the counts add up to `total` (or
/// more), it writes them as `word count` lines to `root/final.txt` and sets the flag
/// it returns.
pub fn start_word_count_child(
    root: &Path,
    checkpoint_every: Duration,
    total: i64,
    lines_of: impl FnOnce(&StreamingContext) -> dstream::Result<DStream<String>>,
) -> dstream::Result<(StreamingContext, ManualClock, Arc<AtomicBool>)> {
    let clock = ManualClock::default();
    let done = Arc::new(AtomicBool::new(false));
    let (build_clock, finished, out) = (clock.clone(), done.clone(), root.to_path_buf());
    let ssc = StreamingContext::get_or_create(root.join("checkpoint"), move || {
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: Duration::from_secs(1),
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(build_clock)
            .build()?;
        let counts = lines_of(&ssc)?
            .flat_map(|line| {
                line.split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|word| (word, 1i64))
            .update_state_by_key(|new: &[i64], count: Option<i64>| {
                Some(new.iter().sum::<i64>() + count.unwrap_or(0))
            })
            .checkpoint_interval(checkpoint_every)?;
        counts.foreach_rdd(move |rdd, time| -> std::io::Result<()> {
            let mut state = rdd.collect();
            state.sort();
            let sum: i64 = state.iter().map(|(_, c)| c).sum();
            println!("PROGRESS {} {sum}", time.as_millis());
            std::io::stdout().flush()?;
            if sum >= total {
                let text: String = state.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
                std::fs::write(out.join(".final.tmp"), text)?;
                std::fs::rename(out.join(".final.tmp"), out.join("final.txt"))?;
                finished.store(true, Ordering::SeqCst);
            }
            Ok(())
        })?;
        Ok(ssc)
    })?;
    ssc.add_listener(ReportStart);
    ssc.start()?;
    Ok((ssc, clock, done))
}

/// A click-stream event of the Kafka lab (seed 004), for the JSON tests.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
pub struct Click {
    #[serde(rename = "Clicks")]
    pub clicks: u32,
    #[serde(rename = "Impressions")]
    pub impressions: u32,
    pub ts: i64,
}

/// A [`Click`].
pub fn click(clicks: u32, impressions: u32, ts: i64) -> Click {
    Click {
        clicks,
        impressions,
        ts,
    }
}
