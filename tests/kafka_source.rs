//! The direct Kafka stream against a real broker: exact per-batch counts, offset
//! ranges, the rate cap per partition, starting positions and group commits.
#![cfg(feature = "kafka")]

mod common;
mod kafka_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Click, Harness, PATIENCE, click};
use dstream::kafka::{KafkaRecord, KafkaSource, OffsetRange, OffsetReset, StartingOffsets};
use kafka_support::*;

fn range(topic: &str, partition: i32, from: i64, until: i64) -> OffsetRange {
    OffsetRange {
        topic: topic.to_string(),
        partition,
        from_offset: from,
        until_offset: until,
    }
}

type Seen = Arc<Mutex<Vec<(Vec<KafkaRecord>, Vec<OffsetRange>, usize)>>>;

/// Records each batch's records (sorted by partition and offset), offset ranges and
/// number of partitions.
fn record_batches(stream: &dstream::kafka::KafkaStream) -> Seen {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    stream
        .foreach_rdd_with_offsets(move |rdd, _time, ranges| {
            let mut records = rdd.collect();
            records.sort_by_key(|r| (r.partition, r.offset));
            sink.lock()
                .unwrap()
                .push((records, ranges.to_vec(), rdd.num_partitions()));
        })
        .unwrap();
    seen
}

#[test]
fn every_message_of_four_partitions_arrives_once_in_exact_batches() {
    let topic = new_topic("exact", 4);
    // Partition p holds 50 * (p + 1) messages: 500 in all.
    let messages: Vec<(i32, String)> = (0..4)
        .flat_map(|p| (0..50 * (p + 1)).map(move |i| (p, format!("v p{p} m{i}"))))
        .collect();
    produce(&topic, &messages);

    let h = Harness::seconds();
    let stream = earliest_stream(&h.ssc, &topic);
    let seen = record_batches(&stream);
    let handle = stream.clone();
    let ranges_seen = Arc::new(Mutex::new(Vec::new()));
    let ranges_sink = ranges_seen.clone();
    stream
        .text()
        .count()
        .foreach_rdd(move |rdd, time| {
            ranges_sink
                .lock()
                .unwrap()
                .push((rdd.collect()[0], handle.offset_ranges(time).unwrap()));
        })
        .unwrap();
    h.ssc.start().unwrap();

    let first = h.run_batch();
    assert_eq!(first.num_records, 500);
    produce_spread(&topic, 4, 25, "later");
    let second = h.run_batch();
    assert_eq!(second.num_records, 100);
    let third = h.run_batch();
    assert_eq!(third.num_records, 0);
    h.ssc.stop(false).unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let (records, ranges, partitions) = &seen[0];
    assert_eq!(*partitions, 4, "one Rdd partition per Kafka partition");
    assert_eq!(
        ranges,
        &(0..4)
            .map(|p| range(&topic, p, 0, 50 * (i64::from(p) + 1)))
            .collect::<Vec<_>>()
    );
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = messages.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        values, expected,
        "every record, in offset order per partition"
    );
    assert!(
        records
            .iter()
            .all(|r| r.topic == topic && r.timestamp.is_some())
    );
    assert_eq!(records[0].offset, 0);

    let (records, ranges, _) = &seen[1];
    assert_eq!(records.len(), 100);
    assert_eq!(
        ranges,
        &(0..4)
            .map(|p| {
                let start = 50 * (i64::from(p) + 1);
                range(&topic, p, start, start + 25)
            })
            .collect::<Vec<_>>()
    );
    assert!(
        records
            .iter()
            .all(|r| String::from_utf8_lossy(r.value.as_ref().unwrap()).starts_with("later"))
    );
    let (records, ranges, _) = &seen[2];
    assert!(records.is_empty());
    assert!(ranges.iter().all(|r| r.count() == 0));

    let counted = ranges_seen.lock().unwrap();
    let totals: Vec<u64> = counted.iter().map(|(count, _)| *count).collect();
    assert_eq!(totals, vec![500, 100, 0]);
    let total_from_ranges: Vec<u64> = counted
        .iter()
        .map(|(_, ranges)| ranges.iter().map(OffsetRange::count).sum())
        .collect();
    assert_eq!(
        total_from_ranges, totals,
        "offset_ranges(time) from another output"
    );
}

