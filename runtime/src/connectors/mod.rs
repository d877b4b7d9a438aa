//! Connectors: the replayable partitioned log that sources read, and the sinks.

pub mod context;
pub mod log;
pub mod log_service;
pub mod sink;
pub mod sink_batcher;
pub mod sink_journal;
pub mod sink_service;
pub mod sink_store;
pub mod source;
pub mod write_grant;

pub use context::ConnectorContext;
pub use sink::{Sink, SinkSpec, SinkWriter, StandardSink};
pub use sink_store::{
    BatchEntry, CollectStore, CollectedBatch, CollectedBatches, CollectedRecord, Commit, Fenced,
};
pub use source::{
    LogInput, LogSource, LogSplit, Source, SourceOutput, SourceSplit, SplitReader, SplitStatus,
};
