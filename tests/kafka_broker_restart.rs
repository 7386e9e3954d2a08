//! The broker goes away in the middle of a stream and comes back: batches meanwhile
//! are empty, the context keeps running, and once the broker is back every record
//! arrives exactly once.
//!
//! This test stops and starts the local broker with the project's scripts
//! (`.ci/kafka/`), keeping its data, so it must be the only test in its binary.
#![cfg(feature = "kafka")]

mod common;
mod kafka_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Harness;
use kafka_support::{bootstrap, earliest_stream, new_topic, produce};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".ci/kafka")
        .join(name)
}

/// The port of the local broker the scripts manage, which must be the one the tests
/// use.
fn local_port() -> String {
    let servers = bootstrap();
    let (host, port) = servers.rsplit_once(':').unwrap_or((&servers, "9092"));
    assert!(
        ["127.0.0.1", "localhost"].contains(&host),
        "this test restarts the local broker with .ci/kafka/*.sh; KAFKA_BOOTSTRAP_SERVERS={servers} is not a local broker"
    );
    port.to_string()
}

fn run_script(name: &str, port: &str) {
    let status = Command::new("bash")
        .arg(script(name))
        .env("KAFKA_PORT", port)
        .env("KAFKA_BROKER_KEEP_DATA", "1")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(status.success(), "{name} failed: {status}");
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing_and_counts_nothing_twice() {
    let port = local_port();
    let topic = new_topic("restart", 2);
    let first: Vec<(i32, String)> = (0..60).map(|i| (i % 2, format!("before {i}"))).collect();
    produce(&topic, &first);

    let h = Harness::seconds();
    let stream = earliest_stream(&h.ssc, &topic);
    let lines = common::collect(&stream.text());
    h.ssc.start().unwrap();
    assert_eq!(h.run_batch().num_records, 60);

    run_script("stop-broker.sh", &port);
    let down: Vec<u64> = h.run_batches(2).iter().map(|b| b.num_records).collect();
    assert_eq!(
        down,
        vec![0, 0],
        "batches while the broker is away are empty"
    );

    run_script("start-broker.sh", &port);
    let second: Vec<(i32, String)> = (0..40).map(|i| (i % 2, format!("after {i}"))).collect();
    produce(&topic, &second);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = 60;
    while received < 100 {
        assert!(
            Instant::now() < deadline,
            "only {received} of 100 records arrived after the restart"
        );
        let got = h.run_batch().num_records;
        if got == 0 {
            // The stream backs off while the broker was away: let real time pass.
            std::thread::sleep(Duration::from_millis(200));
        }
        received += got;
    }
    assert_eq!(h.run_batch().num_records, 0, "nothing arrives twice");
    h.ssc.stop(false).unwrap();

    let mut all: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, batch)| batch.clone())
        .collect();
    all.sort();
    let mut expected: Vec<String> = first.into_iter().chain(second).map(|(_, v)| v).collect();
    expected.sort();
    assert_eq!(all, expected);
}
