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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use dstream::demo::DemoLineServer;
use dstream::{BatchInfo, StreamingContext, StreamingListener};

#[derive(Parser)]
#[command(about = "Counts the words of lines read from a TCP server, batch by batch")]
struct Args {
    /// Host of a line server such as `nc -lk 9999`. Without HOST and PORT, a built-in
    /// demo server is started.
    #[arg(requires = "port")]
    host: Option<String>,
    /// Port of the line server.
    port: Option<u16>,
    /// Batch interval in seconds.
    #[arg(long, default_value_t = 2.0)]
    batch_secs: f64,
    /// Lines per second sent by the demo server.
    #[arg(long, default_value_t = 5.0)]
    demo_rate: f64,
    /// Stop after this many batches (default: run until Ctrl-C).
    #[arg(long)]
    batches: Option<u64>,
    /// Worker threads: local[*], local[N] or N.
    #[arg(long, default_value = "local[*]")]
    master: String,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("dstream=info"))
        .init();
    let args = Args::parse();

    let mut demo_server = None;
    let (host, port) = match (args.host, args.port) {
        (Some(host), Some(port)) => (host, port),
        _ => {
            let server = DemoLineServer::start("127.0.0.1:0", args.demo_rate)?;
            let port = server.local_addr().port();
            println!(
                "No HOST PORT given: reading from the built-in demo server on 127.0.0.1:{port}\n"
            );
            demo_server = Some(server);
            ("127.0.0.1".to_string(), port)
        }
    };

    let ssc = StreamingContext::new(&args.master, Duration::from_secs_f64(args.batch_secs))?;
    let lines = ssc.socket_text_stream(&host, port);
    let words = lines.flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>());
    let pairs = words.map(|word| (word, 1));
    let word_counts = pairs.reduce_by_key(|x, y| x + y);
    word_counts.pprint()?;

    let stopper = ssc.clone();
    ctrlc::set_handler(move || {
        let _ = stopper.stop(true);
    })?;
    if let Some(batches) = args.batches {
        ssc.add_listener(StopAfter {
            ssc: ssc.clone(),
            remaining: Arc::new(AtomicU64::new(batches)),
        });
    }

    ssc.start()?;
    ssc.await_termination()?;
    if let Some(server) = demo_server {
        server.stop();
    }
    Ok(())
}

/// Stops the context gracefully once a number of batches have completed.
struct StopAfter {
    ssc: StreamingContext,
    remaining: Arc<AtomicU64>,
}

impl StreamingListener for StopAfter {
    fn on_batch_completed(&self, _batch: &BatchInfo) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _ = self.ssc.stop(true);
        }
    }
}
