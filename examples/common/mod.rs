//! What the socket examples share: where lines come from (netcat or the built-in demo
//! server), logging, the status page, and stopping cleanly on Ctrl-C or after a number
//! of batches.
//!
//! Settings can also come from the environment (`DSTREAM_RECEIVER_MAX_RATE`,
//! `DSTREAM_BACKPRESSURE`, ...: see `StreamingConfig`), and `RUST_LOG` chooses what
//! is logged (default: warnings and one line per batch).

#![allow(dead_code)] // each example uses its own subset

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use dstream::demo::DemoLineServer;
use dstream::logging::{BatchLogger, DEFAULT_FILTER};
use dstream::{BatchInfo, Parallelism, StreamingConfig, StreamingContext, StreamingListener};
use tracing_subscriber::EnvFilter;

/// Where the lines come from.
#[derive(Args)]
pub struct LineSource {
    /// Host of a line server such as `nc -lk 9999`. Without HOST and PORT, a built-in
    /// demo server is started.
    #[arg(requires = "port")]
    pub host: Option<String>,
    /// Port of the line server.
    pub port: Option<u16>,
    /// Lines per second sent by the demo server.
    #[arg(long, default_value_t = 5.0)]
    pub demo_rate: f64,
}

impl LineSource {
    /// The host and port to read from, starting the demo server when none was given.
    /// Keep the returned server alive while the stream runs.
    pub fn open(&self) -> anyhow::Result<(String, u16, Option<DemoLineServer>)> {
        if let (Some(host), Some(port)) = (&self.host, self.port) {
            return Ok((host.clone(), port, None));
        }
        let server = DemoLineServer::start("127.0.0.1:0", self.demo_rate)?;
        let port = server.local_addr().port();
        println!("No HOST PORT given: reading from the built-in demo server on 127.0.0.1:{port}\n");
        Ok(("127.0.0.1".to_string(), port, Some(server)))
    }
}

/// How long batches are, how long to run, and where to watch it.
#[derive(Args)]
pub struct Schedule {
    /// Batch interval in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub batch_secs: f64,
    /// Stop after this many batches (default: run until Ctrl-C).
    #[arg(long)]
    pub batches: Option<u64>,
    /// Serve the live status page at this address, for example 127.0.0.1:4040.
    #[arg(long, value_name = "ADDR")]
    pub status_page: Option<std::net::SocketAddr>,
}

impl Schedule {
    pub fn batch_interval(&self) -> Duration {
        Duration::from_secs_f64(self.batch_secs)
    }

    /// The settings: this batch interval, `master` and status page, a graceful stop
    /// on Ctrl-C, then whatever the `DSTREAM_*` environment variables say.
    pub fn config(&self, master: &str) -> anyhow::Result<StreamingConfig> {
        let config = StreamingConfig {
            batch_interval: self.batch_interval(),
            parallelism: Parallelism::parse(master)?,
            status_page: self.status_page,
            stop_on_signal: true,
            ..StreamingConfig::default()
        };
        Ok(config.with_env()?)
    }
}

/// Logs warnings and one line per batch, unless RUST_LOG says otherwise (for example
/// `RUST_LOG=dstream=debug`). Logs go to stderr, so stdout holds only what the program
/// prints (the pprint blocks), and are coloured only on a terminal.
pub fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Starts `ssc` and runs it until Ctrl-C (or SIGTERM), or until the schedule's number
/// of batches have completed, then stops it gracefully (what was received is
/// processed first; its configuration should stop it on a signal, as
/// [`Schedule::config`]'s does). A second Ctrl-C exits at once.
pub fn run(ssc: &StreamingContext, schedule: &Schedule) -> anyhow::Result<()> {
    ssc.add_listener(BatchLogger);
    if let Some(batches) = schedule.batches {
        ssc.add_listener(StopAfter {
            ssc: ssc.clone(),
            remaining: Arc::new(AtomicU64::new(batches)),
        });
    }
    if let Some(bound) = ssc.status_page_address() {
        println!("Status page: http://{bound}/\n");
    }
    ssc.start()?;
    ssc.await_termination()?;
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
