//! `sort_by_key`: a range-partitioning shuffle followed by a sort of each partition.

use rayon::prelude::*;

use super::partitioned::PartitionedRdd;
use super::shuffle::Staged;
use super::{Data, Key, Rdd};

/// How many sampled keys per output partition choose the range bounds.
const SAMPLES_PER_PARTITION: usize = 20;

impl<K: Data, V: Data> Rdd<(K, V)> {
    /// Sorts by key: partition `i` holds keys that sort before those of partition
    /// `i + 1`, and each partition is sorted. Keeps the number of partitions;
    /// `rdd.partitioned(n).sort_by_key(ascending)` makes `n`.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let rdd = Rdd::from_vec(vec![(3, 'c'), (1, 'a'), (2, 'b')], 2);
    /// assert_eq!(rdd.sort_by_key(true).collect(), vec![(1, 'a'), (2, 'b'), (3, 'c')]);
    /// assert_eq!(rdd.sort_by_key(false).keys().collect(), vec![3, 2, 1]);
    /// ```
    pub fn sort_by_key(&self, ascending: bool) -> Rdd<(K, V)>
    where
        K: Key + Ord,
    {
        self.partitioned(self.num_partitions())
            .sort_by_key(ascending)
    }
}

impl<K: Data, V: Data> PartitionedRdd<(K, V), usize> {
    /// [`Rdd::sort_by_key`] into this number of partitions. Only a count: sorting
    /// places keys by ranges of the sorted keys, which it samples, so there is no
    /// partitioner of keys to give (as Spark's `sortByKey(ascending, numPartitions)`).
    ///
    /// ```
    /// use dstream::Rdd;
    /// let rdd = Rdd::from_vec((0..10).rev().map(|k| (k, ())).collect(), 2);
    /// let parts = rdd.partitioned(3).sort_by_key(true).keys().glom().collect();
    /// assert_eq!(parts.len(), 3);
    /// assert_eq!(parts.concat(), (0..10).collect::<Vec<_>>());
    /// ```
    pub fn sort_by_key(&self, ascending: bool) -> Rdd<(K, V)>
    where
        K: Key + Ord,
    {
        let parent = self.rdd.clone();
        let partitions = (*self.partitioner()).max(1);
        self.rdd.derive(Staged::new(partitions, move || {
            sort_partitions(parent.compute_all(), partitions, ascending)
        }))
    }
}

fn sort_partitions<K: Key + Ord, V: Data>(
    inputs: Vec<Vec<(K, V)>>,
    partitions: usize,
    ascending: bool,
) -> Vec<Vec<(K, V)>> {
    let bounds = range_bounds(&inputs, partitions);
    let target = |key: &K| {
        let ascending_index = bounds.partition_point(|bound| bound < key);
        if ascending {
            ascending_index
        } else {
            partitions - 1 - ascending_index
        }
    };
    let routed: Vec<Vec<Vec<(K, V)>>> = inputs
        .into_par_iter()
        .map(|input| {
            let mut buckets: Vec<Vec<(K, V)>> = (0..partitions).map(|_| Vec::new()).collect();
            for pair in input {
                buckets[target(&pair.0)].push(pair);
            }
            buckets
        })
        .collect();
    let mut outputs: Vec<Vec<(K, V)>> = (0..partitions).map(|_| Vec::new()).collect();
    for buckets in routed {
        for (output, mut bucket) in outputs.iter_mut().zip(buckets) {
            output.append(&mut bucket);
        }
    }
    outputs.par_iter_mut().for_each(|output| {
        if ascending {
            output.sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            output.sort_by(|a, b| b.0.cmp(&a.0));
        }
    });
    outputs
}

/// `partitions - 1` keys splitting a sorted sample of the keys into equal ranges.
fn range_bounds<K: Key + Ord, V>(inputs: &[Vec<(K, V)>], partitions: usize) -> Vec<K> {
    let total: usize = inputs.iter().map(Vec::len).sum();
    if partitions <= 1 || total == 0 {
        return Vec::new();
    }
    let step = (total / (partitions * SAMPLES_PER_PARTITION)).max(1);
    let mut sample: Vec<K> = inputs
        .iter()
        .flatten()
        .step_by(step)
        .map(|(k, _)| k.clone())
        .collect();
    sample.sort();
    (1..partitions)
        .map(|i| sample[(i * sample.len() / partitions).min(sample.len() - 1)].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_split_the_sample_evenly() {
        let inputs = vec![(0..100).map(|k| (k, ())).collect::<Vec<_>>()];
        assert_eq!(range_bounds(&inputs, 4), vec![25, 50, 75]);
        assert!(range_bounds(&inputs, 1).is_empty());
    }

    #[test]
    fn sorted_partitions_are_ordered_between_each_other() {
        let rdd = Rdd::from_vec((0..500).rev().map(|k| (k % 97, k)).collect(), 4);
        let parts = rdd.partitioned(3).sort_by_key(true).glom().collect();
        let keys: Vec<i32> = parts.iter().flatten().map(|(k, _)| *k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(parts.len(), 3);
    }
}
