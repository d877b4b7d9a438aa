//! The typed DataStream builder.
//!
//! Building a job records a *logical graph*: typed operator factories erased behind `Any`, so
//! the JobManager and every TaskManager can derive the same graph from a job name and parameters
//! and each TaskManager can instantiate the chain of any subtask. Type erasure happens once per
//! chain build, never per record: a chain is assembled back to front, each factory downcasting
//! its downstream `Box<dyn Collector<Out>>` and returning its own `Box<dyn Collector<In>>`.

use std::any::Any;
use std::cell::RefCell;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::operator::*;
use crate::connectors::sink::{Sink, SinkOperator};
use crate::connectors::source::{Source, SourceDriver, SplitDriver};
use crate::error::JobError;
use crate::ids::NodeId;
use crate::network::decoder::{RecordDecoder, TypedDecoder};
use crate::network::writer::{PartitionTarget, RecordWriter, Route};
use crate::network::{PartitionerKind, ResultType};
use crate::state::{key_hash, KeyedState};

/// Types that can flow through a job: cloned within chains, serialized between tasks.
pub trait Data:
    Clone + Send + Sync + Serialize + DeserializeOwned + std::fmt::Debug + 'static
{
}
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + std::fmt::Debug + 'static> Data for T {}

pub(crate) type AnyBox = Box<dyn Any + Send>;
pub(crate) type OpFactory =
    Arc<dyn Fn(AnyBox, &OperatorContext) -> Result<AnyBox, JobError> + Send + Sync>;
pub(crate) type SourceFactory =
    Arc<dyn Fn(AnyBox, &OperatorContext) -> Result<Box<dyn SourceDriver>, JobError> + Send + Sync>;
pub(crate) type SinkFactory =
    Arc<dyn Fn(&OperatorContext) -> Result<AnyBox, JobError> + Send + Sync>;
pub(crate) type TeeFactory = Arc<dyn Fn(Vec<AnyBox>) -> Result<AnyBox, JobError> + Send + Sync>;
pub(crate) type DecoderFactory =
    Arc<dyn Fn(AnyBox) -> Result<Box<dyn RecordDecoder>, JobError> + Send + Sync>;
pub(crate) type WriterFactory =
    Arc<dyn Fn(PartitionTarget) -> Result<AnyBox, JobError> + Send + Sync>;

pub(crate) enum NodeKind {
    Source(SourceFactory),
    Operator(OpFactory),
    Sink(SinkFactory),
}

/// An edge of the logical graph, from an upstream node into this node.
pub(crate) struct LogicalEdge {
    pub from: NodeId,
    pub partitioner: PartitionerKind,
    pub result_type: ResultType,
    pub writer: WriterFactory,
}

pub(crate) struct LogicalNode {
    pub name: String,
    pub parallelism: u32,
    pub slot_sharing_group: String,
    pub weight: u32,
    /// Records per second one subtask of this operator can take (a slow external system).
    pub rate_limit: Option<f64>,
    /// How long this operator may hold its input before emitting what came of it: a window's
    /// size (ms), 0 for an operator that emits as it goes.
    pub output_hold_ms: u64,
    pub kind: NodeKind,
    pub inputs: Vec<LogicalEdge>,
    /// Fans this node's output out to several consumers.
    pub tee: TeeFactory,
    /// Decodes this node's input type from network buffers (non-sources).
    pub decoder: Option<DecoderFactory>,
}

#[derive(Default)]
pub(crate) struct LogicalGraph {
    pub nodes: Vec<LogicalNode>,
}

/// The entry point of the builder; a job is built by a registered function on a `StreamEnv`.
#[derive(Clone)]
pub struct StreamEnv {
    graph: Rc<RefCell<LogicalGraph>>,
    default_parallelism: u32,
}

impl StreamEnv {
    /// An empty job whose operators run with `default_parallelism` unless they set their own.
    pub fn new(default_parallelism: u32) -> Self {
        StreamEnv {
            graph: Rc::default(),
            default_parallelism,
        }
    }

    pub(crate) fn into_logical(self) -> LogicalGraph {
        std::mem::take(&mut *self.graph.borrow_mut())
    }

    /// A source (see [`crate::connectors::source`]): each subtask reads its share of the
    /// source's splits, and the runtime checkpoints and restores their positions.
    pub fn source<T: Data, S: Source<T>>(&self, name: &str, source: S) -> DataStream<T> {
        let source = Arc::new(source);
        let make: SourceFactory = Arc::new(move |down, ctx| {
            let down = downcast::<Out<T>>(down)?;
            let driver = SplitDriver::open(&*source, ctx, down)?;
            Ok(Box::new(driver) as Box<dyn SourceDriver>)
        });
        let id = self.add_node::<T>(name, NodeKind::Source(make), Vec::new(), None);
        DataStream::from_node(self.clone(), id)
    }

