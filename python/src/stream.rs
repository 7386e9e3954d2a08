//! The engine's `DStream` of Python objects, as the Python `DStream` class sees it.
//!
//! Stateless operations are the `Rdd` ones applied batch by batch (`transform`); what
//! the engine keeps across batches (state, windows) runs on the engine's own stores,
//! so it is incremental, checkpointed and recovered as on the Rust side.

use std::sync::Arc;
use std::time::Duration;

use dstream::{DStream, Rdd, Time};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::failure::{OrFail, to_py_err};
use crate::object::{PyKey, PyObj};
use crate::partition::{self, PyFn};
use crate::rdd::{self as native_rdd, PyRdd};

/// A stream of Python objects: one `Rdd` per batch.
#[pyclass(name = "Stream", module = "dstream._native", frozen, from_py_object)]
#[derive(Clone)]
pub struct PyStream {
    pub stream: DStream<PyObj>,
}

impl PyStream {
    pub fn new(stream: DStream<PyObj>) -> Self {
        PyStream { stream }
    }

    fn each_rdd(&self, f: impl Fn(&Rdd<PyObj>) -> Rdd<PyObj> + Send + Sync + 'static) -> PyStream {
        PyStream::new(self.stream.transform(move |rdd, _| f(&rdd)))
    }

    fn pairs(&self, operation: &'static str) -> DStream<(PyKey, PyObj)> {
        self.stream
            .transform(move |rdd, _| partition::pairs(operation, &rdd))
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Calls the user's `f(time_ms, rdd, ...)` and returns the `Rdd` it gives back.
pub fn call_for_rdd(f: &Py<PyAny>, time: Time, rdds: &[&Rdd<PyObj>]) -> Rdd<PyObj> {
    Python::attach(|py| {
        let run = || -> PyResult<Rdd<PyObj>> {
            let mut args = vec![time.as_millis().into_pyobject(py)?.into_any()];
            for rdd in rdds {
                args.push(Bound::new(py, PyRdd::new((*rdd).clone()))?.into_any());
            }
            let args = pyo3::types::PyTuple::new(py, args)?;
            let result = f.bind(py).call1(args)?;
            Ok(result.extract::<PyRdd>()?.rdd)
        };
        run().or_fail(py)
    })
}

fn call2(f: &Py<PyAny>, a: PyObj, b: PyObj) -> PyObj {
    Python::attach(|py| {
        f.bind(py)
            .call1((a.bind(py), b.bind(py)))
            .map(PyObj::new)
            .or_fail(py)
    })
}

/// PySpark's `updateFunc(new_values, last_state)` as the engine's update function:
/// the state is a Python object, `None` drops the key.
pub fn state_update<V>(
    update: Py<PyAny>,
    value: impl for<'py> Fn(Python<'py>, &V) -> PyResult<Bound<'py, PyAny>> + Send + Sync,
) -> impl Fn(&[V], Option<PyObj>) -> Option<PyObj> + Send + Sync {
    move |values: &[V], state: Option<PyObj>| {
        Python::attach(|py| {
            let run = || -> PyResult<Option<PyObj>> {
                let values = values
                    .iter()
                    .map(|v| value(py, v))
                    .collect::<PyResult<Vec<_>>>()?;
                let values = PyList::new(py, values)?;
                let state = state.as_ref().map(|s| s.bind(py).clone());
                let new = update.bind(py).call1((values, state))?;
                Ok((!new.is_none()).then(|| PyObj::new(new)))
            };
            run().or_fail(py)
        })
    }
}

/// A partition's state updates, run holding the GIL once rather than taking it for
/// each key: worker threads that took turns with the GIL key by key spent most of
/// their time handing it over.
pub fn holding_gil(work: &mut dyn FnMut()) {
    Python::attach(|_| work());
}

#[pymethods]
impl PyStream {
    fn map_partitions_with_index(&self, f: Py<PyAny>) -> PyStream {
        let f: PyFn = Arc::new(f);
        self.each_rdd(move |rdd| native_rdd::map_partitions(rdd, f.clone()))
    }

    fn partition_by(&self, partitions: usize) -> PyStream {
        self.each_rdd(move |rdd| native_rdd::partition_by(rdd, partitions))
    }

    fn repartition(&self, partitions: usize) -> PyStream {
        PyStream::new(self.stream.repartition(partitions.max(1)))
    }

    fn cache(&self) -> PyStream {
        PyStream::new(self.stream.cache())
    }

    fn cogroup(&self, other: &PyStream, partitions: usize) -> PyResult<PyStream> {
        self.stream
            .transform_with(&other.stream, move |left, right, _| {
                native_rdd::cogroup(&left, &right, partitions)
            })
            .map(PyStream::new)
            .map_err(to_py_err)
    }

