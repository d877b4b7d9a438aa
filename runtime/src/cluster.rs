//! LocalCluster: a JobManager and N TaskManagers in one process, talking over loopback TCP
//! exactly as separate processes would.

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::JobSpec;
use crate::config::keys::ALLOWED_DIRS;
use crate::config::Configuration;
use crate::connectors::CollectStore;
use crate::jobmanager::client::{submit_job, Accepted, SubmitError};
use crate::jobmanager::{run_jobmanager_with, JobManagerServices};
use crate::jobs::JobRegistry;
use crate::rpc::{JobStatusReport, RpcError};
use crate::taskmanager::{MemoryAccount, TaskManager, TaskManagerOptions};

/// A JobManager and TaskManagers in this process, over loopback TCP (`rill local`, the
/// integration tests).
pub struct LocalCluster {
    /// The JobManager's address.
    pub jobmanager: String,
    /// The cluster configuration every process runs with.
    pub config: Configuration,
    /// Shared by every TaskManager: what `sink=collect` jobs wrote.
    pub collect: CollectStore,
    /// The TaskManagers, in start order (`tm-1`, `tm-2` ..).
    pub taskmanagers: Vec<LocalTaskManager>,
    jm: JoinHandle<()>,
}

/// One TaskManager of a [`LocalCluster`].
pub struct LocalTaskManager {
    /// Its name.
    pub name: String,
    /// Its memory account, to watch.
    pub memory: MemoryAccount,
    handle: JoinHandle<()>,
}

impl LocalCluster {
    /// Starts a JobManager on an ephemeral loopback port and `taskmanagers` TaskManagers,
    /// running the built-in jobs. Jobs may name any path (`security.files.allowed-dirs=*`)
    /// unless `config` says otherwise.
    pub async fn start(taskmanagers: u32, config: Configuration) -> Result<LocalCluster, RpcError> {
        Self::start_with_jobs(taskmanagers, config, crate::jobs::builtin()).await
    }

    /// [`LocalCluster::start`] for the jobs of `jobs` (a user's registry).
    pub async fn start_with_jobs(
        taskmanagers: u32,
        config: Configuration,
        jobs: JobRegistry,
    ) -> Result<LocalCluster, RpcError> {
        // Its jobs come from this process: unless told otherwise, they may name any path.
        let config = match config.get_raw(ALLOWED_DIRS) {
            Some(_) => config,
            None => config
                .with(ALLOWED_DIRS, "*")
                .expect("* is a valid allowed-dirs value"),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let jobmanager = listener.local_addr()?.to_string();
        let services = JobManagerServices::from_config(&config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let services = JobManagerServices {
            jobs: jobs.clone(),
            ..services
        };
        let jm = tokio::spawn(run_jobmanager_with(listener, config.clone(), services));
        let collect = CollectStore::new();
        let mut tms = Vec::new();
        for i in 1..=taskmanagers {
            let opts = TaskManagerOptions {
                name: format!("tm-{i}"),
                jobmanager: jobmanager.clone(),
                data_bind: "127.0.0.1:0".into(),
                config: config.clone(),
                collect: Some(collect.clone()),
                memory: MemoryAccount::default(),
                clock: Default::default(),
                events: Default::default(),
                jobs: jobs.clone(),
            };
            let tm = TaskManager::start(opts).await?;
            let memory = tm.memory();
            tms.push(LocalTaskManager {
                name: format!("tm-{i}"),
                memory,
                handle: tokio::spawn(tm.run()),
            });
        }
        Ok(LocalCluster {
            jobmanager,
            config,
            collect,
            taskmanagers: tms,
            jm,
        })
    }

    /// Runs a job to its end, reporting progress.
    pub async fn run_job(
        &self,
        spec: &JobSpec,
        on_accepted: impl FnMut(&Accepted),
        on_status: impl FnMut(&JobStatusReport),
    ) -> Result<JobStatusReport, SubmitError> {
        submit_job(&self.jobmanager, spec, &self.config, on_accepted, on_status).await
    }

    /// Stops TaskManager `index` (0-based) as a crash would: its tasks and connections vanish.
    pub fn kill_taskmanager(&self, index: usize) {
        if let Some(tm) = self.taskmanagers.get(index) {
            tm.handle.abort();
        }
    }

    /// Stops the JobManager and every TaskManager.
    pub fn shutdown(self) {
        for tm in &self.taskmanagers {
            tm.handle.abort();
        }
        self.jm.abort();
    }
}
