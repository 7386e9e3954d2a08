//! The receivers' write-ahead log: every block a receiver stores is appended to a log
//! in the checkpoint directory before it counts as received, so that after a crash
//! (SIGKILL included) the unfinished batches get their data again and the blocks no
//! batch had taken yet go to the first batch of the restarted program. Spark's
//! receiver write-ahead log does the same (`spark.streaming.receiver.writeAheadLog`).
//!
//! A log is a directory of segment files named by the sequence number of their first
//! block (`00000000000000000042.log`). A block is one record: the payload's length
//! (u32, little-endian), its CRC-32 (u32) and the payload, the block encoded with
//! bincode. Blocks are numbered from 0 across segments. A batch records the range of
//! numbers it took; a checkpoint records the first number no batch has taken.
//!
//! A block is written with one `write` before it is stored, so a killed process has
//! either the whole block in the file (the kernel keeps it) or a block cut short,
//! which ends its segment; a restarted program writes on in a new segment. Each cut
//! syncs the segment to disk, so that a machine crash loses at most what arrived since
//! the last batch time.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A new segment is started once the current one holds this many bytes.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Bytes before each block's payload: its length and its CRC-32.
const HEADER: usize = 8;

const SUFFIX: &str = ".log";

/// An open write-ahead log, appending to its last segment.
pub(crate) struct WriteAheadLog {
    dir: PathBuf,
    /// The segment being written and the number of its first block.
    segment: Arc<File>,
    segment_bytes: u64,
    /// The number the next block will get.
    next: u64,
}

impl WriteAheadLog {
    /// Opens the log in `dir`, creating it; with `fresh`, what it held is removed first
    /// (a program that starts without recovering has no use for it). New blocks go to
    /// a new segment after the last whole block.
    pub(crate) fn open(dir: &Path, fresh: bool) -> io::Result<WriteAheadLog> {
        if fresh && dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        let mut next = 0;
        for (first, path) in segments(dir)? {
            let blocks = read_segment(&path)?.len() as u64;
            next = next.max(first + blocks);
        }
        let (segment, path) = create_segment(dir, next)?;
        sync_dir(dir)?;
        drop(path);
        Ok(WriteAheadLog {
            dir: dir.to_path_buf(),
            segment: Arc::new(segment),
            segment_bytes: 0,
            next,
        })
    }

    /// The number the next block will get.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Appends one block's payload; its number.
    pub(crate) fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        if self.segment_bytes >= SEGMENT_BYTES {
            let (segment, _) = create_segment(&self.dir, self.next)?;
            self.segment = Arc::new(segment);
            self.segment_bytes = 0;
        }
        let length = u32::try_from(payload.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a block of more than 4 GiB cannot be logged",
            )
        })?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&length.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        (&*self.segment).write_all(&record)?;
        self.segment_bytes += record.len() as u64;
        let number = self.next;
        self.next += 1;
        Ok(number)
    }

    /// The segment being written, to sync outside the buffer's lock.
    pub(crate) fn segment(&self) -> Arc<File> {
        self.segment.clone()
    }

    /// The payloads of blocks `from..to` (see [`read`]).
    pub(crate) fn read(&self, from: u64, to: u64) -> io::Result<Option<Vec<Vec<u8>>>> {
        read(&self.dir, from, to)
    }
}

