//! Stateful streams: `update_state_by_key` and `map_with_state`, batch by batch on a
//! manual clock, with the checkpoint directory they need.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ByFirstLetter, Harness, collect, counts, lines, sorted_batches, sorted_partitions};
use dstream::{DStream, Error, RddQueue, State, StateSpec, Time};
use serde::{Deserialize, Serialize};

/// A context with a checkpoint directory (kept alive by the returned guard).
fn stateful_harness() -> (Harness, tempfile::TempDir) {
    let h = Harness::seconds();
    let dir = tempfile::tempdir().unwrap();
    h.ssc.checkpoint(dir.path()).unwrap();
    (h, dir)
}

/// The seed's `updateFunc`: add the new values to the previous running count.
fn running_count(new_values: &[i32], running: Option<i32>) -> Option<i32> {
    Some(new_values.iter().sum::<i32>() + running.unwrap_or(0))
}

fn words(h: &Harness, queue: &RddQueue<String>) -> DStream<(String, i32)> {
    h.ssc
        .queue_stream(queue, true, None)
        .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|word| (word, 1))
}

#[test]
fn update_state_by_key_keeps_running_counts() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["a b", "a"])));
    queue.push(h.ssc.parallelize(lines(&["b c"])));
    let totals = collect(&words(&h, &queue).update_state_by_key(running_count));
    h.ssc.start().unwrap();
    h.run_batches(3);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&totals),
        vec![
            counts(&[("a", 2), ("b", 1)]),
            counts(&[("a", 2), ("b", 2), ("c", 1)]),
            counts(&[("a", 2), ("b", 2), ("c", 1)]),
        ]
    );
}

#[test]
fn update_state_by_key_scoped_runs_each_partitions_updates_inside_one_scope() {
    thread_local! {
        /// Whether this worker thread is inside a scope now.
        static IN_SCOPE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["a b", "a c d"])));
    queue.push(h.ssc.parallelize(lines(&["b"])));
    let scopes = Arc::new(AtomicUsize::new(0));
    let outside = Arc::new(AtomicUsize::new(0));
    let (counted, strays) = (scopes.clone(), outside.clone());
    let update = move |new: &[i32], total: Option<i32>| {
        if !IN_SCOPE.get() {
            strays.fetch_add(1, Ordering::SeqCst);
        }
        running_count(new, total)
    };
    let totals = collect(
        &words(&h, &queue)
            .partitioned(3)
            .update_state_by_key_scoped(update, None, move |work| {
                counted.fetch_add(1, Ordering::SeqCst);
                IN_SCOPE.set(true);
                work();
                IN_SCOPE.set(false);
            }),
    );
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&totals),
        vec![
            counts(&[("a", 2), ("b", 1), ("c", 1), ("d", 1)]),
            counts(&[("a", 2), ("b", 2), ("c", 1), ("d", 1)]),
        ]
    );
    // One scope per partition and batch (3 partitions, 2 batches), every call inside.
    assert_eq!(scopes.load(Ordering::SeqCst), 6);
    assert_eq!(outside.load(Ordering::SeqCst), 0);
}

#[test]
fn state_lives_where_a_custom_partitioner_puts_its_keys() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["apple kiwi zebra", "apple"])));
    queue.push(h.ssc.parallelize(lines(&["pear zebra"])));
    let by_letter = words(&h, &queue).partitioned(ByFirstLetter);
    let totals = collect(&by_letter.update_state_by_key(running_count).glom());
    let mapped = by_letter.map_with_state(StateSpec::function(
        |word: &String, one: Option<i32>, total: &mut State<i32>| {
            let sum = total.get().copied().unwrap_or(0) + one.unwrap_or(0);
            total.update(sum);
            (word.clone(), sum)
        },
    ));
    let emitted = collect(&mapped.glom());
    let snapshots = collect(&mapped.state_snapshots().glom());
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    let owned = |parts: &[&[(&str, i32)]]| -> Vec<Vec<(String, i32)>> {
        parts.iter().map(|part| counts(part)).collect()
    };
    let states = vec![
        owned(&[&[("apple", 2)], &[("kiwi", 1)], &[("zebra", 1)]]),
        owned(&[
            &[("apple", 2)],
            &[("kiwi", 1), ("pear", 1)],
            &[("zebra", 2)],
        ]),
    ];
    assert_eq!(sorted_partitions(&totals), states);
    assert_eq!(sorted_partitions(&snapshots), states);
    assert_eq!(
        sorted_partitions(&emitted),
        vec![
            owned(&[
                &[("apple", 1), ("apple", 2)],
                &[("kiwi", 1)],
                &[("zebra", 1)]
            ]),
            owned(&[&[], &[("pear", 1)], &[("zebra", 2)]]),
        ]
    );
}

