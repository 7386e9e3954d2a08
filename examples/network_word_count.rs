//! The classroom word count: counts the words of the lines received each batch from a
//! TCP server, and prints them as PySpark's `pprint` does.
//!
//! With no arguments it starts a built-in demo server that sends `This is line N`
//! lines, so it runs anywhere:
//!
//! ```text
//! cargo run --release --example network_word_count
//! ```
//!
//! Against netcat, as in class: run `nc -lk 9999` in one terminal, then
//!
//! ```text
//! cargo run --release --example network_word_count -- localhost 9999 --batch-secs 10
//! ```
//!
//! and type lines into the netcat terminal. Ctrl-C stops it cleanly.

mod common;

use clap::Parser;
use dstream::StreamingContext;

#[derive(Parser)]
#[command(about = "Counts the words of lines read from a TCP server, batch by batch")]
struct Args {
    #[command(flatten)]
    source: common::LineSource,
    #[command(flatten)]
    schedule: common::Schedule,
    /// Worker threads: local[*], local[N] or N.
    #[arg(long, default_value = "local[*]")]
    master: String,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let (host, port, _demo_server) = args.source.open()?;

    let ssc = StreamingContext::from_config(args.schedule.config(&args.master)?)?;
    let lines = ssc.socket_text_stream(&host, port);
    let words = lines.flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)));
    let pairs = words.map(|word| (word, 1));
    let word_counts = pairs.reduce_by_key(|x, y| x + y);
    word_counts.pprint()?;

    common::run(&ssc, &args.schedule)
}
