//! Sinks: discarding, collecting (with provenance, for the harness) and file.

use std::io::Write;
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
    /// The record, bincode-encoded; decode with `CollectStore::decoded`.
    pub payload: Vec<u8>,
}

/// Where collecting sinks put their records: handed to each TaskManager as a service, so it is
/// shared in-process (LocalCluster, simulator) without any global state.
#[derive(Debug, Clone, Default)]
pub struct CollectStore {
    records: Arc<Mutex<Vec<CollectedRecord>>>,
}

impl CollectStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn append(&self, batch: &mut Vec<CollectedRecord>) {
        self.lock().append(batch);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CollectedRecord>> {
        // A panic while holding the lock leaves the Vec intact; keep serving.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every record out, leaving the store empty (no copies of large outputs).
    pub fn take(&self) -> Vec<CollectedRecord> {
        std::mem::take(&mut *self.lock())
    }

    pub fn records(&self) -> Vec<CollectedRecord> {
        self.lock().clone()
    }

    /// Every record decoded as `T`, with its metadata, in arrival order.
    pub fn decoded<T: DeserializeOwned>(
        &self,
    ) -> Result<Vec<(CollectedRecord, T)>, bincode::Error> {
        self.lock()
            .iter()
            .map(|r| Ok((r.clone(), bincode::deserialize(&r.payload)?)))
            .collect()
    }
}

struct CollectSink {
    store: CollectStore,
    sink: Arc<str>,
    taskmanager: Arc<str>,
    subtask: u32,
    attempt: u32,
    pending: Vec<CollectedRecord>,
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
        })
    }
}

impl<T: Serialize + Traceable + Send> Collector<T> for CollectSink {
    fn collect(&mut self, item: T) {
        self.pending.push(CollectedRecord {
            sink: self.sink.clone(),
            taskmanager: self.taskmanager.clone(),
            at: tokio::time::Instant::now(),
            subtask: self.subtask,
            attempt: self.attempt,
            origin: item.origin(),
            payload: bincode::serialize(&item).unwrap_or_default(),
        });
    }
    fn event(&mut self, event: ChainEvent) {
        if matches!(event, ChainEvent::Flush | ChainEvent::Finish) {
            self.store.append(&mut self.pending);
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
