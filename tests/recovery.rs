//! Checkpoints and `get_or_create`, in one process: a first context stops abruptly,
//! a second recovers its checkpoint, and the state ends exactly as if nothing had
//! happened. (`crash_recovery.rs` does the same with a process killed by SIGKILL.)

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{Batches, PATIENCE, sorted_batches};
use dstream::{
    BatchInfo, DStream, Error, ManualClock, Parallelism, Result, State, StateSpec, StreamingConfig,
    StreamingContext, StreamingListener, Time,
};

const SECOND: Duration = Duration::from_secs(1);

/// A test's directories: incoming files and checkpoints.
struct Dirs {
    _root: tempfile::TempDir,
    input: PathBuf,
    checkpoint: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    fs::create_dir(&input).unwrap();
    let checkpoint = root.path().join("checkpoint");
    Dirs {
        input,
        checkpoint,
        _root: root,
    }
}

/// The words of file `n`: a few repeating words, different per file.
fn file_text(n: u32) -> String {
    (0..20)
        .map(|i| format!("w{}", (n * 7 + i * i) % 11))
        .collect::<Vec<_>>()
        .join(" ")
        + "\n"
}

fn drop_file(dir: &Path, n: u32) {
    let hidden = dir.join(format!(".f{n}.tmp"));
    fs::write(&hidden, file_text(n)).unwrap();
    fs::rename(&hidden, dir.join(format!("f{n}.txt"))).unwrap();
}

/// Word counts over files `1..=last`, computed directly.
fn expected_counts(files: impl IntoIterator<Item = u32>) -> Vec<(String, i64)> {
    let mut counts = BTreeMap::new();
    for n in files {
        for word in file_text(n).split_whitespace() {
            *counts.entry(word.to_string()).or_insert(0i64) += 1;
        }
    }
    counts.into_iter().collect()
}

fn word_pairs(ssc: &StreamingContext, input: &Path) -> DStream<(String, i64)> {
    ssc.text_file_stream(input)
        .flat_map(|line| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .map(|word| (word, 1i64))
}

fn running_total(new: &[i64], total: Option<i64>) -> Option<i64> {
    Some(new.iter().sum::<i64>() + total.unwrap_or(0))
}

/// A word count over `input`, checkpointed every batch; records its state.
fn word_count(
    clock: &ManualClock,
    input: &Path,
    record: &Batches<(String, i64)>,
) -> impl FnOnce() -> Result<StreamingContext> {
    word_count_and(clock, input, record, |_| Ok(()))
}

/// [`word_count`], with `more` defining more on the word pairs.
fn word_count_and(
    clock: &ManualClock,
    input: &Path,
    record: &Batches<(String, i64)>,
    more: impl FnOnce(&DStream<(String, i64)>) -> Result<()>,
) -> impl FnOnce() -> Result<StreamingContext> {
    let (clock, input, record) = (clock.clone(), input.to_path_buf(), record.clone());
    move || {
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: SECOND,
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(clock)
            .build()?;
        let pairs = word_pairs(&ssc, &input);
        let totals = pairs
            .update_state_by_key(running_total)
            .name("totals")
            .checkpoint_interval(SECOND)?;
        totals.foreach_rdd(move |rdd, time| record.lock().unwrap().push((time, rdd.collect())))?;
        more(&pairs)?;
        Ok(ssc)
    }
}

fn last_state(record: &Batches<(String, i64)>) -> Vec<(String, i64)> {
    sorted_batches(record).pop().unwrap_or_default()
}

/// Builds (or recovers) the program in `checkpoint` and starts it.
fn launch(checkpoint: &Path, build: impl FnOnce() -> Result<StreamingContext>) -> StreamingContext {
    let ssc = StreamingContext::get_or_create(checkpoint, build).unwrap();
    ssc.start().unwrap();
    ssc
}

/// Advances `clock` one second and waits for that batch.
fn step(ssc: &StreamingContext, clock: &ManualClock) -> BatchInfo {
    clock.advance(SECOND);
    ssc.await_batch(clock.now(), PATIENCE).unwrap()
}

#[test]
fn without_a_checkpoint_get_or_create_builds_afresh() {
    let d = dirs();
    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, word_count(&clock, &d.input, &record));
    drop_file(&d.input, 1);
    step(&ssc, &clock);
    ssc.stop(false).unwrap();
    assert_eq!(last_state(&record), expected_counts([1]));
    assert!(d.checkpoint.join("checkpoint-1000").exists());
}

