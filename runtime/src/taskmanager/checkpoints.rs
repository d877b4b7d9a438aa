//! A task's side of checkpointing: the control messages it reads from its TaskManager, the
//! state its operators record as a barrier passes, and the acknowledgement, held until what
//! the operators left to finish (a remote sink's writes) is done. Shared by the source and the
//! consumer loop, which each decide when a barrier passes.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::TaskControl;
use super::TaskError;
use crate::buggify::{self, Point};
use crate::chain::TaskWaits;
use crate::ids::CheckpointId;
use crate::state::{TaskSnapshot, TaskStateHandle};
use crate::util::AbortOnDrop;

/// Sends a task's acknowledgement of a checkpoint with what it recorded.
pub(super) type OnCheckpoint = Arc<dyn Fn(CheckpointId, TaskSnapshot) + Send + Sync>;

/// A task's side of checkpointing: control messages from the TaskManager, the state its
/// operators record, and the acknowledgement.
pub(super) struct Checkpoints {
    pub(super) state: TaskStateHandle,
    /// What the operators left to finish (a remote sink's writes): a checkpoint is
    /// acknowledged only once it is done.
    pub(super) waits: TaskWaits,
    /// Checkpoints whose state is taken, waiting for `waits` before their acknowledgement.
    pub(super) due: Vec<(CheckpointId, TaskSnapshot)>,
    pub(super) control: mpsc::UnboundedReceiver<TaskControl>,
    pub(super) on_checkpoint: OnCheckpoint,
    /// Acknowledgements on their way late (buggify); they die with the task.
    pub(super) late: Vec<AbortOnDrop<()>>,
}

impl Checkpoints {
    /// Acknowledges checkpoint `id` with what the operators recorded as its barrier passed,
    /// at once or, if operators left work to finish, at the next `settle`. If an operator
    /// could not record its state, nothing is acknowledged: the checkpoint never completes
    /// (the coordinator times it out) rather than restore without that state.
    pub(super) fn acknowledge(&mut self, id: CheckpointId) {
        match self.state.take() {
            Ok(snapshot) => {
                tracing::debug!(
                    checkpoint = %id,
                    bytes = snapshot.bytes(),
                    "task state snapshotted"
                );
                if self.waits.is_empty() && self.due.is_empty() {
                    self.send(id, snapshot);
                } else {
                    self.due.push((id, snapshot));
                }
            }
            Err(reason) => {
                tracing::error!(checkpoint = %id, %reason, "checkpoint not acknowledged: state snapshot failed");
            }
        }
    }

    /// Waits for the operators' outstanding work, then sends the acknowledgements it held;
    /// fails instead if an operator said the task must (its held checkpoints then never
    /// complete).
    pub(super) async fn settle(&mut self) -> Result<(), TaskError> {
        self.waits.settle().await;
        if let Some(error) = self.waits.failure() {
            self.due.clear();
            return Err(error.into());
        }
        for (id, snapshot) in std::mem::take(&mut self.due) {
            self.send(id, snapshot);
        }
        Ok(())
    }

    /// Sends an acknowledgement: now, or (buggify) a while later, as if the asynchronous part
    /// of the snapshot took its time, while the task goes on. A task that ends first never
    /// sends it: the JobManager aborts that checkpoint when the task's end is reported.
    fn send(&mut self, id: CheckpointId, snapshot: TaskSnapshot) {
        let Some(late) = buggify::delay(Point::CheckpointAckLate) else {
            return (self.on_checkpoint)(id, snapshot);
        };
        let send = self.on_checkpoint.clone();
        self.late.retain(|t| !t.0.is_finished());
        self.late.push(AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep(late).await;
            send(id, snapshot);
        })));
    }
}