    fn add_node<Out: Data>(
        &self,
        name: &str,
        kind: NodeKind,
        inputs: Vec<LogicalEdge>,
        decoder: Option<DecoderFactory>,
    ) -> NodeId {
        let mut graph = self.graph.borrow_mut();
        let id = NodeId(graph.nodes.len() as u32);
        graph.nodes.push(LogicalNode {
            name: name.to_string(),
            parallelism: self.default_parallelism,
            slot_sharing_group: "default".to_string(),
            weight: 1,
            rate_limit: None,
            output_hold_ms: 0,
            kind,
            inputs,
            tee: tee_factory::<Out>(),
            decoder,
        });
        id
    }

    fn update_node(&self, id: NodeId, f: impl FnOnce(&mut LogicalNode)) {
        if let Some(node) = self.graph.borrow_mut().nodes.get_mut(id.0 as usize) {
            f(node)
        }
    }
}

/// How a stream is partitioned towards its consumers, typed so a hash route can key records.
enum Partitioning<T> {
    Default,
    Forward,
    Rebalance,
    Broadcast,
    Hash(HashFn<T>),
}

impl<T> Clone for Partitioning<T> {
    fn clone(&self) -> Self {
        match self {
            Partitioning::Default => Partitioning::Default,
            Partitioning::Forward => Partitioning::Forward,
            Partitioning::Rebalance => Partitioning::Rebalance,
            Partitioning::Broadcast => Partitioning::Broadcast,
            Partitioning::Hash(f) => Partitioning::Hash(f.clone()),
        }
    }
}

/// A typed stream: the outputs of one or more upstream nodes (several after `union`), each with
/// the partitioning that the next operator's input edge will use.
pub struct DataStream<T> {
    env: StreamEnv,
    upstreams: Vec<NodeId>,
    route: Partitioning<T>,
    blocking: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        DataStream {
            env: self.env.clone(),
            upstreams: self.upstreams.clone(),
            route: self.route.clone(),
            blocking: self.blocking,
            _t: PhantomData,
        }
    }
}

impl<T: Data> DataStream<T> {
    fn from_node(env: StreamEnv, id: NodeId) -> Self {
        DataStream {
            env,
            upstreams: vec![id],
            route: Partitioning::Default,
            blocking: false,
            _t: PhantomData,
        }
    }

    /// Sets the parallelism of the operator that produced this stream.
    pub fn parallelism(self, parallelism: u32) -> Self {
        self.for_own_node(|n| n.parallelism = parallelism)
    }

    /// Puts the producing operator into a named slot-sharing group.
    pub fn slot_sharing_group(self, group: &str) -> Self {
        self.for_own_node(|n| n.slot_sharing_group = group.to_string())
    }

    /// Relative cost of the producing operator per subtask, for weighted balanced scheduling.
    pub fn weight(self, weight: u32) -> Self {
        self.for_own_node(|n| n.weight = weight)
    }

    /// Caps the records per second each subtask of the producing operator processes, as a
    /// slow external system would; its input then back-pressures upstream.
    pub fn rate_limit(self, records_per_second: f64) -> Self {
        self.for_own_node(|n| {
            n.rate_limit = (records_per_second > 0.0).then_some(records_per_second)
        })
    }

    fn for_own_node(self, f: impl Fn(&mut LogicalNode)) -> Self {
        for id in &self.upstreams {
            self.env.update_node(*id, &f);
        }
        self
    }

