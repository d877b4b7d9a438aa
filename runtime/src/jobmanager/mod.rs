//! The JobManager: accepts TaskManagers and clients, schedules jobs onto slots, deploys and
//! tracks tasks, and watches TaskManagers through heartbeats.
//!
//! All state lives in one actor task fed by connection tasks through a channel, so every
//! decision happens in one deterministic order (the simulator replays it bit for bit).

pub mod balance;
pub mod checkpoint;
pub mod client;
pub mod restart;
pub mod scheduler;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::api::{build_job, JobSpec};
use crate::config::Configuration;
use crate::config::{FailoverStrategy, LoadBalanceMode};
use crate::graph::{pipelined_regions, region_restart_set, Topology};
use crate::graph::{
    EdgeId, ExecutionAttemptId, ExecutionGraph, ExecutionSlotSharingGroup, ExecutionState,
    ExecutionVertex, InputChannelSpec, JobVertex, VertexId,
};
use crate::network::SubpartitionKey;
use crate::rpc::frame::spawn_writer;
use crate::rpc::handshake::accept_handshake;
use crate::rpc::{
    credentials, framed, ClientToJm, JmToClient, JmToTm, JobStatus, JobStatusReport, PeerRole,
    RpcError, TmToJm,
};
use crate::state::{CheckpointStore, MemoryCheckpointStore, TaskSnapshot};
use crate::taskmanager::InputLocation;
use crate::util::{AbortOnDrop, TaskSet};
use checkpoint::{Ack, CheckpointCoordinator, CompletedCheckpoint, Persisted};
use restart::RestartBackoff;
use scheduler::{placement_for, slot_sharing_groups, SlotOffer, SlotPool, TaskManagerSlots};

type Outbox<T> = mpsc::UnboundedSender<T>;

/// More slots than any real TaskManager offers: a registration claiming more is refused.
const MAX_SLOTS_PER_TASKMANAGER: u32 = 4096;

enum Event {
    TmRegistered {
        name: String,
        slots: u32,
        data_addr: String,
        out: Outbox<JmToTm>,
        /// Dropped by the JobManager to close the connection (a lost TaskManager).
        close: oneshot::Sender<()>,
        reply: oneshot::Sender<u64>,
    },
    TmMessage {
        tm: u64,
        msg: TmToJm,
    },
    TmDisconnected {
        tm: u64,
        reason: String,
    },
    Submit {
        spec: JobSpec,
        config: Configuration,
        out: Outbox<JmToClient>,
    },
    /// The checkpoint store finished writing a completed checkpoint.
    CheckpointPersisted {
        job: u64,
        checkpoint: u64,
        result: Result<(), String>,
    },
}

/// What the JobManager uses beyond its configuration.
#[derive(Clone)]
pub struct JobManagerServices {
    /// Where completed checkpoints are written.
    pub checkpoint_store: Arc<dyn CheckpointStore>,
}

impl JobManagerServices {
    /// The services a configuration asks for: the store of `state.checkpoints.dir`.
    pub fn from_config(config: &Configuration) -> Result<Self, String> {
        let storage: crate::state::CheckpointStorage = config.checkpoints_dir().parse()?;
        Ok(JobManagerServices {
            checkpoint_store: storage.open(config, config.checkpoint_timeout())?,
        })
    }
}

impl Default for JobManagerServices {
    fn default() -> Self {
        JobManagerServices {
            checkpoint_store: Arc::new(MemoryCheckpointStore::default()),
        }
    }
}

struct TmEntry {
    name: String,
    data_addr: String,
    out: Outbox<JmToTm>,
    _close: oneshot::Sender<()>,
    last_reply: Instant,
    rpc_failures: u32,
    /// Accounted memory as of the last heartbeat.
    memory: u64,
}

struct JobEntry {
    spec: JobSpec,
    config: Configuration,
    eg: ExecutionGraph,
    status: JobStatus,
    message: Option<String>,
    clients: Vec<Outbox<JmToClient>>,
    submitted: Instant,
    records: BTreeMap<ExecutionAttemptId, u64>,
    /// Records each attempt dropped for an absent consumer (kept for replaced attempts too).
    dropped: BTreeMap<ExecutionAttemptId, u64>,
    /// Where each current attempt runs (TaskManager instance).
    placement: BTreeMap<ExecutionAttemptId, u64>,
    /// Decides whether and when the job may restart after a failure.
    restart: Box<dyn RestartBackoff>,
    /// When a failed-over job restarts.
    restart_at: Option<Instant>,
    /// Subtasks waiting to be redeployed after a partial (region) failover; empty when the
    /// whole job restarts.
    pending_restart: BTreeSet<(VertexId, u32)>,
    /// The job's execution slot-sharing groups and the slot each holds (None: needs one).
    groups: Vec<ExecutionSlotSharingGroup>,
    group_slots: Vec<Option<SlotOffer>>,
    checkpoints: CheckpointCoordinator,
}

impl JobEntry {
    /// The attempts of this job a loss of `tm` takes: those that have not ended, and those
    /// that finished but whose output some consumer has not read to the end (it dies with the
    /// TaskManager).
    fn attempts_lost_with(&self, tm: u64) -> Vec<ExecutionAttemptId> {
        self.eg
            .all()
            .filter(|ev| match ev.state {
                ExecutionState::Finished => self.has_unfinished_consumer(ev.vertex, ev.subtask),
                state => !state.is_terminal(),
            })
            .map(|ev| ev.attempt_id())
            .filter(|a| self.placement.get(a) == Some(&tm))
            .collect()
    }

    /// The subpartitions (edge, index) of (`vertex`, `subtask`) whose consumer finished.
    fn finished_consumers(&self, vertex: VertexId, subtask: u32) -> Vec<(EdgeId, u32)> {
        let graph = &self.eg.job;
        let mut out = Vec::new();
        for &edge in &graph.vertex(vertex).outputs {
            let cv = graph.edge(edge).target;
            for cs in 0..graph.vertex(cv).parallelism {
                if self
                    .eg
                    .get(cv, cs)
                    .is_some_and(|ev| ev.state == ExecutionState::Finished)
                {
                    out.extend(
                        graph
                            .input_channels(cv, cs)
                            .iter()
                            .filter(|ch| ch.edge == edge && ch.producer_subtask == subtask)
                            .map(|ch| (edge, ch.subpartition)),
                    );
                }
            }
        }
        out
    }

