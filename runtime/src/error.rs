//! The crate-wide job error, [`JobError`]: what building, validating, compiling or running a
//! job's graph can fail with: unknown jobs and parameters, invalid graphs, and the failures of
//! sources, sinks and state restore that tasks report. It depends on nothing else in the crate,
//! so every layer (`graph`, `api`, `connectors`, `jobs`, `taskmanager`) can return it; `api`
//! re-exports it as `rill::api::JobError`.

/// Why a job could not be built, validated or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("unknown job '{name}'; known jobs: {known}")]
    UnknownJob { name: String, known: String },
    #[error("a job named '{name}' is registered already")]
    DuplicateJob { name: String },
    #[error("unknown parameter '{param}' for job '{job}'; accepted: {accepted}")]
    UnknownParam {
        job: String,
        param: String,
        accepted: String,
    },
    #[error("invalid parameter '{param}': {reason}")]
    InvalidParam { param: String, reason: String },
    #[error("operator '{operator}' has parallelism 0; parallelism must be at least 1")]
    ZeroParallelism { operator: String },
    #[error(
        "operator '{operator}' has parallelism {parallelism}, above the maximum parallelism {max}"
    )]
    ParallelismAboveMax {
        operator: String,
        parallelism: u32,
        max: u32,
    },
    #[error(
        "forward edge between unequal parallelisms: {from} -> {to}; use rebalance() or key_by()"
    )]
    ForwardParallelismMismatch { from: String, to: String },
    #[error("the job graph has a cycle through: {}", operators.join(", "))]
    Cycle { operators: Vec<String> },
    #[error("invalid job graph: {0}")]
    InvalidGraph(String),
    #[error("source failed: {0}")]
    Source(String),
    #[error("sink failed: {0}")]
    Sink(String),
    #[error("cannot restore state: {0}")]
    State(String),
    #[error("internal error: {0}")]
    Internal(String),
}
