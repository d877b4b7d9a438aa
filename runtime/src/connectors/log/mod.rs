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

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One record of a partitioned log: its position is its identity (replay = read again from an
/// offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub partition: u32,
    pub offset: u64,
    pub key: u64,
    pub timestamp_ms: u64,
    pub payload: Bytes,
}

/// Why a log could not be opened or read. Every failure is an error value, never a panic: a
/// corrupt input file must not take a TaskManager down.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("no such partition {partition}: the log has {partitions} partition(s)")]
    NoSuchPartition { partition: u32, partitions: u32 },
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `offset` is the log offset (record index) at which the damage starts.
    #[error("corrupt log file {} at offset {offset}: {reason}", .path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("invalid log spec: {0}")]
    InvalidSpec(String),
}

/// A replayable partitioned log. Reads are synchronous and cheap; sources call them from async
/// code in small batches.
pub trait PartitionedLog: Send + Sync + std::fmt::Debug {
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
// GeneratedLog

/// Which keys a [`GeneratedLog`] assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySkew {
    /// key = global sequence number mod keys, where seq = offset * partitions + partition (the
    /// benchmark's shape: key = seq mod 1024).
    Sequential,
    /// key drawn uniformly from a per-record seeded hash.
    Uniform,
    /// A fraction (per mille) of records all carry key 0 (hot key); the rest draw uniformly from
    /// keys 1..keys, so key 0's share is exactly the hot fraction in expectation.
    HotKey { per_mille: u32 },
}

/// Generated data, deterministic from a seed: the record at (partition, offset) is a pure
/// function of (seed, partition, offset), so it is replayable without storing anything.
///
/// Randomness comes from a stateless mixer (splitmix64) rather than an RNG stream: there is no
/// state to checkpoint, and reading any offset costs the same as reading the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedLog {
    pub seed: u64,
    pub partitions: u32,
    /// None = unbounded partitions.
    pub records_per_partition: Option<u64>,
    /// Number of distinct keys (values 0..keys).
    pub keys: u64,
    pub key_skew: KeySkew,
    pub payload_bytes: u32,
    /// timestamp_ms = offset * timestamp_step_ms (event time advances with the offset).
    pub timestamp_step_ms: u64,
}

const KEY_SALT: u64 = 0x6b65_795f_7361_6c74; // "key_salt": separates the key draw from the payload

