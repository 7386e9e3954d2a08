//! [`StreamingConfig`]: every setting of a [`StreamingContext`](crate::StreamingContext)
//! in one value, with documented defaults, loadable from `DSTREAM_*` environment
//! variables and from Spark's `spark.*` keys.
//!
//! This is the one place settings are made. What is not a setting but part of the
//! program stays a call, as in Spark: the checkpoint directory
//! ([`StreamingContext::checkpoint`](crate::StreamingContext::checkpoint) or
//! [`get_or_create`](crate::StreamingContext::get_or_create)) and how long streams
//! remember their batches ([`remember`](crate::StreamingContext::remember)).
//!
//! A program sets what it needs in code and lets the environment override it, so the
//! same binary runs with another batch interval or rate limit without a rebuild:
//!
//! ```
//! use dstream::{StreamingConfig, StreamingContext};
//! use std::time::Duration;
//!
//! # fn main() -> dstream::Result<()> {
//! let config = StreamingConfig {
//!     batch_interval: Duration::from_secs(2),
//!     backpressure: true,
//!     ..StreamingConfig::default()
//! };
//! let config = config.with_vars([("DSTREAM_RECEIVER_MAX_RATE", "5000"), ("DSTREAM_MASTER", "local[2]")])?;
//! assert_eq!(config.receiver_max_rate, Some(5000));
//! let ssc = StreamingContext::from_config(config)?;
//! assert_eq!(ssc.parallelism(), 2);
//! # Ok(())
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::source::RateController;

/// How long a failed receiver waits before trying again, as Spark's default.
pub const DEFAULT_RECEIVER_RESTART_DELAY: Duration = Duration::from_secs(2);

/// Records a receiver stores per block: the unit of its rate limit and of its locking.
pub const DEFAULT_BLOCK_SIZE: usize = 1024;

/// The shortest default graceful stop timeout.
pub const MIN_DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variables [`StreamingConfig::from_env`] reads, with the setting
/// each one fills.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("DSTREAM_BATCH_INTERVAL_MS", "batch_interval"),
    ("DSTREAM_MASTER", "parallelism"),
    ("DSTREAM_PARALLELISM", "parallelism"),
    ("DSTREAM_CHECKPOINT_INTERVAL_MS", "checkpoint_interval"),
    ("DSTREAM_RECEIVER_MAX_RATE", "receiver_max_rate"),
    ("DSTREAM_BACKPRESSURE", "backpressure"),
    ("DSTREAM_MAX_BUFFERED_RECORDS", "max_buffered_records"),
    ("DSTREAM_BLOCK_SIZE", "block_size"),
    (
        "DSTREAM_RECEIVER_RESTART_DELAY_MS",
        "receiver_restart_delay",
    ),
    ("DSTREAM_STATUS_PAGE", "status_page"),
    ("DSTREAM_STOP_TIMEOUT_MS", "stop_timeout"),
    ("DSTREAM_STOP_ON_SIGNAL", "stop_on_signal"),
    (
        "DSTREAM_CONTINUE_AFTER_FAILED_BATCH",
        "continue_after_failed_batch",
    ),
    (
        "DSTREAM_RECEIVER_WRITE_AHEAD_LOG",
        "receiver_write_ahead_log",
    ),
    (
        "DSTREAM_BACKPRESSURE_INITIAL_RATE",
        "backpressure_initial_rate",
    ),
];

/// The Spark configuration keys [`StreamingConfig::with_spark_conf`] reads, with the
/// setting each one fills. Spark's own meaning, where dstream differs: `spark.ui.port`
/// turns the status page on (on 127.0.0.1; Spark's web UI is on by default), and
/// `spark.streaming.stopGracefullyOnShutdown` stops on SIGINT as well as SIGTERM.
pub const SPARK_KEYS: &[(&str, &str)] = &[
    ("spark.master", "parallelism"),
    ("spark.streaming.receiver.maxRate", "receiver_max_rate"),
    ("spark.streaming.backpressure.enabled", "backpressure"),
    (
        "spark.streaming.backpressure.initialRate",
        "backpressure_initial_rate",
    ),
    (
        "spark.streaming.receiver.writeAheadLog.enable",
        "receiver_write_ahead_log",
    ),
    ("spark.ui.port", "status_page"),
    ("spark.streaming.stopGracefullyOnShutdown", "stop_on_signal"),
];

