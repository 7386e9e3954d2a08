//! DStream operations end to end: queue streams on a manual clock, every batch's
//! output asserted exactly.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ByFirstLetter, Harness, collect, counts, lines, sorted_batches, sorted_partitions};
use dstream::{Parallelism, RddQueue, StreamingConfig, StreamingContext, Time};

fn word_count_stream(h: &Harness, queue: &RddQueue<String>) -> dstream::DStream<(String, i32)> {
    h.ssc
        .queue_stream(queue, true, None)
        .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|word| (word, 1))
        .reduce_by_key(|x, y| x + y)
}

#[test]
fn word_count_is_exact_in_every_batch() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(
        h.ssc
            .parallelize(lines(&["This is line 3", "This is line 4"])),
    );
    queue.push(h.ssc.parallelize(lines(&["This is line 3"])));
    let out = collect(&word_count_stream(&h, &queue));
    h.ssc.start().unwrap();
    let infos = h.run_batches(3);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![
            counts(&[("3", 1), ("4", 1), ("This", 2), ("is", 2), ("line", 2)]),
            counts(&[("3", 1), ("This", 1), ("is", 1), ("line", 1)]),
            vec![],
        ]
    );
    let times = common::batch_millis(&out);
    assert_eq!(times, vec![1000, 2000, 3000]);
    assert_eq!(
        infos
            .iter()
            .map(|i| i.batch_time.as_millis())
            .collect::<Vec<_>>(),
        times
    );
}

#[test]
fn narrow_operations_apply_per_batch() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize((1..=6).collect::<Vec<i32>>()));
    queue.push(h.ssc.parallelize(vec![10, 11]));
    let numbers = h.ssc.queue_stream(&queue, true, None);
    let doubled = collect(&numbers.map(|x| x * 2));
    let evens = collect(&numbers.filter(|x| x % 2 == 0));
    let spread = collect(&numbers.flat_map(|x| vec![x; (x % 3) as usize]));
    let sums = collect(&numbers.map_partitions(|part| Some(part.sum::<i32>())));
    let sizes = collect(&numbers.repartition(3).glom().map(|p| p.len()));
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&doubled),
        vec![vec![2, 4, 6, 8, 10, 12], vec![20, 22]]
    );
    assert_eq!(sorted_batches(&evens), vec![vec![2, 4, 6], vec![10]]);
    assert_eq!(
        sorted_batches(&spread),
        vec![vec![1, 2, 2, 4, 5, 5], vec![10, 11, 11]]
    );
    // parallelize splits 1..=6 into two partitions of three.
    assert_eq!(sorted_batches(&sums), vec![vec![6, 15], vec![10, 11]]);
    assert_eq!(sorted_batches(&sizes), vec![vec![2, 2, 2], vec![0, 1, 1]]);
}

#[test]
fn count_and_reduce_give_one_element_per_batch() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![3, 4, 5]));
    let numbers = h.ssc.queue_stream(&queue, true, None);
    let count = collect(&numbers.count());
    let sum = collect(&numbers.reduce(|a, b| a + b));
    let by_value = collect(&numbers.map(|x| x % 2).count_by_value());
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(sorted_batches(&count), vec![vec![3], vec![0]]);
    assert_eq!(sorted_batches(&sum), vec![vec![12], vec![]]);
    assert_eq!(
        sorted_batches(&by_value),
        vec![vec![(0, 1), (1, 2)], vec![]]
    );
}

#[test]
fn transform_sees_the_batch_time_and_transform_with_sees_both_streams() {
    let h = Harness::seconds();
    let (words, stop_words) = (RddQueue::new(), RddQueue::new());
    words.push(h.ssc.parallelize(lines(&["a", "the", "b", "an"])));
    words.push(h.ssc.parallelize(lines(&["the", "c"])));
    stop_words.push(h.ssc.parallelize(lines(&["the", "an"])));
    stop_words.push(h.ssc.parallelize(lines(&["c"])));
    let words = h.ssc.queue_stream(&words, true, None);
    let stop_words = h.ssc.queue_stream(&stop_words, true, None);

    let stamped = collect(
        &words.transform(|rdd, time| rdd.map(move |w| format!("{w}@{}", time.as_millis()))),
    );
    let kept = collect(
        &words
            .transform_with(&stop_words, |words, stop, _| {
                words
                    .map(|w| (w, ()))
                    .left_outer_join(&stop.map(|s| (s, ())))
                    .filter(|(_, (_, stop))| stop.is_none())
                    .keys()
            })
            .unwrap(),
    );
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&stamped),
        vec![
            lines(&["a@1000", "an@1000", "b@1000", "the@1000"]),
            lines(&["c@2000", "the@2000"])
        ]
    );
    assert_eq!(
        sorted_batches(&kept),
        vec![lines(&["a", "b"]), lines(&["the"])]
    );
}

