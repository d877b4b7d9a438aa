//! A checkpoint store that can be told to fail or to stall, for fault injection: the
//! simulator's store is one, and so is `rill checkpoint-store --health-control FILE`, which a
//! harness running real processes writes to.
//!
//! Failing: every operation is refused as unavailable (a store that is down). Stalled: every
//! operation waits until the stall ends, then goes on (a store that hangs). Faults may
//! overlap, so each is a count of the faults in force, not a flag.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::store::{CheckpointStore, StoreError};
use crate::ids::{CheckpointId, JobId};
use crate::util::lock;

/// How often a stalled operation looks again whether the stall is over.
const STALL_POLL: Duration = Duration::from_millis(100);
/// How often a store follows its health-control file.
const CONTROL_POLL: Duration = Duration::from_millis(10);

/// The faults in force on a store. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    failing: u32,
    stalled: u32,
}

impl StoreHealth {
    /// One more failure in force (`on`), or one fewer.
    pub fn set_failing(&self, on: bool) {
        let mut c = lock(&self.inner);
        c.failing = step(c.failing, on);
    }

    /// One more stall in force (`on`), or one fewer.
    pub fn set_stalled(&self, on: bool) {
        let mut c = lock(&self.inner);
        c.stalled = step(c.stalled, on);
    }

    /// Whether a failure and whether a stall is in force.
    pub fn state(&self) -> (bool, bool) {
        let c = *lock(&self.inner);
        (c.failing > 0, c.stalled > 0)
    }

    /// Sets the faults in force from a health-control text: the words `fail` and `stall`,
    /// each as many times as such faults are in force (nothing: healthy). Any other word makes
    /// the text invalid and changes nothing, so a half-written file never heals a store.
    pub fn set_from_text(&self, text: &str) -> Result<(), String> {
        let mut counts = Counts::default();
        for word in text.split_whitespace() {
            match word {
                "fail" => counts.failing += 1,
                "stall" => counts.stalled += 1,
                other => return Err(format!("unknown store health '{other}'")),
            }
        }
        *lock(&self.inner) = counts;
        Ok(())
    }

    /// The text [`StoreHealth::set_from_text`] reads for `failing` failures and `stalled`
    /// stalls in force.
    pub fn control_text(failing: u32, stalled: u32) -> String {
        let mut words = vec!["fail"; failing as usize];
        words.extend(std::iter::repeat_n("stall", stalled as usize));
        words.join(" ") + "\n"
    }

    /// Waits out a stall, then refuses if a failure is in force.
    async fn gate(self) -> Result<(), StoreError> {
        while self.state().1 {
            tokio::time::sleep(STALL_POLL).await;
        }
        match self.state().0 {
            true => Err(StoreError::Unavailable("injected store failure".into())),
            false => Ok(()),
        }
    }
}

fn step(count: u32, on: bool) -> u32 {
    if on {
        count.saturating_add(1)
    } else {
        count.saturating_sub(1)
    }
}

/// Follows the health-control file at `path`: read every 10 ms, its words set the faults in
/// force (see [`StoreHealth::set_from_text`]). A missing file leaves them as they are.
pub async fn follow_health_file(health: StoreHealth, path: PathBuf) {
    let mut tick = tokio::time::interval(CONTROL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = String::new();
    loop {
        tick.tick().await;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text == last {
            continue;
        }
        match health.set_from_text(&text) {
            Ok(()) => tracing::info!(health = text.trim(), "checkpoint store health set"),
            Err(e) => tracing::warn!(error = %e, "health-control file ignored"),
        }
        last = text;
    }
}

/// A store whose every operation passes its health first.
pub struct GatedStore {
    inner: Arc<dyn CheckpointStore>,
    health: StoreHealth,
}

impl GatedStore {
    /// `inner`, failing and stalling as `health` says.
    pub fn new(inner: Arc<dyn CheckpointStore>, health: StoreHealth) -> Self {
        GatedStore { inner, health }
    }

    fn gated<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn CheckpointStore) -> BoxFuture<'static, Result<T, StoreError>>
            + Send
            + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>> {
        let (inner, health) = (self.inner.clone(), self.health.clone());
        Box::pin(async move {
            health.gate().await?;
            op(&*inner).await
        })
    }
}

impl CheckpointStore for GatedStore {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryCheckpointStore;

    #[test]
    fn the_control_text_round_trips_and_a_bad_one_changes_nothing() {
        let health = StoreHealth::default();
        health
            .set_from_text(&StoreHealth::control_text(2, 1))
            .unwrap();
        assert_eq!(health.state(), (true, true));
        health.set_failing(false);
        assert_eq!(
            health.state(),
            (true, true),
            "one failure is still in force"
        );
        assert!(health.set_from_text("fail sta").is_err());
        assert_eq!(health.state(), (true, true));
        health
            .set_from_text(&StoreHealth::control_text(0, 0))
            .unwrap();
        assert_eq!(health.state(), (false, false));
    }

    #[tokio::test]
    async fn a_failing_store_refuses_and_a_stalled_one_waits() {
        let health = StoreHealth::default();
        let store = GatedStore::new(Arc::new(MemoryCheckpointStore::default()), health.clone());
        let (job, id) = (JobId(1), CheckpointId(1));
        health.set_failing(true);
        let refused = store.put(job, id, Bytes::from_static(b"x")).await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        health.set_failing(false);
        health.set_stalled(true);
        let put = tokio::spawn(store.put(job, id, Bytes::from_static(b"x")));
        tokio::time::sleep(3 * STALL_POLL).await;
        assert!(!put.is_finished(), "a stalled store holds the put");
        health.set_stalled(false);
        put.await.unwrap().unwrap();
        assert_eq!(store.get(job, id).await.unwrap(), Bytes::from_static(b"x"));
    }
}
