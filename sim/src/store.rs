//! The simulated checkpoint store: rill's in-memory store behind the health gate the harness's
//! `store-failure` faults set, so checkpoint writes fail or hang as a sick external store's do.
//! It also reads back every checkpoint it accepts ([`StoredCheckpoint`]), so the harness can
//! hold what the JobManager said it completed against what it actually wrote.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rill::graph::{CheckpointId, JobId, SubtaskId, VertexId};
use rill::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rill::state::{CheckpointStore, GatedStore, MemoryCheckpointStore, StoreError, StoreHealth};
use tokio::time::Instant;

use crate::fault::StoreFailureMode;

/// A checkpoint write the store accepted, read back: what it holds, not what was announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// When the store accepted it, since the job's submission (virtual time in the simulator,
    /// the store's journal on a real run).
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

/// rill's in-memory store behind the runtime's health gate (`rill::state::GatedStore`, which
/// `rill checkpoint-store --health-control` has too), noting every put that passes it.
/// Clones share the store.
#[derive(Clone)]
pub struct SimCheckpointStore {
    gated: Arc<GatedStore>,
    health: StoreHealth,
    puts: Arc<Mutex<Vec<Put>>>,
}

impl Default for SimCheckpointStore {
    fn default() -> Self {
        let (health, puts) = (StoreHealth::default(), Arc::<Mutex<Vec<Put>>>::default());
        let noting = Noting {
            inner: MemoryCheckpointStore::default(),
            puts: puts.clone(),
        };
        SimCheckpointStore {
            gated: Arc::new(GatedStore::new(Arc::new(noting), health.clone())),
            health,
            puts,
        }
    }
}

impl SimCheckpointStore {
    /// Turns a fault of `mode` on (one more in force) or off (one fewer).
    pub fn set(&self, mode: StoreFailureMode, on: bool) {
        match mode {
            StoreFailureMode::Fail => self.health.set_failing(on),
            StoreFailureMode::Stall => self.health.set_stalled(on),
        }
    }

    /// Every put the store accepted, in order, timed since `start`. Takes them from the store.
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
}

impl CheckpointStore for SimCheckpointStore {
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        self.gated.put(job, checkpoint, data)
    }

    fn get(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<Bytes, StoreError>> {
        self.gated.get(job, checkpoint)
    }

    fn delete(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        self.gated.delete(job, checkpoint)
    }
}

/// The memory store, noting each put it is given (behind the gate: the ones that passed it).
struct Noting {
    inner: MemoryCheckpointStore,
    puts: Arc<Mutex<Vec<Put>>>,
}

impl CheckpointStore for Noting {
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let contents = StoredContents::decode(&data);
        let put = (Instant::now(), job, checkpoint, contents);
        self.puts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(put);
        self.inner.put(job, checkpoint, data)
    }

    fn get(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<Bytes, StoreError>> {
        self.inner.get(job, checkpoint)
    }

    fn delete(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        self.inner.delete(job, checkpoint)
    }
}
