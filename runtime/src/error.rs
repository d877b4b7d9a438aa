//! The crate-wide job error, [`JobError`]: what building, validating, compiling or running a
//! job's graph can fail with: unknown jobs and parameters, invalid graphs, and the failures of
//! sources, sinks and state restore that tasks report. It depends on nothing else in the crate,
//! so every layer (`graph`, `api`, `connectors`, `jobs`, `taskmanager`) can return it; `api`
//! re-exports it as `rill::api::JobError`.

/// Why a job could not be built, validated or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The registry has no job of that name.
    #[error("unknown job '{name}'; known jobs: {known}")]
    UnknownJob {
        /// The name asked for.
        name: String,
        /// The registry's job names, comma-separated.
        known: String,
    },
    /// Two jobs of one registry share a name.
    #[error("a job named '{name}' is registered already")]
    DuplicateJob {
        /// The name registered twice.
        name: String,
    },
    /// A job was given a parameter its builder does not read.
    #[error("unknown parameter '{param}' for job '{job}'; accepted: {accepted}")]
    UnknownParam {
        /// The job's name.
        job: String,
        /// The parameter.
        param: String,
        /// The parameters the job reads, comma-separated.
        accepted: String,
    },
    /// A parameter's value does not parse or is out of range.
    #[error("invalid parameter '{param}': {reason}")]
    InvalidParam {
        /// The parameter.
        param: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// An operator was given parallelism 0.
    #[error("operator '{operator}' has parallelism 0; parallelism must be at least 1")]
    ZeroParallelism {
        /// The operator's name.
        operator: String,
    },
    /// An operator is more parallel than `pipeline.max-parallelism` allows.
    #[error(
        "operator '{operator}' has parallelism {parallelism}, above the maximum parallelism {max}"
    )]
    ParallelismAboveMax {
        /// The operator's name.
        operator: String,
        /// Its parallelism.
        parallelism: u32,
        /// `pipeline.max-parallelism`.
        max: u32,
    },
    /// A forward edge joins operators of different parallelism: it cannot be pointwise.
    #[error(
        "forward edge between unequal parallelisms: {from} -> {to}; use rebalance() or key_by()"
    )]
    ForwardParallelismMismatch {
        /// The upstream operator, with its parallelism.
        from: String,
        /// The downstream operator, with its parallelism.
        to: String,
    },
    /// The operators' inputs form a cycle.
    #[error("the job graph has a cycle through: {}", operators.join(", "))]
    Cycle {
        /// The operators on the cycle (or downstream of it).
        operators: Vec<String>,
    },
    /// Any other reason the graph cannot run (no source, no sink, an unconsumed output ..).
    #[error("invalid job graph: {0}")]
    InvalidGraph(String),
    /// A source failed to read; the task fails and the job fails over.
    #[error("source failed: {0}")]
    Source(String),
    /// A sink failed to write or commit; the task fails and the job fails over.
    #[error("sink failed: {0}")]
    Sink(String),
    /// A task's checkpointed state could not be restored.
    #[error("cannot restore state: {0}")]
    State(String),
    /// A broken invariant inside the runtime: a bug, not the job's fault.
    #[error("internal error: {0}")]
    Internal(String),
}
