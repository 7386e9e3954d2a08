//! Records received but not yet cut into a batch.
//!
//! Receivers store blocks (a socket read's worth of lines, cut into blocks of the
//! configured size) or single records; a batch cut takes everything stored so far and
//! lays it out over the context's partitions. One lock per block, not per record, on
//! the fast path.
//!
//! Two things may make a store wait, so that the receiver stops reading and the sender
//! is slowed down (by TCP flow control, for a socket): the receiver's rate limit (see
//! `limiter`), checked once per block, and `max_buffered_records`, a bound on the
//! records waiting for a cut, which is never exceeded. Once the receiver is stopping
//! neither applies: what it has in hand is stored for the last batch, not dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::limiter::RateLimiter;
use super::{BufferedRecords, Cut, ReceivedCounter};
use crate::rdd::{Data, ExecEnv, Rdd};

/// What a receiver's buffer is told by the context.
pub(crate) struct BufferSettings {
    pub(crate) received: Arc<ReceivedCounter>,
    pub(crate) buffered: Arc<BufferedRecords>,
    /// Stores wait while this many records are waiting for a cut.
    pub(crate) limit: Option<usize>,
    /// Records per block: single stores are gathered, large stores are cut, to this.
    pub(crate) block_size: usize,
    pub(crate) limiter: RateLimiter,
}

/// Received blocks waiting for the next batch.
pub(crate) struct BlockBuffer<T> {
    state: Mutex<Pending<T>>,
    /// Signalled when a cut makes room, or the receiver starts stopping.
    room: Condvar,
    settings: BufferSettings,
    /// Set when the receiver is stopping: stores then neither wait nor limit.
    draining: AtomicBool,
    /// Single records stored in the current metered block.
    unmetered: AtomicUsize,
}

struct Pending<T> {
    blocks: Vec<Vec<T>>,
    records: usize,
    closed: bool,
}