#[test]
fn the_rate_cap_bounds_each_partition_of_each_batch() {
    let topic = new_topic("capped", 4);
    produce_spread(&topic, 4, 120, "m");

    let h = Harness::new(Duration::from_millis(500));
    let stream = h
        .ssc
        .kafka_stream(
            KafkaSource::new(&config(), [&topic])
                .starting_offsets(StartingOffsets::Earliest)
                .max_rate_per_partition(100), // 100/s × 0.5 s = 50 per partition per batch
        )
        .unwrap();
    let seen = record_batches(&stream);
    h.ssc.start().unwrap();
    let counts: Vec<u64> = h.run_batches(4).iter().map(|b| b.num_records).collect();
    h.ssc.stop(false).unwrap();
    assert_eq!(counts, vec![200, 200, 80, 0]);
    let seen = seen.lock().unwrap();
    let per_partition: Vec<Vec<u64>> = seen
        .iter()
        .map(|(_, ranges, _)| ranges.iter().map(OffsetRange::count).collect())
        .collect();
    assert_eq!(
        per_partition,
        vec![vec![50; 4], vec![50; 4], vec![20; 4], vec![0; 4]]
    );
    let offsets: Vec<i64> = seen
        .iter()
        .flat_map(|(records, _, _)| {
            records
                .iter()
                .filter(|r| r.partition == 2)
                .map(|r| r.offset)
        })
        .collect();
    assert_eq!(
        offsets,
        (0..120).collect::<Vec<_>>(),
        "partition 2 read in order, once"
    );
}

/// Runs one batch of a new stream on `topic` and returns the values it read.
fn values_of_one_batch(source: KafkaSource, before_batch: impl FnOnce()) -> Vec<String> {
    let h = Harness::seconds();
    let stream = h.ssc.kafka_stream(source).unwrap();
    let lines = common::collect(&stream.text());
    h.ssc.start().unwrap();
    before_batch();
    h.run_batch();
    h.ssc.stop(false).unwrap();
    let mut values = common::sorted_batches(&lines).remove(0);
    values.sort();
    values
}

#[test]
fn streams_start_at_earliest_latest_explicit_or_committed_offsets() {
    let topic = new_topic("start", 2);
    produce(
        &topic,
        &[
            (0, "old a".into()),
            (0, "old b".into()),
            (1, "old c".into()),
        ],
    );
    let source = || KafkaSource::new(&config(), [&topic]);

    let earliest = values_of_one_batch(source().starting_offsets(StartingOffsets::Earliest), || {});
    assert_eq!(earliest, vec!["old a", "old b", "old c"]);

    // Latest means the latest offsets at start: what is produced after start arrives.
    let latest = values_of_one_batch(source().starting_offsets(StartingOffsets::Latest), || {
        produce(&topic, &[(1, "new d".into())]);
    });
    assert_eq!(latest, vec!["new d"]);

    let explicit = BTreeMap::from([(tp(&topic, 0), 1)]);
    let from_offsets = values_of_one_batch(
        source().starting_offsets(StartingOffsets::Explicit(explicit, OffsetReset::Latest)),
        || {},
    );
    assert_eq!(
        from_offsets,
        vec!["old b"],
        "partition 1 starts at its latest offset"
    );

    // A group commits what its batches completed; a new stream of the group goes on
    // from there.
    let group = unique_name("group");
    let committing = values_of_one_batch(
        source()
            .starting_offsets(StartingOffsets::Committed(OffsetReset::Earliest))
            .group_id(&group)
            .commit_offsets(true),
        || {},
    );
    assert_eq!(committing, vec!["new d", "old a", "old b", "old c"]);
    eventually("the group's commit", PATIENCE, || {
        committed(&group, &topic, 2) == vec![2, 2]
    });
    produce(&topic, &[(0, "after e".into())]);
    let resumed = values_of_one_batch(
        source()
            .starting_offsets(StartingOffsets::Committed(OffsetReset::Earliest))
            .group_id(&group),
        || {},
    );
    assert_eq!(resumed, vec!["after e"]);
}

#[test]
fn a_topic_created_after_start_is_read_from_its_beginning() {
    let topic = unique_name("late");
    let h = Harness::seconds();
    let stream = h
        .ssc
        .kafka_stream(
            KafkaSource::new(&config(), [&topic]).starting_offsets(StartingOffsets::Latest),
        )
        .unwrap();
    let lines = common::collect(&stream.text());
    h.ssc.start().unwrap();
    assert_eq!(h.run_batch().num_records, 0, "no topic yet: an empty batch");
    assert!(dstream::kafka::create_topic(&config(), &topic, 2).unwrap());
    produce(&topic, &[(0, "x".into()), (1, "y".into())]);
    let second = h.run_batch();
    h.ssc.stop(false).unwrap();
    assert_eq!(
        second.num_records, 2,
        "partitions found later start at their earliest offset"
    );
    assert_eq!(
        common::sorted_batches(&lines),
        vec![Vec::<String>::new(), vec!["x".to_string(), "y".to_string()]]
    );
}

