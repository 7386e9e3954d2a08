//! [`Job`]: the unit of work that output operations and stateful streams hand the
//! scheduler for a batch. It lives with the streams that make it so that the
//! scheduler depends on the streams and not the other way round.

use crate::error::Cause;

/// The work of one output operation (or state update) for one batch.
pub(crate) type Job = Box<dyn FnOnce() -> std::result::Result<(), Cause> + Send>;
