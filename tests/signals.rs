//! Graceful stop on SIGTERM, with a child process: the program is this test binary run
//! again with `DSTREAM_SIGNAL_CHILD` set, as in `crash_recovery.rs`. It counts the
//! numbered lines a real TCP server (the test) sends, writing each batch's numbers to
//! a file; the test sends SIGTERM while lines are still flowing.
//!
//! The child runs on the system clock (signals and processes are real); the checks do
//! not depend on timing: exit status, and which lines were counted how often.

#![cfg(unix)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dstream::{Parallelism, StreamingConfig, StreamingContext};

const CHILD_ENV: &str = "DSTREAM_SIGNAL_CHILD";
/// The child says it has received this many lines before the test signals it.
const RECEIVED_BEFORE_SIGNAL: u64 = 2_000;
const PATIENCE: Duration = Duration::from_secs(60);

/// The child's role. Does nothing in an ordinary test run.
#[test]
#[ignore = "a child process's role, run by this file's tests; does nothing by itself"]
fn signal_child() {
    if let Ok(setting) = std::env::var(CHILD_ENV) {
        let (role, rest) = setting.split_once(':').unwrap();
        let (port, root) = rest.split_once(':').unwrap();
        run_child(role, port.parse().unwrap(), Path::new(root)).unwrap();
    }
}

/// Counts lines from `port`, appending each batch's line numbers to `root/counted`.
/// The `stuck` role blocks forever in its first batch with data.
fn run_child(role: &str, port: u16, root: &Path) -> dstream::Result<()> {
    let ssc = StreamingContext::from_config(StreamingConfig {
        batch_interval: Duration::from_millis(200),
        parallelism: Parallelism::threads_exactly(2),
        receiver_restart_delay: Duration::from_millis(20),
        stop_on_signal: true,
        ..StreamingConfig::default()
    })?;
    ssc.checkpoint(root.join("checkpoint"))?;
    let lines = ssc.socket_text_stream("127.0.0.1", port);
    let out = root.join("counted");
    let stuck = role == "stuck";
    lines.foreach_rdd(move |rdd, _| -> std::io::Result<()> {
        let numbers = rdd.collect();
        if stuck && !numbers.is_empty() {
            println!("STUCK");
            loop {
                std::thread::park();
            }
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)?;
        for n in numbers {
            writeln!(file, "{n}")?;
        }
        file.sync_all()
    })?;
    // State, so that the graceful stop has a checkpoint to write.
    lines
        .map(|_| ("lines".to_string(), 1u64))
        .update_state_by_key(|new: &[u64], total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        })
        .foreach_rdd(|_, _| ())?;
    ssc.start()?;
    ssc.await_records_received(RECEIVED_BEFORE_SIGNAL, PATIENCE)?;
    println!("RECEIVED");
    ssc.await_termination()
}

fn spawn_child(role: &str, port: u16, root: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "signal_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, format!("{role}:{port}:{}", root.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for the child to print `line`, and keeps reading what it prints after, so
/// that its writes never fail.
fn wait_for_line(child: &mut Child, line: &'static str) {
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (seen, saw) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for printed in stdout.lines().map_while(Result::ok) {
            if printed.ends_with(line) {
                let _ = seen.send(());
            }
        }
    });
    saw.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("the child did not print {line}"));
}

fn send_sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn wait_exit(child: &mut Child, signal_every: Option<Duration>) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    let mut next_signal = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the child did not exit");
        if let Some(every) = signal_every
            && Instant::now() >= next_signal
        {
            send_sigterm(child);
            next_signal = Instant::now() + every;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Serves numbered lines to the first connection until it is closed; returns how many
/// lines were written.
fn serve_until_closed(listener: TcpListener) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = BufWriter::with_capacity(4096, stream);
        let mut sent = 0;
        loop {
            if writeln!(out, "{}", sent + 1).is_err() {
                return sent;
            }
            sent += 1;
            if sent % 100 == 0 {
                // Lines keep flowing, at a pace the child keeps up with.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

#[test]
fn sigterm_stops_gracefully_and_counts_every_accepted_line_once() {
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = spawn_child("count", port, root.path());
    let server = serve_until_closed(listener);
    wait_for_line(&mut child, "RECEIVED");
    send_sigterm(&child);
    let status = wait_exit(&mut child, None);
    assert!(status.success(), "{status:?}");
    let sent = server.join().unwrap();

    let text = fs::read_to_string(root.path().join("counted")).unwrap();
    let counted: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    let distinct: BTreeSet<u64> = counted.iter().copied().collect();
    assert_eq!(counted.len(), distinct.len(), "a line was counted twice");
    // Everything the receiver accepted before the stop (at least what it had when it
    // was signalled) was counted: the first lines sent, with no gap. Lines still in
    // the sockets' buffers when the receiver stopped were never accepted.
    let last = *distinct.last().unwrap();
    assert_eq!(distinct, (1..=last).collect(), "lines were lost");
    assert!(
        last >= RECEIVED_BEFORE_SIGNAL && last <= sent,
        "{last} of {sent}"
    );
    let checkpoints = fs::read_dir(root.path().join("checkpoint"))
        .unwrap()
        .count();
    assert!(checkpoints > 0, "no checkpoint was written");
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = spawn_child("stuck", port, root.path());
    let _server = serve_until_closed(listener);
    wait_for_line(&mut child, "STUCK");
    // The batch never ends, so the graceful stop cannot: only the second signal ends
    // the process. Signals are sent until it exits, since two sent at once may arrive
    // as one.
    let status = wait_exit(&mut child, Some(Duration::from_millis(200)));
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
}
