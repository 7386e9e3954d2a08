//! Starting, stopping, failing: every bad use is a clear `Err`, never a panic, and a
//! panic in a user function fails its batch and surfaces through `await_termination`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Harness, PATIENCE, collect, sorted_batches};
use dstream::{
    BatchInfo, Error, Parallelism, RddQueue, StreamingConfig, StreamingContext, StreamingListener,
    Time,
};

#[test]
fn bad_settings_are_clear_errors() {
    let zero = StreamingContext::new("local[2]", Duration::ZERO).unwrap_err();
    assert!(matches!(zero, Error::InvalidBatchInterval { .. }), "{zero}");
    assert!(zero.to_string().contains("batch interval"));

    let fraction = StreamingContext::new("local[2]", Duration::from_micros(1500)).unwrap_err();
    assert!(
        matches!(fraction, Error::InvalidBatchInterval { .. }),
        "{fraction}"
    );

    for master in ["local[0]", "local[x]", "spark://host:7077", "", "-3"] {
        let err = StreamingContext::new(master, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParallelism { .. }),
            "{master}: {err}"
        );
        assert!(err.to_string().contains("local[*]"), "{err}");
    }
    for (master, threads) in [("local", 1), ("local[3]", 3), ("2", 2)] {
        let ssc = StreamingContext::new(master, Duration::from_secs(1)).unwrap();
        assert_eq!(ssc.parallelism(), threads);
    }
}

#[test]
fn starting_needs_an_output_operation() {
    let h = Harness::seconds();
    let _unused = h.ssc.queue_stream(&RddQueue::<u8>::new(), true, None);
    let err = h.ssc.start().unwrap_err();
    assert!(matches!(err, Error::NoOutputOperations), "{err}");
}

#[test]
fn starting_twice_or_after_stop_is_an_error() {
    let h = Harness::seconds();
    collect(&h.ssc.queue_stream(&RddQueue::<u8>::new(), true, None));
    h.ssc.start().unwrap();
    assert!(matches!(h.ssc.start(), Err(Error::AlreadyStarted)));
    h.ssc.stop(false).unwrap();
    assert!(matches!(h.ssc.start(), Err(Error::AlreadyStopped)));
    h.ssc.stop(true).unwrap(); // stopping again does nothing
}

#[test]
fn operations_added_after_start_are_errors() {
    let h = Harness::seconds();
    let numbers = h.ssc.queue_stream(&RddQueue::<i32>::new(), true, None);
    collect(&numbers);
    h.ssc.start().unwrap();

    let late = numbers.map(|x| x + 1);
    let err = late.pprint().unwrap_err();
    assert!(
        matches!(
            err,
            Error::AddedAfterStart {
                operation: "pprint"
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("before start()"));
    assert!(matches!(
        late.foreach_rdd(|_, _| ()),
        Err(Error::AddedAfterStart {
            operation: "foreach_rdd"
        })
    ));
    assert!(matches!(
        late.save_as_text_files("never", "txt"),
        Err(Error::AddedAfterStart { .. })
    ));
    h.ssc.stop(false).unwrap();
}

#[test]
fn streams_of_different_contexts_do_not_mix() {
    let (a, b) = (Harness::seconds(), Harness::seconds());
    let sa = a.ssc.queue_stream(&RddQueue::<u8>::new(), true, None);
    let sb = b.ssc.queue_stream(&RddQueue::<u8>::new(), true, None);
    let err = sa.union(&sb).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IncompatibleStreams {
                operation: "union",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("different streaming contexts"),
        "{err}"
    );
    assert!(a.ssc.union(std::slice::from_ref(&sb)).is_err());
    assert!(a.ssc.union::<u8>(&[]).is_err());
    let pairs_a = sa.map(|x| (x, ()));
    let pairs_b = sb.map(|x| (x, ()));
    assert!(pairs_a.join(&pairs_b).is_err());
}

#[test]
fn awaiting_a_context_that_never_started_is_an_error() {
    let h = Harness::seconds();
    assert!(matches!(h.ssc.await_termination(), Err(Error::NotStarted)));
    assert!(matches!(
        h.ssc.await_termination_or_timeout(Duration::from_millis(1)),
        Err(Error::NotStarted)
    ));
}

#[test]
fn a_panic_in_a_user_function_fails_the_batch_and_stops_the_context() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![1, 2, 3]));
    queue.push(h.ssc.parallelize(vec![4, 0, 6]));
    let ratios = h.ssc.queue_stream(&queue, true, None).map(|x| {
        if x == 0 {
            panic!("cannot divide by zero");
        }
        12 / x
    });
    let out = collect(&ratios);
    h.ssc.start().unwrap();
    h.run_batch();
    h.clock.advance(h.interval);

    let err = h.ssc.await_termination().unwrap_err();
    match &err {
        Error::BatchFailed {
            time,
            message,
            cause: None,
        } => {
            assert_eq!(*time, Time::from_millis(2000));
            assert!(message.contains("cannot divide by zero"), "{message}");
            assert!(
                message.contains("foreach_rdd"),
                "names the output: {message}"
            );
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().starts_with("batch 2000 ms failed"), "{err}");
    // The context stopped: the error is returned again, and nothing else runs.
    assert!(h.ssc.await_termination_or_timeout(PATIENCE).is_err());
    assert!(matches!(h.ssc.start(), Err(Error::AlreadyStopped)));
    assert_eq!(sorted_batches(&out), vec![vec![4, 6, 12]]);
}