#[test]
fn context_transform_sees_every_streams_rdd_in_order() {
    let h = Harness::seconds();
    let queues: Vec<RddQueue<u32>> = (0..3).map(|_| RddQueue::new()).collect();
    for batch in 1..=2u32 {
        for (i, queue) in queues.iter().enumerate() {
            let base = batch * 100 + i as u32 * 10;
            queue.push(h.ssc.parallelize(vec![base, base + 1]));
        }
    }
    let streams: Vec<_> = queues
        .iter()
        .map(|q| h.ssc.queue_stream(q, true, None))
        .collect();
    // Each batch: "stream index: its sum", from the Rdds in the order given.
    let sums = collect(
        &h.ssc
            .transform(&streams, |rdds, time| {
                let sums: Vec<String> = rdds
                    .iter()
                    .enumerate()
                    .map(|(i, rdd)| {
                        let sum: u32 = rdd.collect().iter().sum();
                        format!("{i}:{sum}@{}", time.as_millis())
                    })
                    .collect();
                dstream::Rdd::from_vec(sums, 1)
            })
            .unwrap(),
    );
    let other = StreamingContext::new("local[1]", Duration::from_secs(1)).unwrap();
    assert!(
        other
            .transform(&streams, |rdds, _| rdds[0].clone())
            .is_err()
    );
    let none: &[dstream::DStream<u32>] = &[];
    assert!(
        h.ssc
            .transform(none, |_, _| dstream::Rdd::<u32>::empty())
            .is_err()
    );
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&sums),
        vec![
            lines(&["0:201@1000", "1:221@1000", "2:241@1000"]),
            lines(&["0:401@2000", "1:421@2000", "2:441@2000"]),
        ]
    );
}

#[test]
fn unions_merge_streams_batch_by_batch() {
    let h = Harness::seconds();
    let queues: Vec<RddQueue<u32>> = (0..3).map(|_| RddQueue::new()).collect();
    for (i, queue) in queues.iter().enumerate() {
        queue.push(h.ssc.parallelize(vec![i as u32 * 10]));
    }
    let streams: Vec<_> = queues
        .iter()
        .map(|q| h.ssc.queue_stream(q, true, None))
        .collect();
    let pair = collect(&streams[0].union(&streams[1]).unwrap());
    let all = collect(&h.ssc.union(&streams).unwrap());
    h.ssc.start().unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(sorted_batches(&pair), vec![vec![0, 10]]);
    assert_eq!(sorted_batches(&all), vec![vec![0, 10, 20]]);
}

#[test]
fn pair_operations_apply_per_batch() {
    let h = Harness::seconds();
    let (left, right) = (RddQueue::new(), RddQueue::new());
    left.push(h.ssc.parallelize(vec![("a", 1), ("a", 2), ("b", 3)]));
    right.push(h.ssc.parallelize(vec![("a", 'x'), ("c", 'y')]));
    let left = h.ssc.queue_stream(&left, true, None);
    let right = h.ssc.queue_stream(&right, true, None);

    let mapped = collect(&left.map_values(|v| v * 10));
    let flat = collect(&left.flat_map_values(|v| 0..v));
    let grouped = collect(&left.group_by_key().map_values(|mut vs| {
        vs.sort();
        vs
    }));
    let averaged = collect(&left.combine_by_key(
        |v| (v, 1),
        |(s, n), v| (s + v, n + 1),
        |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
    ));
    let joined = collect(&left.join(&right).unwrap());
    let left_joined = collect(&left.left_outer_join(&right).unwrap());
    let right_joined = collect(&left.right_outer_join(&right).unwrap());
    let full = collect(&left.full_outer_join(&right).unwrap());
    let cogrouped = collect(&left.partitioned(3).cogroup(&right).unwrap().map_values(
        |(mut vs, ws)| {
            vs.sort();
            (vs, ws)
        },
    ));
    h.ssc.start().unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&mapped),
        vec![vec![("a", 10), ("a", 20), ("b", 30)]]
    );
    assert_eq!(
        sorted_batches(&flat),
        vec![vec![
            ("a", 0),
            ("a", 0),
            ("a", 1),
            ("b", 0),
            ("b", 1),
            ("b", 2)
        ]]
    );
    assert_eq!(
        sorted_batches(&grouped),
        vec![vec![("a", vec![1, 2]), ("b", vec![3])]]
    );
    assert_eq!(
        sorted_batches(&averaged),
        vec![vec![("a", (3, 2)), ("b", (3, 1))]]
    );
    assert_eq!(
        sorted_batches(&joined),
        vec![vec![("a", (1, 'x')), ("a", (2, 'x'))]]
    );
    assert_eq!(
        sorted_batches(&left_joined),
        vec![vec![
            ("a", (1, Some('x'))),
            ("a", (2, Some('x'))),
            ("b", (3, None))
        ]]
    );
    assert_eq!(
        sorted_batches(&right_joined),
        vec![vec![
            ("a", (Some(1), 'x')),
            ("a", (Some(2), 'x')),
            ("c", (None, 'y'))
        ]]
    );
    assert_eq!(
        sorted_batches(&full),
        vec![vec![
            ("a", (Some(1), Some('x'))),
            ("a", (Some(2), Some('x'))),
            ("b", (Some(3), None)),
            ("c", (None, Some('y'))),
        ]]
    );
    assert_eq!(
        sorted_batches(&cogrouped),
        vec![vec![
            ("a", (vec![1, 2], vec!['x'])),
            ("b", (vec![3], vec![])),
            ("c", (vec![], vec!['y'])),
        ]]
    );
}

