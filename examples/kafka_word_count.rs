//! The seed's Kafka word count (Spark reading a topic, running counts on the
//! console), as a DStream program: words from a Kafka topic, each word's running
//! total kept with `update_state_by_key`, printed every batch, checkpointed to
//! `checkpoint/kafka_word_count` so that a restart continues exactly where it was.
//!
//! ```text
//! bash .ci/kafka/start-broker.sh                                  # a local broker
//! cargo run --release --features kafka --example kafka_word_count
//! cargo run --release --features kafka --example kafka_word_count -- --demo-rate 0   # only read
//! ```
//!
//! The topic (default `words`) is created if missing. A built-in producer sends a
//! few of the seed's lines per second (`--demo-rate`); with `--demo-rate 0`, write
//! lines with any Kafka producer instead. Stop with Ctrl-C and start again: counts
//! continue, nothing counted twice. Delete the checkpoint directory to start from zero.

mod common;

use std::time::Duration;

use clap::Parser;
use dstream::StreamingContext;
use dstream::kafka::{KafkaConfig, KafkaMessage, KafkaSource, StartingOffsets, create_topic};

const CHECKPOINT: &str = "checkpoint/kafka_word_count";

/// The lines the seed types into the console producer.
const LINES: [&str; 5] = [
    "Apache Spark Streaming computing",
    "Apache Spark Streaming computing",
    "Apache Spark Streaming computing",
    "Apache Spark Streaming",
    "Apache Streaming computing",
];

#[derive(Parser)]
#[command(about = "Running word counts over a Kafka topic, recovered after restarts")]
struct Args {
    /// The topic to read (created with 4 partitions if missing).
    #[arg(long, default_value = "words")]
    topic: String,
    /// Lines per second the built-in producer sends to the topic (0: none).
    #[arg(long, default_value_t = 2.0)]
    demo_rate: f64,
    #[command(flatten)]
    schedule: common::Schedule,
}

/// The seed's `updateFunc`: add the new values to the previous running count.
fn update(new_values: &[i64], running_count: Option<i64>) -> Option<i64> {
    Some(new_values.iter().sum::<i64>() + running_count.unwrap_or(0))
}

/// Sends the seed's lines to `topic`, `rate` per second, with a dstream program of its
/// own: a rate stream written to Kafka.
fn start_demo_producer(
    config: &KafkaConfig,
    topic: &str,
    rate: f64,
) -> anyhow::Result<StreamingContext> {
    let producer = StreamingContext::new("local[1]", Duration::from_millis(500))?;
    producer
        .rate_stream(rate.ceil() as u64)
        .write_to_kafka(config, topic, |(_, n)| {
            KafkaMessage::value(LINES[n as usize % LINES.len()])
        })?;
    producer.start()?;
    Ok(producer)
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let config = KafkaConfig::from_env();
    if create_topic(&config, &args.topic, 4)? {
        println!(
            "Created topic {:?} on {}",
            args.topic,
            config.bootstrap_servers()
        );
    }
    let producer = if args.demo_rate > 0.0 {
        Some(start_demo_producer(&config, &args.topic, args.demo_rate)?)
    } else {
        None
    };

    let settings = args.schedule.config("local[*]")?;
    let ssc = StreamingContext::get_or_create(CHECKPOINT, || {
        let ssc = StreamingContext::from_config(settings)?;
        let source =
            KafkaSource::new(&config, [&args.topic]).starting_offsets(StartingOffsets::Earliest);
        let lines = ssc.kafka_stream(source)?.text();
        let word_counts = lines
            .flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)))
            .map(|word| (word, 1))
            .update_state_by_key(update)
            .name("word_counts");
        word_counts.pprint()?;
        Ok(ssc)
    })?;

    common::run(&ssc, &args.schedule)?;
    if let Some(producer) = producer {
        producer.stop(true)?;
    }
    Ok(())
}
