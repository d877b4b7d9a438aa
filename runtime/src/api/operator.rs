//! Operators and the push-based collector chain they form inside a task.
//!
//! Inside an operator chain records pass by value through `Collector::collect`, with no
//! serialization and no allocation; only at task boundaries are they encoded into buffers
//! (see `network::writer`). Control events (watermarks, flush, end of input) travel down the same
//! chain through `Collector::event` so every operator sees them in order with the records.

use std::hash::Hash;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::graph::ExecutionAttemptId;
use crate::state::{KeyedState, OperatorState, TaskStateHandle};
use crate::taskmanager::TaskServices;

/// A control event flowing down an operator chain, in order with the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainEvent {
    /// Event time has advanced to this timestamp (ms) on every input.
    Watermark(u64),
    /// Hand partially filled output buffers to the network (buffer timeout, idle input).
    Flush,
    /// The input is exhausted: emit what is pending and close.
    Finish,
    /// Checkpoint barrier `n`: everything before it belongs to checkpoint `n`. Stateful
    /// operators record their state in the task's `TaskStateHandle` as it passes; writers
    /// forward it to every consumer.
    Barrier(u64),
    /// Checkpoint `n` is complete everywhere: transactional sinks commit what they staged.
    CheckpointComplete(u64),
}

/// The receiving end of an operator: the next operator, a sink, or a network writer.
pub trait Collector<T>: Send {
    fn collect(&mut self, item: T);
    fn event(&mut self, event: ChainEvent);
}

/// Where a record came from: the source partition and offset that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub partition: u32,
    pub offset: u64,
}

/// Records that carry their provenance, so a collecting sink can record it for the harness.
pub trait Traceable {
    fn origin(&self) -> Option<Origin>;
}

/// What an operator instance knows about where it runs.
#[derive(Clone)]
pub struct OperatorContext {
    /// The job the operator belongs to (its id at the JobManager).
    pub job: u64,
    pub attempt: ExecutionAttemptId,
    pub parallelism: u32,
    pub max_parallelism: u32,
    pub operator_name: String,
    /// The operator's logical node id: names its state in checkpoints.
    pub node: u32,
    /// Where the operator records its state at a barrier and finds its restored state.
    pub state: TaskStateHandle,
    /// Where it leaves work the task must see finished before it goes on.
    pub waits: TaskWaits,
    pub services: TaskServices,
}

/// Work an operator started that its task must see finished before going on: a sink's writes
/// to a remote store, which must be durable before a checkpoint is acknowledged or the task
/// ends, and which must not pile up without bound (back-pressure). Operators are synchronous,
/// so they hand the waiting to the task here; the task waits after each step.
#[derive(Clone, Default)]
pub struct TaskWaits {
    pending: Arc<Mutex<Vec<futures_util::future::BoxFuture<'static, ()>>>>,
}

impl TaskWaits {
    pub fn push(&self, wait: impl std::future::Future<Output = ()> + Send + 'static) {
        crate::util::lock(&self.pending).push(Box::pin(wait));
    }

    pub fn is_empty(&self) -> bool {
        crate::util::lock(&self.pending).is_empty()
    }

    /// Waits for everything pushed, including what is pushed meanwhile.
    pub async fn settle(&self) {
        loop {
            let pending = std::mem::take(&mut *crate::util::lock(&self.pending));
            if pending.is_empty() {
                return;
            }
            futures_util::future::join_all(pending).await;
        }
    }
}

impl OperatorContext {
    pub fn subtask(&self) -> u32 {
        self.attempt.subtask
    }

    /// This operator's state in the checkpoint the attempt restores from, if any.
    pub fn restored(&self) -> Option<&OperatorState> {
        self.state.restored(self.node)
    }

    /// The operator's handle for recording its state at barriers.
    pub fn state_slot(&self) -> StateSlot {
        StateSlot {
            node: self.node,
            max_parallelism: self.max_parallelism,
            handle: self.state.clone(),
        }
    }
}

/// One operator's place in its task's checkpoints.
#[derive(Clone)]
pub struct StateSlot {
    pub node: u32,
    pub max_parallelism: u32,
    handle: TaskStateHandle,
}

impl StateSlot {
    pub fn put(&self, state: OperatorState) {
        self.handle.put(self.node, state)
    }

    /// The operator could not record its state for this checkpoint.
    pub fn fail(&self, reason: String) {
        self.handle.fail(reason)
    }
}

pub(crate) type Out<T> = Box<dyn Collector<T>>;

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
