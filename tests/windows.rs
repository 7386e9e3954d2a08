//! Window operations on a manual clock: contents at each slide, incremental windows
//! against the plain computation, the cost of a slide, and bounded memory.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ByFirstLetter, Harness, collect, sorted_batches, sorted_partitions};
use dstream::{DStream, Error, RddQueue, Time};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A context with a checkpoint directory, for incremental windows.
fn checkpointed() -> (Harness, tempfile::TempDir) {
    let h = Harness::seconds();
    let dir = tempfile::tempdir().unwrap();
    h.ssc.checkpoint(dir.path()).unwrap();
    (h, dir)
}

/// Batch `k` (from 1) holds the numbers `10k .. 10k + 2`.
fn numbered_batches(h: &Harness, batches: u32) -> DStream<u32> {
    let queue = RddQueue::new();
    for k in 1..=batches {
        queue.push(h.ssc.parallelize(vec![10 * k, 10 * k + 1, 10 * k + 2]));
    }
    h.ssc.queue_stream(&queue, true, None)
}

#[test]
fn window_holds_the_batches_of_its_length_at_each_slide() {
    let h = Harness::seconds();
    let numbers = numbered_batches(&h, 5);
    let every_batch = collect(&numbers.window(secs(3), secs(1)).unwrap());
    let every_other = collect(&numbers.window(secs(4), secs(2)).unwrap());
    h.ssc.start().unwrap();
    h.run_batches(6);
    h.ssc.stop(false).unwrap();

    let tens = |ks: &[u32]| -> Vec<u32> {
        let mut v: Vec<u32> = ks
            .iter()
            .flat_map(|k| [10 * k, 10 * k + 1, 10 * k + 2])
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted_batches(&every_batch),
        vec![
            tens(&[1]),
            tens(&[1, 2]),
            tens(&[1, 2, 3]),
            tens(&[2, 3, 4]),
            tens(&[3, 4, 5]),
            tens(&[4, 5])
        ]
    );
    let times = common::batch_millis(&every_other);
    assert_eq!(times, vec![2000, 4000, 6000], "only at slide boundaries");
    assert_eq!(
        sorted_batches(&every_other),
        vec![tens(&[1, 2]), tens(&[1, 2, 3, 4]), tens(&[3, 4, 5])]
    );
}

#[test]
fn window_sizes_must_be_multiples_of_the_parent_slide() {
    let h = Harness::new(Duration::from_millis(500));
    let numbers = h.ssc.queue_stream(&RddQueue::<u32>::new(), true, None);
    let err = numbers
        .window(Duration::from_millis(1250), secs(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAMultiple {
                what: "window length",
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("must be a positive multiple of the batch interval 500ms"),
        "{message}"
    );
    let err = numbers.window(secs(2), Duration::ZERO).unwrap_err();
    assert!(
        matches!(err, Error::NotAMultiple { what: "slide", .. }),
        "{err}"
    );

    let windowed = numbers.window(secs(2), secs(1)).unwrap();
    let err = windowed
        .window(secs(3), Duration::from_millis(1500))
        .unwrap_err();
    assert!(
        err.to_string().contains("parent stream's slide 1s"),
        "{err}"
    );
    assert!(
        windowed
            .count_by_window(secs(2), Duration::from_millis(500))
            .is_err()
    );
    let pairs = numbers.map(|x| (x, 1));
    assert!(
        pairs
            .reduce_by_key_and_window(|a, b| a + b, secs(2), Duration::from_millis(700))
            .is_err()
    );
    assert!(
        pairs
            .reduce_by_key_and_window_inv(
                |a, b| a + b,
                |a, b| a - b,
                Duration::from_millis(300),
                secs(1)
            )
            .is_err()
    );
    assert!(
        pairs
            .group_by_key_and_window(Duration::from_millis(10), secs(1))
            .is_err()
    );
}

#[test]
fn window_reductions_without_inverse() {
    let h = Harness::seconds();
    let numbers = numbered_batches(&h, 3);
    let counts = collect(&numbers.count_by_window(secs(2), secs(1)).unwrap());
    let sums = collect(
        &numbers
            .reduce_by_window(|a, b| a + b, secs(2), secs(1))
            .unwrap(),
    );
    let pairs = numbers.map(|x| (x % 2, x));
    let by_key = collect(
        &pairs
            .reduce_by_key_and_window(|a, b| a + b, secs(2), secs(1))
            .unwrap(),
    );
    let grouped = collect(
        &pairs
            .group_by_key_and_window(secs(2), secs(2))
            .unwrap()
            .map_values(|mut v| {
                v.sort();
                v
            }),
    );
    h.ssc.start().unwrap();
    h.run_batches(4);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&counts),
        vec![vec![3], vec![6], vec![6], vec![3]]
    );
    assert_eq!(
        sorted_batches(&sums),
        vec![vec![33], vec![33 + 63], vec![63 + 93], vec![93]]
    );
    assert_eq!(
        sorted_batches(&by_key),
        vec![
            vec![(0, 22), (1, 11)],
            vec![(0, 22 + 42), (1, 11 + 21)],
            vec![(0, 42 + 62), (1, 21 + 31)],
            vec![(0, 62), (1, 31)],
        ]
    );
    assert_eq!(
        sorted_batches(&grouped),
        vec![
            vec![(0, vec![10, 12, 20, 22]), (1, vec![11, 21])],
            vec![(0, vec![30, 32]), (1, vec![31])]
        ]
    );
}

