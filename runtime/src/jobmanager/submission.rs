//! Turning a client's `Submit` into a job the actor can schedule: the job's configuration
//! merged over the JobManager's, and its graph built.
//!
//! This runs in the client's connection task, not in the actor: building a job may read
//! files (`input=DIR` indexes every record of a log directory) and runs the job's own
//! builder code, and the actor's loop must never wait on either (heartbeats and checkpoints
//! would stall behind them). The build is a pure function of the spec and the configuration,
//! so doing it outside the actor changes no decision's order.

use std::sync::Arc;

use crate::api::JobSpec;
use crate::config::Configuration;
use crate::graph::JobGraph;
use crate::jobs::JobRegistry;

/// A job ready for the actor to accept.
pub(super) struct Submission {
    pub spec: JobSpec,
    /// The JobManager's configuration with the job's settings merged over it.
    pub config: Configuration,
    pub graph: Arc<JobGraph>,
}

impl Submission {
    /// Merges the job's settings (never `security.*`: `job_settings`) over `config` and
    /// builds the graph on a thread where blocking is allowed, with paths confined to the
    /// JobManager's `security.files.allowed-dirs`. The error is the reason the client is told.
    pub async fn prepare(
        config: &Configuration,
        jobs: &JobRegistry,
        spec: JobSpec,
        job_config: Configuration,
    ) -> Result<Submission, String> {
        let config = config
            .merged(&job_config.job_settings())
            .map_err(|e| e.to_string())?;
        let files = config.file_access();
        let (jobs, max_parallelism) = (jobs.clone(), config.max_parallelism());
        let name = spec.name.clone();
        // madsim marks spawn_blocking deprecated (it runs the closure as a task there); the
        // real runtime runs it on its blocking pool, which is the point.
        #[allow(deprecated)]
        let built = tokio::task::spawn_blocking(move || {
            let graph = jobs.build(&spec, max_parallelism, &files);
            (spec, graph)
        })
        .await;
        let (spec, graph) = built.map_err(|e| format!("building job {name} failed: {e}"))?;
        match graph {
            Ok(graph) => Ok(Submission {
                spec,
                config,
                graph: Arc::new(graph),
            }),
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "job rejected");
                Err(e.to_string())
            }
        }
    }
}
