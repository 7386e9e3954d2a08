//! `write_to_kafka` against a real broker: every record is in the topic when the
//! batch completes, and a record that cannot be delivered fails the batch.
#![cfg(feature = "kafka")]

mod common;
mod kafka_support;

use common::{Harness, PATIENCE};
use dstream::kafka::KafkaMessage;
use dstream::{Error, RddQueue};
use kafka_support::{config, new_topic, read_back, unique_name};

#[test]
fn every_record_is_written_and_acknowledged_before_the_batch_completes() {
    let topic = new_topic("out", 3);
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize((0..300).collect::<Vec<u32>>()));
    queue.push(h.ssc.parallelize((300..500).collect::<Vec<u32>>()));
    h.ssc
        .queue_stream(&queue, true, None)
        .write_to_kafka(&config(), &topic, |n| {
            KafkaMessage::keyed(format!("k{}", n % 7), format!("n{n}"))
        })
        .unwrap();
    h.ssc.start().unwrap();
    h.run_batch();
    // The batch completed, so the broker has every record of it already.
    let first = read_back(&topic, 3, 300, PATIENCE);
    assert_eq!(first.len(), 300);
    h.run_batch();
    h.ssc.stop(false).unwrap();

    let mut values: Vec<String> = read_back(&topic, 3, 500, PATIENCE)
        .into_iter()
        .map(|v| String::from_utf8(v).unwrap())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..500).map(|n| format!("n{n}")).collect();
    expected.sort();
    assert_eq!(values, expected, "each record once");
}

#[test]
fn an_undeliverable_record_fails_the_batch_with_the_topic_named() {
    let missing = unique_name("never-created");
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec!["a".to_string()]));
    h.ssc
        .queue_stream(&queue, true, None)
        .write_to_kafka(
            &config().set("message.timeout.ms", "1500"),
            &missing,
            KafkaMessage::value,
        )
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(matches!(err, Error::BatchFailed { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("write_to_kafka"), "{message}");
    assert!(message.contains(&missing), "{message}");
    assert!(
        message.contains("1 of 1 record(s) could not be delivered"),
        "{message}"
    );
}
