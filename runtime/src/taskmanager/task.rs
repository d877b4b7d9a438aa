//! One task: a subtask's operator chain, its input gate and its result partitions, and the loop
//! that drives them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::TaskServices;
use crate::api::operator::{ChainEvent, OperatorContext, TaskWaits};
use crate::api::stream::{AnyBox, NodeKind};
use crate::config::Configuration;
use crate::config::FailoverStrategy;
use crate::connectors::source::{SourceDriver, SourceStatus};
use crate::error::JobError;
use crate::events::{ClusterEvent, Events};
use crate::graph::{EdgeId, ExecutionAttemptId, JobGraph};
use crate::network::decoder::{DecodeError, RecordDecoder};
use crate::network::writer::{Outbox, PartitionTarget};
use crate::network::{
    GateItem, InputChannel, InputGate, NetBuffer, PartitionRegistry, StreamEvent, SubpartitionKey,
};
use crate::state::{OperatorState, TaskRestore, TaskSnapshot, TaskStateHandle};
use crate::util::AbortOnDrop;

/// How long a consumer waits for its producer to register a partition (as remote requests do).
const PARTITION_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where one input channel of a task reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLocation {
    pub producer: ExecutionAttemptId,
    pub edge: EdgeId,
    pub subpartition: u32,
    /// The producer TaskManager's data address; `None` when it runs on this TaskManager.
    pub data_addr: Option<String>,
}

/// Everything needed to start one execution attempt.
pub struct TaskDeployment {
    pub job_id: u64,
    pub job: Arc<JobGraph>,
    pub attempt: ExecutionAttemptId,
    /// One per input channel, in gate order (`JobGraph::input_channels`).
    pub inputs: Vec<InputLocation>,
    pub config: Arc<Configuration>,
    /// The checkpointed state this attempt starts from, if the job restored one.
    pub restore: Option<TaskRestore>,
    /// Subpartitions (edge, index) whose consumer has finished: written to nobody.
    pub finished_consumers: Vec<(EdgeId, u32)>,
}

/// What the TaskManager tells a running task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskControl {
    /// Sources: take checkpoint `n` now and send its barrier downstream.
    TriggerCheckpoint(u64),
    /// Checkpoint `n` completed: transactional sinks commit.
    CheckpointComplete(u64),
    /// Input channel `index` now reads from `location` (its producer was replaced).
    UpdateInput {
        index: usize,
        location: InputLocation,
    },
}

/// A running task's line to its TaskManager: control messages in, lifecycle and checkpoint
/// acknowledgements out.
pub struct TaskLink {
    pub control: mpsc::UnboundedReceiver<TaskControl>,
    /// Called once the task's inputs are connected.
    pub on_running: Box<dyn FnOnce() + Send>,
    /// Called with the task's part of checkpoint `n` once its barrier passed the whole chain.
    pub on_checkpoint: Box<dyn Fn(u64, TaskSnapshot) + Send + Sync>,
}

