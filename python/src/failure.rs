//! How a Python exception crosses the engine and comes out where the user waits.
//!
//! A user function runs inside an engine job, which can only fail with a message. The
//! exception itself (type, message, traceback) is parked here under a number that the
//! message carries; `awaitTermination`, or an action such as `collect` on the calling
//! side, finds it by that number and raises the original exception.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How many parked exceptions are kept: failures beyond the first few of a context
/// are reported by message only.
const KEPT: usize = 64;

const MARKER: &str = "[python exception #";

static PARKED: Mutex<VecDeque<(u64, PyErr)>> = Mutex::new(VecDeque::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Parks `err` and fails the running engine job with a message that names it.
///
/// `resume_unwind` rather than `panic!`: the panic hook stays quiet (the exception is
/// reported where the user waits, not printed from a worker thread).
pub fn fail(py: Python<'_>, err: PyErr) -> ! {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let message = format!(
        "{}{id}] {}",
        MARKER,
        describe(py, &err).unwrap_or_else(|| err.to_string())
    );
    let mut parked = PARKED.lock().unwrap_or_else(PoisonError::into_inner);
    if parked.len() == KEPT {
        parked.pop_front();
    }
    parked.push_back((id, err));
    drop(parked);
    resume_unwind(Box::new(message))
}

/// `ValueError: bad record`, as the last line of a traceback says it.
fn describe(py: Python<'_>, err: &PyErr) -> Option<String> {
    let name = err.get_type(py).qualname().ok()?;
    Some(format!("{name}: {}", err.value(py)))
}

/// The parked exception that `message` names, if it is still kept.
fn parked_in(message: &str) -> Option<PyErr> {
    let start = message.find(MARKER)? + MARKER.len();
    let end = start + message[start..].find(']')?;
    let id: u64 = message[start..end].parse().ok()?;
    let parked = PARKED.lock().unwrap_or_else(PoisonError::into_inner);
    let at = parked.iter().position(|(parked, _)| *parked == id)?;
    let (_, err) = parked.get(at)?;
    // Every waiter on the context gets the exception: keep it parked.
    Some(Python::attach(|py| err.clone_ref(py)))
}

/// The engine's error as a Python exception: the user's own exception where the error
/// came from one, else a `RuntimeError` with the engine's message.
pub fn to_py_err(err: dstream::Error) -> PyErr {
    failure_to_py_err(&err.to_string())
}

/// A failed batch's message as a Python exception, the user's own where it names one.
pub fn failure_to_py_err(message: &str) -> PyErr {
    parked_in(message).unwrap_or_else(|| PyRuntimeError::new_err(message.to_string()))
}

/// Runs engine work that may fail a user function (an action such as `collect` on an
/// `Rdd` whose partitions call Python), turning the failure into the user's exception.
/// The engine fails a computation it cannot finish (a Kafka read whose broker went
/// away) with its `dstream::Error` as the payload: that becomes a `RuntimeError` with
/// the error's message.
pub fn catch_engine<R>(work: impl FnOnce() -> R) -> PyResult<R> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        let message = if let Some(error) = payload.downcast_ref::<dstream::Error>() {
            error.to_string()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else if let Some(text) = payload.downcast_ref::<&str>() {
            (*text).to_string()
        } else {
            "the engine failed without a message".to_string()
        };
        failure_to_py_err(&message)
    })
}

/// The value of a user function's result, or the job fails with its exception.
pub trait OrFail<T> {
    fn or_fail(self, py: Python<'_>) -> T;
}

impl<T> OrFail<T> for PyResult<T> {
    fn or_fail(self, py: Python<'_>) -> T {
        match self {
            Ok(value) => value,
            Err(err) => fail(py, err),
        }
    }
}
