//! The simulated checkpoint store: rill's in-memory store behind a switch the harness's
//! `store-failure` faults turn, so checkpoint writes fail or hang as a sick external store's do.
//! It also reads back every checkpoint it accepts ([`StoredCheckpoint`]), so the harness can
//! hold what the JobManager said it completed against what it actually wrote.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rill::graph::{CheckpointId, JobId, SubtaskId, VertexId};
use rill::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rill::state::{CheckpointStore, MemoryCheckpointStore, StoreError};
use tokio::time::Instant;

use crate::fault::StoreFailureMode;

#[derive(Debug, Default)]
struct Health {
    /// Active faults of each mode (faults may overlap).
    failing: u32,
    stalled: u32,
}

/// A checkpoint write the store accepted, read back: what it holds, not what was announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Virtual time the store accepted it (since the job's submission, in a history).
    pub at: Duration,
    /// The job it belongs to.
    pub job: JobId,
    /// The checkpoint id it was written under.
    pub checkpoint: CheckpointId,
    /// What it decoded to, or why it did not decode.
    pub contents: Result<StoredContents, String>,
}

/// What a stored checkpoint holds, summed up for the checkers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContents {
    /// The checkpoint id the data itself names.
    pub id: CheckpointId,
    /// The subtasks it holds a snapshot of, in order.
    pub subtasks: Vec<SubtaskId>,
    /// The size of their state, summed as `CheckpointCompleted.bytes` is.
    pub bytes: u64,
}

impl StoredContents {
    /// Reads back what the JobManager writes: a bincode-encoded `CompletedCheckpoint`.
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let c: CompletedCheckpoint = bincode::deserialize(data).map_err(|e| e.to_string())?;
        Ok(StoredContents {
            id: c.id,
            subtasks: c
                .tasks
                .keys()
                .map(|&(v, s)| SubtaskId::new(VertexId(v), s))
                .collect(),
            bytes: c.bytes() as u64,
        })
    }
}

/// A write the store accepted, at its virtual instant (made relative once the run ends).
type Put = (Instant, JobId, CheckpointId, Result<StoredContents, String>);

/// A checkpoint store whose health the harness controls. Clones share the store, the switch
/// and the record of accepted writes.
#[derive(Clone, Default)]
pub struct SimCheckpointStore {
    inner: MemoryCheckpointStore,
    health: Arc<Mutex<Health>>,
    puts: Arc<Mutex<Vec<Put>>>,
}

impl SimCheckpointStore {
    /// A fault of `mode` begins (`on`) or ends.
    pub fn set(&self, mode: StoreFailureMode, on: bool) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let counter = match mode {
            StoreFailureMode::Fail => &mut h.failing,
            StoreFailureMode::Stall => &mut h.stalled,
        };
        *counter = if on {
            *counter + 1
        } else {
            counter.saturating_sub(1)
        };
    }

    /// Every write the store accepted so far, in order, with times since `start`; the record
    /// is emptied.
    pub fn take_stored(&self, start: Instant) -> Vec<StoredCheckpoint> {
        let puts = std::mem::take(&mut *self.puts.lock().unwrap_or_else(|p| p.into_inner()));
        puts.into_iter()
            .map(|(at, job, checkpoint, contents)| StoredCheckpoint {
                at: at.saturating_duration_since(start),
                job,
                checkpoint,
                contents,
            })
            .collect()
    }

    fn health(&self) -> (bool, bool) {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        (h.failing > 0, h.stalled > 0)
    }

    /// Waits out a stall (polling virtual time: cheap, and deterministic), then fails if a
    /// failure fault is active.
    async fn gate(self) -> Result<(), StoreError> {
        while self.health().1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match self.health().0 {
            true => Err(StoreError::Unavailable("injected store failure".into())),
            false => Ok(()),
        }
    }
}

impl SimCheckpointStore {
    /// Runs `op` on the healthy store once the active faults let it through.
    fn gated<T: Send + 'static>(
        &self,
        op: impl FnOnce(&MemoryCheckpointStore) -> BoxFuture<'static, Result<T, StoreError>>
            + Send
            + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>> {
        let this = self.clone();
        Box::pin(async move {
            this.clone().gate().await?;
            op(&this.inner).await
        })
    }
}

impl CheckpointStore for SimCheckpointStore {
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let puts = self.puts.clone();
        self.gated(move |store| {
            // Read back as the write is accepted (past any injected failure or stall): a
            // summary is all the checkers need, and the data may be deleted later.
            let contents = StoredContents::decode(&data);
            let put = (Instant::now(), job, checkpoint, contents);
            puts.lock().unwrap_or_else(|p| p.into_inner()).push(put);
            store.put(job, checkpoint, data)
        })
    }

    fn get(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<Bytes, StoreError>> {
        self.gated(move |store| store.get(job, checkpoint))
    }

    fn delete(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        self.gated(move |store| store.delete(job, checkpoint))
    }
}
