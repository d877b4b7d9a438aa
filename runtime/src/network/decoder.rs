//! Decoding data buffers back into typed records and pushing them into a chain.

use crate::api::operator::{ChainEvent, Out};

/// A chain head fed from the network, with its record type erased.
pub trait RecordDecoder: Send {
    /// Decodes every record in `buf` and pushes it on; returns how many records there were.
    fn decode(&mut self, buf: &[u8]) -> Result<u64, DecodeError>;
    fn event(&mut self, event: ChainEvent);
}

#[derive(Debug, thiserror::Error)]
#[error("malformed data buffer after {records} records: {reason}")]
pub struct DecodeError {
    pub records: u64,
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
    fn decode(&mut self, mut buf: &[u8]) -> Result<u64, DecodeError> {
        let mut records = 0;
        while !buf.is_empty() {
            // bincode's legacy config is self-delimiting; a garbage buffer fails here, never panics.
            let item: T = bincode::deserialize_from(&mut buf).map_err(|e| DecodeError {
                records,
                reason: e.to_string(),
            })?;
            self.down.collect(item);
            records += 1;
        }
        Ok(records)
    }

    fn event(&mut self, event: ChainEvent) {
        self.down.event(event)
    }
}
