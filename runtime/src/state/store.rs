//! Where completed checkpoints are kept: the CheckpointStore trait and its implementations.
//!
//! The JobManager writes each completed checkpoint as one blob and deletes old ones once a newer
//! one is complete. Writes are futures, so a slow store delays only the checkpoint (which then
//! times out), never the JobManager. Under the simulator the harness wraps a store to make its
//! writes fail or stall; the runtime only ever sees the trait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::ids::{CheckpointId, JobId};
use crate::util::lock;

/// Why a checkpoint store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The store could not be reached (a remote store down or cut off, an injected failure).
    #[error("checkpoint store unavailable: {0}")]
    Unavailable(String),
    /// No checkpoint is stored under that job and id.
    #[error("{checkpoint} of {job} not found")]
    NotFound {
        /// The job asked for.
        job: JobId,
        /// The checkpoint asked for.
        checkpoint: CheckpointId,
    },
    /// The store was reached but failed to read or write (a file error, a malformed reply).
    #[error("checkpoint store I/O error: {0}")]
    Io(String),
}

/// Durable storage for completed checkpoints, one blob per (job, checkpoint).
pub trait CheckpointStore: Send + Sync {
    /// Stores `data` as `checkpoint` of `job`, replacing what was there.
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>>;
    /// The blob stored as `checkpoint` of `job`.
    fn get(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<Bytes, StoreError>>;
    /// Deletes `checkpoint` of `job`; deleting one that is not there is no error.
    fn delete(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// Where a JobManager keeps completed checkpoints (`state.checkpoints.dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStorage {
    /// `jobmanager`: its own memory (Flink's JobManagerCheckpointStorage).
    JobManager,
    /// A directory, as a path or `file:///DIR`.
    Filesystem(std::path::PathBuf),
    /// `rill://HOST:PORT`: a checkpoint store served by another process.
    Remote(String),
}

impl std::str::FromStr for CheckpointStorage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "jobmanager" {
            return Ok(CheckpointStorage::JobManager);
        }
        if s.starts_with("rill://") {
            return crate::rpc::service::parse_url(s).map(CheckpointStorage::Remote);
        }
        let path = s.strip_prefix("file://").unwrap_or(s);
        if path.is_empty() || s.contains("://") && !s.starts_with("file://") {
            return Err(format!(
                "invalid state.checkpoints.dir '{s}': expected jobmanager, a directory, \
                 file:///DIR or rill://HOST:PORT"
            ));
        }
        Ok(CheckpointStorage::Filesystem(path.into()))
    }
}

impl CheckpointStorage {
    /// Opens the store. Remote operations are bounded by `timeout` (the checkpoint timeout:
    /// a write that takes longer is of no use to its checkpoint).
    pub fn open(
        &self,
        config: &crate::config::Configuration,
        timeout: std::time::Duration,
    ) -> Result<Arc<dyn CheckpointStore>, String> {
        match self {
            CheckpointStorage::JobManager => Ok(Arc::new(MemoryCheckpointStore::default())),
            #[cfg(not(madsim))]
            CheckpointStorage::Filesystem(dir) => Ok(Arc::new(FsCheckpointStore::new(dir))),
            #[cfg(madsim)]
            CheckpointStorage::Filesystem(dir) => Err(format!(
                "checkpoints in a directory ({}) need real file I/O: not in the simulated build",
                dir.display()
            )),
            CheckpointStorage::Remote(addr) => Ok(Arc::new(
                super::remote::RemoteCheckpointStore::new(addr.clone(), config, timeout),
            )),
        }
    }
}

/// Checkpoints in the JobManager's memory (Flink's JobManagerCheckpointStorage): lost with the
/// JobManager, which is fine while the JobManager is not highly available.
#[derive(Clone, Default)]
pub struct MemoryCheckpointStore {
    blobs: Arc<Mutex<BTreeMap<(JobId, CheckpointId), Bytes>>>,
}

impl MemoryCheckpointStore {
    /// The checkpoints currently held, as (job, checkpoint).
    pub fn held(&self) -> Vec<(JobId, CheckpointId)> {
        lock(&self.blobs).keys().copied().collect()
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        lock(&self.blobs).insert((job, checkpoint), data);
        Box::pin(async { Ok(()) })
    }