    /// The next edge is forward: subtask i feeds subtask i (equal parallelism), and the operators
    /// are chained when they can be.
    pub fn forward(mut self) -> Self {
        self.route = Partitioning::Forward;
        self
    }
    /// The next edge is round robin over all consumer subtasks.
    pub fn rebalance(mut self) -> Self {
        self.route = Partitioning::Rebalance;
        self
    }
    /// The next edge sends every record to every consumer subtask.
    pub fn broadcast(mut self) -> Self {
        self.route = Partitioning::Broadcast;
        self
    }
    /// The next edge is a blocking (batch) exchange: the consumer reads a finished partition.
    pub fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }

    /// Merges streams of the same type; the consumer reads from all of them.
    pub fn union(mut self, other: DataStream<T>) -> Self {
        self.upstreams.extend(other.upstreams);
        self
    }

    /// Partitions the stream by `key`: records of a key go to one subtask (by key group), where
    /// keyed operators keep per-key state.
    pub fn key_by<K>(self, key: impl Fn(&T) -> K + Send + Sync + 'static) -> KeyedStream<T, K>
    where
        K: Hash
            + Eq
            + Clone
            + Send
            + Sync
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned
            + 'static,
    {
        let key: KeyFn<T, K> = Arc::new(key);
        let hash_key = key.clone();
        let mut stream = self;
        stream.route = Partitioning::Hash(Arc::new(move |t| key_hash(&hash_key(t))));
        KeyedStream { stream, key }
    }

    /// One record out for each record in.
    pub fn map<U: Data>(
        &self,
        name: &str,
        f: impl Fn(T) -> U + Clone + Send + Sync + 'static,
    ) -> DataStream<U> {
        self.operator(name, move |down: Out<U>, _ctx| {
            Ok(Box::new(MapOp { f: f.clone(), down }) as Out<T>)
        })
    }

    /// Keeps the records `f` accepts.
    pub fn filter(
        &self,
        name: &str,
        f: impl Fn(&T) -> bool + Clone + Send + Sync + 'static,
    ) -> DataStream<T> {
        self.operator(name, move |down: Out<T>, _ctx| {
            Ok(Box::new(FilterOp { f: f.clone(), down }) as Out<T>)
        })
    }

    /// Any number of records out for each record in.
    pub fn flat_map<U: Data, I>(
        &self,
        name: &str,
        f: impl Fn(T) -> I + Clone + Send + Sync + 'static,
    ) -> DataStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
    {
        self.operator(name, move |down: Out<U>, _ctx| {
            Ok(Box::new(FlatMapOp { f: f.clone(), down }) as Out<T>)
        })
    }

    /// A generic one-input operator: `make` builds an instance per subtask around its downstream.
    pub fn operator<U: Data>(
        &self,
        name: &str,
        make: impl Fn(Out<U>, &OperatorContext) -> Result<Out<T>, JobError> + Send + Sync + 'static,
    ) -> DataStream<U> {
        let factory: OpFactory = Arc::new(move |down, ctx| {
            let down = downcast::<Out<U>>(down)?;
            Ok(Box::new(make(down, ctx)?) as AnyBox)
        });
        let inputs = self.input_edges();
        let id = self.env.add_node::<U>(
            name,
            NodeKind::Operator(factory),
            inputs,
            Some(decoder_factory::<T>()),
        );
        self.inherit_parallelism(id);
        DataStream::from_node(self.env.clone(), id)
    }

    /// Writes the stream into `sink` (see [`crate::connectors::sink`]): each subtask opens
    /// the sink's writer, and the runtime drives it through the two-phase checkpoint protocol.
    pub fn sink<S: Sink<T>>(&self, name: &str, sink: S) -> DataStream<T> {
        let sink = Arc::new(sink);
        let factory: SinkFactory = Arc::new(move |ctx| {
            let writer = sink.writer(ctx)?;
            let op: Out<T> = Box::new(SinkOperator::open(writer, ctx)?);
            Ok(Box::new(op) as AnyBox)
        });
        let inputs = self.input_edges();
        let id = self.env.add_node::<T>(
            name,
            NodeKind::Sink(factory),
            inputs,
            Some(decoder_factory::<T>()),
        );
        self.inherit_parallelism(id);
        DataStream::from_node(self.env.clone(), id)
    }

    /// New operators default to their input's parallelism (so forward edges chain), as in
    /// Flink when no parallelism is set explicitly.
    fn inherit_parallelism(&self, id: NodeId) {
        let graph = self.env.graph.borrow();
        let p = self
            .upstreams
            .iter()
            .map(|u| graph.nodes[u.0 as usize].parallelism)
            .max();
        drop(graph);
        if let (Some(p), false) = (
            p,
            matches!(self.route, Partitioning::Hash(_) | Partitioning::Rebalance),
        ) {
            self.env.update_node(id, |n| n.parallelism = p);
        }
    }

    fn input_edges(&self) -> Vec<LogicalEdge> {
        let (kind, route) = match &self.route {
            Partitioning::Default => (PartitionerKind::Default, None),
            Partitioning::Forward => (PartitionerKind::Forward, None),
            Partitioning::Rebalance => (PartitionerKind::Rebalance, None),
            Partitioning::Broadcast => (PartitionerKind::Broadcast, None),
            Partitioning::Hash(f) => (PartitionerKind::Hash, Some(f.clone())),
        };
        let result_type = if self.blocking {
            ResultType::Blocking
        } else {
            ResultType::Pipelined
        };
        self.upstreams
            .iter()
            .map(|&from| LogicalEdge {
                from,
                partitioner: kind,
                result_type,
                writer: writer_factory::<T>(route.clone()),
            })
            .collect()
    }
}

/// A stream partitioned by key: keyed operators keep per-key state.
pub struct KeyedStream<T, K> {
    stream: DataStream<T>,
    key: KeyFn<T, K>,
}