#[test]
fn state_and_file_positions_survive_an_abrupt_stop() {
    let d = dirs();
    let clock = ManualClock::default();
    let first = Batches::default();
    let ssc = launch(&d.checkpoint, word_count(&clock, &d.input, &first));
    for n in 1..=3 {
        drop_file(&d.input, n);
        step(&ssc, &clock);
    }
    // Gone before another checkpoint: file 4 arrives, is never processed.
    drop_file(&d.input, 4);
    ssc.stop(false).unwrap();
    assert_eq!(last_state(&first), expected_counts(1..=3));

    let clock = ManualClock::default();
    let second = Batches::default();
    let ssc = launch(&d.checkpoint, word_count(&clock, &d.input, &second));
    assert_eq!(
        clock.now(),
        Time::from_millis(3000),
        "the manual clock resumes at the checkpoint"
    );
    let info = step(&ssc, &clock);
    assert_eq!(info.batch_time, Time::from_millis(4000));
    drop_file(&d.input, 5);
    step(&ssc, &clock);
    ssc.stop(true).unwrap();

    assert_eq!(
        last_state(&second),
        expected_counts(1..=5),
        "each file counted exactly once"
    );
}

/// Signals batch submissions to a test, and lets an output wait for one.
#[derive(Default)]
struct Submitted(Mutex<Option<Time>>, Condvar);

impl Submitted {
    fn wait_for(&self, time: Time) {
        let guard = self.0.lock().unwrap();
        let (latest, timeout) = self
            .1
            .wait_timeout_while(guard, PATIENCE, |latest| latest.is_none_or(|t| t < time))
            .unwrap();
        assert!(!timeout.timed_out(), "batch {time} was never submitted");
        drop(latest);
    }
}

impl StreamingListener for Submitted {
    fn on_batch_submitted(&self, batch: &BatchInfo) {
        *self.0.lock().unwrap() = Some(batch.batch_time);
        self.1.notify_all();
    }
}

#[test]
fn unfinished_batches_run_again_from_the_files_they_had() {
    let d = dirs();
    let clock = ManualClock::default();
    let first = Batches::default();
    let submitted = Arc::new(Submitted::default());
    let gate = submitted.clone();
    // Batch 2 finishes only once batches 3 and 4 are queued; batch 3 then crashes the
    // program. The checkpoint after batch 2 records 3 and 4 as unfinished.
    let crashing = word_count_and(&clock, &d.input, &first, move |pairs| {
        pairs.foreach_rdd(move |_, time| {
            if time == Time::from_millis(2000) {
                gate.wait_for(Time::from_millis(4000));
            }
            if time == Time::from_millis(3000) {
                panic!("simulated crash");
            }
        })
    });
    let listener = submitted.clone();
    let ssc = launch(&d.checkpoint, move || {
        let ssc = crashing()?;
        ssc.add_listener(listener);
        Ok(ssc)
    });
    drop_file(&d.input, 1);
    step(&ssc, &clock);
    drop_file(&d.input, 2);
    clock.advance(SECOND);
    for n in [3, 4] {
        submitted.wait_for(Time::from_millis(1000 * (n as i64 - 1)));
        drop_file(&d.input, n);
        clock.advance(SECOND);
    }
    let err = ssc.await_termination().unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");

    let clock = ManualClock::default();
    let second = Batches::default();
    let infos = Arc::new(Mutex::new(Vec::new()));
    let (build_clock, input, seen, record) = (
        clock.clone(),
        d.input.clone(),
        infos.clone(),
        second.clone(),
    );
    let ssc = launch(&d.checkpoint, move || {
        let ssc = word_count(&build_clock, &input, &record)()?;
        ssc.add_listener(Recorder(seen));
        Ok(ssc)
    });
    ssc.await_batch(Time::from_millis(4000), PATIENCE).unwrap();
    ssc.stop(true).unwrap();

    let replayed: Vec<(i64, u64)> = infos
        .lock()
        .unwrap()
        .iter()
        .map(|i: &BatchInfo| (i.batch_time.as_millis(), i.num_records))
        .collect();
    assert_eq!(
        replayed,
        vec![(3000, 1), (4000, 1)],
        "batches 3 and 4 ran again, one file each"
    );
    let states = sorted_batches(&second);
    assert_eq!(states[0], expected_counts(1..=3));
    assert_eq!(states[1], expected_counts(1..=4));
}

