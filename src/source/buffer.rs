//! Records received but not yet cut into a batch.
//!
//! Receivers store blocks (a socket read's worth of lines) or single records; a batch
//! cut takes everything stored so far and lays it out over the context's partitions.
//! One lock per block, not per record, on the fast path.
//!
//! With backpressure, a buffer holds a limited number of records: a store into a full
//! buffer waits until the next cut empties it, so the receiver stops reading and the
//! sender is slowed down (by TCP flow control, for a socket).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::{Cut, ReceivedCounter};
use crate::rdd::{Data, ExecEnv, Rdd};

/// Received blocks waiting for the next batch.
pub(crate) struct BlockBuffer<T> {
    state: Mutex<Pending<T>>,
    /// Signalled when a cut makes room or the buffer closes.
    room: Condvar,
    /// With backpressure: stores wait while this many records are waiting.
    limit: Option<usize>,
    received: Arc<ReceivedCounter>,
}

struct Pending<T> {
    blocks: Vec<Vec<T>>,
    records: usize,
    closed: bool,
}

/// How many records a single-record `store` gathers into one block.
const RECORDS_PER_BLOCK: usize = 1024;

impl<T: Data> BlockBuffer<T> {
    pub(crate) fn new(received: Arc<ReceivedCounter>, limit: Option<usize>) -> Self {
        BlockBuffer {
            state: Mutex::new(Pending {
                blocks: Vec::new(),
                records: 0,
                closed: false,
            }),
            room: Condvar::new(),
            limit,
            received,
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether stores may have to wait for room.
    pub(crate) fn is_limited(&self) -> bool {
        self.limit.is_some()
    }

    /// The buffer, once it has room for more records (or is closed).
    fn pending_with_room(&self) -> MutexGuard<'_, Pending<T>> {
        let mut pending = self.pending();
        if let Some(limit) = self.limit {
            while pending.records >= limit && !pending.closed {
                pending = self
                    .room
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        pending
    }

    /// Stores a block; `false` (and the block is dropped) once the buffer is closed.
    pub(crate) fn push_block(&self, block: Vec<T>) -> bool {
        if block.is_empty() {
            return !self.pending().closed;
        }
        let records = block.len();
        {
            let mut pending = self.pending_with_room();
            if pending.closed {
                return false;
            }
            pending.records += records;
            pending.blocks.push(block);
        }
        self.received.add(records as u64);
        true
    }

    /// Stores one record; `false` once the buffer is closed.
    pub(crate) fn push(&self, item: T) -> bool {
        {
            let mut pending = self.pending_with_room();
            if pending.closed {
                return false;
            }
            pending.records += 1;
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
        self.room.notify_all();
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending().blocks.is_empty()
    }

    /// Takes everything stored so far. Received data cannot be replayed.
    pub(crate) fn cut(&self, env: &Arc<ExecEnv>) -> Cut<T> {
        let blocks = {
            let mut pending = self.pending();
            pending.records = 0;
            std::mem::take(&mut pending.blocks)
        };
        self.room.notify_all();
        let records = blocks.iter().map(|b| b.len() as u64).sum();
        let partitions = into_partitions(blocks, env.parallelism());
        Cut {
            rdd: Rdd::from_partitions(partitions, env.clone()),
            records,
            replay: None,
        }
    }
}

/// Lays `blocks` out as at most `partitions` partitions of nearly equal size, in
/// order: partition 0 holds the first records, the last partition the last ones.
/// Blocks are split where a partition fills up.
pub(crate) fn into_partitions<T>(blocks: Vec<Vec<T>>, partitions: usize) -> Vec<Vec<T>> {
    let total: usize = blocks.iter().map(Vec::len).sum();
    let count = partitions.clamp(1, total.max(1));
    let (base, extra) = (total / count, total % count);
    let mut sizes = (0..count).map(|i| base + usize::from(i < extra));
    let mut laid_out: Vec<Vec<T>> = Vec::with_capacity(count);
    let mut current: Vec<T> = Vec::new();
    let mut want = sizes.next().unwrap_or(0);
    for mut block in blocks {
        while !block.is_empty() {
            let room = want - current.len();
            if block.len() <= room && current.is_empty() {
                current = block;
                break;
            }
            let rest = block.split_off(room.min(block.len()));
            current.append(&mut block);
            block = rest;
            if current.len() == want {
                laid_out.push(std::mem::take(&mut current));
                want = sizes.next().unwrap_or(usize::MAX);
            }
        }
        if current.len() == want {
            laid_out.push(std::mem::take(&mut current));
            want = sizes.next().unwrap_or(usize::MAX);
        }
    }
    if !current.is_empty() || laid_out.is_empty() {
        laid_out.push(current);
    }
    laid_out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_records_are_gathered_into_blocks() {
        let buffer = BlockBuffer::new(Arc::default(), None);
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
        let buffer = BlockBuffer::new(Arc::default(), None);
        assert!(buffer.push_block(vec![1, 2]));
        buffer.close();
        assert!(!buffer.push(3));
        assert!(!buffer.push_block(vec![4]));
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![1, 2]);
    }

    #[test]
    fn a_full_buffer_makes_stores_wait_for_the_next_cut() {
        let buffer = Arc::new(BlockBuffer::new(Arc::default(), Some(3)));
        assert!(buffer.push_block(vec![1, 2, 3]));
        let (store, stored) = crossbeam_channel::bounded(1);
        let writer = buffer.clone();
        let pusher = std::thread::spawn(move || {
            let accepted = writer.push(4);
            store.send(()).unwrap();
            accepted
        });
        // The store waits: nothing arrives until the cut below.
        assert!(stored.try_recv().is_err());
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![1, 2, 3]);
        stored.recv().unwrap();
        assert!(pusher.join().unwrap());
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![4]);
    }

    #[test]
    fn closing_releases_a_waiting_store() {
        let buffer = Arc::new(BlockBuffer::new(Arc::default(), Some(1)));
        assert!(buffer.push(1));
        let writer = buffer.clone();
        let pusher = std::thread::spawn(move || writer.push(2));
        buffer.close();
        assert!(!pusher.join().unwrap());
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![1]);
    }

    #[test]
    fn partitions_are_balanced_and_in_order() {
        let blocks = vec![vec![1, 2, 3, 4, 5], vec![6], vec![7], vec![8, 9, 10]];
        assert_eq!(
            into_partitions(blocks, 3),
            vec![vec![1, 2, 3, 4], vec![5, 6, 7], vec![8, 9, 10]]
        );
        let blocks = vec![vec![1], vec![2], vec![3]];
        assert_eq!(into_partitions(blocks, 2), vec![vec![1, 2], vec![3]]);
        assert_eq!(into_partitions(vec![vec![1, 2]], 8), vec![vec![1], vec![2]]);
        assert_eq!(
            into_partitions(Vec::<Vec<u8>>::new(), 4),
            vec![Vec::<u8>::new()]
        );
        assert_eq!(into_partitions(vec![vec![], vec![7u8]], 4), vec![vec![7]]);
    }

    #[test]
    fn partitioning_keeps_every_record_once() {
        for partitions in 1..6 {
            let blocks: Vec<Vec<u32>> = (0..7).map(|b| (b * 10..b * 10 + b).collect()).collect();
            let laid_out = into_partitions(blocks.clone(), partitions);
            let flat: Vec<u32> = laid_out.iter().flatten().copied().collect();
            assert_eq!(flat, blocks.into_iter().flatten().collect::<Vec<_>>());
            let sizes: Vec<usize> = laid_out.iter().map(Vec::len).collect();
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
        }
    }
}
