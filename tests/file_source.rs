//! `text_file_stream` on a real temporary directory.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Harness, collect, lines, sorted_batches};
use dstream::Error;

/// Writes `text` to `dir/name` the way writers should: under a hidden name, then
/// renamed into place.
fn drop_file(dir: &Path, name: &str, text: &str) {
    let hidden = dir.join(format!(".{name}.tmp"));
    fs::write(&hidden, text).unwrap();
    fs::rename(&hidden, dir.join(name)).unwrap();
}

fn set_modified(path: &Path, seconds_after_epoch: u64) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds_after_epoch))
        .unwrap();
}

#[test]
fn new_files_are_read_once_and_files_present_at_start_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    drop_file(dir.path(), "old.txt", "already here\n");
    let h = Harness::seconds();
    let out = collect(&h.ssc.text_file_stream(dir.path()));
    h.ssc.start().unwrap();

    drop_file(dir.path(), "a.txt", "alpha one\nalpha two\n");
    drop_file(dir.path(), "b.txt", "beta");
    let first = h.run_batch();
    drop_file(dir.path(), "c.txt", "gamma\r\n");
    h.run_batch();
    h.run_batch(); // nothing new: nothing read again
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![
            lines(&["alpha one", "alpha two", "beta"]),
            lines(&["gamma"]),
            vec![]
        ]
    );
    assert_eq!(first.num_records, 3);
}

#[test]
fn files_are_read_in_modification_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::seconds();
    let out = collect(&h.ssc.text_file_stream(dir.path()));
    h.ssc.start().unwrap();
    for (name, modified) in [("z.txt", 100), ("a.txt", 300), ("m.txt", 200)] {
        drop_file(dir.path(), name, name);
        set_modified(&dir.path().join(name), modified);
    }
    h.run_batch();
    h.ssc.stop(false).unwrap();

    let batch = out.lock().unwrap()[0].1.clone();
    assert_eq!(batch, lines(&["z.txt", "m.txt", "a.txt"]));
}

#[test]
fn hidden_files_directories_and_unreadable_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::seconds();
    let out = collect(&h.ssc.text_file_stream(dir.path()));
    h.ssc.start().unwrap();
    fs::write(dir.path().join(".in-progress"), "not yet").unwrap();
    fs::write(dir.path().join("_SUCCESS"), "marker").unwrap();
    fs::create_dir(dir.path().join("subdir")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("broken.txt")).unwrap();
    drop_file(dir.path(), "good.txt", "kept\n");
    fs::write(dir.path().join("latin1.txt"), b"na\xefve\n").unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(sorted_batches(&out), vec![lines(&["kept", "na\u{fffd}ve"])]);
}

#[test]
fn a_file_removed_and_written_again_is_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::seconds();
    let out = collect(&h.ssc.text_file_stream(dir.path()));
    h.ssc.start().unwrap();
    drop_file(dir.path(), "log.txt", "v1\n");
    h.run_batch();
    fs::remove_file(dir.path().join("log.txt")).unwrap();
    h.run_batch();
    drop_file(dir.path(), "log.txt", "v2\n");
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![lines(&["v1"]), vec![], lines(&["v2"])]
    );
}

#[test]
fn a_missing_directory_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let h = Harness::seconds();
    collect(&h.ssc.text_file_stream(&missing));
    let err = h.ssc.start().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("cannot list directory"), "{message}");
    assert!(message.contains("nope"), "{message}");
}

#[test]
fn a_graceful_stop_reads_files_that_arrived_since_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::seconds();
    let out = collect(&h.ssc.text_file_stream(dir.path()));
    h.ssc.start().unwrap();
    drop_file(dir.path(), "late.txt", "just in time\n");
    h.ssc.stop(true).unwrap();
    assert_eq!(sorted_batches(&out), vec![lines(&["just in time"])]);
}

#[test]
fn a_large_file_is_spread_over_the_partitions_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::seconds();
    let parts = collect(&h.ssc.text_file_stream(dir.path()).glom());
    h.ssc.start().unwrap();
    let text: String = (0..300_000).map(|i| format!("line {i}\n")).collect();
    drop_file(dir.path(), "big.txt", &text);
    h.run_batch();
    h.ssc.stop(false).unwrap();

    let parts = parts.lock().unwrap()[0].1.clone();
    assert_eq!(parts.len(), 2, "both threads get half of the file");
    assert_eq!((parts[0].len(), parts[1].len()), (150_000, 150_000));
    let all: Vec<String> = parts.into_iter().flatten().collect();
    let expected: Vec<String> = (0..300_000).map(|i| format!("line {i}")).collect();
    assert!(all == expected, "every line once, in file order");
}

/// A harness whose `stop` gives up on a stuck batch after `stop_timeout`.
fn harness_stopping_within(stop_timeout: Duration) -> Harness {
    let clock = dstream::ManualClock::new(dstream::Time::from_millis(0));
    let interval = Duration::from_secs(1);
    let ssc = dstream::StreamingContext::builder()
        .batch_interval(interval)
        .master("local[2]")
        .clock(clock.clone())
        .stop_timeout(stop_timeout)
        .build()
        .unwrap();
    Harness {
        ssc,
        clock,
        interval,
    }
}

/// Runs `body` on its own thread and fails the test if it has not returned within
/// `limit`: a blocked read must fail the test rather than hang it.
fn within(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("still blocked after {limit:?}"),
    }
}

#[test]
fn named_pipes_and_directories_are_skipped_without_blocking_a_batch() {
    within(Duration::from_secs(40), || {
        let dir = tempfile::tempdir().unwrap();
        let h = harness_stopping_within(Duration::from_secs(2));
        let out = collect(&h.ssc.text_file_stream(dir.path()));
        h.ssc.start().unwrap();
        // A pipe with no writer: opening it to read would wait for one for ever.
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        fs::create_dir(dir.path().join("subdir")).unwrap();
        drop_file(dir.path(), "good.txt", "one\ntwo\nthree\n");
        let first = h.run_batch();
        drop_file(dir.path(), "later.txt", "four\n");
        let second = h.run_batch();
        h.ssc.stop(false).unwrap();

        assert_eq!((first.num_records, second.num_records), (3, 1));
        assert_eq!(
            sorted_batches(&out),
            vec![lines(&["one", "three", "two"]), lines(&["four"])]
        );
    });
}
