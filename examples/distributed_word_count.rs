//! Running word counts on as many processes (or machines) as you start: each copy
//! with the same `--app-id` joins one Kafka consumer group, reads the input
//! partitions the group gives it, re-keys words through a repartition topic, and
//! keeps the running totals of the shards it owns, backed by a changelog topic.
//! Every batch writes the changed `(word, total)` pairs to `--output`, keyed by word.
//!
//! ```text
//! bash .ci/kafka/start-broker.sh                       # a local broker
//! # on each machine (or in several terminals):
//! cargo run --release --features kafka --example distributed_word_count -- \
//!     --app-id word-count --bootstrap 127.0.0.1:9092 --input lines --output word-totals
//! ```
//!
//! Start or kill copies at any time: their partitions and shards move to the others
//! (see the log), and the totals stay exact. The last value of each word on the output
//! topic is its count; a value may be written twice, the same both times.

mod common;

use clap::Parser;
use dstream::StreamingContext;
use dstream::kafka::{KafkaConfig, KafkaGroup, KafkaMessage, create_topic};

#[derive(Parser)]
#[command(about = "Running word counts over Kafka, on any number of processes")]
struct Args {
    /// The application id: every copy uses the same one (it is the consumer group).
    #[arg(long)]
    app_id: String,
    /// The Kafka brokers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The topic of lines to count (created with --partitions partitions if missing).
    #[arg(long)]
    input: String,
    /// The topic the `(word, total)` pairs go to (created if missing).
    #[arg(long)]
    output: String,
    /// Partitions of the topics this program creates.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Threads of this process.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The most records one batch reads from one input partition.
    #[arg(long)]
    max_records_per_partition: Option<u64>,
    #[command(flatten)]
    schedule: common::Schedule,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let config = KafkaConfig::new(&args.bootstrap);
    create_topic(&config, &args.input, args.partitions)?;
    create_topic(&config, &args.output, args.partitions)?;
    let ssc = StreamingContext::new(
        &format!("local[{}]", args.threads),
        args.schedule.batch_interval(),
    )?;
    let mut group = KafkaGroup::new(&ssc, &args.app_id, &config)?;
    if let Some(cap) = args.max_records_per_partition {
        group = group.max_records_per_partition(cap);
    }
    let totals = group
        .input_stream([args.input.as_str()])?
        .repartition_by_key("counts", |record| {
            let text = record.value_text().unwrap_or_default();
            text.split_whitespace()
                .map(|word| (word.to_string(), 1u64))
                .collect::<Vec<_>>()
        })?
        .update_state_by_key(|new: &[u64], total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        })?;
    totals.write_to_kafka(&config, &args.output, |(word, total)| {
        KafkaMessage::keyed(word, total.to_string())
    })?;
    common::run(&ssc, &args.schedule)?;
    Ok(())
}