/// Keeps every completed batch's figures.
struct Recorder(Arc<Mutex<Vec<BatchInfo>>>);

impl StreamingListener for Recorder {
    fn on_batch_completed(&self, batch: &BatchInfo) {
        self.0.lock().unwrap().push(batch.clone());
    }
}

#[test]
fn a_program_whose_state_differs_from_the_checkpoint_is_refused() {
    let d = dirs();
    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, word_count(&clock, &d.input, &record));
    step(&ssc, &clock);
    ssc.stop(true).unwrap();

    let input = d.input.clone();
    let err = StreamingContext::get_or_create(&d.checkpoint, move || {
        let ssc = StreamingContext::new("local[2]", SECOND)?;
        let counts = word_pairs(&ssc, &input)
            .map_with_state(StateSpec::function(
                |_: &String, v: Option<i64>, s: &mut State<i64>| {
                    s.update(v.unwrap_or(0));
                },
            ))
            .name("totals");
        counts.foreach_rdd(|_, _| ())?;
        Ok(ssc)
    })
    .unwrap_err();
    assert!(matches!(err, Error::CheckpointMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("update_state_by_key \"totals\""),
        "{message}"
    );
    assert!(message.contains("map_with_state \"totals\""), "{message}");

    let input = d.input.clone();
    let err = StreamingContext::get_or_create(&d.checkpoint, move || {
        let ssc = StreamingContext::new("local[2]", Duration::from_secs(2))?;
        word_pairs(&ssc, &input).foreach_rdd(|_, _| ())?;
        Ok(ssc)
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("batch interval of 1000 ms"), "{err}");
}

/// Two named states defined in either order, plus an output that only the second
/// program has.
fn two_states(
    clock: &ManualClock,
    input: &Path,
    swapped: bool,
    record: &Batches<(String, (i64, i64))>,
) -> impl FnOnce() -> Result<StreamingContext> {
    let (clock, input, record) = (clock.clone(), input.to_path_buf(), record.clone());
    move || {
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: SECOND,
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(clock)
            .build()?;
        let pairs = word_pairs(&ssc, &input);
        let make_words = || pairs.update_state_by_key(running_total).name("words");
        let make_doubled = || {
            pairs
                .map_values(|v| v * 2)
                .update_state_by_key(running_total)
                .name("doubled")
        };
        let (words, doubled) = if swapped {
            let doubled = make_doubled();
            (make_words(), doubled)
        } else {
            let words = make_words();
            (words, make_doubled())
        };
        if swapped {
            words.count().pprint_to(1, std::io::sink())?;
        }
        words
            .join(&doubled)?
            .foreach_rdd(move |rdd, time| record.lock().unwrap().push((time, rdd.collect())))?;
        Ok(ssc)
    }
}

#[test]
fn named_states_recover_whatever_order_they_are_defined_in() {
    let d = dirs();
    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, two_states(&clock, &d.input, false, &record));
    drop_file(&d.input, 1);
    step(&ssc, &clock);
    ssc.stop(true).unwrap();

    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, two_states(&clock, &d.input, true, &record));
    drop_file(&d.input, 2);
    step(&ssc, &clock);
    ssc.stop(true).unwrap();

    let expected: Vec<(String, (i64, i64))> = expected_counts(1..=2)
        .into_iter()
        .map(|(w, c)| (w, (c, 2 * c)))
        .collect();
    assert_eq!(sorted_batches(&record).pop().unwrap(), expected);
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_one_before() {
    let d = dirs();
    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, word_count(&clock, &d.input, &record));
    for n in 1..=3 {
        drop_file(&d.input, n);
        step(&ssc, &clock);
    }
    ssc.stop(false).unwrap();
    let newest = d.checkpoint.join("checkpoint-3000");
    let mut bytes = fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&newest, &bytes).unwrap();

    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, word_count(&clock, &d.input, &record));
    assert_eq!(
        clock.now(),
        Time::from_millis(2000),
        "resumed from the checkpoint of batch 2"
    );
    step(&ssc, &clock);
    ssc.stop(false).unwrap();
    assert_eq!(
        last_state(&record),
        expected_counts(1..=3),
        "file 3 is read again, once"
    );

    for entry in fs::read_dir(&d.checkpoint).unwrap() {
        fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let clock = ManualClock::default();
    let err = StreamingContext::get_or_create(
        &d.checkpoint,
        word_count(&clock, &d.input, &Batches::default()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::CorruptCheckpoint { .. }), "{err}");
}

