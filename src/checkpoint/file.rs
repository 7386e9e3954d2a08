//! The checkpoint file format, and writing files so that a crash never leaves a
//! half-written one.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "DSTRMCKP"
//! 8       4     format version, little-endian (this build writes 2, reads 1 and 2)
//! 12      8     payload length, little-endian
//! 20      4     CRC-32 of the payload, little-endian
//! 24      ...   payload (bincode 2, serde mode)
//! ```
//!
//! Format 2 added the types each stateful stream stores at the end of the payload;
//! a format-1 payload is a format-2 payload without them.
//!
//! A file is written under a hidden temporary name, synced, renamed into place, and
//! the directory synced: the rename is atomic, so a reader sees the old file or the
//! whole new one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"DSTRMCKP";
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The oldest format this build reads.
const OLDEST_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 24;

/// Writes `payload` to `dir/name` atomically, with header and checksum.
pub(crate) fn write_atomically(dir: &Path, name: &str, payload: &[u8]) -> Result<()> {
    let temporary = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(&header)?;
        file.write_all(payload)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(Error::io("cannot write checkpoint", &temporary, e));
    }
    fs::rename(&temporary, &target)
        .map_err(|e| Error::io("cannot rename checkpoint into place", &target, e))?;
    sync_directory(dir);
    Ok(())
}

/// Makes a rename in `dir` durable. Best effort: not every platform can sync a
/// directory.
pub(crate) fn sync_directory(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Reads a file written by [`write_atomically`], checking its header and checksum;
/// returns its format version and payload.
pub(crate) fn read_verified(path: &Path) -> Result<(u32, Vec<u8>)> {
    let bytes = fs::read(path).map_err(|e| Error::io("cannot read checkpoint", path, e))?;
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(corrupt("not a dstream checkpoint file (bad header)".into()));
    }
    let field = |range: std::ops::Range<usize>| -> Vec<u8> { bytes[range].to_vec() };
    let version = u32::from_le_bytes(field(8..12).try_into().unwrap_or_default());
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(corrupt(format!(
            "written in checkpoint format {version}; this build reads formats {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}"
        )));
    }
    let length = u64::from_le_bytes(field(12..20).try_into().unwrap_or_default());
    let checksum = u32::from_le_bytes(field(20..24).try_into().unwrap_or_default());
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != length {
        return Err(corrupt(format!(
            "truncated: {} payload bytes of {length}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != checksum {
        return Err(corrupt("checksum mismatch: the file is damaged".into()));
    }
    Ok((version, payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "c", b"hello state").unwrap();
        let path = dir.path().join("c");
        assert_eq!(
            read_verified(&path).unwrap(),
            (FORMAT_VERSION, b"hello state".to_vec())
        );

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = read_verified(&path).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");

        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(
            read_verified(&path)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );

        fs::write(&path, b"garbage").unwrap();
        assert!(
            read_verified(&path)
                .unwrap_err()
                .to_string()
                .contains("bad header")
        );
    }

    #[test]
    fn refuses_other_format_versions() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "c", b"x").unwrap();
        let path = dir.path().join("c");
        let mut bytes = fs::read(&path).unwrap();
        bytes[8] = 9;
        fs::write(&path, &bytes).unwrap();
        let err = read_verified(&path).unwrap_err().to_string();
        assert!(err.contains("format 9"), "{err}");
    }

    #[test]
    fn leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "c", b"x").unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["c"]);
    }
}
