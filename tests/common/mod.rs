//! Helpers shared by the integration tests: a context on a manual clock that tests
//! step batch by batch, and collectors that record each batch's output.
//!
//! Nothing here sleeps: batches happen when a test advances the clock, and waits are
//! on conditions (a batch completed, records arrived), with generous timeouts that
//! only matter when something is broken.

#![allow(dead_code)] // each test file uses its own subset

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use dstream::{BatchInfo, DStream, Data, ManualClock, StreamingContext, Time};

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
        let clock = ManualClock::new(Time::from_millis(0));
        let ssc = StreamingContext::builder()
            .batch_interval(interval)
            .master("local[2]")
            .clock(clock.clone())
            .receiver_restart_delay(Duration::from_millis(20))
            .build()
            .expect("valid settings");
        Harness {
            ssc,
            clock,
            interval,
        }
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
