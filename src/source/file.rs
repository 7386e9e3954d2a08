//! File streams: `text_file_stream` (the lines of new files appearing in a directory)
//! and `binary_records_stream` (their fixed-length records).
//!
//! At start the directory's current files are noted and ignored, unless
//! [`FileStreamOptions::new_files_only`] is `false`: then they are read in the first
//! batch. At every batch time the directory is listed; each file not seen before is
//! read once, whole, in modification-time order (then by name), in parallel. Names
//! starting with `.` or `_` are skipped, so a writer can create `.name.tmp` and rename
//! it into place: the rename is atomic, and a reader never sees half a file. A file that
//! cannot be read is reported in the log and skipped, and so is anything that is not a
//! regular file (a directory, a named pipe, a socket, a device): reading a pipe with no
//! writer would wait for ever, and with it the batch and every batch after it.
//!
//! The directory may be a pattern: `*` and `?` in its components match directories
//! (`logs/*/` watches every directory in `logs`), listed again at every batch, so
//! directories created later that match are watched too. Files are recorded by their
//! path relative to the part of the pattern before the first wildcard (for a plain
//! directory, by name), in checkpoints as in memory.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rayon::prelude::*;

use super::lines::{TextBlock, split_lines_in_chunks};
use super::{Cut, InputSource, ReceivedCounter, SourceContext};
use crate::error::{Error, Result};
use crate::rdd::blocks::Block;
use crate::rdd::blocks::into_partitions;
use crate::rdd::{ExecEnv, Rdd};
use crate::time::Time;

/// How a file stream starts: the options of
/// [`text_file_stream_with`](crate::StreamingContext::text_file_stream_with) and
/// [`binary_records_stream_with`](crate::StreamingContext::binary_records_stream_with).
///
/// ```
/// use dstream::{FileStreamOptions, StreamingContext};
/// use std::time::Duration;
/// # let dir = tempfile::tempdir().unwrap();
/// # let incoming = dir.path();
/// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
/// // The files already in `incoming` are read in the first batch, then new ones.
/// let lines = ssc.text_file_stream_with(incoming, FileStreamOptions::new().new_files_only(false));
/// # let _ = lines;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStreamOptions {
    new_files_only: bool,
}

impl Default for FileStreamOptions {
    fn default() -> Self {
        FileStreamOptions {
            new_files_only: true,
        }
    }
}

impl FileStreamOptions {
    /// The defaults: only files that appear after start are read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether only files that appear after start are read (`true`, the default, as
    /// `text_file_stream` does) or the files already there too, all of them, in the
    /// first batch (`false`). Either way each file is read once, also across a restart
    /// from a checkpoint.
    ///
    /// ```
    /// use dstream::FileStreamOptions;
    /// let all = FileStreamOptions::new().new_files_only(false);
    /// assert!(!all.is_new_files_only());
    /// assert!(FileStreamOptions::new().is_new_files_only());
    /// ```
    pub fn new_files_only(mut self, new_files_only: bool) -> Self {
        self.new_files_only = new_files_only;
        self
    }

    /// See [`new_files_only`](Self::new_files_only).
    pub fn is_new_files_only(&self) -> bool {
        self.new_files_only
    }
}

/// How a file stream turns a file into elements.
pub(crate) trait FileFormat: Send + Sync + 'static {
    /// What a file is read into: blocks of elements.
    type Block: Block;

    /// The stream's name in messages.
    fn kind(&self) -> &'static str;

    /// The elements of the file at `path` in blocks, or `None` (reported) if it cannot
    /// be read or used.
    fn read(&self, path: &Path) -> Option<Vec<Self::Block>>;
}

/// The elements a file stream of format `F` gives.
type Item<F> = <<F as FileFormat>::Block as Block>::Item;

/// Lines of text (`text_file_stream`).
pub(crate) struct TextLines;

impl FileFormat for TextLines {
    type Block = TextBlock;

    fn kind(&self) -> &'static str {
        "text_file_stream"
    }

    fn read(&self, path: &Path) -> Option<Vec<TextBlock>> {
        let bytes = read_file(self.kind(), path)?;
        let (lines, invalid) = split_lines_in_chunks(&bytes, CHUNK_BYTES);
        if invalid > 0 {
            tracing::warn!(
                "text_file_stream: {invalid} line(s) of {} were not valid UTF-8 and were decoded with U+FFFD replacement characters",
                path.display()
            );
        }
        Some(lines)
    }
}

