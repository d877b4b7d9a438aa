//! The user-facing job model: a typed DataStream builder, operator traits, and the job registry.

pub mod checkable;
pub mod file_access;
pub mod operator;
pub mod registry;
pub mod stream;
#[cfg(test)]
pub(crate) mod testing;
pub mod window;

pub use operator::{ChainEvent, Collector, OperatorContext, Origin, TaskWaits, Traceable};
// `JobError` lives in `crate::error` and the built-in jobs in `crate::jobs`; re-exported here
// so `rill::api::{build_job, JobError}` keep working.
pub use crate::error::JobError;
pub use crate::jobs::build_job;
pub use checkable::{CheckableOutput, OutputChecks};
pub use file_access::FileAccess;
pub use registry::JobSpec;
pub use stream::{DataStream, KeyedStream, StreamEnv};
