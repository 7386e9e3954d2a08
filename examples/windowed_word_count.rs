//! The seed notebook's last program: running totals with `updateStateByKey` and word
//! counts over a sliding window with `reduceByKeyAndWindow(lambda x, y: x + y,
//! lambda x, y: x - y, 20, 10)`, both printed each batch.
//!
//! The window is two batch intervals long and slides every interval, as 20 and 10
//! seconds over the notebook's 10-second batches. It is incremental: each slide adds
//! the batch entering and subtracts the batch leaving.
//!
//! ```text
//! cargo run --release --example windowed_word_count                                  # demo server
//! cargo run --release --example windowed_word_count -- localhost 9999 --batch-secs 10  # netcat
//! ```

mod common;

use clap::Parser;
use dstream::StreamingContext;

/// Where this example keeps its checkpoints (relative to the working directory).
const CHECKPOINT: &str = "checkpoint/windowed_word_count";

#[derive(Parser)]
#[command(about = "Running and windowed word counts over lines from a TCP server")]
struct Args {
    #[command(flatten)]
    source: common::LineSource,
    #[command(flatten)]
    schedule: common::Schedule,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let (host, port, _demo_server) = args.source.open()?;
    let batch = args.schedule.batch_interval();
    let config = args.schedule.config("local[*]")?;

    let ssc = StreamingContext::get_or_create(CHECKPOINT, || {
        let ssc = StreamingContext::from_config(config)?;
        let pairs = ssc
            .socket_text_stream(&host, port)
            .flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)))
            .map(|word| (word, 1));
        let word_counts = pairs
            .update_state_by_key(|new: &[i64], running: Option<i64>| {
                Some(new.iter().sum::<i64>() + running.unwrap_or(0))
            })
            .name("word_counts");
        let windowed_word_counts = pairs
            .reduce_by_key_and_window_inv(|x, y| x + y, |x, y| x - y, batch * 2, batch)?
            .name("windowed_word_counts");
        word_counts.pprint()?;
        windowed_word_counts.pprint()?;
        Ok(ssc)
    })?;

    common::run(&ssc, &args.schedule)
}
