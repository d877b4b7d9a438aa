//! Operators and the push-based collector chain they form inside a task.
//!
//! Inside an operator chain records pass by value through `Collector::collect`, with no
//! serialization and no allocation; only at task boundaries are they encoded into buffers
//! (see `network::writer`). Control events (watermarks, flush, end of input) travel down the same
//! chain through `Collector::event` so every operator sees them in order with the records.
//! Those traits live in [`crate::chain`]; this module holds what operators know about where
//! they run ([`OperatorContext`], [`OperatorServices`]) and the built-in operators.

use std::hash::Hash;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

// The chain's plumbing lives in `crate::chain`, below `network` and `connectors`, which
// implement it too; re-exported so `rill::api::operator::{Collector, ChainEvent, ..}` keep
// working.
pub(crate) use crate::chain::Out;
pub use crate::chain::{ChainEvent, Collector, Origin, TaskWaits, Traceable};
use crate::clock::ProcessingClock;
use crate::connectors::log_service::LogClients;
use crate::connectors::sink_batcher::SinkClients;
use crate::connectors::write_grant::WriteGrant;
use crate::connectors::{CollectStore, ConnectorContext};
use crate::ids::CheckpointId;
use crate::ids::{ExecutionAttemptId, JobId};
use crate::memory::MemoryAccount;
pub use crate::state::StateSlot;
use crate::state::{KeyedState, OperatorState, TaskStateHandle};

/// What an operator instance knows about where it runs.
#[derive(Clone)]
pub struct OperatorContext {
    /// The job the operator belongs to (its id at the JobManager).
    pub job: JobId,
    /// The attempt running the operator (its vertex, subtask and attempt number).
    pub attempt: ExecutionAttemptId,
    /// How many subtasks the operator runs as.
    pub parallelism: u32,
    /// Key groups (`pipeline.max-parallelism`), for keyed state.
    pub max_parallelism: u32,
    /// The operator's name, as the job named it.
    pub operator_name: String,
    /// A sink's write grant from the JobManager, which a sink store may ask of its writes
    /// (`connectors::write_grant`); all zeros for other operators.
    pub sink_grant: WriteGrant,
    /// The operator's logical node id: names its state in checkpoints.
    pub node: u32,
    /// Where the operator records its state at a barrier and finds its restored state.
    pub state: TaskStateHandle,
    /// Where it leaves work the task must see finished before it goes on.
    pub waits: TaskWaits,
    /// The TaskManager's services it may use.
    pub services: OperatorServices,
}

/// The TaskManager's services an operator may use: the part of the TaskManager's
/// `TaskServices` that operators see. The task's own services (the partition registry, the
/// data client, cluster events) are not among them.
#[derive(Clone)]
pub struct OperatorServices {
    /// The TaskManager's name.
    pub tm_name: String,
    /// Where keyed state and network buffers are charged.
    pub memory: MemoryAccount,
    /// Where collecting sinks write; only in-process deployments have one.
    pub collect: Option<CollectStore>,
    /// Connections to log servers, shared by this TaskManager's sources.
    pub logs: LogClients,
    /// Connections to sink stores, shared by this TaskManager's sinks.
    pub sink_stores: SinkClients,
    /// Processing time, for operators that act on the wall clock.
    pub clock: ProcessingClock,
}

impl OperatorContext {
    /// The subtask's index within the operator.
    pub fn subtask(&self) -> u32 {
        self.attempt.subtask
    }

    /// This operator's state in the checkpoint the attempt restores from, if any.
    pub fn restored(&self) -> Option<&OperatorState> {
        self.state.restored(self.node)
    }

    /// The operator's handle for recording its state at barriers.
    pub fn state_slot(&self) -> StateSlot {
        StateSlot::new(self.node, self.max_parallelism, self.state.clone())
    }
}

/// Sources and sinks (`connectors`) see the context through this trait, so they do not
/// depend on the API that builds jobs from them.
impl ConnectorContext for OperatorContext {
    fn job(&self) -> JobId {
        self.job
    }

    fn attempt(&self) -> ExecutionAttemptId {
        self.attempt
    }

    fn parallelism(&self) -> u32 {
        self.parallelism
    }

    fn operator_name(&self) -> &str {
        &self.operator_name
    }

    fn sink_grant(&self) -> WriteGrant {
        self.sink_grant
    }

    fn restored(&self) -> Option<&OperatorState> {
        OperatorContext::restored(self)
    }

    fn restored_checkpoint(&self) -> Option<CheckpointId> {
        self.state.restored_checkpoint()
    }

