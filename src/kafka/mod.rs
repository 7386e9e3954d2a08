//! Kafka input and output (feature `kafka`), on librdkafka through `rdkafka`.
//!
//! - **Input**: [`StreamingContext::kafka_stream`](crate::StreamingContext::kafka_stream)
//!   is Spark's *direct* approach: no receiver. At each batch time the stream decides,
//!   per topic-partition, the offsets `[from, until)` the batch reads (`until` is the
//!   partition's latest offset then, capped by
//!   [`KafkaSource::max_rate_per_partition`]): one `Rdd` partition per Kafka
//!   partition. Deciding reads nothing: each partition reads its range when it is
//!   computed, on the context's pool inside the batch's job (as Spark's
//!   `KafkaRDD.compute`), with a consumer kept per partition between batches. What
//!   was read is kept with the batch, so a window or a second output does not read
//!   again; a read that cannot finish fails the batch with a [`Error::Kafka`]. The
//!   next offsets are saved in each checkpoint and each batch's ranges are recorded
//!   with it, so a restarted program reads unfinished batches again exactly: state is
//!   exactly-once.
//! - **Offsets for user code**: [`KafkaStream::offset_ranges`] and
//!   [`KafkaStream::foreach_rdd_with_offsets`], as Spark's `HasOffsetRanges`.
//! - **Output**: [`DStream::write_to_kafka`](crate::DStream::write_to_kafka) waits for
//!   every delivery acknowledgement before the batch counts as done. Output is
//!   at-least-once: a batch run again after a crash writes its records again.
//! - **Topics**: [`create_topic`] creates a topic if it is missing.
//! - **Scale-out**: [`KafkaGroup`] runs the same program on several processes as a
//!   consumer group, with keyed state, windows and joins sharded through repartition
//!   and changelog topics.
//!
//! ```no_run
//! use dstream::kafka::{KafkaConfig, KafkaSource, StartingOffsets};
//! use dstream::StreamingContext;
//! use std::time::Duration;
//!
//! fn main() -> dstream::Result<()> {
//!     let config = KafkaConfig::from_env(); // KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092
//!     dstream::kafka::create_topic(&config, "words", 4)?;
//!     let ssc = StreamingContext::new("local[*]", Duration::from_secs(2))?;
//!     let words = ssc.kafka_stream(
//!         KafkaSource::new(&config, ["words"]).starting_offsets(StartingOffsets::Earliest),
//!     )?;
//!     words
//!         .text()
//!         .flat_map(|line| line.split_whitespace().map(String::from).collect::<Vec<_>>())
//!         .map(|word| (word, 1))
//!         .reduce_by_key(|a, b| a + b)
//!         .pprint()?;
//!     ssc.start()?;
//!     ssc.await_termination()
//! }
//! ```

mod commit;
mod delivery;
mod group;
mod input;
mod reader;
mod record;
mod sink;
mod source;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

pub use group::{Assignment, GroupStream, KafkaGroup, Repartitioned, ShardProgress};
pub use record::{KafkaMessage, KafkaRecord, OffsetRange, TopicPartition};
pub use source::{KafkaSource, KafkaStream, OffsetReset, StartingOffsets};

use crate::error::{Error, Result};

/// The environment variable [`KafkaConfig::from_env`] reads.
pub const BOOTSTRAP_SERVERS_ENV: &str = "KAFKA_BOOTSTRAP_SERVERS";

/// Where the broker is and how to talk to it: the settings every Kafka client of a
/// program shares.
///
/// ```
/// use dstream::kafka::KafkaConfig;
/// use std::time::Duration;
/// let config = KafkaConfig::new("127.0.0.1:9092")
///     .set("client.id", "word-count")
///     .request_timeout(Duration::from_secs(3));
/// assert_eq!(config.bootstrap_servers(), "127.0.0.1:9092");
/// ```
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    bootstrap_servers: String,
    settings: BTreeMap<String, String>,
    request_timeout: Duration,
}

impl KafkaConfig {
    /// Clients of the brokers at `bootstrap_servers` (`host:port[,host:port...]`).
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            settings: BTreeMap::new(),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// The brokers named by `KAFKA_BOOTSTRAP_SERVERS`, else `127.0.0.1:9092` (the
    /// local broker that `bash .ci/kafka/start-broker.sh` starts).
    pub fn from_env() -> Self {
        KafkaConfig::new(
            std::env::var(BOOTSTRAP_SERVERS_ENV).unwrap_or_else(|_| "127.0.0.1:9092".into()),
        )
    }

    /// Sets a librdkafka property for every client (see librdkafka's
    /// CONFIGURATION.md), for example `security.protocol`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// How long one request to the broker (metadata, offsets) may take before the
    /// broker counts as unreachable, and how long reading a batch's range may wait
    /// without a record before it fails the batch. Default: 5 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The brokers.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.request_timeout
    }

    /// An rdkafka configuration with these settings over `defaults`.
    pub(crate) fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        // A restarted broker is found again within a second or two, not ten.
        config.set("reconnect.backoff.max.ms", "1000");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }
}

