//! The loop of a task fed by the network: it reads its input gate, pushes what it decodes
//! into the chain, and drains its result partitions after each step. It opens its input
//! channels (`Connector`: local ones from the partition registry, remote ones through the data
//! client) and, under `taskmanager` failover, rides out a lost producer: the channel pauses
//! (`InputPaused`) and reconnects in the background when the JobManager says where the
//! replacement runs (`InputReconnected`).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::checkpoints::Checkpoints;
use super::task::Pacer;
use super::{InputLocation, TaskControl, TaskDeployment, TaskError, TaskMetrics, TaskServices};
use crate::buggify::{self, Point};
use crate::chain::ChainEvent;
use crate::events::ClusterEvent;
use crate::graph::{ExecutionAttemptId, JobGraph};
use crate::ids::CheckpointId;
use crate::ids::JobId;
use crate::network::decoder::RecordDecoder;
use crate::network::{GateItem, InputChannel, InputGate, ResultPartitions, SubpartitionKey};
use crate::rpc::RpcError;
use crate::util::AbortOnDrop;

/// How long a consumer waits for its producer to register a partition (as remote requests do).
const PARTITION_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens input channels: local ones straight from the partition registry, remote ones
/// through the data client with their initial credit.
#[derive(Clone)]
pub(super) struct Connector {
    job: JobId,
    consumer: ExecutionAttemptId,
    services: TaskServices,
    credit: u32,
}

/// How long a consumer keeps trying to reach a producer's TaskManager before its task fails.
const CONNECT_RETRY: Duration = Duration::from_secs(5);
/// Its first pause between tries, doubling up to [`CONNECT_BACKOFF_MAX`].
const CONNECT_BACKOFF: Duration = Duration::from_millis(50);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Connector {
    pub(super) fn new(d: &TaskDeployment, services: &TaskServices) -> Self {
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
                let claimed = tokio::time::timeout(
                    PARTITION_REQUEST_TIMEOUT,
                    registry.take_local(key, self.consumer),
                )
                .await;
                let rx = claimed
                    .ok()
                    .flatten()
                    .ok_or_else(|| fail("local partition not found".into()))?;
                Ok(InputChannel::local(rx))
            }
            Some(addr) => {
                // A producer's TaskManager that cannot be reached just now (a brief cut, a
                // connection refused while it restarts) is tried again for a while: failing
                // at once would spend a restart of the job on every redeployment that meets
                // a blip. Errors of the protocol itself fail at once.
                let mut backoff = CONNECT_BACKOFF;
                let give_up = tokio::time::Instant::now() + CONNECT_RETRY;
                loop {
                    let tried = self
                        .services
                        .client
                        .request(
                            (addr, &input.taskmanager),
                            key,
                            (self.consumer, input.grant),
                            self.credit,
                        )
                        .await;
                    match tried {
                        Ok((rx, credit)) => return Ok(InputChannel::remote(rx, credit)),
                        Err(e @ (RpcError::Io(_) | RpcError::Closed))
                            if tokio::time::Instant::now() + backoff < give_up =>
                        {
                            tracing::debug!(producer = %input.producer, error = %e, "input connection failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
                        }
                        Err(e) => return Err(fail(e.to_string())),
                    }
                }
            }
        }
    }

    /// Opens every input channel of a deployment, in gate order.
    pub(super) async fn connect_all(
        &self,
        inputs: &[InputLocation],
    ) -> Result<InputGate, TaskError> {
        let mut channels = Vec::with_capacity(inputs.len());
        for input in inputs {
            channels.push(self.connect(input).await?);
        }
        Ok(InputGate::new(channels))
    }
}

/// A channel connected anew, for the consumer loop to swap in: (index, generation, channel).
type Reconnected = (usize, u64, Result<InputChannel, TaskError>);

