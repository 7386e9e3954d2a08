//! What each receiver is doing: connected, retrying after an error, or stopped.
//!
//! Receiver-based inputs (sockets, user [`Receiver`](crate::Receiver)s) report their
//! state changes to a [`ReceiverRegistry`] held by the context. The registry is what
//! [`StreamingContext::receiver_statuses`](crate::StreamingContext::receiver_statuses)
//! and the status page show, and it is where receivers log: once per change, not once
//! per attempt, so a server that stays down for an hour leaves one warning rather than
//! one every restart delay. A failure is logged when its error differs from the last
//! one logged, or when it ends a connection that had lasted [`STABLE_CONNECTION`]; a
//! connection is logged when it follows a logged failure, as a warning like the
//! failure ("reconnected to ... after N failed attempts"), so that a log filtered to
//! warnings says the receiver is back. A receiver that connects and fails the same way
//! over and over thus logs a few lines, then its status shows the rest
//! (`failed_attempts`, `last_error_ms`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::time::Clock;
use crate::time::Time;

/// A connection that lasted this long makes its failure worth logging even when the
/// error is the one logged last time.
pub(crate) const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// What a receiver is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverState {
    /// Started, not connected yet.
    Starting,
    /// Receiving: a socket is connected, a user receiver's `receive` is running.
    Connected,
    /// The last attempt failed (see [`ReceiverStatus::last_error`]); it tries again
    /// after the restart delay.
    Retrying,
    /// Stopped with the context, or a user receiver finished.
    Stopped,
}

/// One receiver's state, as [`StreamingContext::receiver_statuses`] reports it.
///
/// [`StreamingContext::receiver_statuses`]: crate::StreamingContext::receiver_statuses
///
/// ```
/// use dstream::{ManualClock, RddQueue, StreamingConfig, StreamingContext};
/// use std::time::Duration;
/// # fn main() -> dstream::Result<()> {
/// let ssc = StreamingContext::builder()
///     .config(StreamingConfig {
///         batch_interval: Duration::from_secs(1),
///         ..StreamingConfig::default()
///     })
///     .clock(ManualClock::default())
///     .build()?;
/// // Queue streams have no receiver; only socket and receiver streams are listed.
/// ssc.queue_stream(&RddQueue::<u8>::new(), true, None).count().pprint()?;
/// assert!(ssc.receiver_statuses().is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceiverStatus {
    /// The id of the input stream (its registration order in the context).
    pub stream_id: usize,
    /// The input stream, as messages name it: `#0 socket_text_stream`.
    pub stream: String,
    /// Where it receives from: `host:port` for sockets, the receiver's type name for
    /// user receivers.
    pub source: String,
    /// What it is doing now.
    pub state: ReceiverState,
    /// When it entered `state`, on the context's clock.
    #[serde(rename = "since_ms")]
    pub since: Time,
    /// The last error, kept after a later successful connection as history (see
    /// `last_error_resolved`).
    pub last_error: Option<String>,
    /// When the last error happened, on the context's clock.
    #[serde(rename = "last_error_ms")]
    pub last_error_time: Option<Time>,
    /// Whether the receiver connected after `last_error`: the error is then history,
    /// not what is wrong now. False while there is no error.
    pub last_error_resolved: bool,
    /// Failed attempts since the receiver was last connected.
    pub failed_attempts: u64,
}

/// The status of every receiver of a context.
#[derive(Default)]
pub(crate) struct ReceiverRegistry {
    receivers: Mutex<Vec<ReceiverStatus>>,
}

impl ReceiverRegistry {
    fn receivers(&self) -> MutexGuard<'_, Vec<ReceiverStatus>> {
        self.receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a receiver in the `starting` state; it reports through the returned handle.
    pub(crate) fn register(
        self: &Arc<Self>,
        stream_id: usize,
        stream: String,
        source: String,
        clock: Arc<dyn Clock>,
    ) -> ReceiverReporter {
        let mut receivers = self.receivers();
        receivers.push(ReceiverStatus {
            stream_id,
            stream,
            source,
            state: ReceiverState::Starting,
            since: clock.now(),
            last_error: None,
            last_error_time: None,
            last_error_resolved: false,
            failed_attempts: 0,
        });
        ReceiverReporter {
            registry: self.clone(),
            index: receivers.len() - 1,
            clock,
            last_logged_error: None,
            failure_logged_since_connection: true,
            connected_at: None,
        }
    }

    /// A copy of every receiver's status, in registration order.
    pub(crate) fn snapshot(&self) -> Vec<ReceiverStatus> {
        self.receivers().clone()
    }
}

