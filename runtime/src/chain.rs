//! The plumbing of an operator chain: what flows through it and what its operators hand back
//! to their task.
//!
//! Inside a chain records pass by value through [`Collector::collect`], with no serialization
//! and no allocation; only at task boundaries are they encoded into buffers (see
//! `network::writer`). Control events ([`ChainEvent`]: watermarks, flush, end of input,
//! barriers) travel down the same chain through [`Collector::event`], so every operator sees
//! them in order with the records. Records that know their provenance ([`Origin`],
//! [`Traceable`]) let a collecting sink record it, and [`TaskWaits`] is where an operator
//! leaves work its task must see finished.
//!
//! It is its own module, below `network` (whose writers and decoders are chain ends),
//! `connectors` (whose sources and sinks are chain ends) and `api` (which builds chains from
//! them), so none of those depends on another for these traits. `api::operator` re-exports
//! every item at its old path.

use std::sync::{Arc, Mutex};

use crate::ids::CheckpointId;

use serde::{Deserialize, Serialize};

/// A control event flowing down an operator chain, in order with the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainEvent {
    /// Event time has advanced to this timestamp (ms) on every input.
    Watermark(u64),
    /// Hand partially filled output buffers to the network (buffer timeout, idle input).
    Flush,
    /// The input is exhausted: emit what is pending and close.
    Finish,
    /// Checkpoint barrier `n`: everything before it belongs to checkpoint `n`. Stateful
    /// operators record their state in the task's `TaskStateHandle` as it passes; writers
    /// forward it to every consumer.
    Barrier(CheckpointId),
    /// Checkpoint `n` is complete everywhere: transactional sinks commit what they staged.
    CheckpointComplete(CheckpointId),
}

/// The receiving end of an operator: the next operator, a sink, or a network writer.
pub trait Collector<T>: Send {
    /// Takes one record.
    fn collect(&mut self, item: T);
    /// Takes one control event, in order with the records; passes it on unless it ends here.
    fn event(&mut self, event: ChainEvent);
}

/// The rest of a chain, as an operator holds it.
pub(crate) type Out<T> = Box<dyn Collector<T>>;

/// Where a record came from: the source partition and offset that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The source partition the record was read from.
    pub partition: u32,
    /// Its offset within that partition.
    pub offset: u64,
}

/// Records that carry their provenance, so a collecting sink can record it for the harness.
pub trait Traceable {
    /// Where the record came from, if it knows.
    fn origin(&self) -> Option<Origin>;
}

/// Work an operator started that its task must see finished before going on: a sink's writes
/// to a remote store, which must be durable before a checkpoint is acknowledged or the task
/// ends, and which must not pile up without bound (back-pressure). Operators are synchronous,
/// so they hand the waiting to the task here; the task waits after each step.
///
/// It is also where an operator says its task must fail: a sink that lost a write cannot let
/// the job go on (later checkpoints would complete without that output); the task fails
/// after the step, and the failover replays from the last completed checkpoint.
#[derive(Clone, Default)]
pub struct TaskWaits {
    pending: Arc<Mutex<Vec<futures_util::future::BoxFuture<'static, ()>>>>,
    failed: Arc<Mutex<Option<crate::error::JobError>>>,
}

impl TaskWaits {
    /// Fails the task after the current step (the first failure is the one reported).
    pub fn fail(&self, error: crate::error::JobError) {
        crate::util::lock(&self.failed).get_or_insert(error);
    }

    /// Why the task must fail, if an operator said so.
    pub fn failure(&self) -> Option<crate::error::JobError> {
        crate::util::lock(&self.failed).take()
    }

    /// Leaves `wait` for the task to await before it goes on.
    pub fn push(&self, wait: impl std::future::Future<Output = ()> + Send + 'static) {
        crate::util::lock(&self.pending).push(Box::pin(wait));
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        crate::util::lock(&self.pending).is_empty()
    }

    /// Waits for everything pushed, including what is pushed meanwhile.
    pub async fn settle(&self) {
        loop {
            let pending = std::mem::take(&mut *crate::util::lock(&self.pending));
            if pending.is_empty() {
                return;
            }
            futures_util::future::join_all(pending).await;
        }
    }
}
