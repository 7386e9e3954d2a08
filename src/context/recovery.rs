//! Recovery: [`StreamingContext::get_or_create`] and restoring a checkpoint into the
//! streams a program has just defined.

use std::path::Path;

use super::StreamingContext;
use super::shared::ContextShared;
use crate::checkpoint::recovery::{Stored, check_state_types, match_streams};
use crate::checkpoint::{Checkpoint, CheckpointDir, PendingBatch};
use crate::error::{Error, Result};
use crate::scheduler::identity;
use crate::time::{Time, duration_millis};

/// Where a recovered context resumes.
pub(super) struct Recovery {
    pub(super) zero: Time,
    pub(super) generated: Time,
    pub(super) pending: Vec<PendingBatch>,
}

impl StreamingContext {
    /// Builds the program with `create` and, if `directory` holds a checkpoint,
    /// recovers it: the state of every stateful stream and the position of every
    /// replayable input are restored, and batches that were generated but not
    /// finished run again from their recorded input (the same files, the same rows),
    /// so nothing is lost and nothing counted twice.
    ///
    /// Rust closures cannot be saved, so `create` always runs; its inputs and stateful
    /// streams are matched with the checkpoint's by name (see [`DStream::name`]) or
    /// else by the order they were defined in. A mismatch is an error naming the first
    /// stream that differs. Operations without state may change freely between runs.
    /// A stateful stream must also store the same types as the checkpoint recorded
    /// for it ([`Error::StateTypeMismatch`] names the stream and both types; see
    /// [`DStream::accept_checkpointed_types`] for a renamed type). Checkpoints written
    /// before dstream recorded types are recovered unchecked, with a warning.
    /// A [`ManualClock`](crate::ManualClock) is moved to the last batch the checkpoint
    /// knows of.
    ///
    /// ```no_run
    /// use dstream::StreamingContext;
    /// use std::time::Duration;
    ///
    /// fn main() -> dstream::Result<()> {
    ///     let ssc = StreamingContext::get_or_create("checkpoint", || {
    ///         let ssc = StreamingContext::new("local[*]", Duration::from_secs(10))?;
    ///         let counts = ssc
    ///             .text_file_stream("incoming")
    ///             .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
    ///             .map(|word| (word, 1))
    ///             .update_state_by_key(|new: &[i32], total: Option<i32>| {
    ///                 Some(new.iter().sum::<i32>() + total.unwrap_or(0))
    ///             });
    ///         counts.pprint()?;
    ///         Ok(ssc)
    ///     })?;
    ///     ssc.start()?;
    ///     ssc.await_termination()
    /// }
    /// ```
    ///
    /// [`DStream::name`]: crate::dstream::DStream::name
    /// [`DStream::accept_checkpointed_types`]: crate::dstream::DStream::accept_checkpointed_types
    pub fn get_or_create(
        directory: impl AsRef<Path>,
        create: impl FnOnce() -> Result<StreamingContext>,
    ) -> Result<StreamingContext> {
        let directory = directory.as_ref();
        let saved = CheckpointDir::new(directory).load_latest()?;
        let ssc = create()?;
        ssc.checkpoint(directory)?;
        if let Some(saved) = saved {
            ssc.shared.recover(directory, saved)?;
        }
        Ok(ssc)
    }
}

impl ContextShared {
    /// Restores a checkpoint into the streams `create` built (see
    /// [`StreamingContext::get_or_create`]).
    fn recover(&self, directory: &Path, saved: Checkpoint) -> Result<()> {
        let mismatch = |difference: String| Error::CheckpointMismatch {
            dir: directory.to_path_buf(),
            difference,
        };
        let batch_ms = duration_millis(self.streams.timeline().batch_interval());
        if saved.batch_interval_ms != batch_ms {
            return Err(mismatch(format!(
                "it was written with a batch interval of {} ms, and this program uses {batch_ms} ms",
                saved.batch_interval_ms
            )));
        }
        let mut inner = self.inner();
        let stateful = self.streams.stateful();
        let current_inputs: Vec<_> = inner.inputs.iter().map(|i| identity(&*i.node())).collect();
        let saved_inputs: Vec<_> = saved.inputs.iter().map(|(id, _)| id.clone()).collect();
        let inputs = match_streams(directory, "input stream", &saved_inputs, &current_inputs)?;
        let current_states: Vec<_> = stateful
            .iter()
            .filter_map(|s| s.stream())
            .map(|n| identity(&*n))
            .collect();
        let saved_states: Vec<_> = saved.states.iter().map(|(id, _)| id.clone()).collect();
        let states = match_streams(directory, "stateful stream", &saved_states, &current_states)?;
        let matched: Vec<Stored> = states
            .iter()
            .map(|&index| Stored {
                stream: current_states[index].clone(),
                types: stateful[index].stored_types(),
                accepts_any: stateful[index].accepts_any_types(),
            })
            .collect();
        check_state_types(directory, saved.state_types.as_ref(), &matched)?;

        for ((_, bytes), &index) in saved.states.iter().zip(&states) {
            stateful[index].restore(bytes, saved.completed)?;
        }
        for ((_, position), &index) in saved.inputs.iter().zip(&inputs) {
            if let Some(position) = position {
                inner.inputs[index].restore(position)?;
            }
        }
        let unfinished = saved.pending.len();
        let pending = saved
            .pending
            .into_iter()
            .map(|batch| {
                let mut reordered = vec![None; inner.inputs.len()];
                for (replay, &index) in batch.inputs.into_iter().zip(&inputs) {
                    reordered[index] = replay;
                }
                PendingBatch {
                    time: batch.time,
                    inputs: reordered,
                }
            })
            .collect();
        tracing::info!(
            "recovered the checkpoint of batch {} from {} ({unfinished} unfinished batch(es) will run again)",
            saved.completed,
            directory.display(),
        );
        inner.recovery = Some(Recovery {
            zero: saved.zero,
            generated: saved.generated,
            pending,
        });
        Ok(())
    }
}
