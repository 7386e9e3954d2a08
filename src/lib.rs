//! # dstream
//!
//! DStream-style micro-batch stream processing on one machine with many cores: the
//! programming model of Spark Streaming's DStream API, in Rust.
//!
//! A [`StreamingContext`] with a fixed batch interval turns each interval's input into
//! an immutable, partitioned [`Rdd`], processes it in parallel with rayon, and runs the
//! output operations ([`DStream::foreach_rdd`], [`DStream::pprint`],
//! [`DStream::save_as_text_files`]) batch after batch.
//!
//! ```
//! use dstream::prelude::*;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! # fn main() -> dstream::Result<()> {
//! // A manual clock makes batches happen exactly when the program says.
//! let clock = ManualClock::new(Time::from_millis(0));
//! let ssc = StreamingContext::builder()
//!     .config(StreamingConfig {
//!         batch_interval: Duration::from_secs(10),
//!         parallelism: Parallelism::threads_exactly(2),
//!         ..StreamingConfig::default()
//!     })
//!     .clock(clock.clone())
//!     .build()?;
//!
//! let queue = RddQueue::new();
//! queue.push(ssc.parallelize(vec!["This is line 1".to_string(), "This is line 2".to_string()]));
//! let word_counts = ssc
//!     .queue_stream(&queue, true, None)
//!     .flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)))
//!     .map(|word| (word, 1))
//!     .reduce_by_key(|x, y| x + y);
//!
//! let batches = Arc::new(Mutex::new(Vec::new()));
//! let sink = batches.clone();
//! word_counts.foreach_rdd(move |rdd, _time| {
//!     let mut counts = rdd.collect();
//!     counts.sort();
//!     sink.lock().unwrap().push(counts);
//! })?;
//!
//! ssc.start()?;
//! clock.advance(Duration::from_secs(10));
//! ssc.await_batch(Time::from_millis(10_000), Duration::from_secs(30))?;
//! ssc.stop(true)?;
//!
//! let expected: Vec<(String, i32)> = vec![
//!     ("1".into(), 1), ("2".into(), 1), ("This".into(), 2), ("is".into(), 2), ("line".into(), 2),
//! ];
//! assert_eq!(batches.lock().unwrap()[0], expected);
//! # Ok(())
//! # }
//! ```
//!
//! The modules form layers, lowest first; each uses only those before it (the test
//! `tests/layers.rs` checks it):
//!
//! 1. [`time`]: batch times, durations, the clocks.
//! 2. [`error`]: the error type; panic messages.
//! 3. [`rdd`]: parallel datasets, their operations and shuffles.
//! 4. `checkpoint`: the checkpoint codec and files, written atomically.
//! 5. [`dstream`]: streams and their operations, the jobs they hand the scheduler, and
//!    the registry they register with instead of the context.
//! 6. [`source`]: the inputs, their buffers, write-ahead log and rate control.
//! 7. [`scheduler`]: the job generator and executor, checkpoints per batch, listeners.
//! 8. [`config`]: every setting of a context.
//! 9. `status_page` and `signals`: the HTTP status page and SIGINT/SIGTERM, each
//!    reaching the context only through what it hands them.
//! 10. [`context`]: [`StreamingContext`], which owns and starts all of the above.
//! 11. `kafka` (feature `kafka`), [`logging`], [`demo`]: built on the context.

pub(crate) mod checkpoint;
pub mod config;
pub mod context;
pub mod demo;
pub mod dstream;
pub mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod logging;
pub mod rdd;
pub mod scheduler;
mod signals;
pub mod source;
mod status_page;
pub mod time;

pub use config::{Parallelism, StreamingConfig};
pub use context::{StreamingContext, StreamingContextBuilder};
pub use dstream::{
    DStream, MapWithStateStream, OutputResult, PartitionedDStream, RejectedJson, State, StateData,
    StateSize, StateSpec,
};
pub use error::{Cause, Error, Result};
pub use rdd::{Data, HashPartitioner, Key, PartitionIter, PartitionedRdd, Partitioner, Rdd};
pub use scheduler::{BatchInfo, RebalanceInfo, StreamingListener};
pub use source::{
    FileStreamOptions, RateController, RddQueue, Receiver, ReceiverSink, ReceiverState,
    ReceiverStatus,
};
pub use time::{Clock, ManualClock, SystemClock, Time};

// The README's code blocks are compiled and run with the other documentation tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The names most programs need: `use dstream::prelude::*;`.
pub mod prelude {
    pub use crate::{
        BatchInfo, DStream, ManualClock, Parallelism, Rdd, RddQueue, State, StateSpec,
        StreamingConfig, StreamingContext, StreamingListener, Time,
    };
}
