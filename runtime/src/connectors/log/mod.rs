//! The replayable partitioned log that sources read from.
//!
//! A record's position `(partition, offset)` is its identity: a source checkpoints the next offset
//! of each partition it owns, and recovery simply reads again from there. Three implementations:
//!
//! - [`GeneratedLog`]: synthetic data that is a pure function of `(seed, partition, offset)`, so
//!   it is replayable without storing anything (benchmarks, simulation).
//! - [`MemoryLog`]: explicit records held in memory (tests, simulation).
//! - [`FileLog`]: one file per partition on the local file system (the real-tokio binary only).
//!
//! All reads are synchronous: they are cheap (pure computation, memory copies, or one positioned
//! file read) and sources call them from async code in small batches.
//!
//! This module holds what they share (the [`PartitionedLog`] trait, [`LogRecord`], [`LogError`],
//! partition assignment) and [`LogSpec`], which names a log in job parameters; each
//! implementation lives in its own submodule.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod file;
mod generated;
mod memory;

pub use file::FileLog;
pub use generated::{GeneratedLog, KeySkew};
pub use memory::MemoryLog;

/// One record of a partitioned log: its position is its identity (replay = read again from an
/// offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The partition it is in.
    pub partition: u32,
    /// Its index within the partition, from 0.
    pub offset: u64,
    /// The record's key (what keyed jobs key by).
    pub key: u64,
    /// Its event time, in milliseconds.
    pub timestamp_ms: u64,
    /// The record's body; jobs that only count keys ignore it.
    pub payload: Bytes,
}

/// Why a log could not be opened or read. Every failure is an error value, never a panic: a
/// corrupt input file must not take a TaskManager down.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A read named a partition the log does not have.
    #[error("no such partition {partition}: the log has {partitions} partition(s)")]
    NoSuchPartition {
        /// The partition asked for.
        partition: u32,
        /// The log's partition count.
        partitions: u32,
    },
    /// Reading or writing a log file failed.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A log file is damaged.
    #[error("corrupt log file {} at offset {offset}: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The offset (record index) at which the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A log that cannot exist as described (no partitions, no keys, missing partition files).
    #[error("invalid log spec: {0}")]
    InvalidSpec(String),
}

/// A replayable partitioned log. Reads are synchronous and cheap; sources call them from async
/// code in small batches.
pub trait PartitionedLog: Send + Sync + std::fmt::Debug {
    /// How many partitions the log has, numbered from 0.
    fn partitions(&self) -> u32;
    /// Number of records in `partition` (None = unbounded).
    fn len(&self, partition: u32) -> Result<Option<u64>, LogError>;
    /// Append up to `max` records starting at `offset` to `out`; returns how many were appended
    /// (0 = end of a bounded partition). On error nothing is appended.
    fn read(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
        out: &mut Vec<LogRecord>,
    ) -> Result<usize, LogError>;

    /// Like `read`, for the keys alone (what a checker needs of a million-record input).
    fn read_keys(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Result<usize, LogError> {
        let mut records = Vec::with_capacity(max.min(4096));
        let n = self.read(partition, offset, max, &mut records)?;
        out.extend(records.iter().map(|r| r.key));
        Ok(n)
    }
}

/// Which partitions a source subtask reads: `p` where `p % parallelism == subtask`.
///
/// Round-robin, like Flink's Kafka source assignment: every partition has exactly one reader and
/// readers differ in load by at most one partition. The assignment depends only on the three
/// numbers, so a restarted subtask reads exactly the partitions its predecessor read.
/// `parallelism == 0` or `subtask >= parallelism` yields no partitions.
pub fn assign_partitions(partitions: u32, parallelism: u32, subtask: u32) -> Vec<u32> {
    if parallelism == 0 || subtask >= parallelism {
        return Vec::new();
    }
    (subtask..partitions)
        .step_by(parallelism as usize)
        .collect()
}

fn check_partition(partition: u32, partitions: u32) -> Result<(), LogError> {
    if partition < partitions {
        Ok(())
    } else {
        Err(LogError::NoSuchPartition {
            partition,
            partitions,
        })
    }
}

/// How many records a read of `max` from `offset` returns when the partition holds `len`.
fn batch_len(len: u64, offset: u64, max: usize) -> u64 {
    len.saturating_sub(offset).min(max as u64)
}

// ---------------------------------------------------------------------------------------------
// LogSpec

/// Which log a job reads, as it appears in job parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogSpec {
    /// A [`GeneratedLog`]: records computed from the seed, nothing stored.
    Generated(GeneratedLog),
    /// A [`FileLog`] directory (real-tokio runs only: it does blocking file I/O).
    File(PathBuf),
}

impl LogSpec {
    /// The log this spec names, checked (a generated spec validated, a directory opened).
    pub fn open(&self) -> Result<Arc<dyn PartitionedLog>, LogError> {
        match self {
            LogSpec::Generated(g) => {
                g.validate()?;
                Ok(Arc::new(g.clone()))
            }
            LogSpec::File(dir) => Ok(Arc::new(FileLog::open(dir)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn read_all(
        log: &dyn PartitionedLog,
        partition: u32,
        batch: usize,
    ) -> Vec<LogRecord> {
        let mut out = Vec::new();
        while log
            .read(partition, out.len() as u64, batch, &mut out)
            .unwrap()
            > 0
        {}
        out
    }

    pub(super) fn sample(seed: u64, skew: KeySkew) -> GeneratedLog {
        GeneratedLog {
            seed,
            partitions: 3,
            records_per_partition: Some(100),
            keys: 16,
            key_skew: skew,
            payload_bytes: 13,
            timestamp_step_ms: 5,
        }
    }

    #[test]
    fn read_keys_gives_the_keys_read_gives() {
        let generated = GeneratedLog {
            key_skew: KeySkew::HotKey { per_mille: 300 },
            ..GeneratedLog::new(7, 3, Some(500))
        };
        let memory = MemoryLog::new(vec![vec![(4, 0, Bytes::new()), (9, 1, Bytes::new())]]);
        for log in [&generated as &dyn PartitionedLog, &memory] {
            for partition in 0..log.partitions() {
                let (mut records, mut keys) = (Vec::new(), Vec::new());
                let n = log.read(partition, 1, 200, &mut records).unwrap();
                assert_eq!(log.read_keys(partition, 1, 200, &mut keys).unwrap(), n);
                assert_eq!(keys, records.iter().map(|r| r.key).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn assign_partitions_covers_each_partition_once() {
        for partitions in [0, 1, 5, 8, 13] {
            for parallelism in 1..=6 {
                let mut all: Vec<u32> = (0..parallelism)
                    .flat_map(|s| assign_partitions(partitions, parallelism, s))
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..partitions).collect::<Vec<_>>());
            }
        }
        assert_eq!(assign_partitions(8, 3, 1), [1, 4, 7]);
        assert!(assign_partitions(8, 0, 0).is_empty());
        assert!(assign_partitions(8, 3, 3).is_empty());
    }
}
