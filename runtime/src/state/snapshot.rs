//! What a checkpoint holds: per subtask, the state of every operator in its chain, keyed state
//! split by key group so it can be handed back to whichever subtask owns a group on restore.
//!
//! Operators write their state into the task's [`TaskStateHandle`] when a checkpoint barrier
//! passes them in the chain, and read it back from the same handle when they are built for a
//! restored attempt. The handle is the only link between operators and checkpointing, so an
//! operator needs no knowledge of barriers' transport, acknowledgements or the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::CheckpointId;
use crate::util::lock;

/// One operator instance's state at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    /// Keyed state by key group (bincode of the group's entries). On restore every subtask gets
    /// the groups of its key-group range, from whichever subtask held them before.
    pub keyed: BTreeMap<u32, Vec<u8>>,
    /// State that belongs to this subtask only: source offsets, a sink's transaction.
    pub operator: Option<Vec<u8>>,
}

impl OperatorState {
    /// Bytes of encoded state, keyed and operator.
    pub fn bytes(&self) -> usize {
        self.keyed.values().map(Vec::len).sum::<usize>()
            + self.operator.as_ref().map_or(0, Vec::len)
    }
}

/// One subtask's part of a checkpoint: operator states by logical node id, and where the
/// record numbering of each output's subpartitions stood (by output index).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    /// Operator states by logical node id.
    pub operators: BTreeMap<u32, OperatorState>,
    /// For each output (by index), the number of the next record of each subpartition.
    pub outputs: BTreeMap<u32, Vec<u64>>,
}

impl TaskSnapshot {
    /// Bytes of encoded operator state over the chain.
    pub fn bytes(&self) -> usize {
        self.operators.values().map(OperatorState::bytes).sum()
    }
}

/// The state an attempt starts from: the checkpoint it restores and its operators' state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRestore {
    /// The checkpoint restored.
    pub checkpoint: CheckpointId,
    /// The task's part of it.
    pub snapshot: TaskSnapshot,
    /// How long before the deployment the checkpoint was triggered: what a live input
    /// produced since has waited that long, and a restored source makes it up at once.
    #[serde(default)]
    pub input_age: Duration,
}

/// A task's link to checkpointing, shared by every operator of its chain: where they put their
/// state when a barrier passes, and where they find the state they restore from.
#[derive(Clone, Default)]
pub struct TaskStateHandle {
    taken: Arc<Mutex<TaskSnapshot>>,
    /// Why an operator could not record its state for the checkpoint being taken.
    failed: Arc<Mutex<Option<String>>>,
    restore: Option<Arc<TaskRestore>>,
}

impl TaskStateHandle {
    /// A handle restoring from `restore` (none: a fresh start).
    pub fn new(restore: Option<TaskRestore>) -> Self {
        TaskStateHandle {
            taken: Arc::default(),
            failed: Arc::default(),
            restore: restore.map(Arc::new),
        }
    }

    /// The checkpoint this attempt was restored from, if any.
    pub fn restored_checkpoint(&self) -> Option<CheckpointId> {
        self.restore.as_ref().map(|r| r.checkpoint)
    }

    /// The restored state of one operator (by logical node id).
    pub fn restored(&self, node: u32) -> Option<&OperatorState> {
        self.restore.as_ref()?.snapshot.operators.get(&node)
    }

    /// Records one operator's state for the checkpoint being taken.
    pub fn put(&self, node: u32, state: OperatorState) {
        lock(&self.taken).operators.insert(node, state);
    }

    /// Records an output's per-subpartition record numbering for the checkpoint being taken.
    pub fn put_output(&self, output: usize, next_seq: Vec<u64>) {
        lock(&self.taken).outputs.insert(output as u32, next_seq);
    }

    /// The restored record numbering of an output, if any.
    pub fn restored_output(&self, output: usize) -> Option<&Vec<u64>> {
        self.restore
            .as_ref()?
            .snapshot
            .outputs
            .get(&(output as u32))
    }

    /// An operator could not record its state: the checkpoint must not complete without it.
    pub fn fail(&self, reason: String) {
        lock(&self.failed).get_or_insert(reason);
    }

    /// Everything the operators recorded since the last take, or why one could not.
    pub fn take(&self) -> Result<TaskSnapshot, String> {
        let snapshot = std::mem::take(&mut *lock(&self.taken));
        match lock(&self.failed).take() {
            Some(reason) => Err(reason),
            None => Ok(snapshot),
        }
    }
}

/// Encodes a state value; state types are plain serde data, so failure means a bug in a
/// user-defined `Serialize`, reported as an error string rather than a panic.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serialize(value).map_err(|e| format!("state serialization failed: {e}"))
}

/// Decodes restored state.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::deserialize(bytes).map_err(|e| format!("restored state is corrupt: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_put_and_the_task_takes_once() {
        let handle = TaskStateHandle::new(None);
        let op = OperatorState {
            keyed: BTreeMap::from([(3, vec![1, 2])]),
            operator: Some(vec![9]),
        };
        handle.clone().put(7, op.clone());
        let taken = handle.take().unwrap();
        assert_eq!(taken.operators.get(&7), Some(&op));
        assert_eq!(taken.bytes(), 3);
        assert!(handle.take().unwrap().operators.is_empty());
        handle.fail("no serializer".into());
        assert_eq!(handle.take(), Err("no serializer".into()));
        assert!(
            handle.take().is_ok(),
            "a failure spoils only its own checkpoint"
        );
    }

    #[test]
    fn restored_state_is_found_by_node() {
        let mut snapshot = TaskSnapshot::default();
        snapshot.operators.insert(2, OperatorState::default());
        let handle = TaskStateHandle::new(Some(TaskRestore {
            checkpoint: CheckpointId(4),
            snapshot,
            input_age: Duration::ZERO,
        }));
        assert_eq!(handle.restored_checkpoint(), Some(CheckpointId(4)));
        assert!(handle.restored(2).is_some());
        assert!(handle.restored(1).is_none());
    }
}

/// One operator's place in its task's checkpoints: where it records its state when a barrier
/// passes it.
#[derive(Clone)]
pub struct StateSlot {
    /// The operator's logical node id: names its state in checkpoints.
    pub node: u32,
    /// The job's key-group count, which keyed state is split by.
    pub max_parallelism: u32,
    handle: TaskStateHandle,
}

impl StateSlot {
    /// The slot of operator `node` in the task whose checkpoints `handle` links to.
    pub fn new(node: u32, max_parallelism: u32, handle: TaskStateHandle) -> Self {
        StateSlot {
            node,
            max_parallelism,
            handle,
        }
    }

    /// Records the operator's state for the checkpoint whose barrier is passing.
    pub fn put(&self, state: OperatorState) {
        self.handle.put(self.node, state)
    }

    /// The operator could not record its state for this checkpoint, which must then not
    /// complete.
    pub fn fail(&self, reason: String) {
        self.handle.fail(reason)
    }
}
