//! Partitions kept as runs of the blocks their records arrived in (received data, files
//! read), so that making them an `Rdd` moves no record.
//!
//! A [`Block`] is any run of records that can be cut in two and read one record at a
//! time: a `Vec` of records, or a block of text lines held as one string plus line ends
//! (see `source::lines::TextBlock`), whose lines become `String`s only when read.

use std::sync::Arc;

use super::{Data, PartitionIter, RddNode};

/// A run of records stored together.
pub(crate) trait Block: Send + Sync + 'static {
    /// The records the block holds.
    type Item: Data;

    /// The number of records.
    fn len(&self) -> usize;

    /// Keeps the first `at` records and returns the rest as a block of its own.
    fn split_off(&mut self, at: usize) -> Self;

    /// Record `index`, made for the reader; `None` past the end.
    fn read(&self, index: usize) -> Option<Self::Item>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Data> Block for Vec<T> {
    type Item = T;

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn split_off(&mut self, at: usize) -> Self {
        Vec::split_off(self, at)
    }

    fn read(&self, index: usize) -> Option<T> {
        self.get(index).cloned()
    }
}

/// Lays `blocks` out as at most `partitions` partitions of nearly equal size, in
/// order: partition 0 holds the first records, the last partition the last ones. Each
/// partition is a run of blocks, and a block is split only where a partition fills
/// up, so records are not moved one by one: a cut costs the number of blocks, not of
/// records.
pub(crate) fn into_partitions<B: Block>(blocks: Vec<B>, partitions: usize) -> Vec<Vec<B>> {
    let total: usize = blocks.iter().map(B::len).sum();
    let count = partitions.clamp(1, total.max(1));
    let (base, extra) = (total / count, total % count);
    let mut sizes = (0..count).map(|i| base + usize::from(i < extra));
    let mut laid_out: Vec<Vec<B>> = Vec::with_capacity(count);
    let mut current: Vec<B> = Vec::new();
    let mut filled = 0;
    let mut want = sizes.next().unwrap_or(0);
    for mut block in blocks {
        while !block.is_empty() {
            let room = want - filled;
            let rest = (block.len() > room).then(|| block.split_off(room));
            filled += block.len();
            current.push(block);
            if filled == want {
                laid_out.push(std::mem::take(&mut current));
                filled = 0;
                want = sizes.next().unwrap_or(usize::MAX);
            }
            match rest {
                Some(rest) => block = rest,
                None => break,
            }
        }
    }
    if !current.is_empty() || laid_out.is_empty() {
        laid_out.push(current);
    }
    laid_out
}

/// An `Rdd` node whose partitions are runs of blocks.
pub(crate) struct Blocks<B> {
    partitions: Arc<Vec<Vec<B>>>,
}

impl<B: Block> Blocks<B> {
    pub(crate) fn new(partitions: Vec<Vec<B>>) -> Self {
        Blocks {
            partitions: Arc::new(partitions),
        }
    }
}

impl<B: Block> RddNode<B::Item> for Blocks<B> {
    fn num_partitions(&self) -> usize {
        self.partitions.len()
    }

    fn prepare(&self) {}

    fn compute(&self, partition: usize) -> PartitionIter<B::Item> {
        Box::new(BlockReader {
            partitions: self.partitions.clone(),
            partition,
            block: 0,
            next: 0,
        })
    }

    fn known_len(&self) -> Option<u64> {
        Some(
            self.partitions
                .iter()
                .flatten()
                .map(|b| b.len() as u64)
                .sum(),
        )
    }
}

/// Reads one partition of [`Blocks`], record by record. The blocks stay shared, so the
/// partition can be read again (by another output operation, or a window).
struct BlockReader<B> {
    partitions: Arc<Vec<Vec<B>>>,
    partition: usize,
    block: usize,
    next: usize,
}

impl<B: Block> Iterator for BlockReader<B> {
    type Item = B::Item;

    fn next(&mut self) -> Option<B::Item> {
        let blocks = self.partitions.get(self.partition)?;
        loop {
            let block = blocks.get(self.block)?;
            if let Some(item) = block.read(self.next) {
                self.next += 1;
                return Some(item);
            }
            self.block += 1;
            self.next = 0;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let blocks = self.partitions.get(self.partition).map_or(&[][..], |p| p);
        let left: usize = blocks.iter().skip(self.block).map(B::len).sum::<usize>()
            - blocks.get(self.block).map_or(0, |_| self.next);
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_in_order_and_report_their_length() {
        let blocks = Blocks::new(vec![vec![vec![1, 2], vec![], vec![3]], vec![]]);
        let mut first = blocks.compute(0);
        assert_eq!(first.size_hint(), (3, Some(3)));
        assert_eq!(first.next(), Some(1));
        assert_eq!(first.size_hint(), (2, Some(2)));
        assert_eq!(first.collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(blocks.compute(1).count(), 0);
        assert_eq!(blocks.known_len(), Some(3));
    }

    /// The records of each partition, in order.
    fn flat<T: Clone>(partitions: Vec<Vec<Vec<T>>>) -> Vec<Vec<T>> {
        partitions.into_iter().map(|p| p.concat()).collect()
    }

    #[test]
    fn partitions_are_balanced_and_in_order() {
        let blocks = vec![vec![1, 2, 3, 4, 5], vec![6], vec![7], vec![8, 9, 10]];
        assert_eq!(
            flat(into_partitions(blocks, 3)),
            vec![vec![1, 2, 3, 4], vec![5, 6, 7], vec![8, 9, 10]]
        );
        let blocks = vec![vec![1], vec![2], vec![3]];
        assert_eq!(flat(into_partitions(blocks, 2)), vec![vec![1, 2], vec![3]]);
        assert_eq!(
            flat(into_partitions(vec![vec![1, 2]], 8)),
            vec![vec![1], vec![2]]
        );
        assert_eq!(
            flat(into_partitions(Vec::<Vec<u8>>::new(), 4)),
            vec![Vec::<u8>::new()]
        );
        assert_eq!(
            flat(into_partitions(vec![vec![], vec![7u8]], 4)),
            vec![vec![7]]
        );
    }

    #[test]
    fn whole_blocks_stay_whole() {
        let blocks = vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7, 8]];
        assert_eq!(
            into_partitions(blocks, 2),
            vec![vec![vec![1, 2], vec![3, 4]], vec![vec![5, 6], vec![7, 8]]]
        );
    }

    #[test]
    fn partitioning_keeps_every_record_once() {
        for partitions in 1..6 {
            let blocks: Vec<Vec<u32>> = (0..7).map(|b| (b * 10..b * 10 + b).collect()).collect();
            let laid_out = flat(into_partitions(blocks.clone(), partitions));
            let all: Vec<u32> = laid_out.iter().flatten().copied().collect();
            assert_eq!(all, blocks.into_iter().flatten().collect::<Vec<_>>());
            let sizes: Vec<usize> = laid_out.iter().map(Vec::len).collect();
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
        }
    }
}
