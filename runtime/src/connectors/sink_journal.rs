//! A sink store's journal: every write the store applies, appended before it is applied, so
//! that what the store held survives its process. `rill sink-store --journal FILE` replays the
//! file when it starts (a restarted store keeps its visible output, its staged transactions,
//! its fences and the writes it already applied, as a database would), and a harness running
//! the store as a real process replays it after the run to learn what the sinks wrote, and
//! when, as the simulator's store tells it in memory.
//!
//! The journal is a file of frames as an events file is ([`crate::events::read_frames`]), each
//! a [`JournaledWrite`]. The store applies writes deterministically in the order they are
//! journaled (one lock covers both), so a replay rebuilds the same store: the same batches
//! with the same times, the same commits, the same refusals.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::sink_service::{self, SinkRequest};
use super::sink_store::{CollectStore, Fenced};
use crate::events::{
    encode_frame, read_frames_up_to, unix_nanos, FrameFile, Frames, JOURNAL_MAX_FRAME,
};
use crate::util::lock;

/// One write a sink store applied (granted, whether or not it was fenced).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournaledWrite {
    /// When the store applied it, in nanoseconds since the Unix epoch (the clock of events
    /// files).
    pub unix_nanos: u64,
    /// The TaskManager its connection authenticated as.
    pub peer: String,
    /// The write as it arrived.
    pub request: SinkRequest,
}

/// Decodes the frames of a sink store's journal (a cut-off last frame is reported in
/// `damaged`).
pub fn read_sink_journal(bytes: &[u8]) -> Frames<JournaledWrite> {
    read_frames_up_to(bytes, JOURNAL_MAX_FRAME)
}

/// Applies journaled `writes` to `store` in their order, each as of `at(unix_nanos)`: the
/// store then holds what the journaling store held. Returns how many were replayed.
pub fn replay(
    store: &CollectStore,
    writes: Vec<JournaledWrite>,
    at: impl Fn(u64) -> Instant,
) -> usize {
    let count = writes.len();
    // Wall-clock stamps, so never earlier than the one before: a clock stepped back must not
    // reorder what the store applied in order.
    let mut last: Option<Instant> = None;
    for w in writes {
        let at = last.map_or(at(w.unix_nanos), |l| at(w.unix_nanos).max(l));
        last = Some(at);
        // A refusal is part of what is replayed (the store counts fenced records).
        let _ = sink_service::apply(store, &w.peer, w.request, at);
    }
    count
}

/// The journal a served sink store appends to.
pub struct SinkJournal {
    inner: Mutex<JournalFile>,
}

struct JournalFile {
    file: FrameFile,
    /// Whether the last append failed: a failing disk is warned about once, not per write.
    failing: bool,
}

impl SinkJournal {
    /// Opens the journal at `path` (created, or appended to: a restarted store adds to what
    /// its previous incarnation wrote, after cutting a frame it was killed inside) and
    /// replays what it holds into `store`, each write as of now minus its age. Returns the
    /// journal and how many writes were replayed.
    pub fn open(path: &Path, store: &CollectStore) -> std::io::Result<(SinkJournal, usize)> {
        let (file, held) = FrameFile::open::<JournaledWrite>(path, JOURNAL_MAX_FRAME)?;
        let (now, now_ns) = (Instant::now(), unix_nanos());
        let at = |ns: u64| {
            let age = Duration::from_nanos(now_ns.saturating_sub(ns));
            now.checked_sub(age).unwrap_or(now)
        };
        let replayed = replay(store, held.items, at);
        let journal = SinkJournal {
            inner: Mutex::new(JournalFile {
                file,
                failing: false,
            }),
        };
        Ok((journal, replayed))
    }

    /// Journals `request` from `peer`, then applies it with `apply` as of the time it was
    /// journaled. Under one lock, so that the journal's order is the order of application.
    /// A write that cannot be journaled is not applied (`Err`: the writer sends it again),
    /// so nothing is acknowledged that a restart would lose; the failure is warned about
    /// once until the journal can be written again.
    pub(crate) fn applied(
        &self,
        peer: &str,
        mut request: SinkRequest,
        apply: impl FnOnce(SinkRequest, Instant) -> Result<(), Fenced>,
    ) -> Result<Result<(), Fenced>, String> {
        let mut journal = lock(&self.inner);
        let (now, unix_nanos) = (Instant::now(), unix_nanos());
        // Checked already, and never again: a grant does not belong on disk.
        request.forget_grant();
        let entry = JournaledWrite {
            unix_nanos,
            peer: peer.to_string(),
            request,
        };
        let written = encode_frame(&entry)
            .map_err(|e| e.to_string())
            .and_then(|frame| journal.file.append(&frame).map_err(|e| e.to_string()));
        match written {
            Err(e) => {
                if !journal.failing {
                    tracing::warn!(error = %e, "sink store journal write failed: writes are refused until it can be written again");
                    journal.failing = true;
                }
                Err(format!("the sink store could not journal the write: {e}"))
            }
            Ok(()) => {
                journal.failing = false;
                Ok(apply(entry.request, now))
            }
        }
    }
}