/// A fixed pseudo-random sequence (xorshift), for reproducible varied input.
struct Seq(u64);

impl Seq {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn the_seed_window_matches_the_plain_computation_in_every_batch() {
    let (h, _dir) = checkpointed();
    let queue = RddQueue::new();
    let mut seq = Seq(0x9e37_79b9_7f4a_7c15);
    for _ in 0..12 {
        let words: Vec<String> = (0..seq.next(30))
            .map(|_| format!("w{}", seq.next(8)))
            .collect();
        queue.push(h.ssc.parallelize(words));
    }
    let pairs = h.ssc.queue_stream(&queue, true, None).map(|w| (w, 1i64));
    let (length, slide) = (secs(4), secs(2));
    let incremental = collect(
        &pairs
            .partitioned(3)
            .reduce_by_key_and_window_inv_with(
                |x, y| x + y,
                |x, y| x - y,
                length,
                slide,
                |_, c| *c != 0,
            )
            .unwrap(),
    );
    let unfiltered = collect(
        &pairs
            .reduce_by_key_and_window_inv(|x, y| x + y, |x, y| x - y, length, slide)
            .unwrap(),
    );
    let plain = collect(
        &pairs
            .reduce_by_key_and_window(|x, y| x + y, length, slide)
            .unwrap(),
    );
    h.ssc.start().unwrap();
    h.run_batches(16);
    h.ssc.stop(false).unwrap();