/// An incremental 3-second window of word counts, sliding every second.
fn windowed(
    clock: &ManualClock,
    input: &Path,
    record: &Batches<(String, i64)>,
) -> impl FnOnce() -> Result<StreamingContext> {
    let (clock, input, record) = (clock.clone(), input.to_path_buf(), record.clone());
    move || {
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: SECOND,
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(clock)
            .build()?;
        word_pairs(&ssc, &input)
            .partitioned(2)
            .reduce_by_key_and_window_inv_with(
                |a, b| a + b,
                |a, b| a - b,
                Duration::from_secs(3),
                SECOND,
                |_, count| *count != 0,
            )?
            .checkpoint_interval(Duration::from_secs(2))?
            .foreach_rdd(move |rdd, time| record.lock().unwrap().push((time, rdd.collect())))?;
        Ok(ssc)
    }
}

#[test]
fn an_incremental_window_recovers_exactly() {
    // The reference: one uninterrupted run over files 1..=6.
    let reference_dirs = dirs();
    let clock = ManualClock::default();
    let reference = Batches::default();
    let ssc = launch(
        &reference_dirs.checkpoint,
        windowed(&clock, &reference_dirs.input, &reference),
    );
    for n in 1..=6 {
        drop_file(&reference_dirs.input, n);
        step(&ssc, &clock);
    }
    ssc.stop(false).unwrap();

    // Interrupted after batch 5 (checkpoint at 4), then recovered.
    let d = dirs();
    let clock = ManualClock::default();
    let first = Batches::default();
    let ssc = launch(&d.checkpoint, windowed(&clock, &d.input, &first));
    for n in 1..=5 {
        drop_file(&d.input, n);
        step(&ssc, &clock);
    }
    ssc.stop(false).unwrap();
    let clock = ManualClock::default();
    let second = Batches::default();
    let ssc = launch(&d.checkpoint, windowed(&clock, &d.input, &second));
    step(&ssc, &clock); // batch 5 again: its file is read again
    drop_file(&d.input, 6);
    step(&ssc, &clock);
    ssc.stop(false).unwrap();

    let reference = sorted_batches(&reference);
    assert_eq!(sorted_batches(&second), reference[4..6].to_vec());
}

/// The word count of [`word_count`] with its stateful stream defined by `state` over
/// the word pairs (it must add an output).
fn word_count_with(
    clock: &ManualClock,
    input: &Path,
    state: impl FnOnce(&DStream<(String, i64)>) -> Result<()> + 'static,
) -> impl FnOnce() -> Result<StreamingContext> {
    let (clock, input) = (clock.clone(), input.to_path_buf());
    move || {
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: SECOND,
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(clock)
            .build()?;
        state(&word_pairs(&ssc, &input))?;
        Ok(ssc)
    }
}

/// A checkpoint of [`word_count`] after files 1 and 2.
fn checkpointed_word_count(d: &Dirs) {
    let clock = ManualClock::default();
    let ssc = launch(
        &d.checkpoint,
        word_count(&clock, &d.input, &Batches::default()),
    );
    for n in 1..=2 {
        drop_file(&d.input, n);
        step(&ssc, &clock);
    }
    ssc.stop(false).unwrap();
}

