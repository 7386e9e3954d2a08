//! Splitting bytes into text lines, shared by the socket and file sources.
//!
//! Lines end at `\n`; a `\r` before it is dropped. A line that is not valid UTF-8 is
//! decoded lossily (invalid bytes become U+FFFD) and counted, so the caller can warn;
//! it is never an error.
//!
//! Received text is kept as [`TextBlock`]s: the bytes of many lines in one shared string
//! plus where each line ends, so that receiving allocates per read, not per line, and
//! a buffered line costs its bytes and one offset. A line becomes a `String` when a
//! batch reads it.

use std::ops::Range;
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rdd::blocks::Block;

/// Lines of text held as one shared string and the end of each line. Splitting a block
/// shares both, so the pieces of a read cost no allocation.
#[derive(Clone, Debug)]
pub(crate) struct TextBlock {
    text: Arc<str>,
    /// Where each line of `text` ends (at its `\n`, or at the end of the text).
    ends: Arc<[usize]>,
    /// The lines (indexes into `ends`) this block holds.
    lines: Range<usize>,
}

impl TextBlock {
    /// The lines of `bytes`; the last one may lack its `\n`. Lines that are not UTF-8
    /// are decoded lossily and counted in `invalid`.
    pub(crate) fn new(bytes: &[u8], invalid: &mut u64) -> TextBlock {
        let text: Arc<str> = match std::str::from_utf8(bytes) {
            Ok(text) => Arc::from(text),
            Err(_) => Arc::from(decode_lossily(bytes, invalid)),
        };
        let unterminated = !text.is_empty() && !text.ends_with('\n');
        let count = memchr::memchr_iter(b'\n', text.as_bytes()).count() + usize::from(unterminated);
        let mut ends = Vec::with_capacity(count);
        ends.extend(memchr::memchr_iter(b'\n', text.as_bytes()));
        if unterminated {
            ends.push(text.len());
        }
        TextBlock {
            text,
            ends: Arc::from(ends),
            lines: 0..count,
        }
    }

    /// Where line `line` (an index into `ends`) starts.
    fn start_of(&self, line: usize) -> usize {
        match line.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(self.text.len(), |end| end + 1),
            None => 0,
        }
    }
}

/// `bytes` with each line that is not UTF-8 decoded lossily, counted in `invalid`.
fn decode_lossily(bytes: &[u8], invalid: &mut u64) -> String {
    let mut text = String::with_capacity(bytes.len());
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            text.push('\n');
        }
        match std::str::from_utf8(line) {
            Ok(line) => text.push_str(line),
            Err(_) => {
                *invalid += 1;
                text.push_str(&String::from_utf8_lossy(line));
            }
        }
    }
    text
}

impl Block for TextBlock {
    type Item = String;

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn split_off(&mut self, at: usize) -> TextBlock {
        let middle = self.lines.start + at.min(self.lines.len());
        let rest = TextBlock {
            text: self.text.clone(),
            ends: self.ends.clone(),
            lines: middle..self.lines.end,
        };
        self.lines.end = middle;
        rest
    }

    fn read(&self, index: usize) -> Option<String> {
        let line = self.lines.start.checked_add(index)?;
        if line >= self.lines.end {
            return None;
        }
        let end = *self.ends.get(line)?;
        // Construction puts every end at a `\n` or the end of the text, so the range
        // is on character boundaries.
        let text = self.text.get(self.start_of(line)..end)?;
        Some(text.strip_suffix('\r').unwrap_or(text).to_owned())
    }
}

/// Written to a receiver's write-ahead log as its lines' text and their ends.
impl Serialize for TextBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let first = self.start_of(self.lines.start);
        let ends = self.ends.get(self.lines.clone()).unwrap_or_default();
        let end = ends.last().map_or(first, |end| *end);
        let text = self.text.get(first..end).unwrap_or_default();
        let ends: Vec<usize> = ends.iter().map(|end| end - first).collect();
        (text, ends).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TextBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TextBlock, D::Error> {
        let (text, ends): (String, Vec<usize>) = Deserialize::deserialize(deserializer)?;
        let mut start = 0;
        for &end in &ends {
            if end < start || !text.is_char_boundary(end) {
                return Err(D::Error::custom(
                    "a text block's line ends do not fit its text",
                ));
            }
            start = end + 1;
        }
        Ok(TextBlock {
            text: Arc::from(text),
            lines: 0..ends.len(),
            ends: Arc::from(ends),
        })
    }
}

