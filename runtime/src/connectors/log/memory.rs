//! [`MemoryLog`]: explicit records held in memory, shared between clones (tests, simulation).

use std::sync::Arc;

use bytes::Bytes;

use super::{batch_len, check_partition, LogError, LogRecord, PartitionedLog};

/// Explicit records held in memory. Cheap to clone: clones share the records, so a test can keep
/// a handle to the very log a job reads.
#[derive(Debug, Clone)]
pub struct MemoryLog {
    partitions: Arc<[Arc<[LogRecord]>]>,
}

impl MemoryLog {
    /// One inner vector of `(key, timestamp_ms, payload)` per partition; offsets are indices.
    pub fn new(partitions: Vec<Vec<(u64, u64, Bytes)>>) -> Self {
        let partitions = partitions
            .into_iter()
            .enumerate()
            .map(|(p, records)| {
                records
                    .into_iter()
                    .enumerate()
                    .map(|(o, (key, timestamp_ms, payload))| LogRecord {
                        partition: p as u32,
                        offset: o as u64,
                        key,
                        timestamp_ms,
                        payload,
                    })
                    .collect()
            })
            .collect();
        Self { partitions }
    }

    /// Distributes `(partition, key, timestamp_ms, payload)` records over `partitions` partitions,
    /// keeping their order within each partition. A record naming a partition out of range is an
    /// error rather than silently dropped.
    pub fn from_records(
        partitions: u32,
        records: impl IntoIterator<Item = (u32, u64, u64, Bytes)>,
    ) -> Result<Self, LogError> {
        let mut parts: Vec<Vec<(u64, u64, Bytes)>> = vec![Vec::new(); partitions as usize];
        for (p, key, ts, payload) in records {
            check_partition(p, partitions)?;
            parts[p as usize].push((key, ts, payload));
        }
        Ok(Self::new(parts))
    }

    /// Copies every record of a bounded log into memory (e.g. to compare a run's input with its
    /// output). Fails with InvalidSpec on an unbounded partition.
    pub fn snapshot(log: &dyn PartitionedLog) -> Result<Self, LogError> {
        let mut parts = Vec::with_capacity(log.partitions() as usize);
        for p in 0..log.partitions() {
            let len = log.len(p)?.ok_or_else(|| {
                LogError::InvalidSpec(format!("cannot snapshot unbounded partition {p}"))
            })?;
            let mut records = Vec::new();
            while (records.len() as u64) < len {
                if log.read(p, records.len() as u64, 4096, &mut records)? == 0 {
                    break;
                }
            }
            parts.push(
                records
                    .into_iter()
                    .map(|r| (r.key, r.timestamp_ms, r.payload))
                    .collect(),
            );
        }
        Ok(Self::new(parts))
    }
}

impl PartitionedLog for MemoryLog {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn len(&self, partition: u32) -> Result<Option<u64>, LogError> {
        check_partition(partition, self.partitions())?;
        Ok(Some(self.partitions[partition as usize].len() as u64))
    }

    fn read(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
        out: &mut Vec<LogRecord>,
    ) -> Result<usize, LogError> {
        check_partition(partition, self.partitions())?;
        let records = &self.partitions[partition as usize];
        let count = batch_len(records.len() as u64, offset, max) as usize;
        if count > 0 {
            let start = offset as usize;
            out.extend_from_slice(&records[start..start + count]);
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::log::tests::{read_all, sample};
    use crate::connectors::log::{GeneratedLog, KeySkew};

    #[test]
    fn memory_log_read_windows() {
        let rec = |k: u64| (k, k * 2, Bytes::from(vec![k as u8]));
        let log = MemoryLog::new(vec![(0..10).map(rec).collect(), vec![rec(99)]]);
        let mut out = Vec::new();
        assert_eq!(log.read(0, 3, 4, &mut out).unwrap(), 4);
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
        assert_eq!(
            out[0],
            LogRecord {
                partition: 0,
                offset: 3,
                key: 3,
                timestamp_ms: 6,
                payload: Bytes::from(vec![3])
            }
        );
        assert_eq!(log.read(0, 8, 4, &mut out).unwrap(), 2);
        assert_eq!(log.read(0, 10, 4, &mut out).unwrap(), 0);
        assert_eq!(log.read(1, 0, 4, &mut out).unwrap(), 1);
        assert_eq!(out.last().unwrap().key, 99);
        assert_eq!(log.len(1).unwrap(), Some(1));
        assert!(log.read(2, 0, 1, &mut out).is_err());
        let clone = log.clone();
        assert_eq!(read_all(&clone, 0, 3), read_all(&log, 0, 100));
    }

    #[test]
    fn memory_log_from_records_and_snapshot() {
        let recs = (0..6u64).map(|i| ((i % 2) as u32, i, i, Bytes::new()));
        let log = MemoryLog::from_records(2, recs).unwrap();
        let keys: Vec<u64> = read_all(&log, 1, 10).iter().map(|r| r.key).collect();
        assert_eq!(keys, [1, 3, 5]);
        assert!(MemoryLog::from_records(1, [(1, 0, 0, Bytes::new())]).is_err());
        let g = sample(9, KeySkew::Uniform);
        let snap = MemoryLog::snapshot(&g).unwrap();
        assert_eq!(read_all(&snap, 2, 10), read_all(&g, 2, 100));
        assert!(MemoryLog::snapshot(&GeneratedLog::new(1, 1, None)).is_err());
    }
}
