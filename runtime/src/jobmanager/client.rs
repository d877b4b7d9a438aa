//! Submitting a job to a JobManager and following it to the end.

use std::time::Duration;

use crate::api::JobSpec;
use crate::config::Configuration;
use crate::ids::JobId;
use crate::rpc::{
    connect, credentials, ClientToJm, JmToClient, JobStatusReport, PeerRole, RpcError,
};

/// Why [`submit_job`] gave up on a job.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The JobManager could not be reached, or the connection failed.
    #[error("cannot reach the JobManager: {0}")]
    Rpc(#[from] RpcError),
    /// The JobManager refused the job (unknown job, bad parameters, an invalid graph).
    #[error("job rejected: {0}")]
    Rejected(String),
    /// The connection ended before a final status arrived.
    #[error("the JobManager closed the connection before the job ended")]
    Disconnected,
}

/// What the client learns when the job is accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The id the JobManager gave the job.
    pub job: JobId,
    /// Every vertex of the job graph, as `name (xparallelism)`.
    pub vertices: Vec<String>,
    /// Subtasks over all vertices.
    pub subtasks: u32,
}

/// Submits `spec` and reports every status update to `on_status` until the job ends;
/// returns the final status.
pub async fn submit_job(
    jobmanager: &str,
    spec: &JobSpec,
    config: &Configuration,
    mut on_accepted: impl FnMut(&Accepted),
    mut on_status: impl FnMut(&JobStatusReport),
) -> Result<JobStatusReport, SubmitError> {
    let (mut reader, mut writer) = connect(
        jobmanager,
        "jobmanager",
        &credentials(config),
        (PeerRole::Client, "client"),
        config.max_frame_size(),
        Duration::from_secs(10),
    )
    .await?;
    writer
        .send(&ClientToJm::Submit {
            spec: spec.clone(),
            config: config.job_settings(),
        })
        .await?;
    loop {
        match reader.recv::<JmToClient>().await? {
            Some(JmToClient::Accepted {
                job,
                vertices,
                subtasks,
            }) => on_accepted(&Accepted {
                job,
                vertices,
                subtasks,
            }),
            Some(JmToClient::Rejected { reason }) => return Err(SubmitError::Rejected(reason)),
            Some(JmToClient::Status(report)) => {
                on_status(&report);
                if report.status.is_terminal() {
                    return Ok(report);
                }
            }
            None => return Err(SubmitError::Disconnected),
        }
    }
}
