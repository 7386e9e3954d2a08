//! Micro-benchmarks of the `Rdd` operations a DStream batch is made of, one batch's
//! worth of data at a time, on rayon's global pool (as [`Rdd::from_vec`] is):
//!
//! * `word_count`: lines -> `flat_map(split ' ')` -> `(word, 1)` -> `reduce_by_key` ->
//!   `count`, as in the classic streaming word count, plus its parts (`split_only`:
//!   the narrow half without the shuffle; `read_lines`: reading the input `Rdd` alone,
//!   in lines per second);
//! * `group_by_key`, `join`, `sort_by_key`: the other shuffles;
//! * `narrow_chain`: `map -> filter -> map`, fused into one pass per partition.
//!
//! The data are generated deterministically: words `w<rank>` with a Zipf-like rank
//! distribution over 100,000 ranks, 5..15 words per line, as the end-to-end corpus.
//! Each benchmark builds its input `Rdd` in an untimed setup step. Small sample sizes
//! and short measurement times keep `cargo bench --bench rdd_ops` near 70 seconds.
//!
//! ```text
//! cargo bench --bench rdd_ops
//! cargo bench --bench rdd_ops -- word_count     # one group
//! ```

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::SplitMix;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dstream::Rdd;

/// Partitions of every input `Rdd`: the default parallelism of a `local[2]` context.
const PARTITIONS: usize = 2;
/// Lines of the word-count input (about 10 words each).
const LINES: usize = 30_000;
/// Distinct words the generator draws from.
const VOCABULARY: u64 = 100_000;
/// Pairs of the pair-shuffle inputs.
const PAIRS: usize = 300_000;
/// Elements of the narrow-chain input.
const NARROW: usize = 1_000_000;

/// A rank in `1..=VOCABULARY`, roughly Zipf-distributed (P(rank) ~ 1/rank):
/// `exp(u * ln N)` for a uniform `u`.
fn zipf_rank(rng: &mut SplitMix) -> u64 {
    let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    ((u * (VOCABULARY as f64).ln()).exp() as u64).clamp(1, VOCABULARY)
}

/// `LINES` lines of 5..15 words `w<rank>`, and the number of words.
fn corpus_lines() -> (Vec<String>, u64) {
    let mut rng = SplitMix(42);
    let mut words = 0;
    let lines = (0..LINES)
        .map(|_| {
            let n = 5 + rng.below(11);
            words += n;
            (0..n)
                .map(|_| format!("w{}", zipf_rank(&mut rng)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (lines, words)
}

/// `PAIRS` pairs `(w<rank>, i)` with Zipf-distributed keys.
fn word_pairs() -> Vec<(String, u64)> {
    let mut rng = SplitMix(7);
    (0..PAIRS as u64)
        .map(|i| (format!("w{}", zipf_rank(&mut rng)), i))
        .collect()
}

/// `n` pairs with uniformly random keys in `0..keys`.
fn number_pairs(seed: u64, n: usize, keys: u64) -> Vec<(u64, u64)> {
    let mut rng = SplitMix(seed);
    (0..n as u64).map(|i| (rng.below(keys), i)).collect()
}

fn word_count(c: &mut Criterion) {
    let (lines, words) = corpus_lines();
    let mut group = c.benchmark_group("word_count");
    group.throughput(Throughput::Elements(words));
    group.measurement_time(Duration::from_secs(4));
    let input = || Rdd::from_vec(lines.clone(), PARTITIONS);

    group.bench_function("reduce_by_key", |b| {
        b.iter_batched(
            input,
            |rdd| {
                rdd.flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
                    .map(|word| (word, 1))
                    .reduce_by_key(|a, b| a + b)
                    .count()
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("split_only", |b| {
        b.iter_batched(
            input,
            |rdd| {
                rdd.flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
                    .map(|word| (word, 1))
                    .count()
            },
            BatchSize::LargeInput,
        );
    });
    // Reading the input alone: one element per line.
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("read_lines", |b| {
        b.iter_batched(
            input,
            |rdd| rdd.map(|line| line.len() as u64).fold(0, |a, b| a + b),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn pair_shuffles(c: &mut Criterion) {
    let words = word_pairs();
    let mut group = c.benchmark_group("pair_shuffles");
    group.throughput(Throughput::Elements(PAIRS as u64));
    // 70-90 ms an iteration plus an untimed setup: 10 samples need about 8 s.
    group.measurement_time(Duration::from_secs(8));

    group.bench_function("group_by_key", |b| {
        b.iter_batched(
            || Rdd::from_vec(words.clone(), PARTITIONS),
            |rdd| rdd.group_by_key().count(),
            BatchSize::LargeInput,
        );
    });

    let left = number_pairs(1, PAIRS / 2, PAIRS as u64 / 4);
    let right = number_pairs(2, PAIRS / 2, PAIRS as u64 / 4);
    group.bench_function("join", |b| {
        b.iter_batched(
            || {
                (
                    Rdd::from_vec(left.clone(), PARTITIONS),
                    Rdd::from_vec(right.clone(), PARTITIONS),
                )
            },
            |(left, right)| left.join(&right).count(),
            BatchSize::LargeInput,
        );
    });

    let unsorted = number_pairs(3, PAIRS, u64::MAX);
    group.bench_function("sort_by_key", |b| {
        b.iter_batched(
            || Rdd::from_vec(unsorted.clone(), PARTITIONS),
            |rdd| rdd.sort_by_key(true).count(),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn narrow_chain(c: &mut Criterion) {
    let numbers: Vec<u64> = (0..NARROW as u64).collect();
    let mut group = c.benchmark_group("narrow_chain");
    group.throughput(Throughput::Elements(NARROW as u64));
    group.bench_function("map_filter_map", |b| {
        b.iter_batched(
            || Rdd::from_vec(numbers.clone(), PARTITIONS),
            |rdd| {
                rdd.map(|x| x.wrapping_mul(3))
                    .filter(|x| x % 2 == 0)
                    .map(|x| black_box(x) + 1)
                    .fold(0, |a, b| a.wrapping_add(b))
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = word_count, pair_shuffles, narrow_chain
}
criterion_main!(benches);
