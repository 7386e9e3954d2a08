//! Records received but not yet cut into a batch.
//!
//! Receivers store blocks (a socket read's worth of lines) or single records; a batch
//! cut takes everything stored so far and spreads the blocks over the context's
//! partitions. One lock per block, not per record, on the fast path.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Cut, ReceivedCounter};
use crate::rdd::{Data, ExecEnv, Rdd};

/// Received blocks waiting for the next batch.
pub(crate) struct BlockBuffer<T> {
    state: Mutex<Pending<T>>,
    received: Arc<ReceivedCounter>,
}

struct Pending<T> {
    blocks: Vec<Vec<T>>,
    closed: bool,
}

/// How many records a single-record `store` gathers into one block.
const RECORDS_PER_BLOCK: usize = 1024;

impl<T: Data> BlockBuffer<T> {
    pub(crate) fn new(received: Arc<ReceivedCounter>) -> Self {
        BlockBuffer {
            state: Mutex::new(Pending {
                blocks: Vec::new(),
                closed: false,
            }),
            received,
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a block; `false` (and the block is dropped) once the buffer is closed.
    pub(crate) fn push_block(&self, block: Vec<T>) -> bool {
        if block.is_empty() {
            return !self.pending().closed;
        }
        let records = block.len() as u64;
        {
            let mut pending = self.pending();
            if pending.closed {
                return false;
            }
            pending.blocks.push(block);
        }
        self.received.add(records);
        true
    }

    /// Stores one record; `false` once the buffer is closed.
    pub(crate) fn push(&self, item: T) -> bool {
        {
            let mut pending = self.pending();
            if pending.closed {
                return false;
            }
            match pending.blocks.last_mut() {
                Some(block) if block.len() < RECORDS_PER_BLOCK => block.push(item),
                _ => {
                    let mut block = Vec::with_capacity(16);
                    block.push(item);
                    pending.blocks.push(block);
                }
            }
        }
        self.received.add(1);
        true
    }

    /// Stops accepting records. Records already stored stay for the next cut.
    pub(crate) fn close(&self) {
        self.pending().closed = true;
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending().blocks.is_empty()
    }

    /// Takes everything stored so far. Received data cannot be replayed.
    pub(crate) fn cut(&self, env: &Arc<ExecEnv>) -> Cut<T> {
        let blocks = std::mem::take(&mut self.pending().blocks);
        let records = blocks.iter().map(|b| b.len() as u64).sum();
        let partitions = spread_blocks(blocks, env.parallelism());
        Cut {
            rdd: Rdd::from_partitions(partitions, env.clone()),
            records,
            replay: None,
        }
    }
}

/// Spreads blocks over at most `partitions` partitions of nearly equal size, keeping
/// the blocks whole and, within a partition, in arrival order.
pub(crate) fn spread_blocks<T>(blocks: Vec<Vec<T>>, partitions: usize) -> Vec<Vec<T>> {
    let partitions = partitions.max(1);
    if blocks.len() <= partitions {
        return if blocks.is_empty() {
            vec![Vec::new()]
        } else {
            blocks
        };
    }
    let mut spread: Vec<Vec<T>> = (0..partitions).map(|_| Vec::new()).collect();
    for mut block in blocks {
        let index = (0..spread.len())
            .min_by_key(|&i| spread[i].len())
            .unwrap_or(0);
        let smallest = &mut spread[index];
        if smallest.is_empty() {
            *smallest = block;
        } else {
            smallest.append(&mut block);
        }
    }
    spread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_records_are_gathered_into_blocks() {
        let buffer = BlockBuffer::new(Arc::default());
        for i in 0..2500 {
            assert!(buffer.push(i));
        }
        assert_eq!(buffer.pending().blocks.len(), 3);
        let cut = buffer.cut(&ExecEnv::global());
        assert_eq!(cut.records, 2500);
        let mut all = cut.rdd.collect();
        all.sort();
        assert_eq!(all, (0..2500).collect::<Vec<_>>());
        assert!(!buffer.has_pending());
    }

    #[test]
    fn a_closed_buffer_refuses_records_but_keeps_what_it_has() {
        let buffer = BlockBuffer::new(Arc::default());
        assert!(buffer.push_block(vec![1, 2]));
        buffer.close();
        assert!(!buffer.push(3));
        assert!(!buffer.push_block(vec![4]));
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![1, 2]);
    }

    #[test]
    fn blocks_spread_evenly_and_stay_whole() {
        let blocks = vec![vec![1; 5], vec![2; 1], vec![3; 1], vec![4; 3]];
        let spread = spread_blocks(blocks, 2);
        let sizes: Vec<usize> = spread.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![5, 5]);
        assert_eq!(
            spread_blocks(Vec::<Vec<u8>>::new(), 4),
            vec![Vec::<u8>::new()]
        );
    }
}
