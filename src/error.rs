//! The library's one error type.
//!
//! Every fallible public operation returns [`Result`]. Messages name the thing that
//! went wrong (a path, an address, a batch time) and, where it helps, what to do.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::time::Time;

/// Everything that can go wrong in dstream.
///
/// `Error` is `Clone` so that the error that stopped a context can be returned by
/// every call to [`await_termination`](crate::StreamingContext::await_termination).
///
/// ```
/// use dstream::{Error, StreamingContext};
/// use std::time::Duration;
///
/// let err = StreamingContext::new("local[2]", Duration::ZERO).unwrap_err();
/// assert!(matches!(err, Error::InvalidBatchInterval { .. }));
/// assert!(err.to_string().contains("batch interval"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The batch interval is zero or not a whole number of milliseconds.
    #[error(
        "invalid batch interval {interval:?}: it must be a positive whole number of milliseconds"
    )]
    InvalidBatchInterval {
        /// The interval that was given.
        interval: Duration,
    },

    /// The parallelism setting could not be understood.
    #[error(
        "invalid parallelism {given:?}: expected \"local\", \"local[*]\", \"local[N]\", \"*\" or a positive number N"
    )]
    InvalidParallelism {
        /// The setting that was given.
        given: String,
    },

    /// A setting of a [`StreamingConfig`](crate::StreamingConfig) (or the environment
    /// variable that sets it) has a value that cannot be used.
    #[error("invalid setting {setting}={value:?}: {reason}")]
    InvalidSetting {
        /// The setting or environment variable, for example `DSTREAM_BLOCK_SIZE`.
        setting: &'static str,
        /// The value that was given.
        value: String,
        /// What is wrong with it, and what is expected.
        reason: String,
    },

    /// [`binary_records_stream`](crate::StreamingContext::binary_records_stream) was
    /// given a record length of zero.
    ///
    /// ```
    /// use dstream::{Error, StreamingContext};
    /// use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// let err = ssc.binary_records_stream("incoming", 0).unwrap_err();
    /// assert!(matches!(err, Error::InvalidRecordLength { .. }));
    /// ```
    #[error(
        "invalid record length 0 for binary_records_stream of {}: give the size of each record in bytes (at least 1)",
        directory.display()
    )]
    InvalidRecordLength {
        /// The directory the stream was to watch.
        directory: PathBuf,
    },

    /// A window length or slide is not a positive multiple of the parent stream's slide.
    #[error(
        "{what} {duration:?} of {operation} must be a positive multiple of the {base_name} {base:?}"
    )]
    NotAMultiple {
        /// The operation being defined, for example `window`.
        operation: &'static str,
        /// Which duration is wrong: `window length`, `slide` or `checkpoint interval`.
        what: &'static str,
        /// The duration that was given.
        duration: Duration,
        /// What it must be a multiple of, for example `batch interval`.
        base_name: &'static str,
        /// The value it must be a multiple of.
        base: Duration,
    },

    /// Streams combined by one operation do not fit together.
    #[error("cannot {operation}: {reason}")]
    IncompatibleStreams {
        /// The operation, for example `join`.
        operation: &'static str,
        /// Why the streams do not fit together.
        reason: String,
    },

    /// `start` was called on a context that is already running.
    #[error("the streaming context has already been started")]
    AlreadyStarted,

    /// The context was stopped; a stopped context cannot be started again.
    #[error("the streaming context has been stopped; create a new context to run again")]
    AlreadyStopped,

    /// An operation was added to a context that has already started.
    #[error(
        "cannot add {operation} after the streaming context has started: define all streams and output operations before start()"
    )]
    AddedAfterStart {
        /// The operation that came too late.
        operation: &'static str,
    },

    /// `start` found no output operation, so no batch would ever do anything.
    #[error(
        "no output operations registered, so nothing to execute: add foreach_rdd, pprint or save_as_text_files before start()"
    )]
    NoOutputOperations,

    /// The context has not been started yet.
    #[error("the streaming context has not been started")]
    NotStarted,

    /// A batch failed: a user function panicked or returned an error, or the library
    /// could not finish the batch's work (a Kafka read, a file written by an output).
    #[error("batch {time} failed: {message}")]
    BatchFailed {
        /// The time of the batch that failed.
        time: Time,
        /// Which job failed and why, including the panic message of a user function.
        message: String,
        /// The error itself, as the user function or the library returned it; `None`
        /// for a panic. Get your own error type back with
        /// `cause.downcast_ref::<YourError>()`.
        #[source]
        cause: Option<Cause>,
    },

    /// A batch time was asked for that is not on this context's grid of batch times.
    #[error(
        "{time} is not a batch time of this context: batch times are the start time plus whole batch intervals"
    )]
    NotABatchTime {
        /// The time asked for.
        time: Time,
    },

    /// The figures of a batch were asked for after the context stopped keeping them.
    #[error(
        "the figures of batch {time} are no longer kept: a context keeps those of its last {kept} batches"
    )]
    BatchNotKept {
        /// The time asked for.
        time: Time,
        /// How many batches' figures a context keeps.
        kept: usize,
    },

    /// An operation that needs state was called on a stream without any.
    #[error(
        "cannot {operation}: {stream} has no state; call it on the stream returned by update_state_by_key, map_with_state or an incremental window"
    )]
    NoState {
        /// The operation called.
        operation: &'static str,
        /// The stream it was called on.
        stream: String,
    },

    /// `map_with_state`'s function changed the state of a key that is timing out, as
    /// Spark refuses too: the key is removed after this call, so the change would be
    /// lost.
    #[error(
        "the map_with_state function of {stream} updated the state of a key that is timing out: check State::is_timing_out() before State::update"
    )]
    StateTimingOut {
        /// The stream whose function did it.
        stream: String,
    },

    /// A wait ended before the thing waited for happened.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long the wait lasted.
        after: Duration,
    },

    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, for example `cannot read`.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// A network operation failed, for example binding a port that is in use.
    #[error("{action} {address}: {source}")]
    Network {
        /// What was being done, for example `cannot listen on`.
        action: &'static str,
        /// The address involved.
        address: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// A thread or thread pool could not be started.
    #[error("cannot start {what}: {reason}")]
    Runtime {
        /// The thread or pool, for example `worker pool`.
        what: &'static str,
        /// The reason given by the system.
        reason: String,
    },

    /// The status page could not listen on the address it was given (the port is
    /// taken, the address is not local, or it is not an address at all).
    #[error(
        "cannot serve the status page on {address}: {reason}; give another address such as 127.0.0.1:4041, or port 0 to take any free port"
    )]
    StatusPageAddress {
        /// The address that was given.
        address: String,
        /// The reason given by the system.
        reason: String,
    },

    /// Something was asked for that this build of the library leaves out.
    #[error(
        "{what} needs the `{feature}` feature of dstream-engine, which this build leaves out: enable it (it is on by default; `default-features = false` turns it off)"
    )]
    FeatureDisabled {
        /// The Cargo feature.
        feature: &'static str,
        /// What needs it, for example `the status page`.
        what: &'static str,
    },

    /// Stateful operations need a checkpoint directory.
    #[error(
        "{operation} needs a checkpoint directory: call ssc.checkpoint(dir) before start() (state and window results are saved there so a restart can recover them)"
    )]
    CheckpointRequired {
        /// The operation that needs it.
        operation: String,
    },

    /// A checkpoint file is damaged or was written by an incompatible version.
    #[error("corrupt checkpoint {path}: {reason}")]
    CorruptCheckpoint {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The streams built now do not match those in the checkpoint being recovered.
    #[error(
        "the checkpoint in {dir} does not match this program: {difference}. Use a new checkpoint directory, or give streams explicit names with .name(..) so that they match"
    )]
    CheckpointMismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The first difference found, naming the stream.
        difference: String,
    },

    /// A stateful stream stores other types than the checkpoint being recovered holds
    /// for it, so its state cannot be read back as it is (bincode would misread it:
    /// an `i64` read as a `u64` comes back doubled). Raised by
    /// [`get_or_create`](crate::StreamingContext::get_or_create); see
    /// [`DStream::accept_checkpointed_types`](crate::DStream::accept_checkpointed_types)
    /// for a change that keeps the encoding.
    #[error(
        "the checkpoint in {dir} does not match this program: stream {stream} stores {current} but the checkpoint holds {saved}. Use a new checkpoint directory; if only the types' names changed and not how serde encodes them, call .accept_checkpointed_types() on that stream"
    )]
    StateTypeMismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The program's stream, as messages name it: `#2 update_state_by_key "totals"`.
        stream: String,
        /// What it stores, as [`std::any::type_name`] names it:
        /// `(alloc::string::String, u64)`.
        current: String,
        /// What the checkpoint holds for it.
        saved: String,
    },

    /// State could not be encoded or decoded for a checkpoint.
    #[error("cannot {action} the state of {stream}: {reason}")]
    Codec {
        /// `encode` or `decode`.
        action: &'static str,
        /// The stream whose state it is.
        stream: String,
        /// The codec's message.
        reason: String,
    },

    /// A Kafka client operation failed (feature `kafka`).
    #[error("Kafka: cannot {action}: {reason}")]
    Kafka {
        /// What was being done, for example `create topic "clicks"`.
        action: String,
        /// The client's message, and what to check.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn network(
        action: &'static str,
        address: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Network {
            action,
            address: address.into(),
            source: Arc::new(source),
        }
    }
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What failed a batch, kept whole: the error a user function returned (any
/// `std::error::Error`, a `String`, an `anyhow::Error`, ...) or one of the library's.
///
/// ```
/// use std::sync::Arc;
/// let cause: dstream::Cause = Arc::from(Box::<dyn std::error::Error + Send + Sync>::from("disk full"));
/// assert_eq!(cause.to_string(), "disk full");
/// ```
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Locks `mutex` even if a thread panicked while holding it. A panic in a user
/// function fails its batch (see [`catch_panic`]); the data behind the library's locks
/// is updated so that it stays consistent, and the context goes on with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Fails the computation of the partition being computed with `error`.
///
/// Computing a partition cannot return an error (partitions are iterators, fused
/// across narrow operations), so the error unwinds, as a panic of a user function
/// does, to the job that runs the computation: that job fails its batch with the
/// error's message ([`catch_panic`] gives it back as [`Unwound::Failed`]). The payload
/// is the [`Error`] itself, so that whoever catches it keeps it whole.
/// `resume_unwind` rather than `panic!`: the panic hook stays quiet, the error is
/// reported where the batch failure is.
pub(crate) fn fail_computation(error: Error) -> ! {
    std::panic::resume_unwind(Box::new(error))
}

/// Why a computation caught by [`catch_panic`] did not finish.
#[derive(Debug)]
pub(crate) enum Unwound {
    /// Something panicked, as a rule a user function: the panic's message.
    Panic(String),
    /// The library failed a partition's computation (see [`fail_computation`]).
    Failed(Error),
}

/// Runs `f`, turning a panic into its message, or into the error it carries.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> std::result::Result<R, Unwound> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| match payload.downcast::<Error>() {
        Ok(error) => Unwound::Failed(*error),
        Err(payload) => Unwound::Panic(panic_message(&*payload)),
    })
}
