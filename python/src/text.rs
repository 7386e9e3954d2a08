//! Text streams that stay in Rust until Python needs their records.
//!
//! The classroom word count is `lines.flatMap(lambda line: line.split(" "))
//! .map(lambda word: (word, 1)).reduceByKey(lambda x, y: x + y)`. The Python layer
//! recognises exactly these functions (by their bytecode, see
//! `dstream/streaming/_native_ops.py`) on a text source and builds the same pipeline
//! here, on Rust `String`s, so that it runs on every worker thread without the GIL.
//! Python sees the records only where a function it does not recognise, or an output,
//! needs them: one `str` or `(str, int)` per record reaching it, not one per word.

use dstream::{DStream, PartitionIter};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::object::PyObj;
use crate::partition;
use crate::stream::PyStream;

/// Lines or words: `str` records, held as Rust strings.
#[pyclass(name = "TextStream", module = "dstream._native", frozen)]
pub struct PyTextStream {
    pub stream: DStream<String>,
}

/// `(word, count)` records with `int` counts, held in Rust.
#[pyclass(name = "CountStream", module = "dstream._native", frozen)]
pub struct PyCountStream {
    stream: DStream<(String, i64)>,
}

#[pymethods]
impl PyTextStream {
    /// Python's `s.split(sep)` of each record (a non-empty `sep`: every piece, empty
    /// ones included, exactly as `str.split` with a separator).
    fn split(&self, sep: String) -> PyTextStream {
        PyTextStream {
            stream: self.stream.flat_map(move |line: String| {
                line.split(sep.as_str())
                    .map(String::from)
                    .collect::<Vec<_>>()
            }),
        }
    }

    /// `(record, value)` of each record.
    fn pair_with(&self, value: i64) -> PyCountStream {
        PyCountStream {
            stream: self.stream.map(move |word: String| (word, value)),
        }
    }

    /// The records as Python `str`s.
    fn to_py(&self) -> PyStream {
        PyStream::new(self.stream.map_partitions(partition::strings))
    }
}

#[pymethods]
impl PyCountStream {
    /// The sum of each key's counts (Python's `+` on `int`s), in `partitions`
    /// partitions.
    fn reduce_by_key_sum(&self, partitions: usize) -> PyCountStream {
        PyCountStream {
            stream: self
                .stream
                .reduce_by_key_with_partitions(add_counts, partitions.max(1)),
        }
    }

    /// The records as Python `(str, int)` tuples.
    fn to_py(&self) -> PyStream {
        PyStream::new(self.stream.map_partitions(count_tuples))
    }
}

/// Python's `int` never overflows; a count past `i64` is far beyond any stream (2^63
/// words), so it fails the batch rather than wrap.
fn add_counts(a: i64, b: i64) -> i64 {
    match a.checked_add(b) {
        Some(sum) => sum,
        None => std::panic::resume_unwind(Box::new(format!(
            "OverflowError: a count passed {} in reduceByKey",
            i64::MAX
        ))),
    }
}

fn count_tuples(input: PartitionIter<(String, i64)>) -> Vec<PyObj> {
    let counts: Vec<(String, i64)> = input.collect();
    Python::attach(|py| {
        counts
            .iter()
            .map(|(word, count)| {
                let word = PyString::new(py, word).into_any();
                let Ok(count) = count.into_pyobject(py);
                let count = count.into_any();
                match PyTuple::new(py, [word, count]) {
                    Ok(tuple) => PyObj::new(tuple.into_any()),
                    Err(err) => crate::failure::fail(py, err),
                }
            })
            .collect()
    })
}
