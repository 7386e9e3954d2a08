//! Text streams that stay in Rust until Python needs their records.
//!
//! The classroom word count is `lines.flatMap(lambda line: line.split(" "))
//! .map(lambda word: (word, 1)).reduceByKey(lambda x, y: x + y)`. The Python layer
//! recognises exactly these functions (by their bytecode, see
//! `dstream/streaming/_native_ops.py`) on a text source and builds the same pipeline
//! here, on Rust strings, so that it runs on every worker thread without the GIL.
//! Python sees the records only where a function it does not recognise, or an output,
//! needs them: one `str` or `(str, int)` per record reaching it, not one per word.

use compact_str::CompactString;
use dstream::{DStream, PartitionIter};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::failure::OrFail;
use crate::object::PyObj;
use crate::partition;
use crate::stream::{PyStream, holding_gil, state_update};

/// Lines as the source read them, or words, which are short: a `CompactString` keeps up
/// to 24 bytes inline, so a word costs no allocation and compares within a table slot.
enum Texts {
    Lines(DStream<String>),
    Words(DStream<CompactString>),
}

/// `str` records (lines or words), held in Rust.
#[pyclass(name = "TextStream", module = "dstream._native", frozen)]
pub struct PyTextStream {
    texts: Texts,
}

impl PyTextStream {
    pub fn lines(stream: DStream<String>) -> Self {
        PyTextStream {
            texts: Texts::Lines(stream),
        }
    }
}

/// `(word, count)` records with `int` counts, held in Rust.
#[pyclass(name = "CountStream", module = "dstream._native", frozen)]
pub struct PyCountStream {
    stream: DStream<(CompactString, i64)>,
}

fn split_words<T: AsRef<str>>(text: &T, sep: &str, words: &mut Vec<CompactString>) {
    words.extend(text.as_ref().split(sep).map(CompactString::from));
}

#[pymethods]
impl PyTextStream {
    /// Python's `s.split(sep)` of each record (a non-empty `sep`: every piece, empty
    /// ones included, exactly as `str.split` with a separator).
    fn split(&self, sep: String) -> PyTextStream {
        let words = match &self.texts {
            Texts::Lines(lines) => {
                lines.flat_map_into(move |line: &String, out| split_words(line, &sep, out))
            }
            Texts::Words(words) => {
                words.flat_map_into(move |word: &CompactString, out| split_words(word, &sep, out))
            }
        };
        PyTextStream {
            texts: Texts::Words(words),
        }
    }

    /// `(record, value)` of each record.
    fn pair_with(&self, value: i64) -> PyCountStream {
        let stream = match &self.texts {
            Texts::Lines(lines) => {
                lines.map(move |line: String| (CompactString::from(line), value))
            }
            Texts::Words(words) => words.map(move |word: CompactString| (word, value)),
        };
        PyCountStream { stream }
    }

    /// The records as Python `str`s.
    fn to_py(&self) -> PyStream {
        PyStream::new(match &self.texts {
            Texts::Lines(lines) => lines.map_partitions(partition::strings),
            Texts::Words(words) => words.map_partitions(partition::strings),
        })
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
                .partitioned(partitions)
                .reduce_by_key(add_counts),
        }
    }

    /// The records as Python `(str, int)` tuples.
    fn to_py(&self) -> PyStream {
        PyStream::new(self.stream.map_partitions(count_tuples))
    }

    /// PySpark's `updateStateByKey(update)` with keys and new values still in Rust:
    /// Python sees one call per key and batch, with the key's new counts as a list of
    /// `int`s, and keeps the state (pickled in checkpoints).
    fn update_state_by_key(&self, update: Py<PyAny>, partitions: usize) -> PyStream {
        let update = state_update(update, |py, count: &i64| {
            let Ok(count) = count.into_pyobject(py);
            Ok(count.into_any())
        });
        let states = self
            .stream
            .partitioned(partitions)
            .update_state_by_key_scoped(update, None, holding_gil);
        PyStream::new(states.map_partitions(state_tuples))
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

fn state_tuples(input: PartitionIter<(CompactString, PyObj)>) -> Vec<PyObj> {
    let states: Vec<(CompactString, PyObj)> = input.collect();
    Python::attach(|py| {
        let tuples = states
            .iter()
            .map(|(word, state)| {
                let word = PyString::new(py, word).into_any();
                PyTuple::new(py, [word, state.bind(py).clone()]).map(|t| PyObj::new(t.into_any()))
            })
            .collect::<PyResult<Vec<_>>>()
            .or_fail(py);
        drop(states);
        tuples
    })
}

fn count_tuples(input: PartitionIter<(CompactString, i64)>) -> Vec<PyObj> {
    let counts: Vec<(CompactString, i64)> = input.collect();
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