impl TaskDeployment {
    /// Checks a deployment that arrived from the network against the job graph, so nothing
    /// below indexes the graph with a value the graph does not have.
    pub fn validate(&self) -> Result<(), String> {
        let a = self.attempt;
        let vertex = self
            .job
            .vertices
            .get(a.vertex.0 as usize)
            .ok_or_else(|| format!("no vertex {}", a.vertex.0))?;
        if a.subtask >= vertex.parallelism {
            return Err(format!(
                "subtask {} of {} (parallelism {})",
                a.subtask, vertex.name, vertex.parallelism
            ));
        }
        let expected = self.job.input_channels(a.vertex, a.subtask);
        if expected.len() != self.inputs.len() {
            return Err(format!(
                "{} input channels given, the graph has {}",
                self.inputs.len(),
                expected.len()
            ));
        }
        for (spec, input) in expected.iter().zip(&self.inputs) {
            let source = self.job.edge(spec.edge).source;
            let matches = input.edge == spec.edge
                && input.subpartition == spec.subpartition
                && input.producer.vertex == source
                && input.producer.subtask == spec.producer_subtask;
            if !matches {
                return Err(format!(
                    "input {input:?} does not match the graph's channel {spec:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Records through a task, read by heartbeats and progress reports.
#[derive(Debug, Default)]
pub struct TaskMetrics {
    pub records_in: AtomicU64,
    /// Records dropped because their consumer was away (`taskmanager` failover).
    pub records_dropped: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("invalid deployment: {0}")]
    InvalidDeployment(String),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("input from {producer} was lost before it finished")]
    UpstreamLost { producer: ExecutionAttemptId },
    #[error("could not connect input from {producer}: {reason}")]
    Connect {
        producer: ExecutionAttemptId,
        reason: String,
    },
    #[error("a consumer of this task's output went away")]
    DownstreamGone,
}

/// One subpartition this task writes: its queue, and whether its consumer is away.
struct Subpartition {
    key: SubpartitionKey,
    tx: mpsc::Sender<NetBuffer>,
    /// The consumer went away (its TaskManager died): buffers are dropped, not queued, until
    /// its replacement claims the fresh queue `tx` now is.
    away: bool,
    /// Records dropped since the consumer went away.
    dropped: u64,
}

/// The sender side of every subpartition this task writes, by output then subpartition.
struct Outputs {
    outbox: Outbox,
    queues: Vec<Vec<Subpartition>>,
    registry: PartitionRegistry,
    capacity: usize,
    /// `taskmanager` failover: a consumer that goes away is waited for, not a failure.
    survive_consumer_loss: bool,
    metrics: Arc<TaskMetrics>,
    events: Events,
}

impl Outputs {
    /// Hands every sealed buffer to its subpartition queue, waiting for space: this await is
    /// where back-pressure stops a producer.
    async fn drain(&mut self) -> Result<(), TaskError> {
        while let Some((output, sub, buf)) = self.outbox.pop() {
            let queue = &mut self.queues[output][sub as usize];
            if queue.away {
                if self.registry.is_unclaimed(&queue.key) {
                    discard(queue, buf, &self.metrics);
                    continue;
                }
                self.events.emit(ClusterEvent::RecordsDropped {
                    producer: queue.key.producer,
                    subpartition: queue.key.index,
                    records: queue.dropped,
                });
                queue.away = false;
                queue.dropped = 0;
            }
            if let Err(mpsc::error::SendError(buf)) = queue.tx.send(buf).await {
                if !self.survive_consumer_loss {
                    return Err(TaskError::DownstreamGone);
                }
                // A fresh queue for the consumer's replacement to claim; meanwhile, drop.
                self.events.emit(ClusterEvent::ConsumerGone {
                    producer: queue.key.producer,
                    subpartition: queue.key.index,
                });
                queue.tx = self.registry.create(queue.key, self.capacity);
                queue.away = true;
                discard(queue, buf, &self.metrics);
            }
        }
        Ok(())
    }
}

/// Drops a buffer for an absent consumer, counting its records. The end of the partition and
/// checkpoint barriers are kept: the replacement must still learn that the input ended, and a
/// barrier it never got would hold its alignment, and with it the channel of its own restored
/// producer, until a newer checkpoint (found by a swarm seed whose sources stalled on the
/// log, so that the first buffer to find the consumer gone was a barrier). The queue holds
/// only such events while away, and a barrier never takes its last slot, which is the end's.
fn discard(queue: &mut Subpartition, buf: NetBuffer, metrics: &TaskMetrics) {
    match buf {
        NetBuffer::Data(data) => {
            queue.dropped += data.records as u64;
            metrics
                .records_dropped
                .fetch_add(data.records as u64, Ordering::Relaxed);
        }
        NetBuffer::Event(StreamEvent::EndOfPartition) => {
            let _ = queue.tx.try_send(buf);
        }
        NetBuffer::Event(StreamEvent::Barrier(_)) if queue.tx.capacity() > 1 => {
            let _ = queue.tx.try_send(buf);
        }
        NetBuffer::Event(StreamEvent::Barrier(_)) => {}
        NetBuffer::Event(StreamEvent::Watermark(_)) => {}
    }
}

/// Paces records to a rate: each batch is due `n / rate` after the later of the previous due
/// time and now, so time spent idle or back-pressured is not saved up as a burst.
struct Pacer {
    rate: Option<f64>,
    next: Instant,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Self {
        Pacer {
            rate: rate.filter(|r| r.is_finite() && *r > 0.0),
            next: Instant::now(),
        }
    }

    /// Waits until `n` more records may pass.
    async fn pass(&mut self, n: u64) {
        let Some(rate) = self.rate else { return };
        // At most an hour per batch: a tiny rate must not overflow the clock.
        let step = Duration::try_from_secs_f64(n as f64 / rate)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(3600));
        self.next = self.next.max(Instant::now()) + step;
        tokio::time::sleep_until(self.next).await;
    }
}

enum Head {
    Source(Box<dyn SourceDriver>),
    Network(Box<dyn RecordDecoder>),
}

/// Runs one task to completion.
pub async fn run_task(
    mut d: TaskDeployment,
    services: TaskServices,
    metrics: Arc<TaskMetrics>,
    link: TaskLink,
) -> Result<(), TaskError> {
    d.validate().map_err(TaskError::InvalidDeployment)?;
    let overhead = d.config.task_overhead_bytes();
    services.memory.add_task(overhead);
    let _release = ReleaseOnDrop(Some(Box::new({
        let memory = services.memory.clone();
        move || memory.sub_task(overhead)
    })));
    let state = TaskStateHandle::new(d.restore.take());
    let waits = TaskWaits::default();
    let (head, outputs) = build_chain(&d, &services, &state, &waits, &metrics)?;
    // Flink's 0 means "flush after every record"; a 1 ms timer is the closest a timer gets.
    let buffer_timeout = d.config.buffer_timeout().max(Duration::from_millis(1));
    let checkpoints = Checkpoints {
        state,
        waits,
        due: Vec::new(),
        control: link.control,
        on_checkpoint: link.on_checkpoint,
    };
    match head {
        Head::Source(driver) => {
            (link.on_running)();
            let source_node = d.job.vertex(d.attempt.vertex).nodes[0].0;
            let source = SourceTask {
                outputs,
                metrics: &metrics,
                buffer_timeout,
                checkpoints,
                source_node,
            };
            source.run(driver).await
        }
        Head::Network(decoder) => {
            let connector = Connector::new(&d, &services);
            let survive_producer_loss =
                d.config.failover_strategy() == FailoverStrategy::TaskManager;
            // Under `taskmanager` failover the task reads each input as soon as it is
            // connected, so one unreachable producer (partitioned) does not hold back the
            // others' channels: their producers would otherwise drop, or block, meanwhile.
            // Otherwise all inputs connect first, so no barrier is aligned without them.
            // It reports RUNNING (so checkpoints may start) only once every input has
            // connected: a barrier must not align without an input that is still to come.
            let (gate, on_running) = match survive_producer_loss {
                true => (
                    InputGate::new(
                        (0..d.inputs.len())
                            .map(|_| InputChannel::paused())
                            .collect(),
                    ),
                    Some(link.on_running),
                ),
                false => {
                    let gate = connector.connect_all(&d.inputs).await?;
                    (link.on_running)();
                    (gate, None)
                }
            };
            let rate_limit = d.job.vertex(d.attempt.vertex).rate_limit;
            let (reconnected_tx, reconnected) = mpsc::unbounded_channel();
            let mut consumer = Consumer {
                job: d.job.clone(),
                consumer: d.attempt,
                inputs: d.inputs.clone(),
                connector,
                reconnected_tx,
                reconnected,
                reconnecting: Vec::new(),
                generations: vec![0; d.inputs.len()],
                lost: BTreeSet::new(),
                unconnected: (0..d.inputs.len()).collect(),
                on_running,
                survive_producer_loss,
                outputs,
                metrics: &metrics,
                buffer_timeout,
                rate_limit,
                checkpoints,
            };
            if survive_producer_loss {
                for (index, input) in d.inputs.iter().enumerate() {
                    consumer.connect(index, input.clone());
                }
                consumer.report_running_once_connected();
            }
            consumer.run(decoder, gate).await
        }
    }
}

/// A task's side of checkpointing: control messages from the TaskManager, the state its
/// operators record, and the acknowledgement.
struct Checkpoints {
    state: TaskStateHandle,
    /// What the operators left to finish (a remote sink's writes): a checkpoint is
    /// acknowledged only once it is done.
    waits: TaskWaits,
    /// Checkpoints whose state is taken, waiting for `waits` before their acknowledgement.
    due: Vec<(u64, TaskSnapshot)>,
    control: mpsc::UnboundedReceiver<TaskControl>,
    on_checkpoint: Box<dyn Fn(u64, TaskSnapshot) + Send + Sync>,
}

impl Checkpoints {
    /// Acknowledges checkpoint `id` with what the operators recorded as its barrier passed,
    /// at once or, if operators left work to finish, at the next `settle`. If an operator
    /// could not record its state, nothing is acknowledged: the checkpoint never completes
    /// (the coordinator times it out) rather than restore without that state.
    fn acknowledge(&mut self, id: u64) {
        match self.state.take() {
            Ok(snapshot) => {
                tracing::debug!(
                    checkpoint = id,
                    bytes = snapshot.bytes(),
                    "task state snapshotted"
                );
                if self.waits.is_empty() && self.due.is_empty() {
                    (self.on_checkpoint)(id, snapshot);
                } else {
                    self.due.push((id, snapshot));
                }
            }
            Err(reason) => {
                tracing::error!(checkpoint = id, %reason, "checkpoint not acknowledged: state snapshot failed");
            }
        }
    }

    /// Waits for the operators' outstanding work, then sends the acknowledgements it held.
    async fn settle(&mut self) {
        self.waits.settle().await;
        for (id, snapshot) in self.due.drain(..) {
            (self.on_checkpoint)(id, snapshot);
        }
    }
}

struct ReleaseOnDrop(Option<Box<dyn FnOnce() + Send>>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f()
        }
    }
}

/// Builds the operator chain back to front: writers for the tail's outputs, then each
/// operator around its downstream, then the head (a source driver or a network decoder).
fn build_chain(
    d: &TaskDeployment,
    services: &TaskServices,
    state: &TaskStateHandle,
    waits: &TaskWaits,
    metrics: &Arc<TaskMetrics>,
) -> Result<(Head, Outputs), TaskError> {
    let job = &d.job;
    let vertex = job.vertex(d.attempt.vertex);
    let (writers, outputs) = create_outputs(d, services, state, metrics)?;
    let tail = &job.logical.nodes[vertex
        .nodes
        .last()
        .ok_or_else(|| internal("empty vertex"))?
        .0 as usize];
    let mut down: Option<AnyBox> = if writers.is_empty() {
        None
    } else {
        Some((tail.tee)(writers)?)
    };
    for (pos, node_id) in vertex.nodes.iter().enumerate().rev() {
        let node = &job.logical.nodes[node_id.0 as usize];
        let ctx = OperatorContext {
            job: d.job_id,
            attempt: d.attempt,
            parallelism: vertex.parallelism,
            max_parallelism: job.max_parallelism,
            operator_name: node.name.clone(),
            node: node_id.0,
            state: state.clone(),
            waits: waits.clone(),
            services: services.clone(),
        };
        match &node.kind {
            NodeKind::Sink(make) => down = Some(make(&ctx)?),
            NodeKind::Operator(make) => {
                let next = down
                    .take()
                    .ok_or_else(|| internal("operator without downstream"))?;
                down = Some(make(next, &ctx)?);
            }
            NodeKind::Source(make) if pos == 0 => {
                let next = down
                    .take()
                    .ok_or_else(|| internal("source without downstream"))?;
                return Ok((Head::Source(make(next, &ctx)?), outputs));
            }
            NodeKind::Source(_) => return Err(internal("source inside a chain").into()),
        }
    }
    let head = &job.logical.nodes[vertex.nodes[0].0 as usize];
    let decoder = head
        .decoder
        .as_ref()
        .ok_or_else(|| internal("chain head has no decoder"))?;
    let chain = down.ok_or_else(|| internal("empty chain"))?;
    Ok((Head::Network(decoder(chain)?), outputs))
}

fn internal(what: &str) -> JobError {
    JobError::Internal(what.to_string())
}

/// Registers this task's subpartition queues and creates a record writer per output edge.
fn create_outputs(
    d: &TaskDeployment,
    services: &TaskServices,
    state: &TaskStateHandle,
    metrics: &Arc<TaskMetrics>,
) -> Result<(Vec<AnyBox>, Outputs), TaskError> {
    let job = &d.job;
    let outbox = Outbox::default();
    let capacity = d.config.buffers_per_channel().saturating_add(1) as usize;
    let is_source = job.vertex(d.attempt.vertex).is_source;
    let (mut writers, mut queues) = (Vec::new(), Vec::new());
    for (output, &edge) in job.vertex(d.attempt.vertex).outputs.iter().enumerate() {
        let subpartitions = job.subpartitions(edge);
        let senders = (0..subpartitions)
            .map(|index| {
                let key = SubpartitionKey {
                    job: d.job_id,
                    producer: d.attempt,
                    edge,
                    index,
                };
                Subpartition {
                    key,
                    tx: services.registry.create(key, capacity),
                    away: d.finished_consumers.contains(&(edge, index)),
                    dropped: 0,
                }
            })
            .collect();
        queues.push(senders);
        let first_seq = first_seq(
            is_source,
            d.attempt.attempt,
            state.restored_output(output),
            subpartitions,
        );
        let e = job.edge(edge);
        let (target_node, input_idx) = e.logical;
        let make_writer = &job.logical.nodes[target_node.0 as usize].inputs[input_idx].writer;
        writers.push(make_writer(PartitionTarget {
            partitioner: e.partitioner,
            producer_subtask: d.attempt.subtask,
            subpartitions,
            max_parallelism: job.max_parallelism,
            buffer_size: d.config.buffer_size(),
            output,
            first_seq,
            outbox: outbox.clone(),
            memory: services.memory.clone(),
            state: Some(state.clone()),
        })?);
    }
    let outputs = Outputs {
        outbox,
        queues,
        registry: services.registry.clone(),
        capacity,
        survive_consumer_loss: d.config.failover_strategy() == FailoverStrategy::TaskManager,
        metrics: metrics.clone(),
        events: services.events.clone(),
    };
    Ok((writers, outputs))
}

/// Where an output's record numbering starts. A source replays its log from a checkpoint
/// exactly as it read it the first time, so it numbers the replay as before: consumers that
/// kept running drop what they already have. Any other restarted task produces new records,
/// numbered past anything its predecessors can have produced (2^40 per attempt).
fn first_seq(
    is_source: bool,
    attempt: u32,
    restored: Option<&Vec<u64>>,
    subpartitions: u32,
) -> Vec<u64> {
    match restored {
        Some(seq) if is_source && seq.len() == subpartitions as usize => seq.clone(),
        _ if is_source => vec![0; subpartitions as usize],
        _ => vec![(attempt as u64).saturating_mul(1 << 40); subpartitions as usize],
    }
}

/// Opens input channels: local ones straight from the partition registry, remote ones
/// through the data client with their initial credit.
#[derive(Clone)]
struct Connector {
    job: u64,
    consumer: ExecutionAttemptId,
    services: TaskServices,
    credit: u32,
}

impl Connector {
    fn new(d: &TaskDeployment, services: &TaskServices) -> Self {
        let exclusive = d.config.buffers_per_channel();
        let floating = d.config.floating_buffers_per_gate() / (d.inputs.len().max(1) as u32);
        Connector {
            job: d.job_id,
            consumer: d.attempt,
            services: services.clone(),
            credit: exclusive.saturating_add(floating),
        }
    }