/// The error of a failed Kafka client call.
pub(crate) fn kafka_error(action: impl Into<String>, error: impl std::fmt::Display) -> Error {
    Error::Kafka {
        action: action.into(),
        reason: error.to_string(),
    }
}

/// Creates `topic` with `partitions` partitions (replication factor 1) unless it
/// exists. Returns whether it was created. Brokers that do not create topics on first
/// use (such as the local test broker) need this before anything is produced.
///
/// ```no_run
/// use dstream::kafka::{KafkaConfig, create_topic};
/// let created = create_topic(&KafkaConfig::from_env(), "words", 4).unwrap();
/// # let _ = created;
/// ```
pub fn create_topic(config: &KafkaConfig, topic: &str, partitions: i32) -> Result<bool> {
    let action = || format!("create topic {topic:?}");
    let admin: AdminClient<DefaultClientContext> = config
        .client_config(&[])
        .create()
        .map_err(|e| kafka_error(action(), e))?;
    let options = AdminOptions::new().operation_timeout(Some(config.timeout()));
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| kafka_error(action(), e))?;
    let created = runtime.block_on(async {
        tokio::time::timeout(
            config.timeout() * 2,
            admin.create_topics([&new_topic], &options),
        )
        .await
    });
    let results = match created {
        Err(_) => {
            return Err(kafka_error(
                action(),
                format!(
                    "no answer from {} within {:?}: is the broker running? (bash .ci/kafka/start-broker.sh starts a local one)",
                    config.bootstrap_servers(),
                    config.timeout() * 2
                ),
            ));
        }
        Ok(results) => results.map_err(|e| kafka_error(action(), e))?,
    };
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(kafka_error(action(), code)),
        None => Err(kafka_error(action(), "the broker gave no result")),
    }
}

