//! The JobManager: accepts TaskManagers and clients, schedules jobs onto slots, deploys and
//! tracks tasks, and watches TaskManagers through heartbeats.
//!
//! All state lives in one actor task fed by connection tasks through a channel, so every
//! decision happens in one deterministic order (the simulator replays it bit for bit).

pub mod client;
pub mod scheduler;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{build_job, JobSpec};
use crate::config::Configuration;
use crate::graph::{
    default_slot_sharing_groups, ExecutionAttemptId, ExecutionGraph, ExecutionState, JobGraph,
};
use crate::rpc::handshake::accept_handshake;
use crate::rpc::{
    credentials, framed, ClientToJm, JmToClient, JmToTm, JobStatus, JobStatusReport, PeerRole,
    RpcError, TmToJm,
};
use crate::taskmanager::InputLocation;
use crate::util::AbortOnDrop;
use scheduler::{FirstFit, PlacementStrategy, SlotPool};

type Outbox<T> = mpsc::UnboundedSender<T>;

enum Event {
    TmRegistered {
        name: String,
        slots: u32,
        data_addr: String,
        out: Outbox<JmToTm>,
        reply: tokio::sync::oneshot::Sender<u64>,
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
        config: crate::config::Configuration,
        out: Outbox<JmToClient>,
    },
}

struct TmEntry {
    name: String,
    data_addr: String,
    out: Outbox<JmToTm>,
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
    /// Slot-sharing group index -> TaskManager instance.
    placement: BTreeMap<ExecutionAttemptId, u64>,
}

pub struct JobManager {
    config: Configuration,
    tms: BTreeMap<u64, TmEntry>,
    jobs: BTreeMap<u64, JobEntry>,
    pool: SlotPool,
    placement: Box<dyn PlacementStrategy>,
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
        tokio::select! {
            biased;
            Some(event) = rx.recv() => jm.handle(event),
            _ = heartbeat.tick() => jm.heartbeat(),
        }
    }
}

