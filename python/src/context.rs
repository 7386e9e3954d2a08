//! The engine's `StreamingContext`, its inputs and its clock, as the Python
//! `StreamingContext` class sees them.
//!
//! Every call that waits on the engine (start, stop, awaiting) releases the GIL, so
//! batches that call Python keep running meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dstream::{
    BatchInfo, ManualClock, RddQueue, StreamingConfig, StreamingContext, StreamingListener, Time,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::failure::{failure_to_py_err, to_py_err};
use crate::object::PyObj;
use crate::partition;
use crate::rdd::PyRdd;
use crate::stream::{PyStream, call_for_rdd};
use crate::text::PyTextStream;

/// A clock that moves only when told: batches happen exactly when a test says.
#[pyclass(
    name = "ManualClock",
    module = "dstream._native",
    frozen,
    from_py_object
)]
#[derive(Clone)]
pub struct PyManualClock {
    clock: ManualClock,
}

#[pymethods]
impl PyManualClock {
    #[new]
    #[pyo3(signature = (start_ms = 0))]
    fn new(start_ms: i64) -> Self {
        PyManualClock {
            clock: ManualClock::new(Time::from_millis(start_ms)),
        }
    }

    fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millis()
    }
}

/// The engine's context.
#[pyclass(name = "Context", module = "dstream._native", frozen)]
pub struct PyContext {
    pub(crate) ssc: StreamingContext,
}

/// Forwards the engine's listener events to a Python callable `on_event(name, info)`.
struct PyListener {
    on_event: Py<PyAny>,
}

impl PyListener {
    fn send(&self, name: &str, batch: Option<&BatchInfo>) {
        Python::attach(|py| {
            let sent = (|| -> PyResult<()> {
                let info = match batch {
                    Some(batch) => batch_dict(py, batch)?.into_any(),
                    None => py.None().into_bound(py),
                };
                self.on_event.bind(py).call1((name, info))?;
                Ok(())
            })();
            // A listener that raises is reported and the stream goes on, as in Spark.
            if let Err(err) = sent {
                err.print(py);
            }
        });
    }
}

fn batch_dict<'py>(py: Python<'py>, batch: &BatchInfo) -> PyResult<Bound<'py, PyDict>> {
    let ms = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let info = PyDict::new(py);
    info.set_item("batch_time", batch.batch_time.as_millis())?;
    info.set_item("num_records", batch.num_records)?;
    info.set_item("submission_time", batch.submission_time.as_millis())?;
    info.set_item(
        "processing_start_time",
        batch.processing_start_time.map(Time::as_millis),
    )?;
    info.set_item(
        "processing_end_time",
        batch.processing_end_time.map(Time::as_millis),
    )?;
    info.set_item("scheduling_delay", ms(batch.scheduling_delay()))?;
    info.set_item("processing_delay", ms(batch.processing_delay()))?;
    info.set_item("total_delay", ms(batch.total_delay()))?;
    info.set_item("output_operations", batch.output_operations)?;
    info.set_item("failure", batch.failure.clone())?;
    Ok(info)
}

impl StreamingListener for PyListener {
    fn on_streaming_started(&self, _first_batch_time: Time) {
        self.send("streaming_started", None);
    }

    fn on_batch_submitted(&self, batch: &BatchInfo) {
        self.send("batch_submitted", Some(batch));
    }

    fn on_batch_started(&self, batch: &BatchInfo) {
        self.send("batch_started", Some(batch));
    }

    fn on_batch_completed(&self, batch: &BatchInfo) {
        self.send("batch_completed", Some(batch));
    }

    fn on_streaming_stopped(&self) {
        self.send("streaming_stopped", None);
    }
}

fn seconds(timeout: Option<f64>) -> Option<Duration> {
    timeout.map(|s| Duration::from_secs_f64(s.max(0.0)))
}

#[pymethods]
impl PyContext {
    /// A context with batches every `batch_ms`. Settings come from the `DSTREAM_*`
    /// environment variables (as on the Rust side), then from `conf`, the `SparkConf`
    /// pairs (`spark.master` and the `spark.*` keys the engine knows; others are
    /// ignored). `batch_ms`, PySpark's `batchDuration`, is the batch interval whatever
    /// the environment says.
    #[new]
    #[pyo3(signature = (batch_ms, conf, clock = None))]
    fn new(
        batch_ms: u64,
        conf: Vec<(String, String)>,
        clock: Option<PyManualClock>,
    ) -> PyResult<Self> {
        let batch_interval = Duration::from_millis(batch_ms);
        let from_env = StreamingConfig {
            batch_interval,
            ..StreamingConfig::default()
        }
        .with_env()
        .map_err(to_py_err)?;
        let config = StreamingConfig {
            batch_interval,
            ..from_env
        }
        .with_spark_conf(conf)
        .map_err(to_py_err)?;
        let mut builder = StreamingContext::builder().config(config);
        if let Some(clock) = clock {
            builder = builder.clock(clock.clock);
        }
        Ok(PyContext {
            ssc: builder.build().map_err(to_py_err)?,
        })
    }

