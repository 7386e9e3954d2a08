//! Records received but not yet cut into a batch.
//!
//! Receivers store blocks (a socket read's worth of lines as one `TextBlock`, cut into
//! blocks of the configured size) or single records; a batch cut takes everything
//! stored so far and lays it out over the context's partitions as it was stored (see
//! `rdd::blocks`). One lock per block, not per record, on the fast path.
//!
//! Two things may make a store wait, so that the receiver stops reading and the sender
//! is slowed down (by TCP flow control, for a socket): the receiver's rate limit (see
//! `limiter`), checked once per block, and `max_buffered_records`, a bound on the
//! records waiting for a cut, which is never exceeded. Once the receiver is stopping
//! neither applies: what it has in hand is stored for the last batch, not dropped.
//!
//! With a checkpoint directory, each stored block is first appended to the receiver's
//! write-ahead log (see `wal`), under the same lock as the store, so that the log's
//! order is the buffer's and a cut is a range of the log's block numbers.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::limiter::RateLimiter;
use super::wal::{self, WriteAheadLog};
use super::{BufferedRecords, Cut, ReceivedCounter, SourceContext};
use crate::checkpoint::{decode, encode};
use crate::error::{Error, Result, lock};
use crate::rdd::blocks::{Block, into_partitions};
use crate::rdd::{Data, ExecEnv, Rdd};

/// What a receiver's buffer stores: blocks that can also be written to its log.
pub(crate) trait LoggedBlock: Block + Serialize + DeserializeOwned {}
impl<B: Block + Serialize + DeserializeOwned> LoggedBlock for B {}

/// Where a receiver stands in its write-ahead log, as a checkpoint records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LogPosition {
    /// The log's directory, relative to the checkpoint directory.
    log: String,
    /// The first block no batch has taken.
    uncut: u64,
}

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
pub(crate) struct BlockBuffer<B> {
    state: Mutex<Pending<B>>,
    /// Signalled when a cut makes room, or the receiver starts stopping.
    room: Condvar,
    settings: BufferSettings,
    /// Set when the receiver is stopping: stores then neither wait nor limit.
    draining: AtomicBool,
    /// Single records stored in the current metered block.
    unmetered: AtomicUsize,
    /// The log position a recovered checkpoint recorded, until the log is opened.
    restored: Mutex<Option<LogPosition>>,
    /// The log's directory once open, for reads and clean-up outside the lock.
    log_dir: Mutex<Option<(PathBuf, String)>>,
    /// Per checkpoint still kept, oldest first: the first block it needs.
    kept: Mutex<VecDeque<u64>>,
}

struct Pending<B> {
    blocks: Vec<B>,
    records: usize,
    closed: bool,
    /// The write-ahead log, and the first block no cut has taken.
    log: Option<(WriteAheadLog, u64)>,
}

