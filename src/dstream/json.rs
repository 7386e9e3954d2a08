//! `parse_json`: lines of JSON into typed records, with the lines that do not parse
//! counted, reported and kept in a stream of their own.
//!
//! A line holds one JSON value of the record type, or a JSON array of them (as
//! click-stream producers often send a batch of events in one message). Lines of
//! only whitespace hold no record and are skipped.

use std::any::type_name;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::DStream;
use crate::rdd::materialized::{ClonedPartition, OnceFrom, SharedPartitions, empty_partitions};
use crate::rdd::{Data, PartitionIter, Rdd, RddNode};
use crate::time::Time;

/// A line [`DStream::parse_json`] could not turn into records, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RejectedJson {
    /// The line as it arrived.
    pub line: String,
    /// serde_json's message: what was expected, at which line and column.
    pub error: String,
}

/// The records of one line, or why there are none.
fn parse_line<T: DeserializeOwned>(line: &str) -> Result<Vec<T>, String> {
    let text = line.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<T>(text) {
        Ok(record) => Ok(vec![record]),
        Err(_) if text.starts_with('[') => {
            serde_json::from_str::<Vec<T>>(text).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

type Parsed<T> = Result<T, RejectedJson>;

/// A batch's lines, parsed once, in parallel, the first time any partition is read;
/// the rejected lines are counted in one warning per batch.
struct ParsedBatch<T> {
    partitions: usize,
    time: Time,
    data: OnceFrom<Rdd<String>, SharedPartitions<Parsed<T>>>,
}

impl<T: Data + DeserializeOwned> ParsedBatch<T> {
    fn data(&self) -> &SharedPartitions<Parsed<T>> {
        self.data.get(
            |lines| {
                let parsed = lines
                    .flat_map(|line| match parse_line::<T>(&line) {
                        Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
                        Err(error) => vec![Err(RejectedJson { line, error })],
                    })
                    .compute_all();
                self.report(&parsed);
                Arc::new(parsed)
            },
            || empty_partitions(self.partitions),
        )
    }

    fn report(&self, parsed: &[Vec<Parsed<T>>]) {
        let mut rejected = parsed.iter().flatten().filter_map(|r| r.as_ref().err());
        let Some(first) = rejected.next() else {
            return;
        };
        let count = 1 + rejected.count();
        let shown: String = first.line.chars().take(80).collect();
        tracing::warn!(
            "parse_json: batch {}: {count} line(s) were not JSON of {}; they are in the rejected stream. First: {shown:?}: {}",
            self.time,
            type_name::<T>(),
            first.error
        );
    }
}

impl<T: Data + DeserializeOwned> RddNode<Parsed<T>> for ParsedBatch<T> {
    fn num_partitions(&self) -> usize {
        self.partitions
    }

    fn prepare(&self) {
        self.data();
    }

    fn compute(&self, partition: usize) -> PartitionIter<Parsed<T>> {
        Box::new(ClonedPartition::new(self.data().clone(), partition))
    }
}

impl DStream<String> {
    /// Parses each line as JSON into `T` (any serde type): a line holds one `T` or a
    /// JSON array of them; blank lines are skipped. Returns the records and the lines
    /// that did not parse, with serde_json's reason. A batch with rejected lines logs
    /// one warning with their count and the first one; the stream goes on. Each batch
    /// is parsed once, however many streams read the results.
    ///
    /// ```
    /// use dstream::{RddQueue, StreamingContext};
    /// use serde::Deserialize;
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, Deserialize)]
    /// struct Click {
    ///     #[serde(rename = "Clicks")]
    ///     clicks: u32,
    ///     #[serde(rename = "Impressions")]
    ///     impressions: u32,
    ///     ts: i64,
    /// }
    ///
    /// # fn main() -> dstream::Result<()> {
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    /// let queue = RddQueue::new();
    /// queue.push(ssc.parallelize(vec![
    ///     r#"{"Clicks": 0, "Impressions": 3, "ts": 1715172068}"#.to_string(),
    ///     r#"[{"Clicks": 1, "Impressions": 2, "ts": 1715172069}]"#.to_string(),
    ///     "not json".to_string(),
    /// ]));
    /// let (clicks, rejected) = ssc.queue_stream(&queue, true, None).parse_json::<Click>();
    /// clicks.map(|c| c.impressions).pprint()?;
    /// rejected.map(|bad| bad.line).pprint()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn parse_json<T: Data + DeserializeOwned>(&self) -> (DStream<T>, DStream<RejectedJson>) {
        let parsed = self.transform_as("parse_json", |lines, time| {
            let partitions = lines.num_partitions();
            lines.derive(ParsedBatch {
                partitions,
                time,
                data: OnceFrom::new(lines.clone()),
            })
        });
        let records = parsed.flat_map(Result::ok);
        let rejected = parsed.flat_map(Result::err);
        (records, rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Click {
        #[serde(rename = "Clicks")]
        clicks: u32,
        ts: i64,
    }

    #[test]
    fn a_line_holds_one_record_or_an_array_of_them() {
        let one: Vec<Click> = parse_line(r#"{"Clicks": 2, "ts": 5}"#).unwrap();
        assert_eq!(one, vec![Click { clicks: 2, ts: 5 }]);
        let many: Vec<Click> =
            parse_line(r#" [{"Clicks": 1, "ts": 1}, {"Clicks": 0, "ts": 2}] "#).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(parse_line::<Click>("   ").unwrap(), vec![]);
    }

    #[test]
    fn bad_lines_say_why() {
        let err = parse_line::<Click>(r#"{"Clicks": "x", "ts": 1}"#).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        let err = parse_line::<Click>(r#"[{"Clicks": 1}]"#).unwrap_err();
        assert!(err.contains("missing field `ts`"), "{err}");
        assert!(parse_line::<Click>("{").is_err());
    }
}
