//! Matching a checkpoint's streams with the streams of the program recovering it.
//!
//! Only what a checkpoint restores must match: the inputs (their positions and
//! unfinished batches) and the stateful streams (their state). Adding a `map` or an
//! output operation between runs does not break recovery, as it does in Spark. A
//! stream with a name matches the stream of that name wherever it is defined; the
//! others match in the order they were defined, and must be of the same kind.

use std::path::Path;

use super::StreamIdentity;
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
}
