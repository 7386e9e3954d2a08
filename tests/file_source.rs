//! `text_file_stream` and `binary_records_stream` on real temporary directories.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Harness, collect, lines, sorted_batches};
use dstream::{
    Error, FileStreamOptions, ManualClock, Parallelism, StreamingConfig, StreamingContext, Time,
};

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
        .config(StreamingConfig {
            batch_interval: interval,
            parallelism: Parallelism::threads_exactly(2),
            stop_timeout: Some(stop_timeout),
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
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

/// The log lines of every test in this file, from one global subscriber: tests pick
/// theirs out by the paths they name.
fn logs() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

    #[derive(Clone)]
    struct Writer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Writer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let log = LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer(log.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    });
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

/// The batches as they were output, in order (not sorted).
fn batches<T: Clone>(out: &common::Batches<T>) -> Vec<Vec<T>> {
    out.lock()
        .unwrap()
        .iter()
        .map(|(_, items)| items.clone())
        .collect()
}

#[test]
fn with_new_files_only_false_the_files_already_there_are_read_in_the_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    drop_file(dir.path(), "second.txt", "old two\n");
    set_modified(&dir.path().join("second.txt"), 200);
    drop_file(dir.path(), "first.txt", "old one\nold one b\n");
    set_modified(&dir.path().join("first.txt"), 100);
    drop_file(dir.path(), ".hidden", "never\n");
    let h = Harness::seconds();
    let options = FileStreamOptions::new().new_files_only(false);
    let out = collect(&h.ssc.text_file_stream_with(dir.path(), options));
    h.ssc.start().unwrap();
    let first = h.run_batch();
    drop_file(dir.path(), "new.txt", "new\n");
    h.run_batch();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(
        batches(&out),
        vec![
            lines(&["old one", "old one b", "old two"]),
            lines(&["new"]),
            vec![]
        ]
    );
    assert_eq!(first.num_records, 3);
}

/// A line count per line over `input` (all files, those already there too),
/// checkpointed every batch; records each batch's lines and the state.
fn counting_all_files(
    clock: &ManualClock,
    input: &Path,
    lines_seen: &common::Batches<String>,
    state: &common::Batches<(String, i64)>,
) -> impl FnOnce() -> dstream::Result<StreamingContext> {
    let (clock, input) = (clock.clone(), input.to_path_buf());
    let (lines_seen, state) = (lines_seen.clone(), state.clone());
    move || {
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: Duration::from_secs(1),
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(clock)
            .build()?;
        let options = FileStreamOptions::new().new_files_only(false);
        let lines = ssc.text_file_stream_with(&input, options);
        lines
            .foreach_rdd(move |rdd, time| lines_seen.lock().unwrap().push((time, rdd.collect())))?;
        let totals = lines
            .map(|line| (line, 1i64))
            .update_state_by_key(|new: &[i64], total: Option<i64>| {
                Some(new.iter().sum::<i64>() + total.unwrap_or(0))
            })
            .checkpoint_interval(Duration::from_secs(1))?;
        totals.foreach_rdd(move |rdd, time| state.lock().unwrap().push((time, rdd.collect())))?;
        Ok(ssc)
    }
}

#[test]
fn files_already_there_are_not_read_again_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    fs::create_dir(&input).unwrap();
    let checkpoint = root.path().join("checkpoint");
    drop_file(&input, "old.txt", "old\n");

    let clock = ManualClock::default();
    let (seen, state) = (common::Batches::default(), common::Batches::default());
    let ssc = StreamingContext::get_or_create(
        &checkpoint,
        counting_all_files(&clock, &input, &seen, &state),
    )
    .unwrap();
    ssc.start().unwrap();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(1));
        ssc.await_batch(clock.now(), common::PATIENCE).unwrap();
    }
    ssc.stop(false).unwrap();
    assert_eq!(batches(&seen), vec![lines(&["old"]), vec![]]);

    let clock = ManualClock::default();
    let (seen, state) = (common::Batches::default(), common::Batches::default());
    let ssc = StreamingContext::get_or_create(
        &checkpoint,
        counting_all_files(&clock, &input, &seen, &state),
    )
    .unwrap();
    ssc.start().unwrap();
    assert_eq!(
        clock.now(),
        Time::from_millis(2000),
        "restarted from the checkpoint"
    );
    clock.advance(Duration::from_secs(1));
    ssc.await_batch(clock.now(), common::PATIENCE).unwrap();
    drop_file(&input, "new.txt", "new\n");
    clock.advance(Duration::from_secs(1));
    ssc.await_batch(clock.now(), common::PATIENCE).unwrap();
    ssc.stop(false).unwrap();

    assert_eq!(batches(&seen), vec![vec![], lines(&["new"])]);
    let last = sorted_batches(&state).pop().unwrap();
    assert_eq!(last, vec![("new".to_string(), 1), ("old".to_string(), 1)]);
}

