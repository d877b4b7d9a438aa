//! Connectors: the replayable partitioned log that sources read, and the sinks.

pub mod log;
pub mod sink;
pub mod source;

pub use sink::{BatchEntry, CollectStore, CollectedBatch, CollectedRecord, SinkSpec};
pub use source::{LogSource, SourceDriver, SourceReader, SourceStatus};
