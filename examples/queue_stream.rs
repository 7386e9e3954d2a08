//! Streams from an in-memory queue of `Rdd`s, as PySpark's `queue_stream.py` example:
//! five batches of the numbers 1 to 1000, counted by last digit.
//!
//! ```text
//! cargo run --release --example queue_stream
//! ```

mod common;

use std::time::Duration;

use dstream::logging::BatchLogger;
use dstream::{RddQueue, StreamingContext};

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;

    let queue = RddQueue::new();
    for _ in 0..5 {
        queue.push(
            ssc.parallelize((1..=1000).collect::<Vec<u32>>())
                .repartition(10),
        );
    }

    let input = ssc.queue_stream(&queue, true, None);
    let mapped = input.map(|x| (x % 10, 1));
    let reduced = mapped.reduce_by_key(|a, b| a + b);
    reduced.pprint()?;
    ssc.add_listener(BatchLogger);

    ssc.start()?;
    // Five batches of one second each, then stop, keeping what was queued for them.
    ssc.await_termination_or_timeout(Duration::from_secs(6))?;
    ssc.stop(true)?;
    Ok(())
}
