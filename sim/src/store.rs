//! The simulated checkpoint store: rill's in-memory store behind a switch the harness's
//! `store-failure` faults turn, so checkpoint writes fail or hang as a sick external store's do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rill::graph::{CheckpointId, JobId};
use rill::state::{CheckpointStore, MemoryCheckpointStore, StoreError};

use crate::fault::StoreFailureMode;

#[derive(Debug, Default)]
struct Health {
    /// Active faults of each mode (faults may overlap).
    failing: u32,
    stalled: u32,
}

/// A checkpoint store whose health the harness controls. Clones share the store and the switch.
#[derive(Clone, Default)]
pub struct SimCheckpointStore {
    inner: MemoryCheckpointStore,
    health: Arc<Mutex<Health>>,
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
        self.gated(move |store| store.put(job, checkpoint, data))
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
