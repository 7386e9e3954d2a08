//! Backpressure: how fast an input may take records, estimated from how fast batches
//! are processed, as Spark's `spark.streaming.backpressure.enabled` does.
//!
//! Each rate-limited input has a [`RateController`]. After every batch the scheduler
//! tells it how many records the input gave that batch and how long the batch took
//! and waited; a [`PidRateEstimator`] turns that into a new rate, which the input's
//! receiver reads before it stores each block. When input outruns processing the rate
//! falls until batches take about one interval again and the scheduling delay drains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::time::{Time, duration_millis};

/// The correction for scheduling delay never takes the rate below this share of the
/// measured processing rate.
const MIN_SHARE_OF_PROCESSING_RATE: f64 = 0.5;

/// Spark's PID rate estimator (`PIDRateEstimator`), made to settle instead of
/// collapse: the new rate is the previous one corrected by how far the measured
/// processing rate is from it (proportional), by the records the scheduling delay
/// stands for (integral), and by how fast that error changes (derivative).
///
/// Two changes from Spark, both so that an overloaded stream settles near the rate it
/// can sustain within a few batches:
///
/// * Spark lets the correction for the scheduling delay take the rate down to its
///   minimum (100 records/s) once the delay passes five intervals, and the stream then
///   crawls for as long as the delay takes to drain. Here the rate never falls below
///   half the measured processing rate (nor below the minimum): the backlog drains at
///   half speed while the stream keeps moving.
/// * Spark measures its first batch without estimating, so the first two batches take
///   whatever arrived. Here the first measured batch gives the first estimate.
///
/// ```
/// use dstream::scheduler::PidRateEstimator;
/// use std::time::Duration;
///
/// let mut pid = PidRateEstimator::new(Duration::from_secs(1));
/// // 10,000 records processed in 10 s: 1,000 records/s, less 0.2 * the 1,000 records
/// // that 1 s of scheduling delay stands for.
/// assert_eq!(pid.compute(11_000, 10_000, 10_000, 1_000), Some(800.0));
/// // The same rate, but the batch waited 9 s: 1,000 - 0.2 * 9,000 is below half the
/// // processing rate, where the rate stops.
/// assert_eq!(pid.compute(21_000, 10_000, 10_000, 9_000), Some(500.0));
/// ```
#[derive(Clone, Debug)]
pub struct PidRateEstimator {
    batch_interval_ms: f64,
    proportional: f64,
    integral: f64,
    derivative: f64,
    min_rate: f64,
    first_run: bool,
    latest_time: i64,
    latest_rate: f64,
    latest_error: f64,
}

impl PidRateEstimator {
    /// Spark's defaults: proportional 1.0, integral 0.2, derivative 0.0, minimum rate
    /// 100 records per second.
    pub fn new(batch_interval: Duration) -> Self {
        PidRateEstimator::with_gains(batch_interval, 1.0, 0.2, 0.0, 100.0)
    }

    /// An estimator with other gains (each at least 0) and minimum rate (above 0).
    pub fn with_gains(
        batch_interval: Duration,
        proportional: f64,
        integral: f64,
        derivative: f64,
        min_rate: f64,
    ) -> Self {
        PidRateEstimator {
            batch_interval_ms: duration_millis(batch_interval).max(1) as f64,
            proportional: proportional.max(0.0),
            integral: integral.max(0.0),
            derivative: derivative.max(0.0),
            min_rate: if min_rate > 0.0 { min_rate } else { 1.0 },
            first_run: true,
            latest_time: -1,
            latest_rate: -1.0,
            latest_error: -1.0,
        }
    }

