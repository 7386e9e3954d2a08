//! The crash test: a program running a stateful word count over the file source is
//! killed with SIGKILL in the middle of the stream, started again, and must end with
//! exactly the state of a run that was never interrupted.
//!
//! The program is this test binary itself, run again as a child with
//! `DSTREAM_CRASH_CHILD_DIR` set: then `crash_child` plays the program and the other
//! test is not involved. The child drives its own manual clock, two batches per step,
//! so the generator sometimes runs ahead of the executor and a kill can leave
//! unfinished batches behind.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dstream::{ManualClock, StreamingContext, StreamingListener, Time};

const CHILD_ENV: &str = "DSTREAM_CRASH_CHILD_DIR";
const FILES: u32 = 40;
const SECOND: Duration = Duration::from_secs(1);

fn file_text(n: u32) -> String {
    let mut text = String::new();
    for line in 0..5 {
        let words: Vec<String> = (0..12)
            .map(|i| format!("w{}", (n * 31 + line * 7 + i * i) % 23))
            .collect();
        text.push_str(&words.join(" "));
        text.push('\n');
    }
    text
}

fn expected_state() -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for n in 1..=FILES {
        for word in file_text(n).split_whitespace() {
            *counts.entry(word.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn drop_file(input: &Path, n: u32) {
    let hidden = input.join(format!(".f{n:03}.tmp"));
    fs::write(&hidden, file_text(n)).unwrap();
    fs::rename(&hidden, input.join(format!("f{n:03}.txt"))).unwrap();
}

/// The child's role. Does nothing in an ordinary test run.
#[test]
fn crash_child() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        run_child(Path::new(&root)).unwrap();
    }
}

/// Prints the first batch this run will process.
struct ReportStart;

impl StreamingListener for ReportStart {
    fn on_streaming_started(&self, first_batch: Time) {
        println!("STARTED {}", first_batch.as_millis());
    }
}

fn run_child(root: &Path) -> dstream::Result<()> {
    let input = root.join("input");
    let clock = ManualClock::default();
    let done = Arc::new(AtomicBool::new(false));
    let total: i64 = expected_state().values().sum();
    let (build_clock, build_input, finished, out) = (
        clock.clone(),
        input.clone(),
        done.clone(),
        root.to_path_buf(),
    );
    let ssc = StreamingContext::get_or_create(root.join("checkpoint"), move || {
        let ssc = StreamingContext::builder()
            .batch_interval(SECOND)
            .master("local[2]")
            .clock(build_clock)
            .build()?;
        let counts = ssc
            .text_file_stream(&build_input)
            .flat_map(|line| {
                line.split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|word| (word, 1i64))
            .update_state_by_key(|new: &[i64], count: Option<i64>| {
                Some(new.iter().sum::<i64>() + count.unwrap_or(0))
            })
            .checkpoint_interval(Duration::from_secs(3))?;
        counts.foreach_rdd(move |rdd, time| -> std::io::Result<()> {
            let mut state = rdd.collect();
            state.sort();
            let sum: i64 = state.iter().map(|(_, c)| c).sum();
            println!("PROGRESS {} {sum}", time.as_millis());
            std::io::stdout().flush()?;
            if sum == total {
                let text: String = state.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
                fs::write(out.join(".final.tmp"), text)?;
                fs::rename(out.join(".final.tmp"), out.join("final.txt"))?;
                finished.store(true, Ordering::SeqCst);
            }
            Ok(())
        })?;
        Ok(ssc)
    })?;
    ssc.add_listener(ReportStart);
    ssc.start()?;
    let mut next = (1..=FILES)
        .find(|n| !input.join(format!("f{n:03}.txt")).exists())
        .unwrap_or(FILES + 1);
    let mut idle_steps = 0;
    while !done.load(Ordering::SeqCst) {
        for _ in 0..2 {
            if next <= FILES {
                drop_file(&input, next);
                next += 1;
            } else {
                idle_steps += 1;
            }
            clock.advance(SECOND);
        }
        ssc.await_batch(clock.now(), Duration::from_secs(60))?;
        assert!(
            idle_steps < 10,
            "all files are in, but the state never reached the total"
        );
    }
    ssc.stop(true)
}

/// Runs the child in `root`; kills it with SIGKILL after `kill_after` progress lines
/// if given. Returns the first batch time it reported.
fn run_program(root: &Path, kill_after: Option<usize>) -> i64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut started, mut progress) = (None, 0);
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints "test crash_child ... " before the child's first line.
        if let Some((_, time)) = line.split_once("STARTED ") {
            started = time.trim().parse().ok();
        }
        if line.starts_with("PROGRESS ") {
            progress += 1;
            if Some(progress) == kill_after {
                child.kill().unwrap(); // SIGKILL: no destructor, no final checkpoint
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    if kill_after.is_none() {
        assert!(status.success(), "the program failed: {status}");
    }
    started.expect("the program reported its start")
}

fn final_state(root: &Path) -> BTreeMap<String, i64> {
    fs::read_to_string(root.join("final.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let (word, count) = line.split_once(' ').unwrap();
            (word.to_string(), count.parse().unwrap())
        })
        .collect()
}

fn fresh_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("input")).unwrap();
    root
}

#[test]
fn a_program_killed_mid_stream_recovers_with_nothing_lost_or_counted_twice() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let uninterrupted = fresh_root();
    assert_eq!(run_program(uninterrupted.path(), None), 1000);
    let reference = final_state(uninterrupted.path());
    assert_eq!(reference, expected_state());

    // Killed at different points: after the first checkpoint (batch 3), mid-way, late.
    for kill_after in [5, 11, 17] {
        let root = fresh_root();
        run_program(root.path(), Some(kill_after));
        assert!(
            !root.path().join("final.txt").exists(),
            "killed before the end"
        );
        let resumed_at = run_program(root.path(), None);
        assert!(
            resumed_at > 3000,
            "the restart recovered a checkpoint (resumed at {resumed_at})"
        );
        assert_eq!(
            final_state(root.path()),
            reference,
            "killed after {kill_after} batches"
        );
    }
}
