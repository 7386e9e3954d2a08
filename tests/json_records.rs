//! `parse_json`: typed records from JSON lines (the click-stream format of the
//! Kafka lab), with bad lines counted in a stream of their own and the stream going
//! on. No broker needed: the lines come from a queue.

mod common;

use common::{Click, Harness, click, collect, lines};
use dstream::{RddQueue, RejectedJson};

#[test]
fn json_lines_become_records_and_bad_lines_are_rejected_not_fatal() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(lines(&[
        r#"{"Clicks": 0, "Impressions": 3, "ts": 1715172068}"#,
        r#"[{"Clicks": 1, "Impressions": 2, "ts": 1715172069}, {"Clicks": 0, "Impressions": 1, "ts": 1715172070}]"#,
        "not json at all",
        r#"{"Clicks": "one", "Impressions": 3, "ts": 1715172071}"#,
        "",
    ])));
    queue.push(h.ssc.parallelize(lines(&[
        r#"{"Clicks": 2, "Impressions": 5, "ts": 1715172080}"#,
        r#"{"Clicks": 1"#,
    ])));
    let (clicks, rejected) = h.ssc.queue_stream(&queue, true, None).parse_json::<Click>();
    let good = collect(&clicks);
    let bad = collect(&rejected);
    let impressions = collect(&clicks.map(|c| c.impressions as u64).reduce(|a, b| a + b));
    h.ssc.start().unwrap();
    h.run_batches(3);
    h.ssc.stop(false).unwrap();

    assert_eq!(
        common::sorted_batches(&good),
        vec![
            vec![
                click(0, 1, 1715172070),
                click(0, 3, 1715172068),
                click(1, 2, 1715172069)
            ],
            vec![click(2, 5, 1715172080)],
            vec![],
        ]
    );
    let bad = bad.lock().unwrap();
    let rejected_lines: Vec<Vec<&str>> = bad
        .iter()
        .map(|(_, batch)| {
            batch
                .iter()
                .map(|r: &RejectedJson| r.line.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        rejected_lines,
        vec![
            vec![
                "not json at all",
                r#"{"Clicks": "one", "Impressions": 3, "ts": 1715172071}"#
            ],
            vec![r#"{"Clicks": 1"#],
            vec![],
        ]
    );
    assert!(
        bad[0].1[0].error.contains("at line 1 column 2"),
        "{}",
        bad[0].1[0].error
    );
    assert!(
        bad[0].1[1].error.contains("invalid type"),
        "{}",
        bad[0].1[1].error
    );
    assert!(bad[1].1[0].error.contains("EOF"), "{}", bad[1].1[0].error);
    assert_eq!(
        common::sorted_batches(&impressions),
        vec![vec![6], vec![5], vec![]]
    );
}