#[test]
fn a_changed_state_type_is_refused_naming_the_stream_and_both_types() {
    let d = dirs();
    checkpointed_word_count(&d);

    // i64 -> u64: bincode would read every count doubled.
    let err = StreamingContext::get_or_create(
        &d.checkpoint,
        word_count_with(&ManualClock::default(), &d.input, |pairs| {
            pairs
                .map_values(|n| n as u64)
                .update_state_by_key(|new: &[u64], total: Option<u64>| {
                    Some(new.iter().sum::<u64>() + total.unwrap_or(0))
                })
                .name("totals")
                .foreach_rdd(|_, _| ())
        }),
    )
    .expect_err("a u64 state over an i64 checkpoint is refused");
    assert!(matches!(err, Error::StateTypeMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(
            "update_state_by_key \"totals\" stores (alloc::string::String, u64) but the checkpoint holds (alloc::string::String, i64)"
        ),
        "{message}"
    );
    assert!(message.contains("accept_checkpointed_types"), "{message}");

    // i64 -> String: a clear refusal, not the codec's message.
    let err = StreamingContext::get_or_create(
        &d.checkpoint,
        word_count_with(&ManualClock::default(), &d.input, |pairs| {
            pairs
                .update_state_by_key(|new: &[i64], total: Option<String>| {
                    Some(format!("{}{}", total.unwrap_or_default(), new.len()))
                })
                .name("totals")
                .foreach_rdd(|_, _| ())
        }),
    )
    .expect_err("a String state over an i64 checkpoint is refused");
    let message = err.to_string();
    assert!(
        message.contains(
            "update_state_by_key \"totals\" stores (alloc::string::String, alloc::string::String) but the checkpoint holds (alloc::string::String, i64)"
        ),
        "{message}"
    );
    assert!(!message.contains("Utf8"), "{message}");

    // The same types still recover exactly.
    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, word_count(&clock, &d.input, &record));
    drop_file(&d.input, 3);
    step(&ssc, &clock);
    ssc.stop(false).unwrap();
    assert_eq!(last_state(&record), expected_counts(1..=3));
}

#[test]
fn a_changed_window_value_type_is_refused() {
    let d = dirs();
    let clock = ManualClock::default();
    let ssc = launch(
        &d.checkpoint,
        windowed(&clock, &d.input, &Batches::default()),
    );
    for n in 1..=2 {
        drop_file(&d.input, n);
        step(&ssc, &clock);
    }
    ssc.stop(false).unwrap();

    let err = StreamingContext::get_or_create(
        &d.checkpoint,
        word_count_with(&ManualClock::default(), &d.input, |pairs| {
            pairs
                .map_values(|n| n as u64)
                .reduce_by_key_and_window_inv(
                    |a, b| a + b,
                    |a, b| a - b,
                    Duration::from_secs(3),
                    SECOND,
                )?
                .foreach_rdd(|_, _| ())
        }),
    )
    .expect_err("u64 window values over an i64 checkpoint are refused");
    let message = err.to_string();
    assert!(
        message.contains(
            "reduce_by_key_and_window stores (alloc::string::String, u64) but the checkpoint holds (alloc::string::String, i64)"
        ),
        "{message}"
    );
}

#[test]
fn a_renamed_type_with_the_same_encoding_is_accepted_when_asked() {
    use compact_str::CompactString;
    let d = dirs();
    checkpointed_word_count(&d);

    // String keys -> CompactString keys: encoded alike, but refused unless accepted.
    fn compact(
        clock: &ManualClock,
        input: &Path,
        accept: bool,
        record: &Batches<(CompactString, i64)>,
    ) -> impl FnOnce() -> Result<StreamingContext> {
        let record = record.clone();
        word_count_with(clock, input, move |pairs| {
            let totals = pairs
                .map(|(word, n)| (CompactString::from(word), n))
                .update_state_by_key(running_total)
                .name("totals");
            let totals = if accept {
                totals.accept_checkpointed_types()?
            } else {
                totals
            };
            totals.foreach_rdd(move |rdd, time| record.lock().unwrap().push((time, rdd.collect())))
        })
    }
    let err = StreamingContext::get_or_create(
        &d.checkpoint,
        compact(
            &ManualClock::default(),
            &d.input,
            false,
            &Batches::default(),
        ),
    )
    .expect_err("a renamed key type is refused by default");
    assert!(matches!(err, Error::StateTypeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("CompactString, i64)"), "{err}");

    let clock = ManualClock::default();
    let record = Batches::default();
    let ssc = launch(&d.checkpoint, compact(&clock, &d.input, true, &record));
    drop_file(&d.input, 3);
    step(&ssc, &clock);
    ssc.stop(false).unwrap();
    let recovered: Vec<(String, i64)> = sorted_batches(&record)
        .pop()
        .unwrap()
        .into_iter()
        .map(|(word, n)| (word.to_string(), n))
        .collect();
    assert_eq!(recovered, expected_counts(1..=3), "recovered exactly");

    // A stream without state has no types to accept.
    let ssc = StreamingContext::new("local[2]", SECOND).unwrap();
    let pairs = word_pairs(&ssc, &d.input);
    assert!(pairs.accept_checkpointed_types().is_err());
}