#[test]
fn a_panic_while_computing_the_streams_fails_the_batch() {
    let h = Harness::seconds();
    let numbers = h.ssc.queue_stream(&RddQueue::<i32>::new(), true, None);
    collect(&numbers.transform(|rdd, time| {
        if time.as_millis() == 2000 {
            panic!("transform refuses batch {time}");
        }
        rdd
    }));
    h.ssc.start().unwrap();
    h.run_batch();
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(
        err.to_string().contains("transform refuses batch 2000 ms"),
        "{err}"
    );
}

#[test]
fn an_output_function_returning_an_error_fails_the_batch() {
    let h = Harness::seconds();
    h.ssc
        .queue_stream(&RddQueue::<i32>::new(), true, None)
        .foreach_rdd(|_, _| -> Result<(), String> { Err("database unreachable".into()) })
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(err.to_string().contains("database unreachable"), "{err}");
}

/// The error a user function returns is kept whole, as the failure's source.
#[test]
fn an_output_error_is_kept_as_the_failures_cause() {
    #[derive(Debug)]
    struct Unreachable {
        host: &'static str,
    }
    impl std::fmt::Display for Unreachable {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} is unreachable", self.host)
        }
    }
    impl std::error::Error for Unreachable {}

    let h = Harness::seconds();
    h.ssc
        .queue_stream(&RddQueue::<i32>::new(), true, None)
        .foreach_rdd(|_, _| Err(Unreachable { host: "db-1" }))
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err();
    let Error::BatchFailed {
        cause: Some(cause), ..
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    let cause = cause
        .downcast_ref::<Unreachable>()
        .expect("the user's own error");
    assert_eq!(cause.host, "db-1");
    let source = std::error::Error::source(&err).expect("the cause is the source");
    assert_eq!(source.to_string(), "db-1 is unreachable");
    assert_eq!(
        err.to_string(),
        "batch 1000 ms failed: output operation 1 (foreach_rdd of #0 queue_stream): db-1 is unreachable"
    );
}

#[test]
fn a_batch_can_stop_its_own_context() {
    let h = Harness::seconds();
    let ssc = h.ssc.clone();
    h.ssc
        .queue_stream(&RddQueue::<i32>::new(), true, None)
        .foreach_rdd(move |_, _| ssc.stop(true))
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(h.interval);
    h.ssc.await_termination().unwrap();
    assert!(h.ssc.await_termination_or_timeout(PATIENCE).unwrap());
}