    let plain = sorted_batches(&plain);
    assert_eq!(plain.len(), 8);
    assert_eq!(sorted_batches(&incremental), plain);
    let without_zeros: Vec<Vec<(String, i64)>> = sorted_batches(&unfiltered)
        .into_iter()
        .map(|b| b.into_iter().filter(|(_, c)| *c != 0).collect())
        .collect();
    assert_eq!(
        without_zeros, plain,
        "without a filter, emptied keys stay at 0"
    );
    assert!(
        sorted_batches(&unfiltered)
            .last()
            .unwrap()
            .iter()
            .all(|(_, c)| *c == 0)
    );
}

/// Runs an incremental window of `window_batches` one-second batches over 20 batches of
/// the same 50 keys, and counts the calls of the reduce and inverse functions and of a
/// map over the raw records.
fn calls_for_window(window_batches: u64) -> (usize, usize, usize) {
    let (h, _dir) = checkpointed();
    let queue = RddQueue::new();
    for _ in 0..20 {
        queue.push(
            h.ssc
                .parallelize((0..50u32).map(|k| (k, 1i64)).collect::<Vec<_>>()),
        );
    }
    let (reduces, inverses, records) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (r, i, m) = (reduces.clone(), inverses.clone(), records.clone());
    let windowed = h
        .ssc
        .queue_stream(&queue, true, None)
        .map(move |pair| {
            m.fetch_add(1, Ordering::SeqCst);
            pair
        })
        .reduce_by_key_and_window_inv(
            move |a, b| {
                r.fetch_add(1, Ordering::SeqCst);
                a + b
            },
            move |a, b| {
                i.fetch_add(1, Ordering::SeqCst);
                a - b
            },
            secs(window_batches),
            secs(1),
        )
        .unwrap();
    let totals = collect(&windowed.map(|(_, c)| c).reduce(|a, b| a + b));
    h.ssc.start().unwrap();
    h.run_batches(20);
    h.ssc.stop(false).unwrap();
    let last = totals.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(last, vec![50 * window_batches as i64]);
    (
        reduces.load(Ordering::SeqCst),
        inverses.load(Ordering::SeqCst),
        records.load(Ordering::SeqCst),
    )
}

#[test]
fn each_batch_is_reduced_once_entering_and_once_leaving_whatever_the_window_length() {
    for window_batches in [2, 8] {
        let (reduces, inverses, records) = calls_for_window(window_batches);
        // Every raw record is mapped once: batches are not read again by later windows.
        assert_eq!(records, 20 * 50, "window of {window_batches}");
        // 50 keys per batch: after the first batch, each entering batch merges 50 values.
        assert_eq!(reduces, 19 * 50, "window of {window_batches}");
        // Each batch that has left was taken out once, key by key.
        assert_eq!(
            inverses,
            (20 - window_batches as usize) * 50,
            "window of {window_batches}"
        );
    }
}

#[test]
fn incremental_counts_by_value_and_window() {
    let (h, _dir) = checkpointed();
    let queue = RddQueue::new();
    for batch in [vec!['a', 'b', 'a'], vec!['b'], vec![], vec!['c']] {
        queue.push(h.ssc.parallelize(batch));
    }
    let counts = collect(
        &h.ssc
            .queue_stream(&queue, true, None)
            .count_by_value_and_window(secs(2), secs(1))
            .unwrap(),
    );
    let totals = collect(
        &h.ssc
            .queue_stream(&RddQueue::<i64>::new(), true, None)
            .reduce_by_window_inv(|a, b| a + b, |a, b| a - b, secs(2), secs(1))
            .unwrap(),
    );
    h.ssc.start().unwrap();
    h.run_batches(5);
    h.ssc.stop(false).unwrap();
    assert_eq!(
        sorted_batches(&counts),
        vec![
            vec![('a', 2), ('b', 1)],
            vec![('a', 2), ('b', 2)],
            vec![('b', 1)],
            vec![('c', 1)],
            vec![('c', 1)],
        ]
    );
    assert_eq!(sorted_batches(&totals), vec![Vec::<i64>::new(); 5]);
}

#[test]
fn an_incremental_window_keeps_its_keys_where_a_custom_partitioner_puts_them() {
    let (h, _dir) = checkpointed();
    let queue = RddQueue::new();
    for batch in ["apple kiwi", "apple zebra", "pear"] {
        queue.push(h.ssc.parallelize(vec![batch.to_string()]));
    }
    let pairs = h.ssc.queue_stream(&queue, true, None).flat_map(|line| {
        line.split(' ')
            .map(|w| (w.to_string(), 1))
            .collect::<Vec<_>>()
    });
    // Each batch's reduction and the window's state must agree on where a key lives,
    // or a leaving batch would not find the keys it takes out.
    let windowed = collect(
        &pairs
            .partitioned(ByFirstLetter)
            .reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, secs(2), secs(1))
            .unwrap()
            .glom(),
    );
    h.ssc.start().unwrap();
    h.run_batches(3);
    h.ssc.stop(false).unwrap();

