//! The rate source and user-defined receivers.

mod common;

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Harness, PATIENCE, collect, sorted_batches};
use dstream::{Receiver, ReceiverSink, Time};

#[test]
fn the_rate_source_emits_exactly_the_rows_of_each_interval() {
    let h = Harness::seconds();
    let rows = collect(&h.ssc.rate_stream(4));
    h.ssc.start().unwrap();
    let infos = h.run_batches(2);
    h.ssc.stop(false).unwrap();

    let at = |ms: i64| Time::from_millis(ms);
    assert_eq!(
        sorted_batches(&rows),
        vec![
            vec![(at(0), 0), (at(250), 1), (at(500), 2), (at(750), 3)],
            vec![(at(1000), 4), (at(1250), 5), (at(1500), 6), (at(1750), 7)],
        ]
    );
    assert_eq!(
        infos.iter().map(|i| i.num_records).collect::<Vec<_>>(),
        vec![4, 4]
    );
    assert_eq!(h.ssc.records_received(), 8);
}

#[test]
fn a_late_batch_gets_all_the_rows_of_its_interval_only() {
    let h = Harness::seconds();
    let counts = collect(&h.ssc.rate_stream(1000).count());
    h.ssc.start().unwrap();
    h.clock.advance(std::time::Duration::from_secs(3));
    h.ssc.await_batch(h.batch_time(3), PATIENCE).unwrap();
    h.ssc.stop(false).unwrap();
    assert_eq!(
        sorted_batches(&counts),
        vec![vec![1000], vec![1000], vec![1000]]
    );
}

/// Stores a fixed list of records, failing once and panicking once along the way to
/// show that the receiver is restarted.
struct Flaky {
    records: Vec<u32>,
    next: usize,
    attempts: Arc<AtomicUsize>,
}

impl Receiver for Flaky {
    type Item = u32;

    fn receive(&mut self, sink: &ReceiverSink<u32>) -> Result<(), Box<dyn StdError + Send + Sync>> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        while self.next < self.records.len() && !sink.is_stopped() {
            if self.next == 2 && attempt == 0 {
                return Err("connection reset".into());
            }
            if self.next == 4 && attempt == 1 {
                panic!("receiver bug");
            }
            sink.store(self.records[self.next]);
            self.next += 1;
        }
        Ok(())
    }
}

#[test]
fn a_receiver_that_fails_or_panics_is_restarted_and_loses_nothing() {
    let h = Harness::seconds();
    let attempts = Arc::new(AtomicUsize::new(0));
    let out = collect(&h.ssc.receiver_stream(Flaky {
        records: (1..=6).collect(),
        next: 0,
        attempts: attempts.clone(),
    }));
    h.ssc.start().unwrap();
    h.ssc.await_records_received(6, PATIENCE).unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(sorted_batches(&out), vec![vec![1, 2, 3, 4, 5, 6]]);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

/// Stores records in bulk until told to stop.
struct Endless;

impl Receiver for Endless {
    type Item = u64;

    fn receive(&mut self, sink: &ReceiverSink<u64>) -> Result<(), Box<dyn StdError + Send + Sync>> {
        let mut next = 0;
        while !sink.is_stopped() {
            if !sink.store_all(next..next + 100) {
                break;
            }
            next += 100;
        }
        Ok(())
    }
}

#[test]
fn a_receiver_is_stopped_with_its_context() {
    let h = Harness::seconds();
    let counts = collect(&h.ssc.receiver_stream(Endless).count());
    h.ssc.start().unwrap();
    h.ssc.await_records_received(1_000, PATIENCE).unwrap();
    h.run_batch();
    h.ssc.stop(true).unwrap();
    let batches = sorted_batches(&counts);
    assert!(batches[0][0] >= 1_000);
    let total: u64 = batches.iter().map(|b| b[0]).sum();
    assert_eq!(
        total,
        h.ssc.records_received(),
        "every record accepted was processed"
    );
}
