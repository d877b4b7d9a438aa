//! Sinks: discarding, collecting (with provenance, for the harness) and file.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::operator::{ChainEvent, Collector, OperatorContext, Origin, Out, Traceable};
use crate::api::JobError;

/// Which sink a built-in job writes to (job parameter `sink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkSpec {
    /// Count and drop (benchmarks).
    Discard,
    /// Keep every record with its provenance in the TaskManager's `CollectStore`.
    Collect,
    /// One text file per sink subtask under this directory.
    File(PathBuf),
}

impl std::str::FromStr for SinkSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "discard" => Ok(SinkSpec::Discard),
            "collect" => Ok(SinkSpec::Collect),
            _ => match s.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(SinkSpec::File(PathBuf::from(path))),
                _ => Err(format!(
                    "unknown sink '{s}': expected discard, collect or file:DIR"
                )),
            },
        }
    }
}

impl SinkSpec {
    /// Builds the per-subtask collector for a record type that knows its provenance.
    pub fn instantiate<T>(&self, ctx: &OperatorContext) -> Result<Out<T>, JobError>
    where
        T: Serialize + Traceable + std::fmt::Debug + Send + 'static,
    {
        Ok(match self {
            SinkSpec::Discard => Box::new(DiscardSink),
            SinkSpec::Collect => Box::new(CollectSink::new(ctx)?),
            SinkSpec::File(dir) => Box::new(FileSink::create(dir, ctx)?),
        })
    }
}

struct DiscardSink;

impl<T> Collector<T> for DiscardSink {
    fn collect(&mut self, _item: T) {}
    fn event(&mut self, _event: ChainEvent) {}
}

/// One record as a collecting sink saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedRecord {
    /// Shared per sink subtask (`Arc<str>`), so a record costs no name allocations.
    pub sink: Arc<str>,
    /// The TaskManager the sink subtask ran on.
    pub taskmanager: Arc<str>,
    /// When the sink received it (`tokio::time`, so virtual time under the simulator).
    pub at: tokio::time::Instant,
    pub subtask: u32,
    /// The attempt of the sink subtask that wrote it (fencing evidence for the harness).
    pub attempt: u32,
    pub origin: Option<Origin>,
    /// The record, bincode-encoded (a slice of its batch's buffer); decode with
    /// `CollectStore::decoded`.
    pub payload: Bytes,
}

/// Where collecting sinks put their records: handed to each TaskManager as a service, so it is
/// shared in-process (LocalCluster, simulator) without any global state. Records are kept in
/// the batches the sinks flushed, so a large output is never copied to grow one vector.
#[derive(Debug, Clone, Default)]
pub struct CollectStore {
    batches: Arc<Mutex<Vec<Vec<CollectedRecord>>>>,
}

impl CollectStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn append(&self, batch: Vec<CollectedRecord>) {
        if !batch.is_empty() {
            self.lock().push(batch);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<CollectedRecord>>> {
        crate::util::lock(&self.batches)
    }

    pub fn len(&self) -> usize {
        self.lock().iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every record out in arrival order, leaving the store empty.
    pub fn take(&self) -> impl Iterator<Item = CollectedRecord> {
        std::mem::take(&mut *self.lock()).into_iter().flatten()
    }

    pub fn records(&self) -> Vec<CollectedRecord> {
        self.lock().iter().flatten().cloned().collect()
    }

    /// Every record decoded as `T`, with its metadata, in arrival order.
    pub fn decoded<T: DeserializeOwned>(
        &self,
    ) -> Result<Vec<(CollectedRecord, T)>, bincode::Error> {
        self.lock()
            .iter()
            .flatten()
            .map(|r| Ok((r.clone(), bincode::deserialize(&r.payload)?)))
            .collect()
    }
}

/// A record waiting for its batch to be flushed: its payload is a range of the batch buffer.
struct Pending {
    at: tokio::time::Instant,
    origin: Option<Origin>,
    payload: std::ops::Range<usize>,
}

struct CollectSink {
    store: CollectStore,
    sink: Arc<str>,
    taskmanager: Arc<str>,
    subtask: u32,
    attempt: u32,
    pending: Vec<Pending>,
    /// Payloads of the pending records, back to back: one buffer per batch, not one per record.
    buffer: BytesMut,
}

impl CollectSink {
    fn new(ctx: &OperatorContext) -> Result<Self, JobError> {
        let store = ctx.services.collect.clone().ok_or_else(|| {
            JobError::Sink(
                "sink=collect needs an in-process CollectStore (rill local or the simulator)"
                    .into(),
            )
        })?;
        Ok(CollectSink {
            store,
            sink: Arc::from(ctx.operator_name.as_str()),
            taskmanager: Arc::from(ctx.services.tm_name.as_str()),
            subtask: ctx.subtask(),
            attempt: ctx.attempt.attempt,
            pending: Vec::new(),
            buffer: BytesMut::new(),
        })
    }

    fn flush(&mut self) {
        let payloads = self.buffer.split().freeze();
        let batch = self
            .pending
            .drain(..)
            .map(|p| CollectedRecord {
                sink: self.sink.clone(),
                taskmanager: self.taskmanager.clone(),
                at: p.at,
                subtask: self.subtask,
                attempt: self.attempt,
                origin: p.origin,
                payload: payloads.slice(p.payload),
            })
            .collect();
        self.store.append(batch);
    }
}

impl<T: Serialize + Traceable + Send> Collector<T> for CollectSink {
    fn collect(&mut self, item: T) {
        let start = self.buffer.len();
        if bincode::serialize_into((&mut self.buffer).writer(), &item).is_err() {
            self.buffer.truncate(start);
        }
        let payload = start..self.buffer.len();
        self.pending.push(Pending {
            at: tokio::time::Instant::now(),
            origin: item.origin(),
            payload,
        });
    }
    fn event(&mut self, event: ChainEvent) {
        if matches!(event, ChainEvent::Flush | ChainEvent::Finish) {
            self.flush();
        }
    }
}

/// Writes each record's Debug form as a line to `DIR/<sink>-<subtask>.txt`.
/// Uses std::fs: real-tokio deployments only (the simulator uses the collecting sink).
struct FileSink {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl FileSink {
    fn create(dir: &std::path::Path, ctx: &OperatorContext) -> Result<Self, JobError> {
        let io = |e: std::io::Error| JobError::Sink(format!("file sink in {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let name: String = ctx
            .operator_name
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '_' })
            .collect();
        let path = dir.join(format!("{name}-{}.txt", ctx.subtask()));
        let file = std::fs::File::create(&path).map_err(io)?;
        Ok(FileSink {
            out: std::io::BufWriter::new(file),
            path,
        })
    }
}

impl<T: std::fmt::Debug + Send> Collector<T> for FileSink {
    fn collect(&mut self, item: T) {
        if let Err(e) = writeln!(self.out, "{item:?}") {
            tracing::error!(path = %self.path.display(), error = %e, "file sink write failed");
        }
    }
    fn event(&mut self, event: ChainEvent) {
        if matches!(event, ChainEvent::Flush | ChainEvent::Finish) {
            if let Err(e) = self.out.flush() {
                tracing::error!(path = %self.path.display(), error = %e, "file sink flush failed");
            }
        }
    }
}
