//! Matching a checkpoint's streams with the streams of the program recovering it.
//!
//! Only what a checkpoint restores must match: the inputs (their positions and
//! unfinished batches) and the stateful streams (their state). Adding a `map` or an
//! output operation between runs does not break recovery, as it does in Spark. A
//! stream with a name matches the stream of that name wherever it is defined; the
//! others match in the order they were defined, and must be of the same kind. A
//! matched stateful stream must also store the types the checkpoint recorded for it.

use std::path::Path;

use super::{STATE_CODEC, StateTypes, StreamIdentity};
use crate::error::{Error, Result};

/// For each saved stream, the index of the program's stream it matches.
pub(crate) fn match_streams(
    dir: &Path,
    category: &str,
    saved: &[StreamIdentity],
    current: &[StreamIdentity],
) -> Result<Vec<usize>> {
    let mismatch = |difference: String| Error::CheckpointMismatch {
        dir: dir.to_path_buf(),
        difference,
    };
    let mut taken = vec![false; current.len()];
    let mut unnamed = current
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name.is_none())
        .map(|(i, _)| i);
    let mut matches = Vec::with_capacity(saved.len());
    for stream in saved {
        let found = match &stream.name {
            Some(name) => current
                .iter()
                .position(|c| c.name.as_ref() == Some(name))
                .ok_or_else(|| {
                    mismatch(format!(
                        "the checkpoint has the {category} {}, which this program does not define",
                        stream.describe()
                    ))
                })?,
            None => unnamed.next().ok_or_else(|| {
                mismatch(format!(
                    "the checkpoint has the {category} {}, which this program does not define",
                    stream.describe()
                ))
            })?,
        };
        let here = &current[found];
        if here.kind != stream.kind {
            return Err(mismatch(format!(
                "the {category} {} of the checkpoint is {} in this program",
                stream.describe(),
                here.describe()
            )));
        }
        taken[found] = true;
        matches.push(found);
    }
    if let Some(extra) = taken.iter().position(|t| !t) {
        return Err(mismatch(format!(
            "this program defines the {category} {}, which the checkpoint does not have",
            current[extra].describe()
        )));
    }
    Ok(matches)
}

/// A program's stateful stream, as [`check_state_types`] sees it.
pub(crate) struct Stored {
    pub(crate) stream: StreamIdentity,
    /// What it stores, as [`std::any::type_name`] names it.
    pub(crate) types: &'static str,
    /// Whether it accepts other recorded types (`accept_checkpointed_types`).
    pub(crate) accepts_any: bool,
}

/// Checks that each stateful stream stores the types the checkpoint recorded for the
/// state it is given: `matched[i]` is the stream that `saved.stored[i]` goes to. A
/// checkpoint of format 1 recorded no types: it is accepted, with a warning.
pub(crate) fn check_state_types(
    dir: &Path,
    saved: Option<&StateTypes>,
    matched: &[Stored],
) -> Result<()> {
    let mismatch = |difference: String| Error::CheckpointMismatch {
        dir: dir.to_path_buf(),
        difference,
    };
    let Some(saved) = saved else {
        if !matched.is_empty() {
            tracing::warn!(
                "the checkpoint in {} was written before dstream recorded state types: the types of its {} stateful stream(s) cannot be checked, and a changed type would be misread; the next checkpoint records them",
                dir.display(),
                matched.len()
            );
        }
        return Ok(());
    };
    if saved.codec != STATE_CODEC {
        return Err(mismatch(format!(
            "its state was encoded with state codec {}, and this build uses codec {STATE_CODEC}",
            saved.codec
        )));
    }
    if saved.stored.len() != matched.len() {
        return Err(mismatch(format!(
            "it records the types of {} stateful stream(s) but holds the state of {}",
            saved.stored.len(),
            matched.len()
        )));
    }
    for (types, here) in saved.stored.iter().zip(matched) {
        if types == here.types {
            continue;
        }
        if !here.accepts_any {
            return Err(Error::StateTypeMismatch {
                dir: dir.to_path_buf(),
                stream: here.stream.describe(),
                current: here.types.to_string(),
                saved: types.clone(),
            });
        }
        tracing::warn!(
            "stream {} stores {} and the checkpoint holds {types}: accepted as asked",
            here.stream.describe(),
            here.types
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(id: usize, kind: &str, name: Option<&str>) -> StreamIdentity {
        StreamIdentity {
            id,
            kind: kind.into(),
            name: name.map(String::from),
        }
    }

    #[test]
    fn unnamed_streams_match_in_order() {
        let saved = [
            stream(3, "update_state_by_key", None),
            stream(7, "map_with_state", None),
        ];
        let current = [
            stream(4, "update_state_by_key", None),
            stream(9, "map_with_state", None),
        ];
        assert_eq!(
            match_streams(Path::new("c"), "stateful stream", &saved, &current).unwrap(),
            vec![0, 1]
        );
    }

    #[test]
    fn named_streams_match_wherever_they_are() {
        let saved = [
            stream(3, "update_state_by_key", Some("totals")),
            stream(7, "map_with_state", None),
        ];
        let current = [
            stream(2, "map_with_state", None),
            stream(5, "update_state_by_key", Some("totals")),
        ];
        assert_eq!(
            match_streams(Path::new("c"), "stateful stream", &saved, &current).unwrap(),
            vec![1, 0]
        );
    }

    #[test]
    fn the_first_difference_is_named() {
        let saved = [stream(3, "update_state_by_key", None)];
        let current = [stream(3, "map_with_state", None)];
        let err = match_streams(Path::new("ckpt"), "stateful stream", &saved, &current)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("#3 update_state_by_key of the checkpoint is #3 map_with_state"),
            "{err}"
        );
        assert!(err.contains("ckpt"), "{err}");

        let err = match_streams(
            Path::new("c"),
            "input stream",
            &[],
            &[stream(0, "text_file_stream", None)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("defines the input stream #0 text_file_stream"),
            "{err}"
        );

        let saved = [stream(1, "update_state_by_key", Some("totals"))];
        let err = match_streams(Path::new("c"), "stateful stream", &saved, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"totals\""), "{err}");
    }

    #[test]
    fn state_types_must_match_unless_accepted_or_unrecorded() {
        let stored = |types: &'static str, accepts_any: bool| Stored {
            stream: stream(2, "update_state_by_key", None),
            types,
            accepts_any,
        };
        let saved = StateTypes {
            codec: STATE_CODEC,
            stored: vec!["(alloc::string::String, i64)".into()],
        };
        let dir = Path::new("ckpt");
        let same = [stored("(alloc::string::String, i64)", false)];
        assert!(check_state_types(dir, Some(&saved), &same).is_ok());
        let changed = [stored("(alloc::string::String, u64)", false)];
        let err = check_state_types(dir, Some(&saved), &changed).unwrap_err();
        assert!(matches!(err, Error::StateTypeMismatch { .. }), "{err}");
        assert!(
            err.to_string().contains(
                "stream #2 update_state_by_key stores (alloc::string::String, u64) but the checkpoint holds (alloc::string::String, i64)"
            ),
            "{err}"
        );
        let accepted = [stored("(alloc::string::String, u64)", true)];
        assert!(check_state_types(dir, Some(&saved), &accepted).is_ok());
        assert!(check_state_types(dir, None, &changed).is_ok());

        let other_codec = StateTypes { codec: 7, ..saved };
        let err = check_state_types(dir, Some(&other_codec), &same)
            .unwrap_err()
            .to_string();
        assert!(err.contains("state codec 7"), "{err}");
    }
}
