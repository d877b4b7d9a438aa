//! A checkpoint store that keeps a journal of what it stored: how a harness running
//! `rill checkpoint-store --journal FILE` as a real process learns which checkpoints reached
//! the store, when, and what they held, as the simulator's store tells it in memory.
//!
//! The journal is a file of frames as an events file is ([`crate::events::read_frames`]):
//! each a [`StoredPut`], written with one `write` call once the put succeeded, so what the
//! store held before a SIGKILL is in the file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::store::{CheckpointStore, StoreError};
use crate::events::{
    encode_frame, read_frames_up_to, unix_nanos, FrameFile, Frames, JOURNAL_MAX_FRAME,
};
use crate::ids::{CheckpointId, JobId};
use crate::util::lock;

/// One checkpoint the store accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPut {
    /// When the store had it, in nanoseconds since the Unix epoch (the clock of events files).
    pub unix_nanos: u64,
    /// Its job.
    pub job: JobId,
    /// Its id.
    pub checkpoint: CheckpointId,
    /// What was stored: the JobManager's encoding of the completed checkpoint.
    pub data: Vec<u8>,
}

/// Decodes the frames of a journal (a cut-off last frame is reported in `damaged`).
pub fn read_journal(bytes: &[u8]) -> Frames<StoredPut> {
    read_frames_up_to(bytes, JOURNAL_MAX_FRAME)
}

/// A store that appends each successful put to a journal.
pub struct JournaledStore {
    inner: Arc<dyn CheckpointStore>,
    journal: Arc<Mutex<FrameFile>>,
}

impl JournaledStore {
    /// `inner`, journaling into `path` (created, or appended to: a restarted store adds to
    /// what its previous incarnation wrote). A frame the previous incarnation was killed in
    /// the middle of is cut away first, so that what follows it stays readable.
    pub fn open(inner: Arc<dyn CheckpointStore>, path: &Path) -> std::io::Result<Self> {
        let (journal, _) = FrameFile::open::<StoredPut>(path, JOURNAL_MAX_FRAME)?;
        Ok(JournaledStore {
            inner,
            journal: Arc::new(Mutex::new(journal)),
        })
    }
}

fn append(journal: &Mutex<FrameFile>, put: &StoredPut) {
    let written = encode_frame(put)
        .map_err(|e| e.to_string())
        .and_then(|frame| lock(journal).append(&frame).map_err(|e| e.to_string()));
    if let Err(e) = written {
        tracing::warn!(checkpoint = %put.checkpoint, error = %e, "checkpoint journal write failed");
    }
}

impl CheckpointStore for JournaledStore {
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let (journal, stored) = (self.journal.clone(), data.to_vec());
        let put = self.inner.put(job, checkpoint, data);
        Box::pin(async move {
            put.await?;
            let entry = StoredPut {
                unix_nanos: unix_nanos(),
                job,
                checkpoint,
                data: stored,
            };
            append(&journal, &entry);
            Ok(())
        })
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

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::state::MemoryCheckpointStore;
    use std::fs::OpenOptions;
    use std::io::Write;

    #[tokio::test]
    async fn every_put_is_journaled_once_it_succeeded() {
        let dir = std::env::temp_dir().join(format!("rill-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.journal");
        let _ = std::fs::remove_file(&path);
        let inner = Arc::new(MemoryCheckpointStore::default());
        let store = JournaledStore::open(inner, &path).unwrap();
        let before = unix_nanos();
        store
            .put(JobId(1), CheckpointId(1), Bytes::from_static(b"one"))
            .await
            .unwrap();
        store
            .put(JobId(1), CheckpointId(2), Bytes::from_static(b"two"))
            .await
            .unwrap();
        store.delete(JobId(1), CheckpointId(1)).await.unwrap();
        let read = read_journal(&std::fs::read(&path).unwrap());
        assert_eq!(read.damaged, None);
        let puts: Vec<_> = read
            .items
            .iter()
            .map(|p| (p.checkpoint, p.data.clone()))
            .collect();
        assert_eq!(
            puts,
            vec![
                (CheckpointId(1), b"one".to_vec()),
                (CheckpointId(2), b"two".to_vec())
            ],
            "a delete leaves the journal as it was"
        );
        assert!(read
            .items
            .iter()
            .all(|p| p.unix_nanos >= before && p.job == JobId(1)));
        // A restarted store cuts the frame its predecessor was killed inside, then appends.
        let mut torn = encode_frame(&read.items[0]).unwrap();
        torn.truncate(torn.len() / 2);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn).unwrap();
        let inner = Arc::new(MemoryCheckpointStore::default());
        let store = JournaledStore::open(inner, &path).unwrap();
        store
            .put(JobId(1), CheckpointId(3), Bytes::from_static(b"three"))
            .await
            .unwrap();
        let read = read_journal(&std::fs::read(&path).unwrap());
        assert_eq!(read.damaged, None);
        let ids: Vec<_> = read.items.iter().map(|p| p.checkpoint).collect();
        assert_eq!(ids, vec![CheckpointId(1), CheckpointId(2), CheckpointId(3)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
