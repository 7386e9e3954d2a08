//! `StreamingConfig` end to end: contexts built from a configuration (from code, from
//! `DSTREAM_*` variables and from Spark keys) behave as it says.

mod common;

use std::time::Duration;

use common::{PATIENCE, collect, sorted_batches};
use dstream::{Error, ManualClock, RddQueue, StreamingConfig, StreamingContext, Time};

fn config(vars: &[(&str, &str)]) -> dstream::Result<StreamingConfig> {
    StreamingConfig::default().with_vars(vars.iter().copied())
}

#[test]
fn a_context_takes_its_settings_from_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let settings = config(&[
        ("DSTREAM_BATCH_INTERVAL_MS", "500"),
        ("DSTREAM_MASTER", "local[3]"),
        ("DSTREAM_CHECKPOINT_INTERVAL_MS", "1000"),
    ])
    .unwrap();
    let clock = ManualClock::new(Time::from_millis(0));
    let ssc = StreamingContext::builder()
        .config(settings)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(ssc.batch_interval(), Duration::from_millis(500));
    assert_eq!(ssc.parallelism(), 3);
    ssc.checkpoint(&checkpoint).unwrap();

    // State needs the checkpoint directory, and is written before the first batch,
    // then every configured interval: after batch 1000, not after batch 500.
    let queue = RddQueue::new();
    for word in ["a", "b", "a"] {
        queue.push(ssc.parallelize(vec![word.to_string()]));
    }
    let totals = ssc
        .queue_stream(&queue, true, None)
        .map(|w| (w, 1))
        .update_state_by_key(|new: &[i32], total: Option<i32>| {
            Some(total.unwrap_or(0) + new.iter().sum::<i32>())
        });
    let out = collect(&totals);
    ssc.start().unwrap();
    clock.advance(Duration::from_millis(500));
    ssc.await_batch(Time::from_millis(500), PATIENCE).unwrap();
    let written = || std::fs::read_dir(&checkpoint).map_or(0, |d| d.count());
    assert_eq!(written(), 1);
    clock.advance(Duration::from_millis(500));
    ssc.await_batch(Time::from_millis(1000), PATIENCE).unwrap();
    assert_eq!(written(), 2);
    clock.advance(Duration::from_millis(500));
    ssc.await_batch(Time::from_millis(1500), PATIENCE).unwrap();
    ssc.stop(true).unwrap();
    let last = sorted_batches(&out).pop().unwrap();
    assert_eq!(last, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
}

#[test]
fn invalid_settings_are_reported_with_their_names() {
    let err = config(&[("DSTREAM_BATCH_INTERVAL_MS", "soon")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid setting DSTREAM_BATCH_INTERVAL_MS=\"soon\": expected a whole number of milliseconds"
    );
    let err = StreamingContext::from_config(StreamingConfig {
        batch_interval: Duration::from_secs(1),
        receiver_max_rate: Some(0),
        ..StreamingConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSetting {
                setting: "receiver_max_rate",
                ..
            }
        ),
        "{err}"
    );
    let err = StreamingContext::from_config(StreamingConfig {
        batch_interval: Duration::from_secs(1),
        checkpoint_interval: Some(Duration::from_millis(1500)),
        ..StreamingConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("checkpoint_interval"), "{err}");
    let err = StreamingContext::from_config(StreamingConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidBatchInterval { .. }), "{err}");
}

/// Runs three batches of `ssc` on `clock` with a queue of `[1]`, `[2]`, `[3]` and
/// returns what the input stream still remembers afterwards.
fn remembered_after_three_batches(ssc: &StreamingContext, clock: &ManualClock) -> Vec<Vec<i32>> {
    let queue = RddQueue::new();
    for n in 1..=3 {
        queue.push(ssc.parallelize(vec![n]));
    }
    let numbers = ssc.queue_stream(&queue, true, None);
    numbers.foreach_rdd(|_, _| ()).unwrap();
    ssc.start().unwrap();
    for second in 1..=3 {
        clock.advance(Duration::from_secs(1));
        ssc.await_batch(Time::from_millis(second * 1000), PATIENCE)
            .unwrap();
    }
    let kept = numbers
        .slice(Time::from_millis(0), Time::from_millis(3000))
        .into_iter()
        .map(|(_, rdd)| rdd.collect())
        .collect();
    ssc.stop(false).unwrap();
    kept
}

#[test]
fn the_remember_duration_keeps_past_batches() {
    let context = |remember: Option<u64>| {
        let clock = ManualClock::new(Time::from_millis(0));
        let ssc = StreamingContext::builder()
            .config(config(&[("DSTREAM_BATCH_INTERVAL_MS", "1000")]).unwrap())
            .clock(clock.clone())
            .build()
            .unwrap();
        if let Some(ms) = remember {
            ssc.remember(Duration::from_millis(ms)).unwrap();
        }
        (ssc, clock)
    };
    let (ssc, clock) = context(Some(2000));
    assert_eq!(
        remembered_after_three_batches(&ssc, &clock),
        vec![vec![2], vec![3]]
    );
    let (ssc, clock) = context(None);
    assert!(remembered_after_three_batches(&ssc, &clock).is_empty());
}

#[test]
fn a_context_takes_its_settings_from_spark_keys() {
    let settings = StreamingConfig {
        batch_interval: Duration::from_secs(1),
        ..StreamingConfig::default()
    }
    .with_spark_conf([
        ("spark.master", "local[3]"),
        ("spark.streaming.receiver.maxRate", "100"),
        ("spark.ui.port", "0"),
    ])
    .unwrap();
    let ssc = StreamingContext::builder()
        .config(settings)
        .clock(ManualClock::default())
        .build()
        .unwrap();
    assert_eq!(ssc.parallelism(), 3);
    assert_eq!(ssc.config().receiver_max_rate, Some(100));
    let page = ssc.status_page_address().unwrap();
    assert!(page.ip().is_loopback() && page.port() != 0, "{page}");
}
