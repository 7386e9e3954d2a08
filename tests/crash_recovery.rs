//! The crash test: a program running a stateful word count over the file source is
//! killed with SIGKILL in the middle of the stream, started again, and must end with
//! exactly the state of a run that was never interrupted.
//!
//! The program is this test binary itself, run again as a child with
//! `DSTREAM_CRASH_CHILD_DIR` set: then `crash_child` plays the program and the other
//! test is not involved. The child drives its own manual clock, two batches per step,
//! so the generator sometimes runs ahead of the executor and a kill can leave
//! unfinished batches behind.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

const CHILD_ENV: &str = "DSTREAM_CRASH_CHILD_DIR";
/// Plays the program with the default checkpoint interval (10 s), for a crash before
/// its first regular checkpoint.
const EARLY_CHILD_ENV: &str = "DSTREAM_EARLY_CRASH_CHILD_DIR";
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
#[ignore = "a child process's role, run by this file's tests; does nothing by itself"]
fn crash_child() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        run_child(Path::new(&root), Duration::from_secs(3)).unwrap();
    }
}

/// The early-crash child's role. Does nothing in an ordinary test run.
#[test]
#[ignore = "a child process's role, run by this file's tests; does nothing by itself"]
fn early_crash_child() {
    if let Ok(root) = std::env::var(EARLY_CHILD_ENV) {
        run_child(Path::new(&root), Duration::from_secs(10)).unwrap();
    }
}

fn run_child(root: &Path, checkpoint_every: Duration) -> dstream::Result<()> {
    let input = root.join("input");
    let total: i64 = expected_state().values().sum();
    let build_input = input.clone();
    let (ssc, clock, done) =
        common::start_word_count_child(root, checkpoint_every, total, move |ssc| {
            Ok(ssc.text_file_stream(&build_input))
        })?;
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
    let root = root.display().to_string();
    common::run_child_program("crash_child", (CHILD_ENV, &root), kill_after)
}

/// [`run_program`] with the early-crash child.
fn run_early_program(root: &Path, kill_after: Option<usize>) -> i64 {
    let root = root.display().to_string();
    common::run_child_program("early_crash_child", (EARLY_CHILD_ENV, &root), kill_after)
}

fn final_state(root: &Path) -> BTreeMap<String, i64> {
    common::read_counts(&root.join("final.txt"))
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

#[test]
fn a_program_killed_before_its_first_regular_checkpoint_loses_no_file() {
    if std::env::var(CHILD_ENV).is_ok() || std::env::var(EARLY_CHILD_ENV).is_ok() {
        return;
    }
    // Killed after its first batch, nine batches before the first regular checkpoint:
    // the files that arrived meanwhile are not "already there" for the restart.
    let root = fresh_root();
    run_early_program(root.path(), Some(1));
    assert!(
        !root.path().join("final.txt").exists(),
        "killed before the end"
    );
    let resumed_at = run_early_program(root.path(), None);
    assert_eq!(
        resumed_at, 1000,
        "the restart recovered the checkpoint of the start"
    );
    assert_eq!(final_state(root.path()), expected_state());
}
