//! The TaskManager: registers its slots with the JobManager, answers heartbeats, runs the
//! tasks it is given and serves their result partitions to remote consumers.

mod checkpoints;
mod consumer_task;
pub mod memory_limit;
mod source_task;
mod task;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

// Moved to the crate's top level (below `network`, `state` and `api`, which use them);
// re-exported so `rill::taskmanager::{MemoryAccount, ProcessingClock, ..}` keep working.
pub use crate::clock::ProcessingClock;
pub use crate::memory::{BufferGuard, MemoryAccount, MemoryReport, MemoryWatermark};
// A control-plane message's payload, in `crate::messages`; re-exported so
// `rill::taskmanager::InputLocation` keeps working.
pub use crate::messages::InputLocation;
pub use task::{run_task, TaskControl, TaskDeployment, TaskError, TaskLink, TaskMetrics};

use crate::api::operator::OperatorServices;
use crate::config::Configuration;
use crate::connectors::log_service::log_clients;
use crate::connectors::sink_batcher::sink_clients;
use crate::connectors::CollectStore;
use crate::events::{ClusterEvent, Events, JobManagerLossCause};
use crate::graph::{ExecutionAttemptId, ExecutionState, JobGraph};
use crate::ids::{CheckpointId, JobId};
use crate::jobs::JobRegistry;
use crate::messages::{JmToTm, TaskReport, TmReport, TmToJm};
use crate::network::transport::DataPlaneConfig;
use crate::network::{ClaimCheck, DataClient, DataServer, PartitionRegistry};
use crate::rpc::secure::{Reader, Writer};
use crate::rpc::{connect, credentials, PeerRole, RpcError};
use crate::state::TaskSnapshot;
use crate::util::AbortOnDrop;

/// The TaskManager-wide services every task can use; its operators see only `operators`.
#[derive(Clone)]
pub struct TaskServices {
    /// What operators see (`OperatorContext::services`): the TaskManager's name, memory
    /// account and clock, and the connectors' clients.
    pub operators: OperatorServices,
    /// This TaskManager's subpartition queues, until their consumers claim them.
    pub registry: PartitionRegistry,
    /// Opens remote input channels to other TaskManagers' data servers.
    pub client: DataClient,
    /// Where this TaskManager's cluster events go.
    pub events: Events,
}

/// How to start a TaskManager.
#[derive(Clone)]
pub struct TaskManagerOptions {
    /// The TaskManager's name: stable across restarts, the key the JobManager knows it by.
    pub name: String,
    /// The JobManager's control address (`host:port`).
    pub jobmanager: String,
    /// Address the data server listens on (port 0 picks one).
    pub data_bind: String,
    /// The cluster configuration (slots, memory, network buffers, credentials ..).
    pub config: Configuration,
    /// Where collecting sinks write in process; only in-process deployments have one.
    pub collect: Option<CollectStore>,
    /// The account this TaskManager's memory is charged to; whoever holds a clone can watch it
    /// (metrics, the simulator's OOM model).
    pub memory: MemoryAccount,
    /// The wall clock its tasks read for processing time; whoever holds a clone can set its
    /// offset.
    pub clock: ProcessingClock,
    /// Where cluster events go (production: `Events::tracing()`).
    pub events: Events,
    /// The jobs it can run, by name: the same registry as the JobManager's.
    pub jobs: JobRegistry,
}

struct RunningTask {
    _handle: AbortOnDrop<()>,
    metrics: Arc<TaskMetrics>,
    control: mpsc::UnboundedSender<TaskControl>,
}

/// A registered session with the JobManager; ends when the JobManager is lost.
struct Session {
    reader: Reader,
    writer: Writer,
}

#[derive(Debug)]
enum TaskEvent {
    Running(JobId, ExecutionAttemptId),
    Ended(JobId, ExecutionAttemptId, Result<(), String>),
    Checkpointed(JobId, ExecutionAttemptId, CheckpointId, TaskSnapshot),
}

