//! Python objects as engine records: [`PyObj`] for any record, [`PyKey`] for keys.
//!
//! The engine clones, moves and drops records on its worker threads without the GIL,
//! so a record is an `Arc` around a Python reference: cloning it touches no Python
//! reference count. Keys hash and compare without the GIL when they are built from
//! `str`, `int`, `float`, `bool`, `bytes`, `None` and tuples of those, or of subclasses
//! that keep their `==` and `hash` such as namedtuples (nearly every key a streaming
//! program uses); any other hashable object is compared by Python's
//! `hash` and `==`, taking the GIL for the comparison.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use compact_str::CompactString;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString, PyTuple};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};

/// A Python object held by the engine.
#[derive(Clone)]
pub struct PyObj(Arc<Py<PyAny>>);

impl PyObj {
    pub fn new(obj: Bound<'_, PyAny>) -> Self {
        PyObj(Arc::new(obj.unbind()))
    }

    pub fn from_py(obj: Py<PyAny>) -> Self {
        PyObj(Arc::new(obj))
    }

    pub fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.0.bind(py)
    }

    /// A new strong reference, for handing the object to Python.
    pub fn to_py(&self, py: Python<'_>) -> Py<PyAny> {
        self.0.clone_ref(py)
    }

    fn is(&self, other: &PyObj) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.as_ptr() == other.0.as_ptr()
    }
}

impl fmt::Debug for PyObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Python::attach(|py| match self.bind(py).repr() {
            Ok(repr) => f.write_str(&repr.to_string_lossy()),
            Err(_) => f.write_str("<unprintable Python object>"),
        })
    }
}

/// The `pickle` module, imported once.
fn pickle(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static PICKLE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    PICKLE
        .get_or_try_init(py, || Ok(py.import("pickle")?.unbind()))
        .map(|module| module.bind(py))
}