    /// The new rate (records per second) after a batch that completed at `time_ms`
    /// (milliseconds), with `elements` records that took `processing_delay_ms` and
    /// waited `scheduling_delay_ms`. `None` when nothing can be estimated: an empty
    /// batch, a batch that took no time, or one not newer than the last.
    pub fn compute(
        &mut self,
        time_ms: i64,
        elements: u64,
        processing_delay_ms: u64,
        scheduling_delay_ms: u64,
    ) -> Option<f64> {
        if time_ms <= self.latest_time || elements == 0 || processing_delay_ms == 0 {
            return None;
        }
        let since_update = (time_ms - self.latest_time) as f64 / 1000.0;
        let processing_rate = elements as f64 / processing_delay_ms as f64 * 1000.0;
        // The first batch: no earlier estimate to correct, so start from what it measured.
        let (latest_rate, latest_error) = if self.first_run {
            (processing_rate, 0.0)
        } else {
            (self.latest_rate, self.latest_error)
        };
        let error = latest_rate - processing_rate;
        // The records the scheduling delay stands for, as a rate over one batch.
        let historical_error =
            scheduling_delay_ms as f64 * processing_rate / self.batch_interval_ms;
        let d_error = if self.first_run {
            0.0
        } else {
            (error - latest_error) / since_update
        };
        let floor = self
            .min_rate
            .max(processing_rate * MIN_SHARE_OF_PROCESSING_RATE);
        let new_rate = (latest_rate
            - self.proportional * error
            - self.integral * historical_error
            - self.derivative * d_error)
            .max(floor);
        self.latest_time = time_ms;
        self.first_run = false;
        self.latest_rate = new_rate;
        self.latest_error = error;
        Some(new_rate)
    }
}

/// The rate one input may take records at, kept up to date from batch completions.
/// Other inputs (a Kafka stream, say) read [`current_rate`](Self::current_rate) to size
/// what they take per batch.
///
/// ```
/// use dstream::scheduler::RateController;
/// use dstream::Time;
/// use std::time::Duration;
///
/// let controller = RateController::new(Duration::from_secs(1));
/// assert_eq!(controller.current_rate(), None); // no limit until a batch is measured
/// let second = Duration::from_secs(1);
/// controller.batch_completed(Time::from_millis(2_000), 5_000, second * 2, Duration::ZERO);
/// assert_eq!(controller.current_rate(), Some(2_500.0));
/// ```
#[derive(Debug)]
pub struct RateController {
    estimator: Mutex<PidRateEstimator>,
    /// The rate until the first estimate (Spark's `backpressure.initialRate`).
    initial: Option<f64>,
    /// The latest rate's bits; 0 (the bits of 0.0, never an estimate) means none yet.
    rate: AtomicU64,
}

impl RateController {
    /// A controller with Spark's PID estimator for this batch interval.
    pub fn new(batch_interval: Duration) -> Self {
        RateController::with_estimator(PidRateEstimator::new(batch_interval))
    }

    /// A controller with the given estimator.
    pub fn with_estimator(estimator: PidRateEstimator) -> Self {
        RateController {
            estimator: Mutex::new(estimator),
            initial: None,
            rate: AtomicU64::new(0),
        }
    }

    /// This controller, giving `records_per_second` until the first estimate, as
    /// Spark's `spark.streaming.backpressure.initialRate`: so that the batches before
    /// the first estimate do not take whatever arrives.
    ///
    /// ```
    /// use dstream::scheduler::RateController;
    /// use std::time::Duration;
    ///
    /// let controller = RateController::new(Duration::from_secs(1)).with_initial_rate(5_000);
    /// assert_eq!(controller.current_rate(), Some(5_000.0));
    /// ```
    pub fn with_initial_rate(mut self, records_per_second: u64) -> Self {
        self.initial = Some(records_per_second as f64);
        self
    }

    /// The latest estimate in records per second; before there is one, the initial
    /// rate if one was given, else `None`.
    pub fn current_rate(&self) -> Option<f64> {
        match self.rate.load(Ordering::Relaxed) {
            0 => self.initial,
            bits => Some(f64::from_bits(bits)),
        }
    }

