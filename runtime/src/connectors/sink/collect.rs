//! The collecting sinks: every record with its provenance into a sink store (the
//! TaskManager's in-process one, or a served one), at least once (visible when flushed) or
//! exactly once (staged per checkpoint in the store, visible when the checkpoint completes).
//! The store fences attempts: the writer of a newer attempt replaces an older one, whose
//! writes it then refuses.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::SinkWriter;
use crate::chain::{TaskWaits, Traceable};
use crate::connectors::sink_service::{RemoteSinkWriter, SinkRefusal};
use crate::connectors::sink_store::{BatchEntry, CollectStore, CollectedBatch, SinkOp, WriterKey};
use crate::connectors::ConnectorContext;
use crate::error::JobError;
use crate::ids::CheckpointId;

/// Where a collecting sink's writes go: the store itself, in this process, or a writer task
/// that sends them, in order, to a served one.
enum StoreLink {
    Local(CollectStore),
    Remote(RemoteSinkWriter),
}

/// The writer of one collecting sink subtask; its committable is the checkpoint whose
/// transaction it staged in the store.
pub struct CollectSink {
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
    /// The writer of the subtask `ctx` describes, to the store at `store` (HOST:PORT) or the
    /// TaskManager's in-process one. Opening takes the sink subtask over in the store: it
    /// fences older attempts and settles the restored transaction (commits the restored
    /// checkpoint's, aborts later ones).
    pub fn open(
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
                let (grant, waits) = (ctx.sink_grant(), ctx.waits().clone());
                StoreLink::Remote(RemoteSinkWriter::start(
                    client, &writer, attempt, grant, waits,
                ))
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
        let restored = ctx.restored_checkpoint();
        sink.send(SinkOp::Open { restored })
            .map_err(|e| JobError::Sink(e.to_string()))?;
        Ok(sink)
    }

    fn send(&mut self, op: SinkOp) -> Result<(), SinkRefusal> {
        match &self.link {
            StoreLink::Local(store) => Ok(store.apply(&self.writer, self.attempt, op)?),
            StoreLink::Remote(writer) => writer.send(op),
        }
    }

    /// Sends a write; once refused, the sink has been replaced and writes nothing more (what
    /// it would write is the new attempt's to write: not an error of this one's output).
    fn write_op(&mut self, op: SinkOp) {
        if self.fenced {
            return;
        }
        if let Err(e) = self.send(op) {
            tracing::warn!(sink = %self.writer.sink, subtask = self.writer.subtask, error = %e, "sink write refused");
            self.fenced = true;
        }
    }

    /// Hands what was collected since the last flush to the store as one batch: records are
    /// visible from when the store has it (the sink's output time), or, two-phase, wait for
    /// the next barrier.
    fn flush_batch(&mut self) {
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
            self.write_op(SinkOp::Append(batch));
        }
        if let StoreLink::Remote(writer) = &self.link {
            if let Some(wait) = writer.backlogged() {
                self.waits.push(wait);
            }
        }
    }

    /// Everything written so far must be stored before the task goes on: before it
    /// acknowledges a checkpoint (the output it covers is then safe), or reports FINISHED.
    fn sync(&mut self) {
        if let StoreLink::Remote(writer) = &self.link {
            self.waits.push(writer.synced());
        }
    }
}

impl<T: Serialize + Traceable + Send> SinkWriter<T, CheckpointId> for CollectSink {
    fn recover(&mut self, _restored: Vec<CheckpointId>) -> Result<(), JobError> {
        // Opening did it: the store committed the restored checkpoint's transaction (and the
        // earlier ones) and aborted the later ones when this attempt took the subtask over.
        Ok(())
    }

    fn write(&mut self, item: T) -> Result<(), JobError> {
        let start = self.buffer.len();
        if let Err(e) = bincode::serialize_into((&mut self.buffer).writer(), &item) {
            self.buffer.truncate(start);
            return Err(JobError::Sink(format!("cannot encode a record: {e}")));
        }
        // A batch over 4 GiB is beyond any flush interval; saturate rather than wrap.
        let end = u32::try_from(self.buffer.len()).unwrap_or(u32::MAX);
        self.pending.push(BatchEntry::new(item.origin(), end));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), JobError> {
        self.flush_batch();
        Ok(())
    }

    fn prepare_commit(&mut self, checkpoint: CheckpointId) -> Result<Vec<CheckpointId>, JobError> {
        self.flush_batch();
        let staged = std::mem::take(&mut self.uncommitted);
        // At least once: what came before the barrier is stored before the checkpoint that
        // covers it completes, or a crash would lose it for good.
        let committable = match self.transactional {
            // The end of the input is committed even with nothing staged: that marks the
            // sink subtask's output complete.
            true if !staged.is_empty() || checkpoint == CheckpointId::END_OF_INPUT => {
                vec![checkpoint]
            }
            _ => Vec::new(),
        };
        for batch in staged {
            self.write_op(SinkOp::Stage { checkpoint, batch });
        }
        self.sync();
        Ok(committable)
    }

    fn commit(&mut self, committables: Vec<CheckpointId>) -> Result<(), JobError> {
        // The store commits every transaction up to a checkpoint at once.
        if let Some(&checkpoint) = committables.iter().max() {
            self.write_op(SinkOp::Commit { checkpoint });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), JobError> {
        // The last pre-commit synced what was written; a transaction's commit came after it.
        if self.transactional {
            self.sync();
        }
        Ok(())
    }
}