/// Fixed-length records (`binary_records_stream`).
pub(crate) struct BinaryRecords {
    record_length: usize,
}

impl BinaryRecords {
    /// Records of `record_length` bytes; zero is refused.
    pub(crate) fn new(directory: &Path, record_length: usize) -> Result<Self> {
        if record_length == 0 {
            return Err(Error::InvalidRecordLength {
                directory: directory.to_path_buf(),
            });
        }
        Ok(BinaryRecords { record_length })
    }
}

impl FileFormat for BinaryRecords {
    type Block = Vec<Vec<u8>>;

    fn kind(&self) -> &'static str {
        "binary_records_stream"
    }

    fn read(&self, path: &Path) -> Option<Vec<Vec<Vec<u8>>>> {
        let bytes = read_file(self.kind(), path)?;
        let length = self.record_length;
        let left_over = bytes.len() % length;
        if left_over != 0 {
            tracing::warn!(
                "binary_records_stream: skipping {}: its {} bytes are not a whole number of {length}-byte records ({left_over} bytes left over); write whole records only, move each file in complete (write it as `.name.tmp` and rename it), and check the record length",
                path.display(),
                bytes.len()
            );
            return None;
        }
        let per_chunk = (CHUNK_BYTES / length).max(1) * length;
        Some(
            bytes
                .chunks(per_chunk)
                .map(|chunk| chunk.chunks_exact(length).map(<[u8]>::to_vec).collect())
                .collect(),
        )
    }
}

/// A component of a watched path: a name, or a pattern with `*` or `?`.
enum Part {
    Name(OsString),
    Pattern(String),
}

/// What a listing found: the candidate files, relative to the base directory, and the
/// watched directories that could not be listed (their files are kept as seen).
struct Listing {
    files: Vec<PathBuf>,
    failed: Vec<PathBuf>,
}

pub(crate) struct FileInput<F> {
    /// The path as given, for messages.
    given: PathBuf,
    /// The part of the path before the first wildcard.
    base: PathBuf,
    /// The rest, from the first wildcard on (empty for a plain directory).
    parts: Vec<Part>,
    format: F,
    options: FileStreamOptions,
    /// Files present at the last listing (or at start), relative to `base`, so never
    /// read again while they stay. A file that disappears and comes back is new.
    seen: Mutex<HashSet<PathBuf>>,
    /// Whether `seen` came from a checkpoint, so `start` must not list afresh.
    restored: AtomicBool,
    /// Whether the pattern matched no directory at the last listing (reported once).
    matched_nothing: AtomicBool,
    received: Arc<ReceivedCounter>,
}

fn has_wildcard(name: &OsStr) -> bool {
    let text = name.to_string_lossy();
    text.contains('*') || text.contains('?')
}

fn is_hidden(name: &OsStr) -> bool {
    let text = name.to_string_lossy();
    text.starts_with('.') || text.starts_with('_')
}

