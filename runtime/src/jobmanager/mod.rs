//! The JobManager: accepts TaskManagers and clients, schedules jobs onto slots, deploys and
//! tracks tasks, and watches TaskManagers through heartbeats.
//!
//! All state lives in one actor task fed by connection tasks through a channel, so every
//! decision happens in one deterministic order (the simulator replays it bit for bit).

pub mod balance;
pub mod client;
pub mod restart;
pub mod scheduler;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::api::{build_job, JobSpec};
use crate::config::Configuration;
use crate::graph::{ExecutionAttemptId, ExecutionGraph, ExecutionState, JobVertex};
use crate::rpc::frame::spawn_writer;
use crate::rpc::handshake::accept_handshake;
use crate::rpc::{
    credentials, framed, ClientToJm, JmToClient, JmToTm, JobStatus, JobStatusReport, PeerRole,
    RpcError, TmToJm,
};
use crate::taskmanager::InputLocation;
use crate::util::{AbortOnDrop, TaskSet};
use restart::RestartBackoff;
use scheduler::{placement_for, slot_sharing_groups, SlotPool};

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
}

struct TmEntry {
    name: String,
    data_addr: String,
    out: Outbox<JmToTm>,
    _close: oneshot::Sender<()>,
    last_reply: Instant,
    rpc_failures: u32,
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
    /// Where each current attempt runs (TaskManager instance).
    placement: BTreeMap<ExecutionAttemptId, u64>,
    /// Decides whether and when the job may restart after a failure.
    restart: Box<dyn RestartBackoff>,
    /// When a failed-over job restarts.
    restart_at: Option<Instant>,
}

impl JobEntry {
    /// True if `tm` runs an attempt of this job that has not ended.
    fn has_live_task_on(&self, tm: u64) -> bool {
        self.eg
            .all()
            .any(|ev| !ev.state.is_terminal() && self.placement.get(&ev.attempt_id()) == Some(&tm))
    }
}

pub struct JobManager {
    config: Configuration,
    tms: BTreeMap<u64, TmEntry>,
    jobs: BTreeMap<u64, JobEntry>,
    pool: SlotPool,
    next_tm: u64,
    next_job: u64,
    heartbeat_seq: u64,
}

/// Serves the JobManager on `listener` forever.
pub async fn run_jobmanager(listener: TcpListener, config: Configuration) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _acceptor = AbortOnDrop(tokio::spawn(accept_loop(listener, config.clone(), tx)));
    let mut jm = JobManager::new(config);
    let mut heartbeat = tokio::time::interval(jm.config.heartbeat_interval());
    loop {
        let next_restart = jm.next_restart();
        tokio::select! {
            biased;
            Some(event) = rx.recv() => jm.handle(event),
            _ = heartbeat.tick() => jm.heartbeat(),
            _ = sleep_until_some(next_restart) => jm.restart_due(),
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
    fn new(config: Configuration) -> Self {
        JobManager {
            config,
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
        let entry = TmEntry {
            name,
            data_addr,
            out,
            _close: close,
            last_reply: Instant::now(),
            rpc_failures: 0,
        };
        self.tms.insert(tm, entry);
        self.pool.add_taskmanager(tm, slots);
        let _ = reply.send(tm);
        self.schedule_waiting();
    }

    fn on_tm_message(&mut self, tm: u64, msg: TmToJm) {
        match msg {
            TmToJm::HeartbeatReply { report, .. } => {
                let Some(entry) = self.tms.get_mut(&tm) else {
                    return;
                };
                entry.last_reply = Instant::now();
                entry.rpc_failures = 0;
                for (job, attempt, records) in report.tasks {
                    if let Some(j) = self
                        .jobs
                        .get_mut(&job)
                        .filter(|j| j.placement.get(&attempt) == Some(&tm))
                    {
                        j.records.insert(attempt, records);
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
            placement: BTreeMap::new(),
            restart,
            restart_at: None,
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
        job.status = JobStatus::Running;
        tracing::info!(job = id, "job running");
        if let Err(reason) = self.deploy_all(id) {
            self.fail_job(id, reason);
        }
        self.broadcast_status(id);
    }

    fn deploy_all(&mut self, id: u64) -> Result<(), String> {
        let job = self.jobs.get_mut(&id).ok_or("unknown job")?;
        for ev in job.eg.all_mut() {
            ev.state = ExecutionState::Deploying;
        }
        let graph = job.eg.job.clone();
        let job = &self.jobs[&id];
        for ev in job.eg.all() {
            let attempt = ev.attempt_id();
            let tm = *job
                .placement
                .get(&attempt)
                .ok_or_else(|| format!("{attempt} has no slot"))?;
            let inputs = graph
                .input_channels(ev.vertex, ev.subtask)
                .into_iter()
                .map(|ch| {
                    let producer_vertex = graph.edge(ch.edge).source;
                    let producer = job
                        .eg
                        .get(producer_vertex, ch.producer_subtask)
                        .ok_or("missing producer")?
                        .attempt_id();
                    let producer_tm =
                        *job.placement.get(&producer).ok_or("producer has no slot")?;
                    let data_addr = match producer_tm == tm {
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
                })
                .collect::<Result<Vec<_>, &str>>()?;
            let msg = JmToTm::DeployTask {
                job: id,
                spec: job.spec.clone(),
                config: job.config.clone(),
                attempt,
                inputs,
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
        match state {
            ExecutionState::Failed => {
                let reason = format!("task {attempt} failed: {}", error.unwrap_or_default());
                self.fail_over(id, reason);
            }
            ExecutionState::Finished
                if job.eg.all().all(|ev| ev.state == ExecutionState::Finished) =>
            {
                tracing::info!(job = id, "job finished");
                self.end_job(id, JobStatus::Finished, None);
            }
            _ => {}
        }
    }

    /// Handles a failure of a running job: restarts it if the restart strategy allows, after
    /// its back-off, or fails it. Every task restarts (the `full` strategy; `region` and
    /// `taskmanager` restart everything too until their restart sets land), each with a new
    /// attempt number, so nothing from the old attempts is accepted any more.
    fn fail_over(&mut self, id: u64, cause: String) {
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
        tracing::warn!(job = id, %cause, %strategy, backoff = ?backoff, restart = %job.restart.describe(), "job failing over: restarting all tasks");
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
        job.status = JobStatus::Restarting;
        job.restart_at = Some(Instant::now() + backoff);
        self.pool.release_job(id);
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

    /// Jobs whose back-off is over go back to scheduling.
    fn restart_due(&mut self) {
        let now = Instant::now();
        for (id, job) in &mut self.jobs {
            if job.restart_at.is_some_and(|at| at <= now) {
                job.restart_at = None;
                job.status = JobStatus::Created;
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
            let affected: Vec<u64> = self
                .jobs
                .iter()
                .filter(|(_, j)| !j.status.is_terminal() && j.has_live_task_on(tm))
                .map(|(id, _)| *id)
                .collect();
            for id in affected {
                self.fail_over(id, reason.clone());
            }
        }
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
