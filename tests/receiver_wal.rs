//! The receivers' write-ahead log against SIGKILL: a stateful word count over a real
//! TCP socket is killed at several points (lines received but in no batch yet,
//! batches done but not checkpointed), started again each time, and must end with
//! exactly the counts of every line it received.
//!
//! The program is this test binary run again as a child with `DSTREAM_WAL_CHILD` set
//! (`root|port`): `wal_child` plays it. It reads commands from its stdin, so the test
//! decides exactly what it has received (it confirms each round of lines) and when
//! batches run (on its manual clock), and kills it only after it confirmed that it
//! received every line sent: what it loses then, it lost after accepting it.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::PATIENCE;

const CHILD_ENV: &str = "DSTREAM_WAL_CHILD";
const ROUNDS: u32 = 24;
const LINES_PER_ROUND: u32 = 25;

fn line(n: u32) -> String {
    let words: Vec<String> = (0..6)
        .map(|i| format!("w{}", (n * 7 + i * i) % 17))
        .collect();
    words.join(" ")
}

fn round_lines(round: u32) -> impl Iterator<Item = String> {
    (round * LINES_PER_ROUND..(round + 1) * LINES_PER_ROUND).map(line)
}

fn expected_state() -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for line in (0..ROUNDS).flat_map(round_lines) {
        for word in line.split_whitespace() {
            *counts.entry(word.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// The child's role. Does nothing in an ordinary test run.
#[test]
#[ignore = "a child process's role, run by this file's tests; does nothing by itself"]
fn wal_child() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (root, port) = spec.split_once('|').unwrap();
        run_child(Path::new(root), port.parse().unwrap()).unwrap();
    }
}

/// Commands, one per line on stdin: `expect N` waits until N lines arrived over this
/// run's connection and answers `GOT`; `tick` runs the next batch and answers
/// `TICKED`; `finish` runs batches until the counts are complete, stops and exits.
fn run_child(root: &Path, port: u16) -> dstream::Result<()> {
    let total: i64 = expected_state().values().sum();
    let (ssc, clock, done) =
        common::start_word_count_child(root, Duration::from_secs(4), total, move |ssc| {
            Ok(ssc.socket_text_stream("127.0.0.1", port))
        })?;
    // What the log gave back at the start (received before the kill, in no batch).
    let base = ssc.records_received();
    println!("READY");
    let second = Duration::from_secs(1);
    for command in std::io::stdin().lock().lines() {
        let command = command.unwrap();
        if let Some(lines) = command.strip_prefix("expect ") {
            ssc.await_records_received(base + lines.parse::<u64>().unwrap(), PATIENCE)?;
            println!("GOT");
        } else if command == "tick" {
            clock.advance(second);
            ssc.await_batch(clock.now(), PATIENCE)?;
            println!("TICKED");
        } else if command == "finish" {
            for _ in 0..20 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                clock.advance(second);
                ssc.await_batch(clock.now(), PATIENCE)?;
            }
            assert!(done.load(Ordering::SeqCst), "the counts never added up");
            return ssc.stop(true);
        }
        std::io::stdout().flush().unwrap();
    }
    Ok(())
}

/// A running child and its side of the connection.
struct Program {
    child: Child,
    commands: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
    connection: TcpStream,
    /// Lines sent over this connection.
    sent: u32,
}

impl Program {
    fn start(root: &Path, listener: &TcpListener) -> Program {
        let port = listener.local_addr().unwrap().port();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "wal_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, format!("{}|{port}", root.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let commands = child.stdin.take().unwrap();
        let replies = BufReader::new(child.stdout.take().unwrap()).lines();
        let (connection, _) = listener.accept().unwrap();
        let mut program = Program {
            child,
            commands,
            replies,
            connection,
            sent: 0,
        };
        program.wait_for("READY");
        program
    }

    fn wait_for(&mut self, reply: &str) {
        for line in &mut self.replies {
            // libtest prints "test wal_child ... " before the child's first line.
            if line.unwrap().ends_with(reply) {
                return;
            }
        }
        panic!("the program ended before it said {reply}");
    }

    fn command(&mut self, command: &str, reply: &str) {
        writeln!(self.commands, "{command}").unwrap();
        self.commands.flush().unwrap();
        self.wait_for(reply);
    }

    /// Sends a round of lines and waits until the program has received them all.
    fn send_round(&mut self, round: u32) {
        let text: String = round_lines(round).map(|l| l + "\n").collect();
        self.connection.write_all(text.as_bytes()).unwrap();
        self.sent += LINES_PER_ROUND;
        let expect = format!("expect {}", self.sent);
        self.command(&expect, "GOT");
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn finish(mut self) {
        writeln!(self.commands, "finish").unwrap();
        self.commands.flush().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the program failed: {status}");
    }
}

/// When, in a round, the program is killed.
#[derive(Clone, Copy, PartialEq)]
enum Kill {
    /// The round's lines are received and logged, but in no batch yet.
    BeforeItsBatch,
    /// The round's batch ran; the last checkpoint may be a few batches back.
    AfterItsBatch,
}

fn run_with_kills(kills: &[(u32, Kill)]) -> BTreeMap<String, i64> {
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut program = Program::start(root.path(), &listener);
    for round in 0..ROUNDS {
        program.send_round(round);
        if kills.contains(&(round, Kill::BeforeItsBatch)) {
            program.kill();
            program = Program::start(root.path(), &listener);
        }
        program.command("tick", "TICKED");
        if kills.contains(&(round, Kill::AfterItsBatch)) {
            program.kill();
            program = Program::start(root.path(), &listener);
        }
    }
    program.finish();
    // Each start wrote a new segment of the log. Once the three checkpoints kept are
    // all from the last run, what came before them is removed.
    let log = root.path().join("checkpoint/receivedData/0");
    assert_eq!(
        std::fs::read_dir(&log).unwrap().count(),
        1,
        "old log segments"
    );
    common::read_counts(&root.path().join("final.txt"))
}

#[test]
fn a_socket_program_killed_at_any_point_loses_no_line_it_received() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    assert_eq!(run_with_kills(&[]), expected_state());
    // Checkpoints come every 4 batches. Killed with received lines in no batch (twice
    // in a row, so that the restarted program's own log is replayed), and with
    // completed batches the last checkpoint does not hold.
    let kills = [
        (2, Kill::BeforeItsBatch),
        (3, Kill::BeforeItsBatch),
        (5, Kill::AfterItsBatch),
        (9, Kill::BeforeItsBatch),
        (10, Kill::AfterItsBatch),
    ];
    assert_eq!(run_with_kills(&kills), expected_state());
}
