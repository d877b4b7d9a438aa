//! Sinks: discarding, collecting (with provenance, for the harness) and file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::sink_service::RemoteSinkWriter;
use super::sink_store::{
    BatchEntry, CollectStore, CollectedBatch, Fenced, SinkOp, WriterKey, END_OF_INPUT,
};
use super::ConnectorContext;
use crate::chain::{ChainEvent, Collector, Out, TaskWaits, Traceable};
use crate::error::JobError;
use crate::ids::CheckpointId;

/// Which sink a built-in job writes to (job parameter `sink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkSpec {
    /// Count and drop (benchmarks).
    Discard,
    /// Keep every record with its provenance in the TaskManager's `CollectStore`, visible as
    /// soon as a batch is flushed (at-least-once across restarts).
    Collect,
    /// The same store written in two phases: records are staged per checkpoint and become
    /// visible when the checkpoint completes (exactly-once with checkpoints).
    CollectTransactional,
    /// One text file per sink subtask under this directory.
    File(PathBuf),
}

impl std::str::FromStr for SinkSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "discard" => Ok(SinkSpec::Discard),
            "collect" => Ok(SinkSpec::Collect),
            "collect-transactional" => Ok(SinkSpec::CollectTransactional),
            _ => match s.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(SinkSpec::File(PathBuf::from(path))),
                _ => Err(format!(
                    "unknown sink '{s}': expected discard, collect, collect-transactional or file:DIR"
                )),
            },
        }
    }
}

impl SinkSpec {
    /// Builds the per-subtask collector for a record type that knows its provenance.
    /// Collecting sinks write to the sink store at `store` (HOST:PORT), or else to the
    /// TaskManager's in-process one.
    pub fn instantiate<T>(
        &self,
        ctx: &dyn ConnectorContext,
        store: Option<&str>,
    ) -> Result<Out<T>, JobError>
    where
        T: Serialize + Traceable + std::fmt::Debug + Send + 'static,
    {
        Ok(match self {
            SinkSpec::Discard => Box::new(DiscardSink),
            SinkSpec::Collect => Box::new(CollectSink::new(ctx, store, false)?),
            SinkSpec::CollectTransactional => Box::new(CollectSink::new(ctx, store, true)?),
            SinkSpec::File(dir) => Box::new(FileSink::create(dir, ctx)?),
        })
    }

    /// Whether the sink writes to a sink store (and so can be pointed at a served one).
    pub fn collects(&self) -> bool {
        matches!(self, SinkSpec::Collect | SinkSpec::CollectTransactional)
    }
}

struct DiscardSink;

impl<T> Collector<T> for DiscardSink {
    fn collect(&mut self, _item: T) {}
    fn event(&mut self, _event: ChainEvent) {}
}

/// Where a collecting sink's writes go: the store itself, in this process, or a writer task
/// that sends them, in order, to a served one.
enum StoreLink {
    Local(CollectStore),
    Remote(RemoteSinkWriter),
}

struct CollectSink {
    link: StoreLink,
    writer: WriterKey,
    taskmanager: Arc<str>,
    attempt: u32,
    /// Where the sink leaves the waiting for a remote store to its task.
    waits: TaskWaits,
    /// Two-phase: flushed batches wait in `uncommitted` until a barrier stages them.
    transactional: bool,
    /// The records since the last flush: their provenance and where each ends in `buffer`.
    pending: Vec<BatchEntry>,
    /// Payloads of the pending records, back to back: one buffer per batch, not one per record.
    buffer: BytesMut,
    /// Flushed since the last barrier (two-phase only).
    uncommitted: Vec<CollectedBatch>,
    /// Set once the store refused this attempt: it has been replaced, so it writes nothing more.
    fenced: bool,
}

impl CollectSink {
    fn new(
        ctx: &dyn ConnectorContext,
        store: Option<&str>,
        transactional: bool,
    ) -> Result<Self, JobError> {
        let writer = WriterKey {
            job: ctx.job(),
            sink: Arc::from(ctx.operator_name()),
            subtask: ctx.subtask(),
        };
        let attempt = ctx.attempt().attempt;
        let link = match (store, ctx.collect_store()) {
            (Some(addr), _) => {
                let client = ctx.sink_clients().client(addr);
                StoreLink::Remote(RemoteSinkWriter::start(client, &writer, attempt))
            }
            (None, Some(local)) => StoreLink::Local(local.clone()),
            (None, None) => {
                return Err(JobError::Sink(
                    "sink=collect needs sink-store=rill://HOST:PORT, or an in-process store \
                     (rill local, the simulator)"
                        .into(),
                ))
            }
        };
        let mut sink = CollectSink {
            link,
            writer,
            taskmanager: Arc::from(ctx.taskmanager()),
            attempt,
            waits: ctx.waits().clone(),
            transactional,
            pending: Vec::new(),
            buffer: BytesMut::new(),
            uncommitted: Vec::new(),
            fenced: false,
        };
        // Take over the sink subtask: fences older attempts, settles the restored transaction.
        let restored = ctx.restored_checkpoint();
        sink.send(SinkOp::Open { restored })
            .map_err(|e| JobError::Sink(e.to_string()))?;
        Ok(sink)
    }