impl<T: Data, K> KeyedStream<T, K>
where
    K: Hash + Eq + Clone + Send + Sync + std::fmt::Debug + Serialize + DeserializeOwned + 'static,
{
    /// Keyed aggregation: `add` folds each record into the key's accumulator (created by
    /// `init`), and `emit` produces one output per record from the updated accumulator.
    pub fn aggregate<A, U>(
        &self,
        name: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&mut A, &T) + Send + Sync + 'static,
        emit: impl Fn(&K, &A, &T) -> U + Send + Sync + 'static,
    ) -> DataStream<U>
    where
        A: Send + Serialize + DeserializeOwned + 'static,
        U: Data,
    {
        let key = self.key.clone();
        let init: Arc<dyn Fn() -> A + Send + Sync> = Arc::new(init);
        let add: AddFn<T, A> = Arc::new(add);
        let emit: EmitFn<K, A, T, U> = Arc::new(emit);
        self.stream.operator(name, move |down: Out<U>, ctx| {
            let mut state = KeyedState::new(ctx.services.memory.clone());
            if let Some(restored) = ctx.restored() {
                state.restore(&restored.keyed).map_err(JobError::State)?;
            }
            Ok(Box::new(KeyedAggregateOp {
                key: key.clone(),
                init: init.clone(),
                add: add.clone(),
                emit: emit.clone(),
                state,
                slot: ctx.state_slot(),
                down,
            }) as Out<T>)
        })
    }

    /// Keyed reduce: the running reduction per key, emitted after every record.
    pub fn reduce(
        &self,
        name: &str,
        f: impl Fn(&T, &T) -> T + Send + Sync + 'static,
    ) -> DataStream<T> {
        let f = Arc::new(f);
        self.aggregate(
            name,
            || None::<T>,
            move |acc: &mut Option<T>, t: &T| {
                *acc = Some(match acc.take() {
                    Some(prev) => f(&prev, t),
                    None => t.clone(),
                })
            },
            |_k, acc, t| acc.clone().unwrap_or_else(|| t.clone()),
        )
    }

    /// Tumbling windows of `size_ms`, on event time (`WindowTime::event(timestamp)`) or on
    /// the TaskManager's processing time.
    pub fn tumbling_window<A, U>(
        &self,
        name: &str,
        size_ms: u64,
        time: super::window::WindowTime<T>,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&mut A, &T) + Send + Sync + 'static,
        emit: impl Fn(&K, super::window::Window, &A) -> U + Send + Sync + 'static,
    ) -> DataStream<U>
    where
        A: Send + Serialize + DeserializeOwned + 'static,
        U: Data,
        K: Ord,
    {
        let spec =
            super::window::TumblingSpec::new(self.key.clone(), size_ms, time, init, add, emit);
        // A window emits once it closes: the harness allows healthy output that long a pause
        // (event time taken to keep pace with processing time, as in a live stream).
        self.stream
            .operator(name, move |down: Out<U>, ctx| spec.instantiate(down, ctx))
            .for_own_node(|n| n.output_hold_ms = size_ms)
    }
}

pub(crate) fn downcast<T: 'static>(b: AnyBox) -> Result<T, JobError> {
    b.downcast::<T>().map(|b| *b).map_err(|_| {
        JobError::Internal(format!(
            "operator chain type mismatch: expected {}",
            std::any::type_name::<T>()
        ))
    })
}

fn tee_factory<T: Data>() -> TeeFactory {
    Arc::new(|outs: Vec<AnyBox>| {
        let mut typed = Vec::with_capacity(outs.len());
        for o in outs {
            typed.push(downcast::<Out<T>>(o)?);
        }
        let out: Out<T> = if typed.len() == 1 {
            typed.pop().expect("one")
        } else {
            Box::new(Tee { outs: typed })
        };
        Ok(Box::new(out) as AnyBox)
    })
}

fn decoder_factory<T: Data>() -> DecoderFactory {
    Arc::new(|down: AnyBox| {
        let down = downcast::<Out<T>>(down)?;
        Ok(Box::new(TypedDecoder::new(down)) as Box<dyn RecordDecoder>)
    })
}

fn writer_factory<T: Data>(hash: Option<HashFn<T>>) -> WriterFactory {
    Arc::new(move |target: PartitionTarget| {
        let route = match (&hash, target.partitioner) {
            (Some(f), PartitionerKind::Hash) => Route::Hash(f.clone()),
            (_, PartitionerKind::Broadcast) => Route::Broadcast,
            (_, PartitionerKind::Rebalance) => Route::Rebalance {
                next: target.producer_subtask as usize,
            },
            _ => Route::Forward,
        };
        Ok(Box::new(Box::new(RecordWriter::<T>::new(route, target)) as Out<T>) as AnyBox)
    })
}
