//! How fast a receiver may store records: a token bucket on the context's clock,
//! taken from once per block, never per record.
//!
//! The rate is the smaller of the receiver's maximum rate and, with backpressure, the
//! rate its [`RateController`] estimates. A receiver that has stored more than its rate
//! allows waits before it stores its next block; a socket receiver then stops reading,
//! so the sender is held back by TCP. Tokens accrue with the context's clock, so on a
//! [`ManualClock`](crate::ManualClock) a test decides exactly how much may arrive.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::RateController;
use crate::time::{Clock, Time};

/// How often a waiting receiver looks at its stop signal and at a changed rate.
const POLL: Duration = Duration::from_millis(20);

/// A block passes whole, so under a rate limit blocks are kept to about this much
/// time's worth of records: otherwise a large socket read would pass as one burst.
const MAX_BLOCK_TIME: Duration = Duration::from_millis(100);

/// Credit saved while a receiver is idle is capped at this much time's worth, so a
/// quiet receiver cannot burst far above its rate afterwards.
const MAX_SAVED: Duration = Duration::from_secs(1);

pub(crate) struct RateLimiter {
    clock: Arc<dyn Clock>,
    max_rate: Option<u64>,
    controller: Option<Arc<RateController>>,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    /// Records that may be stored now, in thousandths of a record (so that an integer
    /// rate over whole milliseconds is exact); negative after a block larger than the
    /// credit.
    milli_tokens: f64,
    /// When the tokens were last brought up to date.
    updated: Option<Time>,
}

impl RateLimiter {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        max_rate: Option<u64>,
        controller: Option<Arc<RateController>>,
    ) -> Self {
        RateLimiter {
            clock,
            max_rate,
            controller,
            bucket: Mutex::new(Bucket {
                milli_tokens: 0.0,
                updated: None,
            }),
        }
    }

    /// Whether there is any limit: without one, receivers never wait here.
    pub(crate) fn is_limited(&self) -> bool {
        self.max_rate.is_some() || self.controller.is_some()
    }

    /// How many records to store per block: `block_size`, or fewer under a low rate.
    pub(crate) fn block_size(&self, block_size: usize) -> usize {
        match self.rate() {
            Some(rate) => {
                let per_block = (rate * MAX_BLOCK_TIME.as_secs_f64()).ceil() as usize;
                block_size.min(per_block.max(1))
            }
            None => block_size,
        }
    }

    /// Records per second allowed now, if any limit applies yet.
    fn rate(&self) -> Option<f64> {
        let estimated = self.controller.as_ref().and_then(|c| c.current_rate());
        match (self.max_rate.map(|r| r as f64), estimated) {
            (Some(max), Some(estimated)) => Some(max.min(estimated)),
            (max, estimated) => max.or(estimated),
        }
    }

    /// Takes `records` tokens, first waiting while the bucket is in debt. Returns
    /// `false` without taking them if `stopped` turns true while it waits.
    ///
    /// A block may take the bucket below zero: the next one waits until the debt is
    /// paid, so over any stretch of time at most `rate * time + one block` records pass.
    pub(crate) fn acquire(&self, records: usize, stopped: &dyn Fn() -> bool) -> bool {
        if !self.is_limited() {
            return true;
        }
        loop {
            let wait_until = {
                let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                let now = self.clock.now();
                let Some(rate) = self.rate() else {
                    bucket.updated = None;
                    return true;
                };
                if let Some(updated) = bucket.updated {
                    // records/s times ms: thousandths of a record.
                    let gained = now.saturating_since(updated).as_millis() as f64 * rate;
                    let most = rate * MAX_SAVED.as_millis() as f64;
                    bucket.milli_tokens = (bucket.milli_tokens + gained).min(most);
                }
                bucket.updated = Some(now);
                if bucket.milli_tokens >= 0.0 {
                    bucket.milli_tokens -= records as f64 * 1000.0;
                    return true;
                }
                let debt_ms = (-bucket.milli_tokens / rate).ceil() as i64;
                Time::from_millis(now.as_millis() + debt_ms.max(1))
            };
            if stopped() {
                return false;
            }
            self.clock.wait_until(wait_until, POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    fn limiter(clock: &ManualClock, rate: u64) -> RateLimiter {
        RateLimiter::new(Arc::new(clock.clone()), Some(rate), None)
    }

    #[test]
    fn without_a_limit_nothing_waits() {
        let clock = ManualClock::default();
        let unlimited = RateLimiter::new(Arc::new(clock), None, None);
        assert!(!unlimited.is_limited());
        assert!((0..100).all(|_| unlimited.acquire(1_000_000, &|| false)));
    }

    #[test]
    fn a_block_in_debt_waits_for_the_clock() {
        let clock = ManualClock::default();
        let limiter = Arc::new(limiter(&clock, 100));
        // The first block passes and leaves the bucket 50 records in debt: 500 ms.
        assert!(limiter.acquire(50, &|| false));
        clock.advance(Duration::from_millis(499));
        assert!(
            !limiter.acquire(50, &|| true),
            "passed while 1 record in debt"
        );
        let waiting = limiter.clone();
        let waiter = std::thread::spawn(move || waiting.acquire(50, &|| false));
        clock.advance(Duration::from_millis(1));
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn blocks_shrink_to_a_tenth_of_a_second_of_the_rate() {
        let clock = ManualClock::default();
        assert_eq!(limiter(&clock, 3).block_size(1024), 1);
        assert_eq!(limiter(&clock, 5_000).block_size(1024), 500);
        assert_eq!(limiter(&clock, 1_000_000).block_size(1024), 1024);
        let unlimited = RateLimiter::new(Arc::new(clock), None, None);
        assert_eq!(unlimited.block_size(1024), 1024);
    }

    #[test]
    fn a_stop_ends_the_wait_without_taking_tokens() {
        let clock = ManualClock::default();
        let limiter = limiter(&clock, 10);
        assert!(limiter.acquire(100, &|| false));
        assert!(!limiter.acquire(1, &|| true));
    }

    #[test]
    fn idle_credit_is_capped_at_one_second() {
        let clock = ManualClock::default();
        let limiter = limiter(&clock, 100);
        assert!(limiter.acquire(0, &|| false));
        clock.advance(Duration::from_secs(60));
        // 100 tokens saved, not 6,000: a block of 300 passes and leaves 200 in debt.
        assert!(limiter.acquire(300, &|| false));
        assert!(!limiter.acquire(1, &|| true));
        clock.advance(Duration::from_secs(2));
        assert!(limiter.acquire(1, &|| true));
    }
}
