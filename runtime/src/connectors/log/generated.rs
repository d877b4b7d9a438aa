//! [`GeneratedLog`]: synthetic records that are a pure function of `(seed, partition, offset)`, so
//! the log is replayable without storing anything (benchmarks, simulation).

use std::ops::Range;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{batch_len, check_partition, LogError, LogRecord, PartitionedLog};

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
    HotKey {
        /// Records per thousand that carry key 0, at most 1000.
        per_mille: u32,
    },
}

/// Generated data, deterministic from a seed: the record at (partition, offset) is a pure
/// function of (seed, partition, offset), so it is replayable without storing anything.
///
/// Randomness comes from a stateless mixer (splitmix64) rather than an RNG stream: there is no
/// state to checkpoint, and reading any offset costs the same as reading the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedLog {
    /// What every record is derived from, with its position.
    pub seed: u64,
    /// How many partitions the log has.
    pub partitions: u32,
    /// None = unbounded partitions.
    pub records_per_partition: Option<u64>,
    /// Number of distinct keys (values 0..keys).
    pub keys: u64,
    /// Which keys records carry.
    pub key_skew: KeySkew,
    /// Bytes of pseudo-random payload per record.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::log::tests::{read_all, sample};
    use crate::connectors::log::LogSpec;

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
}