impl<B: LoggedBlock> BlockBuffer<B> {
    pub(crate) fn new(settings: BufferSettings) -> Self {
        BlockBuffer {
            state: Mutex::new(Pending {
                blocks: Vec::new(),
                records: 0,
                closed: false,
                log: None,
            }),
            room: Condvar::new(),
            settings,
            draining: AtomicBool::new(false),
            unmetered: AtomicUsize::new(0),
            restored: Mutex::new(None),
            log_dir: Mutex::new(None),
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// Opens the write-ahead log when the context has a checkpoint directory and logs
    /// received data: the log of the recovered checkpoint, whose blocks no batch had
    /// taken are stored again (for the first batch), or a fresh one.
    pub(crate) fn open_log(&self, ctx: &SourceContext) -> Result<()> {
        let Some(checkpoint_dir) = &ctx.write_ahead_log else {
            return Ok(());
        };
        let restored = lock(&self.restored).take();
        let name = match &restored {
            Some(position) => position.log.clone(),
            None => format!("receivedData/{}", ctx.stream_id),
        };
        let dir = checkpoint_dir.join(&name);
        let failed = |e: std::io::Error| Error::io("cannot open the write-ahead log", &dir, e);
        let log = WriteAheadLog::open(&dir, restored.is_none()).map_err(failed)?;
        let uncut = restored.map_or(0, |p| p.uncut);
        let unclaimed = match log.read(uncut, log.next()).map_err(failed)? {
            Some(payloads) => decode_blocks(&payloads).map_err(|reason| {
                let e = std::io::Error::new(std::io::ErrorKind::InvalidData, reason);
                Error::io("cannot decode the write-ahead log", &dir, e)
            })?,
            None => {
                tracing::warn!(
                    "{}: the write-ahead log {} lacks blocks the checkpoint expected; what it lacks is lost",
                    ctx.stream,
                    dir.display()
                );
                Vec::new()
            }
        };
        let records: usize = unclaimed.iter().map(B::len).sum();
        {
            let mut pending = self.pending();
            pending.records += records;
            pending.blocks.extend(unclaimed);
            pending.log = Some((log, uncut));
            self.settings.buffered.add(records);
        }
        self.settings.received.add(records as u64);
        if records > 0 {
            tracing::info!(
                "{}: {records} records received before the restart and taken by no batch are given to the next batch",
                ctx.stream
            );
        }
        *lock(&self.log_dir) = Some((dir, name));
        Ok(())
    }

    /// Continues from a checkpoint's position (called before `open_log`).
    pub(crate) fn restore(&self, position: &[u8]) -> Result<()> {
        let position: LogPosition = decode(position).map_err(|reason| Error::Codec {
            action: "decode",
            stream: "the write-ahead log position of a receiver".into(),
            reason,
        })?;
        *lock(&self.restored) = Some(position);
        Ok(())
    }

    /// Where the log stands after the last cut, for a checkpoint.
    pub(crate) fn position(&self) -> Option<Vec<u8>> {
        let name = lock(&self.log_dir).as_ref()?.1.clone();
        let uncut = self.pending().log.as_ref()?.1;
        encode(&LogPosition { log: name, uncut }).ok()
    }

    /// The blocks a cut recorded, read back from the log.
    pub(crate) fn replay(&self, replay: &[u8], env: &Arc<ExecEnv>) -> Option<(Rdd<B::Item>, u64)> {
        let (from, to): (u64, u64) = decode(replay).ok()?;
        let dir = lock(&self.log_dir).as_ref()?.0.clone();
        let blocks = match wal::read(&dir, from, to) {
            Ok(Some(payloads)) => decode_blocks(&payloads).ok()?,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!("reading the write-ahead log {}: {e}", dir.display());
                return None;
            }
        };
        let records = blocks.iter().map(B::len).sum::<usize>() as u64;
        let partitions = into_partitions(blocks, env.parallelism());
        Some((Rdd::from_blocks_in(partitions, env.clone()), records))
    }

    /// A checkpoint was written, with this position and these unfinished batches: once
    /// `kept` checkpoints are recorded, the log before what the oldest still needs is
    /// removed.
    pub(crate) fn checkpointed(&self, position: Option<&[u8]>, replays: &[&[u8]], kept: usize) {
        let Some(dir) = lock(&self.log_dir).as_ref().map(|(dir, _)| dir.clone()) else {
            return;
        };
        let needed = position
            .and_then(|p| decode::<LogPosition>(p).ok())
            .map(|p| p.uncut)
            .into_iter()
            .chain(
                replays
                    .iter()
                    .filter_map(|r| decode::<(u64, u64)>(r).ok())
                    .map(|(from, _)| from),
            )
            .min();
        let Some(needed) = needed else { return };
        let release = {
            let mut kept_from = lock(&self.kept);
            kept_from.push_back(needed);
            while kept_from.len() > kept {
                kept_from.pop_front();
            }
            (kept_from.len() == kept).then(|| kept_from.iter().copied().min())
        };
        if let Some(Some(before)) = release
            && let Err(e) = wal::release_before(&dir, before)
        {
            tracing::warn!(
                "removing old write-ahead log segments in {}: {e}",
                dir.display()
            );
        }
    }

    /// Appends `block` (of `records` records) to the log, if there is one; `false` (and
    /// an error logged) if it cannot be written, so that the block is not accepted.
    fn log_block(
        pending: &mut Pending<B>,
        block: &(impl Serialize + ?Sized),
        records: usize,
    ) -> bool {
        let Some((log, _)) = &mut pending.log else {
            return true;
        };
        let written = encode(block)
            .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidData, reason))
            .and_then(|payload| log.append(&payload));
        if let Err(e) = written {
            tracing::error!(
                "a received block of {records} records could not be written to the write-ahead log and is dropped: {e}"
            );
            return false;
        }
        true
    }

    fn pending(&self) -> MutexGuard<'_, Pending<B>> {
        lock(&self.state)
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
    fn pending_with_room(&self) -> (MutexGuard<'_, Pending<B>>, usize) {
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

    /// Stores `block` in blocks of the configured size (read once per call), each
    /// after the rate limit allows it; `false` (and what is left is dropped) once the
    /// buffer is closed.
    pub(crate) fn push_block(&self, mut block: B) -> bool {
        if block.is_empty() {
            return !self.pending().closed;
        }
        let size = self.settings.limiter.block_size(self.settings.block_size);
        if block.len() <= size {
            return self.store_metered(block);
        }
        // Cut from the back, so that every record is moved at most once.
        let mut pieces = Vec::with_capacity(block.len().div_ceil(size));
        while block.len() > size {
            let at = (block.len() - 1) / size * size;
            pieces.push(block.split_off(at));
        }
        pieces.push(block);
        pieces
            .into_iter()
            .rev()
            .all(|piece| self.store_metered(piece))
    }

    fn store_metered(&self, block: B) -> bool {
        if !self.is_draining() {
            self.settings
                .limiter
                .acquire(block.len(), &|| self.is_draining());
        }
        self.store_within_room(block)
    }

    /// Stores `block`, as much as fits at a time when the buffer is bounded.
    fn store_within_room(&self, mut block: B) -> bool {
        loop {
            let (stored, rest) = {
                let (mut pending, room) = self.pending_with_room();
                if pending.closed {
                    return false;
                }
                let rest = (block.len() > room).then(|| block.split_off(room));
                let stored = block.len();
                if Self::log_block(&mut pending, &block, stored) {
                    pending.records += stored;
                    pending.blocks.push(block);
                    // Under the buffer's lock, so that the gauge never runs ahead of a cut.
                    self.settings.buffered.add(stored);
                    (stored, rest)
                } else {
                    (0, rest)
                }
            };
            self.settings.received.add(stored as u64);
            match rest {
                Some(rest) => block = rest,
                None => return true,
            }
        }
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
    pub(crate) fn nothing(&self, env: &Arc<ExecEnv>) -> Cut<B::Item> {
        let replay = self
            .pending()
            .log
            .as_ref()
            .and_then(|(_, uncut)| encode(&(*uncut, *uncut)).ok());
        Cut {
            rdd: Rdd::empty_in(env.clone()),
            records: 0,
            replay,
        }
    }

    /// Takes everything stored so far. With a write-ahead log, the cut records the
    /// range of blocks it took, and the log is synced to disk.
    pub(crate) fn cut(&self, env: &Arc<ExecEnv>) -> Cut<B::Item> {
        let (blocks, taken, logged) = {
            let mut pending = self.pending();
            let taken = std::mem::take(&mut pending.records);
            self.settings.buffered.remove(taken);
            let logged = pending.log.as_mut().map(|(log, uncut)| {
                let range = (*uncut, log.next());
                *uncut = log.next();
                (range, log.segment())
            });
            (std::mem::take(&mut pending.blocks), taken, logged)
        };
        self.room.notify_all();
        let replay = logged.and_then(|(range, segment)| {
            if let Err(e) = segment.sync_data() {
                tracing::warn!("syncing the write-ahead log: {e}");
            }
            encode(&range).ok()
        });
        let records = taken as u64;
        let partitions = into_partitions(blocks, env.parallelism());
        Cut {
            rdd: Rdd::from_blocks_in(partitions, env.clone()),
            records,
            replay,
        }
    }
}

impl<T: Data + Serialize + DeserializeOwned> BlockBuffer<Vec<T>> {
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
            if !Self::log_block(&mut pending, std::slice::from_ref(&item), 1) {
                return true;
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
}

fn decode_blocks<B: LoggedBlock>(payloads: &[Vec<u8>]) -> std::result::Result<Vec<B>, String> {
    payloads.iter().map(|payload| decode(payload)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    fn buffer<B: LoggedBlock>(limit: Option<usize>) -> BlockBuffer<B> {
        BlockBuffer::new(BufferSettings {
            received: Arc::default(),
            buffered: Arc::default(),
            limit,
            block_size: 1024,
            limiter: RateLimiter::new(Arc::new(ManualClock::default()), None, None),
        })
    }

    fn strings(records: &[&str]) -> Vec<String> {
        records.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn with_a_log_a_cut_is_replayed_and_what_no_batch_took_is_kept_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ctx = SourceContext {
            tokio: runtime.handle().clone(),
            restart_delay: std::time::Duration::ZERO,
            clock: Arc::new(ManualClock::default()),
            origin: crate::time::Time::from_millis(0),
            receivers: Arc::default(),
            stream_id: 3,
            stream: "input #3".into(),
            write_ahead_log: Some(dir.path().to_path_buf()),
        };
        let env = ExecEnv::global();
        let first = buffer::<Vec<String>>(None);
        first.open_log(&ctx).unwrap();
        assert!(first.push_block(strings(&["a", "b"])));
        assert!(first.push("c".to_string()));
        let cut = first.cut(&env);
        assert!(first.push_block(strings(&["d"])));
        let position = first.position().unwrap();
        drop(first); // killed: "d" is in the log only

        let second = buffer::<Vec<String>>(None);
        second.restore(&position).unwrap();
        second.open_log(&ctx).unwrap();
        let (rdd, records) = second.replay(cut.replay.as_deref().unwrap(), &env).unwrap();
        assert_eq!((rdd.collect(), records), (strings(&["a", "b", "c"]), 3));
        assert!(second.push("e".to_string()));
        assert_eq!(second.cut(&env).rdd.collect(), strings(&["d", "e"]));
        assert!(dir.path().join("receivedData/3").is_dir());
    }

    #[test]
    fn without_a_checkpoint_directory_nothing_is_logged() {
        let buffer = buffer::<Vec<String>>(None);
        assert!(buffer.push("a".to_string()));
        assert_eq!(buffer.cut(&ExecEnv::global()).replay, None);
        assert_eq!(buffer.position(), None);
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
        let buffer = Arc::new(buffer::<Vec<i32>>(Some(4)));
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
            ..buffer::<Vec<u32>>(None).settings
        });
        assert!(buffer.push_block((0..8).collect()));
        let sizes: Vec<usize> = buffer.pending().blocks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 2]);
    }
}