impl<F: FileFormat> FileInput<F> {
    pub(crate) fn new(
        dir: &Path,
        format: F,
        options: FileStreamOptions,
        received: Arc<ReceivedCounter>,
    ) -> Self {
        let mut base = PathBuf::new();
        let mut parts = Vec::new();
        for component in dir.components() {
            let name = component.as_os_str();
            match component {
                Component::Normal(name) if !parts.is_empty() || has_wildcard(name) => {
                    parts.push(if has_wildcard(name) {
                        Part::Pattern(name.to_string_lossy().into_owned())
                    } else {
                        Part::Name(name.to_os_string())
                    });
                }
                _ if parts.is_empty() => base.push(name),
                _ => parts.push(Part::Name(name.to_os_string())),
            }
        }
        if base.as_os_str().is_empty() && !parts.is_empty() {
            base.push(".");
        }
        FileInput {
            given: dir.to_path_buf(),
            base,
            parts,
            format,
            options,
            seen: Mutex::new(HashSet::new()),
            restored: AtomicBool::new(false),
            matched_nothing: AtomicBool::new(false),
            received,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn describe(&self) -> String {
        format!("{} {}", self.format.kind(), self.given.display())
    }

    /// The watched directories now, relative to `base` (`""` is `base` itself).
    fn directories(&self) -> Result<Vec<PathBuf>> {
        let mut dirs = vec![PathBuf::new()];
        for (i, part) in self.parts.iter().enumerate() {
            let mut next = Vec::new();
            for dir in dirs {
                match part {
                    Part::Name(name) => {
                        let rel = dir.join(name);
                        if self.base.join(&rel).is_dir() {
                            next.push(rel);
                        }
                    }
                    Part::Pattern(pattern) => {
                        let full = self.base.join(&dir);
                        let entries = match std::fs::read_dir(&full) {
                            Ok(entries) => entries,
                            // Only the base itself must exist; a directory that went
                            // away meanwhile just matches nothing.
                            Err(e) if i == 0 => {
                                return Err(Error::io("cannot list directory", &full, e));
                            }
                            Err(_) => continue,
                        };
                        for entry in entries.filter_map(|entry| entry.ok()) {
                            let name = entry.file_name();
                            if !is_hidden(&name)
                                && wildcard_match(pattern, &name.to_string_lossy())
                                && full.join(&name).is_dir()
                            {
                                next.push(dir.join(name));
                            }
                        }
                    }
                }
            }
            dirs = next;
        }
        dirs.sort();
        Ok(dirs)
    }

    /// The candidate files in the watched directories now.
    fn list(&self) -> Result<Listing> {
        let dirs = self.directories()?;
        if !self.parts.is_empty() {
            let nothing = dirs.is_empty();
            if nothing && !self.matched_nothing.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    "{}: the pattern matches no directory yet; directories that come to match it will be watched",
                    self.describe()
                );
            } else if !nothing {
                self.matched_nothing.store(false, Ordering::SeqCst);
            }
        }
        let mut listing = Listing {
            files: Vec::new(),
            failed: Vec::new(),
        };
        for dir in dirs {
            let full = self.base.join(&dir);
            let entries = match std::fs::read_dir(&full) {
                Ok(entries) => entries,
                Err(e) if self.parts.is_empty() => {
                    return Err(Error::io("cannot list directory", &full, e));
                }
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot list directory {}: {e}; trying again next batch",
                        self.describe(),
                        full.display()
                    );
                    listing.failed.push(dir);
                    continue;
                }
            };
            listing.files.extend(
                entries
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name())
                    .filter(|name| !is_hidden(name))
                    .map(|name| dir.join(name)),
            );
        }
        Ok(listing)
    }

    /// New files since the last listing, oldest first, and notes the listing.
    fn take_new_files(&self) -> Vec<PathBuf> {
        let listing = match self.list() {
            Ok(listing) => listing,
            Err(e) => {
                tracing::warn!("{}: {e}; no new files this batch", self.format.kind());
                return Vec::new();
            }
        };
        let mut seen = self.seen();
        let mut new: Vec<(SystemTime, PathBuf)> = Vec::new();
        for rel in &listing.files {
            if seen.contains(rel) {
                continue;
            }
            let path = self.base.join(rel);
            match std::fs::metadata(&path) {
                // Noted in `seen` below like any name, so reported once while it stays.
                Ok(meta) if !meta.is_file() => warn_not_regular(self.format.kind(), &path),
                Ok(meta) => new.push((
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    rel.clone(),
                )),
                // Unreadable entries (a broken link, a file removed meanwhile) are read
                // below anyway, so that the reason is reported once.
                Err(_) => new.push((SystemTime::UNIX_EPOCH, rel.clone())),
            }
        }
        let kept: Vec<PathBuf> = seen
            .iter()
            .filter(|rel| {
                let parent = rel.parent().unwrap_or(Path::new(""));
                listing.failed.iter().any(|dir| dir == parent)
            })
            .cloned()
            .collect();
        *seen = listing.files.into_iter().chain(kept).collect();
        new.sort();
        new.into_iter().map(|(_, rel)| rel).collect()
    }

    /// Reads `files` (relative to `base`) in parallel (large files in parallel chunks
    /// too), and lays their elements out in order over the context's partitions.
    fn read(&self, files: &[PathBuf], env: &Arc<ExecEnv>) -> (Rdd<Item<F>>, u64) {
        let chunks: Vec<F::Block> = env.run(|| {
            files
                .par_iter()
                .filter_map(|rel| self.format.read(&self.base.join(rel)))
                .collect::<Vec<_>>()
                .into_iter()
                .flatten()
                .collect()
        });
        let records = chunks.iter().map(|c| c.len() as u64).sum();
        self.received.add(records);
        let partitions = into_partitions(chunks, env.parallelism());
        (Rdd::from_blocks_in(partitions, env.clone()), records)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<PathBuf>> {
        let paths: Vec<Vec<u8>> =
            crate::checkpoint::decode(bytes).map_err(|reason| Error::Codec {
                action: "decode",
                stream: self.describe(),
                reason,
            })?;
        Ok(paths.into_iter().map(path_from_bytes).collect())
    }
}