    async fn connect(&self, input: &InputLocation) -> Result<InputChannel, TaskError> {
        let key = SubpartitionKey {
            job: self.job,
            producer: input.producer,
            edge: input.edge,
            index: input.subpartition,
        };
        let fail = |reason: String| TaskError::Connect {
            producer: input.producer,
            reason,
        };
        match &input.data_addr {
            None => {
                let registry = &self.services.registry;
                let claimed =
                    tokio::time::timeout(PARTITION_REQUEST_TIMEOUT, registry.take(key)).await;
                let rx = claimed
                    .ok()
                    .flatten()
                    .ok_or_else(|| fail("local partition not found".into()))?;
                Ok(InputChannel::local(rx))
            }
            Some(addr) => {
                let (rx, credit) = self
                    .services
                    .client
                    .request(addr, key, self.consumer, self.credit)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Ok(InputChannel::remote(rx, credit))
            }
        }
    }

    /// Opens every input channel of a deployment, in gate order.
    async fn connect_all(&self, inputs: &[InputLocation]) -> Result<InputGate, TaskError> {
        let mut channels = Vec::with_capacity(inputs.len());
        for input in inputs {
            channels.push(self.connect(input).await?);
        }
        Ok(InputGate::new(channels))
    }
}

/// Records per source poll: small when paced, so pacing stays smooth.
fn batch_size(rate: Option<f64>) -> usize {
    match rate {
        Some(r) if r.is_finite() => ((r / 50.0) as usize).clamp(1, 1024),
        _ => 1024,
    }
}

/// The loop of a source task.
struct SourceTask<'a> {
    outputs: Outputs,
    metrics: &'a TaskMetrics,
    buffer_timeout: Duration,
    checkpoints: Checkpoints,
    /// The source operator's node: its reader's offsets are checkpointed under it.
    source_node: u32,
}