    /// Feeds a completed batch: when its processing ended, the records this input gave
    /// it, and its processing and scheduling delays.
    pub fn batch_completed(
        &self,
        processing_end: Time,
        records: u64,
        processing_delay: Duration,
        scheduling_delay: Duration,
    ) {
        let estimate = self
            .estimator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .compute(
                processing_end.as_millis(),
                records,
                duration_millis(processing_delay).max(0) as u64,
                duration_millis(scheduling_delay).max(0) as u64,
            );
        if let Some(rate) = estimate {
            tracing::debug!(rate, records, "backpressure: new receiving rate");
            self.rate.store(rate.to_bits(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn estimates_follow_the_pid_formula() {
        let mut pid = PidRateEstimator::new(Duration::from_secs(1));
        // First batch: processing rate 2,000/s, no delay: the first estimate is that rate.
        let rate = pid.compute(1_000, 1_000, 500, 0).unwrap();
        assert!(close(rate, 2_000.0), "{rate}");
        // Second: processing rate 1,000/s, 200 ms scheduling delay, 1 s since update.
        // error = 2000 - 1000 = 1000; historical = 200 * 1000 / 1000 = 200;
        // new = 2000 - 1.0 * 1000 - 0.2 * 200 = 960.
        let rate = pid.compute(2_000, 1_000, 1_000, 200).unwrap();
        assert!(close(rate, 960.0), "{rate}");
        // Third: 800 records in 400 ms = 2,000/s, no delay.
        // error = 960 - 2000 = -1040; new = 960 + 1040 = 2000.
        let rate = pid.compute(3_000, 800, 400, 0).unwrap();
        assert!(close(rate, 2_000.0), "{rate}");
    }

    #[test]
    fn the_first_batch_gives_an_estimate_corrected_for_its_delay() {
        let mut pid = PidRateEstimator::new(Duration::from_secs(1));
        // 4,000 records in 2 s, after waiting 1 s: 2,000/s less 0.2 * 2,000.
        let rate = pid.compute(3_000, 4_000, 2_000, 1_000).unwrap();
        assert!(close(rate, 1_600.0), "{rate}");
    }

    #[test]
    fn the_derivative_term_uses_the_change_of_error_per_second() {
        let mut pid = PidRateEstimator::with_gains(Duration::from_secs(1), 1.0, 0.0, 0.5, 1.0);
        let rate = pid.compute(1_000, 100, 100, 0).unwrap(); // 1,000/s, latest error 0
        assert!(close(rate, 1_000.0), "{rate}");
        // 500/s two seconds later: error = 1000 - 500 = 500; dError = (500 - 0) / 2 = 250;
        // new = 1000 - 500 - 0.5 * 250 = 375, above half the processing rate.
        let rate = pid.compute(3_000, 100, 200, 0).unwrap();
        assert!(close(rate, 375.0), "{rate}");
    }

    #[test]
    fn a_long_delay_halves_the_rate_instead_of_collapsing_it() {
        // Spark's estimator gives its minimum, 100/s, here: the stream would crawl for
        // as long as the minute of delay takes to drain.
        let mut pid = PidRateEstimator::new(Duration::from_millis(500));
        let rate = pid.compute(1_000, 10_000, 1_000, 0).unwrap();
        assert!(close(rate, 10_000.0), "{rate}");
        // 10,000/s with 60 s of scheduling delay: the correction is far below zero.
        assert_eq!(pid.compute(2_000, 10_000, 1_000, 60_000), Some(5_000.0));
    }

    #[test]
    fn the_rate_never_falls_below_the_minimum() {
        let mut pid = PidRateEstimator::new(Duration::from_millis(500));
        // 10/s with 60 s of scheduling delay: half of 10/s is below the minimum of 100/s.
        assert_eq!(pid.compute(2_000, 10, 1_000, 60_000), Some(100.0));
    }

    #[test]
    fn batches_that_say_nothing_are_skipped() {
        let mut pid = PidRateEstimator::new(Duration::from_secs(1));
        assert_eq!(pid.compute(1_000, 0, 100, 0), None); // empty
        assert_eq!(pid.compute(1_000, 100, 0, 0), None); // took no time
        assert!(pid.compute(1_000, 100, 100, 0).is_some()); // the first measured run
        assert_eq!(pid.compute(1_000, 100, 100, 0), None); // not newer
        assert_eq!(pid.compute(500, 100, 100, 0), None); // older
        assert!(pid.compute(2_000, 100, 100, 0).is_some());
    }

    #[test]
    fn the_controller_publishes_estimates() {
        let controller = RateController::new(Duration::from_secs(1));
        let ms = Duration::from_millis;
        assert_eq!(controller.current_rate(), None);
        controller.batch_completed(Time::from_millis(1_000), 1_000, ms(500), ms(0));
        let rate = controller.current_rate().unwrap();
        assert!(close(rate, 2_000.0), "{rate}");
        controller.batch_completed(Time::from_millis(2_000), 1_000, ms(1_000), ms(200));
        let rate = controller.current_rate().unwrap();
        assert!(close(rate, 960.0), "{rate}");
    }
}