#[test]
fn shuffles_use_the_requested_number_of_partitions() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(
        h.ssc
            .parallelize((0..100).map(|i| (i % 7, 1)).collect::<Vec<(i32, i32)>>()),
    );
    let pairs = h.ssc.queue_stream(&queue, true, None);
    let default = collect(&pairs.reduce_by_key(|a, b| a + b).glom().map(|_| ()));
    let five = collect(
        &pairs
            .partitioned(5)
            .reduce_by_key(|a, b| a + b)
            .glom()
            .map(|_| ()),
    );
    h.ssc.start().unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(
        default.lock().unwrap()[0].1.len(),
        2,
        "the context's parallelism"
    );
    assert_eq!(five.lock().unwrap()[0].1.len(), 5);
}

#[test]
fn keyed_operations_place_keys_where_a_custom_partitioner_says() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(
        h.ssc
            .parallelize(lines(&["apple kiwi zebra apple", "pear quince kiwi"])),
    );
    queue.push(h.ssc.parallelize(lines(&["fig", "yam"])));
    let words = h
        .ssc
        .queue_stream(&queue, true, None)
        .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>());
    let pairs = words.map(|word| (word, 1));
    let by_letter = pairs.partitioned(ByFirstLetter);
    let counted = collect(&by_letter.reduce_by_key(|a, b| a + b).glom());
    let grouped = collect(&by_letter.group_by_key().glom());
    let totals = pairs.reduce_by_key(|a, b| a + b);
    let joined = collect(
        &totals
            .partitioned(ByFirstLetter)
            .join(&totals.map_values(|c| c * 10))
            .unwrap()
            .glom(),
    );
    let values = collect(&words.partitioned(ByFirstLetter).count_by_value().glom());
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    let owned = |parts: &[&[(&str, i32)]]| -> Vec<Vec<(String, i32)>> {
        parts.iter().map(|part| counts(part)).collect()
    };
    assert_eq!(
        sorted_partitions(&counted),
        vec![
            owned(&[
                &[("apple", 2)],
                &[("kiwi", 2), ("pear", 1)],
                &[("quince", 1), ("zebra", 1)]
            ]),
            owned(&[&[("fig", 1)], &[], &[("yam", 1)]]),
        ]
    );
    let s = String::from;
    assert_eq!(
        sorted_partitions(&grouped),
        vec![
            vec![
                vec![(s("apple"), vec![1, 1])],
                vec![(s("kiwi"), vec![1, 1]), (s("pear"), vec![1])],
                vec![(s("quince"), vec![1]), (s("zebra"), vec![1])],
            ],
            vec![vec![(s("fig"), vec![1])], vec![], vec![(s("yam"), vec![1])]],
        ]
    );
    assert_eq!(
        sorted_partitions(&joined),
        vec![
            vec![
                vec![(s("apple"), (2, 20))],
                vec![(s("kiwi"), (2, 20)), (s("pear"), (1, 10))],
                vec![(s("quince"), (1, 10)), (s("zebra"), (1, 10))],
            ],
            vec![vec![(s("fig"), (1, 10))], vec![], vec![(s("yam"), (1, 10))]],
        ]
    );
    assert_eq!(
        sorted_partitions(&values),
        vec![
            vec![
                vec![(s("apple"), 2)],
                vec![(s("kiwi"), 2), (s("pear"), 1)],
                vec![(s("quince"), 1), (s("zebra"), 1)],
            ],
            vec![vec![(s("fig"), 1)], vec![], vec![(s("yam"), 1)]],
        ]
    );
}