impl SourceTask<'_> {
    /// A reader with nothing ready: sleep until it signals, a control message comes (a
    /// checkpoint trigger is answered at once, not after the wait), or a buffer timeout
    /// passes, so buffered output is still flushed.
    async fn wait_for_input(
        &mut self,
        wakeup: Option<Arc<tokio::sync::Notify>>,
    ) -> Option<TaskControl> {
        let ready = async {
            match wakeup {
                Some(ready) => ready.notified().await,
                // A reader that cannot signal: poll again soon (never spin without time
                // passing).
                None => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        tokio::select! {
            biased;
            // A closed control channel disables this branch rather than ending the wait.
            Some(control) = self.checkpoints.control.recv() => Some(control),
            _ = ready => None,
            _ = tokio::time::sleep(self.buffer_timeout) => None,
        }
    }

    async fn run(mut self, mut driver: Box<dyn SourceDriver>) -> Result<(), TaskError> {
        let mut pacer = Pacer::new(driver.rate());
        let (mut last_flush, mut watermark) = (Instant::now(), 0u64);
        loop {
            // Control first: a barrier goes out between two batches, never inside one.
            while let Ok(control) = self.checkpoints.control.try_recv() {
                self.handle(&mut *driver, control).await?;
            }
            match driver.poll(batch_size(driver.rate()))? {
                SourceStatus::Finished => break,
                SourceStatus::Pending => {
                    if let Some(control) = self.wait_for_input(driver.wakeup()).await {
                        self.handle(&mut *driver, control).await?;
                    }
                }
                SourceStatus::Emitted(n) => {
                    self.metrics
                        .records_in
                        .fetch_add(n as u64, Ordering::Relaxed);
                    pacer.pass(n as u64).await;
                }
            }
            if last_flush.elapsed() >= self.buffer_timeout {
                last_flush = Instant::now();
                emit_watermark(&mut *driver, &mut watermark);
                driver.event(ChainEvent::Flush);
            }
            self.outputs.drain().await?;
            self.checkpoints.settle().await;
            // Sources never wait on input: yield so other tasks on this thread (and, under the
            // simulator, every other node) get to run.
            tokio::task::yield_now().await;
        }
        emit_watermark(&mut *driver, &mut watermark);
        driver.event(ChainEvent::Finish);
        self.outputs.drain().await?;
        // What the sinks wrote at the end must be stored before the task reports FINISHED.
        self.checkpoints.settle().await;
        Ok(())
    }

    /// A control message, and the output it caused (a barrier) sent on.
    async fn handle(
        &mut self,
        driver: &mut dyn SourceDriver,
        control: TaskControl,
    ) -> Result<(), TaskError> {
        self.control(driver, control)?;
        self.outputs.drain().await?;
        self.checkpoints.settle().await;
        Ok(())
    }

    fn control(
        &mut self,
        driver: &mut dyn SourceDriver,
        control: TaskControl,
    ) -> Result<(), TaskError> {
        match control {
            TaskControl::TriggerCheckpoint(id) => {
                // The reader's position first: every record it emitted so far is before the
                // barrier, so a restore reads on from exactly here.
                let offsets = driver.snapshot().map_err(JobError::State)?;
                let state = &self.checkpoints.state;
                state.put(
                    self.source_node,
                    OperatorState {
                        keyed: Default::default(),
                        operator: offsets,
                    },
                );
                driver.event(ChainEvent::Barrier(id));
                self.checkpoints.acknowledge(id);
            }
            TaskControl::CheckpointComplete(id) => driver.event(ChainEvent::CheckpointComplete(id)),
            TaskControl::UpdateInput { .. } => {} // sources have no inputs
        }
        Ok(())
    }
}

fn emit_watermark(driver: &mut dyn SourceDriver, current: &mut u64) {
    if let Some(wm) = driver.watermark().filter(|wm| *wm > *current) {
        *current = wm;
        driver.event(ChainEvent::Watermark(wm));
    }
}

/// A channel connected anew, for the consumer loop to swap in: (index, generation, channel).
type Reconnected = (usize, u64, Result<InputChannel, TaskError>);

/// The loop of a task fed by the network.
struct Consumer<'a> {
    job: Arc<JobGraph>,
    consumer: ExecutionAttemptId,
    inputs: Vec<InputLocation>,
    connector: Connector,
    /// Channels connecting to a replaced producer deliver here; the connecting tasks die with
    /// the consumer.
    reconnected_tx: mpsc::UnboundedSender<Reconnected>,
    reconnected: mpsc::UnboundedReceiver<Reconnected>,
    reconnecting: Vec<AbortOnDrop<()>>,
    /// Per channel, the newest connection asked for: an older one finishing late is dropped.
    generations: Vec<u64>,
    /// Channels whose producer was lost (traced when they reconnect).
    lost: BTreeSet<usize>,
    /// Channels not connected even once yet, and the RUNNING report that waits for them.
    unconnected: BTreeSet<usize>,
    on_running: Option<Box<dyn FnOnce() + Send>>,
    /// `taskmanager` failover: a lost producer pauses its channel instead of failing the task.
    survive_producer_loss: bool,
    outputs: Outputs,
    metrics: &'a TaskMetrics,
    buffer_timeout: Duration,
    /// Records per second this task may process (a slow sink); it then stops reading, its
    /// queues fill, credits run out, and upstream tasks block: back-pressure.
    rate_limit: Option<f64>,
    checkpoints: Checkpoints,
}

