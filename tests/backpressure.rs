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
use dstream::{
    BatchInfo, ManualClock, Parallelism, StreamingConfig, StreamingContext, StreamingListener, Time,
};

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
        .config(StreamingConfig {
            batch_interval: SECOND,
            parallelism: Parallelism::threads_exactly(2),
            receiver_max_rate: Some(RATE),
            block_size: BLOCK as usize,
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
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

#[test]
fn an_initial_rate_holds_the_receiver_until_the_first_estimate() {
    const RATE: u64 = 100;
    const BLOCK: u64 = 10;
    let (listener, port) = listen();
    let clock = ManualClock::new(Time::from_millis(0));
    let ssc = StreamingContext::builder()
        .config(StreamingConfig {
            batch_interval: SECOND,
            parallelism: Parallelism::threads_exactly(2),
            backpressure: true,
            backpressure_initial_rate: Some(RATE),
            block_size: BLOCK as usize,
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    ssc.socket_text_stream("127.0.0.1", port)
        .foreach_rdd(|_, _| ())
        .unwrap();
    ssc.start().unwrap();
    let server = serve_numbers(listener, 20_000);
    // Without an initial rate the receiver takes all it can before the first batch;
    // with one it takes the rate's worth on the clock, as under receiver_max_rate.
    ssc.await_records_received(1, PATIENCE).unwrap();
    assert!(ssc.records_received() <= BLOCK);
    clock.advance(SECOND);
    ssc.await_batch(clock.now(), PATIENCE).unwrap();
    ssc.await_records_received(RATE + 1, PATIENCE).unwrap();
    assert!(ssc.records_received() <= RATE + BLOCK);
    ssc.stop(false).unwrap();
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
        .config(StreamingConfig {
            batch_interval: SECOND,
            parallelism: Parallelism::threads_exactly(2),
            receiver_max_rate: Some(RATE),
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
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

/// A context reading numbers from a fast TCP sender, whose only output counts them
/// and, until the gate opens, takes 1 ms of clock time per record.
struct Overloaded {
    ssc: StreamingContext,
    clock: ManualClock,
    in_flight: Arc<InFlight>,
    gate: Arc<Gate>,
    batch_started: Receiver<(Time, u64)>,
    let_finish: Sender<()>,
    seen: Arc<Mutex<Vec<u64>>>,
    server: JoinHandle<TcpStream>,
}

impl Overloaded {
    fn start(total: u64, bound: usize, backpressure: bool) -> Overloaded {
        let (listener, port) = listen();
        let clock = ManualClock::new(Time::from_millis(0));
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: SECOND,
                parallelism: Parallelism::threads_exactly(2),
                backpressure,
                max_buffered_records: Some(bound),
                block_size: 100,
                ..StreamingConfig::default()
            })
            .clock(clock.clone())
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
        let server = serve_numbers(listener, total);
        // Before the first batch the receiver fills its buffer and stops reading.
        ssc.await_records_received(bound as u64, PATIENCE).unwrap();
        Overloaded {
            ssc,
            clock,
            in_flight,
            gate,
            batch_started,
            let_finish,
            seen,
            server,
        }
    }

    /// Runs the batches at 1 s, 2 s, ... `batches` s in order: each takes 1 ms of clock
    /// time per record; the clock moves on to a batch time that processing did not
    /// reach. Every batch time must get its batch. Gives each batch's records and
    /// scheduling delay.
    fn run(&self, batches: i64) -> Vec<(u64, Duration)> {
        let mut ran = Vec::new();
        for k in 1..=batches {
            let time = Time::from_millis(k * 1000);
            self.receiver_settled();
            if self.clock.now() < time {
                self.clock.set_time(time);
            }
            let (started_time, records) = self.batch_started.recv_timeout(PATIENCE).unwrap();
            assert_eq!(started_time, time);
            self.clock.advance(Duration::from_millis(records));
            self.let_finish.send(()).unwrap();
            let info = self.ssc.await_batch(time, PATIENCE).unwrap();
            ran.push((records, info.scheduling_delay().unwrap()));
        }
        ran
    }

    /// Waits until the receiver has stored what its buffer and rate let it: until its
    /// count stays put for a while. The clock moves in jumps the receiver takes real
    /// time to follow; without this wait the test would run batches faster than the
    /// receiver reads, and measure that.
    fn receiver_settled(&self) {
        let mut last = self.ssc.records_received();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.ssc.records_received();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Opens the gate, runs batches until every line is counted, and checks that each
    /// was counted exactly once.
    fn finish(self, total: u64, bound: usize) {
        self.gate.open.store(true, Ordering::SeqCst);
        drop(self.let_finish);
        let mut next = self.clock.now().as_millis() / 1000 * 1000;
        while self.ssc.records_received() < total
            || self.seen.lock().unwrap().len() < total as usize
        {
            next += 1000;
            self.clock.set_time(Time::from_millis(next));
            self.ssc
                .await_batch(Time::from_millis(next), PATIENCE)
                .unwrap();
        }
        assert!(self.ssc.peak_records_buffered() <= bound);
        self.ssc.stop(true).unwrap();
        assert_each_once(&self.seen, total);
        drop(self.server.join().unwrap());
    }
}

#[test]
fn a_bounded_buffer_keeps_batches_to_their_interval() {
    const BOUND: usize = 5_000;
    const TOTAL: u64 = 300_000;
    let overloaded = Overloaded::start(TOTAL, BOUND, false);
    let ran = overloaded.run(40);
    // A full buffer takes 5 s to process. The batch times that pass meanwhile get
    // their batches at once when it ends, empty but for the last, which takes what
    // waited in the buffer: no batch waits longer than one full batch takes, and the
    // delay does not grow. (Cut one at a time, each with a full buffer, the delay grew
    // by 4 s a batch, to over 150 s here.)
    let worst = ran.iter().map(|(_, delay)| *delay).max().unwrap();
    assert!(worst <= 5 * SECOND, "{ran:?}");
    let late = ran[20..].iter().map(|(_, delay)| *delay).max().unwrap();
    assert!(
        late >= 3 * SECOND,
        "the input did not outrun processing: {ran:?}"
    );
    // Processing ran all the time: 40 batches of clock time, 40,000 records less the
    // first interval, in which nothing was processed yet.
    let records: u64 = ran.iter().map(|(records, _)| records).sum();
    assert!((35_000..=45_000).contains(&records), "{records}: {ran:?}");
    assert!(overloaded.ssc.peak_records_buffered() <= BOUND);
    overloaded.finish(TOTAL, BOUND);
}

#[test]
fn backpressure_settles_near_the_processing_rate_without_collapsing() {
    const BOUND: usize = 5_000;
    const TOTAL: u64 = 100_000;
    let overloaded = Overloaded::start(TOTAL, BOUND, true);
    let ran = overloaded.run(40);
    // Until the first batch completes there is no estimate, and the receiver fills
    // its buffer twice more meanwhile (the clock jumps while that batch runs): the
    // first three batches hold full buffers and take 5 s each. From then on the rate
    // holds each batch to about what a second processes (1,000 records), and batches
    // start within a second of their time. Spark's estimator instead cut the rate to
    // its minimum, 100 records a second, for as long as the delay took to drain.
    let settled = &ran[15..];
    let worst = settled.iter().map(|(_, delay)| *delay).max().unwrap();
    assert!(worst <= 2 * SECOND, "{ran:?}");
    for window in settled.chunks(5) {
        let records: u64 = window.iter().map(|(records, _)| records).sum();
        assert!(
            (2_500..=6_500).contains(&records),
            "{records} records in 5 batches: {ran:?}"
        );
    }
    assert!(overloaded.ssc.peak_records_buffered() <= BOUND);
    assert!(
        overloaded.in_flight.most.load(Ordering::SeqCst) <= 7,
        "batches queued up"
    );
    overloaded.finish(TOTAL, BOUND);
}