/// How one receiver reports its state changes; each change is logged once.
pub(crate) struct ReceiverReporter {
    registry: Arc<ReceiverRegistry>,
    index: usize,
    clock: Arc<dyn Clock>,
    last_logged_error: Option<String>,
    /// Whether a failure was logged since the last logged connection (at first, true:
    /// the first connection is logged).
    failure_logged_since_connection: bool,
    /// When the current connection was made (wall time: the context's clock may be
    /// manual).
    connected_at: Option<Instant>,
}

impl ReceiverReporter {
    /// Applies `change` to this receiver's status and returns a copy of the result.
    fn update(&self, change: impl FnOnce(&mut ReceiverStatus, Time)) -> ReceiverStatus {
        let now = self.clock.now();
        let mut receivers = self.registry.receivers();
        let status = &mut receivers[self.index];
        let before = status.state;
        change(status, now);
        if status.state != before {
            status.since = now;
        }
        status.clone()
    }

    /// The receiver is receiving.
    pub(crate) fn connected(&mut self) {
        let mut failed_attempts = 0;
        let status = self.update(|status, _| {
            status.state = ReceiverState::Connected;
            failed_attempts = std::mem::take(&mut status.failed_attempts);
            if status.last_error.is_some() {
                status.last_error_resolved = true;
            }
        });
        self.connected_at = Some(Instant::now());
        if !self.failure_logged_since_connection {
            return;
        }
        self.failure_logged_since_connection = false;
        if self.last_logged_error.is_some() {
            // The failure was logged as a warning, which the default filter shows: the
            // recovery must show at the same level, or the log ends on "retrying"
            // while the receiver works again.
            tracing::warn!(
                "{}: reconnected to {} after {failed_attempts} failed attempt{}",
                status.stream,
                status.source,
                if failed_attempts == 1 { "" } else { "s" },
            );
        } else {
            tracing::info!("{}: connected to {}", status.stream, status.source);
        }
    }

    /// An attempt failed with `error`; the receiver tries again after `delay`.
    pub(crate) fn retrying(&mut self, error: String, delay: Duration) {
        let stable = self
            .connected_at
            .take()
            .is_some_and(|at| at.elapsed() >= STABLE_CONNECTION);
        let fresh = stable || self.last_logged_error.as_ref() != Some(&error);
        let status = self.update(|status, now| {
            status.state = ReceiverState::Retrying;
            status.last_error = Some(error.clone());
            status.last_error_time = Some(now);
            status.last_error_resolved = false;
            status.failed_attempts += 1;
        });
        if fresh {
            tracing::warn!(
                "{}: {error}; retrying every {delay:?} (logged again when this changes)",
                status.stream,
            );
            self.last_logged_error = Some(error);
            self.failure_logged_since_connection = true;
        }
    }

    /// Where the receiver reads from now, for inputs whose sources change while they
    /// run (a Kafka consumer group's assignment).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))] // only the Kafka group's input
    pub(crate) fn set_source(&self, source: String) {
        self.update(|status, _| status.source = source);
    }