#[test]
fn await_termination_or_timeout_tells_whether_the_context_stopped() {
    let h = Harness::seconds();
    collect(&h.ssc.queue_stream(&RddQueue::<u8>::new(), true, None));
    h.ssc.start().unwrap();
    assert!(
        !h.ssc
            .await_termination_or_timeout(Duration::from_millis(10))
            .unwrap()
    );
    h.ssc.stop(false).unwrap();
    assert!(
        h.ssc
            .await_termination_or_timeout(Duration::from_millis(10))
            .unwrap()
    );
}

#[test]
fn a_graceful_stop_processes_what_was_already_received() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    let out = collect(&h.ssc.queue_stream(&queue, true, None));
    h.ssc.start().unwrap();
    h.run_batch();
    queue.push(h.ssc.parallelize(vec![42]));
    // No clock advance: the graceful stop itself runs a last batch for the data.
    h.ssc.stop(true).unwrap();
    assert_eq!(sorted_batches(&out), vec![vec![], vec![42]]);
    let times = common::batch_millis(&out);
    assert_eq!(times, vec![1000, 2000]);
}

#[test]
fn a_stop_that_is_not_graceful_drops_nothing_it_already_ran() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![1]));
    let out = collect(&h.ssc.queue_stream(&queue, true, None));
    h.ssc.start().unwrap();
    h.run_batch();
    queue.push(h.ssc.parallelize(vec![2]));
    h.ssc.stop(false).unwrap();
    assert_eq!(sorted_batches(&out), vec![vec![1]]);
}

/// Records every event it is given, in order.
#[derive(Default)]
struct EventLog(Mutex<Vec<String>>, Mutex<Vec<BatchInfo>>);

impl StreamingListener for EventLog {
    fn on_streaming_started(&self, first: Time) {
        self.0
            .lock()
            .unwrap()
            .push(format!("started {}", first.as_millis()));
    }
    fn on_batch_submitted(&self, b: &BatchInfo) {
        self.0
            .lock()
            .unwrap()
            .push(format!("submitted {}", b.batch_time.as_millis()));
    }
    fn on_batch_started(&self, b: &BatchInfo) {
        self.0
            .lock()
            .unwrap()
            .push(format!("started {}", b.batch_time.as_millis()));
    }
    fn on_batch_completed(&self, b: &BatchInfo) {
        self.0
            .lock()
            .unwrap()
            .push(format!("completed {}", b.batch_time.as_millis()));
        self.1.lock().unwrap().push(b.clone());
    }
    fn on_streaming_stopped(&self) {
        self.0.lock().unwrap().push("stopped".into());
    }
}

#[test]
fn listeners_get_every_batch_with_its_figures() {
    let h = Harness::seconds();
    let events = Arc::new(EventLog::default());
    h.ssc.add_listener(events.clone());
    // Processing advances the manual clock by 300 ms, so the delays are exact.
    let clock = h.clock.clone();
    h.ssc
        .rate_stream(5)
        .foreach_rdd(move |rdd, _| {
            rdd.count();
            clock.advance(Duration::from_millis(300));
        })
        .unwrap();
    h.ssc.start().unwrap();
    // Two intervals at once: batch 1 is generated late, batch 2 waits behind it.
    h.clock.advance(Duration::from_secs(2));
    h.ssc.await_batch(h.batch_time(2), PATIENCE).unwrap();
    h.ssc.stop(false).unwrap();

    // The generator may queue batch 2 before batch 1 starts; everything else is ordered.
    let log = events.0.lock().unwrap().clone();
    let position = |event: &str| log.iter().position(|e| e == event).unwrap();
    assert_eq!(log.first().unwrap(), "started 1000");
    assert_eq!(log.last().unwrap(), "stopped");
    assert_eq!(log.len(), 8);
    assert!(position("submitted 1000") < position("submitted 2000"));
    assert!(position("submitted 2000") < position("started 2000"));
    let executed: Vec<&String> = log
        .iter()
        .filter(|e| {
            e.starts_with("completed") || (e.starts_with("started") && *e != "started 1000")
        })
        .collect();
    assert_eq!(
        executed,
        ["completed 1000", "started 2000", "completed 2000"]
    );
    let first_start = log.iter().rposition(|e| e == "started 1000").unwrap();
    assert!(position("submitted 1000") < first_start && first_start < position("completed 1000"));
    let infos = events.1.lock().unwrap().clone();
    let figures: Vec<_> = infos
        .iter()
        .map(|i| {
            (
                i.num_records,
                i.scheduling_delay().unwrap().as_millis(),
                i.processing_delay().unwrap().as_millis(),
                i.total_delay().unwrap().as_millis(),
            )
        })
        .collect();
    assert_eq!(figures, vec![(5, 1000, 300, 1300), (5, 300, 300, 600)]);
    assert!(
        infos
            .iter()
            .all(|i| i.failure.is_none() && i.output_operations == 1)
    );
}

