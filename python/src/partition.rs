//! Running Python over whole partitions: the GIL is taken once per partition, never
//! while the engine computes a parent.
//!
//! A partition's parent is pulled to the end *before* the GIL is taken: pulling may
//! run a shuffle on other worker threads that call Python themselves, and a thread
//! that waited for them while holding the GIL would never see them finish.

use dstream::{PartitionIter, Rdd};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::failure::OrFail;
use crate::object::{PyKey, PyObj};

/// A Python function the engine may call from any worker thread.
pub type PyFn = std::sync::Arc<Py<PyAny>>;

/// `f(index, iterator)` over one partition, returning an iterable of records, as
/// PySpark's `mapPartitionsWithIndex`.
pub fn apply(f: &Py<PyAny>, index: usize, input: PartitionIter<PyObj>) -> Vec<PyObj> {
    let records: Vec<PyObj> = input.collect();
    Python::attach(|py| {
        let run = || -> PyResult<Vec<PyObj>> {
            let list = PyList::new(py, records.iter().map(|record| record.bind(py)))?;
            let output = f.bind(py).call1((index, list.try_iter()?))?;
            let mut out = Vec::with_capacity(output.len().unwrap_or(0));
            for item in output.try_iter()? {
                out.push(PyObj::new(item?));
            }
            Ok(out)
        };
        let out = run().or_fail(py);
        // Dropped here, with the GIL, rather than queued for a later decref.
        drop(records);
        out
    })
}

/// Text records (lines from a source, words) as Python `str`s.
pub fn strings<T: AsRef<str>>(input: PartitionIter<T>) -> Vec<PyObj> {
    let lines: Vec<T> = input.collect();
    Python::attach(|py| {
        lines
            .iter()
            .map(|line| PyObj::new(PyString::new(py, line.as_ref()).into_any()))
            .collect()
    })
}

/// Binary records as Python `bytes`.
pub fn bytes(input: PartitionIter<Vec<u8>>) -> Vec<PyObj> {
    let records: Vec<Vec<u8>> = input.collect();
    Python::attach(|py| {
        records
            .iter()
            .map(|record| PyObj::new(PyBytes::new(py, record).into_any()))
            .collect()
    })
}

/// Each `(key, value)` record as the engine's pair; with `whole_record` the record
/// itself travels with its key (a shuffle that only moves records), else the value.
fn keyed(
    operation: &'static str,
    input: PartitionIter<PyObj>,
    whole_record: bool,
) -> Vec<(PyKey, PyObj)> {
    let records: Vec<PyObj> = input.collect();
    Python::attach(|py| {
        let mut out = Vec::with_capacity(records.len());
        for record in &records {
            let pair = split_pair(operation, record.bind(py)).or_fail(py);
            let key = PyKey::new(pair.0).or_fail(py);
            let value = if whole_record {
                record.clone()
            } else {
                PyObj::new(pair.1)
            };
            out.push((key, value));
        }
        drop(records);
        out
    })
}

fn split_pair<'py>(
    operation: &str,
    record: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if let Ok(tuple) = record.cast::<PyTuple>()
        && tuple.len() == 2
    {
        return Ok((tuple.get_item(0)?, tuple.get_item(1)?));
    }
    let mut items = record.try_iter().ok();
    if let Some(iter) = items.as_mut() {
        let first = iter.next().transpose()?;
        let second = iter.next().transpose()?;
        if let (Some(key), Some(value), None) = (first, second, iter.next()) {
            return Ok((key, value));
        }
    }
    Err(pyo3::exceptions::PyValueError::new_err(format!(
        "{operation} works on (key, value) pairs, but a record is {}: map each record to a 2-tuple first",
        record
            .repr()
            .map_or_else(|_| "unprintable".to_string(), |r| r.to_string())
    )))
}

/// An `Rdd` of `(key, value)` records as the engine's pairs.
pub fn pairs(operation: &'static str, rdd: &Rdd<PyObj>) -> Rdd<(PyKey, PyObj)> {
    rdd.map_partitions(move |input| keyed(operation, input, false))
}

/// An `Rdd` of `(key, value)` records keyed for a shuffle that moves whole records.
pub fn keyed_records(operation: &'static str, rdd: &Rdd<PyObj>) -> Rdd<(PyKey, PyObj)> {
    rdd.map_partitions(move |input| keyed(operation, input, true))
}

/// The engine's pairs as Python `(key, value)` tuples.
pub fn tuples<V: Send + 'static>(
    rdd: &Rdd<(PyKey, V)>,
    value: impl Fn(Python<'_>, V) -> PyResult<Bound<'_, PyAny>> + Send + Sync + 'static,
) -> Rdd<PyObj>
where
    (PyKey, V): dstream::Data,
{
    rdd.map_partitions(move |input| {
        let entries: Vec<(PyKey, V)> = input.collect();
        Python::attach(|py| {
            let mut out = Vec::with_capacity(entries.len());
            for (key, v) in entries {
                let v = value(py, v).or_fail(py);
                let tuple = PyTuple::new(py, [key.obj().bind(py).clone(), v]).or_fail(py);
                out.push(PyObj::new(tuple.into_any()));
            }
            out
        })
    })
}

/// Python's `str()` of each record, for text output.
pub fn texts(input: PartitionIter<PyObj>) -> Vec<String> {
    let records: Vec<PyObj> = input.collect();
    Python::attach(|py| {
        let texts = records
            .iter()
            .map(|record| {
                record
                    .bind(py)
                    .str()
                    .map(|text| text.to_string_lossy().into_owned())
            })
            .collect::<PyResult<Vec<String>>>()
            .or_fail(py);
        drop(records);
        texts
    })
}
