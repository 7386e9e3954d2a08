//! The engine's `Rdd` of Python objects, as the Python `RDD` class sees it.
//!
//! Only what needs the engine is here: partition-wise Python functions, shuffles by
//! key, and actions. The Python layer (`dstream/rdd.py`) builds PySpark's operations
//! on these, as PySpark builds them on the JVM's.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dstream::{HashPartitioner, Partitioner, Rdd};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::failure::catch_engine;
use crate::object::{PyKey, PyObj};
use crate::partition::{self, PyFn};

/// An immutable, partitioned collection of Python objects (the engine's `Rdd`).
#[pyclass(name = "Rdd", module = "dstream._native", frozen, from_py_object)]
#[derive(Clone)]
pub struct PyRdd {
    pub rdd: Rdd<PyObj>,
}

impl PyRdd {
    pub fn new(rdd: Rdd<PyObj>) -> Self {
        PyRdd { rdd }
    }

    /// Runs an action without the GIL, raising the user's exception if one failed it.
    fn act<R: Send>(
        &self,
        py: Python<'_>,
        action: impl FnOnce(&Rdd<PyObj>) -> R + Send,
    ) -> PyResult<R> {
        let rdd = &self.rdd;
        py.detach(|| catch_engine(|| action(rdd)))
    }
}

/// `data` in `slices` partitions as Spark slices a collection: partition `i` holds
/// positions `i * len / slices` to `(i + 1) * len / slices`, so that `glom()` shows
/// what PySpark shows (the engine's own split puts the larger partitions first).
pub fn slice(data: Vec<PyObj>, slices: usize) -> Rdd<PyObj> {
    let slices = slices.max(1);
    let len = data.len();
    let mut rest = data.into_iter();
    let parts: Vec<Rdd<PyObj>> = (0..slices)
        .map(|i| {
            let size = (i + 1) * len / slices - i * len / slices;
            Rdd::from_vec(rest.by_ref().take(size).collect(), 1)
        })
        .collect();
    union_balanced(&parts)
}

/// The union of `parts`, in order, as a balanced tree (no deep chain of unions).
fn union_balanced(parts: &[Rdd<PyObj>]) -> Rdd<PyObj> {
    if let [one] = parts {
        return one.clone();
    }
    let (left, right) = parts.split_at(parts.len() / 2);
    union_balanced(left).union(&union_balanced(right))
}

/// `f(index, iterator)` applied to every partition of `rdd`.
pub fn map_partitions(rdd: &Rdd<PyObj>, f: PyFn) -> Rdd<PyObj> {
    rdd.map_partitions_with_index(move |index, input| partition::apply(&f, index, input))
}

/// The records of `rdd` moved to `partitions` partitions by the hash of their keys.
pub fn partition_by(rdd: &Rdd<PyObj>, partitions: usize) -> Rdd<PyObj> {
    partition::keyed_records("partitionBy", rdd)
        .partition_by(HashPartitioner::new(partitions))
        .values()
}

/// The `(index, record)` pairs of `rdd` as their records, each moved to partition
/// `index` (computed in Python by the user's `partitionFunc`).
pub fn partition_by_index(rdd: &Rdd<PyObj>, partitions: usize) -> Rdd<PyObj> {
    partition::pairs("partitionBy", rdd)
        .partition_by(IndexPartitioner { partitions })
        .values()
}

/// Places each record in the partition its key names: the key is an index that
/// Python computed already.
struct IndexPartitioner {
    partitions: usize,
}

impl Partitioner<PyKey> for IndexPartitioner {
    fn num_partitions(&self) -> usize {
        self.partitions.max(1)
    }

    fn partition(&self, key: &PyKey) -> usize {
        key.index()
            .and_then(|index| usize::try_from(index).ok())
            .unwrap_or(0)
    }
}

/// `(key, (values here, values in other))` for every key of either.
pub fn cogroup(rdd: &Rdd<PyObj>, other: &Rdd<PyObj>, partitions: usize) -> Rdd<PyObj> {
    let grouped = partition::pairs("cogroup", rdd)
        .partitioned(partitions)
        .cogroup(&partition::pairs("cogroup", other));
    partition::tuples(&grouped, |py, (left, right): (Vec<PyObj>, Vec<PyObj>)| {
        let left = PyList::new(py, left.iter().map(|v| v.bind(py)))?;
        let right = PyList::new(py, right.iter().map(|v| v.bind(py)))?;
        Ok(PyTuple::new(py, [left.into_any(), right.into_any()])?.into_any())
    })
}

#[pymethods]
impl PyRdd {
    /// `f(index, iterator) -> iterable` over each partition.
    fn map_partitions_with_index(&self, f: Py<PyAny>) -> PyRdd {
        PyRdd::new(map_partitions(&self.rdd, Arc::new(f)))
    }

    fn partition_by(&self, partitions: usize) -> PyRdd {
        PyRdd::new(partition_by(&self.rdd, partitions))
    }

    /// `(index, record)` pairs as their records, each in partition `index`.
    fn partition_by_index(&self, partitions: usize) -> PyRdd {
        PyRdd::new(partition_by_index(&self.rdd, partitions))
    }

    fn cogroup(&self, other: &PyRdd, partitions: usize) -> PyRdd {
        PyRdd::new(cogroup(&self.rdd, &other.rdd, partitions))
    }

    fn union(&self, other: &PyRdd) -> PyRdd {
        PyRdd::new(self.rdd.union(&other.rdd))
    }

    fn repartition(&self, partitions: usize) -> PyRdd {
        PyRdd::new(self.rdd.repartition(partitions.max(1)))
    }

    fn cache(&self) -> PyRdd {
        PyRdd::new(self.rdd.cache())
    }

    fn num_partitions(&self) -> usize {
        self.rdd.num_partitions()
    }

    fn collect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let records = self.act(py, Rdd::collect)?;
        PyList::new(py, records.iter().map(|record| record.bind(py)))
    }

    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        self.act(py, Rdd::count)
    }

    fn take<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let records = self.act(py, |rdd| rdd.take(n))?;
        PyList::new(py, records.iter().map(|record| record.bind(py)))
    }

    fn is_empty(&self, py: Python<'_>) -> PyResult<bool> {
        self.act(py, Rdd::is_empty)
    }

    /// Writes `path/part-NNNNN`, one file per partition with `str()` of each record
    /// on a line, and `path/_SUCCESS`, as PySpark's `saveAsTextFile`. The directory is
    /// written under a hidden name and renamed into place, so a reader never sees half.
    fn save_as_text_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let texts = self.rdd.map_partitions(partition::texts).glom();
        let parts = py.detach(|| catch_engine(|| texts.collect()))?;
        py.detach(|| write_text_dir(&path, &parts))
            .map_err(|err| PyOSError::new_err(format!("cannot write {}: {err}", path.display())))
    }
}

fn write_text_dir(path: &Path, parts: &[Vec<String>]) -> std::io::Result<()> {
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the output directory already exists (as in PySpark, choose a new path)",
        ));
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".{name}.tmp"));
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    fs::create_dir(&staging)?;
    for (index, lines) in parts.iter().enumerate() {
        let mut file = BufWriter::new(fs::File::create(staging.join(format!("part-{index:05}")))?);
        for line in lines {
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
        }
        file.into_inner()
            .map_err(|err| err.into_error())?
            .sync_all()?;
    }
    fs::File::create(staging.join("_SUCCESS"))?;
    fs::rename(&staging, path)
}