    fn union(&self, other: &PyStream) -> PyResult<PyStream> {
        self.stream
            .union(&other.stream)
            .map(PyStream::new)
            .map_err(to_py_err)
    }

    fn window(&self, length_ms: u64, slide_ms: u64) -> PyResult<PyStream> {
        self.stream
            .window(millis(length_ms), millis(slide_ms))
            .map(PyStream::new)
            .map_err(to_py_err)
    }

    fn slide_ms(&self) -> u64 {
        u64::try_from(self.stream.slide_duration().as_millis()).unwrap_or(u64::MAX)
    }

    /// `f(time_ms, rdd) -> rdd` at each batch.
    fn transform(&self, f: Py<PyAny>) -> PyStream {
        PyStream::new(
            self.stream
                .transform(move |rdd, time| call_for_rdd(&f, time, &[&rdd])),
        )
    }

    /// `f(time_ms, rdd, other_rdd) -> rdd` at each batch.
    fn transform_with(&self, other: &PyStream, f: Py<PyAny>) -> PyResult<PyStream> {
        self.stream
            .transform_with(&other.stream, move |a, b, time| {
                call_for_rdd(&f, time, &[&a, &b])
            })
            .map(PyStream::new)
            .map_err(to_py_err)
    }

    /// `f(time_ms, rdd)` at each batch: the output operation everything else uses.
    fn foreach_rdd(&self, f: Py<PyAny>) -> PyResult<()> {
        self.stream
            .foreach_rdd(move |rdd, time| {
                Python::attach(|py| {
                    let rdd = Bound::new(py, PyRdd::new(rdd)).or_fail(py);
                    f.bind(py)
                        .call1((time.as_millis(), rdd))
                        .map(drop)
                        .or_fail(py);
                });
            })
            .map_err(to_py_err)
    }

    /// `update(new_values, state) -> state or None` for every key, every batch.
    #[pyo3(signature = (update, partitions, initial=None))]
    fn update_state_by_key(
        &self,
        update: Py<PyAny>,
        partitions: usize,
        initial: Option<PyRdd>,
    ) -> PyStream {
        let pairs = self.pairs("updateStateByKey");
        let update = state_update(update, |py, value: &PyObj| Ok(value.bind(py).clone()));
        let initial = initial.map(|initial| partition::pairs("updateStateByKey", &initial.rdd));
        let states =
            pairs
                .partitioned(partitions)
                .update_state_by_key_scoped(update, initial, holding_gil);
        PyStream::new(states.transform(|rdd, _| {
            partition::tuples(&rdd, |py, state: PyObj| Ok(state.bind(py).clone()))
        }))
    }

    /// The engine's incremental window: `window(t) = window(t - slide) + entering -
    /// leaving`, then `keep(pair)` drops keys (PySpark's `filterFunc`).
    #[pyo3(signature = (reduce, inverse, length_ms, slide_ms, partitions, keep=None))]
    fn reduce_by_key_and_window_inv(
        &self,
        reduce: Py<PyAny>,
        inverse: Py<PyAny>,
        length_ms: u64,
        slide_ms: u64,
        partitions: usize,
        keep: Option<Py<PyAny>>,
    ) -> PyResult<PyStream> {
        let keep = move |key: &PyKey, value: &PyObj| -> bool {
            let Some(keep) = &keep else { return true };
            Python::attach(|py| {
                let run = || -> PyResult<bool> {
                    let pair = pyo3::types::PyTuple::new(py, [key.obj().bind(py), value.bind(py)])?;
                    keep.bind(py).call1((pair,))?.is_truthy()
                };
                run().or_fail(py)
            })
        };
        let windowed = self
            .pairs("reduceByKeyAndWindow")
            .partitioned(partitions)
            .reduce_by_key_and_window_inv_with(
                move |a, b| call2(&reduce, a, b),
                move |a, b| call2(&inverse, a, b),
                millis(length_ms),
                millis(slide_ms),
                keep,
            )
            .map_err(to_py_err)?;
        Ok(PyStream::new(windowed.transform(|rdd, _| {
            partition::tuples(&rdd, |py, value: PyObj| Ok(value.bind(py).clone()))
        })))
    }

    /// The `(time_ms, rdd)` this stream still remembers from `from_ms` to `to_ms`.
    fn slice(&self, from_ms: i64, to_ms: i64) -> Vec<(i64, PyRdd)> {
        self.stream
            .slice(Time::from_millis(from_ms), Time::from_millis(to_ms))
            .into_iter()
            .map(|(time, rdd)| (time.as_millis(), PyRdd::new(rdd)))
            .collect()
    }

    /// A name for this stream in checkpoints and on the status page.
    fn set_name(&self, name: String) -> PyStream {
        PyStream::new(self.stream.clone().name(name))
    }
}