/// Checkpoints store Python state as pickles (protocol 4, readable by Python 3.4+).
impl Serialize for PyObj {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let pickled = Python::attach(|py| -> PyResult<Vec<u8>> {
            let bytes = pickle(py)?.call_method1("dumps", (self.bind(py), 4))?;
            Ok(bytes.cast::<PyBytes>()?.as_bytes().to_vec())
        });
        match pickled {
            Ok(bytes) => serializer.serialize_bytes(&bytes),
            Err(err) => Err(ser::Error::custom(format!(
                "cannot pickle {self:?} for the checkpoint: {err} (state kept in a checkpoint must be picklable)"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for PyObj {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = deserializer.deserialize_byte_buf(BytesVisitor)?;
        Python::attach(|py| -> PyResult<PyObj> {
            let bytes = PyBytes::new(py, &bytes);
            Ok(PyObj::new(pickle(py)?.call_method1("loads", (bytes,))?))
        })
        .map_err(|err| de::Error::custom(format!("cannot unpickle a checkpointed value: {err}")))
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pickled bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

/// The value of a key whose equality Rust can decide: equal `Native`s are equal
/// Python objects, and unequal ones are unequal.
///
/// Numbers follow Python's rules (`1 == 1.0 == True`): a bool, and a float with an
/// integral value, become `Int`.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Native {
    None,
    Int(i64),
    Float(u64),
    Str(CompactString),
    Bytes(Box<[u8]>),
    Tuple(Box<[Native]>),
}

impl Native {
    fn of(obj: &Bound<'_, PyAny>) -> Option<Native> {
        if let Ok(text) = obj.cast_exact::<PyString>() {
            return text
                .to_str()
                .ok()
                .map(|s| Native::Str(CompactString::new(s)));
        }
        if obj.is_exact_instance_of::<PyInt>() || obj.is_exact_instance_of::<PyBool>() {
            return obj.extract::<i64>().ok().map(Native::Int);
        }
        if obj.is_none() {
            return Some(Native::None);
        }
        if let Ok(float) = obj.cast_exact::<PyFloat>() {
            return Native::of_float(float.value());
        }
        if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
            let items: Option<Vec<Native>> = tuple.iter().map(|item| Native::of(&item)).collect();
            return items.map(|items| Native::Tuple(items.into_boxed_slice()));
        }
        if let Ok(bytes) = obj.cast_exact::<PyBytes>() {
            return Some(Native::Bytes(bytes.as_bytes().into()));
        }
        Native::of_subclass(obj)
    }

    /// An instance of a subclass of `str`, `int`, `float`, `bytes` or `tuple` that
    /// keeps its base's `==` and `hash` (a namedtuple, an `IntEnum`, a `str` enum) is
    /// the same dict key as the plain value it equals, so it must hash as that value
    /// does: it gets the plain value's `Native`.
    fn of_subclass(obj: &Bound<'_, PyAny>) -> Option<Native> {
        let py = obj.py();
        let base = if obj.is_instance_of::<PyString>() {
            py.get_type::<PyString>()
        } else if obj.is_instance_of::<PyInt>() {
            py.get_type::<PyInt>()
        } else if obj.is_instance_of::<PyFloat>() {
            py.get_type::<PyFloat>()
        } else if obj.is_instance_of::<PyBytes>() {
            py.get_type::<PyBytes>()
        } else if obj.is_instance_of::<PyTuple>() {
            py.get_type::<PyTuple>()
        } else {
            return None;
        };
        let kind = obj.get_type();
        for name in ["__eq__", "__hash__"] {
            if !kind.getattr(name).ok()?.is(&base.getattr(name).ok()?) {
                return None;
            }
        }
        if let Ok(text) = obj.cast::<PyString>() {
            return text
                .to_str()
                .ok()
                .map(|s| Native::Str(CompactString::new(s)));
        }
        if obj.is_instance_of::<PyInt>() {
            return obj.extract::<i64>().ok().map(Native::Int);
        }
        if let Ok(float) = obj.cast::<PyFloat>() {
            return Native::of_float(float.value());
        }
        if let Ok(bytes) = obj.cast::<PyBytes>() {
            return Some(Native::Bytes(bytes.as_bytes().into()));
        }
        let tuple = obj.cast::<PyTuple>().ok()?;
        let items: Option<Vec<Native>> = tuple.iter().map(|item| Native::of(&item)).collect();
        items.map(|items| Native::Tuple(items.into_boxed_slice()))
    }

    /// A float as Python compares it: a whole one equals the int of its value.
    fn of_float(value: f64) -> Option<Native> {
        if value.is_nan() {
            return None;
        }
        // Every whole float in i64's range converts exactly (2^63 itself does not fit).
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        if value.fract() == 0.0 && value.abs() < 9_223_372_036_854_775_808.0 {
            return Some(Native::Int(value as i64));
        }
        Some(Native::Float(value.to_bits()))
    }
}

/// A key of a pair record: hashed once, when it is made, and compared without the GIL
/// where its value allows (see [`Native`]).
#[derive(Clone)]
pub struct PyKey {
    hash: u64,
    native: Option<Native>,
    obj: PyObj,
}

/// Native keys hash with a fixed seed, so a key lands in the same partition in every
/// run whatever `PYTHONHASHSEED` is.
const KEY_SEED: u64 = 0x6473_7472_6561_6d31;

impl PyKey {
    pub fn new(obj: Bound<'_, PyAny>) -> PyResult<PyKey> {
        let native = Native::of(&obj);
        let hash = match &native {
            Some(native) => foldhash::fast::FixedState::with_seed(KEY_SEED).hash_one(native),
            None => obj.hash().map_err(|err| {
                if err.is_instance_of::<PyTypeError>(obj.py()) {
                    PyTypeError::new_err(format!(
                        "a key must be hashable, as a dict key must: {err}"
                    ))
                } else {
                    err
                }
            })? as u64,
        };
        Ok(PyKey {
            hash,
            native,
            obj: PyObj::new(obj),
        })
    }

    pub fn obj(&self) -> &PyObj {
        &self.obj
    }

    /// The key's value if it is a whole number (a partition index).
    pub fn index(&self) -> Option<i64> {
        match self.native {
            Some(Native::Int(index)) => Some(index),
            _ => None,
        }
    }
}

impl Hash for PyKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for PyKey {
    fn eq(&self, other: &PyKey) -> bool {
        if self.hash != other.hash {
            return false;
        }
        if self.obj.is(&other.obj) {
            return true;
        }
        match (&self.native, &other.native) {
            (Some(a), Some(b)) => a == b,
            // A key's `__eq__` that raises counts as "not equal", as a dict lookup
            // would fail: the shuffle cannot stop midway to report it.
            _ => Python::attach(|py| self.obj.bind(py).eq(other.obj.bind(py)).unwrap_or(false)),
        }
    }
}

impl Eq for PyKey {}

impl fmt::Debug for PyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.obj.fmt(f)
    }
}

impl Serialize for PyKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.obj.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PyKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let obj = PyObj::deserialize(deserializer)?;
        Python::attach(|py| PyKey::new(obj.bind(py).clone()))
            .map_err(|err| de::Error::custom(format!("a checkpointed key: {err}")))
    }
}