#[test]
fn update_state_by_key_calls_the_function_for_every_key_and_none_removes() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["a b b"])));
    queue.push(h.ssc.parallelize(lines(&["c"])));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    // Keys live for two batches without news, then go.
    let aging =
        words(&h, &queue).update_state_by_key(move |new: &[i32], age: Option<(i32, u8)>| {
            seen.fetch_add(1, Ordering::SeqCst);
            let (total, idle) = age.unwrap_or((0, 0));
            match (new.is_empty(), idle) {
                (false, _) => Some((total + new.iter().sum::<i32>(), 0)),
                (true, 1) => None,
                (true, idle) => Some((total, idle + 1)),
            }
        });
    let out = collect(&aging);
    h.ssc.start().unwrap();
    h.run_batches(4);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![
            vec![("a".to_string(), (1, 0)), ("b".to_string(), (2, 0))],
            vec![
                ("a".to_string(), (1, 1)),
                ("b".to_string(), (2, 1)),
                ("c".to_string(), (1, 0))
            ],
            vec![("c".to_string(), (1, 1))],
            vec![],
        ]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2 + 3 + 3 + 1);
}

#[test]
fn update_state_by_key_can_start_from_an_initial_state() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["a"])));
    let initial = h.ssc.parallelize(counts(&[("a", 10), ("z", 5)]));
    let totals = collect(
        &words(&h, &queue)
            .partitioned(3)
            .update_state_by_key_with_initial(running_count, initial),
    );
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();
    assert_eq!(
        sorted_batches(&totals),
        vec![
            counts(&[("a", 11), ("z", 5)]),
            counts(&[("a", 11), ("z", 5)])
        ]
    );
}

#[test]
fn stateful_streams_need_a_writable_checkpoint_directory() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    collect(
        &words(&h, &queue)
            .update_state_by_key(running_count)
            .name("totals"),
    );
    let err = h.ssc.start().unwrap_err();
    assert!(matches!(err, Error::CheckpointRequired { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("update_state_by_key \"totals\" needs a checkpoint directory"),
        "{message}"
    );
    assert!(message.contains("ssc.checkpoint(dir)"), "{message}");

    let h = Harness::seconds();
    let blocker = tempfile::NamedTempFile::new().unwrap();
    h.ssc.checkpoint(blocker.path().join("sub")).unwrap();
    collect(&words(&h, &RddQueue::new()).update_state_by_key(running_count));
    let err = h.ssc.start().unwrap_err().to_string();
    assert!(err.contains("cannot create checkpoint directory"), "{err}");
}

#[test]
fn a_panic_in_the_update_function_fails_the_batch_and_names_the_stream() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["ok"])));
    queue.push(h.ssc.parallelize(lines(&["ok"])));
    let pairs = h.ssc.queue_stream(&queue, true, None).map(|w| (w, 1));
    // No output reads the state: it advances every batch all the same, and a panic in
    // its function fails the batch.
    let _state = pairs
        .update_state_by_key(|new: &[i32], total: Option<i32>| {
            if total.is_some() && !new.is_empty() {
                panic!("second word seen");
            }
            Some(total.unwrap_or(0) + new.len() as i32)
        })
        .name("words");
    let _ = collect(&pairs.count());
    h.ssc.start().unwrap();
    h.run_batch();
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err().to_string();
    assert!(err.contains("batch 2000 ms failed"), "{err}");
    assert!(err.contains("the state update of"), "{err}");
    assert!(err.contains("update_state_by_key \"words\""), "{err}");
    assert!(err.contains("second word seen"), "{err}");
}

#[test]
fn map_with_state_runs_only_for_keys_with_new_data() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    // 1000 keys, then batches touching 10 of them.
    queue.push(
        h.ssc
            .parallelize((0..1000).map(|k| (k, 1u64)).collect::<Vec<_>>()),
    );
    for batch in 0..3u64 {
        queue.push(
            h.ssc
                .parallelize((0..10).map(|k| (k * 7 + batch, 1u64)).collect::<Vec<_>>()),
        );
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mapped = h
        .ssc
        .queue_stream(&queue, true, None)
        .map_with_state(StateSpec::function(
            move |key: &u64, value: Option<u64>, total: &mut State<u64>| {
                seen.fetch_add(1, Ordering::SeqCst);
                let sum = total.get().copied().unwrap_or(0) + value.unwrap_or(0);
                total.update(sum);
                (*key, sum)
            },
        ));
    let emitted = collect(&mapped.count());
    let state_size = collect(&mapped.state_snapshots().count());
    h.ssc.start().unwrap();
    h.run_batch();
    let after_first = calls.load(Ordering::SeqCst);
    h.run_batches(3);
    h.ssc.stop(false).unwrap();

    assert_eq!(after_first, 1000);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1000 + 3 * 10,
        "1% of keys touched: 1% of calls"
    );
    assert_eq!(
        sorted_batches(&emitted),
        vec![vec![1000], vec![10], vec![10], vec![10]]
    );
    assert_eq!(sorted_batches(&state_size), vec![vec![1000]; 4]);
}

