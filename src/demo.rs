//! A line server for demos and tests: what `nc -lk 9999` does in the classroom, without
//! netcat or anyone typing.
//!
//! **A demo, not part of the streaming API**: the examples use it so that they run
//! anywhere, and its lines may change between releases. Programs read real sources.
//!
//! Every client that connects receives lines like `This is line 3` at a steady pace,
//! until it disconnects or the server stops. The digits follow a fixed pseudo-random
//! sequence, so every run sends the same lines.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often the accept loop and idle senders look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A TCP server sending `This is line N` lines to every client.
///
/// ```
/// use dstream::demo::DemoLineServer;
/// use std::io::{BufRead, BufReader};
/// use std::net::TcpStream;
///
/// let server = DemoLineServer::start("127.0.0.1:0", 100.0).unwrap();
/// let mut reader = BufReader::new(TcpStream::connect(server.local_addr()).unwrap());
/// let mut line = String::new();
/// reader.read_line(&mut line).unwrap();
/// assert!(line.starts_with("This is line "));
/// server.stop();
/// ```
pub struct DemoLineServer {
    address: SocketAddr,
    stopped: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl DemoLineServer {
    /// Listens on `address` (`"127.0.0.1:0"` picks a free port) and sends
    /// `lines_per_second` lines per second to each client. Fails with a clear error if
    /// the address is in use.
    pub fn start(address: &str, lines_per_second: f64) -> Result<DemoLineServer> {
        let listener = TcpListener::bind(address)
            .map_err(|e| Error::network("cannot listen on", address, e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::network("cannot listen on", address, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::network("cannot listen on", address, e))?;
        let pause = Duration::from_secs_f64(1.0 / lines_per_second.max(0.001));
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let acceptor = std::thread::Builder::new()
            .name("dstream-demo-server".into())
            .spawn(move || accept_clients(&listener, pause, &flag))
            .map_err(|e| Error::Runtime {
                what: "demo server thread",
                reason: e.to_string(),
            })?;
        Ok(DemoLineServer {
            address: local,
            stopped,
            acceptor: Some(acceptor),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting and sending, and closes every connection.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for DemoLineServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn accept_clients(listener: &TcpListener, pause: Duration, stopped: &Arc<AtomicBool>) {
    let mut senders = Vec::new();
    while !stopped.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let stopped = stopped.clone();
                senders.push(std::thread::spawn(move || {
                    send_lines(client, pause, &stopped)
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!("demo server: accept failed: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    for sender in senders {
        let _ = sender.join();
    }
}

/// Sends lines to one client at a steady pace until it leaves or the server stops.
fn send_lines(mut client: TcpStream, pause: Duration, stopped: &AtomicBool) {
    let _ = client.set_nodelay(true);
    let mut digits = LineDigits::default();
    let mut next = Instant::now();
    while !stopped.load(Ordering::SeqCst) {
        let line = format!("This is line {}\n", digits.next_digit());
        if client.write_all(line.as_bytes()).is_err() {
            return;
        }
        next += pause;
        while !stopped.load(Ordering::SeqCst) {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(POLL));
        }
    }
}

/// The digits 0 to 5 in a fixed pseudo-random order (xorshift), like the classroom
/// server's `random.randint(0, 5)`.
struct LineDigits(u64);

impl Default for LineDigits {
    fn default() -> Self {
        LineDigits(0x2545_f491_4f6c_dd1d)
    }
}

impl LineDigits {
    fn next_digit(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_a_clear_error() {
        let first = DemoLineServer::start("127.0.0.1:0", 10.0).unwrap();
        let taken = first.local_addr().to_string();
        let err = DemoLineServer::start(&taken, 10.0).err().unwrap();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot listen on {taken}:")),
            "{message}"
        );
        first.stop();
    }

    #[test]
    fn digits_cover_zero_to_five() {
        let mut digits = LineDigits::default();
        let mut seen = [false; 6];
        for _ in 0..100 {
            seen[digits.next_digit() as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
