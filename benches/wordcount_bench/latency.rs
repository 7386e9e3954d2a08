//! Latency mode: lines sent at a fixed rate, each stamped with its send time, and the
//! time from sending a line to the end of its batch's output measured for every line.
//!
//! Each line is `t<microseconds since the epoch> <words of a corpus line>`. The sender
//! runs in this process on loopback, so a line arrives within microseconds of its
//! stamp; measuring from the stamp only adds that to the latency, never hides any.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

/// Microseconds since the epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The send time stamped at the start of a latency-mode line.
pub fn stamp_of(line: &str) -> Option<u64> {
    line.split(' ').next()?.strip_prefix('t')?.parse().ok()
}

/// How often the sender catches up with its schedule.
const TICK: Duration = Duration::from_micros(500);

/// Sends corpus lines to its first client at `words_per_second` for `duration`.
pub struct PacedServer {
    address: SocketAddr,
    stopped: Arc<AtomicBool>,
    sent: Arc<SentTotals>,
    thread: Option<JoinHandle<()>>,
}

/// What the sender has sent so far.
#[derive(Default)]
pub struct SentTotals {
    pub lines: AtomicU64,
    pub words: AtomicU64,
    pub done: AtomicBool,
}

impl PacedServer {
    pub fn start(
        lines: Vec<String>,
        words_per_second: f64,
        duration: Duration,
    ) -> anyhow::Result<PacedServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen on loopback")?;
        let address = listener.local_addr()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(SentTotals::default());
        let (flag, totals) = (stopped.clone(), sent.clone());
        let thread = std::thread::Builder::new()
            .name("paced-sender".into())
            .spawn(move || {
                if let Err(e) = send_paced(
                    &listener,
                    &lines,
                    words_per_second,
                    duration,
                    &flag,
                    &totals,
                ) {
                    eprintln!("paced sender: {e:#}");
                }
                totals.done.store(true, Ordering::SeqCst);
            })?;
        Ok(PacedServer {
            address,
            stopped,
            sent,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn sent(&self) -> &SentTotals {
        &self.sent
    }
}

fn send_paced(
    listener: &TcpListener,
    lines: &[String],
    words_per_second: f64,
    duration: Duration,
    stopped: &AtomicBool,
    sent: &SentTotals,
) -> anyhow::Result<()> {
    anyhow::ensure!(!lines.is_empty(), "the corpus has no lines");
    let (mut stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    let mut next_line = 0;
    let mut words_sent = 0u64;
    let mut buffer = Vec::new();
    while !stopped.load(Ordering::Relaxed) {
        let elapsed = started.elapsed().min(duration);
        let owed = (elapsed.as_secs_f64() * words_per_second) as u64;
        let stamp = now_micros();
        buffer.clear();
        let mut lines_now = 0;
        while words_sent < owed {
            let line = &lines[next_line % lines.len()];
            next_line += 1;
            writeln!(buffer, "t{stamp} {line}")?;
            words_sent += line.split(' ').count() as u64;
            lines_now += 1;
        }
        if !buffer.is_empty() {
            stream.write_all(&buffer)?;
            sent.lines.fetch_add(lines_now, Ordering::SeqCst);
            sent.words.store(words_sent, Ordering::SeqCst);
        }
        if elapsed >= duration {
            break;
        }
        std::thread::sleep(TICK);
    }
    sent.done.store(true, Ordering::SeqCst);
    // Keep the connection open, as `nc -lk` does, until the benchmark ends.
    while !stopped.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

impl Drop for PacedServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every line's latency in microseconds, from its stamp to the end of its batch's output.
#[derive(Default)]
pub struct LatencyLog {
    latencies_us: Mutex<Vec<u64>>,
}

impl LatencyLog {
    /// Records the lines of one batch, whose output ended now.
    pub fn record(&self, stamps: &[u64]) {
        let end = now_micros();
        let mut latencies = self
            .latencies_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        latencies.extend(stamps.iter().map(|&s| end.saturating_sub(s)));
    }

    /// `(lines, p50, p99, max)`, the latencies in milliseconds.
    pub fn summary(&self) -> (usize, f64, f64, f64) {
        let mut latencies = self
            .latencies_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        latencies.sort_unstable();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |&us| us as f64 / 1000.0)
        };
        (latencies.len(), at(0.5), at(0.99), at(1.0))
    }
}
