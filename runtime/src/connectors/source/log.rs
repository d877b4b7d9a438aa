//! The built-in source: a [`PartitionedLog`]'s partitions as splits, read in place or
//! prefetched from a log server, on the same [`Source`] interface a user's source implements.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{Source, SourceOutput, SourceSplit, SplitReader, SplitStatus};
use crate::chain::Origin;
use crate::connectors::log::{LogRecord, PartitionedLog};
use crate::connectors::log_service::{Fetched, LogClient, LogPrefetcher};
use crate::connectors::ConnectorContext;
use crate::error::JobError;

/// Where a log source reads.
#[derive(Clone, Debug)]
pub enum LogInput {
    /// A log in this process (generated, or files).
    Local(Arc<dyn PartitionedLog>),
    /// A topic of a log server at `addr` (HOST:PORT) with `partitions` partitions.
    Served {
        /// The log server's address.
        addr: String,
        /// The topic (the source operator's name, unless the job names another).
        topic: String,
        /// The topic's partition count.
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

/// A source over a partitioned log: one split per partition.
pub struct LogSource {
    input: LogInput,
    rate: Option<f64>,
}

impl LogSource {
    /// Reads `input` as fast as the job takes it.
    pub fn new(input: LogInput) -> Self {
        LogSource { input, rate: None }
    }

    /// Paces the source to `records_per_second` over all its subtasks (live traffic stands in
    /// for a generated log this way); 0 or less is unpaced.
    pub fn paced(mut self, records_per_second: f64) -> Self {
        self.rate = (records_per_second > 0.0).then_some(records_per_second);
        self
    }
}

/// One partition of a log and the offset of its next record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSplit {
    /// The partition.
    pub partition: u32,
    /// The offset of the next record to read.
    pub offset: u64,
}

impl SourceSplit for LogSplit {
    fn split_id(&self) -> String {
        format!("partition-{}", self.partition)
    }
}

impl Source<LogRecord> for LogSource {
    type Split = LogSplit;

    fn splits(&self, _ctx: &dyn ConnectorContext) -> Result<Vec<LogSplit>, JobError> {
        Ok((0..self.input.partitions())
            .map(|partition| LogSplit {
                partition,
                offset: 0,
            })
            .collect())
    }

    fn reader(
        &self,
        ctx: &dyn ConnectorContext,
    ) -> Result<Box<dyn SplitReader<LogRecord, LogSplit>>, JobError> {
        Ok(Box::new(match &self.input {
            LogInput::Local(log) => LogReader::Local {
                log: log.clone(),
                batch: Vec::new(),
            },
            LogInput::Served { addr, topic, .. } => LogReader::Served {
                client: ctx.log_clients().client(addr),
                topic: topic.clone(),
                prefetch: None,
                batch: Vec::new(),
            },
        }))
    }

    fn rate(&self) -> Option<f64> {
        self.rate
    }
}

/// How a log source gets its records: read in place, or prefetched from a served topic (the
/// fetch loops start when the reader is opened, at the restored offsets).
pub enum LogReader {
    /// Reads the log in this process.
    Local {
        /// The log.
        log: Arc<dyn PartitionedLog>,
        /// The records of the current read, reused between reads.
        batch: Vec<LogRecord>,
    },
    /// Reads a topic of a log server, prefetched per partition.
    Served {
        /// The TaskManager's connection to the log server.
        client: LogClient,
        /// The topic read.
        topic: String,
        /// The fetch loops, started when the reader is opened.
        prefetch: Option<LogPrefetcher>,
        /// The records of the current read, reused between reads.
        batch: Vec<LogRecord>,
    },
}

impl LogReader {
    fn fetch(&mut self, split: &LogSplit, max: usize) -> Result<Fetched, JobError> {
        match self {
            LogReader::Local { log, batch } => {
                let n = log
                    .read(split.partition, split.offset, max, batch)
                    .map_err(|e| JobError::Source(e.to_string()))?;
                Ok(if n == 0 {
                    Fetched::End
                } else {
                    Fetched::Records(n)
                })
            }
            LogReader::Served {
                prefetch, batch, ..
            } => match prefetch {
                Some(p) => p
                    .read(split.partition, max, batch)
                    .map_err(JobError::Source),
                None => Err(JobError::Internal("log reader read before open".into())),
            },
        }
    }

    fn batch(&mut self) -> &mut Vec<LogRecord> {
        match self {
            LogReader::Local { batch, .. } | LogReader::Served { batch, .. } => batch,
        }
    }
}

impl SplitReader<LogRecord, LogSplit> for LogReader {
    fn open(&mut self, splits: &[LogSplit]) -> Result<(), JobError> {
        if let LogReader::Served {
            client,
            topic,
            prefetch,
            ..
        } = self
        {
            let starts: Vec<(u32, u64)> = splits.iter().map(|s| (s.partition, s.offset)).collect();
            *prefetch = Some(LogPrefetcher::start(client, topic, &starts));
        }
        Ok(())
    }

    fn read(
        &mut self,
        split: &mut LogSplit,
        max: usize,
        out: &mut SourceOutput<'_, LogRecord>,
    ) -> Result<SplitStatus, JobError> {
        self.batch().clear();
        match self.fetch(split, max)? {
            Fetched::Pending => return Ok(SplitStatus::Pending),
            Fetched::End => return Ok(SplitStatus::End),
            Fetched::Records(n) => split.offset += n as u64,
        }
        for record in self.batch().drain(..) {
            let ts = record.timestamp_ms;
            out.collect(record, ts);
        }
        Ok(SplitStatus::Read)
    }

    fn wakeup(&self) -> Option<Arc<Notify>> {
        match self {
            LogReader::Served {
                prefetch: Some(p), ..
            } => Some(p.wakeup()),
            _ => None,
        }
    }
}

impl LogRecord {
    /// The record's position in its log: its identity, which the harness traces outputs to.
    pub fn origin(&self) -> Origin {
        Origin {
            partition: self.partition,
            offset: self.offset,
        }
    }
}