    fn waits(&self) -> &TaskWaits {
        &self.waits
    }

    fn taskmanager(&self) -> &str {
        &self.services.tm_name
    }

    fn collect_store(&self) -> Option<&CollectStore> {
        self.services.collect.as_ref()
    }

    fn log_clients(&self) -> &LogClients {
        &self.services.logs
    }

    fn sink_clients(&self) -> &SinkClients {
        &self.services.sink_stores
    }

    fn state_slot(&self) -> StateSlot {
        OperatorContext::state_slot(self)
    }
}

pub(crate) struct MapOp<F, U> {
    pub f: F,
    pub down: Out<U>,
}

impl<T, U, F: FnMut(T) -> U + Send> Collector<T> for MapOp<F, U> {
    fn collect(&mut self, item: T) {
        let out = (self.f)(item);
        self.down.collect(out);
    }
    fn event(&mut self, event: ChainEvent) {
        self.down.event(event)
    }
}

pub(crate) struct FilterOp<F, T> {
    pub f: F,
    pub down: Out<T>,
}

impl<T, F: FnMut(&T) -> bool + Send> Collector<T> for FilterOp<F, T> {
    fn collect(&mut self, item: T) {
        if (self.f)(&item) {
            self.down.collect(item);
        }
    }
    fn event(&mut self, event: ChainEvent) {
        self.down.event(event)
    }
}

pub(crate) struct FlatMapOp<F, U> {
    pub f: F,
    pub down: Out<U>,
}

impl<T, U, I, F> Collector<T> for FlatMapOp<F, U>
where
    I: IntoIterator<Item = U>,
    F: FnMut(T) -> I + Send,
{
    fn collect(&mut self, item: T) {
        for out in (self.f)(item) {
            self.down.collect(out);
        }
    }
    fn event(&mut self, event: ChainEvent) {
        self.down.event(event)
    }
}

/// Fan-out: one stream consumed by several downstream edges or operators.
pub(crate) struct Tee<T> {
    pub outs: Vec<Out<T>>,
}

impl<T: Clone> Collector<T> for Tee<T> {
    fn collect(&mut self, item: T) {
        if let Some((last, rest)) = self.outs.split_last_mut() {
            for out in rest {
                out.collect(item.clone());
            }
            last.collect(item);
        }
    }
    fn event(&mut self, event: ChainEvent) {
        for out in &mut self.outs {
            out.event(event);
        }
    }
}

pub(crate) type KeyFn<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;
/// Folds a record into an accumulator.
pub(crate) type AddFn<T, A> = Arc<dyn Fn(&mut A, &T) + Send + Sync>;
/// Produces a keyed aggregation's output from key, accumulator and the triggering record.
pub(crate) type EmitFn<K, A, T, U> = Arc<dyn Fn(&K, &A, &T) -> U + Send + Sync>;
/// A record's key hash, for hash partitioning.
pub(crate) type HashFn<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// Keyed aggregation: per-key accumulator in keyed state, one output per input record
/// (the running result, as Flink's keyed reduce emits).
pub(crate) struct KeyedAggregateOp<T, K, A, U> {
    pub key: KeyFn<T, K>,
    pub init: Arc<dyn Fn() -> A + Send + Sync>,
    pub add: AddFn<T, A>,
    pub emit: EmitFn<K, A, T, U>,
    pub state: KeyedState<K, A>,
    pub slot: StateSlot,
    pub down: Out<U>,
}

impl<T, K, A, U> KeyedAggregateOp<T, K, A, U>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    A: Serialize + DeserializeOwned,
{
    fn checkpoint(&self) {
        match self.state.snapshot(self.slot.max_parallelism) {
            Ok(keyed) => self.slot.put(OperatorState {
                keyed,
                operator: None,
            }),
            // Without its state the checkpoint would restore wrong counts.
            Err(e) => self.slot.fail(e),
        }
    }
}

impl<T, K, A, U> Collector<T> for KeyedAggregateOp<T, K, A, U>
where
    T: Send,
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    A: Send + Serialize + DeserializeOwned + 'static,
    U: Send,
{
    fn collect(&mut self, item: T) {
        let key = (self.key)(&item);
        let acc = self.state.get_or_insert_with(&key, &*self.init);
        (self.add)(acc, &item);
        let out = (self.emit)(&key, acc, &item);
        self.down.collect(out);
    }
    fn event(&mut self, event: ChainEvent) {
        if let ChainEvent::Barrier(_) = event {
            self.checkpoint();
        }
        self.down.event(event)
    }
}