/// splitmix64's finaliser: a fast, well-distributed bijection on u64.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a uniform u64 onto 0..n by multiply-high (no division, negligible bias).
fn below(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

impl GeneratedLog {
    /// The benchmark's shape: 1024 sequential keys, 8-byte payloads, 1 ms per offset.
    pub fn new(seed: u64, partitions: u32, records_per_partition: Option<u64>) -> Self {
        Self {
            seed,
            partitions,
            records_per_partition,
            keys: 1024,
            key_skew: KeySkew::Sequential,
            payload_bytes: 8,
            timestamp_step_ms: 1,
        }
    }

    /// Rejects specs that cannot describe a log. `record_at` never panics even on an invalid
    /// spec (it clamps), but a job should fail at submission, not produce odd data.
    pub fn validate(&self) -> Result<(), LogError> {
        if self.partitions == 0 {
            return Err(LogError::InvalidSpec(
                "generated log needs at least 1 partition".into(),
            ));
        }
        if self.keys == 0 {
            return Err(LogError::InvalidSpec(
                "generated log needs at least 1 key".into(),
            ));
        }
        if let KeySkew::HotKey { per_mille } = self.key_skew {
            if per_mille > 1000 {
                return Err(LogError::InvalidSpec(format!(
                    "hot-key per_mille must be at most 1000, got {per_mille}"
                )));
            }
        }
        Ok(())
    }

    /// The record at `(partition, offset)`: a pure function of the spec and the position.
    pub fn record_at(&self, partition: u32, offset: u64) -> LogRecord {
        let h = self.hash_at(partition, offset);
        LogRecord {
            partition,
            offset,
            key: self.key_for(self.seq_at(partition, offset), h),
            timestamp_ms: offset.saturating_mul(self.timestamp_step_ms),
            payload: self.payload_for(h),
        }
    }

    /// The key of the record at `(partition, offset)`, as `record_at` gives it.
    pub fn key_at(&self, partition: u32, offset: u64) -> u64 {
        let h = self.hash_at(partition, offset);
        self.key_for(self.seq_at(partition, offset), h)
    }

    fn hash_at(&self, partition: u32, offset: u64) -> u64 {
        splitmix64(splitmix64(splitmix64(self.seed) ^ u64::from(partition)) ^ offset)
    }

    /// The record's position in the log's round-robin order over partitions.
    fn seq_at(&self, partition: u32, offset: u64) -> u64 {
        offset
            .wrapping_mul(u64::from(self.partitions))
            .wrapping_add(u64::from(partition))
    }

    fn key_for(&self, seq: u64, h: u64) -> u64 {
        let keys = self.keys.max(1);
        let draw = splitmix64(h ^ KEY_SALT);
        match self.key_skew {
            KeySkew::Sequential => seq % keys,
            KeySkew::Uniform => below(draw, keys),
            KeySkew::HotKey { per_mille } => {
                if keys == 1 || below(draw, 1000) < u64::from(per_mille) {
                    0
                } else {
                    1 + below(splitmix64(draw), keys - 1)
                }
            }
        }
    }

    /// `payload_bytes` bytes: the little-endian words h, splitmix64(h), ... truncated to length.
    /// One exact-capacity allocation per record (none for an empty payload).
    fn payload_for(&self, h: u64) -> Bytes {
        let n = self.payload_bytes as usize;
        if n == 0 {
            return Bytes::new();
        }
        let mut buf = Vec::with_capacity(n);
        let mut word = h;
        while buf.len() < n {
            let take = (n - buf.len()).min(8);
            buf.extend_from_slice(&word.to_le_bytes()[..take]);
            word = splitmix64(word);
        }
        Bytes::from(buf)
    }
}

impl PartitionedLog for GeneratedLog {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn len(&self, partition: u32) -> Result<Option<u64>, LogError> {
        check_partition(partition, self.partitions)?;
        Ok(self.records_per_partition)
    }

    fn read(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
        out: &mut Vec<LogRecord>,
    ) -> Result<usize, LogError> {
        let offsets = self.batch(partition, offset, max)?;
        let count = offsets.end - offsets.start;
        out.extend(offsets.map(|o| self.record_at(partition, o)));
        Ok(count as usize)
    }

    /// Keys without building payloads.
    fn read_keys(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Result<usize, LogError> {
        let offsets = self.batch(partition, offset, max)?;
        let count = offsets.end - offsets.start;
        out.extend(offsets.map(|o| self.key_at(partition, o)));
        Ok(count as usize)
    }
}

impl GeneratedLog {
    /// The offsets a read of up to `max` records from `offset` covers.
    fn batch(&self, partition: u32, offset: u64, max: usize) -> Result<Range<u64>, LogError> {
        check_partition(partition, self.partitions)?;
        // An unbounded partition is treated as u64::MAX long, so offsets never overflow.
        let len = self.records_per_partition.unwrap_or(u64::MAX);
        Ok(offset..offset + batch_len(len, offset, max))
    }
}

// ---------------------------------------------------------------------------------------------
// MemoryLog

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

// ---------------------------------------------------------------------------------------------
// FileLog

/// A directory with one file per partition, `partition-{n}.log`. Each record is a u32
/// little-endian frame length followed by the bincode encoding of `(key: u64, timestamp_ms: u64,
/// payload: Vec<u8>)`; a record's offset is its index in the file.
///
/// Uses blocking `std::fs`. That is deliberate and acceptable only because FileLog is for the
/// real-tokio binary, where a small positioned read is cheap; the simulator never uses it (it
/// reads [`GeneratedLog`] or [`MemoryLog`]), so determinism rule 4 is not at stake. `open`
/// validates every record and builds an in-memory index of record positions, so `read` seeks
/// straight to its first record and reads the batch in one call.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    partitions: Vec<PartitionFile>,
}

#[derive(Debug)]
struct PartitionFile {
    path: PathBuf,
    /// Byte position of each record's frame, plus one final entry: the end of the last record.
    bounds: Vec<u64>,
    /// Reads seek then read, so concurrent readers of one partition take turns.
    file: Mutex<File>,
}

/// Bytes of the frame length prefix.
const LEN_PREFIX: u64 = 4;

fn partition_file_name(partition: u32) -> String {
    format!("partition-{partition}.log")
}

/// The partition number of a file named exactly `partition-{n}.log` (canonical decimal, so
/// `partition-01.log` is not mistaken for partition 1).
fn parse_partition_file_name(name: &str) -> Option<u32> {
    let n: u32 = name
        .strip_prefix("partition-")?
        .strip_suffix(".log")?
        .parse()
        .ok()?;
    (partition_file_name(n) == name).then_some(n)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, offset: u64, reason: String) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

/// Decodes one frame body; the encoding must fill the frame exactly, so a damaged length or
/// payload is reported rather than misread.
fn decode_frame(body: &[u8], path: &Path, offset: u64) -> Result<(u64, u64, Bytes), LogError> {
    let record: (u64, u64, Bytes) = bincode::deserialize(body)
        .map_err(|e| corrupt(path, offset, format!("undecodable record: {e}")))?;
    let expected = 3 * 8 + record.2.len();
    if expected != body.len() {
        return Err(corrupt(
            path,
            offset,
            format!(
                "frame holds {} bytes but its record encodes to {expected}",
                body.len()
            ),
        ));
    }
    Ok(record)
}

impl FileLog {
    /// Writes `partitions` into `dir` (created if missing) and opens the result. Refuses a
    /// directory that already holds partition files beyond the ones written, since `open` would
    /// otherwise pick the stale ones up as part of this log.
    pub fn create(dir: &Path, partitions: &[Vec<(u64, u64, Vec<u8>)>]) -> Result<Self, LogError> {
        if partitions.is_empty() {
            return Err(LogError::InvalidSpec(
                "a file log needs at least 1 partition".into(),
            ));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        if let Some(stale) = Self::discover(dir)?.range(partitions.len() as u32..).next() {
            return Err(LogError::InvalidSpec(format!(
                "{} already holds {}, beyond the {} partition(s) being written",
                dir.display(),
                partition_file_name(*stale),
                partitions.len()
            )));
        }
        for (p, records) in partitions.iter().enumerate() {
            Self::write_partition(&dir.join(partition_file_name(p as u32)), records)?;
        }
        Self::open(dir)
    }

    fn write_partition(path: &Path, records: &[(u64, u64, Vec<u8>)]) -> Result<(), LogError> {
        let mut w = BufWriter::new(File::create(path).map_err(io_err(path))?);
        for (o, record) in records.iter().enumerate() {
            let body = bincode::serialize(record)
                .map_err(|e| LogError::InvalidSpec(format!("cannot encode record {o}: {e}")))?;
            let len = u32::try_from(body.len()).map_err(|_| {
                LogError::InvalidSpec(format!("record {o} is too large for a u32 frame length"))
            })?;
            w.write_all(&len.to_le_bytes()).map_err(io_err(path))?;
            w.write_all(&body).map_err(io_err(path))?;
        }
        w.into_inner()
            .map_err(|e| io_err(path)(e.into_error()))?
            .sync_all()
            .map_err(io_err(path))
    }

    /// Opens the log in `dir`: partitions must be numbered contiguously from 0. Reads and
    /// validates every record once to build the offset index.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let found = Self::discover(dir)?;
        let Some(&last) = found.last() else {
            return Err(LogError::InvalidSpec(format!(
                "{} holds no partition-{{n}}.log files",
                dir.display()
            )));
        };
        if let Some(missing) = (0..=last).find(|p| !found.contains(p)) {
            return Err(LogError::InvalidSpec(format!(
                "missing {} (found {}; partitions must be numbered 0..n without gaps)",
                dir.join(partition_file_name(missing)).display(),
                partition_file_name(last)
            )));
        }
        let partitions = (0..=last)
            .map(|p| PartitionFile::open(dir.join(partition_file_name(p))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            partitions,
        })
    }

    /// The partition numbers present in `dir`, sorted (directory order is OS-dependent).
    fn discover(dir: &Path) -> Result<BTreeSet<u32>, LogError> {
        let mut found = BTreeSet::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(parse_partition_file_name)
            {
                found.insert(p);
            }
        }
        Ok(found)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn partition(&self, partition: u32) -> Result<&PartitionFile, LogError> {
        check_partition(partition, self.partitions())?;
        Ok(&self.partitions[partition as usize])
    }
}

impl PartitionFile {
    fn open(path: PathBuf) -> Result<Self, LogError> {
        let file = File::open(&path).map_err(io_err(&path))?;
        let bounds = Self::index(&file, &path)?;
        Ok(Self {
            path,
            bounds,
            file: Mutex::new(file),
        })
    }

    /// Walks every frame, checking it lies inside the file and decodes, and records where each
    /// one starts.
    fn index(file: &File, path: &Path) -> Result<Vec<u64>, LogError> {
        let file_len = file.metadata().map_err(io_err(path))?.len();
        let mut reader = BufReader::new(file);
        let mut bounds = vec![0u64];
        let mut pos = 0u64;
        let mut body = Vec::new();
        while pos < file_len {
            let offset = bounds.len() as u64 - 1;
            if file_len - pos < LEN_PREFIX {
                let reason =
                    format!("truncated length prefix at byte {pos} (file is {file_len} bytes)");
                return Err(corrupt(path, offset, reason));
            }
            let mut prefix = [0u8; LEN_PREFIX as usize];
            reader.read_exact(&mut prefix).map_err(io_err(path))?;
            let len = u64::from(u32::from_le_bytes(prefix));
            if file_len - pos - LEN_PREFIX < len {
                let reason = format!(
                    "record of {len} bytes at byte {pos} runs past the end of the file ({file_len} bytes)"
                );
                return Err(corrupt(path, offset, reason));
            }
            body.resize(len as usize, 0);
            reader.read_exact(&mut body).map_err(io_err(path))?;
            decode_frame(&body, path, offset)?;
            pos += LEN_PREFIX + len;
            bounds.push(pos);
        }
        Ok(bounds)
    }

    fn records(&self) -> u64 {
        self.bounds.len() as u64 - 1
    }

    /// Reads the byte range of records `offset..offset + count` with one seek and one read.
    fn read_range(&self, offset: u64, count: u64) -> Result<Vec<u8>, LogError> {
        let start = self.bounds[offset as usize];
        let end = self.bounds[(offset + count) as usize];
        let mut buf = vec![0u8; (end - start) as usize];
        // A poisoned lock only means another reader panicked mid-read; the next read re-seeks.
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.seek(SeekFrom::Start(start))
            .map_err(io_err(&self.path))?;
        file.read_exact(&mut buf).map_err(io_err(&self.path))?;
        Ok(buf)
    }

    /// Decodes `buf` (frames starting at `offset`) into `out`. The file was validated on open,
    /// but it may have changed since, so damage is still reported, not trusted.
    fn decode_into(
        &self,
        partition: u32,
        offset: u64,
        buf: &[u8],
        out: &mut Vec<LogRecord>,
    ) -> Result<(), LogError> {
        let mut rest = buf;
        let mut o = offset;
        while !rest.is_empty() {
            let Some((prefix, tail)) = rest.split_first_chunk::<{ LEN_PREFIX as usize }>() else {
                return Err(corrupt(&self.path, o, "truncated length prefix".into()));
            };
            let len = u32::from_le_bytes(*prefix) as usize;
            if tail.len() < len {
                return Err(corrupt(
                    &self.path,
                    o,
                    "record runs past its indexed end".into(),
                ));
            }
            let (body, next) = tail.split_at(len);
            let (key, timestamp_ms, payload) = decode_frame(body, &self.path, o)?;
            out.push(LogRecord {
                partition,
                offset: o,
                key,
                timestamp_ms,
                payload,
            });
            rest = next;
            o += 1;
        }
        Ok(())
    }
}

impl PartitionedLog for FileLog {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn len(&self, partition: u32) -> Result<Option<u64>, LogError> {
        Ok(Some(self.partition(partition)?.records()))
    }

    fn read(
        &self,
        partition: u32,
        offset: u64,
        max: usize,
        out: &mut Vec<LogRecord>,
    ) -> Result<usize, LogError> {
        let file = self.partition(partition)?;
        let count = batch_len(file.records(), offset, max);
        if count == 0 {
            return Ok(0);
        }
        let buf = file.read_range(offset, count)?;
        let before = out.len();
        out.reserve(count as usize);
        if let Err(e) = file.decode_into(partition, offset, &buf, out) {
            out.truncate(before);
            return Err(e);
        }
        Ok(count as usize)
    }
}

// ---------------------------------------------------------------------------------------------
// LogSpec

/// Which log a job reads, as it appears in job parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogSpec {
    Generated(GeneratedLog),
    /// A [`FileLog`] directory (real-tokio runs only: it does blocking file I/O).
    File(PathBuf),
}

