//! Helpers for unit tests that build small jobs by hand.

use std::sync::Arc;

use super::operator::{ChainEvent, Collector};
use super::{DataStream, StreamEnv};
use crate::connectors::log::{GeneratedLog, LogRecord, PartitionedLog};
use crate::connectors::{LogInput, LogSource};

/// A sink that drops everything.
pub struct Nop;

impl<T> Collector<T> for Nop {
    fn collect(&mut self, _: T) {}
    fn event(&mut self, _: ChainEvent) {}
}

/// A source named "src" over a small generated log with `partitions` partitions.
pub fn log_source(env: &StreamEnv, partitions: u32) -> DataStream<LogRecord> {
    let log: Arc<dyn PartitionedLog> = Arc::new(GeneratedLog::new(1, partitions, Some(10)));
    let input = LogInput::Local(log);
    env.source("src", move |ctx| {
        Ok(Box::new(LogSource::open(&input, ctx, None)?) as _)
    })
}
