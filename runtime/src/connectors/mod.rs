//! Connectors: the replayable partitioned log that sources read, and the sinks.

pub mod log;
pub mod log_service;
pub mod sink;
pub mod source;

pub use sink::{BatchEntry, CollectStore, CollectedBatch, CollectedRecord, SinkSpec};
pub use source::{LogInput, LogSource, SourceDriver, SourceReader, SourceStatus};
