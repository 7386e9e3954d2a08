//! Kafka input and output (feature `kafka`), on librdkafka through `rdkafka`.
//!
//! - **Input**: [`StreamingContext::kafka_stream`](crate::StreamingContext::kafka_stream)
//!   is Spark's *direct* approach: no receiver. At each batch time the stream decides,
//!   per topic-partition, the offsets `[from, until)` the batch reads (`until` is the
//!   partition's latest offset then, capped by
//!   [`KafkaSource::max_rate_per_partition`]), and reads them, one `Rdd` partition
//!   per Kafka partition, all partitions at once. The next offsets are saved in each
//!   checkpoint and each batch's ranges are recorded with it, so a restarted program
//!   reads unfinished batches again exactly: state is exactly-once.
//! - **Offsets for user code**: [`KafkaStream::offset_ranges`] and
//!   [`KafkaStream::foreach_rdd_with_offsets`], as Spark's `HasOffsetRanges`.
//! - **Output**: [`DStream::write_to_kafka`](crate::DStream::write_to_kafka) waits for
//!   every delivery acknowledgement before the batch counts as done. Output is
//!   at-least-once: a batch run again after a crash writes its records again.
//! - **Topics**: [`create_topic`] creates a topic if it is missing.
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

    /// How long one request to the broker (metadata, offsets) may take, and how long
    /// a read may wait without progress, before the broker counts as unreachable.
    /// Default: 5 s.
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
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;
    use crate::{ManualClock, StreamingContext, Time};

    fn context() -> (StreamingContext, ManualClock) {
        let clock = ManualClock::new(Time::from_millis(0));
        let ssc = StreamingContext::builder()
            .batch_interval(Duration::from_secs(1))
            .master("local[2]")
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
