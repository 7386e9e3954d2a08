//! Micro-benchmarks of one steady-state batch of the stateful operations, run through
//! a real `StreamingContext` (`local[2]`) on a `ManualClock`, fed by a queue stream:
//!
//! * `state_batch`: `update_state_by_key` and `map_with_state` over a state of
//!   100,000 and 1,000,000 keys, each batch touching 1% of them (`keys / 100` pairs
//!   with uniformly random keys), and over 1,000,000 keys with batches of 1,000 pairs
//!   (0.1%), the same batch as for 100,000 keys. `map_with_state` calls its function
//!   only for the keys of the batch, so its cost should follow the batch (the same for
//!   both 1,000-pair cases); `update_state_by_key` calls it for every key, as Spark
//!   does, so its cost should follow the state (the same for both 1,000,000-key cases).
//! * `window_batch`: `reduce_by_key_and_window` (no inverse: each slide merges the
//!   reduced batches of the whole window) against `reduce_by_key_and_window_inv`
//!   (incremental: adds the entering batch, takes out the leaving one) for windows of
//!   4 and 64 batches sliding by one batch, each batch 100,000 pairs over 10,000 keys,
//!   the output counting the window's keys. The plain window should grow with its
//!   length; the incremental one should stay flat.
//!
//! One iteration is one batch: push its `Rdd` on the queue, advance the clock one
//! interval, wait for the batch to complete (`await_batch`). The state is populated
//! (an initial state, loaded by a first batch) and windows are filled before timing
//! starts, once per benchmark. The stateful streams checkpoint every 10^9 batches,
//! i.e. never while measured: this measures the update, not checkpoint writing (the
//! default interval would add a full state write every 10 batches). The outputs of
//! the state benchmarks do nothing with their `Rdd`s, so only the state update runs.
//!
//! The data are generated deterministically (SplitMix64); each benchmark cycles over
//! `DISTINCT_BATCHES` different batches. Small sample sizes and short measurement
//! times keep `cargo bench --bench state_windows` under two minutes.
//!
//! ```text
//! cargo bench --bench state_windows
//! cargo bench --bench state_windows -- window_batch     # one group
//! ```

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::SplitMix;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dstream::{
    DStream, ManualClock, Parallelism, Rdd, RddQueue, State, StateSpec, StreamingConfig,
    StreamingContext, Time,
};
use tempfile::TempDir;

/// The batch interval (only the manual clock sees it).
const BATCH: Duration = Duration::from_secs(1);
/// A checkpoint interval no benchmark reaches: checkpoint writes are not measured.
const NO_CHECKPOINT: Duration = Duration::from_secs(1_000_000_000);
/// How long one batch may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(300);
/// Different input batches each benchmark cycles over.
const DISTINCT_BATCHES: u64 = 8;
/// State sizes of `state_batch`, and pairs per batch.
const STATE_CASES: [(u64, u64); 3] = [(100_000, 1_000), (1_000_000, 10_000), (1_000_000, 1_000)];
/// Window lengths of `window_batch`, in batches.
const WINDOW_BATCHES: [u64; 2] = [4, 64];
/// Pairs per batch of `window_batch`, and the keys they are drawn from.
const WINDOW_PAIRS: u64 = 100_000;
const WINDOW_KEYS: u64 = 10_000;

/// `n` pairs `(key, 1)` with uniformly random keys in `0..keys`.
fn ones(seed: u64, n: u64, keys: u64) -> Vec<(u64, u64)> {
    let mut rng = SplitMix(seed);
    (0..n).map(|_| (rng.below(keys), 1)).collect()
}

/// A started context on a manual clock whose batches come from a queue, and the
/// batches it cycles over.
struct Driver {
    ssc: StreamingContext,
    clock: ManualClock,
    queue: RddQueue<(u64, u64)>,
    batches: Vec<Rdd<(u64, u64)>>,
    pushed: usize,
    /// The checkpoint directory state needs; removed when the driver is dropped.
    _checkpoint: TempDir,
}

