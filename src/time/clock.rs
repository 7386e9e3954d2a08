//! Clocks: the system clock, and a manual clock that tests advance by hand.
//!
//! The job generator asks its clock for the time and waits on it for the next batch.
//! With a [`ManualClock`], a batch is generated exactly when a test advances the clock
//! past its time, so tests neither sleep nor depend on the machine's speed.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::{Time, duration_millis};

/// A source of time for the scheduler.
///
/// ```
/// use dstream::{Clock, ManualClock, Time};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Time::from_millis(0));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(clock.now(), Time::from_millis(1000));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Time;

    /// Blocks until the time is at least `target` or `max_wait` has passed, whichever
    /// comes first, and returns the time then.
    fn wait_until(&self, target: Time, max_wait: Duration) -> Time;

    /// Told, when a context recovers a checkpoint, the last batch time the checkpoint
    /// knows of. The system clock has moved on anyway; a manual clock moves there.
    fn resume_at(&self, time: Time) {
        let _ = time;
    }
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        Time::now()
    }

    fn wait_until(&self, target: Time, max_wait: Duration) -> Time {
        let now = self.now();
        let remaining = target.saturating_since(now);
        if !remaining.is_zero() {
            std::thread::sleep(remaining.min(max_wait));
        }
        self.now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use dstream::{Clock, ManualClock, Time};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Time::from_millis(5_000));
/// let handle = clock.clone();
/// handle.set_time(Time::from_millis(9_000));
/// assert_eq!(clock.now(), Time::from_millis(9_000));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    shared: Arc<(Mutex<Time>, Condvar)>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Time) -> Self {
        ManualClock {
            shared: Arc::new((Mutex::new(start), Condvar::new())),
        }
    }

    /// The time the clock stands at.
    pub fn now(&self) -> Time {
        *self.shared.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let (time, moved) = &*self.shared;
        let mut now = time.lock().unwrap_or_else(PoisonError::into_inner);
        *now = Time::from_millis(now.as_millis() + duration_millis(by));
        moved.notify_all();
    }

    /// Sets the clock to `to` (it may not go backwards: an earlier time is ignored).
    pub fn set_time(&self, to: Time) {
        let (time, moved) = &*self.shared;
        let mut now = time.lock().unwrap_or_else(PoisonError::into_inner);
        *now = (*now).max(to);
        moved.notify_all();
    }
}

impl Default for ManualClock {
    /// A clock standing at the Unix epoch.
    fn default() -> Self {
        ManualClock::new(Time::from_millis(0))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        ManualClock::now(self)
    }

    fn resume_at(&self, time: Time) {
        self.set_time(time);
    }

    fn wait_until(&self, target: Time, max_wait: Duration) -> Time {
        let (time, moved) = &*self.shared;
        let now = time.lock().unwrap_or_else(PoisonError::into_inner);
        let (now, _) = moved
            .wait_timeout_while(now, max_wait, |now| *now < target)
            .unwrap_or_else(PoisonError::into_inner);
        *now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_wakes_waiters_when_advanced() {
        let clock = ManualClock::default();
        let waiter = clock.clone();
        let handle = std::thread::spawn(move || {
            waiter.wait_until(Time::from_millis(2000), Duration::from_secs(60))
        });
        clock.advance(Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(handle.join().unwrap(), Time::from_millis(2000));
    }

    #[test]
    fn manual_clock_wait_gives_up_after_max_wait() {
        let clock = ManualClock::default();
        assert_eq!(
            clock.wait_until(Time::from_millis(10), Duration::from_millis(1)),
            Time::from_millis(0)
        );
    }

    #[test]
    fn manual_clock_never_goes_back() {
        let clock = ManualClock::new(Time::from_millis(50));
        clock.set_time(Time::from_millis(10));
        assert_eq!(clock.now(), Time::from_millis(50));
    }
}
