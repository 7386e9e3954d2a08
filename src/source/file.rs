//! `text_file_stream`: the lines of new files appearing in a directory.
//!
//! At start the directory's current files are noted and ignored. At every batch time
//! the directory is listed; each file not seen before is read once, whole, in
//! modification-time order (then by name), in parallel. Names starting with `.` or
//! `_` are skipped, so a writer can create `.name.tmp` and rename it into place: the
//! rename is atomic, and a reader never sees half a file. A file that cannot be read is
//! reported in the log and skipped, and so is anything that is not a regular file (a
//! directory, a named pipe, a socket, a device): reading a pipe with no writer would
//! wait for ever, and with it the batch and every batch after it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rayon::prelude::*;

use super::buffer::into_partitions;
use super::lines::split_lines_in_chunks;
use super::{Cut, InputSource, ReceivedCounter, SourceContext};
use crate::error::{Error, Result};
use crate::rdd::{ExecEnv, Rdd};
use crate::time::Time;

pub(crate) struct FileInput {
    dir: PathBuf,
    /// Names present at the last listing (or at start), so never read again while
    /// they stay. A name that disappears and comes back is a new file.
    seen: Mutex<HashSet<OsString>>,
    /// Whether `seen` came from a checkpoint, so `start` must not list afresh.
    restored: AtomicBool,
    received: Arc<ReceivedCounter>,
}

impl FileInput {
    pub(crate) fn new(dir: &Path, received: Arc<ReceivedCounter>) -> Self {
        FileInput {
            dir: dir.to_path_buf(),
            seen: Mutex::new(HashSet::new()),
            restored: AtomicBool::new(false),
            received,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashSet<OsString>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The names of the candidate files in the directory now.
    fn list(&self) -> Result<Vec<OsString>> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io("cannot list directory", &self.dir, e))?;
        Ok(entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name())
            .filter(|name| {
                let text = name.to_string_lossy();
                !(text.starts_with('.') || text.starts_with('_'))
            })
            .collect())
    }

    /// New files since the last listing, oldest first, and notes the listing.
    fn take_new_files(&self) -> Vec<PathBuf> {
        let names = match self.list() {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!("text_file_stream: {e}; no new files this batch");
                return Vec::new();
            }
        };
        let mut seen = self.seen();
        let mut new: Vec<(SystemTime, OsString)> = Vec::new();
        for name in &names {
            if seen.contains(name) {
                continue;
            }
            let path = self.dir.join(name);
            match std::fs::metadata(&path) {
                // Noted in `seen` below like any name, so reported once while it stays.
                Ok(meta) if !meta.is_file() => warn_not_regular(&path),
                Ok(meta) => new.push((
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    name.clone(),
                )),
                // Unreadable entries (a broken link, a file removed meanwhile) are read
                // below anyway, so that the reason is reported once.
                Err(_) => new.push((SystemTime::UNIX_EPOCH, name.clone())),
            }
        }
        *seen = names.into_iter().collect();
        new.sort();
        new.into_iter()
            .map(|(_, name)| self.dir.join(name))
            .collect()
    }

    /// Reads `files` in parallel (large files in parallel chunks too), and lays their
    /// lines out in order over the context's partitions.
    fn read(&self, files: &[PathBuf], env: &Arc<ExecEnv>) -> (Rdd<String>, u64) {
        let chunks: Vec<Vec<String>> = env.run(|| {
            files
                .par_iter()
                .filter_map(|path| read_lines(path))
                .collect::<Vec<_>>()
                .into_iter()
                .flatten()
                .collect()
        });
        let records = chunks.iter().map(|c| c.len() as u64).sum();
        self.received.add(records);
        let partitions = into_partitions(chunks, env.parallelism());
        (Rdd::from_partitions_in(partitions, env.clone()), records)
    }
}

impl InputSource<String> for FileInput {
    fn start(&self, _ctx: &SourceContext) -> Result<()> {
        let names = self.list()?;
        if !self.restored.load(Ordering::SeqCst) {
            *self.seen() = names.into_iter().collect();
        }
        Ok(())
    }