impl<T: Data> BlockBuffer<T> {
    pub(crate) fn new(settings: BufferSettings) -> Self {
        BlockBuffer {
            state: Mutex::new(Pending {
                blocks: Vec::new(),
                records: 0,
                closed: false,
            }),
            room: Condvar::new(),
            settings,
            draining: AtomicBool::new(false),
            unmetered: AtomicUsize::new(0),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether stores may have to wait (for room or for the rate limit).
    pub(crate) fn may_wait(&self) -> bool {
        self.settings.limit.is_some() || self.settings.limiter.is_limited()
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The buffer once it has room for at least one record (or is closed or draining),
    /// and how many records fit.
    fn pending_with_room(&self) -> (MutexGuard<'_, Pending<T>>, usize) {
        let mut pending = self.pending();
        let Some(limit) = self.settings.limit else {
            return (pending, usize::MAX);
        };
        while pending.records >= limit && !pending.closed && !self.is_draining() {
            pending = self
                .room
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let room = if self.is_draining() {
            usize::MAX
        } else {
            limit.saturating_sub(pending.records)
        };
        (pending, room)
    }

    /// Stores records in blocks of the configured size, each after the rate limit
    /// allows it; `false` (and what is left is dropped) once the buffer is closed.
    pub(crate) fn push_block(&self, records: Vec<T>) -> bool {
        let block_size = self.settings.limiter.block_size(self.settings.block_size);
        if records.len() <= block_size {
            if records.is_empty() {
                return !self.pending().closed;
            }
            return self.store_metered(records);
        }
        let mut records = records.into_iter();
        loop {
            // The rate may change between blocks, and with it the block size.
            let size = self.settings.limiter.block_size(self.settings.block_size);
            let block: Vec<T> = records.by_ref().take(size).collect();
            if block.is_empty() {
                return true;
            }
            if !self.store_metered(block) {
                return false;
            }
        }
    }

    fn store_metered(&self, block: Vec<T>) -> bool {
        if !self.is_draining() {
            self.settings
                .limiter
                .acquire(block.len(), &|| self.is_draining());
        }
        self.store_within_room(block)
    }

    /// Stores `block`, as much as fits at a time when the buffer is bounded.
    fn store_within_room(&self, mut block: Vec<T>) -> bool {
        while !block.is_empty() {
            let stored = {
                let (mut pending, room) = self.pending_with_room();
                if pending.closed {
                    return false;
                }
                let rest = if block.len() > room {
                    block.split_off(room)
                } else {
                    Vec::new()
                };
                let stored = block.len();
                pending.records += stored;
                pending.blocks.push(block);
                // Under the buffer's lock, so that the gauge never runs ahead of a cut.
                self.settings.buffered.add(stored);
                block = rest;
                stored
            };
            self.settings.received.add(stored as u64);
        }
        true
    }

    /// Stores one record; `false` once the buffer is closed. The rate limit is
    /// consulted once per block's worth of records.
    pub(crate) fn push(&self, item: T) -> bool {
        let block_size = self.settings.block_size;
        let metered = self.settings.limiter.block_size(block_size);
        let in_block = self.unmetered.load(Ordering::Relaxed);
        if in_block == 0 || in_block >= metered {
            // A new block: it takes its tokens before its first record, as a stored
            // block does.
            if !self.is_draining() {
                self.settings
                    .limiter
                    .acquire(metered, &|| self.is_draining());
            }
            self.unmetered.store(0, Ordering::Relaxed);
        }
        self.unmetered.fetch_add(1, Ordering::Relaxed);
        {
            let (mut pending, _) = self.pending_with_room();
            if pending.closed {
                return false;
            }
            pending.records += 1;
            self.settings.buffered.add(1);
            match pending.blocks.last_mut() {
                Some(block) if block.len() < block_size => block.push(item),
                _ => {
                    let mut block = Vec::with_capacity(16.min(block_size));
                    block.push(item);
                    pending.blocks.push(block);
                }
            }
        }
        self.settings.received.add(1);
        true
    }

    /// The receiver is stopping: stores from now on neither wait for room nor for the
    /// rate limit, so the receiver can hand over what it holds and end.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let _guard = self.pending();
        self.room.notify_all();
    }

    /// Stops accepting records. Records already stored stay for the next cut.
    pub(crate) fn close(&self) {
        self.pending().closed = true;
        self.room.notify_all();
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending().blocks.is_empty()
    }

    /// An empty batch, for a batch time whose records go to the next cut.
    pub(crate) fn nothing(&self, env: &Arc<ExecEnv>) -> Cut<T> {
        Cut {
            rdd: Rdd::empty_in(env.clone()),
            records: 0,
            replay: None,
        }
    }

    /// Takes everything stored so far. Received data cannot be replayed.
    pub(crate) fn cut(&self, env: &Arc<ExecEnv>) -> Cut<T> {
        let (blocks, taken) = {
            let mut pending = self.pending();
            let taken = std::mem::take(&mut pending.records);
            self.settings.buffered.remove(taken);
            (std::mem::take(&mut pending.blocks), taken)
        };
        self.room.notify_all();
        let records = taken as u64;
        let partitions = into_partitions(blocks, env.parallelism());
        Cut {
            rdd: Rdd::from_partitions_in(partitions, env.clone()),
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
    use crate::scheduler::ManualClock;

    fn buffer<T: Data>(limit: Option<usize>) -> BlockBuffer<T> {
        BlockBuffer::new(BufferSettings {
            received: Arc::default(),
            buffered: Arc::default(),
            limit,
            block_size: 1024,
            limiter: RateLimiter::new(Arc::new(ManualClock::default()), None, None),
        })
    }

    #[test]
    fn single_records_are_gathered_into_blocks() {
        let buffer = buffer(None);
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
        let buffer = buffer(None);
        assert!(buffer.push_block(vec![1, 2]));
        buffer.close();
        assert!(!buffer.push(3));
        assert!(!buffer.push_block(vec![4]));
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![1, 2]);
    }

    #[test]
    fn a_full_buffer_makes_stores_wait_for_the_next_cut() {
        let buffer = Arc::new(buffer(Some(3)));
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
        let buffer = Arc::new(buffer(Some(1)));
        assert!(buffer.push(1));
        let writer = buffer.clone();
        let pusher = std::thread::spawn(move || writer.push(2));
        buffer.close();
        assert!(!pusher.join().unwrap());
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![1]);
    }

    #[test]
    fn a_large_block_is_stored_as_it_fits_and_the_bound_is_never_passed() {
        let buffer = Arc::new(buffer(Some(4)));
        let writer = buffer.clone();
        let pusher = std::thread::spawn(move || writer.push_block((0..10).collect()));
        let mut taken = Vec::new();
        while taken.len() < 10 {
            taken.extend(buffer.cut(&ExecEnv::global()).rdd.collect());
            assert!(buffer.settings.buffered.peak() <= 4);
        }
        assert!(pusher.join().unwrap());
        assert_eq!(taken, (0..10).collect::<Vec<_>>());
        assert_eq!(buffer.settings.buffered.now(), 0);
        assert_eq!(buffer.settings.received.get(), 10);
    }

    #[test]
    fn draining_lets_a_waiting_store_through_instead_of_dropping_it() {
        let buffer = Arc::new(buffer(Some(1)));
        assert!(buffer.push(1));
        let writer = buffer.clone();
        let pusher = std::thread::spawn(move || writer.push_block(vec![2, 3]));
        buffer.drain();
        assert!(pusher.join().unwrap());
        buffer.close();
        assert_eq!(buffer.cut(&ExecEnv::global()).rdd.collect(), vec![1, 2, 3]);
    }

    #[test]
    fn blocks_are_cut_to_the_block_size() {
        let buffer = BlockBuffer::new(BufferSettings {
            block_size: 3,
            ..buffer::<u32>(None).settings
        });
        assert!(buffer.push_block((0..8).collect()));
        let sizes: Vec<usize> = buffer.pending().blocks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 2]);
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