async fn accept_loop(listener: TcpListener, config: Configuration, events: Outbox<Event>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (config, events) = (config.clone(), events.clone());
                tokio::spawn(async move {
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

/// Authenticates a peer, then relays its messages to the actor and the actor's to it.
async fn serve_connection(
    stream: TcpStream,
    config: Configuration,
    events: Outbox<Event>,
) -> Result<(), RpcError> {
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = framed(stream, config.max_frame_size());
    let roles = [PeerRole::TaskManager, PeerRole::Client];
    let hello = accept_handshake(
        &mut reader,
        &mut writer,
        &credentials(&config),
        &roles,
        Duration::from_secs(10),
    )
    .await?;
    match hello.role {
        PeerRole::TaskManager => {
            let Some(TmToJm::Register {
                name,
                slots,
                data_addr,
                ..
            }) = reader.recv().await?
            else {
                return Err(RpcError::Malformed("expected Register".into()));
            };
            let (out, mut out_rx) = mpsc::unbounded_channel();
            let (reply, id) = tokio::sync::oneshot::channel();
            let _ = events.send(Event::TmRegistered {
                name,
                slots,
                data_addr,
                out,
                reply,
            });
            let tm = id.await.map_err(|_| RpcError::Closed)?;
            tokio::spawn(async move {
                while let Some(msg) = out_rx.recv().await {
                    if writer.send(&msg).await.is_err() {
                        break;
                    }
                }
            });
            let reason = loop {
                match reader.recv::<TmToJm>().await {
                    Ok(Some(msg)) => {
                        let _ = events.send(Event::TmMessage { tm, msg });
                    }
                    Ok(None) => break "connection closed".to_string(),
                    Err(e) => break format!("connection error: {e}"),
                }
            };
            let _ = events.send(Event::TmDisconnected { tm, reason });
            Ok(())
        }
        _ => {
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
    }
}

impl JobManager {
    fn new(config: Configuration) -> Self {
        JobManager {
            config,
            tms: BTreeMap::new(),
            jobs: BTreeMap::new(),
            pool: SlotPool::default(),
            placement: Box::new(FirstFit),
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
                reply,
            } => {
                let tm = self.next_tm;
                self.next_tm += 1;
                tracing::info!(%name, instance = tm, slots, "taskmanager registered");
                let _ = out.send(JmToTm::Registered { instance: tm });
                self.tms.insert(
                    tm,
                    TmEntry {
                        name,
                        data_addr,
                        out,
                        last_reply: Instant::now(),
                        rpc_failures: 0,
                    },
                );
                self.pool.add_taskmanager(tm, slots);
                let _ = reply.send(tm);
                self.schedule_waiting();
            }
            Event::TmMessage { tm, msg } => self.on_tm_message(tm, msg),
            Event::TmDisconnected { tm, reason } => self.lose_taskmanager(tm, &reason),
            Event::Submit { spec, config, out } => self.submit(spec, config, out),
        }
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
                    if let Some(j) = self.jobs.get_mut(&job) {
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
            } => self.on_task_state(job, attempt, state, records_in, error),
            TmToJm::Register { .. } => tracing::warn!(tm, "duplicate registration ignored"),
        }
    }

    fn submit(&mut self, spec: JobSpec, job_config: Configuration, out: Outbox<JmToClient>) {
        let mut config = self.config.clone();
        for (key, _) in job_config.effective() {
            if let Some(v) = job_config.get_raw(key) {
                let _ = config.set(key, v);
            }
        }
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
        let groups = default_slot_sharing_groups(&job.eg.job);
        let Some(offers) = self.placement.place(&groups, &self.pool.free()) else {
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
                let ev = job
                    .eg
                    .get_mut(vertex, subtask)
                    .expect("member of the graph");
                ev.state = ExecutionState::Scheduled;
                ev.location = self.tms.get(&offer.tm).map(|t| t.name.clone());
                job.placement.insert(ev.attempt_id(), offer.tm);
            }
        }
        job.status = JobStatus::Running;
        self.deploy_all(id);
        self.broadcast_status(id);
    }

    fn deploy_all(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let graph: Arc<JobGraph> = job.eg.job.clone();
        for ev in job.eg.all_mut() {
            ev.state = ExecutionState::Deploying;
        }
        for vertex in &graph.vertices {
            for subtask in 0..vertex.parallelism {
                let attempt = job
                    .eg
                    .get(vertex.id, subtask)
                    .expect("subtask")
                    .attempt_id();
                let tm = job.placement[&attempt];
                let inputs = graph
                    .input_channels(vertex.id, subtask)
                    .into_iter()
                    .map(|ch| {
                        let producer_vertex = graph.edge(ch.edge).source;
                        let producer = job
                            .eg
                            .get(producer_vertex, ch.producer_subtask)
                            .expect("producer")
                            .attempt_id();
                        let producer_tm = job.placement[&producer];
                        let data_addr =
                            (producer_tm != tm).then(|| self.tms[&producer_tm].data_addr.clone());
                        InputLocation {
                            producer,
                            edge: ch.edge,
                            subpartition: ch.subpartition,
                            data_addr,
                        }
                    })
                    .collect();
                let msg = JmToTm::DeployTask {
                    job: id,
                    spec: job.spec.clone(),
                    config: job.config.clone(),
                    attempt,
                    inputs,
                };
                let _ = self.tms[&tm].out.send(msg);
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
        match state {
            ExecutionState::Failed => {
                let reason = format!("task {attempt} failed: {}", error.unwrap_or_default());
                self.fail_job(id, reason);
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

    /// Fails a job: cancels its remaining tasks. (Failover strategies restart instead.)
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
        for ev in job.eg.all_mut() {
            if !ev.state.is_terminal() {
                ev.state = ExecutionState::Canceled;
                let attempt = ev.attempt_id();
                if let Some(tm) = job.placement.get(&attempt).and_then(|tm| self.tms.get(tm)) {
                    let _ = tm.out.send(JmToTm::CancelTask { job: id, attempt });
                }
            }
        }
        for tm in self.tms.values() {
            let _ = tm.out.send(JmToTm::ReleaseJob { job: id });
        }
        self.pool.release_job(id);
        self.broadcast_status(id);
        self.schedule_waiting();
    }

    fn lose_taskmanager(&mut self, tm: u64, reason: &str) {
        let Some(entry) = self.tms.remove(&tm) else {
            return;
        };
        tracing::warn!(tm = %entry.name, instance = tm, %reason, "taskmanager lost");
        self.pool.remove_taskmanager(tm);
        let affected: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| !j.status.is_terminal() && j.placement.values().any(|t| *t == tm))
            .map(|(id, _)| *id)
            .collect();
        for id in affected {
            self.fail_job(id, format!("TaskManager {} lost: {reason}", entry.name));
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
        for (id, reason) in lost {
            self.lose_taskmanager(id, &reason);
        }
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
        let sum = |pick: &dyn Fn(&crate::graph::JobVertex) -> bool| -> u64 {
            job.eg
                .all()
                .filter(|ev| pick(graph.vertex(ev.vertex)))
                .map(|ev| job.records.get(&ev.attempt_id()).copied().unwrap_or(0))
                .sum()
        };
        let mut per_tm: BTreeMap<String, u32> = BTreeMap::new();
        for ev in job.eg.all() {
            if let Some(loc) = &ev.location {
                *per_tm.entry(loc.clone()).or_default() += 1;
            }
        }
        Some(JobStatusReport {
            job: id,
            status: job.status,
            records_in: sum(&|v| v.is_source),
            records_out: sum(&|v| v.is_sink),
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
