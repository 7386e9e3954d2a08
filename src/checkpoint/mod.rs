//! Checkpoints: what a restarted program needs to continue exactly where the last one
//! left off.
//!
//! Every checkpoint interval, after a batch completes, one file
//! `checkpoint-<batch time in ms>` is written to the checkpoint directory ([`file`]
//! gives its format). It holds the batch grid, the last completed batch, the state of
//! every stateful stream, the position of every input (for replayable sources: the
//! files already read, the rows already generated) and the batches generated but not
//! yet completed, with what each input gave them. The last few files are kept; a
//! damaged newest file is reported and the one before it used.
//!
//! Recovery ([`recovery`]) re-runs the program's builder, matches its inputs and
//! stateful streams with the checkpoint's (by name, else by order and kind), restores
//! them, and re-runs the unfinished batches from their recorded inputs.

mod file;
pub(crate) mod recovery;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::Time;

pub(crate) use file::sync_directory;

/// How many checkpoint files are kept.
pub(crate) const KEEP_CHECKPOINTS: usize = 3;

/// File names of checkpoints start with this.
const FILE_PREFIX: &str = "checkpoint-";

/// Encodes a value with bincode 2 in serde mode.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> std::result::Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
}

/// Decodes a value encoded by [`encode`]; every byte must be used.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the data",
            bytes.len() - used
        ));
    }
    Ok(value)
}

/// How states are encoded: 1 is bincode 2's standard configuration in serde mode.
/// Checkpoints record it, so that a build encoding differently refuses them.
pub(crate) const STATE_CODEC: u32 = 1;

/// What the stateful streams of a checkpoint store (checkpoint format 2 on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateTypes {
    /// [`STATE_CODEC`] of the build that wrote the checkpoint.
    pub(crate) codec: u32,
    /// Per entry of [`Checkpoint::states`], in order: what it stores, as
    /// [`std::any::type_name`] names it, for example `(alloc::string::String, i64)`.
    pub(crate) stored: Vec<String>,
}

/// Which stream a piece of checkpointed data belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamIdentity {
    /// Registration order in the program that wrote the checkpoint.
    pub(crate) id: usize,
    /// The operation that made it, for example `update_state_by_key`.
    pub(crate) kind: String,
    /// Its name, if it was given one with `.name(..)`.
    pub(crate) name: Option<String>,
}

impl StreamIdentity {
    pub(crate) fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("#{} {} {name:?}", self.id, self.kind),
            None => format!("#{} {}", self.id, self.kind),
        }
    }
}

/// A batch that was generated but had not completed when the checkpoint was written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingBatch {
    pub(crate) time: Time,
    /// Per input, in checkpoint order: what it gave the batch, if it can give it again.
    pub(crate) inputs: Vec<Option<Vec<u8>>>,
}

/// The contents of one checkpoint file.
#[derive(Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) batch_interval_ms: i64,
    /// One interval before the first batch: the batch grid.
    pub(crate) zero: Time,
    /// The last completed batch: states are as of this batch.
    pub(crate) completed: Time,
    /// The last generated batch: input positions are as of this batch.
    pub(crate) generated: Time,
    pub(crate) inputs: Vec<(StreamIdentity, Option<Vec<u8>>)>,
    pub(crate) states: Vec<(StreamIdentity, Vec<u8>)>,
    pub(crate) pending: Vec<PendingBatch>,
    /// `None` in checkpoints of format 1, written before the types were recorded.
    /// Last, so that a format-1 payload is a format-2 one without it.
    pub(crate) state_types: Option<StateTypes>,
}

/// A directory of checkpoint files.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointDir {
    path: PathBuf,
}

impl CheckpointDir {
    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn new(path: &Path) -> Self {
        CheckpointDir {
            path: path.to_path_buf(),
        }
    }

    /// Creates the directory if needed and checks that files can be written in it.
    pub(crate) fn ensure_writable(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .map_err(|e| Error::io("cannot create checkpoint directory", &self.path, e))?;
        let probe = self.path.join(".write-test");
        std::fs::write(&probe, b"ok")
            .map_err(|e| Error::io("cannot write in checkpoint directory", &self.path, e))?;
        let _ = std::fs::remove_file(probe);
        Ok(())
    }