    fn get(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<Bytes, StoreError>> {
        let found = lock(&self.blobs)
            .get(&(job, checkpoint))
            .cloned()
            .ok_or(StoreError::NotFound { job, checkpoint });
        Box::pin(async move { found })
    }

    fn delete(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        lock(&self.blobs).remove(&(job, checkpoint));
        Box::pin(async { Ok(()) })
    }
}

/// Checkpoints as files `DIR/job-<job>/chk-<id>` (Flink's FileSystemCheckpointStorage), written
/// to a temporary name and renamed, so a crash mid-write never leaves a torn checkpoint behind.
/// Real deployments only: the file I/O runs on tokio's blocking pool.
#[cfg(not(madsim))]
#[derive(Clone, Debug)]
pub struct FsCheckpointStore {
    dir: std::path::PathBuf,
}

#[cfg(not(madsim))]
impl FsCheckpointStore {
    /// A store in `dir` (created on the first write).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        FsCheckpointStore { dir: dir.into() }
    }

    fn path(&self, job: JobId, checkpoint: CheckpointId) -> std::path::PathBuf {
        self.dir.join(job.to_string()).join(checkpoint.to_string())
    }
}

#[cfg(not(madsim))]
fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> BoxFuture<'static, Result<T, StoreError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Io(format!("store task failed: {e}")))?
    })
}

#[cfg(not(madsim))]
impl CheckpointStore for FsCheckpointStore {
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let path = self.path(job, checkpoint);
        blocking(move || {
            let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
            let dir = path
                .parent()
                .expect("checkpoint paths have a job directory");
            std::fs::create_dir_all(dir).map_err(io)?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &data).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)
        })
    }

    fn get(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<Bytes, StoreError>> {
        let path = self.path(job, checkpoint);
        blocking(move || match std::fs::read(&path) {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound { job, checkpoint })
            }
            Err(e) => Err(StoreError::Io(format!("{}: {e}", path.display()))),
        })
    }

    fn delete(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let path = self.path(job, checkpoint);
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io(format!("{}: {e}", path.display()))),
        })
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    async fn round_trip(store: &dyn CheckpointStore) {
        store
            .put(JobId(1), CheckpointId(5), Bytes::from_static(b"state"))
            .await
            .unwrap();
        assert_eq!(
            store.get(JobId(1), CheckpointId(5)).await.unwrap(),
            Bytes::from_static(b"state")
        );
        assert_eq!(
            store.get(JobId(1), CheckpointId(6)).await.unwrap_err(),
            StoreError::NotFound {
                job: JobId(1),
                checkpoint: CheckpointId(6)
            }
        );
        store.delete(JobId(1), CheckpointId(5)).await.unwrap();
        store.delete(JobId(1), CheckpointId(5)).await.unwrap();
        assert!(store.get(JobId(1), CheckpointId(5)).await.is_err());
    }

    #[test]
    fn checkpoint_storage_parses_each_form_and_names_bad_ones() {
        let parse = |s: &str| s.parse::<CheckpointStorage>();
        assert_eq!(parse("jobmanager"), Ok(CheckpointStorage::JobManager));
        let dir = CheckpointStorage::Filesystem("/var/rill".into());
        assert_eq!(parse("/var/rill"), Ok(dir.clone()));
        assert_eq!(parse("file:///var/rill"), Ok(dir));
        let remote = CheckpointStorage::Remote("store:6130".into());
        assert_eq!(parse("rill://store:6130"), Ok(remote));
        for bad in [
            "rill://store",
            "rill://:6130",
            "rill://store:http",
            "s3://bucket",
            "file://",
        ] {
            assert!(parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn memory_store_round_trip() {
        let store = MemoryCheckpointStore::default();
        round_trip(&store).await;
        assert!(store.held().is_empty());
    }

    #[tokio::test]
    async fn filesystem_store_round_trip_leaves_no_temporary_files() {
        let dir = std::env::temp_dir().join(format!("rill-store-test-{}", std::process::id()));
        let store = FsCheckpointStore::new(&dir);
        round_trip(&store).await;
        store
            .put(JobId(2), CheckpointId(1), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.join("job-2"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["chk-1".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