/// Removes the segments of the log in `dir` whose blocks all come before block
/// `keep_from`. The segment being written is never one of them.
pub(crate) fn release_before(dir: &Path, keep_from: u64) -> io::Result<()> {
    let segments = segments(dir)?;
    for pair in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first <= keep_from {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The segments of `dir`, by the number of their first block.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(SUFFIX))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

fn create_segment(dir: &Path, first: u64) -> io::Result<(File, PathBuf)> {
    let path = dir.join(format!("{first:020}{SUFFIX}"));
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    Ok((file, path))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The whole blocks of a segment, in order; a block cut short, or one whose checksum
/// does not match, ends it.
fn read_segment(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut blocks = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= HEADER {
        let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let Some(payload) = rest.get(HEADER..HEADER + length) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        blocks.push(payload.to_vec());
        rest = &rest[HEADER + length..];
    }
    Ok(blocks)
}

/// The payloads of blocks `from..to` of the log in `dir`; `None` if one of them is
/// missing (its segment was removed, or damaged).
pub(crate) fn read(dir: &Path, from: u64, to: u64) -> io::Result<Option<Vec<Vec<u8>>>> {
    let mut found = Vec::with_capacity((to - from) as usize);
    let mut expected = from;
    for (first, path) in segments(dir)? {
        if expected >= to {
            break;
        }
        let blocks = read_segment(&path)?;
        let end = first + blocks.len() as u64;
        if end <= expected {
            continue;
        }
        if first > expected {
            return Ok(None);
        }
        let skip = (expected - first) as usize;
        let take = (to.min(end) - expected) as usize;
        found.extend(blocks.into_iter().skip(skip).take(take));
        expected += take as u64;
    }
    Ok((expected >= to).then_some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(n: std::ops::Range<u8>) -> Vec<Vec<u8>> {
        n.map(|i| vec![i; i as usize + 1]).collect()
    }

    #[test]
    fn blocks_are_read_back_by_number_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = WriteAheadLog::open(dir.path(), true).unwrap();
        for payload in payloads(0..5) {
            log.append(&payload).unwrap();
        }
        drop(log);
        let mut log = WriteAheadLog::open(dir.path(), false).unwrap();
        assert_eq!(log.next(), 5);
        for payload in payloads(5..8) {
            log.append(&payload).unwrap();
        }
        assert_eq!(log.read(3, 7).unwrap(), Some(payloads(3..7)));
        assert_eq!(log.read(0, 8).unwrap(), Some(payloads(0..8)));
        assert_eq!(log.read(4, 4).unwrap(), Some(Vec::new()));
        assert_eq!(log.read(6, 9).unwrap(), None, "block 8 was never written");
    }

    #[test]
    fn a_block_cut_short_ends_its_segment_and_the_log_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = WriteAheadLog::open(dir.path(), true).unwrap();
        for payload in payloads(0..3) {
            log.append(&payload).unwrap();
        }
        drop(log);
        // A kill during the write of block 3: half of it reached the file.
        let (_, segment) = segments(dir.path()).unwrap().pop().unwrap();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(file);
        let mut log = WriteAheadLog::open(dir.path(), false).unwrap();
        assert_eq!(log.next(), 3);
        assert_eq!(log.append(b"three").unwrap(), 3);
        let mut expected = payloads(0..3);
        expected.push(b"three".to_vec());
        assert_eq!(log.read(0, 4).unwrap(), Some(expected));
    }

    #[test]
    fn released_segments_are_gone_and_later_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..3u8 {
            let mut log = WriteAheadLog::open(dir.path(), round == 0).unwrap();
            for payload in payloads(round * 2..round * 2 + 2) {
                log.append(&payload).unwrap();
            }
        }
        // Segments start at 0, 2 and 4 (and an empty one at 6).
        let log = WriteAheadLog::open(dir.path(), false).unwrap();
        release_before(dir.path(), 3).unwrap();
        assert_eq!(log.read(0, 2).unwrap(), None);
        assert_eq!(log.read(2, 6).unwrap(), Some(payloads(2..6)));
        let left: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(left, vec![2, 4, 6]);
    }

    #[test]
    fn a_fresh_log_forgets_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = WriteAheadLog::open(dir.path(), true).unwrap();
        log.append(b"old").unwrap();
        let log = WriteAheadLog::open(dir.path(), true).unwrap();
        assert_eq!(log.next(), 0);
        assert_eq!(log.read(0, 1).unwrap(), None);
    }
}