/// How many threads do the work: Spark's `local[N]` master settings are accepted.
///
/// ```
/// use dstream::Parallelism;
/// assert_eq!(Parallelism::parse("local[4]").unwrap().threads(), 4);
/// assert_eq!(Parallelism::parse("3").unwrap().threads(), 3);
/// assert_eq!(Parallelism::parse("local").unwrap().threads(), 1);
/// assert!(Parallelism::parse("local[*]").unwrap().threads() >= 1);
/// assert!(Parallelism::parse("local[0]").is_err());
/// assert!(Parallelism::parse("yarn").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parallelism(usize);

impl Parallelism {
    /// Parses `"local"` (1 thread), `"local[*]"` or `"*"` (one per logical core),
    /// `"local[N]"` or `"N"` (N threads, N > 0).
    pub fn parse(setting: &str) -> Result<Parallelism> {
        let invalid = || Error::InvalidParallelism {
            given: setting.to_string(),
        };
        let trimmed = setting.trim();
        let count = match trimmed {
            "local" => "1",
            _ => trimmed
                .strip_prefix("local[")
                .and_then(|rest| rest.strip_suffix(']'))
                .unwrap_or(trimmed),
        };
        if count.trim() == "*" {
            return Ok(Parallelism::all_cores());
        }
        match count.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Parallelism(n)),
            _ => Err(invalid()),
        }
    }

    /// One thread per logical core.
    pub fn all_cores() -> Parallelism {
        Parallelism(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Exactly `threads` threads (at least one).
    pub fn threads_exactly(threads: usize) -> Parallelism {
        Parallelism(threads.max(1))
    }

    /// The number of threads.
    pub fn threads(self) -> usize {
        self.0
    }
}

/// Every setting of a streaming context, and the only place each is set: fill in the
/// fields (`..StreamingConfig::default()` for the rest), let `DSTREAM_*` environment
/// variables ([`with_env`](Self::with_env)) or Spark keys
/// ([`with_spark_conf`](Self::with_spark_conf)) override them, and build the context
/// with [`StreamingContext::from_config`](crate::StreamingContext::from_config) (or
/// [`StreamingContext::builder`](crate::StreamingContext::builder) to give it a
/// clock as well). `Default` gives the documented defaults. Invalid values are an
/// [`Error::InvalidSetting`] naming the setting.
///
/// ```
/// use dstream::{Error, Parallelism, StreamingConfig, StreamingContext};
/// use std::time::Duration;
///
/// # fn main() -> dstream::Result<()> {
/// let config = StreamingConfig {
///     batch_interval: Duration::from_secs(10),
///     parallelism: Parallelism::parse("local[2]")?,
///     receiver_max_rate: Some(10_000),
///     ..StreamingConfig::default()
/// };
/// let ssc = StreamingContext::from_config(config)?;
/// assert_eq!(ssc.config().receiver_max_rate, Some(10_000));
///
/// let err = StreamingConfig::default()
///     .with_vars([("DSTREAM_BLOCK_SIZE", "lots")])
///     .unwrap_err();
/// assert!(matches!(err, Error::InvalidSetting { setting: "DSTREAM_BLOCK_SIZE", .. }));
/// # Ok(())
/// # }
/// ```
// Not `#[non_exhaustive]`: the struct literal with `..StreamingConfig::default()` is how
// programs make one, and code written so keeps compiling when a setting is added.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamingConfig {
    /// The batch interval, a positive whole number of milliseconds. No default: it
    /// must be set (`DSTREAM_BATCH_INTERVAL_MS`).
    pub batch_interval: Duration,
    /// Worker threads and default partitions. Default: one per logical core
    /// (`DSTREAM_MASTER` as `local[N]`/`local[*]`, or `DSTREAM_PARALLELISM` as N).
    pub parallelism: Parallelism,
    /// How often checkpoints are written, a multiple of the batch interval; a stream's
    /// own `checkpoint_interval` wins. Default: the smallest multiple of the batch
    /// interval that is at least 10 s (`DSTREAM_CHECKPOINT_INTERVAL_MS`).
    pub checkpoint_interval: Option<Duration>,
    /// The most records per second each receiver accepts, as Spark's
    /// `spark.streaming.receiver.maxRate`. Default: no limit (`DSTREAM_RECEIVER_MAX_RATE`).
    pub receiver_max_rate: Option<u64>,
    /// Whether a rate estimator adapts the receivers' rate to what batches process,
    /// as Spark's `spark.streaming.backpressure.enabled`. Default: off
    /// (`DSTREAM_BACKPRESSURE`).
    pub backpressure: bool,
    /// With backpressure, the rate (records per second, per receiver; per Kafka stream
    /// over all its partitions) until the first batch has been measured, as Spark's
    /// `spark.streaming.backpressure.initialRate`. Default: none, so the first batches
    /// take what arrives (`DSTREAM_BACKPRESSURE_INITIAL_RATE`).
    pub backpressure_initial_rate: Option<u64>,
    /// The most records each receiver holds that no batch has taken; a batch is then
    /// cut only when no other batch waits. Default: no bound
    /// (`DSTREAM_MAX_BUFFERED_RECORDS`).
    pub max_buffered_records: Option<usize>,
    /// Records a receiver stores per block (and takes from its rate limit at once);
    /// under a rate limit, at most a tenth of a second's worth. Default: 1024
    /// (`DSTREAM_BLOCK_SIZE`).
    pub block_size: usize,
    /// How long a failed receiver waits before trying again. Default: 2 s
    /// (`DSTREAM_RECEIVER_RESTART_DELAY_MS`).
    pub receiver_restart_delay: Duration,
    /// Where the live status page listens, like the Streaming tab of Spark's UI
    /// (port 0: any free port). The address is bound when the context is built, which
    /// fails with [`Error::StatusPageAddress`] if it is taken (rather than moving to
    /// another port, so the URL is always the one asked for);
    /// [`StreamingContext::status_page_address`](crate::StreamingContext::status_page_address)
    /// tells where it listens, and the page is served from the start until the context
    /// stops. It shows uptime, totals, timelines and histograms of input rate and
    /// delays, the active and recent batches, each receiver's status and each stateful
    /// stream's number of keys; its JSON is at `/api/v1/summary`, `/api/v1/batches`,
    /// `/api/v1/receivers` and `/api/v1/streams` (fields in the README). It reads only
    /// what listeners and the state stores keep anyway, so it does not slow batches.
    /// Default: off (`DSTREAM_STATUS_PAGE`, an address such as `127.0.0.1:4040`, or a
    /// port, bound to 127.0.0.1; `spark.ui.port`).
    pub status_page: Option<SocketAddr>,
    /// How long a graceful stop may take before queued batches are dropped, as
    /// Spark's `spark.streaming.gracefulStopTimeout`. Default: ten batch intervals,
    /// but at least 30 s, so that short batches do not make a stop drop data that a
    /// busy machine needs a few seconds for (`DSTREAM_STOP_TIMEOUT_MS`).
    pub stop_timeout: Option<Duration>,
    /// Whether SIGINT (Ctrl-C) and SIGTERM stop the context gracefully once it has
    /// started: receivers stop accepting, everything already accepted is processed
    /// and output, a last checkpoint is written, and
    /// [`await_termination`](crate::StreamingContext::await_termination) returns `Ok`,
    /// so `main` can return and the process exit with status 0. A second signal
    /// during that stop exits the process at once with status 128 + the signal's
    /// number (130 for SIGINT, 143 for SIGTERM). The handlers stay installed for the
    /// life of the process: once the context has stopped these signals no longer end
    /// it by themselves. Default: off (`DSTREAM_STOP_ON_SIGNAL`,
    /// `spark.streaming.stopGracefullyOnShutdown`).
    pub stop_on_signal: bool,
    /// Whether batches go on after one fails, as in Spark: the first failure is still
    /// what `await_termination` returns (at once, while the context runs on), and the
    /// failed batches show in the listener and on the status page. A program with
    /// state (`update_state_by_key`, `map_with_state`, incremental windows) stops all
    /// the same, since its state cannot skip a batch. Default: off, a failed batch
    /// stops the context (`DSTREAM_CONTINUE_AFTER_FAILED_BATCH`).
    pub continue_after_failed_batch: bool,
    /// Whether receivers (sockets, user [`Receiver`](crate::Receiver)s) write what
    /// they store to a write-ahead log in the checkpoint directory before it counts as
    /// received, so that a program killed at any moment loses nothing it received, as
    /// Spark's `spark.streaming.receiver.writeAheadLog.enable`. Only with a checkpoint
    /// directory. Default: on, where Spark's is off
    /// (`DSTREAM_RECEIVER_WRITE_AHEAD_LOG`).
    pub receiver_write_ahead_log: bool,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            batch_interval: Duration::ZERO,
            parallelism: Parallelism::all_cores(),
            checkpoint_interval: None,
            receiver_max_rate: None,
            backpressure: false,
            backpressure_initial_rate: None,
            max_buffered_records: None,
            block_size: DEFAULT_BLOCK_SIZE,
            receiver_restart_delay: DEFAULT_RECEIVER_RESTART_DELAY,
            status_page: None,
            stop_timeout: None,
            stop_on_signal: false,
            continue_after_failed_batch: false,
            receiver_write_ahead_log: true,
        }
    }
}

