//! Rate limits and backpressure, against a real TCP sender that writes as fast as the
//! socket lets it, on the manual clock.
//!
//! Processing is slowed by a deterministic gate: each batch tells the test how many
//! records it holds and waits; the test moves the clock on by 1 ms per record (the
//! processing speed is 1,000 records per second of clock time) and lets it finish.
//! Tokens of the rate limit accrue with the same clock, so what the receivers may take
//! depends on the clock, not on the machine's speed.

mod common;

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::PATIENCE;
use crossbeam_channel::{Receiver, Sender};
use dstream::{BatchInfo, ManualClock, StreamingContext, StreamingListener, Time};

const SECOND: Duration = Duration::from_secs(1);

/// Accepts the receiver's connection and writes lines `1..=total` to it as fast as it
/// can; returns the connection once everything is written (TCP holds the writer back
/// while the receiver does not read).
fn serve_numbers(listener: TcpListener, total: u64) -> JoinHandle<TcpStream> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = BufWriter::new(stream.try_clone().unwrap());
        for n in 1..=total {
            writeln!(out, "{n}").unwrap();
        }
        out.flush().unwrap();
        stream
    })
}

fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Collects every line number the batches saw.
fn record_numbers(seen: &Arc<Mutex<Vec<u64>>>) -> impl Fn(Vec<String>) + Send + Sync + 'static {
    let seen = seen.clone();
    move |lines| {
        let numbers: Vec<u64> = lines.iter().map(|l| l.parse().unwrap()).collect();
        seen.lock().unwrap().extend(numbers);
    }
}

/// Checks that `seen` holds each of `1..=total` exactly once.
fn assert_each_once(seen: &Arc<Mutex<Vec<u64>>>, total: u64) {
    let seen = seen.lock().unwrap();
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), distinct.len(), "a line was counted twice");
    assert_eq!(distinct, (1..=total).collect(), "lines were lost");
}

#[test]
fn a_max_rate_holds_a_receiver_to_the_rate_on_the_clock() {
    const RATE: u64 = 100;
    const BLOCK: u64 = 10;
    const TOTAL: u64 = 20_000;
    let (listener, port) = listen();
    let clock = ManualClock::new(Time::from_millis(0));
    let ssc = StreamingContext::builder()
        .batch_interval(SECOND)
        .master("local[2]")
        .clock(clock.clone())
        .receiver_max_rate(RATE)
        .block_size(BLOCK as usize)
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = record_numbers(&seen);
    ssc.socket_text_stream("127.0.0.1", port)
        .foreach_rdd(move |rdd, _| record(rdd.collect()))
        .unwrap();
    ssc.start().unwrap();
    let server = serve_numbers(listener, TOTAL);

    // A block passes while the bucket is not in debt, and takes its size from it: by
    // time t the receiver has taken more than RATE * t records, however slow the
    // machine, and at most RATE * t + BLOCK, however fast the sender (a read's last
    // block may be short, so the count is not always a multiple of BLOCK).
    for k in 0..=20u64 {
        if k > 0 {
            clock.advance(SECOND);
            ssc.await_batch(clock.now(), PATIENCE).unwrap();
        }
        ssc.await_records_received(RATE * k + 1, PATIENCE).unwrap();
        let received = ssc.records_received();
        assert!(received <= RATE * k + BLOCK, "{received} at {k} s");
    }
    let counted = seen.lock().unwrap().len() as u64;
    assert!(
        (RATE * 19 + 1..=RATE * 20 + BLOCK).contains(&counted),
        "{counted}"
    );

    // A graceful stop keeps what the receiver read but had not stored yet; the lines
    // counted are the first ones sent, each once.
    ssc.stop(true).unwrap();
    let received = ssc.records_received();
    assert!((RATE * 20 + 1..=TOTAL).contains(&received), "{received}");
    assert_each_once(&seen, received);
    drop(server);
}

/// Stores 0, 1, 2, ... one record at a time, as fast as it is let.
struct Counter(u64);

impl dstream::Receiver for Counter {
    type Item = u64;

    fn receive(
        &mut self,
        sink: &dstream::ReceiverSink<u64>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        while !sink.is_stopped() && sink.store(self.0) {
            self.0 += 1;
        }
        Ok(())
    }
}