impl Driver {
    /// Builds a context, lets `build` define the program on the queue stream, and
    /// starts it. Each batch is `pairs` pairs over `keys` keys.
    fn start(
        pairs: u64,
        keys: u64,
        build: impl FnOnce(&StreamingContext, DStream<(u64, u64)>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Driver> {
        let clock = ManualClock::new(Time::from_millis(0));
        let ssc = StreamingContext::builder()
            .config(StreamingConfig {
                batch_interval: BATCH,
                parallelism: Parallelism::threads_exactly(2),
                ..StreamingConfig::default()
            })
            .clock(clock.clone())
            .build()?;
        let checkpoint = tempfile::tempdir()?;
        ssc.checkpoint(checkpoint.path())?;
        let queue = RddQueue::new();
        build(&ssc, ssc.queue_stream(&queue, true, None))?;
        let batches = (0..DISTINCT_BATCHES)
            .map(|seed| ssc.parallelize(ones(seed, pairs, keys)))
            .collect();
        ssc.start()?;
        Ok(Driver {
            ssc,
            clock,
            queue,
            batches,
            pushed: 0,
            _checkpoint: checkpoint,
        })
    }

    /// Runs `n` batches, one after the other, and returns the time they took.
    fn run(&mut self, n: u64) -> anyhow::Result<Duration> {
        let start = Instant::now();
        for _ in 0..n {
            let batch = &self.batches[self.pushed % self.batches.len()];
            self.queue.push(batch.clone());
            self.pushed += 1;
            self.clock.advance(BATCH);
            self.ssc
                .await_batch(self.clock.now(), PATIENCE)
                .with_context(|| format!("batch at {}", self.clock.now()))?;
        }
        Ok(start.elapsed())
    }

    /// Times `n` batches for criterion's `iter_custom`.
    fn time(&mut self, n: u64) -> Duration {
        self.run(n).expect("a benchmark batch failed")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.ssc.stop(false);
    }
}

/// Starts a stateful program over `keys` keys, with batches of `pairs` pairs.
type StateProgram = fn(u64, u64) -> anyhow::Result<Driver>;

/// The state every key starts with: a count of 1.
fn initial_state(ssc: &StreamingContext, keys: u64) -> Rdd<(u64, u64)> {
    ssc.parallelize((0..keys).map(|key| (key, 1)).collect())
}

/// A running count per key with `update_state_by_key`.
fn update_state_by_key(keys: u64, pairs: u64) -> anyhow::Result<Driver> {
    Driver::start(pairs, keys, |ssc, pairs| {
        pairs
            .partitioned(ssc.parallelism())
            .update_state_by_key_with_initial(
                |new: &[u64], count: Option<u64>| {
                    Some(count.unwrap_or(0) + new.iter().sum::<u64>())
                },
                initial_state(ssc, keys),
            )
            .checkpoint_interval(NO_CHECKPOINT)?
            .foreach_rdd(|_, _| {})?;
        Ok(())
    })
}

/// A running count per key with `map_with_state`, emitting each key's new count.
fn map_with_state(keys: u64, pairs: u64) -> anyhow::Result<Driver> {
    Driver::start(pairs, keys, |ssc, pairs| {
        let spec = StateSpec::function(|_: &u64, one: Option<u64>, count: &mut State<u64>| {
            let total = count.get().copied().unwrap_or(0) + one.unwrap_or(0);
            count.update(total);
            total
        })
        .initial_state(initial_state(ssc, keys));
        pairs
            .map_with_state(spec)
            .mapped()
            .checkpoint_interval(NO_CHECKPOINT)?
            .foreach_rdd(|_, _| {})?;
        Ok(())
    })
}

fn state_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_batch");
    for (keys, pairs) in STATE_CASES {
        group.throughput(Throughput::Elements(pairs));
        let operations: [(&str, StateProgram); 2] = [
            ("update_state_by_key", update_state_by_key),
            ("map_with_state", map_with_state),
        ];
        for (name, start) in operations {
            let mut driver = start(keys, pairs).expect("the benchmark program starts");
            // The first batch loads the initial state.
            driver.run(2).expect("the state loads");
            let case = format!("{keys}_keys/{pairs}_pairs");
            group.bench_function(BenchmarkId::new(name, case), |b| {
                b.iter_custom(|n| driver.time(n));
            });
        }
    }
    group.finish();
}

/// Starts a windowed program over windows of `batches` batches.
type WindowProgram = fn(u64) -> anyhow::Result<Driver>;

/// Counts the keys of each window of `reduce_by_key_and_window` (no inverse).
fn plain_window(batches: u64) -> anyhow::Result<Driver> {
    Driver::start(WINDOW_PAIRS, WINDOW_KEYS, |_, pairs| {
        pairs
            .reduce_by_key_and_window(|a, b| a + b, BATCH * batches as u32, BATCH)?
            .foreach_rdd(|rdd, _| {
                black_box(rdd.count());
            })?;
        Ok(())
    })
}

/// Counts the keys of each window of `reduce_by_key_and_window_inv`.
fn inverse_window(batches: u64) -> anyhow::Result<Driver> {
    Driver::start(WINDOW_PAIRS, WINDOW_KEYS, |_, pairs| {
        pairs
            .reduce_by_key_and_window_inv(
                |a, b| a + b,
                |a, b| a - b,
                BATCH * batches as u32,
                BATCH,
            )?
            .checkpoint_interval(NO_CHECKPOINT)?
            .foreach_rdd(|rdd, _| {
                black_box(rdd.count());
            })?;
        Ok(())
    })
}

fn window_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_batch");
    group.throughput(Throughput::Elements(WINDOW_PAIRS));
    for batches in WINDOW_BATCHES {
        let operations: [(&str, WindowProgram); 2] = [
            ("reduce_by_key_and_window", plain_window),
            ("reduce_by_key_and_window_inv", inverse_window),
        ];
        for (name, start) in operations {
            let mut driver = start(batches).expect("the benchmark program starts");
            // Fill the window, and once more so that batches also leave it.
            driver.run(batches + 1).expect("the window fills");
            group.bench_function(BenchmarkId::new(name, batches), |b| {
                b.iter_custom(|n| driver.time(n));
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = state_batch, window_batch
}
criterion_main!(benches);
