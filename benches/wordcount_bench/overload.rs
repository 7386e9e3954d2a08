//! Overload mode: an input faster than the pipeline, for a fixed time.
//!
//! What `yes "the quick brown fox" | nc -lk PORT` does to a socket stream: a thread of
//! this process serves the line `the quick brown fox` without end to the first client
//! of a loopback socket, as fast as the socket takes it (one pre-built buffer of lines
//! written again and again, nothing allocated per line). The W1 pipeline counts it for
//! `duration_s` (default 60) with the context's input limits (`backpressure=`,
//! `max_buffered=`, `max_rate=`). Every second a sampler reads the process's resident
//! memory (`VmRSS` of `/proc/self/status`; Linux only, 0 elsewhere) and the scheduling
//! delay at that moment: how long the oldest batch waiting to run has waited so far,
//! or, when none waits, the scheduling delay of the last batch to start. A listener
//! keeps every completed batch's records, scheduling delay and processing delay.
//!
//! At the end (figures as of `duration_s`; then the context stops without waiting for
//! queued batches) it prints one line per completed batch (`t_s`: its batch time,
//! counted from the start; `submit_ms`: how long after its batch time it was
//! generated) and one per sample on stderr, and on stdout
//!
//! ```text
//! RESULT engine=dstream workload=W1 mode=overload duration_s batches records
//!   records_per_s sched_delay_max_ms sched_delay_last_ms sched_delay_p50_ms
//!   proc_max_ms rss_max_mb rss_last_mb peak_buffered timeline=t:delay_ms:rss_mb,...
//! ```
//!
//! `batches`, `records`, `records_per_s` (records / `duration_s`) and the
//! `sched_delay_*` figures count the batches completed by then (`sched_delay_last_ms`:
//! the last of them); `timeline` has the sampler's delay and memory every 10 s.
//! `peak_buffered` is the most records the receiver held for the next batch at once.
//! If the memory passes `rss_limit_mb` (default: half the machine's), the run ends
//! there and the line says `stopped_early=true` with the figures up to then.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use compact_str::CompactString;
use dstream::{BatchInfo, DStream, StreamingListener, Time};

use super::{Args, Counter, Pipeline, Workload, build_context};

/// The line the server sends without end.
const LINE: &[u8] = b"the quick brown fox\n";

/// About how many bytes of lines the server writes per call.
const BUFFER_BYTES: usize = 1 << 20;

/// How often the sampler reads the memory and the delay.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The timeline of the `RESULT` line has one point every this many samples.
const TIMELINE_EVERY: u64 = 10;

