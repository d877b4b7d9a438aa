//! The JobManager: accepts TaskManagers and clients, schedules jobs onto slots, deploys and
//! tracks tasks, coordinates checkpoints, and recovers jobs when tasks or TaskManagers fail.
//!
//! All state lives in one actor task fed by connection tasks through a channel, so every
//! decision happens in one deterministic order (the simulator replays it bit for bit). The
//! actor's work is split along Flink's concepts, one file each:
//!
//! | file                        | holds                                                        |
//! |-----------------------------|--------------------------------------------------------------|
//! | `mod.rs`                    | the actor: its state, its loop, message dispatch             |
//! | `connection.rs`             | accepting and authenticating peers, relaying their frames    |
//! | `submission.rs`             | a client's job made ready, its graph built off the actor     |
//! | `job.rs`                    | one job's state: placement, recovery, metrics                |
//! | `taskmanagers.rs`           | registered TaskManagers: registration, loss                  |
//! | `heartbeat.rs`              | heartbeats out, reports in, loss detection                   |
//! | `deployment.rs`             | scheduling, deploying tasks, partition updates               |
//! | `failover.rs`               | *what* restarts (pure planner, Flink's FailoverStrategy)     |
//! | `recovery.rs`               | carrying a failover or a rebalancing out, ending jobs        |
//! | `rebalance.rs`              | which groups to move (pure function of load)                 |
//! | `restart_backoff.rs`        | *whether and when* a job may restart (`restart-strategy`)    |
//! | `checkpoint_coordinator.rs` | one job's checkpoint state machine                           |
//! | `checkpoints.rs`            | triggering, acknowledging and persisting checkpoints         |
//! | `scheduler.rs`              | the slot pool and placement strategies                       |
//! | `status.rs`                 | the status reports clients receive                           |
//!
//! Every decision that changes what runs is also a [`ClusterEvent`], emitted through the
//! [`Events`] of [`JobManagerServices`].

pub mod balance;
pub mod checkpoint_coordinator;
mod checkpoints;
pub mod client;
mod connection;
mod deployment;
pub mod failover;
mod heartbeat;
mod job;
pub mod rebalance;
mod recovery;
pub mod restart_backoff;
pub mod scheduler;
mod status;
mod submission;
mod taskmanagers;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::config::Configuration;
use crate::connectors::write_grant::WriteKey;
use crate::events::{ClusterEvent, Events};
use crate::graph::{ExecutionGraph, JobId, TaskManagerId};
use crate::jobs::{builtin, JobRegistry};
use crate::network::ClaimKeys;
use crate::rpc::{JmToClient, TmToJm};
use crate::state::{CheckpointStore, MemoryCheckpointStore};
use crate::util::AbortOnDrop;
use checkpoint_coordinator::CheckpointCoordinator;
use connection::{accept_loop, ActorMessage, Inbox, Outbox};
use job::Job;
use scheduler::SlotPool;
use submission::Submission;
use taskmanagers::TmEntry;

/// What the JobManager uses beyond its configuration.
#[derive(Clone)]
pub struct JobManagerServices {
    /// Where completed checkpoints are written.
    pub checkpoint_store: Arc<dyn CheckpointStore>,
    /// Where cluster events go.
    pub events: Events,
    /// The jobs clients may submit, by name (the same registry as the TaskManagers').
    pub jobs: JobRegistry,
}

impl JobManagerServices {
    /// The services a configuration asks for: the store of `state.checkpoints.dir`, events
    /// to `tracing`, the built-in jobs (replace `jobs` to run others).
    pub fn from_config(config: &Configuration) -> Result<Self, String> {
        let storage: crate::state::CheckpointStorage = config.checkpoints_dir().parse()?;
        Ok(JobManagerServices {
            checkpoint_store: storage.open(config, config.checkpoint_timeout())?,
            events: Events::tracing(),
            jobs: builtin(),
        })
    }
}

impl Default for JobManagerServices {
    fn default() -> Self {
        JobManagerServices {
            checkpoint_store: Arc::new(MemoryCheckpointStore::default()),
            events: Events::tracing(),
            jobs: builtin(),
        }
    }
}

/// The actor's state. Its methods live in the files named in the module docs.
pub struct JobManager {
    config: Configuration,
    services: JobManagerServices,
    /// The actor's own inbox, for completions of work it spawned (checkpoint writes).
    inbox: Inbox,
    tms: BTreeMap<TaskManagerId, TmEntry>,
    jobs: BTreeMap<JobId, Job>,
    pool: SlotPool,
    next_tm: u64,
    next_job: u64,
    heartbeat_seq: u64,
    /// Makes each TaskManager's claim key, and so every consumer's grant (`network::claim`).
    claim_keys: ClaimKeys,
    /// Makes each sink attempt's write grant (`connectors::write_grant`), if this JobManager
    /// shares a key with the sink store.
    write_key: Option<WriteKey>,
}