    /// The receiver ended: stopped with the context or finished.
    pub(crate) fn stopped(&mut self) {
        let status = self.update(|status, _| status.state = ReceiverState::Stopped);
        tracing::info!(
            "{}: stopped receiving from {}",
            status.stream,
            status.source
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    fn reporter() -> (Arc<ReceiverRegistry>, ReceiverReporter, ManualClock) {
        let registry = Arc::new(ReceiverRegistry::default());
        let clock = ManualClock::new(Time::from_millis(1000));
        let reporter = registry.register(
            3,
            "#3 socket_text_stream".into(),
            "localhost:9999".into(),
            Arc::new(clock.clone()),
        );
        (registry, reporter, clock)
    }

    #[test]
    fn a_receiver_starts_in_the_starting_state() {
        let (registry, _reporter, _clock) = reporter();
        assert_eq!(
            registry.snapshot(),
            vec![ReceiverStatus {
                stream_id: 3,
                stream: "#3 socket_text_stream".into(),
                source: "localhost:9999".into(),
                state: ReceiverState::Starting,
                since: Time::from_millis(1000),
                last_error: None,
                last_error_time: None,
                last_error_resolved: false,
                failed_attempts: 0,
            }]
        );
    }

    #[test]
    fn failures_are_counted_until_the_next_connection_and_the_last_error_is_kept() {
        let (registry, mut reporter, clock) = reporter();
        reporter.retrying("refused".into(), Duration::from_secs(2));
        clock.advance(Duration::from_secs(2));
        reporter.retrying("refused".into(), Duration::from_secs(2));
        let status = &registry.snapshot()[0];
        assert_eq!(status.state, ReceiverState::Retrying);
        assert_eq!(status.since, Time::from_millis(1000));
        assert_eq!(status.last_error_time, Some(Time::from_millis(3000)));
        assert_eq!(status.failed_attempts, 2);
        assert!(!status.last_error_resolved);

        clock.advance(Duration::from_secs(2));
        reporter.connected();
        let status = &registry.snapshot()[0];
        assert_eq!(status.state, ReceiverState::Connected);
        assert_eq!(status.since, Time::from_millis(5000));
        assert_eq!(status.last_error.as_deref(), Some("refused"));
        assert!(status.last_error_resolved);
        assert_eq!(status.failed_attempts, 0);

        reporter.stopped();
        assert_eq!(registry.snapshot()[0].state, ReceiverState::Stopped);
    }

    /// Counts the events logged while `f` runs.
    fn events_logged(f: impl FnOnce()) -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tracing::span::{Attributes, Id, Record};
        use tracing::{Event, Metadata};

        #[derive(Default)]
        struct Counter(Arc<AtomicUsize>);
        impl tracing::Subscriber for Counter {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &Attributes<'_>) -> Id {
                Id::from_u64(1)
            }
            fn record(&self, _: &Id, _: &Record<'_>) {}
            fn record_follows_from(&self, _: &Id, _: &Id) {}
            fn event(&self, _: &Event<'_>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn enter(&self, _: &Id) {}
            fn exit(&self, _: &Id) {}
        }
        let counter = Counter::default();
        let count = counter.0.clone();
        tracing::subscriber::with_default(counter, f);
        count.load(Ordering::SeqCst)
    }

    #[test]
    fn a_lasting_outage_is_logged_once_and_each_change_once() {
        let (_registry, mut reporter, _clock) = reporter();
        let delay = Duration::from_secs(2);
        let refused = || "cannot connect to localhost:9999: refused".to_string();
        let logged = events_logged(|| {
            for _ in 0..10 {
                reporter.retrying(refused(), delay);
            }
        });
        assert_eq!(logged, 1);
        assert_eq!(events_logged(|| reporter.connected()), 1);
        let closed = "localhost:9999 closed the connection".to_string();
        assert_eq!(events_logged(|| reporter.retrying(closed, delay)), 1);
        assert_eq!(events_logged(|| reporter.retrying(refused(), delay)), 1);
        assert_eq!(events_logged(|| reporter.stopped()), 1);
    }

    /// The messages of the events that [`DEFAULT_FILTER`] lets through while `f` runs.
    ///
    /// [`DEFAULT_FILTER`]: crate::logging::DEFAULT_FILTER
    fn shown_by_default(f: impl FnOnce()) -> Vec<String> {
        use tracing::field::{Field, Visit};
        use tracing_subscriber::layer::{Context, SubscriberExt};
        use tracing_subscriber::{EnvFilter, Layer};

        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        struct Collect(Arc<Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> Layer<S> for Collect {
            fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
                let mut message = Message(String::new());
                event.record(&mut message);
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(message.0);
            }
        }
        let shown = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new(crate::logging::DEFAULT_FILTER))
            .with(Collect(shown.clone()));
        tracing::subscriber::with_default(subscriber, f);
        shown.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    #[test]
    fn a_reconnection_after_a_logged_failure_shows_at_the_default_filter() {
        let (_registry, mut reporter, _clock) = reporter();
        let refused = "cannot connect to localhost:9999: refused";
        let shown = shown_by_default(|| {
            reporter.connected();
            reporter.retrying(refused.into(), Duration::from_secs(2));
            reporter.retrying(refused.into(), Duration::from_secs(2));
            reporter.retrying(refused.into(), Duration::from_secs(2));
            reporter.connected();
        });
        assert_eq!(
            shown,
            vec![
                format!(
                    "#3 socket_text_stream: {refused}; retrying every 2s (logged again when this changes)"
                ),
                "#3 socket_text_stream: reconnected to localhost:9999 after 3 failed attempts"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_receiver_that_fails_the_same_way_after_each_start_logs_a_few_lines() {
        let (registry, mut reporter, _clock) = reporter();
        let logged = events_logged(|| {
            for _ in 0..10 {
                reporter.connected();
                reporter.retrying("boom".into(), Duration::from_secs(2));
            }
        });
        assert_eq!(logged, 3);
        assert_eq!(registry.snapshot()[0].failed_attempts, 1);
    }
}
