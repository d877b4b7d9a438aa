//! Helpers for unit tests that build small jobs by hand.

use std::sync::Arc;

use super::{DataStream, StreamEnv};
use crate::connectors::log::{GeneratedLog, LogRecord, PartitionedLog};
use crate::connectors::{ConnectorContext, Sink, SinkWriter};
use crate::connectors::{LogInput, LogSource};
use crate::error::JobError;
use crate::ids::CheckpointId;

/// A sink that drops everything.
pub struct Nop;

impl<T: Send + 'static> Sink<T> for Nop {
    type Committable = ();
    fn writer(&self, _: &dyn ConnectorContext) -> Result<Box<dyn SinkWriter<T, ()>>, JobError> {
        Ok(Box::new(Nop))
    }
}

impl<T: Send> SinkWriter<T, ()> for Nop {
    fn write(&mut self, _: T) -> Result<(), JobError> {
        Ok(())
    }
    fn prepare_commit(&mut self, _: CheckpointId) -> Result<Vec<()>, JobError> {
        Ok(Vec::new())
    }
    fn commit(&mut self, _: Vec<()>) -> Result<(), JobError> {
        Ok(())
    }
}

/// A source named "src" over a small generated log with `partitions` partitions.
pub fn log_source(env: &StreamEnv, partitions: u32) -> DataStream<LogRecord> {
    let log: Arc<dyn PartitionedLog> = Arc::new(GeneratedLog::new(1, partitions, Some(10)));
    let input = LogInput::Local(log);
    env.source("src", LogSource::new(input))
}