/// Serves the JobManager on `listener` forever.
pub async fn run_jobmanager_with(
    listener: TcpListener,
    config: Configuration,
    services: JobManagerServices,
) {
    let (tx, mut rx) = connection::inbox();
    let _acceptor = AbortOnDrop(tokio::spawn(accept_loop(
        listener,
        config.clone(),
        services.jobs.clone(),
        tx.clone(),
    )));
    let mut jm = JobManager::new(config, services, tx);
    let mut heartbeat = tokio::time::interval(jm.config.heartbeat_interval());
    loop {
        let next_restart = jm.next_restart();
        let next_checkpoint = jm.next_checkpoint_wakeup();
        tokio::select! {
            biased;
            Some(msg) = rx.recv() => jm.handle(msg),
            _ = heartbeat.tick() => jm.heartbeat(),
            _ = sleep_until_some(next_restart) => jm.restart_due(),
            _ = sleep_until_some(next_checkpoint) => jm.checkpoint_tick(),
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The id of this JobManager process's first job; the next ones count up from it.
///
/// Real build: a random 32-bit incarnation in the high half (OS entropy). The sink store and
/// the checkpoint store outlive a JobManager and key their state, and write grants, by job id:
/// a restarted JobManager that numbered from 1 again would hand its first job the old job 1's
/// fenced attempts, staged transactions and checkpoints, and a grant issued before the restart
/// would admit writes to it. Under the simulator: 1, so a seed replays (determinism rule 2;
/// no simulated client resubmits after a JobManager crash).
fn first_job_id() -> u64 {
    #[cfg(not(madsim))]
    let incarnation = u64::from(rand::RngCore::next_u32(&mut rand::rngs::OsRng));
    #[cfg(madsim)]
    let incarnation = 0;
    (incarnation << 32) | 1
}

impl JobManager {
    fn new(config: Configuration, services: JobManagerServices, inbox: Inbox) -> Self {
        let claim_keys = ClaimKeys::generate(&config.cluster_secret());
        let write_key = WriteKey::from_config(&config);
        JobManager {
            config,
            services,
            inbox,
            tms: BTreeMap::new(),
            jobs: BTreeMap::new(),
            pool: SlotPool::default(),
            next_tm: 1,
            next_job: first_job_id(),
            heartbeat_seq: 0,
            claim_keys,
            write_key,
        }
    }

    fn events(&self) -> &Events {
        &self.services.events
    }

    fn handle(&mut self, msg: ActorMessage) {
        match msg {
            ActorMessage::TmRegistered {
                name,
                slots,
                data_addr,
                out,
                close,
                reply,
            } => self.register(name, slots, data_addr, out, close, reply),
            ActorMessage::TmMessage { tm, msg } if self.tms.contains_key(&tm) => {
                self.on_tm_message(tm, msg)
            }
            ActorMessage::TmMessage { tm, .. } => {
                tracing::debug!(%tm, "message from a dropped taskmanager ignored")
            }
            ActorMessage::TmDisconnected { tm, reason } => {
                let cause = crate::events::LossCause::ConnectionClosed(reason);
                self.lose_taskmanagers(vec![(tm, cause)])
            }
            ActorMessage::Submit { submission, out } => self.submit(submission, out),
            ActorMessage::CheckpointPersisted {
                job,
                checkpoint,
                result,
            } => self.checkpoint_persisted(job, checkpoint, result),
        }
    }

    /// A message from a registered TaskManager. State changes and acknowledgements count only
    /// from the TaskManager that runs the attempt: anything else is stale or forged.
    fn on_tm_message(&mut self, tm: TaskManagerId, msg: TmToJm) {
        match msg {
            TmToJm::HeartbeatReply { report, .. } => self.on_heartbeat_reply(tm, report),
            TmToJm::TaskStateChanged {
                job,
                attempt,
                state,
                records_in,
                error,
            } => {
                if self.runs_on(job, attempt, tm) {
                    self.on_task_state(job, attempt, state, records_in, error)
                } else {
                    tracing::debug!(%tm, %attempt, "state change from a taskmanager that does not run the attempt ignored");
                }
            }
            TmToJm::AcknowledgeCheckpoint {
                job,
                checkpoint,
                attempt,
                snapshot,
            } => {
                if self.runs_on(job, attempt, tm) {
                    self.acknowledge_checkpoint(job, checkpoint, attempt, snapshot);
                } else {
                    tracing::debug!(%tm, %attempt, %checkpoint, "acknowledgement of an attempt the taskmanager does not run ignored");
                }
            }
            TmToJm::Register { .. } => tracing::warn!(%tm, "duplicate registration ignored"),
        }
    }

    fn runs_on(
        &self,
        job: JobId,
        attempt: crate::graph::ExecutionAttemptId,
        tm: TaskManagerId,
    ) -> bool {
        self.jobs
            .get(&job)
            .is_some_and(|j| j.placement.of(&attempt) == Some(tm))
    }

    /// Accepts a job its client's connection prepared (`submission.rs`).
    fn submit(&mut self, submission: Submission, out: Outbox<JmToClient>) {
        let Submission {
            spec,
            config,
            graph,
        } = submission;
        let id = JobId(self.next_job);
        self.next_job += 1;
        // Jitter of exponential back-off is drawn from a seed (the job id): deterministic.
        let backoff = restart_backoff::from_config(&config, id.0);
        let checkpoints = CheckpointCoordinator::new(
            config.checkpoint_interval(),
            config.checkpoint_timeout(),
            config.checkpoints_retained(),
        );
        let vertices = graph
            .vertices
            .iter()
            .map(|v| format!("{} (x{})", v.name, v.parallelism))
            .collect();
        let _ = out.send(JmToClient::Accepted {
            job: id,
            vertices,
            subtasks: graph.subtask_count(),
        });
        self.events().emit(ClusterEvent::JobSubmitted {
            job: id,
            name: spec.name.clone(),
        });
        let eg = ExecutionGraph::new(graph);
        let job = Job::new(id, spec, config, eg, out, backoff, checkpoints);
        self.jobs.insert(id, job);
        self.schedule_waiting();
    }
}
