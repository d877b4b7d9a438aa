//! [`FileLog`]: one file per partition on the local file system (the real-tokio binary only):
//! the frame format, writing, validating and indexing on open, and positioned batch reads.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use super::{batch_len, check_partition, LogError, LogRecord, PartitionedLog};

/// A directory with one file per partition, `partition-{n}.log`. Each record is a u32
/// little-endian frame length followed by the bincode encoding of `(key: u64, timestamp_ms: u64,
/// payload: Vec<u8>)`; a record's offset is its index in the file.
///
/// Uses blocking `std::fs`. That is deliberate and acceptable only because FileLog is for the
/// real-tokio binary, where a small positioned read is cheap; the simulator never uses it (it
/// reads [`GeneratedLog`](super::GeneratedLog) or [`MemoryLog`](super::MemoryLog)), so
/// determinism rule 4 is not at stake. `open` validates every record and builds an in-memory
/// index of record positions, so `read` seeks straight to its first record and reads the batch
/// in one call.
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

    /// The directory the log's partition files are in.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::log::tests::read_all;
    use crate::connectors::log::LogSpec;

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
}