    fn send(&mut self, op: SinkOp) -> Result<(), Fenced> {
        match &self.link {
            StoreLink::Local(store) => store.apply(&self.writer, self.attempt, op),
            StoreLink::Remote(writer) => writer.send(op),
        }
    }

    /// Sends a write; once refused, the sink has been replaced and writes nothing more.
    fn write(&mut self, op: SinkOp) {
        if self.fenced {
            return;
        }
        if let Err(e) = self.send(op) {
            tracing::warn!(sink = %self.writer.sink, subtask = self.writer.subtask, error = %e, "sink write fenced");
            self.fenced = true;
        }
    }

    /// Hands what was collected since the last flush to the store as one batch: records are
    /// visible from when the store has it (the sink's output time), or, two-phase, wait for
    /// the next barrier.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let payloads = self.buffer.split().freeze();
        // The next batch is likely as large: room for it now, not by doubling as it grows.
        self.buffer.reserve(payloads.len());
        let entries = Vec::with_capacity(self.pending.len());
        let batch = CollectedBatch {
            sink: self.writer.sink.clone(),
            taskmanager: self.taskmanager.clone(),
            at: tokio::time::Instant::now(),
            subtask: self.writer.subtask,
            attempt: self.attempt,
            payloads,
            entries: std::mem::replace(&mut self.pending, entries),
        };
        if self.transactional {
            self.uncommitted.push(batch);
        } else {
            self.write(SinkOp::Append(batch));
        }
        if let StoreLink::Remote(writer) = &self.link {
            if let Some(wait) = writer.backlogged() {
                self.waits.push(wait);
            }
        }
    }

    /// Barrier: what was flushed since the last one is pre-committed under this checkpoint.
    fn stage(&mut self, checkpoint: CheckpointId) {
        self.flush();
        for batch in std::mem::take(&mut self.uncommitted) {
            self.write(SinkOp::Stage { checkpoint, batch });
        }
    }

    fn commit(&mut self, checkpoint: CheckpointId) {
        self.write(SinkOp::Commit { checkpoint });
    }

    /// Everything written so far must be stored before the task goes on: before it
    /// acknowledges a checkpoint (the output it covers is then safe), or reports FINISHED.
    fn sync(&mut self) {
        if let StoreLink::Remote(writer) = &self.link {
            self.waits.push(writer.synced());
        }
    }
}

impl<T: Serialize + Traceable + Send> Collector<T> for CollectSink {
    fn collect(&mut self, item: T) {
        let start = self.buffer.len();
        if bincode::serialize_into((&mut self.buffer).writer(), &item).is_err() {
            self.buffer.truncate(start);
        }
        // A batch over 4 GiB is beyond any flush interval; saturate rather than wrap.
        let end = u32::try_from(self.buffer.len()).unwrap_or(u32::MAX);
        self.pending.push(BatchEntry::new(item.origin(), end));
    }
    fn event(&mut self, event: ChainEvent) {
        match event {
            ChainEvent::Flush => self.flush(),
            ChainEvent::Barrier(id) if self.transactional => {
                self.stage(id);
                self.sync();
            }
            // At least once: what came before the barrier is output before the checkpoint
            // that covers it completes, or a crash would lose it for good.
            ChainEvent::Barrier(_) => {
                self.flush();
                self.sync();
            }
            ChainEvent::CheckpointComplete(id) if self.transactional => self.commit(id),
            // End of input: nothing more can change this output, so it is committed now
            // rather than waiting for a final checkpoint (which rill does not take).
            ChainEvent::Finish if self.transactional => {
                self.stage(END_OF_INPUT);
                self.commit(END_OF_INPUT);
                self.sync();
            }
            ChainEvent::Finish => {
                self.flush();
                self.sync();
            }
            _ => {}
        }
    }
}

/// Writes each record's Debug form as a line to `DIR/<sink>-<subtask>-<attempt>.txt`.
/// Uses std::fs: real-tokio deployments only (the simulator uses the collecting sink).
struct FileSink {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl FileSink {
    fn create(dir: &std::path::Path, ctx: &dyn ConnectorContext) -> Result<Self, JobError> {
        let io = |e: std::io::Error| JobError::Sink(format!("file sink in {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let name: String = ctx
            .operator_name()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '_' })
            .collect();
        // One file per attempt: a restarted subtask must not truncate what its predecessor
        // wrote (which, without a transaction, is output already).
        let path = dir.join(format!(
            "{name}-{}-{}.txt",
            ctx.subtask(),
            ctx.attempt().attempt
        ));
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
        // At a barrier too: what came before it must be written before the checkpoint that
        // covers it completes, or a crash would lose it for good (the sources will not replay it).
        if matches!(
            event,
            ChainEvent::Flush | ChainEvent::Finish | ChainEvent::Barrier(_)
        ) {
            if let Err(e) = self.out.flush() {
                tracing::error!(path = %self.path.display(), error = %e, "file sink flush failed");
            }
        }
    }
}
