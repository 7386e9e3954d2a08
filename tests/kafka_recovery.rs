//! The Kafka crash test: a program running a stateful word count over a Kafka topic
//! is killed with SIGKILL in the middle of the stream and started again; its final
//! counts must equal the produced data exactly, nothing lost, nothing counted twice.
//!
//! All data is produced first; the rate cap spreads it over about ten batches, so a
//! kill lands mid-stream. The program is this test binary itself, run again as a
//! child with `DSTREAM_KAFKA_CRASH_CHILD` set to its directory and topic.
#![cfg(feature = "kafka")]

mod common;
mod kafka_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dstream::kafka::{KafkaSource, StartingOffsets};
use kafka_support::{config, new_topic, produce};

const CHILD_ENV: &str = "DSTREAM_KAFKA_CRASH_CHILD";
const PARTITIONS: i32 = 4;
const MESSAGES_PER_PARTITION: i32 = 200;
/// Records per partition per one-second batch: 10 batches for all the data.
const RATE: u64 = 20;
const SECOND: Duration = Duration::from_secs(1);

fn message(partition: i32, i: i32) -> String {
    (0..5)
        .map(|j| format!("w{}", (partition * 31 + i * 7 + j * j) % 23))
        .collect::<Vec<_>>()
        .join(" ")
}

fn expected_counts() -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for p in 0..PARTITIONS {
        for i in 0..MESSAGES_PER_PARTITION {
            for word in message(p, i).split_whitespace() {
                *counts.entry(word.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The child's role. Does nothing in an ordinary test run.
#[test]
#[ignore = "a child process's role, run by this file's tests; does nothing by itself"]
fn kafka_crash_child() {
    if let Ok(setting) = std::env::var(CHILD_ENV) {
        let (root, topic) = setting.split_once('|').expect("dir|topic");
        run_child(Path::new(root), topic).unwrap();
    }
}

fn run_child(root: &Path, topic: &str) -> dstream::Result<()> {
    let total: i64 = expected_counts().values().sum();
    let topic = topic.to_string();
    let (ssc, clock, done) =
        common::start_word_count_child(root, Duration::from_secs(2), total, move |ssc| {
            let source = KafkaSource::new(&config(), [topic])
                .starting_offsets(StartingOffsets::Earliest)
                .max_rate_per_partition(RATE);
            Ok(ssc.kafka_stream(source)?.text())
        })?;
    let mut steps = 0;
    while !done.load(Ordering::SeqCst) {
        // Two batches per step: the generator may run ahead of the executor, so a
        // kill can leave batches generated but unfinished.
        clock.advance(SECOND);
        clock.advance(SECOND);
        ssc.await_batch(clock.now(), Duration::from_secs(60))?;
        steps += 1;
        assert!(steps < 40, "the state never reached the total");
    }
    ssc.stop(true)
}

/// Runs the child; kills it with SIGKILL after `kill_after` progress lines if
/// given. Returns the first batch time it reported.
fn run_program(root: &Path, topic: &str, kill_after: Option<usize>) -> i64 {
    let setting = format!("{}|{topic}", root.display());
    common::run_child_program("kafka_crash_child", (CHILD_ENV, &setting), kill_after)
}

fn final_counts(root: &Path) -> BTreeMap<String, i64> {
    common::read_counts(&root.join("final.txt"))
}

#[test]
fn a_kafka_word_count_killed_mid_stream_recovers_with_exact_counts() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let topic = new_topic("crash", PARTITIONS);
    let messages: Vec<(i32, String)> = (0..PARTITIONS)
        .flat_map(|p| (0..MESSAGES_PER_PARTITION).map(move |i| (p, message(p, i))))
        .collect();
    produce(&topic, &messages);

    let uninterrupted = tempfile::tempdir().unwrap();
    assert_eq!(run_program(uninterrupted.path(), &topic, None), 1000);
    assert_eq!(final_counts(uninterrupted.path()), expected_counts());

    // Killed after the first checkpoint (batch 2), mid-way and late.
    for kill_after in [3, 6, 8] {
        let root = tempfile::tempdir().unwrap();
        run_program(root.path(), &topic, Some(kill_after));
        assert!(
            !root.path().join("final.txt").exists(),
            "killed before the end"
        );
        let resumed_at = run_program(root.path(), &topic, None);
        assert!(
            resumed_at > 2000,
            "the restart recovered a checkpoint (resumed at {resumed_at})"
        );
        assert_eq!(
            final_counts(root.path()),
            expected_counts(),
            "killed after {kill_after} batches"
        );
    }
}
