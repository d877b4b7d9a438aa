//! One task: a subtask's operator chain, its input gate and its result partitions, and the loop
//! that drives them.
//!
//! This file deploys a task: it checks the deployment, builds the chain back to front with its
//! result partitions, and starts the loop its head calls for: `source_task.rs` for a source,
//! `consumer_task.rs` for a task fed by the network. Both share `checkpoints.rs` and the
//! `Pacer` here.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::checkpoints::Checkpoints;
use super::consumer_task::{Connector, Consumer};
use super::source_task::SourceTask;
use super::{InputLocation, TaskServices};
use crate::api::operator::{OperatorContext, TaskWaits};
use crate::api::stream::{AnyBox, NodeKind};
use crate::buggify::{self, Point};
use crate::config::Configuration;
use crate::config::FailoverStrategy;
use crate::connectors::source::SourceDriver;
use crate::connectors::write_grant::WriteGrant;
use crate::error::JobError;
use crate::events::{ClusterEvent, Events};
use crate::graph::{EdgeId, ExecutionAttemptId, JobGraph};
use crate::ids::CheckpointId;
use crate::ids::JobId;
use crate::network::decoder::{DecodeError, RecordDecoder};
use crate::network::writer::PartitionTarget;
use crate::network::{
    DownstreamGone, InputChannel, InputGate, ResultPartitions, SubpartitionKey,
    SubpartitionListener,
};
use crate::state::{TaskRestore, TaskSnapshot, TaskStateHandle};

/// Everything needed to start one execution attempt.
pub struct TaskDeployment {
    /// The job the attempt belongs to.
    pub job_id: JobId,
    /// The job's graph, shared by every task of the job on this TaskManager.
    pub job: Arc<JobGraph>,
    /// The attempt to run.
    pub attempt: ExecutionAttemptId,
    /// One per input channel, in gate order (`JobGraph::input_channels`).
    pub inputs: Vec<InputLocation>,
    /// The job's configuration (the cluster's with the job's settings on top).
    pub config: Arc<Configuration>,
    /// The checkpointed state this attempt starts from, if the job restored one.
    pub restore: Option<TaskRestore>,
    /// Subpartitions (edge, index) whose consumer has finished: written to nobody.
    pub finished_consumers: Vec<(EdgeId, u32)>,
    /// The write grant of each sink in the chain, by name (`connectors::write_grant`).
    pub sink_grants: Vec<(String, WriteGrant)>,
}

/// What the TaskManager tells a running task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskControl {
    /// Sources: take checkpoint `n` now and send its barrier downstream.
    TriggerCheckpoint(CheckpointId),
    /// Checkpoint `n` completed: transactional sinks commit.
    CheckpointComplete(CheckpointId),
    /// Input channel `index` now reads from `location` (its producer was replaced).
    UpdateInput {
        /// The input channel's index, in gate order.
        index: usize,
        /// Where it reads from now.
        location: InputLocation,
        /// The new producer never sends barriers of checkpoints up to this one.
        stale_through: CheckpointId,
    },
}

/// A running task's line to its TaskManager: control messages in, lifecycle and checkpoint
/// acknowledgements out.
pub struct TaskLink {
    /// What the TaskManager tells the task while it runs.
    pub control: mpsc::UnboundedReceiver<TaskControl>,
    /// Called once the task's inputs are connected.
    pub on_running: Box<dyn FnOnce() + Send>,
    /// Called with the task's part of checkpoint `n` once its barrier passed the whole chain.
    pub on_checkpoint: Box<dyn Fn(CheckpointId, TaskSnapshot) + Send + Sync>,
}

impl TaskDeployment {
    /// The write grant of the chain's sink named `sink`; none (all zeros) if the JobManager
    /// sent none, which a store that checks grants refuses.
    fn sink_grant(&self, sink: &str) -> WriteGrant {
        self.sink_grants
            .iter()
            .find(|(name, _)| name == sink)
            .map(|(_, grant)| *grant)
            .unwrap_or_default()
    }

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
    /// Records the task received so far (a source: records it read).
    pub records_in: AtomicU64,
    /// Records dropped because their consumer was away (`taskmanager` failover).
    pub records_dropped: AtomicU64,
}