/// The lines of a whole text as blocks of about `chunk_bytes` (cut after a `\n`), made
/// in parallel, in order, and how many lines were not UTF-8. Runs on the caller's rayon
/// pool.
pub(crate) fn split_lines_in_chunks(bytes: &[u8], chunk_bytes: usize) -> (Vec<TextBlock>, u64) {
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
    let chunks: Vec<(TextBlock, u64)> = bounds
        .par_windows(2)
        .map(|range| {
            let mut invalid = 0;
            let lines = TextBlock::new(&bytes[range[0]..range[1]], &mut invalid);
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

    fn lines(block: &TextBlock) -> Vec<String> {
        (0..block.len()).map_while(|i| block.read(i)).collect()
    }

    #[test]
    fn a_text_block_reads_its_lines_and_splits_anywhere() {
        let mut invalid = 0;
        let mut block = TextBlock::new(b"a b\r\nc\n\nlast", &mut invalid);
        assert_eq!(lines(&block), vec!["a b", "c", "", "last"]);
        assert_eq!(block.read(4), None);
        let mut rest = block.split_off(1);
        assert_eq!(
            (lines(&block), lines(&rest)),
            (
                vec!["a b".to_string()],
                vec!["c".to_string(), "".into(), "last".into()]
            )
        );
        let tail = rest.split_off(3);
        assert_eq!((rest.len(), tail.len()), (3, 0));
        let empty = rest.split_off(0);
        assert_eq!(
            (rest.len(), lines(&empty)),
            (0, vec!["c".to_string(), "".into(), "last".into()])
        );
        assert_eq!(invalid, 0);
        assert_eq!(TextBlock::new(b"", &mut invalid).len(), 0);
        assert_eq!(lines(&TextBlock::new(b"\n", &mut invalid)), vec![""]);
    }

    #[test]
    fn a_text_block_decodes_invalid_lines_lossily_and_counts_them() {
        let mut invalid = 0;
        let block = TextBlock::new(b"ok\nbad \xff\xfe here\n\xc3\n", &mut invalid);
        assert_eq!(
            lines(&block),
            vec!["ok", "bad \u{fffd}\u{fffd} here", "\u{fffd}"]
        );
        assert_eq!(invalid, 2);
    }

    #[test]
    fn a_text_block_survives_the_log_and_refuses_a_corrupt_one() {
        let mut invalid = 0;
        let mut block = TextBlock::new("é\nb\r\nc\nd".as_bytes(), &mut invalid);
        let rest = block.split_off(1);
        let bytes = crate::checkpoint::encode(&rest).unwrap();
        let back: TextBlock = crate::checkpoint::decode(&bytes).unwrap();
        assert_eq!(lines(&back), vec!["b", "c", "d"]);
        let bad = crate::checkpoint::encode(&("é", vec![1usize])).unwrap();
        assert!(crate::checkpoint::decode::<TextBlock>(&bad).is_err());
        let bad = crate::checkpoint::encode(&("ab", vec![5usize])).unwrap();
        assert!(crate::checkpoint::decode::<TextBlock>(&bad).is_err());
    }

    #[test]
    fn chunks_hold_every_line_once_in_order() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect::<String>() + "tail";
        let (chunks, invalid) = split_lines_in_chunks(text.as_bytes(), 97);
        assert!(chunks.len() > 10);
        let all: Vec<String> = chunks.iter().flat_map(lines).collect();
        let mut expected: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        expected.push("tail".into());
        assert_eq!((all, invalid), (expected, 0));
        let (chunks, _) = split_lines_in_chunks(b"a\nb\n", 1 << 20);
        assert_eq!(
            chunks.iter().map(lines).collect::<Vec<_>>(),
            vec![vec!["a".to_string(), "b".to_string()]]
        );
        assert_eq!(
            split_lines_in_chunks(b"", 10)
                .0
                .iter()
                .map(Block::len)
                .sum::<usize>(),
            0
        );
    }
}