#[test]
fn a_pattern_watches_every_matching_directory_and_those_created_later() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    for sub in ["day-1", "day-2", "other", ".day-hidden"] {
        fs::create_dir_all(logs.join(sub)).unwrap();
    }
    fs::write(logs.join("day-file"), "a file, not a directory\n").unwrap();
    drop_file(&logs.join("day-1"), "before.txt", "there at start\n");
    let h = Harness::seconds();
    let out = collect(&h.ssc.text_file_stream(logs.join("day-?/")));
    h.ssc.start().unwrap();

    drop_file(&logs.join("day-1"), "a.txt", "one\n");
    set_modified(&logs.join("day-1/a.txt"), 100);
    drop_file(&logs.join("day-2"), "b.txt", "two\n");
    set_modified(&logs.join("day-2/b.txt"), 200);
    drop_file(&logs.join("other"), "c.txt", "not matched\n");
    drop_file(&logs.join(".day-hidden"), "d.txt", "hidden\n");
    drop_file(&logs, "top.txt", "not in a matched directory\n");
    h.run_batch();
    fs::create_dir(logs.join("day-3")).unwrap();
    drop_file(&logs.join("day-3"), "e.txt", "three\n");
    h.run_batch();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(
        batches(&out),
        vec![lines(&["one", "two"]), lines(&["three"]), vec![]]
    );
}

#[test]
fn a_pattern_matching_nothing_is_reported_once_and_watched_on() {
    logs(); // installs the subscriber before anything is logged
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("logs");
    fs::create_dir(&parent).unwrap();
    let pattern = parent.join("*").join("in");
    let h = Harness::seconds();
    let out = collect(&h.ssc.text_file_stream(&pattern));
    h.ssc.start().unwrap();
    h.run_batch();
    h.run_batch();
    fs::create_dir_all(parent.join("app").join("in")).unwrap();
    drop_file(&parent.join("app").join("in"), "x.txt", "found\n");
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(batches(&out), vec![vec![], vec![], lines(&["found"])]);
    let warnings = logs_naming(&pattern, "matches no directory");
    assert_eq!(warnings, 1, "{}", logs());
}

/// How many log lines name `path` and say `what`.
fn logs_naming(path: &Path, what: &str) -> usize {
    let path = path.display().to_string();
    logs()
        .lines()
        .filter(|line| line.contains(&path) && line.contains(what))
        .count()
}

#[test]
fn binary_records_are_read_as_fixed_length_records() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::seconds();
    let out = collect(&h.ssc.binary_records_stream(dir.path(), 3).unwrap());
    h.ssc.start().unwrap();
    fs::write(dir.path().join(".a.tmp"), b"abcdef\x00\x01\x02").unwrap();
    fs::rename(dir.path().join(".a.tmp"), dir.path().join("a.bin")).unwrap();
    set_modified(&dir.path().join("a.bin"), 100);
    fs::write(dir.path().join(".b.tmp"), b"").unwrap();
    fs::rename(dir.path().join(".b.tmp"), dir.path().join("b.bin")).unwrap();
    let first = h.run_batch();
    fs::write(dir.path().join(".c.tmp"), b"xyz").unwrap();
    fs::rename(dir.path().join(".c.tmp"), dir.path().join("c.bin")).unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    let records = |r: &[&[u8]]| r.iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        batches(&out),
        vec![
            records(&[b"abc", b"def", b"\x00\x01\x02"]),
            records(&[b"xyz"])
        ]
    );
    assert_eq!(first.num_records, 3);
}

#[test]
fn a_file_that_is_not_whole_records_is_skipped_with_a_warning() {
    logs(); // installs the subscriber before anything is logged
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::seconds();
    let out = collect(&h.ssc.binary_records_stream(dir.path(), 4).unwrap());
    h.ssc.start().unwrap();
    fs::write(dir.path().join("torn.bin"), b"12345678x").unwrap();
    fs::write(dir.path().join("whole.bin"), b"wxyz").unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(batches(&out), vec![vec![b"wxyz".to_vec()]]);
    let torn = dir.path().join("torn.bin");
    assert_eq!(
        logs_naming(&torn, "not a whole number of 4-byte records"),
        1,
        "{}",
        logs()
    );
    assert!(logs().contains("write whole records only"));
}

#[test]
fn a_record_length_of_zero_is_refused_when_the_stream_is_made() {
    let h = Harness::seconds();
    let err = h.ssc.binary_records_stream("incoming", 0).unwrap_err();
    assert!(matches!(err, Error::InvalidRecordLength { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("record length 0"), "{message}");
    assert!(message.contains("incoming"), "{message}");
}
