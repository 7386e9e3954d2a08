//! `rate_stream`: generated `(timestamp, value)` rows at a steady rate, as Spark's
//! `rate` source, for demos and load tests.
//!
//! Row `i` has value `i` and timestamp `origin + i / rate` seconds, where `origin` is
//! one batch interval before the first batch. A batch holds exactly the rows whose
//! timestamps fall in its interval, so the output depends only on the batch times,
//! never on the machine's speed. Rows are generated in parallel when the batch runs.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::{Cut, InputSource, ReceivedCounter, SourceContext};
use crate::error::{Error, Result};
use crate::rdd::{ExecEnv, PartitionIter, Rdd, RddNode};
use crate::time::{Clock, Time};

pub(crate) struct RateInput {
    rows_per_second: u64,
    origin: OnceLock<Time>,
    clock: OnceLock<Arc<dyn Clock>>,
    next_row: Mutex<u64>,
    received: Arc<ReceivedCounter>,
}

impl RateInput {
    pub(crate) fn new(rows_per_second: u64, received: Arc<ReceivedCounter>) -> Self {
        RateInput {
            rows_per_second,
            origin: OnceLock::new(),
            clock: OnceLock::new(),
            next_row: Mutex::new(0),
            received,
        }
    }

    /// The rows `start..end` as an `Rdd`, generated when computed.
    fn rows(&self, start: u64, end: u64, env: &Arc<ExecEnv>) -> Rdd<(Time, u64)> {
        Rdd::from_node(
            RateRows {
                start,
                end: end.max(start),
                origin: self.origin.get().copied().unwrap_or_default(),
                rows_per_second: self.rows_per_second,
                partitions: env.parallelism().max(1),
            },
            env.clone(),
        )
    }

    /// How many rows have timestamps at or before `time`.
    fn rows_until(&self, time: Time) -> u64 {
        let Some(origin) = self.origin.get() else {
            return 0;
        };
        let elapsed = u128::try_from(time.as_millis() - origin.as_millis()).unwrap_or(0);
        u64::try_from(elapsed * u128::from(self.rows_per_second) / 1000).unwrap_or(u64::MAX)
    }
}

impl InputSource<(Time, u64)> for RateInput {
    fn start(&self, ctx: &SourceContext) -> Result<()> {
        let _ = self.origin.set(ctx.origin);
        let _ = self.clock.set(ctx.clock.clone());
        Ok(())
    }

    /// The rows of the interval; the replay record is their range.
    fn cut(&self, time: Time, env: &Arc<ExecEnv>) -> Cut<(Time, u64)> {
        let end = self.rows_until(time);
        let start = {
            let mut next = self.next_row.lock().unwrap_or_else(PoisonError::into_inner);
            let start = (*next).min(end);
            *next = end;
            start
        };
        self.received.add(end - start);
        Cut {
            rdd: self.rows(start, end, env),
            records: end - start,
            replay: crate::checkpoint::encode(&(start, end)).ok(),
        }
    }

    fn position(&self) -> Option<Vec<u8>> {
        let next = *self.next_row.lock().unwrap_or_else(PoisonError::into_inner);
        crate::checkpoint::encode(&next).ok()
    }

    fn restore(&self, position: &[u8]) -> Result<()> {
        let next: u64 = crate::checkpoint::decode(position).map_err(|reason| Error::Codec {
            action: "decode",
            stream: "rate_stream".into(),
            reason,
        })?;
        *self.next_row.lock().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    fn replay(&self, replay: &[u8], env: &Arc<ExecEnv>) -> Option<(Rdd<(Time, u64)>, u64)> {
        let (start, end): (u64, u64) = crate::checkpoint::decode(replay).ok()?;
        Some((self.rows(start, end, env), end.saturating_sub(start)))
    }

    fn has_pending(&self) -> bool {
        let now = self.clock.get().map(|clock| clock.now());
        let next = *self.next_row.lock().unwrap_or_else(PoisonError::into_inner);
        now.is_some_and(|now| self.rows_until(now) > next)
    }

    fn stop(&self) {}
}

/// The rows `start..end`, split into contiguous ranges, one per partition.
struct RateRows {
    start: u64,
    end: u64,
    origin: Time,
    rows_per_second: u64,
    partitions: usize,
}

impl RddNode<(Time, u64)> for RateRows {
    fn num_partitions(&self) -> usize {
        self.partitions
    }

    fn prepare(&self) {}

    fn compute(&self, partition: usize) -> PartitionIter<(Time, u64)> {
        let total = u128::from(self.end - self.start);
        let (parts, index) = (self.partitions as u128, partition as u128);
        let offset = |i: u128| u64::try_from(total * i / parts).unwrap_or(u64::MAX);
        let from = self.start.saturating_add(offset(index));
        let to = self.start.saturating_add(offset(index + 1));
        let (origin, rate) = (
            self.origin.as_millis(),
            u128::from(self.rows_per_second.max(1)),
        );
        Box::new((from..to).map(move |value| {
            let offset = i64::try_from(u128::from(value) * 1000 / rate).unwrap_or(i64::MAX);
            (Time::from_millis(origin.saturating_add(offset)), value)
        }))
    }
}