    /// Builds the program with `setup()` (which returns a `Context`) and recovers the
    /// checkpoint in `directory`, if there is one.
    #[staticmethod]
    fn get_or_create(py: Python<'_>, directory: PathBuf, setup: Py<PyAny>) -> PyResult<PyContext> {
        let mut setup_error = None;
        let recovered = py.detach(|| {
            StreamingContext::get_or_create(&directory, || {
                Python::attach(|py| {
                    let made = setup
                        .bind(py)
                        .call0()
                        .and_then(|made| Ok(made.extract::<PyRef<'_, PyContext>>()?.ssc.clone()));
                    made.map_err(|err| {
                        setup_error = Some(err);
                        // Stands for the Python exception, which is raised instead.
                        dstream::Error::Io {
                            action: "build the program with setupFunc for",
                            path: directory.clone(),
                            source: Arc::new(std::io::Error::other("setupFunc failed")),
                        }
                    })
                })
            })
        });
        match (recovered, setup_error) {
            (_, Some(err)) => Err(err),
            (Ok(ssc), None) => Ok(PyContext { ssc }),
            (Err(err), None) => Err(to_py_err(err)),
        }
    }

    fn parallelism(&self) -> usize {
        self.ssc.parallelism()
    }

    /// Records the inputs have accepted so far (for tests that must know what a
    /// receiver holds before they kill the program).
    fn records_received(&self) -> u64 {
        self.ssc.records_received()
    }

    fn batch_ms(&self) -> u64 {
        u64::try_from(self.ssc.batch_interval().as_millis()).unwrap_or(u64::MAX)
    }

    fn socket_text_stream(&self, host: &str, port: u16) -> PyTextStream {
        PyTextStream::lines(self.ssc.socket_text_stream(host, port))
    }

    fn text_file_stream(&self, directory: PathBuf) -> PyTextStream {
        PyTextStream::lines(self.ssc.text_file_stream(directory))
    }

    fn binary_records_stream(
        &self,
        directory: PathBuf,
        record_length: usize,
    ) -> PyResult<PyStream> {
        self.ssc
            .binary_records_stream(directory, record_length)
            .map(|records| PyStream::new(records.map_partitions(partition::bytes)))
            .map_err(to_py_err)
    }

    #[pyo3(signature = (rdds, one_at_a_time, default = None))]
    fn queue_stream(
        &self,
        rdds: Vec<PyRdd>,
        one_at_a_time: bool,
        default: Option<PyRdd>,
    ) -> PyStream {
        let queue = RddQueue::new();
        for rdd in rdds {
            queue.push(rdd.rdd);
        }
        PyStream::new(
            self.ssc
                .queue_stream(&queue, one_at_a_time, default.map(|rdd| rdd.rdd)),
        )
    }

    fn union(&self, streams: Vec<PyStream>) -> PyResult<PyStream> {
        let streams: Vec<_> = streams.into_iter().map(|s| s.stream).collect();
        self.ssc
            .union(&streams)
            .map(PyStream::new)
            .map_err(to_py_err)
    }

    /// `f(time_ms, rdd, ...)` over the `Rdd`s of all `streams` at each batch.
    fn transform(&self, streams: Vec<PyStream>, f: Py<PyAny>) -> PyResult<PyStream> {
        let streams: Vec<_> = streams.into_iter().map(|s| s.stream).collect();
        self.ssc
            .transform(&streams, move |rdds, time| {
                call_for_rdd(&f, time, &rdds.iter().collect::<Vec<_>>())
            })
            .map(PyStream::new)
            .map_err(to_py_err)
    }

    #[pyo3(signature = (data, slices = None))]
    fn parallelize(&self, data: Vec<Py<PyAny>>, slices: Option<usize>) -> PyRdd {
        let data: Vec<PyObj> = data.into_iter().map(PyObj::from_py).collect();
        PyRdd::new(match slices {
            Some(slices) => dstream::Rdd::from_vec(data, slices.max(1)),
            None => self.ssc.parallelize(data),
        })
    }

    fn checkpoint(&self, directory: PathBuf) -> PyResult<()> {
        self.ssc.checkpoint(directory).map_err(to_py_err)
    }

    fn remember(&self, ms: u64) -> PyResult<()> {
        self.ssc
            .remember(Duration::from_millis(ms))
            .map_err(to_py_err)
    }

    fn add_listener(&self, on_event: Py<PyAny>) {
        self.ssc.add_listener(PyListener { on_event });
    }

    /// Where the status page listens (`host:port`), if `spark.ui.port` asked for one.
    fn status_page_address(&self) -> Option<String> {
        self.ssc
            .status_page_address()
            .map(|address| address.to_string())
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.ssc.start()).map_err(to_py_err)
    }

    /// Waits up to `timeout` seconds (`None`: for ever); `True` once stopped.
    #[pyo3(signature = (timeout = None))]
    fn await_termination(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let result = py.detach(|| match seconds(timeout) {
            Some(timeout) => self.ssc.await_termination_or_timeout(timeout),
            None => self.ssc.await_termination().map(|()| true),
        });
        result.map_err(to_py_err)
    }

    /// Waits for the batch at `time_ms` to complete; raises the batch's exception if
    /// it failed.
    #[pyo3(signature = (time_ms, timeout = 30.0))]
    fn await_batch(&self, py: Python<'_>, time_ms: i64, timeout: f64) -> PyResult<()> {
        let info = py
            .detach(|| {
                self.ssc
                    .await_batch(Time::from_millis(time_ms), Duration::from_secs_f64(timeout))
            })
            .map_err(to_py_err)?;
        match info.failure {
            Some(message) => Err(failure_to_py_err(&message)),
            None => Ok(()),
        }
    }

    fn stop(&self, py: Python<'_>, graceful: bool) -> PyResult<()> {
        py.detach(|| self.ssc.stop(graceful)).map_err(to_py_err)
    }
}