/// Why a task ended without finishing: what the TaskManager reports as its failure.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The deployment does not fit the job graph (see [`TaskDeployment::validate`]).
    #[error("invalid deployment: {0}")]
    InvalidDeployment(String),
    /// The chain failed: a source, a sink, an operator, or restoring its state.
    #[error(transparent)]
    Job(#[from] JobError),
    /// A buffer from an input channel did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An input channel's producer went away before its end of partition.
    #[error("input from {producer} was lost before it finished")]
    UpstreamLost {
        /// The producer attempt that was lost.
        producer: ExecutionAttemptId,
    },
    /// An input channel could not be connected to its producer.
    #[error("could not connect input from {producer}: {reason}")]
    Connect {
        /// The producer attempt.
        producer: ExecutionAttemptId,
        /// Why the connection failed.
        reason: String,
    },
    /// A consumer of the task's output went away, under a failover strategy that does not ride
    /// that out (all but `taskmanager`).
    #[error(transparent)]
    DownstreamGone(#[from] DownstreamGone),
}

/// Paces records to a rate, as a live stream produces them ([`Pace::Stream`]) or as a
/// processing capacity passes them ([`Pace::Capacity`]). A stream's pacer can start with a
/// backlog that passes at once: the records it accumulated while its reader was down (a
/// restored source's, since the checkpoint it restores).
pub(super) struct Pacer {
    rate: Option<f64>,
    pace: Pace,
    next: Instant,
    /// Records that may still pass without waiting.
    backlog: u64,
}

/// How a [`Pacer`] treats time its caller spent elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// A live stream's: it produces at its rate whether it is read or not, so each batch is
    /// due `n / rate` after the previous one, and a reader held up (back-pressured, paused, a
    /// slow drain) reads what accumulated meanwhile as fast as it can, then keeps to the rate.
    /// Due from the later of the previous due time and now instead, every hold-up slowed the
    /// stream for good: in the simulator a source held up a few milliseconds at its drains
    /// ran about 10% below its rate, and after a TaskManager's failover (two slot-sharing
    /// groups on one TaskManager) the recovery bench's output stayed 5% short for 14 s.
    Stream,
    /// A processing capacity's (a consumer's rate limit): each batch is due `n / rate` after
    /// the later of the previous due time and now, so time spent idle is not saved up as a
    /// burst.
    Capacity,
}

impl Pacer {
    /// A capacity of `rate` records per second (none: unpaced).
    pub(super) fn capacity(rate: Option<f64>) -> Self {
        Pacer {
            pace: Pace::Capacity,
            ..Pacer::with_backlog(rate, Duration::ZERO)
        }
    }

    /// A stream of `rate` records per second whose first `behind * rate` records pass at once:
    /// a paced source restored from
    /// a checkpoint taken `behind` ago reads what its stream produced meanwhile as fast as it
    /// can, then keeps to its rate. Without that it would stay `behind` late for good, and
    /// while it replays, consumers that already had those records skip them: its output
    /// rate stays short for that long after every restore.
    pub(super) fn with_backlog(rate: Option<f64>, behind: Duration) -> Self {
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
        let backlog = rate.map_or(0.0, |r| (behind.as_secs_f64() * r).min(u64::MAX as f64));
        Pacer {
            rate,
            pace: Pace::Stream,
            next: Instant::now(),
            backlog: backlog as u64,
        }
    }

    /// Waits until `n` more records may pass.
    pub(super) async fn pass(&mut self, n: u64) {
        let Some(rate) = self.rate else { return };
        let made_up = n.min(self.backlog);
        self.backlog -= made_up;
        let n = n - made_up;
        if n == 0 {
            // A capacity starts its count when the backlog is through. A stream's schedule
            // runs on: what it produced while its reader took the backlog (or read nothing)
            // is read next.
            if self.pace == Pace::Capacity {
                self.next = Instant::now();
            }
            return;
        }
        // At most an hour per batch: a tiny rate must not overflow the clock.
        let step = Duration::try_from_secs_f64(n as f64 / rate)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(3600));
        let from = match self.pace {
            Pace::Stream => self.next,
            Pace::Capacity => self.next.max(Instant::now()),
        };
        self.next = from + step;
        // A stream's reader catching up passes without a timer (the simulator's timers wake
        // no sooner than their next tick, even when already due).
        if self.next > Instant::now() {
            tokio::time::sleep_until(self.next).await;
        }
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
    if d.restore.is_some() {
        // Buggify: fetching the restored state takes its time.
        buggify::sleep(Point::RestoreSlow).await;
    }
    let overhead = d.config.task_overhead_bytes();
    services.operators.memory.add_task(overhead);
    let _release = ReleaseOnDrop(Some(Box::new({
        let memory = services.operators.memory.clone();
        move || memory.sub_task(overhead)
    })));
    let behind = d.restore.as_ref().map_or(Duration::ZERO, |r| r.input_age);
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
        on_checkpoint: link.on_checkpoint.into(),
        late: Vec::new(),
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
                behind,
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
                stale_through: vec![CheckpointId(0); d.inputs.len()],
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
) -> Result<(Head, ResultPartitions), TaskError> {
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
            sink_grant: d.sink_grant(&node.name),
            node: node_id.0,
            state: state.clone(),
            waits: waits.clone(),
            services: services.operators.clone(),
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
) -> Result<(Vec<AnyBox>, ResultPartitions), TaskError> {
    let job = &d.job;
    let capacity = d.config.buffers_per_channel().saturating_add(1) as usize;
    let mut outputs = ResultPartitions::new(
        services.registry.clone(),
        capacity,
        d.config.failover_strategy() == FailoverStrategy::TaskManager,
        Box::new(ProducerEvents {
            events: services.events.clone(),
            metrics: metrics.clone(),
        }),
    );
    let outbox = outputs.outbox();
    let is_source = job.vertex(d.attempt.vertex).is_source;
    let mut writers = Vec::new();
    for (output, &edge) in job.vertex(d.attempt.vertex).outputs.iter().enumerate() {
        let subpartitions = job.subpartitions(edge);
        outputs.add_output((0..subpartitions).map(|index| {
            let key = SubpartitionKey {
                job: d.job_id,
                producer: d.attempt,
                edge,
                index,
            };
            (key, d.finished_consumers.contains(&(edge, index)))
        }));
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
            memory: services.operators.memory.clone(),
            state: Some(state.clone()),
        })?);
    }
    Ok((writers, outputs))
}