impl StreamingConfig {
    /// The defaults, overridden by the `DSTREAM_*` environment variables that are set
    /// (see [`ENV_VARS`]).
    pub fn from_env() -> Result<StreamingConfig> {
        StreamingConfig::default().with_env()
    }

    /// This configuration, overridden by the `DSTREAM_*` environment variables that
    /// are set.
    pub fn with_env(self) -> Result<StreamingConfig> {
        self.with_vars(std::env::vars())
    }

    /// This configuration, overridden by the `DSTREAM_*` pairs among `vars`; other
    /// names are ignored. Values are checked as [`validate`](Self::validate) does,
    /// once all are read.
    pub fn with_vars<K, V>(self, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.with_pairs(ENV_VARS, vars)
    }

    /// This configuration, overridden by the Spark configuration keys among `conf`
    /// (see [`SPARK_KEYS`]), as PySpark's `SparkConf` gives them; other keys are
    /// ignored. Values are checked as [`validate`](Self::validate) does, once all are
    /// read.
    ///
    /// ```
    /// use dstream::StreamingConfig;
    /// use std::time::Duration;
    /// # fn main() -> dstream::Result<()> {
    /// let config = StreamingConfig { batch_interval: Duration::from_secs(1), ..StreamingConfig::default() }
    ///     .with_spark_conf([
    ///         ("spark.master", "local[3]"),
    ///         ("spark.streaming.backpressure.enabled", "true"),
    ///         ("spark.ui.port", "4040"),
    ///         ("spark.app.name", "ignored"),
    ///     ])?;
    /// assert_eq!(config.parallelism.threads(), 3);
    /// assert!(config.backpressure);
    /// assert_eq!(config.status_page, Some("127.0.0.1:4040".parse().unwrap()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_spark_conf<K, V>(self, conf: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.with_pairs(SPARK_KEYS, conf)
    }

    /// This configuration, overridden by the pairs whose names `known` lists.
    fn with_pairs<K, V>(
        mut self,
        known: &'static [(&'static str, &'static str)],
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (name, value) in pairs {
            let Some(&(name, _)) = known.iter().find(|(key, _)| *key == name.as_ref()) else {
                continue;
            };
            self.set(name, value.as_ref().trim())?;
        }
        self.validate()?;
        Ok(self)
    }

    fn set(&mut self, name: &'static str, value: &str) -> Result<()> {
        match name {
            "DSTREAM_BATCH_INTERVAL_MS" => self.batch_interval = millis(name, value)?,
            "DSTREAM_MASTER" | "DSTREAM_PARALLELISM" | "spark.master" => {
                self.parallelism = Parallelism::parse(value).map_err(|_| {
                    invalid(
                        name,
                        value,
                        "expected local, local[*], local[N], * or N > 0",
                    )
                })?;
            }
            "DSTREAM_CHECKPOINT_INTERVAL_MS" => {
                self.checkpoint_interval = Some(millis(name, value)?);
            }
            "DSTREAM_RECEIVER_MAX_RATE" | "spark.streaming.receiver.maxRate" => {
                self.receiver_max_rate = Some(number(name, value)?);
            }
            "DSTREAM_BACKPRESSURE" | "spark.streaming.backpressure.enabled" => {
                self.backpressure = boolean(name, value)?;
            }
            "DSTREAM_BACKPRESSURE_INITIAL_RATE" | "spark.streaming.backpressure.initialRate" => {
                self.backpressure_initial_rate = Some(number(name, value)?);
            }
            "DSTREAM_MAX_BUFFERED_RECORDS" => {
                self.max_buffered_records = Some(number(name, value)?);
            }
            "DSTREAM_BLOCK_SIZE" => self.block_size = number(name, value)?,
            "DSTREAM_RECEIVER_RESTART_DELAY_MS" => {
                self.receiver_restart_delay = millis(name, value)?;
            }
            "DSTREAM_STATUS_PAGE" => self.status_page = Some(address(name, value)?),
            "spark.ui.port" => {
                let port = number(name, value)?;
                self.status_page = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
            }
            "DSTREAM_STOP_TIMEOUT_MS" => self.stop_timeout = Some(millis(name, value)?),
            "DSTREAM_STOP_ON_SIGNAL" | "spark.streaming.stopGracefullyOnShutdown" => {
                self.stop_on_signal = boolean(name, value)?;
            }
            "DSTREAM_CONTINUE_AFTER_FAILED_BATCH" => {
                self.continue_after_failed_batch = boolean(name, value)?;
            }
            "DSTREAM_RECEIVER_WRITE_AHEAD_LOG"
            | "spark.streaming.receiver.writeAheadLog.enable" => {
                self.receiver_write_ahead_log = boolean(name, value)?;
            }
            _ => unreachable!("every name in ENV_VARS and SPARK_KEYS is handled"),
        }
        Ok(())
    }

    /// Checks the settings against each other: the batch interval is set and a whole
    /// number of milliseconds, the checkpoint interval is a multiple of it, counts and
    /// rates are positive.
    ///
    /// ```
    /// use dstream::{Error, StreamingConfig};
    /// use std::time::Duration;
    ///
    /// let mut config = StreamingConfig::default();
    /// config.batch_interval = Duration::from_secs(2);
    /// config.checkpoint_interval = Some(Duration::from_secs(3));
    /// let err = config.validate().unwrap_err();
    /// assert!(matches!(err, Error::InvalidSetting { setting: "checkpoint_interval", .. }), "{err}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let interval = self.batch_interval;
        if interval.is_zero() || !interval.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(Error::InvalidBatchInterval { interval });
        }
        if let Some(every) = self.checkpoint_interval {
            let (every_ms, batch_ms) = (every.as_millis(), interval.as_millis());
            if every_ms == 0
                || !every_ms.is_multiple_of(batch_ms)
                || every.subsec_nanos() % 1_000_000 != 0
            {
                return Err(invalid(
                    "checkpoint_interval",
                    &format!("{every:?}"),
                    &format!("it must be a positive multiple of the batch interval {interval:?}"),
                ));
            }
        }
        if self.receiver_max_rate == Some(0) {
            return Err(invalid(
                "receiver_max_rate",
                "0",
                "it must be at least 1 record per second; leave it unset for no limit",
            ));
        }
        if self.backpressure_initial_rate == Some(0) {
            return Err(invalid(
                "backpressure_initial_rate",
                "0",
                "it must be at least 1 record per second; leave it unset for none",
            ));
        }
        if self.max_buffered_records == Some(0) {
            return Err(invalid(
                "max_buffered_records",
                "0",
                "it must be at least 1; leave it unset for no bound",
            ));
        }
        if self.block_size == 0 {
            return Err(invalid("block_size", "0", "it must be at least 1"));
        }
        Ok(())
    }

    /// The rate controller of an input under backpressure.
    pub(crate) fn rate_controller(&self) -> RateController {
        let controller = RateController::new(self.batch_interval);
        match self.backpressure_initial_rate {
            Some(rate) => controller.with_initial_rate(rate),
            None => controller,
        }
    }

    /// How long a graceful stop may take: the setting, or ten batch intervals but at
    /// least [`MIN_DEFAULT_STOP_TIMEOUT`].
    pub fn effective_stop_timeout(&self) -> Duration {
        self.stop_timeout
            .unwrap_or((self.batch_interval * 10).max(MIN_DEFAULT_STOP_TIMEOUT))
    }
}