    /// True if a consumer of (`vertex`, `subtask`) has not finished.
    fn has_unfinished_consumer(&self, vertex: VertexId, subtask: u32) -> bool {
        let graph = &self.eg.job;
        graph.vertex(vertex).outputs.iter().any(|&edge| {
            let cv = graph.edge(edge).target;
            (0..graph.vertex(cv).parallelism).any(|cs| {
                let reads = graph
                    .input_channels(cv, cs)
                    .iter()
                    .any(|ch| ch.edge == edge && ch.producer_subtask == subtask);
                reads
                    && self
                        .eg
                        .get(cv, cs)
                        .is_some_and(|ev| ev.state != ExecutionState::Finished)
            })
        })
    }

    /// The TaskManagers running current attempts of this job.
    fn taskmanagers(&self) -> BTreeSet<u64> {
        self.eg
            .all()
            .filter(|ev| !ev.state.is_terminal())
            .filter_map(|ev| self.placement.get(&ev.attempt_id()).copied())
            .collect()
    }
}

/// The pool's view of TaskManagers, with what `job` already runs on each, so a partial
/// restart in `tasks` mode evens out the whole job, not just the restarted groups.
fn with_placed_load(mut tms: Vec<TaskManagerSlots>, job: &JobEntry) -> Vec<TaskManagerSlots> {
    for (group, slot) in job.groups.iter().zip(&job.group_slots) {
        if let Some(t) = slot.and_then(|o| tms.iter_mut().find(|t| t.tm == o.tm)) {
            t.placed.add(group);
        }
    }
    tms
}

/// Adds, until nothing changes, the finished producers of restarted subtasks: a finished
/// producer's output was read once and is gone, so a restarted consumer needs it produced
/// again (Flink restarts the producers of unavailable partitions likewise).
fn with_finished_producers(
    eg: &ExecutionGraph,
    mut restart: BTreeSet<(VertexId, u32)>,
) -> BTreeSet<(VertexId, u32)> {
    let graph = &eg.job;
    loop {
        let more: Vec<(VertexId, u32)> = restart
            .iter()
            .flat_map(|&(v, s)| graph.input_channels(v, s))
            .map(|ch| (graph.edge(ch.edge).source, ch.producer_subtask))
            .filter(|p| !restart.contains(p))
            .filter(|&(v, s)| {
                eg.get(v, s)
                    .is_some_and(|ev| ev.state == ExecutionState::Finished)
            })
            .collect();
        if more.is_empty() {
            return restart;
        }
        restart.extend(more);
    }
}

/// What failed: a task by itself, or every task of a TaskManager that was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Task,
    TaskManagerLost,
}

/// The subtasks a failure of `failed` restarts under `strategy`. `full` restarts everything;
/// `region` the pipelined regions of the failed subtasks and the regions they drag along
/// (Flink's RestartPipelinedRegionFailoverStrategy). rill keeps no finished blocking results
/// for re-reading, so every result counts as unavailable and producers always restart too.
/// `taskmanager` restarts only the lost TaskManager's subtasks; a task's own failure falls
/// back to `region` (WeChat's RestartTaskManagerFailoverStrategy).
fn restart_set(
    eg: &ExecutionGraph,
    strategy: FailoverStrategy,
    failed: &[ExecutionAttemptId],
    scope: Failure,
) -> BTreeSet<(VertexId, u32)> {
    let chosen: BTreeSet<(VertexId, u32)> = match (strategy, scope) {
        (FailoverStrategy::Full, _) => eg.all().map(|ev| (ev.vertex, ev.subtask)).collect(),
        (FailoverStrategy::TaskManager, Failure::TaskManagerLost) => {
            failed.iter().map(|a| (a.vertex, a.subtask)).collect()
        }
        _ => region_set(eg, failed),
    };
    // A finished task delivered all it will (a transactional sink committed its output at
    // the end of its input): it stays finished, and restarted producers drop what they would
    // send it. A lost one was passed in `failed` only if its output is still needed.
    let lost: BTreeSet<(VertexId, u32)> = failed.iter().map(|a| (a.vertex, a.subtask)).collect();
    let unfinished = chosen
        .into_iter()
        .filter(|&(v, s)| {
            lost.contains(&(v, s))
                || eg
                    .get(v, s)
                    .is_some_and(|ev| ev.state != ExecutionState::Finished)
        })
        .collect();
    with_finished_producers(eg, unfinished)
}

/// The pipelined regions of the failed subtasks and the regions they drag along.
fn region_set(eg: &ExecutionGraph, failed: &[ExecutionAttemptId]) -> BTreeSet<(VertexId, u32)> {
    let (topology, subtasks) = Topology::from_job_graph(&eg.job);
    let regions = pipelined_regions(&topology);
    let mut restart = BTreeSet::new();
    for attempt in failed {
        let Some(index) = subtasks
            .iter()
            .position(|&(v, s)| v == attempt.vertex && s == attempt.subtask)
        else {
            return eg.all().map(|ev| (ev.vertex, ev.subtask)).collect();
        };
        for v in region_restart_set(&topology, &regions, index, &|_| false) {
            restart.insert(subtasks[v]);
        }
    }
    restart
}

pub struct JobManager {
    config: Configuration,
    services: JobManagerServices,
    /// The actor's own inbox, for completions of work it spawned (checkpoint writes).
    inbox: Outbox<Event>,
    tms: BTreeMap<u64, TmEntry>,
    jobs: BTreeMap<u64, JobEntry>,
    pool: SlotPool,
    next_tm: u64,
    next_job: u64,
    heartbeat_seq: u64,
}