/// A TaskManager process: its data server, its tasks, and its session with the JobManager.
pub struct TaskManager {
    opts: TaskManagerOptions,
    services: TaskServices,
    data_addr: String,
    tasks: BTreeMap<(JobId, ExecutionAttemptId), RunningTask>,
    graphs: BTreeMap<JobId, Arc<JobGraph>>,
    events_tx: mpsc::UnboundedSender<TaskEvent>,
    events_rx: mpsc::UnboundedReceiver<TaskEvent>,
    watermark: MemoryWatermark,
    /// Attempts that ended on their own in this session, when their end was reported (the
    /// latest heartbeat timeout's worth): the JobManager may not have heard of them when this
    /// TaskManager gives up on it, so `JobManagerLost` names them.
    recent_ends: std::collections::VecDeque<(Instant, ExecutionAttemptId)>,
    /// Its data server's claim key, set at each registration.
    claims: ClaimCheck,
    _data_server: AbortOnDrop<()>,
}

impl TaskManager {
    /// Binds the data server; `run` then registers with the JobManager and serves forever.
    pub async fn start(opts: TaskManagerOptions) -> Result<TaskManager, RpcError> {
        let listener = TcpListener::bind(opts.data_bind.as_str()).await?;
        let data_addr = listener.local_addr()?.to_string();
        let memory = opts.memory.clone();
        let registry = PartitionRegistry::default();
        let data_config = DataPlaneConfig {
            credentials: Arc::new(credentials(&opts.config)),
            max_frame: opts.config.max_frame_size(),
            request_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            claims: ClaimCheck::default(),
        };
        let claims = data_config.claims.clone();
        let server = DataServer::spawn(
            listener,
            registry.clone(),
            data_config.clone(),
            opts.name.clone(),
        );
        let services = TaskServices {
            operators: OperatorServices {
                tm_name: opts.name.clone(),
                memory: memory.clone(),
                collect: opts.collect.clone(),
                logs: log_clients(opts.config.clone(), opts.name.clone()),
                sink_stores: sink_clients(opts.config.clone(), opts.name.clone()),
                clock: opts.clock.clone(),
            },
            registry,
            client: DataClient::new(data_config, memory, opts.name.clone()),
            events: opts.events.clone(),
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Ok(TaskManager {
            opts,
            services,
            data_addr,
            tasks: BTreeMap::new(),
            graphs: BTreeMap::new(),
            events_tx,
            events_rx,
            watermark: MemoryWatermark::default(),
            recent_ends: Default::default(),
            claims,
            _data_server: AbortOnDrop(server),
        })
    }

    /// The address its data server listens on (the bound port, when `data_bind` asked for 0).
    pub fn data_addr(&self) -> &str {
        &self.data_addr
    }

    /// The account its memory is charged to.
    pub fn memory(&self) -> MemoryAccount {
        self.services.operators.memory.clone()
    }

    /// Registers and serves; after losing the JobManager, cancels every task and registers
    /// again as a new instance (Flink's behaviour).
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.register().await {
                Ok(session) => {
                    backoff = Duration::from_millis(100);
                    let cause = self.serve(session).await;
                    tracing::warn!(tm = %self.opts.name, %cause, "lost the JobManager; cancelling tasks");
                    let (cancelled, ended) = self.cancel_all();
                    self.services.events.emit(ClusterEvent::JobManagerLost {
                        taskmanager: self.opts.name.clone(),
                        cause,
                        cancelled,
                        ended,
                    });
                    // Whatever cut us off may have left these connections dead without a
                    // broken pipe; the next tasks start on fresh ones.
                    self.services.client.reset().await;
                    self.services.operators.logs.reset();
                    self.services.operators.sink_stores.reset();
                }
                Err(e) => {
                    tracing::info!(tm = %self.opts.name, error = %e, "registration failed; retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn register(&mut self) -> Result<Session, RpcError> {
        let config = &self.opts.config;
        let (mut reader, mut writer) = connect(
            &self.opts.jobmanager,
            "jobmanager",
            &credentials(config),
            (PeerRole::TaskManager, &self.opts.name),
            config.max_frame_size(),
            Duration::from_secs(10),
        )
        .await?;
        let register = TmToJm::Register {
            name: self.opts.name.clone(),
            slots: config.slots_per_taskmanager(),
            memory_bytes: config.memory_process_size(),
            data_addr: self.data_addr.clone(),
        };
        writer.send(&register).await?;
        match tokio::time::timeout(Duration::from_secs(10), reader.recv::<JmToTm>()).await {
            Ok(Ok(Some(JmToTm::Registered {
                instance,
                claim_key,
            }))) => {
                tracing::info!(tm = %self.opts.name, %instance, "registered at the JobManager");
                // Grants for this TaskManager's subpartitions come from this JobManager now.
                self.claims.set(claim_key);
                Ok(Session { reader, writer })
            }
            Ok(Ok(_)) => Err(RpcError::Malformed("expected Registered".into())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RpcError::Timeout("registration")),
        }
    }

    /// Serves one session; returns why it ended.
    async fn serve(&mut self, mut s: Session) -> JobManagerLossCause {
        let closed = |why: String| JobManagerLossCause::ConnectionClosed(why);
        let timeout = self.opts.config.heartbeat_timeout();
        let mut last_heartbeat = Instant::now();
        let mut check =
            tokio::time::interval(self.opts.config.heartbeat_interval().min(timeout) / 2);
        loop {
            tokio::select! {
                biased;
                Some(event) = self.events_rx.recv() => {
                    if let Err(e) = self.report_task(&mut s, event).await {
                        return closed(format!("report failed: {e}"));
                    }
                }
                msg = s.reader.recv::<JmToTm>() => match msg {
                    Ok(Some(JmToTm::Heartbeat { seq })) => {
                        last_heartbeat = Instant::now();
                        crate::buggify::heartbeat_reply(&self.opts.config).await;
                        let report = self.report();
                        self.watch_memory(&report.memory);
                        let reply = TmToJm::HeartbeatReply { seq, report };
                        if let Err(e) = s.writer.send(&reply).await {
                            return closed(format!("heartbeat reply failed: {e}"));
                        }
                    }
                    Ok(Some(msg)) => self.handle(msg),
                    Ok(None) => return closed("connection closed by the JobManager".into()),
                    Err(e) => return closed(format!("connection error: {e}")),
                },
                _ = check.tick() => {
                    if last_heartbeat.elapsed() > timeout {
                        return JobManagerLossCause::HeartbeatTimeout(timeout);
                    }
                }
            }
        }
    }

    /// Traces the accounted memory when it climbs past a new share of the process size.
    fn watch_memory(&mut self, memory: &MemoryReport) {
        let limit = self.opts.config.memory_process_size();
        if let Some(level) = self.watermark.observe(memory.total(), limit) {
            let mib = |b: u64| b / (1 << 20);
            tracing::info!(tm = %self.opts.name, state_mib = mib(memory.state_bytes), buffers_mib = mib(memory.buffer_bytes), "accounted memory above {level}% of the process size");
            self.services.events.emit(ClusterEvent::MemoryAbove {
                taskmanager: self.opts.name.clone(),
                percent: level.into(),
                bytes: memory.total(),
                limit,
            });
        }
    }

    fn report(&self) -> TmReport {
        let tasks = self
            .tasks
            .iter()
            .map(|((job, attempt), t)| TaskReport {
                job: *job,
                attempt: *attempt,
                records_in: t.metrics.records_in.load(Ordering::Relaxed),
                records_dropped: t.metrics.records_dropped.load(Ordering::Relaxed),
            })
            .collect();
        TmReport {
            memory: self.services.operators.memory.report(),
            tasks,
        }
    }

    async fn report_task(&mut self, s: &mut Session, event: TaskEvent) -> Result<(), RpcError> {
        let (job, attempt, state, error) = match event {
            TaskEvent::Checkpointed(job, attempt, checkpoint, snapshot) => {
                if !self.tasks.contains_key(&(job, attempt)) {
                    return Ok(()); // cancelled meanwhile
                }
                let ack = TmToJm::AcknowledgeCheckpoint {
                    job,
                    checkpoint,
                    attempt,
                    snapshot,
                };
                return s.writer.send(&ack).await;
            }
            TaskEvent::Running(job, attempt) => (job, attempt, ExecutionState::Running, None),
            TaskEvent::Ended(job, attempt, Ok(())) => {
                (job, attempt, ExecutionState::Finished, None)
            }
            TaskEvent::Ended(job, attempt, Err(e)) => {
                (job, attempt, ExecutionState::Failed, Some(e))
            }
        };
        let records_in = match self.tasks.get(&(job, attempt)) {
            Some(t) => t.metrics.records_in.load(Ordering::Relaxed),
            None => return Ok(()), // cancelled meanwhile: the JobManager already knows
        };
        if state.is_terminal() {
            self.tasks.remove(&(job, attempt));
            self.ended(attempt);
            // A finished producer's unclaimed subpartitions stay registered: their consumer
            // may not have asked for them yet. They go with the job (ReleaseJob).
            if state == ExecutionState::Failed {
                self.services.registry.release(job, attempt);
            }
        }
        s.writer
            .send(&TmToJm::TaskStateChanged {
                job,
                attempt,
                state,
                records_in,
                error,
            })
            .await
    }

    fn handle(&mut self, msg: JmToTm) {
        match msg {
            msg @ JmToTm::DeployTask { .. } => self.deploy(msg),
            JmToTm::CancelTask { job, attempt } => self.cancel(job, attempt),
            JmToTm::TriggerCheckpoint {
                job,
                checkpoint,
                attempt,
            } => match self.tasks.get(&(job, attempt)) {
                Some(task) => {
                    let _ = task
                        .control
                        .send(TaskControl::TriggerCheckpoint(checkpoint));
                }
                None => {
                    tracing::debug!(%attempt, %checkpoint, "trigger for a task not running here")
                }
            },
            JmToTm::PeerRegistered { data_addr } => self.services.client.forget(&data_addr),
            // Only for a producer running here: what the registry remembers for one not yet
            // registered is forgotten with the producer (`release`).
            JmToTm::DropSubpartition { key }
                if self.tasks.contains_key(&(key.job, key.producer)) =>
            {
                self.services.registry.drop_unclaimed(&key);
            }
            JmToTm::DropSubpartition { .. } => {}
            JmToTm::RevokeSubpartition { key, consumer } => {
                self.services.registry.revoke(&key, consumer);
            }
            JmToTm::UpdatePartitionInfo {
                job,
                consumer,
                index,
                location,
                stale_through,
            } => match self.tasks.get(&(job, consumer)) {
                Some(task) => {
                    let _ = task.control.send(TaskControl::UpdateInput {
                        index: index as usize,
                        location,
                        stale_through,
                    });
                }
                None => tracing::debug!(%consumer, "partition update for a task not running here"),
            },
            JmToTm::NotifyCheckpointComplete { job, checkpoint } => {
                for ((_, _), task) in self.tasks.iter().filter(|((j, _), _)| *j == job) {
                    let _ = task
                        .control
                        .send(TaskControl::CheckpointComplete(checkpoint));
                }
            }
            JmToTm::ReleaseJob { job } => {
                let attempts: Vec<ExecutionAttemptId> = self
                    .tasks
                    .keys()
                    .filter(|(j, _)| *j == job)
                    .map(|(_, a)| *a)
                    .collect();
                for attempt in attempts {
                    self.cancel(job, attempt);
                }
                self.graphs.remove(&job);
                self.services.registry.release_job(job);
            }
            JmToTm::Registered { .. } | JmToTm::Heartbeat { .. } => {}
        }
    }

    fn cancel(&mut self, job: JobId, attempt: ExecutionAttemptId) {
        if self.tasks.remove(&(job, attempt)).is_some() {
            self.services.registry.release(job, attempt);
            tracing::info!(tm = %self.opts.name, %attempt, "task cancelled");
        }
    }

    /// Starts the task a `DeployTask` describes.
    fn deploy(&mut self, msg: JmToTm) {
        let JmToTm::DeployTask {
            job,
            spec,
            config,
            attempt,
            inputs,
            restore,
            finished_consumers,
            sink_grants,
        } = msg
        else {
            return;
        };
        let graph = match self.graphs.get(&job) {
            Some(g) => Ok(g.clone()),
            None => self
                .opts
                .jobs
                .build(
                    &spec,
                    config.max_parallelism(),
                    // This TaskManager's own say, not the deployment's.
                    &self.opts.config.file_access(),
                )
                .map(Arc::new),
        };
        let graph = match graph {
            Ok(g) => g,
            Err(e) => return self.reject(job, attempt, format!("cannot build job: {e}")),
        };
        self.graphs.insert(job, graph.clone());
        let deployment = TaskDeployment {
            job_id: job,
            job: graph,
            attempt,
            inputs,
            config: Arc::new(config),
            restore,
            finished_consumers,
            sink_grants,
        };
        if let Err(e) = deployment.validate() {
            return self.reject(job, attempt, format!("invalid deployment: {e}"));
        }
        let metrics = Arc::new(TaskMetrics::default());
        let (services, events, m) = (
            self.services.clone(),
            self.events_tx.clone(),
            metrics.clone(),
        );
        let restored = deployment.restore.as_ref().map(|r| r.checkpoint);
        match restored {
            Some(checkpoint) => {
                tracing::info!(tm = %self.opts.name, %attempt, %checkpoint, "deploying task from checkpoint")
            }
            None => tracing::info!(tm = %self.opts.name, %attempt, "deploying task"),
        }
        let (control_tx, control) = mpsc::unbounded_channel();
        let handle = tokio::spawn(async move {
            let (running, checkpointed) = (events.clone(), events.clone());
            let link = TaskLink {
                control,
                on_running: Box::new(move || {
                    let _ = running.send(TaskEvent::Running(job, attempt));
                }),
                on_checkpoint: Box::new(move |id, snapshot| {
                    let _ = checkpointed.send(TaskEvent::Checkpointed(job, attempt, id, snapshot));
                }),
            };
            let task = run_task(deployment, services, m, link);
            // A panic in user code or the runtime fails this task, not the TaskManager.
            let result = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(panic) => Err(format!("task panicked: {}", panic_message(&panic))),
            };
            if let Err(e) = &result {
                tracing::warn!(%attempt, error = %e, "task failed");
            }
            let _ = events.send(TaskEvent::Ended(job, attempt, result));
        });
        self.tasks.insert(
            (job, attempt),
            RunningTask {
                _handle: AbortOnDrop(handle),
                metrics,
                control: control_tx,
            },
        );
    }

    /// Reports a deployment that could not start as a failed task.
    fn reject(&mut self, job: JobId, attempt: ExecutionAttemptId, reason: String) {
        tracing::warn!(tm = %self.opts.name, %attempt, %reason, "deployment rejected");
        let idle = AbortOnDrop(tokio::spawn(async {}));
        self.tasks.insert(
            (job, attempt),
            RunningTask {
                _handle: idle,
                metrics: Default::default(),
                control: mpsc::unbounded_channel().0,
            },
        );
        let _ = self
            .events_tx
            .send(TaskEvent::Ended(job, attempt, Err(reason)));
    }

    /// Remembers that `attempt` ended on its own.
    fn ended(&mut self, attempt: ExecutionAttemptId) {
        self.forget_old_ends();
        self.recent_ends.push_back((Instant::now(), attempt));
    }

    /// Forgets ends older than a heartbeat timeout: a JobManager that answered heartbeats
    /// since has had their reports.
    fn forget_old_ends(&mut self) {
        let now = Instant::now();
        let keep = self.opts.config.heartbeat_timeout();
        while self
            .recent_ends
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > keep)
        {
            self.recent_ends.pop_front();
        }
    }

    /// Cancels every task (dropping a task aborts it) and releases its partitions; returns
    /// them, and the attempts that had ended on their own without
    /// the JobManager surely knowing (ended within the last heartbeat timeout, or their end
    /// still waiting to be reported), each list in id order.
    fn cancel_all(&mut self) -> (Vec<ExecutionAttemptId>, Vec<ExecutionAttemptId>) {
        let mut cancelled = Vec::with_capacity(self.tasks.len());
        let mut ended: Vec<ExecutionAttemptId> = Vec::new();
        while let Ok(event) = self.events_rx.try_recv() {
            if let TaskEvent::Ended(job, attempt, _) = event {
                if self.tasks.remove(&(job, attempt)).is_some() {
                    self.services.registry.release(job, attempt);
                    ended.push(attempt);
                }
            }
        }
        for ((job, attempt), _task) in std::mem::take(&mut self.tasks) {
            self.services.registry.release(job, attempt);
            cancelled.push(attempt);
        }
        self.forget_old_ends();
        ended.extend(self.recent_ends.drain(..).map(|(_, attempt)| attempt));
        cancelled.sort();
        ended.sort();
        ended.dedup();
        self.graphs.clear();
        (cancelled, ended)
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
