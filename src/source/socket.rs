//! `socket_text_stream`: lines of text read from a TCP server, such as `nc -lk 9999`.
//!
//! The receiver is a task on the context's tokio runtime. It connects, reads, and
//! stores each read's complete lines as one `TextBlock` (no allocation per line). When it cannot connect, or the server
//! closes the connection, it tries again after the restart delay, as Spark's receiver
//! does; the application keeps running. It reports each change (connected, retrying
//! with the error, stopped) to the context's receiver registry, which logs it once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::buffer::{BlockBuffer, BufferSettings};
use super::lines::TextBlock;
use super::status::ReceiverReporter;
use super::{Cut, InputSource, RateController, SourceContext};
use crate::error::Result;
use crate::rdd::{ExecEnv, Rdd};
use crate::time::Time;

/// Bytes asked for per read; the read's lines are stored in blocks (see `buffer`).
const READ_SIZE: usize = 256 * 1024;

/// How long `stop` waits for the receiver task to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub(crate) struct SocketInput {
    host: String,
    port: u16,
    buffer: Arc<BlockBuffer<TextBlock>>,
    running: Mutex<Option<Running>>,
    rate_controller: Option<Arc<RateController>>,
}

struct Running {
    stop: watch::Sender<bool>,
    /// Closed when the receiver task ends. Waiting on a channel rather than on the
    /// task keeps `stop` callable from any thread, async ones included.
    finished: crossbeam_channel::Receiver<()>,
}

impl SocketInput {
    pub(crate) fn new(
        host: &str,
        port: u16,
        settings: BufferSettings,
        rate_controller: Option<Arc<RateController>>,
    ) -> Self {
        SocketInput {
            host: host.to_string(),
            port,
            buffer: Arc::new(BlockBuffer::new(settings)),
            running: Mutex::new(None),
            rate_controller,
        }
    }
}

impl InputSource<String> for SocketInput {
    fn start(&self, ctx: &SourceContext) -> Result<()> {
        self.buffer.open_log(ctx)?;
        let (stop, stopped) = watch::channel(false);
        let address = format!("{}:{}", self.host, self.port);
        let receiver = SocketReceiver {
            status: ctx.register_receiver(address.clone()),
            address,
            host: self.host.clone(),
            port: self.port,
            buffer: self.buffer.clone(),
            restart_delay: ctx.restart_delay,
            invalid_lines: 0,
        };
        let (finish, finished) = crossbeam_channel::bounded::<()>(0);
        ctx.tokio.spawn(async move {
            let mut status = receiver.run(stopped).await;
            status.stopped();
            drop(finish);
        });
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Running { stop, finished });
        Ok(())
    }

    fn cut(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<String> {
        self.buffer.cut(env)
    }

    fn cut_passed(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<String> {
        self.buffer.nothing(env)
    }

    fn position(&self) -> Option<Vec<u8>> {
        self.buffer.position()
    }

    fn restore(&self, position: &[u8]) -> Result<()> {
        self.buffer.restore(position)
    }

    fn replay(&self, replay: &[u8], env: &Arc<ExecEnv>) -> Option<(Rdd<String>, u64)> {
        self.buffer.replay(replay, env)
    }

    fn checkpointed(&self, position: Option<&[u8]>, replays: &[&[u8]], kept: usize) {
        self.buffer.checkpointed(position, replays, kept);
    }

    fn has_pending(&self) -> bool {
        self.buffer.has_pending()
    }

    fn rate_controller(&self) -> Option<&Arc<RateController>> {
        self.rate_controller.as_ref()
    }

    fn stop(&self) {
        self.buffer.drain();
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            let _ = running.stop.send(true);
            if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                running.finished.recv_timeout(STOP_GRACE)
            {
                tracing::warn!(
                    "socket_text_stream: the receiver did not stop within {STOP_GRACE:?}"
                );
            }
        }
        self.buffer.close();
    }
}

/// How a connection ended.
enum Ended {
    Stopped,
    ClosedByServer,
}

struct SocketReceiver {
    status: ReceiverReporter,
    address: String,
    host: String,
    port: u16,
    buffer: Arc<BlockBuffer<TextBlock>>,
    restart_delay: Duration,
    invalid_lines: u64,
}

impl SocketReceiver {
    /// Connects and receives until stopped; gives back the status reporter.
    async fn run(mut self, mut stopped: watch::Receiver<bool>) -> ReceiverReporter {
        loop {
            if *stopped.borrow() {
                return self.status;
            }
            let connected = tokio::select! {
                connected = TcpStream::connect((self.host.as_str(), self.port)) => connected,
                _ = stopped.changed() => return self.status,
            };
            let error = match connected {
                Ok(stream) => {
                    self.status.connected();
                    match self.receive(stream, &mut stopped).await {
                        Ok(Ended::Stopped) => return self.status,
                        Ok(Ended::ClosedByServer) => {
                            format!("{} closed the connection", self.address)
                        }
                        Err(e) => format!("error reading from {}: {e}", self.address),
                    }
                }
                Err(e) => format!("cannot connect to {}: {e}", self.address),
            };
            self.status.retrying(error, self.restart_delay);
            tokio::select! {
                _ = tokio::time::sleep(self.restart_delay) => {}
                _ = stopped.changed() => return self.status,
            }
        }
    }

    /// Reads lines until the server closes the connection or the context stops.
    async fn receive(
        &mut self,
        mut stream: TcpStream,
        stopped: &mut watch::Receiver<bool>,
    ) -> std::io::Result<Ended> {
        let mut pending: Vec<u8> = Vec::with_capacity(READ_SIZE);
        loop {
            let scan_from = pending.len();
            pending.reserve(READ_SIZE);
            let read = tokio::select! {
                read = stream.read_buf(&mut pending) => read?,
                _ = stopped.changed() => return Ok(Ended::Stopped),
            };
            let before = self.invalid_lines;
            if read == 0 {
                let last = TextBlock::new(&pending, &mut self.invalid_lines);
                self.store(last, before);
                return Ok(Ended::ClosedByServer);
            }
            // Only the new bytes can end the unfinished line.
            let Some(last_end) = memchr::memrchr(b'\n', &pending[scan_from..]) else {
                continue;
            };
            let used = scan_from + last_end + 1;
            let lines = TextBlock::new(&pending[..used], &mut self.invalid_lines);
            pending.drain(..used);
            if !self.store(lines, before) {
                return Ok(Ended::Stopped);
            }
        }
    }

    /// Stores a read's lines and warns about lines that were not UTF-8. The store may
    /// wait for the rate limit or for room; the task then stops reading, and the
    /// sender is held back by TCP flow control.
    fn store(&self, lines: TextBlock, invalid_before: u64) -> bool {
        let new_invalid = self.invalid_lines - invalid_before;
        if new_invalid > 0 {
            tracing::warn!(
                "socket_text_stream: {new_invalid} line(s) from {} were not valid UTF-8 and were decoded with U+FFFD replacement characters ({} so far)",
                self.address,
                self.invalid_lines
            );
        }
        if self.buffer.may_wait() {
            // Waiting must not stall the runtime's other tasks.
            tokio::task::block_in_place(|| self.buffer.push_block(lines))
        } else {
            self.buffer.push_block(lines)
        }
    }
}
