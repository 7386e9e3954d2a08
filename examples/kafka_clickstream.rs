//! The seed's click-stream lab: a producer publishes click-stream events as JSON to a
//! Kafka topic every second, and a consumer prints the total impressions per minute
//! of the events' `ts` as a running table (with the clicks beside them).
//!
//! ```text
//! bash .ci/kafka/start-broker.sh
//! cargo run --release --features kafka --example kafka_clickstream -- produce   # terminal 1
//! cargo run --release --features kafka --example kafka_clickstream -- consume   # terminal 2
//! ```
//!
//! The producer sends, every second, a JSON array of five events such as
//! `{"Clicks": 0, "Impressions": 3, "ts": 1715172068}` (the lab's "list of
//! dictionaries" batches). The consumer parses each message with `parse_json` (an
//! object or an array of objects; numbers may be quoted, as in the lab's data),
//! counts messages that do not parse, and keeps the totals per minute with
//! `update_state_by_key`, checkpointed to `checkpoint/kafka_clickstream`.

mod common;

use std::time::Duration;

use clap::{Parser, Subcommand};
use dstream::kafka::{KafkaConfig, KafkaMessage, KafkaSource, StartingOffsets, create_topic};
use dstream::{StreamingContext, Time};
use serde::{Deserialize, Deserializer};

const CHECKPOINT: &str = "checkpoint/kafka_clickstream";

#[derive(Parser)]
#[command(about = "Click-stream JSON through Kafka: impressions per minute")]
struct Args {
    /// The topic (created with 2 partitions if missing).
    #[arg(long, default_value = "clickstream")]
    topic: String,
    #[command(subcommand)]
    role: Role,
    #[command(flatten)]
    schedule: common::Schedule,
}

#[derive(Subcommand)]
enum Role {
    /// Publish five click events as one JSON array every second.
    Produce,
    /// Print the total impressions per minute of `ts`, batch after batch.
    Consume,
}

/// One click-stream event, as the lab's producer sends it.
#[derive(Clone, Debug, Deserialize)]
struct Click {
    #[serde(rename = "Clicks", deserialize_with = "number")]
    clicks: u64,
    #[serde(rename = "Impressions", deserialize_with = "number")]
    impressions: u64,
    /// Seconds since the Unix epoch.
    ts: i64,
}

/// A count written as a number (`3`) or, as some of the lab's producers do, as a
/// string (`"3"`).
fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Plain(u64),
        Quoted(String),
    }
    match Number::deserialize(deserializer)? {
        Number::Plain(n) => Ok(n),
        Number::Quoted(text) => text.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// Five events stamped `second`, with counts that vary from second to second.
fn events(second: i64, n: u64) -> String {
    let events: Vec<String> = (0..5u64)
        .map(|i| {
            let mix = (n * 7 + i * 13) % 17;
            format!(
                r#"{{"Clicks": {}, "Impressions": {}, "ts": {second}}}"#,
                u64::from(mix.is_multiple_of(5)),
                3 + mix % 9
            )
        })
        .collect();
    format!("[{}]", events.join(", "))
}

fn produce(config: &KafkaConfig, topic: &str, schedule: &common::Schedule) -> anyhow::Result<()> {
    let mut settings = schedule.config("local[1]")?;
    settings.batch_interval = Duration::from_secs(1); // one second of events per batch
    let ssc = StreamingContext::from_config(settings)?;
    ssc.rate_stream(1)
        .map(|(time, n): (Time, u64)| events(time.as_millis() / 1000, n))
        .write_to_kafka(config, topic, |json| {
            println!("sent {json}");
            KafkaMessage::value(json)
        })?;
    common::run(&ssc, schedule)
}

/// The running table: per minute (its start, in seconds), total impressions and
/// clicks.
fn print_table(time: Time, rows: &[(i64, (u64, u64))]) {
    println!("-------------------------------------------");
    println!("Time: {}", time.to_local_string());
    println!("-------------------------------------------");
    println!(
        "{:<18} {:>17} {:>12}",
        "minute (UTC)", "Total Impressions", "Total Clicks"
    );
    for (minute, (impressions, clicks)) in rows {
        let start = chrono::DateTime::from_timestamp(*minute, 0).map_or_else(
            || minute.to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        );
        println!("{start:<18} {impressions:>17} {clicks:>12}");
    }
    println!();
}

fn consume(config: &KafkaConfig, topic: &str, schedule: &common::Schedule) -> anyhow::Result<()> {
    let settings = schedule.config("local[*]")?;
    let ssc = StreamingContext::get_or_create(CHECKPOINT, || {
        let ssc = StreamingContext::from_config(settings)?;
        let source = KafkaSource::new(config, [topic]).starting_offsets(StartingOffsets::Earliest);
        let (clicks, rejected) = ssc.kafka_stream(source)?.text().parse_json::<Click>();
        rejected.foreach_rdd(|rdd, time| {
            let bad = rdd.count();
            if bad > 0 {
                println!("{time}: {bad} message(s) were not click-stream JSON");
            }
        })?;
        let per_minute = clicks
            .map(|click| {
                (
                    click.ts.div_euclid(60) * 60,
                    (click.impressions, click.clicks),
                )
            })
            .update_state_by_key(|new: &[(u64, u64)], total: Option<(u64, u64)>| {
                let (impressions, clicks) = total.unwrap_or_default();
                Some(
                    new.iter()
                        .fold((impressions, clicks), |(i, c), (ni, nc)| (i + ni, c + nc)),
                )
            })
            .name("impressions_per_minute");
        per_minute.foreach_rdd(|rdd, time| {
            let mut rows = rdd.collect();
            rows.sort();
            print_table(time, &rows);
        })?;
        Ok(ssc)
    })?;
    common::run(&ssc, schedule)
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let config = KafkaConfig::from_env();
    if create_topic(&config, &args.topic, 2)? {
        println!(
            "Created topic {:?} on {}",
            args.topic,
            config.bootstrap_servers()
        );
    }
    match args.role {
        Role::Produce => produce(&config, &args.topic, &args.schedule),
        Role::Consume => consume(&config, &args.topic, &args.schedule),
    }
}
