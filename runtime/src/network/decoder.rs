//! Decoding data buffers back into typed records and pushing them into a chain.

use bincode::Options;

use crate::chain::{ChainEvent, Out};

/// A chain head fed from the network, with its record type erased.
pub trait RecordDecoder: Send {
    /// Decodes every record in `buf` and pushes on all but the first `skip` (already
    /// delivered: a replayed prefix); returns how many it pushed.
    fn decode(&mut self, buf: &[u8], skip: u32) -> Result<u64, DecodeError>;
    /// Passes an event (watermark, barrier, end of input) down the chain.
    fn event(&mut self, event: ChainEvent);
}

/// A data buffer that does not decode as records of the chain's input type.
#[derive(Debug, thiserror::Error)]
#[error("malformed data buffer after {records} records: {reason}")]
pub struct DecodeError {
    /// Records decoded before the bad one.
    pub records: u64,
    /// The decoder's error.
    pub reason: String,
}

pub(crate) struct TypedDecoder<T> {
    down: Out<T>,
}

impl<T> TypedDecoder<T> {
    pub fn new(down: Out<T>) -> Self {
        TypedDecoder { down }
    }
}

impl<T: serde::de::DeserializeOwned + Send> RecordDecoder for TypedDecoder<T> {
    fn decode(&mut self, mut buf: &[u8], skip: u32) -> Result<u64, DecodeError> {
        let mut records = 0;
        let mut pushed = 0;
        while !buf.is_empty() {
            // The same encoding the writer uses (bincode's fixed-int format), with the bytes
            // left in the buffer as a size limit: a corrupt length prefix fails here instead
            // of allocating whatever it claims.
            let options = bincode::DefaultOptions::new()
                .with_fixint_encoding()
                .allow_trailing_bytes()
                .with_limit(buf.len() as u64);
            let item: T = options
                .deserialize_from(&mut buf)
                .map_err(|e| DecodeError {
                    records,
                    reason: e.to_string(),
                })?;
            if records >= skip as u64 {
                self.down.collect(item);
                pushed += 1;
            }
            records += 1;
        }
        Ok(pushed)
    }

    fn event(&mut self, event: ChainEvent) {
        self.down.event(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Collector;

    struct Sink(Vec<(String, u64)>);
    impl Collector<(String, u64)> for Sink {
        fn collect(&mut self, item: (String, u64)) {
            self.0.push(item)
        }
        fn event(&mut self, _: ChainEvent) {}
    }

    fn decoder() -> TypedDecoder<(String, u64)> {
        TypedDecoder::new(Box::new(Sink(Vec::new())))
    }

    #[test]
    fn decodes_what_the_writer_encodes() {
        let mut buf = Vec::new();
        for i in 0..3u64 {
            bincode::serialize_into(&mut buf, &(format!("w{i}"), i)).unwrap();
        }
        assert_eq!(decoder().decode(&buf, 0).unwrap(), 3);
        assert_eq!(decoder().decode(&buf, 2).unwrap(), 1);
    }

    #[test]
    fn a_hostile_length_prefix_is_an_error_not_an_allocation() {
        // A String claiming 2^60 bytes, then nothing.
        let mut buf = (1u64 << 60).to_le_bytes().to_vec();
        buf.extend_from_slice(b"abc");
        let err = decoder().decode(&buf, 0).unwrap_err();
        assert_eq!(err.records, 0);
    }

    #[test]
    fn a_truncated_record_is_an_error_after_the_good_ones() {
        let mut buf = Vec::new();
        bincode::serialize_into(&mut buf, &("ok".to_string(), 1u64)).unwrap();
        bincode::serialize_into(&mut buf, &("cut".to_string(), 2u64)).unwrap();
        buf.truncate(buf.len() - 3);
        assert_eq!(decoder().decode(&buf, 0).unwrap_err().records, 1);
    }
}