fn invalid(setting: &'static str, value: &str, reason: &str) -> Error {
    Error::InvalidSetting {
        setting,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn number<N: FromStr>(name: &'static str, value: &str) -> Result<N> {
    value
        .parse()
        .map_err(|_| invalid(name, value, "expected a whole number"))
}

fn millis(name: &'static str, value: &str) -> Result<Duration> {
    number(name, value)
        .map(Duration::from_millis)
        .map_err(|_| invalid(name, value, "expected a whole number of milliseconds"))
}

fn boolean(name: &'static str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(
            name,
            value,
            "expected true or false (or 1/0, yes/no, on/off)",
        )),
    }
}

/// An address, or a port on the loopback interface.
fn address(name: &'static str, value: &str) -> Result<SocketAddr> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    value.parse().map_err(|_| {
        invalid(
            name,
            value,
            "expected an address such as 127.0.0.1:4040, or a port",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<StreamingConfig> {
        let config = StreamingConfig {
            batch_interval: Duration::from_secs(1),
            ..StreamingConfig::default()
        };
        config.with_vars(vars.iter().copied())
    }

    #[test]
    fn every_variable_sets_its_setting() {
        let config = with(&[
            ("DSTREAM_BATCH_INTERVAL_MS", "500"),
            ("DSTREAM_PARALLELISM", "3"),
            ("DSTREAM_CHECKPOINT_INTERVAL_MS", "5000"),
            ("DSTREAM_RECEIVER_MAX_RATE", "1000"),
            ("DSTREAM_BACKPRESSURE", "true"),
            ("DSTREAM_BACKPRESSURE_INITIAL_RATE", "3000"),
            ("DSTREAM_MAX_BUFFERED_RECORDS", "20000"),
            ("DSTREAM_BLOCK_SIZE", "64"),
            ("DSTREAM_RECEIVER_RESTART_DELAY_MS", "100"),
            ("DSTREAM_STATUS_PAGE", "4040"),
            ("DSTREAM_STOP_TIMEOUT_MS", "30000"),
            ("DSTREAM_STOP_ON_SIGNAL", "on"),
            ("DSTREAM_CONTINUE_AFTER_FAILED_BATCH", "yes"),
            ("DSTREAM_RECEIVER_WRITE_AHEAD_LOG", "off"),
            ("HOME", "/ignored"),
        ])
        .unwrap();
        let expected = StreamingConfig {
            batch_interval: Duration::from_millis(500),
            parallelism: Parallelism::threads_exactly(3),
            checkpoint_interval: Some(Duration::from_secs(5)),
            receiver_max_rate: Some(1000),
            backpressure: true,
            backpressure_initial_rate: Some(3000),
            max_buffered_records: Some(20_000),
            block_size: 64,
            receiver_restart_delay: Duration::from_millis(100),
            status_page: Some("127.0.0.1:4040".parse().unwrap()),
            stop_timeout: Some(Duration::from_secs(30)),
            stop_on_signal: true,
            continue_after_failed_batch: true,
            receiver_write_ahead_log: false,
        };
        assert_eq!(config, expected);
        assert_eq!(ENV_VARS.len(), 15);
    }

    #[test]
    fn every_spark_key_sets_its_setting() {
        let config = StreamingConfig {
            batch_interval: Duration::from_secs(1),
            ..StreamingConfig::default()
        }
        .with_spark_conf([
            ("spark.master", "local[3]"),
            ("spark.streaming.receiver.maxRate", "1000"),
            ("spark.streaming.backpressure.enabled", "true"),
            ("spark.streaming.backpressure.initialRate", "3000"),
            ("spark.streaming.receiver.writeAheadLog.enable", "false"),
            ("spark.ui.port", "0"),
            ("spark.streaming.stopGracefullyOnShutdown", "true"),
            ("spark.app.name", "ignored"),
            ("DSTREAM_BLOCK_SIZE", "7"),
        ])
        .unwrap();
        let expected = StreamingConfig {
            batch_interval: Duration::from_secs(1),
            parallelism: Parallelism::threads_exactly(3),
            receiver_max_rate: Some(1000),
            backpressure: true,
            backpressure_initial_rate: Some(3000),
            receiver_write_ahead_log: false,
            status_page: Some("127.0.0.1:0".parse().unwrap()),
            stop_on_signal: true,
            ..StreamingConfig::default()
        };
        assert_eq!(config, expected);
        assert_eq!(SPARK_KEYS.len(), 7);
        let err = StreamingConfig::default()
            .with_spark_conf([("spark.ui.port", "http")])
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidSetting {
                    setting: "spark.ui.port",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_master_variable_takes_spark_settings() {
        let config = with(&[("DSTREAM_MASTER", "local[4]")]).unwrap();
        assert_eq!(config.parallelism.threads(), 4);
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let cases = [
            ("DSTREAM_BATCH_INTERVAL_MS", "1s"),
            ("DSTREAM_MASTER", "yarn"),
            ("DSTREAM_BACKPRESSURE", "maybe"),
            ("DSTREAM_RECEIVER_MAX_RATE", "-5"),
            ("DSTREAM_STATUS_PAGE", "localhost"),
        ];
        for (name, value) in cases {
            let err = with(&[(name, value)]).unwrap_err();
            match &err {
                Error::InvalidSetting {
                    setting, value: v, ..
                } => {
                    assert_eq!((*setting, v.as_str()), (name, value));
                }
                other => panic!("{name}={value}: {other}"),
            }
            let message = err.to_string();
            assert!(
                message.contains(name) && message.contains(value),
                "{message}"
            );
        }
    }

    #[test]
    fn settings_are_checked_together() {
        let zero_interval = StreamingConfig::default().validate().unwrap_err();
        assert!(matches!(zero_interval, Error::InvalidBatchInterval { .. }));
        for (vars, setting) in [
            (
                &[("DSTREAM_CHECKPOINT_INTERVAL_MS", "1500")][..],
                "checkpoint_interval",
            ),
            (
                &[("DSTREAM_RECEIVER_MAX_RATE", "0")][..],
                "receiver_max_rate",
            ),
            (
                &[("DSTREAM_MAX_BUFFERED_RECORDS", "0")][..],
                "max_buffered_records",
            ),
            (&[("DSTREAM_BLOCK_SIZE", "0")][..], "block_size"),
        ] {
            let err = with(vars).unwrap_err();
            assert!(
                matches!(err, Error::InvalidSetting { setting: s, .. } if s == setting),
                "{err}"
            );
        }
    }

    #[test]
    fn the_stop_timeout_defaults_to_ten_batches_and_at_least_30_seconds() {
        let config = with(&[]).unwrap();
        assert_eq!(config.effective_stop_timeout(), Duration::from_secs(30));
        let config = with(&[("DSTREAM_BATCH_INTERVAL_MS", "5000")]).unwrap();
        assert_eq!(config.effective_stop_timeout(), Duration::from_secs(50));
        let config = with(&[("DSTREAM_STOP_TIMEOUT_MS", "250")]).unwrap();
        assert_eq!(config.effective_stop_timeout(), Duration::from_millis(250));
    }
}