#[test]
fn map_with_state_emits_per_record_and_removes_on_request() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(counts(&[("a", 1), ("a", 2), ("b", 5)])));
    queue.push(h.ssc.parallelize(counts(&[("a", -1), ("b", 1)])));
    // A running sum that forgets a key when a negative value arrives.
    let mapped = h
        .ssc
        .queue_stream(&queue, true, None)
        .map_with_state(StateSpec::function(
            |key: &String, value: Option<i32>, sum: &mut State<i32>| {
                let value = value.unwrap_or(0);
                if value < 0 {
                    sum.remove();
                    return format!("{key} reset");
                }
                let total = sum.get().copied().unwrap_or(0) + value;
                sum.update(total);
                format!("{key}={total}")
            },
        ));
    let out = collect(&mapped);
    let snapshots = collect(&mapped.state_snapshots());
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![lines(&["a=1", "a=3", "b=5"]), lines(&["a reset", "b=6"])]
    );
    assert_eq!(
        sorted_batches(&snapshots),
        vec![counts(&[("a", 3), ("b", 5)]), counts(&[("b", 6)])]
    );
}

#[test]
fn map_with_state_times_out_idle_keys() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(counts(&[("a", 1), ("b", 1)])));
    queue.push(h.ssc.parallelize(counts(&[("b", 1)])));
    let spec = StateSpec::function(|key: &String, value: Option<i32>, count: &mut State<i32>| {
        if count.is_timing_out() {
            return format!("{key} timed out at {}", count.get().unwrap());
        }
        let total = count.get().copied().unwrap_or(0) + value.unwrap_or(0);
        count.update(total);
        format!("{key}={total}")
    })
    .timeout(Duration::from_secs(2));
    let mapped = h.ssc.queue_stream(&queue, true, None).map_with_state(spec);
    let out = collect(&mapped);
    let keys = collect(&mapped.state_snapshots().map(|(k, _)| k));
    h.ssc.start().unwrap();
    h.run_batches(5);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![
            lines(&["a=1", "b=1"]),
            lines(&["b=2"]),
            vec![],
            lines(&["a timed out at 1"]),
            lines(&["b timed out at 2"]),
        ]
    );
    assert_eq!(
        sorted_batches(&keys),
        vec![
            lines(&["a", "b"]),
            lines(&["a", "b"]),
            lines(&["a", "b"]),
            lines(&["b"]),
            vec![]
        ]
    );
}

/// Spark refuses `State.update` on a key that is timing out (the key is removed after
/// the call, so the update would be lost): the batch fails, naming what to do.
#[test]
fn updating_a_key_that_is_timing_out_fails_the_batch() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(counts(&[("a", 1)])));
    let spec = StateSpec::function(|_: &String, value: Option<i32>, count: &mut State<i32>| {
        count.update(count.get().copied().unwrap_or(0) + value.unwrap_or(0));
    })
    .timeout(Duration::from_secs(1));
    let mapped = h.ssc.queue_stream(&queue, true, None).map_with_state(spec);
    let out = collect(&mapped);
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err();
    let Error::BatchFailed {
        time,
        cause: Some(cause),
        ..
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    assert_eq!(*time, Time::from_millis(3000));
    assert!(
        matches!(
            cause.downcast_ref::<Error>(),
            Some(Error::StateTimingOut { .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("check State::is_timing_out() before State::update"),
        "{err}"
    );
    assert_eq!(
        out.lock().unwrap().len(),
        2,
        "the first two batches completed"
    );
}

/// A state value that counts how often it is cloned.
#[derive(Debug, Serialize, Deserialize)]
struct Counted(i64, #[serde(skip)] Option<Arc<AtomicUsize>>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        if let Some(clones) = &self.1 {
            clones.fetch_add(1, Ordering::SeqCst);
        }
        Counted(self.0, self.1.clone())
    }
}

#[test]
fn state_is_updated_in_place_unless_an_old_snapshot_is_kept() {
    let (h, _dir) = stateful_harness();
    let clones = Arc::new(AtomicUsize::new(0));
    let queue = RddQueue::new();
    for _ in 0..5 {
        queue.push(
            h.ssc
                .parallelize((0..500).map(|k| (k, 1i64)).collect::<Vec<(u32, i64)>>()),
        );
    }
    let tracker = clones.clone();
    let state = h.ssc.queue_stream(&queue, true, None).update_state_by_key(
        move |new: &[i64], old: Option<Counted>| {
            let (total, tracker) = match old {
                Some(Counted(total, tracker)) => (total, tracker),
                None => (0, Some(tracker.clone())),
            };
            Some(Counted(total + new.iter().sum::<i64>(), tracker))
        },
    );
    // Read only a total each batch, so no output clones the state either.
    let sums = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = sums.clone();
    state
        .map_partitions(|part| Some(part.count()))
        .foreach_rdd(move |rdd, _| {
            sink.lock()
                .unwrap()
                .push(rdd.collect().iter().sum::<usize>())
        })
        .unwrap();
    h.ssc.start().unwrap();
    h.run_batches(5);
    let in_place = clones.load(Ordering::SeqCst);
    h.ssc.stop(false).unwrap();

    // Reading the snapshot clones each entry once per batch (500 x 5); updating the
    // state itself clones nothing.
    assert_eq!(*sums.lock().unwrap(), vec![500; 5]);
    assert_eq!(in_place, 500 * 5, "no copy of the state per batch");
}

#[test]
fn a_kept_snapshot_stays_as_it_was() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["a"])));
    queue.push(h.ssc.parallelize(lines(&["a a"])));
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = kept.clone();
    words(&h, &queue)
        .update_state_by_key(running_count)
        .foreach_rdd(move |rdd, _| sink.lock().unwrap().push(rdd))
        .unwrap();
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();
    let kept = kept.lock().unwrap();
    assert_eq!(kept[0].collect(), counts(&[("a", 1)]));
    assert_eq!(kept[1].collect(), counts(&[("a", 3)]));
}

