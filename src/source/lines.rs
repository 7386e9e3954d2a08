//! Splitting bytes into text lines, shared by the socket and file sources.
//!
//! Lines end at `\n`; a `\r` before it is dropped. A line that is not valid UTF-8 is
//! decoded lossily (invalid bytes become U+FFFD) and counted, so the caller can warn;
//! it is never an error.

/// Decodes one line (without its `\n`), counting it in `invalid` if it was not UTF-8.
pub(crate) fn decode_line(bytes: &[u8], invalid: &mut u64) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            *invalid += 1;
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// Decodes every complete line of `bytes` into `lines` and returns how many bytes they
/// used; the rest is an unfinished line. `scan_from` is where new bytes begin (no `\n`
/// lies before it in the unfinished part).
pub(crate) fn split_complete_lines(
    bytes: &[u8],
    scan_from: usize,
    lines: &mut Vec<String>,
    invalid: &mut u64,
) -> usize {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &bytes[scan_from..]) {
        let end = scan_from + end;
        lines.push(decode_line(&bytes[start..end], invalid));
        start = end + 1;
    }
    start
}

/// All lines of a whole text, the last one with or without a final `\n`.
pub(crate) fn split_all_lines(bytes: &[u8], invalid: &mut u64) -> Vec<String> {
    let mut lines = Vec::new();
    let used = split_complete_lines(bytes, 0, &mut lines, invalid);
    if used < bytes.len() {
        lines.push(decode_line(&bytes[used..], invalid));
    }
    lines
}

/// The lines of a whole text, decoded in parallel in chunks of about `chunk_bytes`
/// (cut after a `\n`), in order, and how many were not UTF-8. Runs on the caller's
/// rayon pool.
pub(crate) fn split_lines_in_chunks(bytes: &[u8], chunk_bytes: usize) -> (Vec<Vec<String>>, u64) {
    use rayon::prelude::*;
    let mut bounds = vec![0];
    let mut next = chunk_bytes.max(1);
    while next < bytes.len() {
        match memchr::memchr(b'\n', &bytes[next..]) {
            Some(offset) => {
                let end = next + offset + 1;
                bounds.push(end);
                next = end + chunk_bytes.max(1);
            }
            None => break,
        }
    }
    if bounds.last() != Some(&bytes.len()) {
        bounds.push(bytes.len());
    }
    let chunks: Vec<(Vec<String>, u64)> = bounds
        .par_windows(2)
        .map(|range| {
            let mut invalid = 0;
            let lines = split_all_lines(&bytes[range[0]..range[1]], &mut invalid);
            (lines, invalid)
        })
        .collect();
    let invalid = chunks.iter().map(|(_, n)| n).sum();
    (
        chunks.into_iter().map(|(lines, _)| lines).collect(),
        invalid,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_strips_carriage_returns() {
        let mut invalid = 0;
        assert_eq!(
            split_all_lines(b"a b\r\nc\n\nlast", &mut invalid),
            vec!["a b", "c", "", "last"]
        );
        assert_eq!(invalid, 0);
    }

    #[test]
    fn keeps_unfinished_lines_for_later() {
        let (mut lines, mut invalid) = (Vec::new(), 0);
        let used = split_complete_lines(b"one\ntw", 0, &mut lines, &mut invalid);
        assert_eq!((lines, used), (vec!["one".to_string()], 4));
    }

    #[test]
    fn chunks_hold_every_line_once_in_order() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect::<String>() + "tail";
        let (chunks, invalid) = split_lines_in_chunks(text.as_bytes(), 97);
        assert!(chunks.len() > 10);
        let all: Vec<String> = chunks.into_iter().flatten().collect();
        let mut expected: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        expected.push("tail".into());
        assert_eq!((all, invalid), (expected, 0));
        let (chunks, _) = split_lines_in_chunks(b"a\nb\n", 1 << 20);
        assert_eq!(chunks, vec![vec!["a".to_string(), "b".to_string()]]);
        assert_eq!(
            split_lines_in_chunks(b"", 10).0.concat(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let mut invalid = 0;
        let lines = split_all_lines(b"ok\nbad \xff\xfe here\n", &mut invalid);
        assert_eq!(lines, vec!["ok", "bad \u{fffd}\u{fffd} here"]);
        assert_eq!(invalid, 1);
    }
}
