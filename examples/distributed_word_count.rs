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
//!
//! With `--window SECS` (and `--slide SECS`, by default the batch interval) it writes
//! each word's count over the last SECS seconds instead, every slide, as the notebook's
//! `reduceByKeyAndWindow(add, sub, 20, 10)` does, across all the copies; words whose
//! count fell to 0 leave the window.
//!
//! For the scale-out benchmark (`benches/scale_out.sh`): `--fill N` writes N lines of a
//! generated corpus to the input topic and exits; `--stop-when-idle S` stops once no
//! input arrived for S seconds after some did, and prints how many records it read in
//! how long; `--direct` runs the same count in one process without the group (the
//! direct stream and `update_state_by_key`), for the cost of the repartition topic.

mod common;

use clap::Parser;
use dstream::StreamingContext;
use dstream::kafka::{
    KafkaConfig, KafkaGroup, KafkaMessage, KafkaSource, StartingOffsets, create_topic,
};

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
    /// The most records one batch reads from one input partition (also with --direct).
    #[arg(long)]
    max_records_per_partition: Option<u64>,
    /// Write this many generated lines to the input topic, then exit.
    #[arg(long, value_name = "LINES")]
    fill: Option<u64>,
    /// Stop once no input arrived for this many seconds after some did, and print the
    /// records read and the time from the first to the last batch with input.
    #[arg(long, value_name = "SECS")]
    stop_when_idle: Option<f64>,
    /// Count in this process alone, with the direct stream (no group, no repartition).
    #[arg(long)]
    direct: bool,
    /// Write each word's count over the last SECS seconds (a multiple of the batch
    /// interval) instead of running totals.
    #[arg(long, value_name = "SECS", conflicts_with = "direct")]
    window: Option<f64>,
    /// With --window: how often the windowed counts are written (default: each batch).
    #[arg(long, value_name = "SECS", requires = "window")]
    slide: Option<f64>,
    #[command(flatten)]
    schedule: common::Schedule,
}

/// Counts the records the broker did not take.
#[derive(Default)]
struct Undelivered(std::sync::atomic::AtomicU64);

impl rdkafka::ClientContext for Undelivered {}