#[test]
fn failed_batches_are_reported_to_listeners() {
    let h = Harness::seconds();
    let events = Arc::new(EventLog::default());
    h.ssc.add_listener(events.clone());
    h.ssc
        .queue_stream(&RddQueue::<i32>::new(), true, None)
        .foreach_rdd(|_, _| -> Result<(), &str> { Err("nope") })
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(h.interval);
    assert!(h.ssc.await_termination().is_err());
    let infos = events.1.lock().unwrap().clone();
    assert_eq!(infos.len(), 1);
    assert!(infos[0].failure.as_deref().unwrap().contains("nope"));
}

/// A context on a manual clock whose stop gives up on stuck batches after 300 ms.
fn stopping_within_300ms() -> Harness {
    let clock = dstream::ManualClock::new(Time::from_millis(0));
    let interval = Duration::from_secs(1);
    let ssc = StreamingContext::builder()
        .config(StreamingConfig {
            batch_interval: interval,
            parallelism: Parallelism::threads_exactly(2),
            stop_timeout: Some(Duration::from_millis(300)),
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    Harness {
        ssc,
        clock,
        interval,
    }
}

/// Stops `h` (gracefully or not) on another thread; fails unless the stop returns
/// well within a few stop timeouts although a batch is stuck.
fn assert_stop_returns(h: Harness, graceful: bool) {
    let (tx, rx) = std::sync::mpsc::channel();
    let ssc = h.ssc.clone();
    std::thread::spawn(move || {
        let _ = tx.send(ssc.stop(graceful));
    });
    let stopped = rx.recv_timeout(Duration::from_secs(10));
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "stop({graceful}) did not return in time: {stopped:?}"
    );
    assert!(h.ssc.await_termination_or_timeout(PATIENCE).unwrap());
}

#[test]
fn stop_returns_after_its_timeout_while_an_output_is_stuck() {
    for graceful in [false, true] {
        let h = stopping_within_300ms();
        let (started, release) = (
            Arc::new(std::sync::Barrier::new(2)),
            Arc::new(Mutex::new(())),
        );
        let held = release.lock().unwrap();
        let (entered, gate) = (started.clone(), release.clone());
        h.ssc
            .queue_stream(&RddQueue::<u8>::new(), true, None)
            .foreach_rdd(move |_, _| {
                entered.wait();
                drop(gate.lock()); // blocks until the test lets go
            })
            .unwrap();
        h.ssc.start().unwrap();
        h.clock.advance(h.interval);
        started.wait();
        assert_stop_returns(h, graceful);
        drop(held);
    }
}

#[test]
fn stop_returns_after_its_timeout_while_computing_a_batch_is_stuck() {
    for graceful in [false, true] {
        let h = stopping_within_300ms();
        let (started, release) = (
            Arc::new(std::sync::Barrier::new(2)),
            Arc::new(Mutex::new(())),
        );
        let held = release.lock().unwrap();
        let (entered, gate) = (started.clone(), release.clone());
        // `transform` runs when the batch is generated, as an input's cut does.
        collect(
            &h.ssc
                .queue_stream(&RddQueue::<u8>::new(), true, None)
                .transform(move |rdd, _| {
                    entered.wait();
                    drop(gate.lock());
                    rdd
                }),
        );
        h.ssc.start().unwrap();
        h.clock.advance(h.interval);
        started.wait();
        assert_stop_returns(h, graceful);
        drop(held);
    }
}

/// A context whose batches go on after one fails, on a manual clock.
fn continuing_harness() -> Harness {
    let clock = dstream::ManualClock::new(Time::from_millis(0));
    let ssc = StreamingContext::builder()
        .config(StreamingConfig {
            batch_interval: Duration::from_secs(1),
            parallelism: Parallelism::threads_exactly(2),
            continue_after_failed_batch: true,
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    Harness {
        ssc,
        clock,
        interval: Duration::from_secs(1),
    }
}

#[test]
fn with_continue_after_failed_batch_the_next_batches_run_and_the_failure_is_reported() {
    let h = continuing_harness();
    let queue = RddQueue::new();
    for batch in [vec![1, 2], vec![4, 0], vec![6]] {
        queue.push(h.ssc.parallelize(batch));
    }
    let ratios = h.ssc.queue_stream(&queue, true, None).map(|x| {
        if x == 0 {
            panic!("cannot divide by zero");
        }
        12 / x
    });
    let out = collect(&ratios);
    h.ssc.start().unwrap();
    let infos = h.run_batches(3);

    // The failed batch is reported, and the ones after it ran.
    assert!(infos[0].failure.is_none());
    let failure = infos[1].failure.as_deref().unwrap_or_default();
    assert!(failure.contains("cannot divide by zero"), "{failure}");
    assert!(infos[2].failure.is_none());
    assert_eq!(sorted_batches(&out), vec![vec![6, 12], vec![2]]);
    // Waiting for the end returns the first failure at once, while the context runs.
    let err = h.ssc.await_termination_or_timeout(PATIENCE).unwrap_err();
    assert!(
        matches!(&err, Error::BatchFailed { time, .. } if *time == Time::from_millis(2000)),
        "{err}"
    );
    assert!(h.ssc.await_termination().is_err());
    h.ssc.stop(false).unwrap();
}

#[test]
fn with_continue_after_failed_batch_a_program_with_state_still_stops() {
    let h = continuing_harness();
    let dir = tempfile::tempdir().unwrap();
    h.ssc.checkpoint(dir.path()).unwrap();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![("a".to_string(), 1)]));
    queue.push(h.ssc.parallelize(vec![("a".to_string(), 0)]));
    queue.push(h.ssc.parallelize(vec![("a".to_string(), 1)]));
    let totals = h.ssc.queue_stream(&queue, true, None).update_state_by_key(
        |new: &[i32], total: Option<i32>| {
            assert!(!new.contains(&0), "a zero in the batch");
            Some(total.unwrap_or(0) + new.iter().sum::<i32>())
        },
    );
    let out = collect(&totals);
    h.ssc.start().unwrap();
    h.run_batch();
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(err.to_string().contains("a zero in the batch"), "{err}");
    // The state cannot skip the failed batch: the context stopped after it.
    assert!(matches!(h.ssc.start(), Err(Error::AlreadyStopped)));
    h.clock.advance(h.interval);
    assert_eq!(sorted_batches(&out), vec![vec![("a".to_string(), 1)]]);
}

#[test]
fn waiting_for_a_time_off_the_batch_grid_says_so() {
    let h = Harness::seconds();
    h.ssc
        .queue_stream(&RddQueue::<i32>::new(), true, None)
        .foreach_rdd(|_, _| {})
        .unwrap();
    h.ssc.start().unwrap();
    h.run_batches(2);
    let err = h
        .ssc
        .await_batch(Time::from_millis(1500), PATIENCE)
        .unwrap_err();
    assert!(
        matches!(err, Error::NotABatchTime { time } if time == Time::from_millis(1500)),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "1500 ms is not a batch time of this context: batch times are the start time plus whole batch intervals"
    );
}
