//! Batch times and durations.
//!
//! A [`Time`] is a point in milliseconds since the Unix epoch, as in Spark. Intervals
//! (batch interval, window length, slide) are [`std::time::Duration`]s and must be whole
//! milliseconds.
//!
//! A [`Clock`] says what time it is: the [`SystemClock`], or a [`ManualClock`] that
//! tests advance by hand.

mod clock;

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use chrono::{Local, TimeZone};
use serde::{Deserialize, Serialize};

pub use clock::{Clock, ManualClock, SystemClock};

/// A point in time, in milliseconds since the Unix epoch. Batch times are `Time`s.
///
/// ```
/// use dstream::Time;
/// use std::time::Duration;
///
/// let t = Time::from_millis(1_714_450_000_000);
/// assert_eq!((t + Duration::from_secs(10)).as_millis(), 1_714_450_010_000);
/// assert_eq!(t.to_string(), "1714450000000 ms");
/// ```
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Time(i64);

impl Time {
    /// The time `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Time {
        Time(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Time {
        Time(chrono::Utc::now().timestamp_millis())
    }

    /// Whether this time lies on the grid `origin + k * step` for some whole `k`.
    pub(crate) fn is_multiple_of(self, step: Duration, origin: Time) -> bool {
        let step = duration_millis(step);
        step > 0 && (self.0 - origin.0).rem_euclid(step) == 0
    }

    /// The first time strictly after `self` on the grid `k * step`.
    pub(crate) fn next_multiple(self, step: Duration) -> Time {
        let step = duration_millis(step).max(1);
        Time((self.0.div_euclid(step) + 1) * step)
    }

    /// The time since `earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// Formats the time as PySpark's `pprint` does: local time, `YYYY-MM-DD HH:MM:SS`,
    /// followed by `.ffffff` when the time is not a whole second (Python's `str(datetime)`).
    ///
    /// ```
    /// use dstream::Time;
    /// let text = Time::from_millis(1_714_450_000_000).to_local_string();
    /// assert_eq!(text.len(), "2024-04-30 04:06:40".len());
    /// ```
    pub fn to_local_string(self) -> String {
        format_in_zone(self, &Local)
    }
}

/// Formats `time` in `zone` the way Python's `str(datetime)` does.
pub(crate) fn format_in_zone<Tz: TimeZone>(time: Time, zone: &Tz) -> String
where
    Tz::Offset: fmt::Display,
{
    match zone.timestamp_millis_opt(time.0).single() {
        Some(moment) => {
            let mut text = moment.format("%Y-%m-%d %H:%M:%S").to_string();
            let millis = time.0.rem_euclid(1000);
            if millis != 0 {
                text.push_str(&format!(".{:06}", millis * 1000));
            }
            text
        }
        None => time.to_string(),
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(duration_millis(rhs)))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, rhs: Duration) -> Time {
        Time(self.0.saturating_sub(duration_millis(rhs)))
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `d` is a positive whole multiple of `base`.
pub(crate) fn is_positive_multiple(d: Duration, base: Duration) -> bool {
    let (d, base) = (d.as_nanos(), base.as_nanos());
    d > 0 && base > 0 && d % base == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn formats_whole_seconds_like_python() {
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            format_in_zone(Time::from_millis(1_714_449_940_000), &utc),
            "2024-04-30 04:05:40"
        );
    }

    #[test]
    fn formats_fractions_like_python() {
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            format_in_zone(Time::from_millis(1_714_449_940_500), &plus2),
            "2024-04-30 06:05:40.500000"
        );
    }

    #[test]
    fn grid_arithmetic() {
        let s = Duration::from_secs(10);
        assert_eq!(Time(0).next_multiple(s), Time(10_000));
        assert_eq!(Time(10_000).next_multiple(s), Time(20_000));
        assert_eq!(Time(12_345).next_multiple(s), Time(20_000));
        assert!(Time(30_000).is_multiple_of(Duration::from_secs(20), Time(10_000)));
        assert!(!Time(20_000).is_multiple_of(Duration::from_secs(20), Time(10_000)));
        assert!(is_positive_multiple(Duration::from_secs(20), s));
        assert!(!is_positive_multiple(Duration::from_secs(15), s));
        assert!(!is_positive_multiple(Duration::ZERO, s));
    }

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        assert_eq!(Time(i64::MAX - 1) + Duration::MAX, Time(i64::MAX));
        assert_eq!(Time(i64::MIN + 1) - Duration::MAX, Time(i64::MIN));
    }

    #[test]
    fn since_saturates() {
        assert_eq!(Time(5).saturating_since(Time(2)), Duration::from_millis(3));
        assert_eq!(Time(2).saturating_since(Time(5)), Duration::ZERO);
    }
}