impl rdkafka::producer::ProducerContext for Undelivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Writes `lines` lines of 10 words drawn from 1000 (a fixed sequence), spread over
/// the topic's partitions; fails unless the broker acknowledged every one.
fn fill(config: &KafkaConfig, topic: &str, lines: u64) -> anyhow::Result<()> {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let producer: ThreadedProducer<Undelivered> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", config.bootstrap_servers())
        .set("linger.ms", "20")
        .set("message.timeout.ms", "300000")
        // One request in flight per partition: a retried request cannot land after a
        // later one, so each partition holds the lines in the order they were written.
        .set("max.in.flight.requests.per.connection", "1")
        .create_with_context(Undelivered::default())?;
    let mut seed = 0x2545_f491_u64;
    for n in 0..lines {
        let words: Vec<String> = (0..10)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                format!("w{}", (seed >> 33) % 1000)
            })
            .collect();
        let line = words.join(" ");
        let key = n.to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(&line);
        while let Err((e, returned)) = producer.send(record) {
            record = returned;
            if !matches!(
                e.rdkafka_error_code(),
                Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
            ) {
                anyhow::bail!("cannot write to {topic}: {e}");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    producer.flush(std::time::Duration::from_secs(300))?;
    let lost = producer
        .context()
        .0
        .load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(
        lost == 0,
        "the broker did not take {lost} of {lines} lines to {topic}"
    );
    println!("wrote {lines} lines to {topic}");
    Ok(())
}

/// Stops the context once input stopped arriving (or never came), and reports the
/// throughput from the time of the first batch with input to the end of the last.
struct StopWhenIdle {
    ssc: StreamingContext,
    idle: std::time::Duration,
    started: std::time::Instant,
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    records: u64,
    first_start: Option<dstream::Time>,
    last_end: Option<dstream::Time>,
    last_input: Option<std::time::Instant>,
    reported: bool,
}

impl dstream::StreamingListener for StopWhenIdle {
    fn on_batch_completed(&self, batch: &dstream::BatchInfo) {
        let now = std::time::Instant::now();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if batch.num_records > 0 {
            seen.records += batch.num_records;
            // From the batch time: a group input does its reading and re-keying when the
            // batch is cut, before processing starts.
            seen.first_start = seen.first_start.or(Some(batch.batch_time));
            seen.last_end = batch.processing_end_time;
            seen.last_input = Some(now);
        } else if !seen.reported
            && now.duration_since(seen.last_input.unwrap_or(self.started)) >= self.idle
        {
            seen.reported = true;
            let (secs, from, to) = match (seen.first_start, seen.last_end) {
                (Some(first), Some(last)) => (
                    last.saturating_since(first).as_secs_f64(),
                    first.as_millis(),
                    last.as_millis(),
                ),
                _ => (0.0, 0, 0),
            };
            // The times let a benchmark of several processes take their union.
            println!(
                "read {} records in {secs:.2} s: {:.0} records/s (batches from {from} to {to} ms)",
                seen.records,
                seen.records as f64 / secs.max(1e-3)
            );
            let _ = self.ssc.stop(true);
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let config = KafkaConfig::new(&args.bootstrap);
    create_topic(&config, &args.input, args.partitions)?;
    create_topic(&config, &args.output, args.partitions)?;
    if let Some(lines) = args.fill {
        return fill(&config, &args.input, lines);
    }
    let ssc = StreamingContext::new(
        &format!("local[{}]", args.threads),
        args.schedule.batch_interval(),
    )?;
    if let Some(secs) = args.stop_when_idle {
        ssc.add_listener(StopWhenIdle {
            ssc: ssc.clone(),
            idle: std::time::Duration::from_secs_f64(secs),
            started: std::time::Instant::now(),
            seen: std::sync::Mutex::default(),
        });
    }
    if args.direct {
        let mut source = KafkaSource::new(&config, [args.input.as_str()])
            .starting_offsets(StartingOffsets::Earliest);
        if let Some(cap) = args.max_records_per_partition {
            // The direct stream caps a rate: the cap per batch, over the interval.
            let millis = args.schedule.batch_interval().as_millis().max(1) as u64;
            source = source.max_rate_per_partition((cap * 1000 / millis).max(1));
        }
        ssc.checkpoint(format!("checkpoint/distributed_word_count-{}", args.app_id))?;
        ssc.kafka_stream(source)?
            .text()
            .flat_map(|line| {
                line.split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|word| (word, 1u64))
            .update_state_by_key(|new: &[u64], total: Option<u64>| {
                Some(total.unwrap_or(0) + new.iter().sum::<u64>())
            })
            .write_to_kafka(&config, &args.output, |(word, total)| {
                KafkaMessage::keyed(word, total.to_string())
            })?;
        common::run(&ssc, &args.schedule)?;
        return Ok(());
    }
    let mut group = KafkaGroup::new(&ssc, &args.app_id, &config)?;
    if let Some(cap) = args.max_records_per_partition {
        group = group.max_records_per_partition(cap);
    }
    // Each keyed operation has its own topics: a windowed run's state is not a total's.
    let name = if args.window.is_some() {
        "window-counts"
    } else {
        "counts"
    };
    let words = group
        .input_stream([args.input.as_str()])?
        .repartition_by_key(name, |record| {
            let text = record.value_text().unwrap_or_default();
            text.split_whitespace()
                .map(|word| (word.to_string(), 1u64))
                .collect::<Vec<_>>()
        })?;
    let totals = match args.window {
        Some(window) => {
            let slide = args.slide.map_or(args.schedule.batch_interval(), |secs| {
                std::time::Duration::from_secs_f64(secs)
            });
            words.reduce_by_key_and_window_inv_with(
                |a, b| a + b,
                |a, b| a - b,
                std::time::Duration::from_secs_f64(window),
                slide,
                |_, count| *count > 0,
            )?
        }
        None => words.update_state_by_key(|new: &[u64], total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        })?,
    };
    totals.write_to_kafka(&config, &args.output, |(word, total)| {
        KafkaMessage::keyed(word, total.to_string())
    })?;
    common::run(&ssc, &args.schedule)?;
    Ok(())
}
