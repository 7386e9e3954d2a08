//! The native half of the `dstream` Python package: the Rust engine's context,
//! streams and `Rdd`s over Python objects. The Python half (`python/dstream/`) gives
//! them PySpark's names, argument order and defaults.

mod context;
mod failure;
#[cfg(feature = "kafka")]
mod kafka;
mod object;
mod partition;
mod rdd;
mod stream;
mod text;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<context::PyContext>()?;
    m.add_class::<context::PyManualClock>()?;
    m.add_class::<stream::PyStream>()?;
    m.add_class::<rdd::PyRdd>()?;
    m.add_class::<text::PyTextStream>()?;
    m.add_class::<text::PyCountStream>()?;
    m.add_function(wrap_pyfunction!(parallelize, m)?)?;
    #[cfg(feature = "kafka")]
    kafka::register(m)?;
    Ok(())
}

/// An `Rdd` of `data` in `slices` partitions, outside any streaming context.
#[pyfunction]
fn parallelize(data: Vec<Py<PyAny>>, slices: usize) -> rdd::PyRdd {
    let data = data.into_iter().map(object::PyObj::from_py).collect();
    rdd::PyRdd::new(rdd::slice(data, slices))
}