/// An element that counts how many copies of it are alive.
#[derive(Clone)]
struct Tracked(#[allow(dead_code)] Arc<()>);

#[test]
fn a_state_that_no_output_reads_keeps_no_old_batches_alive() {
    let (h, _dir) = stateful_harness();
    let token = Arc::new(());
    let queue = RddQueue::new();
    let _state = h
        .ssc
        .queue_stream(&queue, true, None)
        .map(|(key, _tracked): (u32, Tracked)| (key, 1))
        .update_state_by_key(running_count);
    collect(&h.ssc.queue_stream(&RddQueue::<u8>::new(), true, None));
    h.ssc.start().unwrap();
    let mut alive = Vec::new();
    for _ in 0..10 {
        queue.push(
            h.ssc
                .parallelize((0..50).map(|k| (k, Tracked(token.clone()))).collect()),
        );
        h.run_batch();
        alive.push(Arc::strong_count(&token) - 1);
    }
    h.ssc.stop(false).unwrap();
    assert!(
        alive.iter().all(|n| *n <= 100),
        "old batches are released: {alive:?}"
    );
}

#[test]
fn update_state_by_key_with_time_sees_each_batch_time() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["a b"])));
    queue.push(h.ssc.parallelize(lines(&["a"])));
    // The running count, and the batch time of the key's last new value.
    let last_seen = collect(
        &words(&h, &queue)
            .partitioned(2)
            .update_state_by_key_with_time(|time, new: &[i32], last: Option<(i32, i64)>| {
                let (count, seen) = last.unwrap_or((0, 0));
                let sum: i32 = new.iter().sum();
                Some(if new.is_empty() {
                    (count, seen)
                } else {
                    (count + sum, time.as_millis())
                })
            }),
    );
    h.ssc.start().unwrap();
    h.run_batches(3);
    h.ssc.stop(false).unwrap();

    let batch = |pairs: &[(&str, (i32, i64))]| -> Vec<(String, (i32, i64))> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        sorted_batches(&last_seen),
        vec![
            batch(&[("a", (1, 1000)), ("b", (1, 1000))]),
            batch(&[("a", (2, 2000)), ("b", (1, 1000))]),
            batch(&[("a", (2, 2000)), ("b", (1, 1000))]),
        ]
    );
}

#[test]
fn map_with_state_function_with_time_emits_only_what_it_returns() {
    let (h, _dir) = stateful_harness();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&["a b a"])));
    queue.push(h.ssc.parallelize(lines(&["b c"])));
    // A word the first time it is seen, with the batch time that saw it.
    let first_seen = collect(
        &words(&h, &queue).map_with_state(StateSpec::function_with_time(
            |time: Time, word: &String, _: Option<i32>, seen: &mut State<bool>| {
                if seen.exists() {
                    return None;
                }
                seen.update(true);
                Some((word.clone(), time.as_millis()))
            },
        )),
    );
    h.ssc.start().unwrap();
    h.run_batches(3);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&first_seen),
        vec![
            vec![("a".to_string(), 1000), ("b".to_string(), 1000)],
            vec![("c".to_string(), 2000)],
            vec![],
        ]
    );
}