/// A producer's side of a consumer that went away (`taskmanager` failover): the producer's
/// cluster events, and the dropped records in its metrics.
struct ProducerEvents {
    events: Events,
    metrics: Arc<TaskMetrics>,
}

impl SubpartitionListener for ProducerEvents {
    fn consumer_gone(&self, key: &SubpartitionKey) {
        self.events.emit(ClusterEvent::ConsumerGone {
            job: key.job,
            producer: key.producer,
            subpartition: key.index,
        });
    }

    fn discarded(&self, records: u64) {
        self.metrics
            .records_dropped
            .fetch_add(records, Ordering::Relaxed);
    }

    fn dropped_while_away(&self, key: &SubpartitionKey, dropped: u64) {
        self.events.emit(ClusterEvent::RecordsDropped {
            job: key.job,
            producer: key.producer,
            subpartition: key.index,
            records: dropped,
        });
    }
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

/// Pacing in virtual time, where elapsed time is exact (real time is not, on a shared machine).
#[cfg(all(test, madsim))]
mod pacer_tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `ms` milliseconds, give or take the simulator's timer granularity.
    fn about(elapsed: Duration, ms: u64) -> bool {
        elapsed.abs_diff(Duration::from_millis(ms)) < MS
    }

    #[tokio::test]
    async fn a_backlog_passes_at_once_then_the_rate_holds() {
        let start = Instant::now();
        let mut pacer = Pacer::with_backlog(Some(1000.0), Duration::from_millis(500));
        for _ in 0..50 {
            pacer.pass(10).await;
        }
        assert!(start.elapsed() < MS, "500 records of backlog pass at once");
        pacer.pass(100).await;
        assert!(about(start.elapsed(), 100), "then 1000/s again");
    }

    /// A restored stream 500 ms behind whose reader takes 200 ms over its backlog reads the
    /// 200 records its stream produced meanwhile at once too: it is then where its stream is.
    #[tokio::test]
    async fn a_stream_catches_up_with_what_it_produced_during_the_backlog() {
        let start = Instant::now();
        let mut pacer = Pacer::with_backlog(Some(1000.0), Duration::from_millis(500));
        pacer.pass(250).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        pacer.pass(250).await;
        pacer.pass(200).await;
        assert!(about(start.elapsed(), 200), "{:?}", start.elapsed());
        pacer.pass(100).await;
        assert!(
            about(start.elapsed(), 300),
            "then 1000/s: {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn without_a_backlog_every_record_waits_its_turn() {
        let pacers: [fn() -> Pacer; 2] = [
            || Pacer::capacity(Some(1000.0)),
            || Pacer::with_backlog(Some(1000.0), Duration::ZERO),
        ];
        for pacer in pacers {
            let mut pacer = pacer();
            let start = Instant::now();
            pacer.pass(250).await;
            assert!(about(start.elapsed(), 250), "{:?}", start.elapsed());
        }
    }

    /// Held up for 200 ms after its first 100 records, a stream's reader reads the 200 its
    /// stream produced meanwhile at once; a capacity saves nothing up.
    #[tokio::test]
    async fn a_stream_saves_up_what_its_reader_was_held_up_for_and_a_capacity_does_not() {
        let held_up = |mut pacer: Pacer| async move {
            pacer.pass(100).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let start = Instant::now();
            pacer.pass(200).await;
            let caught_up = start.elapsed();
            pacer.pass(100).await;
            (caught_up, start.elapsed())
        };
        let (caught_up, then) = held_up(Pacer::with_backlog(Some(1000.0), Duration::ZERO)).await;
        assert!(caught_up < MS, "{caught_up:?}");
        assert!(about(then, 100), "then 1000/s again: {then:?}");
        let (waited, then) = held_up(Pacer::capacity(Some(1000.0))).await;
        assert!(about(waited, 200), "{waited:?}");
        assert!(about(then, 300), "{then:?}");
    }
}
