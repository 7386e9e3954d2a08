//! The seed notebook's running word count: `updateStateByKey` keeps each word's total
//! across batches, checkpointed to `checkpoint/stateful_network_word_count`.
//!
//! ```text
//! cargo run --release --example stateful_network_word_count                    # demo server
//! cargo run --release --example stateful_network_word_count -- localhost 9999  # netcat
//! ```
//!
//! Stop it (Ctrl-C) and start it again: the totals continue where they were, because
//! the context is made with `StreamingContext::get_or_create`. Delete the checkpoint
//! directory to start from zero.

mod common;

use clap::Parser;
use dstream::StreamingContext;

/// Where this example keeps its checkpoints (relative to the working directory).
const CHECKPOINT: &str = "checkpoint/stateful_network_word_count";

#[derive(Parser)]
#[command(about = "Running word counts over lines from a TCP server, recovered after restarts")]
struct Args {
    #[command(flatten)]
    source: common::LineSource,
    #[command(flatten)]
    schedule: common::Schedule,
}

/// The seed's `updateFunc`: add the new values to the previous running count.
fn update(new_values: &[i64], running_count: Option<i64>) -> Option<i64> {
    Some(new_values.iter().sum::<i64>() + running_count.unwrap_or(0))
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let (host, port, _demo_server) = args.source.open()?;
    let config = args.schedule.config("local[*]")?;

    let ssc = StreamingContext::get_or_create(CHECKPOINT, || {
        let ssc = StreamingContext::from_config(config)?;
        let lines = ssc.socket_text_stream(&host, port);
        let pairs = lines
            .flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)))
            .map(|word| (word, 1));
        let word_counts = pairs.update_state_by_key(update).name("word_counts");
        word_counts.pprint()?;
        Ok(ssc)
    })?;

    common::run(&ssc, &args.schedule)
}