impl LogSpec {
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

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(log: &dyn PartitionedLog, partition: u32, batch: usize) -> Vec<LogRecord> {
        let mut out = Vec::new();
        while log
            .read(partition, out.len() as u64, batch, &mut out)
            .unwrap()
            > 0
        {}
        out
    }

    fn sample(seed: u64, skew: KeySkew) -> GeneratedLog {
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

    /// A unique scratch directory, removed on drop (also when the test panics).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("rill-log-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn file_partitions() -> Vec<Vec<(u64, u64, Vec<u8>)>> {
        (0..3u64)
            .map(|p| {
                (0..5u64)
                    .map(|o| (p * 10 + o, o * 7, vec![p as u8; o as usize]))
                    .collect()
            })
            .collect()
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
    fn generated_is_deterministic_per_seed() {
        for skew in [
            KeySkew::Sequential,
            KeySkew::Uniform,
            KeySkew::HotKey { per_mille: 100 },
        ] {
            let a = read_all(&sample(7, skew), 1, 100);
            assert_eq!(a, read_all(&sample(7, skew), 1, 100));
            assert_ne!(a, read_all(&sample(8, skew), 1, 100));
        }
        let uniform_keys = |seed| -> Vec<u64> {
            read_all(&sample(seed, KeySkew::Uniform), 0, 100)
                .iter()
                .map(|r| r.key)
                .collect()
        };
        assert_ne!(uniform_keys(1), uniform_keys(2));
    }

    #[test]
    fn generated_sequential_keys_and_timestamps() {
        let log = sample(3, KeySkew::Sequential);
        for p in 0..3 {
            for r in read_all(&log, p, 100) {
                assert_eq!(r.key, (r.offset * 3 + u64::from(p)) % 16);
                assert_eq!(r.timestamp_ms, r.offset * 5);
                assert_eq!((r.partition, r.payload.len()), (p, 13));
            }
        }
    }

    #[test]
    fn generated_bounded_partition_ends() {
        let log = sample(3, KeySkew::Uniform);
        let mut out = Vec::new();
        assert_eq!(log.read(2, 95, 10, &mut out).unwrap(), 5);
        assert_eq!(log.read(2, 100, 10, &mut out).unwrap(), 0);
        assert_eq!(log.read(2, 1_000, 10, &mut out).unwrap(), 0);
        assert_eq!(out.len(), 5);
        assert_eq!(log.len(2).unwrap(), Some(100));
        assert!(matches!(
            log.read(3, 0, 1, &mut out),
            Err(LogError::NoSuchPartition { .. })
        ));
        let unbounded = GeneratedLog::new(1, 2, None);
        assert_eq!(unbounded.len(0).unwrap(), None);
        assert_eq!(unbounded.read(0, u64::MAX - 2, 10, &mut out).unwrap(), 2);
    }

    #[test]
    fn generated_batch_size_does_not_matter() {
        let log = sample(11, KeySkew::HotKey { per_mille: 300 });
        let whole = read_all(&log, 1, 1000);
        assert_eq!(whole.len(), 100);
        for batch in [1, 3, 7, 64] {
            assert_eq!(read_all(&log, 1, batch), whole);
        }
        for r in &whole {
            assert_eq!(&log.record_at(1, r.offset), r);
        }
    }

    #[test]
    fn generated_eight_byte_payload_is_the_mixed_word() {
        let log = GeneratedLog::new(5, 4, Some(10));
        let r = log.record_at(2, 3);
        let word = u64::from_le_bytes(r.payload[..].try_into().unwrap());
        let long = GeneratedLog {
            payload_bytes: 20,
            ..log.clone()
        }
        .record_at(2, 3);
        assert_eq!(long.payload[..8], word.to_le_bytes());
        assert_eq!(r.key, 3 * 4 + 2); // seq 14 mod 1024
        assert_eq!(
            GeneratedLog {
                payload_bytes: 0,
                ..log
            }
            .record_at(2, 3)
            .payload
            .len(),
            0
        );
    }

    #[test]
    fn generated_hot_key_share() {
        let log = GeneratedLog {
            keys: 1000,
            key_skew: KeySkew::HotKey { per_mille: 500 },
            ..GeneratedLog::new(42, 1, Some(10_000))
        };
        let records = read_all(&log, 0, 1000);
        let hot = records.iter().filter(|r| r.key == 0).count();
        assert!((4_000..6_000).contains(&hot), "hot-key count {hot}");
        assert!(records.iter().all(|r| r.key < 1000));
    }

    #[test]
    fn generated_validate() {
        assert!(GeneratedLog::new(1, 1, None).validate().is_ok());
        assert!(GeneratedLog::new(1, 0, None).validate().is_err());
        let bad_keys = GeneratedLog {
            keys: 0,
            ..GeneratedLog::new(1, 1, None)
        };
        assert!(LogSpec::Generated(bad_keys).open().is_err());
        let hot = GeneratedLog {
            key_skew: KeySkew::HotKey { per_mille: 1001 },
            ..GeneratedLog::new(1, 1, None)
        };
        assert!(hot.validate().is_err());
    }

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

    #[test]
    fn file_log_round_trip() {
        let tmp = TempDir::new("file_log_round_trip");
        let data = file_partitions();
        let created = FileLog::create(&tmp.0, &data).unwrap();
        let log = LogSpec::File(tmp.0.clone()).open().unwrap();
        assert_eq!((created.partitions(), log.partitions()), (3, 3));
        for (p, records) in data.iter().enumerate() {
            let expected: Vec<LogRecord> = records
                .iter()
                .enumerate()
                .map(|(o, (key, ts, payload))| LogRecord {
                    partition: p as u32,
                    offset: o as u64,
                    key: *key,
                    timestamp_ms: *ts,
                    payload: Bytes::from(payload.clone()),
                })
                .collect();
            assert_eq!(log.len(p as u32).unwrap(), Some(5));
            assert_eq!(read_all(log.as_ref(), p as u32, 2), expected);
            let mut window = Vec::new();
            assert_eq!(log.read(p as u32, 3, 10, &mut window).unwrap(), 2);
            assert_eq!(window, expected[3..]);
        }
        assert!(matches!(
            log.read(3, 0, 1, &mut Vec::new()),
            Err(LogError::NoSuchPartition { .. })
        ));
    }

    #[test]
    fn file_log_truncated_is_corrupt() {
        let tmp = TempDir::new("file_log_truncated_is_corrupt");
        FileLog::create(&tmp.0, &file_partitions()).unwrap();
        let path = tmp.0.join("partition-2.log");
        let len = fs::metadata(&path).unwrap().len();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        match FileLog::open(&tmp.0) {
            Err(LogError::Corrupt {
                path: p, offset, ..
            }) => assert_eq!((p, offset), (path.clone(), 4)),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Cut inside the length prefix of record 1 (record 0 of partition 2 has a 24-byte body).
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4 + 24 + 2)
            .unwrap();
        let err = FileLog::open(&tmp.0).unwrap_err();
        assert!(matches!(err, LogError::Corrupt { offset: 1, .. }), "{err}");
        assert!(err.to_string().contains("partition-2.log"), "{err}");
    }

    #[test]
    fn file_log_garbage_frame_is_corrupt() {
        let tmp = TempDir::new("file_log_garbage_frame_is_corrupt");
        FileLog::create(&tmp.0, &file_partitions()[..1]).unwrap();
        let path = tmp.0.join("partition-0.log");
        let mut f = File::options().append(true).open(&path).unwrap();
        f.write_all(&5u32.to_le_bytes()).unwrap();
        f.write_all(&[1, 2, 3, 4, 5]).unwrap();
        drop(f);
        let err = FileLog::open(&tmp.0).unwrap_err();
        assert!(matches!(err, LogError::Corrupt { offset: 5, .. }), "{err}");
    }

    #[test]
    fn file_log_gap_is_invalid_spec() {
        let tmp = TempDir::new("file_log_gap_is_invalid_spec");
        FileLog::create(&tmp.0, &file_partitions()).unwrap();
        fs::remove_file(tmp.0.join("partition-1.log")).unwrap();
        match FileLog::open(&tmp.0) {
            Err(LogError::InvalidSpec(msg)) => assert!(msg.contains("partition-1.log"), "{msg}"),
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
        // Writing fewer partitions over a directory with more is refused, not silently merged.
        assert!(matches!(
            FileLog::create(&tmp.0, &file_partitions()[..1]),
            Err(LogError::InvalidSpec(_))
        ));
        let empty = TempDir::new("file_log_gap_is_invalid_spec_empty");
        assert!(matches!(
            FileLog::open(&empty.0),
            Err(LogError::InvalidSpec(_))
        ));
    }

    #[test]
    fn partition_file_names_are_canonical() {
        assert_eq!(parse_partition_file_name("partition-12.log"), Some(12));
        assert_eq!(parse_partition_file_name("partition-012.log"), None);
        assert_eq!(parse_partition_file_name("partition-+1.log"), None);
        assert_eq!(parse_partition_file_name("partition-1.log.tmp"), None);
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