impl Consumer<'_> {
    async fn run(
        mut self,
        mut decoder: Box<dyn RecordDecoder>,
        mut gate: InputGate,
    ) -> Result<(), TaskError> {
        let mut pacer = Pacer::new(self.rate_limit);
        let mut flush = tokio::time::interval(self.buffer_timeout);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // The timer first: it is ready once per timeout, so it cannot starve the
                // input, while a busy input could starve it.
                biased;
                _ = flush.tick() => decoder.event(ChainEvent::Flush),
                Some(control) = self.checkpoints.control.recv() => match control {
                    TaskControl::CheckpointComplete(id) => {
                        decoder.event(ChainEvent::CheckpointComplete(id))
                    }
                    // Only sources are triggered; others take checkpoints at barriers.
                    TaskControl::TriggerCheckpoint(_) => {}
                    TaskControl::UpdateInput { index, location } => self.reconnect(index, location),
                },
                Some((index, generation, channel)) = self.reconnected.recv() => {
                    if generation == self.generations[index] {
                        let replaced = self.lost.remove(&index);
                        if replaced {
                            self.connector.services.events.emit(ClusterEvent::InputReconnected {
                                consumer: self.consumer,
                                channel: index as u32,
                                producer: self.inputs[index].producer,
                            });
                        }
                        gate.resume(index, channel?, replaced);
                        self.unconnected.remove(&index);
                        self.report_running_once_connected();
                    }
                }
                item = gate.next() => match item {
                    GateItem::Data(_, data, skip) => {
                        let n = decoder.decode(&data.bytes, skip)?;
                        self.metrics.records_in.fetch_add(n, Ordering::Relaxed);
                        pacer.pass(n).await;
                    }
                    GateItem::Watermark(wm) => decoder.event(ChainEvent::Watermark(wm)),
                    GateItem::ChannelFinished(_) => {
                        if let Some(wm) = gate.advance_watermark().filter(|wm| *wm < u64::MAX) {
                            decoder.event(ChainEvent::Watermark(wm));
                        }
                        // The channel that ended may have been the last one a barrier waited for.
                        if let Some(id) = gate.alignment_done() {
                            self.barrier(&mut *decoder, id);
                        }
                    }
                    GateItem::Barrier(id) => self.barrier(&mut *decoder, id),
                    GateItem::End => break,
                    GateItem::ChannelLost(ch) if self.survive_producer_loss => {
                        self.connector.services.events.emit(ClusterEvent::InputPaused {
                            consumer: self.consumer,
                            channel: ch as u32,
                            producer: self.inputs[ch].producer,
                        });
                        self.lost.insert(ch);
                        gate.pause(ch);
                    }
                    GateItem::ChannelLost(ch) => {
                        return Err(TaskError::UpstreamLost { producer: self.inputs[ch].producer })
                    }
                },
            }
            self.outputs.drain().await?;
            self.checkpoints.settle().await;
        }
        decoder.event(ChainEvent::Finish);
        self.outputs.drain().await?;
        // What the sinks wrote at the end must be stored before the task reports FINISHED.
        self.checkpoints.settle().await;
        Ok(())
    }

    /// The JobManager says where input `index`'s producer runs now: connect to it in the
    /// background (the other inputs keep flowing) and swap it in when connected.
    fn reconnect(&mut self, index: usize, location: InputLocation) {
        let valid = self
            .job
            .input_channels(self.consumer.vertex, self.consumer.subtask)
            .get(index)
            .is_some_and(|spec| {
                location.edge == spec.edge
                    && location.subpartition == spec.subpartition
                    && location.producer.vertex == self.job.edge(spec.edge).source
                    && location.producer.subtask == spec.producer_subtask
            });
        if !valid {
            tracing::warn!(consumer = %self.consumer, index, ?location, "partition update does not match an input channel; ignored");
            return;
        }
        self.lost.insert(index);
        self.connect(index, location);
    }

    fn report_running_once_connected(&mut self) {
        if self.unconnected.is_empty() {
            if let Some(report) = self.on_running.take() {
                report();
            }
        }
    }

    /// Connects input `index` to `location` in the background; the loop swaps it in.
    fn connect(&mut self, index: usize, location: InputLocation) {
        self.inputs[index] = location.clone();
        self.generations[index] += 1;
        let generation = self.generations[index];
        let (connector, done) = (self.connector.clone(), self.reconnected_tx.clone());
        self.reconnecting.retain(|t| !t.0.is_finished());
        self.reconnecting.push(AbortOnDrop(tokio::spawn(async move {
            let channel = connector.connect(&location).await;
            let _ = done.send((index, generation, channel));
        })));
    }

    /// An aligned barrier: the chain snapshots as it passes (writers forward it), then the
    /// task acknowledges.
    fn barrier(&mut self, decoder: &mut dyn RecordDecoder, id: u64) {
        decoder.event(ChainEvent::Barrier(id));
        self.checkpoints.acknowledge(id);
    }
}
