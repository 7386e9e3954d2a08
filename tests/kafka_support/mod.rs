//! Helpers of the Kafka tests: the broker's address, unique topics, a producer and a
//! reader that do not go through dstream, so they check it independently.
//!
//! The tests need a running broker named by `KAFKA_BOOTSTRAP_SERVERS` (`bash .ci/test`
//! starts one). Without it they fail and say so: a Kafka test that passes without
//! Kafka would prove nothing.

#![allow(dead_code)] // each test file uses its own subset

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dstream::StreamingContext;
use dstream::kafka::{
    KafkaConfig, KafkaSource, KafkaStream, StartingOffsets, TopicPartition, create_topic,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker's address, from `KAFKA_BOOTSTRAP_SERVERS`.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BOOTSTRAP_SERVERS is not set, and the `kafka` feature's tests need a Kafka broker. \
             Run `bash .ci/test` (it starts a local broker), or start one with \
             `bash .ci/kafka/start-broker.sh` and `export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092`"
        )
    })
}

/// The settings of the dstream clients in tests.
pub fn config() -> KafkaConfig {
    KafkaConfig::new(bootstrap()).request_timeout(Duration::from_secs(3))
}

/// A topic name no other test (or earlier run against a kept broker) uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A new topic with `partitions` partitions.
pub fn new_topic(prefix: &str, partitions: i32) -> String {
    let topic = unique_name(prefix);
    assert!(
        create_topic(&config(), &topic, partitions).expect("the broker creates topics"),
        "{topic} is new"
    );
    topic
}

/// Produces `(partition, value)` messages and waits until each is acknowledged.
pub fn produce(topic: &str, messages: &[(i32, String)]) {
    let raw: Vec<(i32, Option<&[u8]>)> = messages
        .iter()
        .map(|(partition, value)| (*partition, Some(value.as_bytes())))
        .collect();
    produce_raw(topic, &raw);
}

/// Produces `(partition, value bytes)` messages (`None`: a tombstone) and waits until
/// each is acknowledged.
pub fn produce_raw(topic: &str, messages: &[(i32, Option<&[u8]>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pending: Vec<_> = messages
        .iter()
        .map(|(partition, value)| {
            let mut record = FutureRecord::<(), [u8]>::to(topic).partition(*partition);
            if let Some(value) = value {
                record = record.payload(value);
            }
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued")
        })
        .collect();
    for delivery in pending {
        runtime
            .block_on(delivery)
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

/// Produces `count` messages to each of `partitions` partitions, values
/// `"<prefix> p<partition> m<i>"`.
pub fn produce_spread(topic: &str, partitions: i32, count: usize, prefix: &str) {
    let messages: Vec<(i32, String)> = (0..partitions)
        .flat_map(|p| (0..count).map(move |i| (p, format!("{prefix} p{p} m{i}"))))
        .collect();
    produce(topic, &messages);
}

/// Every value in `topic` (all partitions, from the start), read until `expected`
/// values arrived or `patience` passed.
pub fn read_back(
    topic: &str,
    partitions: i32,
    expected: usize,
    patience: Duration,
) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        // librdkafka assigns only with a group id; assigning never joins the group.
        .set("group.id", unique_name("read-back"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let deadline = Instant::now() + patience;
    let mut values = Vec::new();
    while values.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            values.push(message.payload().unwrap_or_default().to_vec());
        }
    }
    // Anything beyond `expected` would be a duplicate: give it a moment to show up.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
            values.push(message.payload().unwrap_or_default().to_vec());
        }
    }
    values
}

/// The offsets `group` has committed for the partitions of `topic` (-1: none).
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            },
        )
        .collect()
}

/// Waits until `check` holds, failing the test with `what` after `patience`.
pub fn eventually(what: &str, patience: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The partition `partition` of `topic`.
pub fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// A stream of `topic` from its earliest offset.
pub fn earliest_stream(ssc: &StreamingContext, topic: &str) -> KafkaStream {
    ssc.kafka_stream(
        KafkaSource::new(&config(), [topic]).starting_offsets(StartingOffsets::Earliest),
    )
    .unwrap()
}