/// The loop of a task fed by the network.
pub(super) struct Consumer<'a> {
    pub(super) job: Arc<JobGraph>,
    pub(super) consumer: ExecutionAttemptId,
    pub(super) inputs: Vec<InputLocation>,
    pub(super) connector: Connector,
    /// Channels connecting to a replaced producer deliver here; the connecting tasks die with
    /// the consumer.
    pub(super) reconnected_tx: mpsc::UnboundedSender<Reconnected>,
    pub(super) reconnected: mpsc::UnboundedReceiver<Reconnected>,
    pub(super) reconnecting: Vec<AbortOnDrop<()>>,
    /// Per channel, the newest connection asked for: an older one finishing late is dropped.
    pub(super) generations: Vec<u64>,
    /// Channels whose producer was lost (traced when they reconnect).
    pub(super) lost: BTreeSet<usize>,
    /// Per channel, the last checkpoint whose barrier its newest producer never sends.
    pub(super) stale_through: Vec<CheckpointId>,
    /// Channels not connected even once yet, and the RUNNING report that waits for them.
    pub(super) unconnected: BTreeSet<usize>,
    pub(super) on_running: Option<Box<dyn FnOnce() + Send>>,
    /// `taskmanager` failover: a lost producer pauses its channel instead of failing the task.
    pub(super) survive_producer_loss: bool,
    pub(super) outputs: ResultPartitions,
    pub(super) metrics: &'a TaskMetrics,
    pub(super) buffer_timeout: Duration,
    /// Records per second this task may process (a slow sink); it then stops reading, its
    /// queues fill, credits run out, and upstream tasks block: back-pressure.
    pub(super) rate_limit: Option<f64>,
    pub(super) checkpoints: Checkpoints,
}

impl Consumer<'_> {
    pub(super) async fn run(
        mut self,
        mut decoder: Box<dyn RecordDecoder>,
        mut gate: InputGate,
    ) -> Result<(), TaskError> {
        let mut pacer = Pacer::capacity(self.rate_limit);
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
                    TaskControl::UpdateInput { index, location, stale_through } => {
                        self.reconnect(index, location, stale_through)
                    }
                },
                Some((index, generation, channel)) = self.reconnected.recv() => {
                    if generation == self.generations[index] {
                        let replaced = self.lost.remove(&index);
                        if replaced {
                            self.connector.services.events.emit(ClusterEvent::InputReconnected {
                                job: self.connector.job,
                                consumer: self.consumer,
                                channel: index as u32,
                                producer: self.inputs[index].producer,
                            });
                        }
                        // A replaced producer never sends the barriers of checkpoints
                        // triggered before it was deployed: an alignment on one is abandoned.
                        let stale = replaced.then_some(self.stale_through[index]);
                        gate.resume(index, channel?, stale);
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
                            job: self.connector.job,
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
            self.checkpoints.settle().await?;
        }
        decoder.event(ChainEvent::Finish);
        self.outputs.drain().await?;
        self.outputs.finish();
        // What the sinks wrote at the end must be stored before the task reports FINISHED.
        self.checkpoints.settle().await?;
        Ok(())
    }

    /// The JobManager says where input `index`'s producer runs now: connect to it in the
    /// background (the other inputs keep flowing) and swap it in when connected.
    fn reconnect(&mut self, index: usize, location: InputLocation, stale_through: CheckpointId) {
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
        self.stale_through[index] = stale_through;
        self.connect(index, location);
    }

    pub(super) fn report_running_once_connected(&mut self) {
        if self.unconnected.is_empty() {
            if let Some(report) = self.on_running.take() {
                report();
            }
        }
    }

    /// Connects input `index` to `location` in the background; the loop swaps it in.
    pub(super) fn connect(&mut self, index: usize, location: InputLocation) {
        self.inputs[index] = location.clone();
        self.generations[index] += 1;
        let generation = self.generations[index];
        let (connector, done) = (self.connector.clone(), self.reconnected_tx.clone());
        // Buggify: a reconnect to a replaced producer comes late, racing its redeployment
        // (and any later one: a newer location supersedes this generation).
        let late = match self.lost.contains(&index) {
            true => buggify::delay(Point::ReconnectLate),
            false => None,
        };
        self.reconnecting.retain(|t| !t.0.is_finished());
        self.reconnecting.push(AbortOnDrop(tokio::spawn(async move {
            if let Some(late) = late {
                tokio::time::sleep(late).await;
            }
            let channel = connector.connect(&location).await;
            let _ = done.send((index, generation, channel));
        })));
    }

    /// An aligned barrier: the chain snapshots as it passes (writers forward it), then the
    /// task acknowledges.
    fn barrier(&mut self, decoder: &mut dyn RecordDecoder, id: CheckpointId) {
        decoder.event(ChainEvent::Barrier(id));
        self.checkpoints.acknowledge(id);
    }
}
