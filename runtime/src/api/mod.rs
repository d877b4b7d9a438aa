//! The user-facing job model: a typed DataStream builder, operator traits, and the job registry.

pub mod operator;
pub mod registry;
pub mod stream;
#[cfg(test)]
pub(crate) mod testing;
pub mod window;

pub use operator::{ChainEvent, Collector, OperatorContext, Origin, TaskWaits, Traceable};
pub use registry::{build_job, JobError, JobSpec};
pub use stream::{DataStream, KeyedStream, StreamEnv};
