//! Sources: readers that pull from an external system and push into their operator chain.

use std::sync::Arc;

use crate::api::operator::{ChainEvent, Collector, OperatorContext, Origin, Out};
use crate::api::JobError;
use crate::state::snapshot::{decode, encode};
use serde::{Deserialize, Serialize};

use super::log::{assign_partitions, LogRecord, PartitionedLog};

/// What one poll of a source produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    Emitted(usize),
    Finished,
}

/// A typed source reader for one subtask.
pub trait SourceReader<T>: Send {
    /// Pushes at most `max` records into `out`.
    fn poll_next(
        &mut self,
        max: usize,
        out: &mut dyn Collector<T>,
    ) -> Result<SourceStatus, JobError>;
    /// Event time reached on every partition this reader owns, if it tracks event time.
    fn watermark(&self) -> Option<u64>;
    /// Records per second this reader should emit (pacing), if limited.
    fn rate(&self) -> Option<f64>;
    /// The reader's position for a checkpoint (what it will read next), if it can rewind.
    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

/// A source reader together with its operator chain, with the record type erased: what a
/// source task drives.
pub trait SourceDriver: Send {
    fn poll(&mut self, max: usize) -> Result<SourceStatus, JobError>;
    fn event(&mut self, event: ChainEvent);
    fn watermark(&self) -> Option<u64>;
    fn rate(&self) -> Option<f64>;
    /// The reader's position for a checkpoint.
    fn snapshot(&self) -> Result<Option<Vec<u8>>, String>;
}

pub(crate) struct TypedSourceDriver<T> {
    reader: Box<dyn SourceReader<T>>,
    chain: Out<T>,
}

impl<T> TypedSourceDriver<T> {
    pub fn new(reader: Box<dyn SourceReader<T>>, chain: Out<T>) -> Self {
        TypedSourceDriver { reader, chain }
    }
}

impl<T: Send> SourceDriver for TypedSourceDriver<T> {
    fn poll(&mut self, max: usize) -> Result<SourceStatus, JobError> {
        self.reader.poll_next(max, &mut *self.chain)
    }
    fn event(&mut self, event: ChainEvent) {
        self.chain.event(event)
    }
    fn watermark(&self) -> Option<u64> {
        self.reader.watermark()
    }
    fn rate(&self) -> Option<f64> {
        self.reader.rate()
    }
    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        self.reader.snapshot()
    }
}

/// Reads the partitions of a `PartitionedLog` assigned to one subtask, round robin, from given
/// start offsets (so a restore can rewind it).
pub struct LogSource {
    log: Arc<dyn PartitionedLog>,
    /// (partition, next offset, last timestamp seen, finished)
    cursors: Vec<PartitionCursor>,
    next: usize,
    rate: Option<f64>,
    batch: Vec<LogRecord>,
}

struct PartitionCursor {
    partition: u32,
    offset: u64,
    last_ts: u64,
    done: bool,
}

impl LogSource {
    /// `rate` is this subtask's share of records per second, if paced.
    pub fn new(
        log: Arc<dyn PartitionedLog>,
        parallelism: u32,
        subtask: u32,
        rate: Option<f64>,
    ) -> Self {
        let cursors = assign_partitions(log.partitions(), parallelism, subtask)
            .into_iter()
            .map(|partition| PartitionCursor {
                partition,
                offset: 0,
                last_ts: 0,
                done: false,
            })
            .collect();
        LogSource {
            log,
            cursors,
            next: 0,
            rate,
            batch: Vec::new(),
        }
    }

    /// The reader of one source subtask: its partitions, from the offsets of the checkpoint
    /// the attempt restores from, or from the start.
    pub fn open(
        log: Arc<dyn PartitionedLog>,
        ctx: &OperatorContext,
        rate: Option<f64>,
    ) -> Result<Self, JobError> {
        let restored = ctx.restored().and_then(|s| s.operator.as_deref());
        LogSource::new(log, ctx.parallelism, ctx.subtask(), rate).restore(restored)
    }

    /// Rewinds to a checkpointed position (from `snapshot`): each partition this subtask owns
    /// resumes at its checkpointed offset. Partitions the snapshot does not name start at 0.
    pub fn restore(mut self, state: Option<&[u8]>) -> Result<Self, JobError> {
        let Some(bytes) = state else { return Ok(self) };
        let saved: SourceState = decode(bytes).map_err(JobError::State)?;
        // Where the round robin stood: a replay reads the partitions in the same order, so
        // it numbers its records as the first time did.
        self.next = saved.next;
        for c in &mut self.cursors {
            if let Some(s) = saved.cursors.iter().find(|s| s.partition == c.partition) {
                c.offset = s.offset;
                c.last_ts = s.last_ts;
                c.done = s.done;
            }
        }
        Ok(self)
    }

    /// Current read position per partition.
    pub fn offsets(&self) -> Vec<(u32, u64)> {
        self.cursors
            .iter()
            .map(|c| (c.partition, c.offset))
            .collect()
    }
}

impl SourceReader<LogRecord> for LogSource {
    fn poll_next(
        &mut self,
        max: usize,
        out: &mut dyn Collector<LogRecord>,
    ) -> Result<SourceStatus, JobError> {
        let live = self.cursors.iter().filter(|c| !c.done).count();
        if live == 0 {
            return Ok(SourceStatus::Finished);
        }
        // Advance to the next live partition, round robin, so partitions progress evenly.
        while self.cursors[self.next % self.cursors.len()].done {
            self.next += 1;
        }
        let idx = self.next % self.cursors.len();
        self.next += 1;
        let cursor = &mut self.cursors[idx];
        self.batch.clear();
        let n = self
            .log
            .read(cursor.partition, cursor.offset, max, &mut self.batch)
            .map_err(|e| JobError::Source(e.to_string()))?;
        if n == 0 {
            cursor.done = true;
            return Ok(SourceStatus::Emitted(0));
        }
        cursor.offset += n as u64;
        for record in self.batch.drain(..) {
            cursor.last_ts = cursor.last_ts.max(record.timestamp_ms);
            out.collect(record);
        }
        Ok(SourceStatus::Emitted(n))
    }

    fn watermark(&self) -> Option<u64> {
        // A subtask without partitions must not hold event time back: it is at the end.
        Some(
            self.cursors
                .iter()
                .map(|c| if c.done { u64::MAX } else { c.last_ts })
                .min()
                .unwrap_or(u64::MAX),
        )
    }

    fn rate(&self) -> Option<f64> {
        self.rate
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        let cursors: Vec<CursorState> = self
            .cursors
            .iter()
            .map(|c| CursorState {
                partition: c.partition,
                offset: c.offset,
                last_ts: c.last_ts,
                done: c.done,
            })
            .collect();
        let state = SourceState {
            cursors,
            next: self.next % self.cursors.len().max(1),
        };
        encode(&state).map(Some)
    }
}

/// A log source's checkpointed position.
#[derive(Debug, Serialize, Deserialize)]
struct SourceState {
    cursors: Vec<CursorState>,
    /// The round robin's next cursor.
    next: usize,
}

/// A partition cursor as checkpointed.
#[derive(Debug, Serialize, Deserialize)]
struct CursorState {
    partition: u32,
    offset: u64,
    last_ts: u64,
    done: bool,
}

impl LogRecord {
    pub fn origin(&self) -> Origin {
        Origin {
            partition: self.partition,
            offset: self.offset,
        }
    }
}
