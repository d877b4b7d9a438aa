//! The checkpoint store of a real run: a `rill checkpoint-store` process of its own, as the
//! JobManager and TaskManagers are. It keeps checkpoints as files, so they outlive a crash of
//! the process as they outlive a crash of the simulator's store node; it is told to fail or
//! stall through its health-control file; and what it stored is read back from its journal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rill::events::Frames;
use rill::state::{read_journal, StoreHealth};

use super::RealError;
use crate::fault::StoreFailureMode;
use crate::store::{StoredCheckpoint, StoredContents};

/// Where a run's checkpoint store keeps its files.
#[derive(Debug, Clone)]
pub(super) struct StoreFiles {
    /// The checkpoints themselves (`--dir`).
    checkpoints: PathBuf,
    /// The health-control file the harness writes (`--health-control`).
    control: PathBuf,
    /// The journal of what it stored (`--journal`).
    journal: PathBuf,
}

impl StoreFiles {
    /// The store's files in the run's directory.
    pub(super) fn in_run(dir: &Path) -> StoreFiles {
        StoreFiles {
            checkpoints: dir.join("checkpoints"),
            control: dir.join("checkpoint-store.health"),
            journal: dir.join("checkpoint-store.journal"),
        }
    }

    /// The command line of the store's process, listening on `bind`.
    pub(super) fn args(&self, bind: SocketAddr) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "checkpoint-store".into(),
            "--bind".into(),
            bind.to_string(),
            "--dir".into(),
            path(&self.checkpoints),
            "--health-control".into(),
            path(&self.control),
            "--journal".into(),
            path(&self.journal),
        ]
    }

    /// What the store's journal says it stored, timed from `start_ns` (Unix nanoseconds). A
    /// journal cut off by a crash of the store ends at its last whole entry.
    pub(super) fn stored(&self, start_ns: u64) -> Vec<StoredCheckpoint> {
        read_journal_file(&self.journal, "checkpoint journal", read_journal)
            .items
            .into_iter()
            .map(|put| StoredCheckpoint {
                at: Duration::from_nanos(put.unix_nanos.saturating_sub(start_ns)),
                job: put.job,
                checkpoint: put.checkpoint,
                contents: StoredContents::decode(&put.data),
            })
            .collect()
    }

    /// The store's health-control file, healthy.
    pub(super) fn control(&self) -> Result<StoreControl, RealError> {
        let control = StoreControl {
            path: self.control.clone(),
            failing: 0,
            stalled: 0,
        };
        control.write().map_err(|source| RealError::Start {
            what: format!(
                "the checkpoint store's health file {}",
                self.control.display()
            ),
            source,
        })?;
        Ok(control)
    }
}

/// The whole frames of a store's journal at `path` (`what` names it in warnings): an
/// unreadable journal is warned about and read as empty, and a damaged one up to the damage.
pub(super) fn read_journal_file<T>(
    path: &Path,
    what: &str,
    read: impl Fn(&[u8]) -> Frames<T>,
) -> Frames<T> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        tracing::warn!(target: "rill_sim::real", "{what} {} unreadable: {e}", path.display());
        Vec::new()
    });
    let journal = read(&bytes);
    if let Some(why) = &journal.damaged {
        tracing::warn!(target: "rill_sim::real", "{what} damaged: {why}");
    }
    journal
}

/// The store-failure faults in force, as the store's process reads them from its file.
pub(super) struct StoreControl {
    path: PathBuf,
    failing: u32,
    stalled: u32,
}

impl StoreControl {
    /// Turns a fault of `mode` on (one more in force) or off (one fewer), and tells the store.
    pub(super) fn set(&mut self, mode: StoreFailureMode, on: bool) -> Result<(), String> {
        let count = match mode {
            StoreFailureMode::Fail => &mut self.failing,
            StoreFailureMode::Stall => &mut self.stalled,
        };
        let before = *count;
        *count = if on {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        let written = self.write();
        if let Err(e) = written {
            // Not applied: the count must not outlive the fault, or the store never heals.
            match mode {
                StoreFailureMode::Fail => self.failing = before,
                StoreFailureMode::Stall => self.stalled = before,
            }
            return Err(format!("could not write {}: {e}", self.path.display()));
        }
        Ok(())
    }

    /// Written whole or not at all (a rename), so the store never reads half a file.
    fn write(&self) -> std::io::Result<()> {
        let fresh = self.path.with_extension("health.new");
        std::fs::write(
            &fresh,
            StoreHealth::control_text(self.failing, self.stalled),
        )?;
        std::fs::rename(&fresh, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_file_counts_overlapping_faults() {
        let dir = std::env::temp_dir().join(format!("rill-store-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = StoreFiles::in_run(&dir);
        let mut control = files.control().unwrap();
        let read = || std::fs::read_to_string(&files.control).unwrap();
        assert_eq!(read().trim(), "");
        control.set(StoreFailureMode::Fail, true).unwrap();
        control.set(StoreFailureMode::Fail, true).unwrap();
        control.set(StoreFailureMode::Stall, true).unwrap();
        control.set(StoreFailureMode::Fail, false).unwrap();
        assert_eq!(read().trim(), "fail stall");
        let health = StoreHealth::default();
        health.set_from_text(&read()).unwrap();
        assert_eq!(health.state(), (true, true));
        // A fault whose file could not be written was not applied, and leaves no count.
        let _ = std::fs::remove_dir_all(&dir);
        assert!(control.set(StoreFailureMode::Stall, true).is_err());
        std::fs::create_dir_all(&dir).unwrap();
        control.set(StoreFailureMode::Fail, false).unwrap();
        assert_eq!(read().trim(), "stall");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