/// The batch log line and the status page show `num_records`: a queue stream counts
/// the records of `Rdd`s held in memory, and only those, as counting others would
/// compute them.
#[test]
fn queue_stream_batches_count_the_records_held_in_memory() {
    let h = Harness::seconds();
    let (all, one) = (RddQueue::new(), RddQueue::new());
    all.push(h.ssc.parallelize(vec![1]));
    all.push(h.ssc.parallelize(vec![2, 3]));
    one.push(h.ssc.parallelize(vec![7, 8, 9]));
    one.push(h.ssc.parallelize(vec![5, 6]).map(|x| x * 2));
    let default = Some(h.ssc.parallelize(vec![-1]));
    collect(&h.ssc.queue_stream(&all, false, None));
    collect(&h.ssc.queue_stream(&one, true, default));
    h.ssc.start().unwrap();
    let records: Vec<u64> = h.run_batches(3).iter().map(|b| b.num_records).collect();
    h.ssc.stop(false).unwrap();
    // 1 + 2 + 3; then the mapped Rdd, not counted; then the default's one record.
    assert_eq!(records, vec![6, 0, 1]);
}

#[test]
fn queue_stream_takes_all_or_falls_back_to_its_default() {
    let h = Harness::seconds();
    let (all, one) = (RddQueue::new(), RddQueue::new());
    all.push(h.ssc.parallelize(vec![1]));
    all.push(h.ssc.parallelize(vec![2, 3]));
    one.push(h.ssc.parallelize(vec![7]));
    let default = Some(h.ssc.parallelize(vec![-1]));
    let everything = collect(&h.ssc.queue_stream(&all, false, None));
    let one_or_default = collect(&h.ssc.queue_stream(&one, true, default));
    h.ssc.start().unwrap();
    h.run_batch();
    all.push(h.ssc.parallelize(vec![4]));
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&everything),
        vec![vec![1, 2, 3], vec![4], vec![]]
    );
    assert_eq!(
        sorted_batches(&one_or_default),
        vec![vec![7], vec![-1], vec![-1]]
    );
}

#[test]
fn output_operations_run_in_registration_order() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![1]));
    let numbers = h.ssc.queue_stream(&queue, true, None);
    let log = Arc::new(Mutex::new(Vec::new()));
    for name in ["first", "second", "third"] {
        let log = log.clone();
        numbers
            .foreach_rdd(move |_, time| {
                log.lock()
                    .unwrap()
                    .push(format!("{name}@{}", time.as_millis()))
            })
            .unwrap();
    }
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "first@1000",
            "second@1000",
            "third@1000",
            "first@2000",
            "second@2000",
            "third@2000"
        ]
    );
}

#[test]
fn cached_streams_compute_each_batch_once() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![1, 2, 3]));
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let expensive = h
        .ssc
        .queue_stream(&queue, true, None)
        .map(move |x| {
            *counter.lock().unwrap() += 1;
            x
        })
        .cache();
    let a = collect(&expensive);
    let b = collect(&expensive.map(|x| x + 1));
    h.ssc.start().unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(sorted_batches(&a), vec![vec![1, 2, 3]]);
    assert_eq!(sorted_batches(&b), vec![vec![2, 3, 4]]);
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[test]
fn several_contexts_run_side_by_side_in_one_process() {
    let harnesses: Vec<Harness> = (0..3).map(|_| Harness::seconds()).collect();
    let outputs: Vec<_> = harnesses
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let queue = RddQueue::new();
            queue.push(h.ssc.parallelize(vec![i as u64; i + 1]));
            let out = collect(&h.ssc.queue_stream(&queue, true, None).count());
            h.ssc.start().unwrap();
            out
        })
        .collect();
    for h in &harnesses {
        h.run_batch();
    }
    for h in &harnesses {
        h.ssc.stop(false).unwrap();
    }
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(sorted_batches(out), vec![vec![i as u64 + 1]]);
    }
}

#[test]
fn batches_are_timed_on_the_interval_grid_of_the_clock() {
    let clock = dstream::ManualClock::new(Time::from_millis(12_345));
    let ssc = StreamingContext::builder()
        .config(StreamingConfig {
            batch_interval: Duration::from_secs(10),
            parallelism: Parallelism::threads_exactly(1),
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    let out = collect(&ssc.queue_stream(&RddQueue::<u8>::new(), true, None));
    ssc.start().unwrap();
    clock.set_time(Time::from_millis(20_000));
    ssc.await_batch(Time::from_millis(20_000), common::PATIENCE)
        .unwrap();
    clock.advance(Duration::from_secs(10));
    ssc.await_batch(Time::from_millis(30_000), common::PATIENCE)
        .unwrap();
    ssc.stop(false).unwrap();

    let times = common::batch_millis(&out);
    assert_eq!(
        times,
        vec![20_000, 30_000],
        "batch times are multiples of the interval"
    );
}