#[test]
fn a_stream_needs_topics_and_a_group_for_group_offsets() {
    let h = Harness::seconds();
    let none: [&str; 0] = [];
    let err = h
        .ssc
        .kafka_stream(KafkaSource::new(&config(), none))
        .err()
        .unwrap();
    assert!(err.to_string().contains("no topic"), "{err}");
    let err = h
        .ssc
        .kafka_stream(KafkaSource::new(&config(), ["t"]).commit_offsets(true))
        .err()
        .unwrap();
    assert!(err.to_string().contains("group_id"), "{err}");
}

#[test]
fn json_from_kafka_is_parsed_and_bad_messages_are_rejected_without_stopping() {
    let topic = new_topic("json", 2);
    produce(
        &topic,
        &[
            (0, r#"{"Clicks": 0, "Impressions": 3, "ts": 1715172068}"#.into()),
            (0, "garbage".into()),
            (
                1,
                r#"[{"Clicks": 1, "Impressions": 11, "ts": 1715172073}, {"Clicks": 0, "Impressions": 4, "ts": 1715172074}]"#
                    .into(),
            ),
        ],
    );
    let h = Harness::seconds();
    let (clicks, rejected) = earliest_stream(&h.ssc, &topic).text().parse_json::<Click>();
    let good = common::collect(&clicks);
    let bad = common::collect(&rejected.map(|r| r.line));
    h.ssc.start().unwrap();
    h.run_batch();
    produce(
        &topic,
        &[(
            1,
            r#"{"Clicks": 2, "Impressions": 5, "ts": 1715172080}"#.into(),
        )],
    );
    h.run_batch();
    h.ssc.stop(false).unwrap();
    assert_eq!(
        common::sorted_batches(&good),
        vec![
            vec![
                click(0, 3, 1715172068),
                click(0, 4, 1715172074),
                click(1, 11, 1715172073)
            ],
            vec![click(2, 5, 1715172080)],
        ]
    );
    assert_eq!(
        common::sorted_batches(&bad),
        vec![vec!["garbage".to_string()], vec![]]
    );
}

#[test]
fn text_decodes_bad_utf8_lossily_and_skips_tombstones() {
    let topic = new_topic("text", 1);
    produce_raw(
        &topic,
        &[
            (0, Some(b"fine".as_slice())),
            (0, Some(b"bad \xff byte".as_slice())),
            (0, None),
        ],
    );
    let h = Harness::seconds();
    let stream = earliest_stream(&h.ssc, &topic);
    let lines = common::collect(&stream.text());
    let records = common::collect(&stream.records());
    h.ssc.start().unwrap();
    assert_eq!(h.run_batch().num_records, 3);
    h.ssc.stop(false).unwrap();
    assert_eq!(
        common::sorted_batches(&lines),
        vec![vec!["bad \u{FFFD} byte".to_string(), "fine".to_string()]]
    );
    let records = &records.lock().unwrap()[0].1;
    assert_eq!(records[2].value, None, "the tombstone is a record");
    assert_eq!(
        records[1].value.as_deref(),
        Some(b"bad \xff byte".as_slice())
    );
}

/// A batch's ranges are read inside its jobs, on the context's pool threads (a cut only
/// decides them); a window and several outputs that compute a batch again all see
/// exactly its records.
#[test]
fn batches_are_read_on_the_pool_and_windows_and_outputs_see_each_exactly() {
    let topic = new_topic("lazy-window", 2);
    produce_spread(&topic, 2, 3, "first");
    let h = Harness::seconds();
    let stream = earliest_stream(&h.ssc, &topic);
    let threads = common::collect(&stream.map_partitions(|records| {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        records.map(|_| thread.clone()).collect::<Vec<_>>()
    }));
    let windows = common::collect(
        &stream
            .text()
            .window(Duration::from_secs(2), Duration::from_secs(1))
            .unwrap(),
    );
    let counts = common::collect(&stream.count());
    h.ssc.start().unwrap();
    assert_eq!(h.run_batch().num_records, 6);
    produce_spread(&topic, 2, 2, "second");
    assert_eq!(h.run_batch().num_records, 4);
    assert_eq!(h.run_batch().num_records, 0);
    h.ssc.stop(false).unwrap();

    let values = |prefix: &str, count: usize| -> Vec<String> {
        (0..2)
            .flat_map(|p| (0..count).map(move |i| format!("{prefix} p{p} m{i}")))
            .collect()
    };
    let mut both = [values("first", 3), values("second", 2)].concat();
    both.sort();
    assert_eq!(
        common::sorted_batches(&windows),
        vec![values("first", 3), both, values("second", 2)]
    );
    assert_eq!(
        common::sorted_batches(&counts),
        vec![vec![6], vec![4], vec![0]]
    );
    let threads: Vec<String> = threads
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, names)| names.clone())
        .collect();
    assert_eq!(threads.len(), 10);
    assert!(
        threads
            .iter()
            .all(|name| name.starts_with("dstream-worker-")),
        "{threads:?}"
    );
}