/// Runs overload mode and prints its report.
pub fn run(args: &Args, batch: Duration, threads: usize) -> anyhow::Result<ExitCode> {
    let duration_s: u64 = args.get(&["duration_s"], 60)?;
    let rss_limit_mb: u64 = args.get(&["rss_limit_mb"], memory_total_mb().unwrap_or(0) / 2)?;
    let ssc = build_context(args, batch, threads)?;
    let server = EndlessServer::start()?;
    let lines: DStream<String> = ssc.socket_text_stream("127.0.0.1", server.port());
    // The classic W1 with a count it never reaches: the run ends on time.
    let pipeline = Pipeline {
        workload: Workload::W1,
        map_with_state: false,
        skip_stamp: false,
        collect_words: false,
        batch,
        threads,
        counter: Counter::new(i64::MAX),
    };
    match args.raw(&["keys"]) {
        None | Some((_, "string")) => pipeline.build::<String>(&lines)?,
        Some((_, "compact")) => pipeline.build::<CompactString>(&lines)?,
        Some((_, other)) => bail!("keys={other:?}: the word types are string and compact"),
    }
    let log = Arc::new(DelayLog::default());
    ssc.add_listener(log.clone());

    let (started, start_time) = (Instant::now(), Time::now());
    ssc.start()?;
    let mut samples = Vec::new();
    let mut stopped_early = false;
    for second in 1..=duration_s {
        let due = started + SAMPLE_EVERY * second as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let sample = Sample {
            t_s: second,
            delay_ms: log.delay_now(Time::now()),
            rss_mb: rss_mb().unwrap_or(0),
        };
        samples.push(sample);
        if rss_limit_mb > 0 && sample.rss_mb > rss_limit_mb {
            eprintln!(
                "warning: resident memory {} MB passed rss_limit_mb={rss_limit_mb} after {second} s: \
                 stopping early",
                sample.rss_mb
            );
            stopped_early = true;
            break;
        }
    }
    let ran_s = samples.last().map_or(0, |s| s.t_s);
    let completed = log.state().completed.clone();
    let peak_buffered = ssc.peak_records_buffered();
    ssc.stop(false)?;
    drop(server);

    for info in completed.values() {
        eprintln!(
            "batch {} t_s={:.1} records={} submit_ms={} sched_ms={} proc_ms={}",
            info.batch_time.as_millis(),
            info.batch_time.saturating_since(start_time).as_secs_f64(),
            info.num_records,
            info.submission_time
                .saturating_since(info.batch_time)
                .as_millis(),
            millis(info.scheduling_delay()),
            millis(info.processing_delay()),
        );
    }
    for sample in &samples {
        eprintln!(
            "sample t_s={} delay_ms={} rss_mb={}",
            sample.t_s, sample.delay_ms, sample.rss_mb
        );
    }
    println!(
        "{}",
        report(
            &completed,
            &samples,
            ran_s,
            stopped_early,
            peak_buffered,
            args,
            threads,
            batch
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The `RESULT` line.
#[allow(clippy::too_many_arguments)]
fn report(
    completed: &BTreeMap<Time, BatchInfo>,
    samples: &[Sample],
    ran_s: u64,
    stopped_early: bool,
    peak_buffered: usize,
    args: &Args,
    threads: usize,
    batch: Duration,
) -> String {
    let records: u64 = completed.values().map(|i| i.num_records).sum();
    let mut sched: Vec<u64> = completed
        .values()
        .map(|i| millis(i.scheduling_delay()))
        .collect();
    let sched_last = sched.last().copied().unwrap_or(0);
    sched.sort_unstable();
    let proc_max = completed
        .values()
        .map(|i| millis(i.processing_delay()))
        .max()
        .unwrap_or(0);
    let mut line = format!(
        "RESULT engine=dstream workload=W1 mode=overload duration_s={ran_s} batches={} \
         records={records} records_per_s={:.0} sched_delay_max_ms={} sched_delay_last_ms={sched_last} \
         sched_delay_p50_ms={} proc_max_ms={proc_max} rss_max_mb={} rss_last_mb={} \
         peak_buffered={peak_buffered}",
        completed.len(),
        records as f64 / ran_s.max(1) as f64,
        sched.last().copied().unwrap_or(0),
        sched.get(sched.len() / 2).copied().unwrap_or(0),
        samples.iter().map(|s| s.rss_mb).max().unwrap_or(0),
        samples.last().map_or(0, |s| s.rss_mb),
    );
    let timeline: Vec<String> = samples
        .iter()
        .filter(|s| s.t_s.is_multiple_of(TIMELINE_EVERY))
        .map(|s| format!("{}:{}:{}", s.t_s, s.delay_ms, s.rss_mb))
        .collect();
    let _ = write!(line, " timeline={}", timeline.join(","));
    for key in ["backpressure", "max_buffered", "max_rate"] {
        if let Some((_, value)) = args.raw(&[key]) {
            let _ = write!(line, " {key}={value}");
        }
    }
    let _ = write!(
        line,
        " threads={threads} batch_ms={} stopped_early={stopped_early}",
        batch.as_millis()
    );
    line
}

fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis() as u64)
}

/// One sample of the sampler, `t_s` seconds after the start.
#[derive(Clone, Copy)]
struct Sample {
    t_s: u64,
    delay_ms: u64,
    rss_mb: u64,
}

/// The batches: completed ones, and those waiting to run.
#[derive(Default)]
struct DelayLog {
    state: Mutex<DelayState>,
}

#[derive(Default)]
struct DelayState {
    completed: BTreeMap<Time, BatchInfo>,
    /// Submitted, not started.
    waiting: BTreeSet<Time>,
    /// The scheduling delay of the batch that started last.
    last_started_ms: u64,
}

impl DelayLog {
    fn state(&self) -> MutexGuard<'_, DelayState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scheduling delay at `now`: how long the oldest waiting batch has waited,
    /// else that of the batch that started last.
    fn delay_now(&self, now: Time) -> u64 {
        let state = self.state();
        match state.waiting.first() {
            Some(&oldest) => now.saturating_since(oldest).as_millis() as u64,
            None => state.last_started_ms,
        }
    }
}

impl StreamingListener for DelayLog {
    fn on_batch_submitted(&self, batch: &BatchInfo) {
        self.state().waiting.insert(batch.batch_time);
    }

    fn on_batch_started(&self, batch: &BatchInfo) {
        let mut state = self.state();
        state.waiting.remove(&batch.batch_time);
        state.last_started_ms = millis(batch.scheduling_delay());
    }

    fn on_batch_completed(&self, batch: &BatchInfo) {
        let mut state = self.state();
        state.waiting.remove(&batch.batch_time);
        state.completed.insert(batch.batch_time, batch.clone());
    }
}

/// The process's resident memory in MB (`VmRSS`), on Linux.
fn rss_mb() -> Option<u64> {
    kilobytes_of("/proc/self/status", "VmRSS:").map(|kb| kb / 1024)
}

/// The machine's memory in MB (`MemTotal`), on Linux.
fn memory_total_mb() -> Option<u64> {
    kilobytes_of("/proc/meminfo", "MemTotal:").map(|kb| kb / 1024)
}

/// The `field:   N kB` line of a `/proc` file.
fn kilobytes_of(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Serves [`LINE`] without end to each client in turn, as fast as it reads.
struct EndlessServer {
    address: SocketAddr,
    stopped: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EndlessServer {
    fn start() -> anyhow::Result<EndlessServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen on loopback")?;
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        // Whole lines, so that a write that wraps around keeps the stream's lines whole.
        let buffer = LINE.repeat(BUFFER_BYTES / LINE.len());
        let thread = std::thread::Builder::new()
            .name("overload-server".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => flood(stream, &buffer, &flag),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })?;
        Ok(EndlessServer {
            address,
            stopped,
            thread: Some(thread),
        })
    }

    fn port(&self) -> u16 {
        self.address.port()
    }
}

/// Writes `buffer` to `stream` again and again until the client goes or the server
/// stops; a write that blocks past a short timeout only checks for the stop.
fn flood(mut stream: TcpStream, buffer: &[u8], stopped: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_write_timeout(Some(Duration::from_millis(100)))
            .is_err()
    {
        return;
    }
    let mut at = 0;
    while !stopped.load(Ordering::Relaxed) {
        match stream.write(&buffer[at..]) {
            Ok(0) => return,
            Ok(n) => at = (at + n) % buffer.len(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

impl Drop for EndlessServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_server_sends_whole_lines_without_end() {
        let server = EndlessServer::start().unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        // More than one buffer, so that the wrap-around is read too.
        let mut received = vec![0; 3 * BUFFER_BYTES + 7];
        client.read_exact(&mut received).unwrap();
        for (i, byte) in received.iter().enumerate() {
            assert_eq!(*byte, LINE[i % LINE.len()], "byte {i}");
        }
        drop(client);
        drop(server);
    }

    #[test]
    fn reads_the_field_of_a_proc_file() {
        if cfg!(target_os = "linux") {
            assert!(rss_mb().is_some());
            assert!(memory_total_mb().is_some_and(|mb| mb > 0));
        }
    }
}