/// Serves the JobManager on `listener` forever.
pub async fn run_jobmanager_with(
    listener: TcpListener,
    config: Configuration,
    services: JobManagerServices,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _acceptor = AbortOnDrop(tokio::spawn(accept_loop(
        listener,
        config.clone(),
        tx.clone(),
    )));
    let mut jm = JobManager::new(config, services, tx);
    let mut heartbeat = tokio::time::interval(jm.config.heartbeat_interval());
    loop {
        let next_restart = jm.next_restart();
        let next_checkpoint = jm.next_checkpoint_wakeup();
        tokio::select! {
            biased;
            Some(event) = rx.recv() => jm.handle(event),
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

async fn accept_loop(listener: TcpListener, config: Configuration, events: Outbox<Event>) {
    let mut connections = TaskSet::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (config, events) = (config.clone(), events.clone());
                connections.spawn(async move {
                    if let Err(e) = serve_connection(stream, config, events).await {
                        tracing::warn!(peer = %peer, error = %e, "control connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

type Reader = crate::rpc::FrameReader<tokio::io::ReadHalf<TcpStream>>;
type Writer = crate::rpc::FrameWriter<tokio::io::WriteHalf<TcpStream>>;

/// Authenticates a peer, then relays its messages to the actor and the actor's to it.
async fn serve_connection(
    stream: TcpStream,
    config: Configuration,
    events: Outbox<Event>,
) -> Result<(), RpcError> {
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = framed(stream, config.max_frame_size());
    let roles = [PeerRole::TaskManager, PeerRole::Client];
    let creds = credentials(&config);
    let hello = accept_handshake(
        &mut reader,
        &mut writer,
        &creds,
        &roles,
        Duration::from_secs(10),
    )
    .await?;
    match hello.role {
        PeerRole::TaskManager => serve_taskmanager(reader, writer, events).await,
        _ => serve_client(reader, writer, events).await,
    }
}

async fn serve_taskmanager(
    mut reader: Reader,
    writer: Writer,
    events: Outbox<Event>,
) -> Result<(), RpcError> {
    let Some(TmToJm::Register {
        name,
        slots,
        data_addr,
        ..
    }) = reader.recv().await?
    else {
        return Err(RpcError::Malformed("expected Register".into()));
    };
    let (out, out_rx) = mpsc::unbounded_channel();
    let (close, mut closed) = oneshot::channel();
    let (reply, id) = oneshot::channel();
    let _ = events.send(Event::TmRegistered {
        name,
        slots,
        data_addr,
        out,
        close,
        reply,
    });
    let tm = id.await.map_err(|_| RpcError::Closed)?;
    let _writer = AbortOnDrop(spawn_writer(writer, out_rx));
    let reason = loop {
        tokio::select! {
            biased;
            // The JobManager dropped this TaskManager: close the connection so it learns at once.
            _ = &mut closed => return Ok(()),
            msg = reader.recv::<TmToJm>() => match msg {
                Ok(Some(msg)) => {
                    let _ = events.send(Event::TmMessage { tm, msg });
                }
                Ok(None) => break "connection closed".to_string(),
                Err(e) => break format!("connection error: {e}"),
            },
        }
    };
    let _ = events.send(Event::TmDisconnected { tm, reason });
    Ok(())
}

async fn serve_client(
    mut reader: Reader,
    mut writer: Writer,
    events: Outbox<Event>,
) -> Result<(), RpcError> {
    let Some(ClientToJm::Submit { spec, config }) = reader.recv().await? else {
        return Err(RpcError::Malformed("expected Submit".into()));
    };
    let (out, mut out_rx) = mpsc::unbounded_channel();
    let _ = events.send(Event::Submit { spec, config, out });
    while let Some(msg) = out_rx.recv().await {
        writer.send(&msg).await?;
    }
    Ok(())
}

impl JobManager {
    fn new(config: Configuration, services: JobManagerServices, inbox: Outbox<Event>) -> Self {
        JobManager {
            config,
            services,
            inbox,
            tms: BTreeMap::new(),
            jobs: BTreeMap::new(),
            pool: SlotPool::default(),
            next_tm: 1,
            next_job: 1,
            heartbeat_seq: 0,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::TmRegistered {
                name,
                slots,
                data_addr,
                out,
                close,
                reply,
            } => self.register(name, slots, data_addr, out, close, reply),
            Event::TmMessage { tm, msg } if self.tms.contains_key(&tm) => {
                self.on_tm_message(tm, msg)
            }
            Event::TmMessage { tm, .. } => {
                tracing::debug!(tm, "message from a dropped taskmanager ignored")
            }
            Event::TmDisconnected { tm, reason } => self.lose_taskmanagers(vec![(tm, reason)]),
            Event::Submit { spec, config, out } => self.submit(spec, config, out),
            Event::CheckpointPersisted {
                job,
                checkpoint,
                result,
            } => self.checkpoint_persisted(job, checkpoint, result),
        }
    }

    fn register(
        &mut self,
        name: String,
        slots: u32,
        data_addr: String,
        out: Outbox<JmToTm>,
        close: oneshot::Sender<()>,
        reply: oneshot::Sender<u64>,
    ) {
        if slots == 0 || slots > MAX_SLOTS_PER_TASKMANAGER {
            tracing::warn!(%name, slots, "registration refused: slot count out of range");
            return; // dropping `close` and `reply` closes the connection
        }
        // A TaskManager that registers again (it lost us, or restarted) replaces its old
        // instance, whose connection may not have been noticed dead yet.
        let stale: Vec<(u64, String)> = self
            .tms
            .iter()
            .filter(|(_, t)| t.name == name)
            .map(|(id, _)| (*id, "registered again".to_string()))
            .collect();
        self.lose_taskmanagers(stale);
        let tm = self.next_tm;
        self.next_tm += 1;
        tracing::info!(%name, instance = tm, slots, "taskmanager registered");
        let _ = out.send(JmToTm::Registered { instance: tm });
        // Before any deployment can point them at it: the others drop what they cached.
        for other in self.tms.values() {
            let _ = other.out.send(JmToTm::PeerRegistered {
                data_addr: data_addr.clone(),
            });
        }
        let entry = TmEntry {
            name,
            data_addr,
            out,
            _close: close,
            last_reply: Instant::now(),
            rpc_failures: 0,
            memory: 0,
        };
        self.tms.insert(tm, entry);
        self.pool.add_taskmanager(tm, slots);
        let _ = reply.send(tm);
        self.schedule_waiting();
        self.rebalance_jobs();
    }

    /// A TaskManager joined (a replacement, after a failover left the others uneven): jobs
    /// under `taskmanager` failover in `tasks` mode move slot-sharing groups from the most
    /// loaded TaskManagers onto free slots of the lightest while that narrows the task-count
    /// range. Only the moved subtasks restart, as on the loss of theirs. Under `full` and
    /// `region` a move would restart whole regions, so they keep their placement until their
    /// next restart, which places everything evenly again.
    fn rebalance_jobs(&mut self) {
        let ids: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| {
                j.status == JobStatus::Running
                    && j.restart_at.is_none()
                    && j.pending_restart.is_empty()
                    && j.config.failover_strategy() == FailoverStrategy::TaskManager
                    && j.config.load_balance_mode() == LoadBalanceMode::Tasks
                    && j.eg.all().all(|ev| ev.state == ExecutionState::Running)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.rebalance(id);
        }
    }

    fn rebalance(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let mut load: BTreeMap<u64, u64> = self.tms.keys().map(|t| (*t, 0)).collect();
        for (g, slot) in job.groups.iter().zip(&job.group_slots) {
            if let Some(o) = slot {
                *load.entry(o.tm).or_default() += g.tasks() as u64;
            }
        }
        let mut free = self.pool.free();
        let mut moved: Vec<(usize, SlotOffer)> = Vec::new();
        while let Some((&hi, &hi_load)) = load
            .iter()
            .max_by_key(|(t, l)| (**l, std::cmp::Reverse(**t)))
        {
            let Some((lo, lo_load)) = free
                .iter()
                .map(|o| (o.tm, load.get(&o.tm).copied().unwrap_or(0)))
                .min_by_key(|(t, l)| (*l, *t))
            else {
                break;
            };
            let gap = hi_load.saturating_sub(lo_load);
            let candidate = (0..job.groups.len())
                .filter(|g| job.group_slots[*g].is_some_and(|o| o.tm == hi))
                .filter(|g| !moved.iter().any(|(m, _)| m == g))
                .filter(|g| (job.groups[*g].tasks() as u64) < gap)
                .min_by_key(|g| job.groups[*g].tasks());
            let Some(g) = candidate else { break };
            let pos = free
                .iter()
                .position(|o| o.tm == lo)
                .expect("lo has a free slot");
            let offer = free.remove(pos);
            let tasks = job.groups[g].tasks() as u64;
            *load.entry(hi).or_default() -= tasks;
            *load.entry(lo).or_default() += tasks;
            moved.push((g, offer));
        }
        if moved.is_empty() {
            return;
        }
        let mut subtasks = BTreeSet::new();
        for (g, offer) in &moved {
            if let Some(old) = job.group_slots[*g] {
                self.pool.release(old);
            }
            self.pool.allocate(*offer, id);
            job.group_slots[*g] = Some(*offer);
            subtasks.extend(job.groups[*g].members.iter().copied());
        }
        for checkpoint in job.checkpoints.abort_all() {
            tracing::info!(job = id, checkpoint, "checkpoint aborted: rebalancing");
        }
        let names: Vec<String> = subtasks
            .iter()
            .map(|(v, s)| format!("v{}[{s}]", v.0))
            .collect();
        tracing::info!(job = id, tasks = %names.join(" "), "rebalancing: moving {} slot-sharing group(s) to lighter TaskManagers", moved.len());
        self.restart_some(id, subtasks, Duration::ZERO);
    }

    fn on_tm_message(&mut self, tm: u64, msg: TmToJm) {
        match msg {
            TmToJm::HeartbeatReply { report, .. } => {
                let Some(entry) = self.tms.get_mut(&tm) else {
                    return;
                };
                entry.last_reply = Instant::now();
                entry.rpc_failures = 0;
                entry.memory = report.memory.total();
                for t in report.tasks {
                    if let Some(j) = self
                        .jobs
                        .get_mut(&t.job)
                        .filter(|j| j.placement.get(&t.attempt) == Some(&tm))
                    {
                        j.records.insert(t.attempt, t.records_in);
                        if t.records_dropped > 0 {
                            j.dropped.insert(t.attempt, t.records_dropped);
                        }
                    }
                }
            }
            TmToJm::TaskStateChanged {
                job,
                attempt,
                state,
                records_in,
                error,
            } => {
                let owned = self
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.placement.get(&attempt) == Some(&tm));
                if owned {
                    self.on_task_state(job, attempt, state, records_in, error)
                } else {
                    tracing::debug!(tm, %attempt, "state change from a taskmanager that does not run the attempt ignored");
                }
            }
            TmToJm::AcknowledgeCheckpoint {
                job,
                checkpoint,
                attempt,
                snapshot,
            } => {
                let owned = self
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.placement.get(&attempt) == Some(&tm));
                if owned {
                    self.acknowledge_checkpoint(job, checkpoint, attempt, snapshot);
                } else {
                    tracing::debug!(tm, %attempt, checkpoint, "acknowledgement of an attempt the taskmanager does not run ignored");
                }
            }
            TmToJm::Register { .. } => tracing::warn!(tm, "duplicate registration ignored"),
        }
    }

    fn submit(&mut self, spec: JobSpec, job_config: Configuration, out: Outbox<JmToClient>) {
        let config = match self.config.merged(&job_config) {
            Ok(c) => c,
            Err(e) => {
                let _ = out.send(JmToClient::Rejected {
                    reason: e.to_string(),
                });
                return;
            }
        };
        let graph = match build_job(&spec, config.max_parallelism()) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                tracing::warn!(job = %spec.name, error = %e, "job rejected");
                let _ = out.send(JmToClient::Rejected {
                    reason: e.to_string(),
                });
                return;
            }
        };
        let id = self.next_job;
        self.next_job += 1;
        // Jitter of exponential back-off is drawn from a seed (the job id): deterministic.
        let restart = restart::from_config(&config, id);
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
        tracing::info!(job = id, name = %spec.name, "job submitted");
        let entry = JobEntry {
            spec,
            config,
            eg: ExecutionGraph::new(graph),
            status: JobStatus::Created,
            message: None,
            clients: vec![out],
            submitted: Instant::now(),
            records: BTreeMap::new(),
            dropped: BTreeMap::new(),
            placement: BTreeMap::new(),
            restart,
            restart_at: None,
            pending_restart: BTreeSet::new(),
            groups: Vec::new(),
            group_slots: Vec::new(),
            checkpoints,
        };
        self.jobs.insert(id, entry);
        self.schedule_waiting();
    }

    /// Schedules every created job whose slots are now available.
    fn schedule_waiting(&mut self) {
        let waiting: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status == JobStatus::Created)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.try_schedule(id);
        }
        let partial: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| {
                j.status == JobStatus::Running
                    && j.restart_at.is_none()
                    && !j.pending_restart.is_empty()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in partial {
            self.redeploy_pending(id);
        }
    }

    fn try_schedule(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // `taskmanager.load-balance.mode` decides both how subtasks are grouped into slots and
        // how the groups are spread over TaskManagers (the whole job is placed again after a
        // failover, so the balance holds then too).
        let mode = job.config.load_balance_mode();
        let groups = slot_sharing_groups(&job.eg.job, mode);
        let Some(offers) = placement_for(mode, None).place_on(&groups, &self.pool.taskmanagers())
        else {
            tracing::info!(
                job = id,
                needed = groups.len(),
                free = self.pool.free().len(),
                "waiting for slots"
            );
            return;
        };
        for (group, offer) in groups.iter().zip(&offers) {
            self.pool.allocate(*offer, id);
            for &(vertex, subtask) in &group.members {
                let Some(ev) = job.eg.get_mut(vertex, subtask) else {
                    continue;
                };
                ev.state = ExecutionState::Scheduled;
                ev.location = self.tms.get(&offer.tm).map(|t| t.name.clone());
                job.placement.insert(ev.attempt_id(), offer.tm);
            }
        }
        job.group_slots = offers.iter().copied().map(Some).collect();
        job.groups = groups;
        job.status = JobStatus::Running;
        job.checkpoints.start(Instant::now());
        tracing::info!(job = id, "job running");
        let all: Vec<(VertexId, u32)> = job.eg.all().map(|ev| (ev.vertex, ev.subtask)).collect();
        if let Err(reason) = self.deploy(id, &all) {
            self.fail_job(id, reason);
        }
        self.broadcast_status(id);
    }

    /// Deploys the current attempts of `subtasks`, each with the state of the latest completed
    /// checkpoint and the locations of its producers' current attempts.
    fn deploy(&mut self, id: u64, subtasks: &[(VertexId, u32)]) -> Result<(), String> {
        let job = self.jobs.get_mut(&id).ok_or("unknown job")?;
        for &(v, s) in subtasks {
            if let Some(ev) = job.eg.get_mut(v, s) {
                ev.state = ExecutionState::Deploying;
            }
        }
        let graph = job.eg.job.clone();
        let job = &self.jobs[&id];
        let latest = job.checkpoints.latest().cloned();
        for &(v, s) in subtasks {
            let ev = job.eg.get(v, s).ok_or("unknown subtask")?;
            let attempt = ev.attempt_id();
            let tm = *job
                .placement
                .get(&attempt)
                .ok_or_else(|| format!("{attempt} has no slot"))?;
            let inputs = graph
                .input_channels(ev.vertex, ev.subtask)
                .iter()
                .map(|ch| self.input_location(job, ch, tm))
                .collect::<Result<Vec<_>, &str>>()?;
            let restore = latest
                .as_ref()
                .map(|c: &Arc<CompletedCheckpoint>| c.restore_for(&graph, ev.vertex, ev.subtask));
            let msg = JmToTm::DeployTask {
                job: id,
                spec: job.spec.clone(),
                config: job.config.clone(),
                attempt,
                inputs,
                restore,
                finished_consumers: job.finished_consumers(ev.vertex, ev.subtask),
            };
            self.tms
                .get(&tm)
                .ok_or("taskmanager is gone")?
                .out
                .send(msg)
                .map_err(|_| "taskmanager unreachable")?;
        }
        Ok(())
    }

    /// Where a consumer on TaskManager `consumer_tm` reads input channel `ch` from: the
    /// producer's current attempt, locally or at its TaskManager's data address.
    fn input_location(
        &self,
        job: &JobEntry,
        ch: &InputChannelSpec,
        consumer_tm: u64,
    ) -> Result<InputLocation, &'static str> {
        let producer_vertex = job.eg.job.edge(ch.edge).source;
        let producer = job
            .eg
            .get(producer_vertex, ch.producer_subtask)
            .ok_or("missing producer")?
            .attempt_id();
        let producer_tm = *job.placement.get(&producer).ok_or("producer has no slot")?;
        let data_addr = match producer_tm == consumer_tm {
            true => None,
            false => Some(
                self.tms
                    .get(&producer_tm)
                    .ok_or("producer's taskmanager is gone")?
                    .data_addr
                    .clone(),
            ),
        };
        Ok(InputLocation {
            producer,
            edge: ch.edge,
            subpartition: ch.subpartition,
            data_addr,
        })
    }

    /// `taskmanager` failover: tells every consumer that kept running where its restarted
    /// producers run now, so its paused channels reconnect (Flink's UpdatePartitionInfo).
    fn update_partition_infos(&self, id: u64, restarted: &[(VertexId, u32)]) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let graph = &job.eg.job;
        for &(pv, ps) in restarted {
            for &edge in &graph.vertex(pv).outputs {
                let cv = graph.edge(edge).target;
                for cs in 0..graph.vertex(cv).parallelism {
                    if restarted.contains(&(cv, cs)) {
                        continue; // deployed with the new location already
                    }
                    let Some(consumer) = job.eg.get(cv, cs).map(|ev| ev.attempt_id()) else {
                        continue;
                    };
                    let Some(&tm) = job.placement.get(&consumer) else {
                        continue;
                    };
                    let channels = graph.input_channels(cv, cs);
                    for (index, ch) in channels.iter().enumerate() {
                        if ch.edge != edge || ch.producer_subtask != ps {
                            continue;
                        }
                        let (Ok(location), Some(entry)) =
                            (self.input_location(job, ch, tm), self.tms.get(&tm))
                        else {
                            continue;
                        };
                        let _ = entry.out.send(JmToTm::UpdatePartitionInfo {
                            job: id,
                            consumer,
                            index: index as u32,
                            location,
                        });
                    }
                }
            }
        }
    }

    fn on_task_state(
        &mut self,
        id: u64,
        attempt: ExecutionAttemptId,
        state: ExecutionState,
        records: u64,
        error: Option<String>,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.status.is_terminal() {
            return;
        }
        let Some(ev) = job.eg.current(attempt) else {
            tracing::debug!(%attempt, "state change of a replaced attempt ignored");
            return;
        };
        ev.state = state;
        job.records.insert(attempt, records);
        if state.is_terminal() {
            if let Some(checkpoint) = job.checkpoints.abort_waiting_for(attempt) {
                tracing::info!(job = id, checkpoint, %attempt, ?state, "checkpoint aborted: a task it waits for ended");
            }
        }
        match state {
            ExecutionState::Failed => {
                let reason = format!("task {attempt} failed: {}", error.unwrap_or_default());
                self.fail_over(id, reason, &[attempt], Failure::Task);
            }
            ExecutionState::Finished
                if job.eg.all().all(|ev| ev.state == ExecutionState::Finished) =>
            {
                tracing::info!(job = id, "job finished");
                self.end_job(id, JobStatus::Finished, None);
            }
            ExecutionState::Finished => self.release_finished_consumer(id, attempt),
            _ => {}
        }
    }

    /// A consumer finished while producers of its inputs still run: under `taskmanager`
    /// failover, a producer restarted from a checkpoint replays what the consumer already had,
    /// into a subpartition nobody will read again. Its TaskManager drops that queue, so the
    /// producer discards instead of filling it and blocking (found by a swarm seed where a
    /// consumer finished while a replaying producer was being moved). Only unclaimed queues
    /// go: a finished producer's end of partition, waiting for a restarted consumer, stays.
    fn release_finished_consumer(&self, id: u64, consumer: ExecutionAttemptId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        if job.config.failover_strategy() != FailoverStrategy::TaskManager {
            return;
        }
        // Replayed producers only: a finished one has no queue left to fill.
        let consumer = (consumer.vertex, consumer.subtask);
        self.tell_producers(
            id,
            consumer,
            |p| !p.state.is_terminal(),
            |key| JmToTm::DropSubpartition { key },
        );
    }

    /// Handles a failure of a running job: restarts what the failover strategy says, if the
    /// restart strategy allows, after its back-off; otherwise fails the job. `failed` are the
    /// attempts that failed or were lost. Every restarted subtask gets a new attempt number,
    /// so nothing from the old attempts is accepted any more, and restores the latest
    /// completed checkpoint.
    fn fail_over(&mut self, id: u64, cause: String, failed: &[ExecutionAttemptId], scope: Failure) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.status != JobStatus::Running {
            return;
        }
        job.restart.notify_failure(job.submitted.elapsed());
        if !job.restart.can_restart() {
            let reason = format!(
                "{cause}; restart strategy {}: no more restarts",
                job.restart.describe()
            );
            return self.fail_job(id, reason);
        }
        let backoff = job.restart.backoff();
        let strategy = job.config.failover_strategy();
        let restart = restart_set(&job.eg, strategy, failed, scope);
        for checkpoint in job.checkpoints.abort_all() {
            tracing::info!(job = id, checkpoint, "checkpoint aborted: failover");
        }
        let from = job.checkpoints.latest().map(|c| c.id);
        if restart.len() == job.eg.subtask_count() {
            tracing::warn!(job = id, %cause, %strategy, backoff = ?backoff, restart = %job.restart.describe(), checkpoint = from.unwrap_or(0), "job failing over: restarting all tasks");
            return self.restart_all(id, backoff);
        }
        let names: Vec<String> = restart
            .iter()
            .map(|(v, s)| format!("v{}[{s}]", v.0))
            .collect();
        tracing::warn!(job = id, %cause, %strategy, backoff = ?backoff, restart = %job.restart.describe(), checkpoint = from.unwrap_or(0), tasks = %names.join(" "), "job failing over: restarting {} of {} tasks", restart.len(), job.eg.subtask_count());
        self.restart_some(id, restart, backoff);
    }

    /// The `full` restart: every task is cancelled and the whole job is placed again.
    fn restart_all(&mut self, id: u64, backoff: Duration) {
        self.cancel_tasks(id);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        for ev in job.eg.all_mut() {
            ev.attempt += 1;
            ev.state = ExecutionState::Created;
            ev.location = None;
        }
        job.placement.clear();
        job.pending_restart.clear();
        job.status = JobStatus::Restarting;
        job.checkpoints.stop();
        job.restart_at = Some(Instant::now() + backoff);
        self.pool.release_job(id);
        self.broadcast_status(id);
    }

    /// A partial restart: only `subtasks` are cancelled; the slots of lost TaskManagers are
    /// found anew when they are redeployed. The job stays RUNNING, as in Flink.
    fn restart_some(&mut self, id: u64, subtasks: BTreeSet<(VertexId, u32)>, backoff: Duration) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        for &(v, s) in &subtasks {
            let Some(ev) = job.eg.get_mut(v, s) else {
                continue;
            };
            let old = ev.attempt_id();
            if !ev.state.is_terminal() {
                if let Some(tm) = job.placement.get(&old).and_then(|tm| self.tms.get(tm)) {
                    let _ = tm.out.send(JmToTm::CancelTask {
                        job: id,
                        attempt: old,
                    });
                }
            }
            job.placement.remove(&old);
            ev.attempt += 1;
            ev.state = ExecutionState::Created;
            ev.location = None;
        }
        self.revoke_old_consumers(id, &subtasks);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // A group whose TaskManager is gone must find a new slot.
        for slot in &mut job.group_slots {
            if slot.is_some_and(|o| !self.tms.contains_key(&o.tm)) {
                *slot = None;
            }
        }
        job.pending_restart.extend(subtasks);
        job.restart_at = Some(Instant::now() + backoff);
        self.broadcast_status(id);
    }

    /// Tells every producer that keeps running to close its channels to the `restarted`
    /// consumers: a partitioned consumer's connection may never break by itself, and the
    /// producer must stop waiting for its credit and keep a fresh queue for the replacement.
    fn revoke_old_consumers(&self, id: u64, restarted: &BTreeSet<(VertexId, u32)>) {
        for &consumer in restarted {
            let kept = |p: &ExecutionVertex| !restarted.contains(&(p.vertex, p.subtask));
            self.tell_producers(id, consumer, kept, |key| JmToTm::RevokeSubpartition { key });
        }
    }

    /// Sends `message` about the subpartition that feeds `consumer` (vertex, subtask) to the
    /// TaskManager of each of its producers that `select` picks.
    fn tell_producers(
        &self,
        id: u64,
        (cv, cs): (VertexId, u32),
        select: impl Fn(&ExecutionVertex) -> bool,
        message: impl Fn(SubpartitionKey) -> JmToTm,
    ) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let graph = &job.eg.job;
        for ch in graph.input_channels(cv, cs) {
            let pv = graph.edge(ch.edge).source;
            let Some(producer) = job.eg.get(pv, ch.producer_subtask) else {
                continue;
            };
            if !select(producer) {
                continue;
            }
            let producer = producer.attempt_id();
            let key = SubpartitionKey {
                job: id,
                producer,
                edge: ch.edge,
                index: ch.subpartition,
            };
            if let Some(tm) = job.placement.get(&producer).and_then(|t| self.tms.get(t)) {
                let _ = tm.out.send(message(key));
            }
        }
    }

    /// Redeploys the subtasks of a partial restart, once every group they belong to has a slot.
    fn redeploy_pending(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // A group needs a slot if it has none, or its TaskManager was lost since (possibly
        // while holding only finished tasks, which no failover restarted).
        for slot in &mut job.group_slots {
            if slot.is_some_and(|o| !self.tms.contains_key(&o.tm)) {
                *slot = None;
            }
        }
        let homeless: Vec<usize> = (0..job.groups.len())
            .filter(|g| job.group_slots[*g].is_none())
            .collect();
        if !homeless.is_empty() {
            let groups: Vec<ExecutionSlotSharingGroup> =
                homeless.iter().map(|g| job.groups[*g].clone()).collect();
            let mode = job.config.load_balance_mode();
            let tms = with_placed_load(self.pool.taskmanagers(), job);
            let Some(offers) = placement_for(mode, None).place_on(&groups, &tms) else {
                tracing::info!(
                    job = id,
                    needed = groups.len(),
                    free = self.pool.free().len(),
                    "waiting for slots"
                );
                return;
            };
            for (g, offer) in homeless.iter().zip(offers) {
                self.pool.allocate(offer, id);
                job.group_slots[*g] = Some(offer);
            }
        }
        let subtasks: Vec<(VertexId, u32)> = std::mem::take(&mut job.pending_restart)
            .into_iter()
            .collect();
        for (g, group) in job.groups.iter().enumerate() {
            let Some(offer) = job.group_slots[g] else {
                continue;
            };
            for member in group.members.iter().filter(|m| subtasks.contains(m)) {
                if let Some(ev) = job.eg.get_mut(member.0, member.1) {
                    ev.state = ExecutionState::Scheduled;
                    ev.location = self.tms.get(&offer.tm).map(|t| t.name.clone());
                    job.placement.insert(ev.attempt_id(), offer.tm);
                }
            }
        }
        tracing::info!(
            job = id,
            tasks = subtasks.len(),
            "redeploying restarted tasks"
        );
        if let Err(reason) = self.deploy(id, &subtasks) {
            return self.fail_job(id, reason);
        }
        self.update_partition_infos(id, &subtasks);
        self.broadcast_status(id);
    }

    /// Cancels every attempt of the job that has not ended.
    fn cancel_tasks(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        for ev in job.eg.all_mut() {
            if !ev.state.is_terminal() {
                ev.state = ExecutionState::Canceled;
                let attempt = ev.attempt_id();
                if let Some(tm) = job.placement.get(&attempt).and_then(|tm| self.tms.get(tm)) {
                    let _ = tm.out.send(JmToTm::CancelTask { job: id, attempt });
                }
            }
        }
    }

    fn next_restart(&self) -> Option<Instant> {
        self.jobs.values().filter_map(|j| j.restart_at).min()
    }

    /// Jobs whose back-off is over go back to scheduling (a full restart) or redeploy their
    /// restarted subtasks (a partial one).
    fn restart_due(&mut self) {
        let now = Instant::now();
        for (id, job) in &mut self.jobs {
            if job.restart_at.is_some_and(|at| at <= now) {
                job.restart_at = None;
                if job.pending_restart.is_empty() {
                    job.status = JobStatus::Created;
                }
                tracing::info!(job = id, "job restarting");
            }
        }
        self.schedule_waiting();
    }

    /// Fails a job for good: cancels its remaining tasks.
    fn fail_job(&mut self, id: u64, reason: String) {
        tracing::warn!(job = id, %reason, "job failed");
        self.end_job(id, JobStatus::Failed, Some(reason));
    }

    fn end_job(&mut self, id: u64, status: JobStatus, message: Option<String>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.status = status;
        job.message = message;
        job.restart_at = None;
        job.pending_restart.clear();
        job.checkpoints.stop();
        job.checkpoints.abort_all();
        self.cancel_tasks(id);
        for tm in self.tms.values() {
            let _ = tm.out.send(JmToTm::ReleaseJob { job: id });
        }
        self.pool.release_job(id);
        self.broadcast_status(id);
        self.schedule_waiting();
    }

    /// Drops TaskManagers (closing their connections), then fails the jobs that had live tasks
    /// on any of them. All are removed before anything is rescheduled, so no job is placed on a
    /// TaskManager that is being declared lost in the same step.
    fn lose_taskmanagers(&mut self, lost: Vec<(u64, String)>) {
        let mut reasons = Vec::new();
        for (tm, reason) in lost {
            let Some(entry) = self.tms.remove(&tm) else {
                continue;
            };
            tracing::warn!(tm = %entry.name, instance = tm, %reason, "taskmanager lost");
            self.pool.remove_taskmanager(tm);
            reasons.push((tm, format!("TaskManager {} lost: {reason}", entry.name)));
        }
        for (tm, reason) in reasons {
            let affected: Vec<(u64, Vec<ExecutionAttemptId>)> = self
                .jobs
                .iter()
                .filter(|(_, j)| !j.status.is_terminal())
                .map(|(id, j)| (*id, j.attempts_lost_with(tm)))
                .filter(|(_, lost)| !lost.is_empty())
                .collect();
            for (id, lost) in affected {
                self.fail_over(id, reason.clone(), &lost, Failure::TaskManagerLost);
            }
        }
    }

    fn next_checkpoint_wakeup(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter(|j| j.status == JobStatus::Running)
            .filter_map(|j| j.checkpoints.next_wakeup())
            .min()
    }

    /// Expires checkpoints past their timeout and triggers those that are due, at the sources:
    /// only when every task runs (a checkpoint of a half-deployed job could never complete).
    fn checkpoint_tick(&mut self) {
        let now = Instant::now();
        for (&id, job) in &mut self.jobs {
            if job.status != JobStatus::Running {
                continue;
            }
            for checkpoint in job.checkpoints.expire(now) {
                tracing::warn!(job = id, checkpoint, "checkpoint expired before completing");
            }
            if !job.eg.all().all(|ev| ev.state == ExecutionState::Running) {
                job.checkpoints.postpone_if_due(now);
                continue;
            }
            let attempts: Vec<ExecutionAttemptId> =
                job.eg.all().map(|ev| ev.attempt_id()).collect();
            let Some(checkpoint) = job.checkpoints.trigger_if_due(now, attempts) else {
                continue;
            };
            tracing::info!(job = id, checkpoint, "checkpoint triggered");
            let graph = job.eg.job.clone();
            for ev in job.eg.all().filter(|ev| graph.vertex(ev.vertex).is_source) {
                let attempt = ev.attempt_id();
                if let Some(tm) = job.placement.get(&attempt).and_then(|tm| self.tms.get(tm)) {
                    let _ = tm.out.send(JmToTm::TriggerCheckpoint {
                        job: id,
                        checkpoint,
                        attempt,
                    });
                }
            }
        }
    }

    fn acknowledge_checkpoint(
        &mut self,
        id: u64,
        checkpoint: u64,
        attempt: ExecutionAttemptId,
        snapshot: TaskSnapshot,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.eg.current(attempt).is_none() {
            tracing::debug!(%attempt, checkpoint, "acknowledgement of a replaced attempt ignored");
            return;
        }
        let Ack::AllAcknowledged(completed) =
            job.checkpoints.acknowledge(checkpoint, attempt, snapshot)
        else {
            return;
        };
        let data = match bincode::serialize(&*completed) {
            Ok(data) => bytes::Bytes::from(data),
            Err(e) => {
                job.checkpoints.persist_failed(checkpoint);
                tracing::error!(job = id, checkpoint, error = %e, "checkpoint could not be encoded");
                return;
            }
        };
        let write = self.services.checkpoint_store.put(id, checkpoint, data);
        let inbox = self.inbox.clone();
        tokio::spawn(async move {
            let result = write.await.map_err(|e| e.to_string());
            let _ = inbox.send(Event::CheckpointPersisted {
                job: id,
                checkpoint,
                result,
            });
        });
    }

    /// A completed checkpoint is in the store: it becomes the one to restore, older ones beyond
    /// `state.checkpoints.num-retained` are deleted, and the tasks are told (sinks commit).
    fn checkpoint_persisted(&mut self, id: u64, checkpoint: u64, result: Result<(), String>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if let Err(error) = result {
            if job.checkpoints.persist_failed(checkpoint) {
                tracing::warn!(job = id, checkpoint, %error, "checkpoint failed: the store refused it");
            }
            return;
        }
        let subsumed = match job.checkpoints.persisted(checkpoint) {
            Persisted::Completed { subsumed } => subsumed,
            // Aborted meanwhile (failover, timeout), or overtaken by a newer checkpoint: it
            // must never be restored, and sinks have nothing to commit for it.
            Persisted::Aborted | Persisted::Subsumed => {
                tracing::info!(
                    job = id,
                    checkpoint,
                    "checkpoint written too late: discarded"
                );
                return self.delete_checkpoint(id, checkpoint);
            }
        };
        let bytes = job.checkpoints.latest().map_or(0, |c| c.bytes());
        tracing::info!(job = id, checkpoint, bytes, "checkpoint completed");
        for tm in job.taskmanagers() {
            if let Some(tm) = self.tms.get(&tm) {
                let _ = tm.out.send(JmToTm::NotifyCheckpointComplete {
                    job: id,
                    checkpoint,
                });
            }
        }
        for old in subsumed {
            self.delete_checkpoint(id, old);
        }
    }

    /// Deletes a checkpoint from the store in the background; a failure only leaves garbage.
    fn delete_checkpoint(&self, job: u64, checkpoint: u64) {
        let delete = self.services.checkpoint_store.delete(job, checkpoint);
        tokio::spawn(async move {
            if let Err(e) = delete.await {
                tracing::warn!(job, checkpoint, error = %e, "could not delete a checkpoint");
            }
        });
    }

    /// Sends heartbeats and declares TaskManagers lost after `heartbeat.timeout` without a
    /// reply or `heartbeat.rpc-failure-threshold` failed sends in a row.
    fn heartbeat(&mut self) {
        self.heartbeat_seq += 1;
        let timeout = self.config.heartbeat_timeout();
        let threshold = self.config.heartbeat_rpc_failure_threshold();
        let mut lost = Vec::new();
        for (&id, tm) in &mut self.tms {
            if tm.last_reply.elapsed() > timeout {
                lost.push((id, format!("heartbeat timeout after {timeout:?}")));
            } else if tm
                .out
                .send(JmToTm::Heartbeat {
                    seq: self.heartbeat_seq,
                })
                .is_err()
            {
                tm.rpc_failures += 1;
                if tm.rpc_failures >= threshold {
                    lost.push((id, format!("{} heartbeat RPCs failed", tm.rpc_failures)));
                }
            }
        }
        self.lose_taskmanagers(lost);
        let running: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status == JobStatus::Running)
            .map(|(id, _)| *id)
            .collect();
        for id in running {
            self.broadcast_status(id);
        }
    }

    fn status_of(&self, id: u64) -> Option<JobStatusReport> {
        let job = self.jobs.get(&id)?;
        let graph = &job.eg.job;
        let sum = |pick: fn(&JobVertex) -> bool| -> u64 {
            job.eg
                .all()
                .filter(|ev| pick(graph.vertex(ev.vertex)))
                .map(|ev| job.records.get(&ev.attempt_id()).copied().unwrap_or(0))
                .fold(0u64, u64::saturating_add)
        };
        // Every registered TaskManager, idle ones with 0, so balance is judged over all of them.
        let mut per_tm: BTreeMap<String, u32> =
            self.tms.values().map(|t| (t.name.clone(), 0)).collect();
        for ev in job.eg.all() {
            if let Some(loc) = &ev.location {
                *per_tm.entry(loc.clone()).or_default() += 1;
            }
        }
        Some(JobStatusReport {
            job: id,
            status: job.status,
            records_in: sum(|v| v.is_source),
            records_out: sum(|v| v.is_sink),
            elapsed_ms: job.submitted.elapsed().as_millis() as u64,
            tasks_per_taskmanager: per_tm.into_iter().collect(),
            memory_per_taskmanager: self
                .tms
                .values()
                .map(|t| (t.name.clone(), t.memory))
                .collect(),
            records_dropped: job.dropped.values().fold(0u64, |a, b| a.saturating_add(*b)),
            message: job.message.clone(),
        })
    }

    fn broadcast_status(&mut self, id: u64) {
        let Some(report) = self.status_of(id) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(&id) {
            job.clients
                .retain(|c| c.send(JmToClient::Status(report.clone())).is_ok());
        }
    }
}
