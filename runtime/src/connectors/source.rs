//! Sources: readers that pull from an external system and push into their operator chain.

use std::sync::Arc;

use tokio::sync::Notify;

use super::ConnectorContext;
use crate::chain::{ChainEvent, Collector, Origin, Out};
use crate::error::JobError;
use crate::state::snapshot::{decode, encode};
use serde::{Deserialize, Serialize};

use super::log::{assign_partitions, LogRecord, PartitionedLog};
use super::log_service::{Fetched, LogPrefetcher};

/// What one poll of a source produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    Emitted(usize),
    /// Nothing to read yet (a remote log's fetch is under way): wait on `wakeup`.
    Pending,
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
    /// What a `Pending` reader signals when it may have records again.
    fn wakeup(&self) -> Option<Arc<Notify>> {
        None
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
    /// What a `Pending` reader signals when it may have records again.
    fn wakeup(&self) -> Option<Arc<Notify>>;
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
    fn wakeup(&self) -> Option<Arc<Notify>> {
        self.reader.wakeup()
    }
}

/// Where a log source reads.
#[derive(Clone, Debug)]
pub enum LogInput {
    /// A log in this process (generated, or files).
    Local(Arc<dyn PartitionedLog>),
    /// A topic of a log server at `addr` (HOST:PORT) with `partitions` partitions.
    Served {
        addr: String,
        topic: String,
        partitions: u32,
    },
}

impl LogInput {
    fn partitions(&self) -> u32 {
        match self {
            LogInput::Local(log) => log.partitions(),
            LogInput::Served { partitions, .. } => *partitions,
        }
    }
}

/// How a `LogSource` gets its records: read in place, or prefetched from a served topic (the
/// fetch loops start at the first poll, once a restore has set the offsets).
enum Reader {
    Local(Arc<dyn PartitionedLog>),
    Served {
        client: super::log_service::LogClient,
        topic: String,
        prefetch: Option<LogPrefetcher>,
    },
}

/// Reads the partitions of a `PartitionedLog` assigned to one subtask, round robin, from given
/// start offsets (so a restore can rewind it).
pub struct LogSource {
    reader: Reader,
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
        let partitions = log.partitions();
        Self::reading(Reader::Local(log), partitions, parallelism, subtask, rate)
    }

    fn reading(
        reader: Reader,
        partitions: u32,
        parallelism: u32,
        subtask: u32,
        rate: Option<f64>,
    ) -> Self {
        let cursors = assign_partitions(partitions, parallelism, subtask)
            .into_iter()
            .map(|partition| PartitionCursor {
                partition,
                offset: 0,
                last_ts: 0,
                done: false,
            })
            .collect();
        LogSource {
            reader,
            cursors,
            next: 0,
            rate,
            batch: Vec::new(),
        }
    }

    /// The reader of one source subtask: its partitions, from the offsets of the checkpoint
    /// the attempt restores from, or from the start.
    pub fn open(
        input: &LogInput,
        ctx: &dyn ConnectorContext,
        rate: Option<f64>,
    ) -> Result<Self, JobError> {
        let reader = match input {
            LogInput::Local(log) => Reader::Local(log.clone()),
            LogInput::Served { addr, topic, .. } => Reader::Served {
                client: ctx.log_clients().client(addr),
                topic: topic.clone(),
                prefetch: None,
            },
        };
        let (partitions, subtask) = (input.partitions(), ctx.subtask());
        let source = LogSource::reading(reader, partitions, ctx.parallelism(), subtask, rate);
        let restored = ctx.restored().and_then(|s| s.operator.as_deref());
        source.restore(restored)
    }

    /// Up to `max` records of the cursor `idx`'s partition, appended to `self.batch`.
    fn fetch(&mut self, idx: usize, max: usize) -> Result<Fetched, JobError> {
        let cursor = &self.cursors[idx];
        match &mut self.reader {
            Reader::Local(log) => {
                let n = log
                    .read(cursor.partition, cursor.offset, max, &mut self.batch)
                    .map_err(|e| JobError::Source(e.to_string()))?;
                Ok(if n == 0 {
                    Fetched::End
                } else {
                    Fetched::Records(n)
                })
            }
            Reader::Served {
                client,
                topic,
                prefetch,
            } => {
                let cursors = &self.cursors;
                let prefetch = prefetch.get_or_insert_with(|| {
                    let starts: Vec<(u32, u64)> = cursors
                        .iter()
                        .filter(|c| !c.done)
                        .map(|c| (c.partition, c.offset))
                        .collect();
                    LogPrefetcher::start(client, topic, &starts)
                });
                prefetch
                    .read(cursor.partition, max, &mut self.batch)
                    .map_err(JobError::Source)
            }
        }
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
        self.batch.clear();
        let n = match self.fetch(idx, max)? {
            // Wait for this partition rather than skip it: a replay must read the partitions
            // in the same order to number its records as the first reading did.
            Fetched::Pending => return Ok(SourceStatus::Pending),
            Fetched::End => {
                self.next += 1;
                self.cursors[idx].done = true;
                return Ok(SourceStatus::Emitted(0));
            }
            Fetched::Records(n) => n,
        };
        self.next += 1;
        let cursor = &mut self.cursors[idx];
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

    fn wakeup(&self) -> Option<Arc<Notify>> {
        match &self.reader {
            Reader::Served {
                prefetch: Some(p), ..
            } => Some(p.wakeup()),
            _ => None,
        }
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