/// Fast checks on librdkafka's in-process mock cluster; the integration tests in
/// `tests/kafka_*.rs` use a real broker.
#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;
    use crate::{ManualClock, Parallelism, StreamingConfig, StreamingContext, Time};

    fn context() -> (StreamingContext, ManualClock) {
        let clock = ManualClock::new(Time::from_millis(0));
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: Duration::from_secs(1),
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(clock.clone())
            .build()
            .unwrap();
        (ssc, clock)
    }

    fn run_batches(ssc: &StreamingContext, clock: &ManualClock, n: i64) -> Vec<u64> {
        (1..=n)
            .map(|k| {
                clock.advance(Duration::from_secs(1));
                ssc.await_batch(Time::from_millis(k * 1000), Duration::from_secs(30))
                    .unwrap()
                    .num_records
            })
            .collect()
    }

    #[test]
    fn capped_batches_commits_and_writes_on_a_mock_cluster() {
        let cluster = MockCluster::new(1).unwrap();
        let servers = cluster.bootstrap_servers();
        cluster.create_topic("in", 4, 1).unwrap();
        cluster.create_topic("out", 2, 1).unwrap();
        let config = KafkaConfig::new(&servers);
        let producer: BaseProducer = config.client_config(&[]).create().unwrap();
        for p in 0..4 {
            for i in 0..50 * (p + 1) {
                let value = format!("p{p} m{i}");
                producer
                    .send(BaseRecord::<(), _>::to("in").partition(p).payload(&value))
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let (ssc, clock) = context();
        let source = KafkaSource::new(&config, ["in"])
            .starting_offsets(StartingOffsets::Earliest)
            .max_rate_per_partition(60)
            .group_id("g")
            .commit_offsets(true);
        let stream = ssc.kafka_stream(source).unwrap();
        stream
            .text()
            .write_to_kafka(&config, "out", KafkaMessage::value)
            .unwrap();
        ssc.start().unwrap();
        assert_eq!(run_batches(&ssc, &clock, 5), vec![230, 160, 90, 20, 0]);
        let until: Vec<i64> = stream
            .offset_ranges(Time::from_millis(3000))
            .unwrap()
            .iter()
            .map(|r| r.until_offset)
            .collect();
        assert_eq!(until, vec![50, 100, 150, 180]);
        ssc.stop(false).unwrap();

        let client: BaseConsumer = config.client_config(&[("group.id", "g")]).create().unwrap();
        let written: i64 = (0..2)
            .map(|p| {
                client
                    .fetch_watermarks("out", p, Duration::from_secs(5))
                    .unwrap()
                    .1
            })
            .sum();
        assert_eq!(written, 500, "every record written once");
        let mut partitions = TopicPartitionList::new();
        (0..4).for_each(|p| {
            partitions.add_partition("in", p);
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let committed: Vec<Offset> = client
                .committed_offsets(partitions.clone(), Duration::from_secs(5))
                .unwrap()
                .elements()
                .iter()
                .map(|e| e.offset())
                .collect();
            let expected: Vec<Offset> = [50, 100, 150, 200].map(Offset::Offset).to_vec();
            if committed == expected {
                break;
            }
            assert!(Instant::now() < deadline, "committed {committed:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn produce(producer: &BaseProducer, topic: &str, partition: i32, values: &[&str]) {
        for value in values {
            producer
                .send(
                    BaseRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(*value),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    /// A cut only decides the ranges: the batch's job reads them, on the pool. So a
    /// broker that goes away after the cut fails the batch (with the read's error)
    /// rather than giving a short or empty one.
    #[test]
    fn a_batch_reads_its_ranges_on_the_pool_when_computed_and_a_failed_read_fails_it() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("lazy", 2, 1).unwrap();
        let config = KafkaConfig::new(cluster.bootstrap_servers())
            .request_timeout(Duration::from_millis(500));
        let producer: BaseProducer = config.client_config(&[]).create().unwrap();
        produce(&producer, "lazy", 0, &["a", "b", "c"]);

        let (ssc, clock) = context();
        let stream = ssc
            .kafka_stream(
                KafkaSource::new(&config, ["lazy"]).starting_offsets(StartingOffsets::Earliest),
            )
            .unwrap();
        // The first output holds each batch, after its cut, until the test lets it go.
        let (cut_tx, cut_rx) = crossbeam_channel::unbounded();
        let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
        stream
            .foreach_rdd(move |_, time| {
                cut_tx.send(time).unwrap();
                go_rx.recv().unwrap();
            })
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        stream
            .map_partitions(|records| {
                let thread = std::thread::current().name().unwrap_or("").to_string();
                records
                    .map(|r| {
                        (
                            thread.clone(),
                            r.partition,
                            r.offset,
                            r.value_text().unwrap().into_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .foreach_rdd(move |rdd, _| sink.lock().unwrap().extend(rdd.collect()))
            .unwrap();
        ssc.start().unwrap();

        clock.advance(Duration::from_secs(1));
        assert_eq!(cut_rx.recv().unwrap(), Time::from_millis(1000));
        go_tx.send(()).unwrap();
        let first = ssc
            .await_batch(Time::from_millis(1000), Duration::from_secs(30))
            .unwrap();
        assert_eq!(first.num_records, 3);
        let seen: Vec<_> = seen.lock().unwrap().drain(..).collect();
        let values: Vec<(i32, i64, &str)> = seen
            .iter()
            .map(|(_, p, o, v)| (*p, *o, v.as_str()))
            .collect();
        assert_eq!(values, vec![(0, 0, "a"), (0, 1, "b"), (0, 2, "c")]);
        assert!(
            seen.iter()
                .all(|(thread, ..)| thread.starts_with("dstream-worker-")),
            "read on the context's pool: {seen:?}"
        );

        // Partition 1 has not been read yet: nothing of it can be fetched ahead.
        produce(&producer, "lazy", 1, &["d", "e"]);
        clock.advance(Duration::from_secs(1));
        assert_eq!(cut_rx.recv().unwrap(), Time::from_millis(2000));
        cluster.broker_down(1).unwrap();
        go_tx.send(()).unwrap();
        let err = ssc
            .await_termination_or_timeout(Duration::from_secs(60))
            .expect_err("batch 2000 ms fails");
        let Error::BatchFailed {
            time,
            message,
            cause: Some(cause),
        } = &err
        else {
            panic!("unexpected error {err}");
        };
        assert!(
            matches!(cause.downcast_ref::<Error>(), Some(Error::Kafka { .. })),
            "{cause:?}"
        );
        assert_eq!(*time, Time::from_millis(2000));
        assert!(
            message.contains("output operation 2")
                && message.contains("Kafka: cannot read offsets 0..2 of lazy-1 for batch 2000 ms: stopped at offset 0: no record arrived for 500ms"),
            "{message}"
        );
        assert!(!message.contains("panicked"), "{message}");
        assert_eq!(
            stream.offset_ranges(Time::from_millis(2000)).unwrap().len(),
            2
        );
        cluster.broker_up(1).unwrap();
        ssc.stop(false).unwrap();
    }

    #[test]
    fn an_unreachable_broker_gives_empty_batches_not_a_failure() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        let config =
            KafkaConfig::new(address.to_string()).request_timeout(Duration::from_millis(300));
        let (ssc, clock) = context();
        let stream = ssc.kafka_stream(KafkaSource::new(&config, ["t"])).unwrap();
        stream
            .foreach_rdd(|rdd, _| assert!(rdd.is_empty()))
            .unwrap();
        ssc.start().unwrap();
        assert_eq!(run_batches(&ssc, &clock, 3), vec![0, 0, 0]);
        ssc.stop(false).unwrap();
    }
}
