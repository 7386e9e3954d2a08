//! Input streams: where batches get their data.
//!
//! Each input stream has an [`InputSource`]: started with the context, asked at every
//! batch time for the data of the interval that just ended (`cut`), stopped with the
//! context. Receiver-based sources (`socket`, user [`Receiver`]s) collect records in a
//! [`buffer::BlockBuffer`] as they arrive; the others (`file`, `queue`, `rate`) produce
//! a batch's data when it is cut.

pub(crate) mod buffer;
mod file;
mod lines;
mod queue;
mod rate;
mod receiver;
mod socket;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::dstream::{GraphNode, StreamNode};
use crate::error::Result;
use crate::rdd::{Data, ExecEnv, Rdd};
use crate::scheduler::Clock;
use crate::time::Time;

pub(crate) use file::FileInput;
pub(crate) use queue::QueueInput;
pub use queue::RddQueue;
pub(crate) use rate::RateInput;
pub(crate) use receiver::ReceiverInput;
pub use receiver::{Receiver, ReceiverSink};
pub(crate) use socket::SocketInput;

/// What sources get from the context when it starts.
pub(crate) struct SourceContext {
    /// The runtime network receivers run on.
    pub(crate) tokio: tokio::runtime::Handle,
    /// How long a failed receiver waits before it tries again.
    pub(crate) restart_delay: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    /// The time just before the first batch: rows of the rate source count from here.
    pub(crate) origin: Time,
}

/// One kind of input, producing elements of type `T`.
pub(crate) trait InputSource<T>: Send + Sync + 'static {
    /// Starts receiving (connects, spawns receivers, snapshots directories).
    fn start(&self, ctx: &SourceContext) -> Result<()>;

    /// The data of the batch at `time` and how many records it holds.
    fn cut(&self, time: Time, env: &Arc<ExecEnv>) -> (Rdd<T>, u64);

    /// Whether data is waiting that a final batch should process on graceful stop.
    fn has_pending(&self) -> bool;

    /// Stops receiving. Data received before stays available to `cut`.
    fn stop(&self);
}

/// An input stream as the scheduler sees it.
pub(crate) trait InputHandle: Send + Sync + 'static {
    fn node(&self) -> Arc<dyn GraphNode>;
    fn start(&self, ctx: &SourceContext) -> Result<()>;
    /// Cuts the batch at `time` into the stream; returns the number of records.
    fn generate(&self, time: Time) -> u64;
    fn has_pending(&self) -> bool;
    fn stop(&self);
}

/// An input stream's node joined to its source.
pub(crate) struct InputStream<T> {
    node: Arc<StreamNode<T>>,
    source: Box<dyn InputSource<T>>,
    env: Arc<ExecEnv>,
    received: Arc<AtomicU64>,
}

impl<T: Data> InputStream<T> {
    pub(crate) fn new(
        node: Arc<StreamNode<T>>,
        source: impl InputSource<T>,
        env: Arc<ExecEnv>,
        received: Arc<AtomicU64>,
    ) -> Self {
        InputStream {
            node,
            source: Box::new(source),
            env,
            received,
        }
    }
}

impl<T: Data> InputHandle for InputStream<T> {
    fn node(&self) -> Arc<dyn GraphNode> {
        self.node.clone()
    }

    fn start(&self, ctx: &SourceContext) -> Result<()> {
        self.source.start(ctx)
    }

    fn generate(&self, time: Time) -> u64 {
        let (rdd, records) = self.source.cut(time, &self.env);
        self.received
            .fetch_add(records, std::sync::atomic::Ordering::Relaxed);
        self.node.put(time, rdd);
        records
    }

    fn has_pending(&self) -> bool {
        self.source.has_pending()
    }

    fn stop(&self) {
        self.source.stop();
    }
}

/// Input streams have no parents: their `Rdd`s are put in by the scheduler.
pub(crate) struct NoCompute;

impl<T: Data> crate::dstream::Compute<T> for NoCompute {
    fn compute(&self, _time: Time) -> Option<Rdd<T>> {
        None
    }
}