    /// Writes `checkpoint` and removes all but the newest few.
    pub(crate) fn write(&self, checkpoint: &Checkpoint) -> Result<()> {
        let payload = encode(checkpoint).map_err(|reason| Error::Codec {
            action: "encode",
            stream: "checkpoint metadata".into(),
            reason,
        })?;
        let name = format!("{FILE_PREFIX}{}", checkpoint.completed.as_millis());
        file::write_atomically(&self.path, &name, &payload)?;
        for (_, old) in self.list()?.into_iter().skip(KEEP_CHECKPOINTS) {
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!("cannot remove old checkpoint {}: {e}", old.display());
            }
        }
        Ok(())
    }

    /// Checkpoint files, newest first.
    fn list(&self) -> Result<Vec<(i64, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list checkpoint directory", &self.path, e)),
        };
        let mut files: Vec<(i64, PathBuf)> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name();
                let millis = name.to_str()?.strip_prefix(FILE_PREFIX)?.parse().ok()?;
                Some((millis, entry.path()))
            })
            .collect();
        files.sort_by_key(|(millis, _)| std::cmp::Reverse(*millis));
        Ok(files)
    }

    /// The newest checkpoint that reads back whole. Damaged newer ones are reported in
    /// the log; if every file is damaged, the newest one's damage is the error.
    pub(crate) fn load_latest(&self) -> Result<Option<Checkpoint>> {
        let mut first_error = None;
        for (_, path) in self.list()? {
            let loaded = file::read_verified(&path).and_then(|(version, mut payload)| {
                if version == 1 {
                    // Format 1 ends before `state_types`: read it as absent.
                    payload.extend(encode(&None::<StateTypes>).unwrap_or_default());
                }
                decode::<Checkpoint>(&payload).map_err(|reason| Error::CorruptCheckpoint {
                    path: path.clone(),
                    reason: format!("cannot decode: {reason}"),
                })
            });
            match loaded {
                Ok(checkpoint) => return Ok(Some(checkpoint)),
                Err(e) => {
                    tracing::warn!("{e}; trying the previous checkpoint");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint_at(completed: i64) -> Checkpoint {
        Checkpoint {
            batch_interval_ms: 1000,
            zero: Time::from_millis(0),
            completed: Time::from_millis(completed),
            generated: Time::from_millis(completed),
            inputs: Vec::new(),
            states: vec![(
                StreamIdentity {
                    id: 1,
                    kind: "update_state_by_key".into(),
                    name: None,
                },
                vec![completed as u8],
            )],
            pending: Vec::new(),
            state_types: Some(StateTypes {
                codec: STATE_CODEC,
                stored: vec!["(alloc::string::String, i64)".into()],
            }),
        }
    }

    #[test]
    fn keeps_the_newest_few() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = CheckpointDir::new(dir.path());
        for t in 1..=5 {
            checkpoints.write(&checkpoint_at(t * 1000)).unwrap();
        }
        let kept: Vec<i64> = checkpoints
            .list()
            .unwrap()
            .iter()
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(kept, vec![5000, 4000, 3000]);
        assert_eq!(
            checkpoints.load_latest().unwrap().unwrap().completed,
            Time::from_millis(5000)
        );
    }

    #[test]
    fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = CheckpointDir::new(dir.path());
        checkpoints.write(&checkpoint_at(1000)).unwrap();
        checkpoints.write(&checkpoint_at(2000)).unwrap();
        std::fs::write(dir.path().join("checkpoint-2000"), b"DSTRMCKP broken").unwrap();
        let loaded = checkpoints.load_latest().unwrap().unwrap();
        assert_eq!(loaded.completed, Time::from_millis(1000));
        assert_eq!(loaded.states[0].1, vec![232u8]);

        std::fs::write(dir.path().join("checkpoint-1000"), b"junk").unwrap();
        let err = checkpoints.load_latest().err().unwrap();
        assert!(matches!(err, Error::CorruptCheckpoint { .. }), "{err}");
        assert!(err.to_string().contains("checkpoint-2000"), "{err}");
    }

    #[test]
    fn a_format_1_checkpoint_reads_without_state_types() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = checkpoint_at(1000);
        old.state_types = None;
        let mut payload = encode(&old).unwrap();
        // Format 1 had no `state_types`: drop the encoded `None` from the end.
        assert_eq!(payload.pop(), Some(0));
        file::write_atomically(dir.path(), "checkpoint-1000", &payload).unwrap();
        let path = dir.path().join("checkpoint-1000");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();

        let loaded = CheckpointDir::new(dir.path())
            .load_latest()
            .unwrap()
            .unwrap();
        assert_eq!(loaded.completed, Time::from_millis(1000));
        assert_eq!(loaded.states, old.states);
        assert_eq!(loaded.state_types, None);

        let current = checkpoint_at(2000);
        CheckpointDir::new(dir.path()).write(&current).unwrap();
        let loaded = CheckpointDir::new(dir.path())
            .load_latest()
            .unwrap()
            .unwrap();
        assert_eq!(loaded.state_types, current.state_types);
    }

    #[test]
    fn an_empty_or_missing_directory_has_no_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            CheckpointDir::new(dir.path())
                .load_latest()
                .unwrap()
                .is_none()
        );
        let missing = dir.path().join("nope");
        assert!(
            CheckpointDir::new(&missing)
                .load_latest()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn encoding_round_trips() {
        let value = (vec![("a".to_string(), 1i64)], Some(3u8));
        let bytes = encode(&value).unwrap();
        assert_eq!(
            decode::<(Vec<(String, i64)>, Option<u8>)>(&bytes).unwrap(),
            value
        );
        assert!(decode::<u8>(&[1, 2]).is_err());
    }
}