impl<F: FileFormat> InputSource<Item<F>> for FileInput<F> {
    fn start(&self, _ctx: &SourceContext) -> Result<()> {
        let listing = self.list()?;
        if !self.restored.load(Ordering::SeqCst) && self.options.new_files_only {
            *self.seen() = listing.files.into_iter().collect();
        }
        Ok(())
    }

    /// Reads the new files; the replay record is their paths, in order.
    fn cut(&self, _time: Time, env: &Arc<ExecEnv>) -> Cut<Item<F>> {
        let files = self.take_new_files();
        let paths: Vec<Vec<u8>> = files.iter().map(|p| path_bytes(p)).collect();
        let (rdd, records) = self.read(&files, env);
        Cut {
            rdd,
            records,
            replay: crate::checkpoint::encode(&paths).ok(),
        }
    }

    fn position(&self) -> Option<Vec<u8>> {
        let paths: Vec<Vec<u8>> = self.seen().iter().map(|p| path_bytes(p)).collect();
        crate::checkpoint::encode(&paths).ok()
    }

    fn restore(&self, position: &[u8]) -> Result<()> {
        *self.seen() = self.decode(position)?.into_iter().collect();
        self.restored.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn replay(&self, replay: &[u8], env: &Arc<ExecEnv>) -> Option<(Rdd<Item<F>>, u64)> {
        let files = self.decode(replay).ok()?;
        Some(self.read(&files, env))
    }

    fn has_pending(&self) -> bool {
        let seen = self.seen();
        self.list()
            .map(|listing| listing.files.iter().any(|rel| !seen.contains(rel)))
            .unwrap_or(false)
    }

    fn stop(&self) {}
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters and `?`
/// any one character.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and where in `name` it is now tried to end.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// A relative path as bytes, exactly (names need not be UTF-8). For a plain
/// directory this is the file's name, as checkpoints have always recorded it.
fn path_bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

/// A relative path from [`path_bytes`].
#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(<OsString as std::os::unix::ffi::OsStringExt>::from_vec(
        bytes,
    ))
}

/// A relative path from [`path_bytes`].
#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

/// How much of a file one task decodes: large files are split so that one file does
/// not leave the other threads idle.
const CHUNK_BYTES: usize = 1 << 20;

/// Reports that `path` is skipped because it is not a regular file.
fn warn_not_regular(kind: &str, path: &Path) {
    tracing::warn!(
        "{kind}: skipping {}: it is not a regular file",
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

/// The bytes of the file at `path`, or `None` (reported) if it cannot be read or is
/// not a regular file.
fn read_file(kind: &str, path: &Path) -> Option<Vec<u8>> {
    match read_regular(path) {
        Ok(ReadOutcome::Bytes(bytes)) => Some(bytes),
        Ok(ReadOutcome::NotRegular) => {
            warn_not_regular(kind, path);
            None
        }
        Err(e) => {
            tracing::warn!("{kind}: skipping {}: cannot read it: {e}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcards_match_within_a_name() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("2024-??", "2024-05"));
        assert!(!wildcard_match("2024-??", "2024-5"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match("*.d", "x.d.d"));
        assert!(wildcard_match("h?st-*", "höst-1"));
        assert!(!wildcard_match("plain", "plainer"));
    }
}
