//! The sink store of a real run: a `rill sink-store` process of its own, as the JobManager and
//! TaskManagers are. It journals every write it applies and replays its journal when it
//! restarts, so what it held outlives a crash of the process as it outlives a crash of the
//! simulator's store node; and the harness learns what the sinks wrote, and when, by replaying
//! the journal into a store of its own after the run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rill::connectors::sink_journal::{read_sink_journal, replay};
use rill::connectors::CollectStore;
use tokio::time::Instant;

use super::store::read_journal_file;

/// Where a run's sink store keeps its journal.
#[derive(Debug, Clone)]
pub(super) struct SinkFiles {
    journal: PathBuf,
}

impl SinkFiles {
    /// The store's files in the run's directory.
    pub(super) fn in_run(dir: &Path) -> SinkFiles {
        SinkFiles {
            journal: dir.join("sink-store.journal"),
        }
    }

    /// The command line of the store's process, listening on `bind`.
    pub(super) fn args(&self, bind: SocketAddr) -> Vec<String> {
        vec![
            "sink-store".into(),
            "--bind".into(),
            bind.to_string(),
            "--journal".into(),
            self.journal.display().to_string(),
        ]
    }

    /// What the store held, rebuilt from its journal: each write applied as of its time since
    /// `start_ns` (Unix nanoseconds), on the harness's clock from `start` (writes before it at
    /// `start`). A journal cut off by a crash of the store ends at its last whole write, as the
    /// restarted store's own replay does.
    pub(super) fn collected(&self, start: Instant, start_ns: u64) -> CollectStore {
        let journal = read_journal_file(&self.journal, "sink store journal", read_sink_journal);
        let store = CollectStore::new();
        replay(&store, journal.items, |ns| {
            start + Duration::from_nanos(ns.saturating_sub(start_ns))
        });
        store
    }
}
