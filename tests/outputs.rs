//! Output operations: `pprint` prints exactly what PySpark prints, and
//! `save_as_text_files` writes whole batch directories named as Spark names them.

mod common;

use std::fs;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Harness, lines};
use dstream::{RddQueue, Time};

/// A `Write` whose contents the test can read afterwards.
#[derive(Clone, Default)]
struct SharedText(Arc<Mutex<Vec<u8>>>);

impl Write for SharedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedText {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Checks one pprint block against the shape of the seed notebook's output:
///
/// ```text
/// -------------------------------------------
/// Time: 2024-04-30 04:05:40
/// -------------------------------------------
/// ('4', 2)
/// ('line', 10)
///
/// ```
fn assert_pprint_block(block: &[&str], time: Time, elements: &[&str]) {
    let dashes = "-".repeat(43);
    assert_eq!(block[0], dashes);
    assert_eq!(block[1], format!("Time: {}", time.to_local_string()));
    let stamp = block[1].trim_start_matches("Time: ");
    let shape_ok = stamp.len() == 19
        && stamp.chars().enumerate().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "not YYYY-MM-DD HH:MM:SS: {stamp:?}");
    assert_eq!(block[2], dashes);
    assert_eq!(&block[3..block.len() - 1], elements);
    assert_eq!(block[block.len() - 1], "");
}

#[test]
fn pprint_prints_each_batch_like_pyspark() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![("line".to_string(), 10)]));
    queue.push(
        h.ssc
            .parallelize((1..=12).collect::<Vec<i32>>())
            .map(|i| (i.to_string(), i)),
    );
    let out = SharedText::default();
    h.ssc
        .queue_stream(&queue, true, None)
        .pprint_to(10, out.clone())
        .unwrap();
    h.ssc.start().unwrap();
    h.run_batches(3);
    h.ssc.stop(false).unwrap();

    let text = out.text();
    let all: Vec<&str> = text.split('\n').collect();
    // Three blocks: 3 header lines + elements + blank line each, then the final "".
    let (first, rest) = all.split_at(5);
    assert_pprint_block(first, h.batch_time(1), &["(\"line\", 10)"]);
    let (second, third) = rest.split_at(3 + 10 + 1 + 1);
    let expected: Vec<String> = (1..=10).map(|i| format!("(\"{i}\", {i})")).collect();
    let mut with_dots: Vec<&str> = expected.iter().map(String::as_str).collect();
    with_dots.push("...");
    assert_pprint_block(second, h.batch_time(2), &with_dots);
    assert_pprint_block(&third[..4], h.batch_time(3), &[]);
    assert_eq!(third[4..], [""]);
}

#[test]
fn pprint_n_limits_the_elements_shown() {
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(h.ssc.parallelize(vec![1, 2, 3]));
    let out = SharedText::default();
    h.ssc
        .queue_stream(&queue, true, None)
        .pprint_to(2, out.clone())
        .unwrap();
    h.ssc.start().unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();
    let text = out.text();
    let block: Vec<&str> = text.split('\n').collect();
    assert_pprint_block(&block[..7], h.batch_time(1), &["1", "2", "..."]);
}

#[test]
fn save_as_text_files_writes_one_directory_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("counts").to_string_lossy().into_owned();
    let h = Harness::seconds();
    let queue = RddQueue::new();
    queue.push(
        h.ssc
            .parallelize(vec![("a".to_string(), 1), ("b".to_string(), 2)]),
    );
    let stream = h.ssc.queue_stream(&queue, true, None);
    stream
        .map(|(w, c)| format!("{w},{c}"))
        .save_as_text_files(prefix.clone(), "csv")
        .unwrap();
    stream
        .map(|(w, _)| w)
        .save_as_text_files(prefix.clone(), "")
        .unwrap();
    // Tuples have no Display: a formatter writes them.
    stream
        .save_as_text_files_with(prefix.clone(), "debug", |pair| format!("{pair:?}"))
        .unwrap();
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();

    let read_dir = |name: &str| -> Vec<String> {
        let path = dir.path().join(name);
        let mut parts: Vec<String> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        parts.sort();
        parts
            .iter()
            .flat_map(|p| {
                fs::read_to_string(path.join(p))
                    .unwrap()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(read_dir("counts-1000.csv"), lines(&["a,1", "b,2"]));
    assert_eq!(read_dir("counts-1000"), lines(&["a", "b"]));
    assert_eq!(
        read_dir("counts-1000.debug"),
        lines(&["(\"a\", 1)", "(\"b\", 2)"])
    );
    assert_eq!(read_dir("counts-2000.csv"), Vec::<String>::new());
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "counts-1000",
            "counts-1000.csv",
            "counts-1000.debug",
            "counts-2000",
            "counts-2000.csv",
            "counts-2000.debug"
        ],
        "only finished batch directories, no staging leftovers"
    );
    let parts: Vec<_> = fs::read_dir(dir.path().join("counts-1000.csv"))
        .unwrap()
        .collect();
    assert_eq!(parts.len(), 2, "one file per partition");
}

#[test]
fn an_unwritable_output_directory_fails_the_batch_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file-not-dir");
    fs::write(&blocker, "x").unwrap();
    let prefix = blocker.join("out").to_string_lossy().into_owned();
    let h = Harness::seconds();
    h.ssc
        .queue_stream(&RddQueue::<i32>::new(), true, None)
        .save_as_text_files(prefix, "txt")
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(h.interval);
    let err = h.ssc.await_termination().unwrap_err().to_string();
    assert!(err.contains("batch 1000 ms failed"), "{err}");
    assert!(err.contains("file-not-dir"), "{err}");
}
