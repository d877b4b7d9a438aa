//! Following a process's events file while it runs: the real run's counterpart of the
//! simulator's event recorder, read incrementally so anchored faults can wait for an event.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use rill::events::read_events;
pub use rill::events::unix_nanos;

use crate::events::RecordedEvent;
use crate::node::NodeName;

/// One node's events file, read up to the last whole frame.
pub struct EventTail {
    node: NodeName,
    path: PathBuf,
    /// Bytes read but not yet decoded: the start of a frame still being written.
    pending: Vec<u8>,
    offset: u64,
}

impl EventTail {
    /// Follows `path`, the events file of `node` (it may not exist yet).
    pub fn new(node: NodeName, path: PathBuf) -> Self {
        EventTail {
            node,
            path,
            pending: Vec::new(),
            offset: 0,
        }
    }

    /// The events written since the last call, timed since `start` (Unix nanoseconds).
    pub fn poll(&mut self, start: u64) -> Vec<RecordedEvent> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut fresh = Vec::new();
        if file.read_to_end(&mut fresh).is_err() {
            return Vec::new();
        }
        self.offset += fresh.len() as u64;
        self.pending.extend_from_slice(&fresh);
        let read = read_events(&self.pending);
        self.pending.drain(..read.consumed);
        read.items
            .into_iter()
            .map(|e| RecordedEvent {
                at: Duration::from_nanos(e.unix_nanos.saturating_sub(start)),
                node: self.node.clone(),
                event: e.event,
            })
            .collect()
    }

    /// Why the file's last bytes do not decode, if they do not (at the end of a run: a frame
    /// cut short by a SIGKILL, or damage).
    pub fn damaged(&self) -> Option<String> {
        (!self.pending.is_empty())
            .then(|| read_events(&self.pending).damaged)
            .flatten()
            .map(|why| format!("{}: {why}", self.path.display()))
    }
}
