//! [`StreamRegistry`]: what the streams of one context share, and where they register
//! what the scheduler must run. Streams hold the registry rather than the context, so
//! that this layer never reaches up to the context; the context owns the registry and
//! takes the registered graph from it when it starts.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::store::{StateSize, StatefulStream};
use super::{GraphNode, OutputOperation, Timeline};
use crate::error::{Error, Result};
use crate::rdd::ExecEnv;

/// The streams of one context: their ids, the pool and batch grid they share, and the
/// outputs, stateful streams and eagerly computed streams registered so far.
pub(crate) struct StreamRegistry {
    env: Arc<ExecEnv>,
    timeline: Arc<Timeline>,
    registered: Mutex<Registered>,
}

struct Registered {
    /// Set when the context starts (or stops before starting): no output may be
    /// added after that, as the scheduler runs the graph it took at the start.
    closed: bool,
    next_stream_id: usize,
    streams: RegisteredStreams,
}

/// What the scheduler runs, as registered: in registration order.
#[derive(Clone, Default)]
pub(crate) struct RegisteredStreams {
    pub(crate) outputs: Vec<Arc<dyn OutputOperation>>,
    /// Streams with state, advanced and checkpointed every batch.
    pub(crate) stateful: Vec<Arc<dyn StatefulStream>>,
    /// Streams computed every batch for windows that read them later.
    pub(crate) eager: Vec<Arc<dyn GraphNode>>,
}

impl StreamRegistry {
    pub(crate) fn new(env: Arc<ExecEnv>, timeline: Arc<Timeline>) -> StreamRegistry {
        StreamRegistry {
            env,
            timeline,
            registered: Mutex::new(Registered {
                closed: false,
                next_stream_id: 0,
                streams: RegisteredStreams::default(),
            }),
        }
    }

    fn registered(&self) -> MutexGuard<'_, Registered> {
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn env(&self) -> &Arc<ExecEnv> {
        &self.env
    }

    pub(crate) fn timeline(&self) -> &Arc<Timeline> {
        &self.timeline
    }

    /// The number of worker threads, and the default number of partitions.
    pub(crate) fn parallelism(&self) -> usize {
        self.env.parallelism()
    }

    /// The id of a new stream: registration order, from 0.
    pub(crate) fn next_stream_id(&self) -> usize {
        let mut registered = self.registered();
        let id = registered.next_stream_id;
        registered.next_stream_id += 1;
        id
    }

    /// Adds an output operation (`kind` names it in the error); refused once the
    /// context has started.
    pub(crate) fn register_output(
        &self,
        kind: &'static str,
        output: Arc<dyn OutputOperation>,
    ) -> Result<()> {
        let mut registered = self.registered();
        if registered.closed {
            return Err(Error::AddedAfterStart { operation: kind });
        }
        registered.streams.outputs.push(output);
        Ok(())
    }

    /// Registers `state` as the state of `stream`, to be advanced every batch and
    /// checkpointed.
    pub(crate) fn register_stateful(
        &self,
        state: Arc<dyn StatefulStream>,
        stream: Arc<dyn GraphNode>,
    ) {
        state.attach(stream);
        self.registered().streams.stateful.push(state);
    }

    /// Has the stream computed every batch, for a window that reads it later.
    pub(crate) fn register_eager(&self, node: Arc<dyn GraphNode>) {
        let mut registered = self.registered();
        let id = node.meta().id;
        if !registered.streams.eager.iter().any(|n| n.meta().id == id) {
            registered.streams.eager.push(node);
        }
    }

    /// Runs `f` on the state of the stateful stream `id`; `false` if the stream has
    /// no state.
    fn with_state(&self, id: usize, f: impl FnOnce(&dyn StatefulStream)) -> bool {
        let registered = self.registered();
        let state = registered
            .streams
            .stateful
            .iter()
            .find(|s| s.stream().is_some_and(|n| n.meta().id == id));
        match state {
            Some(state) => {
                f(&**state);
                true
            }
            None => false,
        }
    }

    /// Sets the checkpoint interval of the stateful stream `id`; `false` if the stream
    /// has no state.
    pub(crate) fn set_checkpoint_interval(&self, id: usize, interval: Duration) -> bool {
        self.with_state(id, |state| state.set_checkpoint_interval(interval))
    }

    /// Lets the stateful stream `id` recover a checkpoint that recorded other types;
    /// `false` if the stream has no state.
    pub(crate) fn accept_checkpointed_types(&self, id: usize) -> bool {
        self.with_state(id, |state| state.accept_any_types())
    }

    /// The stateful streams, in registration order.
    pub(crate) fn stateful(&self) -> Vec<Arc<dyn StatefulStream>> {
        self.registered().streams.stateful.clone()
    }

    /// The number of keys each stateful stream holds after its last batch.
    pub(crate) fn state_sizes(&self) -> Vec<StateSize> {
        self.stateful()
            .iter()
            .filter_map(|state| {
                let stream = state.stream()?;
                let meta = stream.meta();
                Some(StateSize {
                    stream_id: meta.id,
                    stream: meta.describe(),
                    operation: state.operation(),
                    keys: state.num_keys(),
                })
            })
            .collect()
    }

    /// The streams registered so far, if `ready` accepts them; then no output may be
    /// added any more. Checking and closing under one lock means that an output added
    /// concurrently is either in the graph returned or refused.
    pub(crate) fn close_if(
        &self,
        ready: impl FnOnce(&RegisteredStreams) -> Result<()>,
    ) -> Result<RegisteredStreams> {
        let mut registered = self.registered();
        ready(&registered.streams)?;
        registered.closed = true;
        Ok(registered.streams.clone())
    }

    /// Refuses outputs from now on (a context stopped before it started).
    pub(crate) fn close(&self) {
        self.registered().closed = true;
    }
}