    let owned = |parts: &[&[(&str, i32)]]| -> Vec<Vec<(String, i32)>> {
        parts
            .iter()
            .map(|part| part.iter().map(|(w, c)| (w.to_string(), *c)).collect())
            .collect()
    };
    assert_eq!(
        sorted_partitions(&windowed),
        vec![
            owned(&[&[("apple", 1)], &[("kiwi", 1)], &[]]),
            owned(&[&[("apple", 2)], &[("kiwi", 1)], &[("zebra", 1)]]),
            owned(&[
                &[("apple", 1)],
                &[("kiwi", 0), ("pear", 1)],
                &[("zebra", 1)]
            ]),
        ]
    );
}

#[test]
fn incremental_windows_need_a_checkpoint_directory() {
    let h = Harness::seconds();
    let pairs = h
        .ssc
        .queue_stream(&RddQueue::<(u8, i32)>::new(), true, None);
    collect(
        &pairs
            .reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, secs(2), secs(1))
            .unwrap(),
    );
    let err = h.ssc.start().unwrap_err();
    assert!(matches!(err, Error::CheckpointRequired { .. }), "{err}");
    assert!(
        err.to_string().contains("reduce_by_key_and_window"),
        "{err}"
    );
}

/// An element that counts how many copies of it are alive.
#[derive(Clone)]
struct Tracked(#[allow(dead_code)] Arc<()>);

#[test]
fn batches_no_window_needs_are_dropped() {
    let h = Harness::seconds();
    let token = Arc::new(());
    let queue = RddQueue::new();
    let stream = h.ssc.queue_stream(&queue, true, None);
    let sizes = collect(&stream.window(secs(3), secs(1)).unwrap().count());
    h.ssc.start().unwrap();
    let mut alive = Vec::new();
    for _ in 0..20 {
        queue.push(h.ssc.parallelize(vec![Tracked(token.clone()); 100]));
        h.run_batch();
        alive.push(Arc::strong_count(&token) - 1);
    }
    h.ssc.stop(false).unwrap();
    assert_eq!(sorted_batches(&sizes).last().unwrap(), &vec![300]);
    let most = *alive.iter().max().unwrap();
    assert!(
        most <= 4 * 100,
        "at most the window's batches (and the next) stay alive: {alive:?}"
    );
    assert!(alive[19] <= 300, "{alive:?}");
}

#[test]
fn a_window_over_a_slower_slide_sees_every_batch() {
    let h = Harness::seconds();
    let numbers = numbered_batches(&h, 6);
    // The window reads batches 1 and 3 only at times 2 and 4: they must still be there.
    let sums = collect(
        &numbers
            .map(|x| x / 10)
            .window(secs(2), secs(2))
            .unwrap()
            .reduce(|a, b| a + b),
    );
    h.ssc.start().unwrap();
    h.run_batches(6);
    h.ssc.stop(false).unwrap();
    assert_eq!(
        sorted_batches(&sums),
        vec![vec![3 * (1 + 2)], vec![3 * (3 + 4)], vec![3 * (5 + 6)]]
    );
    assert_eq!(sums.lock().unwrap()[2].0, Time::from_millis(6000));
}

#[test]
fn group_by_key_and_window_keeps_values_oldest_batch_first() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    // One key, many values per batch over several partitions, so that the order could
    // only come out right by design.
    for batch in 0..4u32 {
        let values: Vec<(u8, u32)> = (0..40).map(|i| (7, batch * 100 + i)).collect();
        queue.push(h.ssc.parallelize(values));
    }
    let grouped = collect(
        &h.ssc
            .queue_stream(&queue, true, None)
            .group_by_key_and_window(secs(3), secs(1))
            .unwrap(),
    );
    h.ssc.start().unwrap();
    h.run_batches(4);
    h.ssc.stop(false).unwrap();

    let batches = sorted_batches(&grouped);
    for (at, batch) in batches.iter().enumerate() {
        let first = at.saturating_sub(2) as u32;
        let expected: Vec<u32> = (first..=at as u32)
            .flat_map(|b| (0..40).map(move |i| b * 100 + i))
            .collect();
        assert_eq!(batch, &vec![(7u8, expected)], "window ending at batch {at}");
    }
}