#[test]
fn a_receiver_storing_single_records_is_held_to_the_rate() {
    const RATE: u64 = 100;
    let clock = ManualClock::new(Time::from_millis(0));
    let ssc = StreamingContext::builder()
        .batch_interval(SECOND)
        .master("local[2]")
        .clock(clock.clone())
        .receiver_max_rate(RATE)
        .build()
        .unwrap();
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = counted.clone();
    ssc.receiver_stream(Counter(0))
        .foreach_rdd(move |rdd, _| {
            sink.fetch_add(rdd.count(), Ordering::SeqCst);
        })
        .unwrap();
    ssc.start().unwrap();
    // Single stores are metered in blocks of a tenth of a second's worth (10 here,
    // not the default block size of 1024): by time t, RATE * t + 10 records.
    for k in 0..=5u64 {
        if k > 0 {
            clock.advance(SECOND);
            ssc.await_batch(clock.now(), PATIENCE).unwrap();
        }
        ssc.await_records_received(RATE * k + 10, PATIENCE).unwrap();
        assert_eq!(ssc.records_received(), RATE * k + 10, "at {k} s");
    }
    ssc.stop(true).unwrap();
    assert_eq!(counted.load(Ordering::SeqCst), ssc.records_received());
}

/// Counts batches generated and not yet completed, and the most there ever were.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl StreamingListener for InFlight {
    fn on_batch_submitted(&self, _batch: &BatchInfo) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn on_batch_completed(&self, _batch: &BatchInfo) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The slow output: reports each batch's size and waits to be let go.
struct Gate {
    started: Sender<(Time, u64)>,
    finish: Receiver<()>,
    open: AtomicBool,
}

impl Gate {
    fn pass(&self, time: Time, records: u64) {
        if !self.open.load(Ordering::SeqCst) {
            self.started.send((time, records)).unwrap();
            // Disconnected once the test opens the gate: then finish at once.
            let _ = self.finish.recv();
        }
    }
}

#[test]
fn backpressure_bounds_buffers_and_scheduling_delay_and_loses_nothing() {
    const BOUND: usize = 5_000;
    const TOTAL: u64 = 100_000;
    const SLOW_BATCHES: u64 = 40;
    let (listener, port) = listen();
    let clock = ManualClock::new(Time::from_millis(0));
    let ssc = StreamingContext::builder()
        .batch_interval(SECOND)
        .master("local[2]")
        .clock(clock.clone())
        .backpressure(true)
        .max_buffered_records(BOUND)
        .block_size(100)
        .build()
        .unwrap();
    let in_flight = Arc::new(InFlight::default());
    ssc.add_listener(in_flight.clone());
    let (started, batch_started) = crossbeam_channel::unbounded();
    let (let_finish, finish) = crossbeam_channel::unbounded();
    let gate = Arc::new(Gate {
        started,
        finish,
        open: AtomicBool::new(false),
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = record_numbers(&seen);
    let slow = gate.clone();
    ssc.socket_text_stream("127.0.0.1", port)
        .foreach_rdd(move |rdd, time| {
            let lines = rdd.collect();
            slow.pass(time, lines.len() as u64);
            record(lines);
        })
        .unwrap();
    ssc.start().unwrap();
    let server = serve_numbers(listener, TOTAL);
    // Before the first batch the receiver fills its buffer and stops reading.
    ssc.await_records_received(BOUND as u64, PATIENCE).unwrap();

    let mut delays = Vec::new();
    for k in 1..=SLOW_BATCHES {
        let time = Time::from_millis(k as i64 * 1000);
        clock.set_time(time);
        let (started_time, records) = batch_started.recv_timeout(PATIENCE).unwrap();
        assert_eq!(started_time, time);
        clock.advance(Duration::from_millis(records)); // processing takes 1 ms a record
        let_finish.send(()).unwrap();
        let info = ssc.await_batch(time, PATIENCE).unwrap();
        delays.push((records, info.scheduling_delay().unwrap()));
    }
    // The first batches hold a full buffer each and fall behind by seconds; then the
    // estimated rate drops, batches shrink to what a second processes, and the
    // scheduling delay drains and stays below a couple of intervals. (Without
    // backpressure every batch holds 5,000 records and the delay grows by 4 s a batch,
    // to over 150 s here.)
    let worst_late = delays[30..].iter().map(|(_, d)| *d).max().unwrap();
    assert!(worst_late <= 3 * SECOND, "{delays:?}");
    let early = delays[..3].iter().map(|(_, d)| *d).max().unwrap();
    assert!(
        early >= 4 * SECOND,
        "the input did not outrun processing: {delays:?}"
    );
    assert!(ssc.peak_records_buffered() <= BOUND);
    assert!(
        in_flight.most.load(Ordering::SeqCst) <= 2,
        "batches queued up"
    );

    // Processing catches up: every line the sender wrote is counted exactly once.
    gate.open.store(true, Ordering::SeqCst);
    drop(let_finish);
    let mut next = SLOW_BATCHES as i64 * 1000;
    while ssc.records_received() < TOTAL || seen.lock().unwrap().len() < TOTAL as usize {
        next += 1000;
        clock.set_time(Time::from_millis(next));
        ssc.await_batch(Time::from_millis(next), PATIENCE).unwrap();
    }
    assert!(ssc.peak_records_buffered() <= BOUND);
    ssc.stop(true).unwrap();
    assert_each_once(&seen, TOTAL);
    drop(server.join().unwrap());
}