    /// Reads the new files; the replay record is their names, in order.
    fn cut(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<String> {
        let files = self.take_new_files();
        let names: Vec<Vec<u8>> = files
            .iter()
            .filter_map(|path| path.file_name())
            .map(name_bytes)
            .collect();
        let (rdd, records) = self.read(&files, env);
        Cut {
            rdd,
            records,
            replay: crate::checkpoint::encode(&names).ok(),
        }
    }

    fn position(&self) -> Option<Vec<u8>> {
        let names: Vec<Vec<u8>> = self.seen().iter().map(|n| name_bytes(n)).collect();
        crate::checkpoint::encode(&names).ok()
    }

    fn restore(&self, position: &[u8]) -> Result<()> {
        let names: Vec<Vec<u8>> =
            crate::checkpoint::decode(position).map_err(|reason| Error::Codec {
                action: "decode",
                stream: format!("text_file_stream {}", self.dir.display()),
                reason,
            })?;
        *self.seen() = names.into_iter().map(name_from_bytes).collect();
        self.restored.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn replay(&self, replay: &[u8], env: &Arc<ExecEnv>) -> Option<(Rdd<String>, u64)> {
        let names: Vec<Vec<u8>> = crate::checkpoint::decode(replay).ok()?;
        let files: Vec<PathBuf> = names
            .into_iter()
            .map(|name| self.dir.join(name_from_bytes(name)))
            .collect();
        Some(self.read(&files, env))
    }

    fn has_pending(&self) -> bool {
        let seen = self.seen();
        self.list()
            .map(|names| names.iter().any(|name| !seen.contains(name)))
            .unwrap_or(false)
    }

    fn stop(&self) {}
}

/// A file name as bytes, exactly (names need not be UTF-8).
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    name.as_encoded_bytes().to_vec()
}

/// A file name from [`name_bytes`].
#[cfg(unix)]
fn name_from_bytes(bytes: Vec<u8>) -> OsString {
    std::os::unix::ffi::OsStringExt::from_vec(bytes)
}

/// A file name from [`name_bytes`].
#[cfg(not(unix))]
fn name_from_bytes(bytes: Vec<u8>) -> OsString {
    OsString::from(String::from_utf8_lossy(&bytes).into_owned())
}

/// How much of a file one task decodes: large files are split so that one file does
/// not leave the other threads idle.
const CHUNK_BYTES: usize = 1 << 20;

/// Reports that `path` is skipped because it is not a regular file.
fn warn_not_regular(path: &Path) {
    tracing::warn!(
        "text_file_stream: skipping {}: it is not a regular file",
        path.display()
    );
}

/// What reading a file gave.
enum ReadOutcome {
    Bytes(Vec<u8>),
    NotRegular,
}

/// The whole content of the regular file at `path`. The file is opened so that the
/// open itself cannot wait (a file replaced by a named pipe after the listing looked
/// at it would otherwise block the batch until a writer came), and read only if what
/// was opened is a regular file.
fn read_regular(path: &Path) -> std::io::Result<ReadOutcome> {
    use std::io::Read;

    let mut options = std::fs::File::options();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(ReadOutcome::NotRegular);
    }
    // O_NONBLOCK has no effect on regular files: the read below is an ordinary one.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(ReadOutcome::Bytes(bytes))
}

/// The lines of the file at `path` in chunks, or `None` (reported) if it cannot be
/// read or is not a regular file.
fn read_lines(path: &Path) -> Option<Vec<Vec<String>>> {
    let bytes = match read_regular(path) {
        Ok(ReadOutcome::Bytes(bytes)) => bytes,
        Ok(ReadOutcome::NotRegular) => {
            warn_not_regular(path);
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "text_file_stream: skipping {}: cannot read it: {e}",
                path.display()
            );
            return None;
        }
    };
    let (lines, invalid) = split_lines_in_chunks(&bytes, CHUNK_BYTES);
    if invalid > 0 {
        tracing::warn!(
            "text_file_stream: {invalid} line(s) of {} were not valid UTF-8 and were decoded with U+FFFD replacement characters",
            path.display()
        );
    }
    Some(lines)
}
