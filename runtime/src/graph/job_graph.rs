//! Compiling a logical graph into a JobGraph: partitioner resolution, validation and chaining.

use std::sync::Arc;

use super::{EdgeId, NodeId, PartitionerKind, ResultType, VertexId};
use crate::api::stream::{LogicalGraph, NodeKind};
use crate::error::JobError;

/// A vertex: a chain of operators that runs as one task per subtask.
#[derive(Debug, Clone)]
pub struct JobVertex {
    /// Its index in [`JobGraph::vertices`].
    pub id: VertexId,
    /// The chained operators' names, head first, joined by ` -> `.
    pub name: String,
    /// Subtasks it runs as.
    pub parallelism: u32,
    /// Chained operators, head first.
    pub nodes: Vec<NodeId>,
    /// The edges it reads, in input-gate order.
    pub inputs: Vec<EdgeId>,
    /// The edges it writes.
    pub outputs: Vec<EdgeId>,
    /// The slot-sharing group of its head operator (`default` unless the job sets one).
    pub slot_sharing_group: String,
    /// Relative cost per subtask (sum of the chained operators' weights).
    pub weight: u32,
    /// Records per second a subtask processes at most (the tightest limit in the chain).
    pub rate_limit: Option<f64>,
    /// How long its chain may hold input before emitting what came of it (the sum of its
    /// windows' sizes): a pause in its output that long is its rhythm, not a stall.
    pub output_hold: std::time::Duration,
    /// Whether its head operator is a source.
    pub is_source: bool,
    /// Whether its chain ends in a sink.
    pub is_sink: bool,
}

/// A data exchange between two vertices (operators not chained together).
#[derive(Debug, Clone)]
pub struct JobEdge {
    /// Its index in [`JobGraph::edges`].
    pub id: EdgeId,
    /// The producing vertex.
    pub source: VertexId,
    /// The consuming vertex.
    pub target: VertexId,
    /// How records are routed to the consumer's subtasks.
    pub partitioner: PartitionerKind,
    /// Whether the consumer reads while the producer writes, or only a finished partition.
    pub result_type: ResultType,
    /// The logical edge this job edge realises: (consumer node, index among its inputs).
    pub(crate) logical: (NodeId, usize),
}

/// Where one input channel of a consumer subtask reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputChannelSpec {
    /// The edge the channel belongs to.
    pub edge: EdgeId,
    /// The producer subtask it reads from.
    pub producer_subtask: u32,
    /// The producer's subpartition it reads.
    pub subpartition: u32,
}

/// A job compiled for execution: operators chained into vertices joined by edges, the unit the
/// JobManager schedules and every TaskManager builds its tasks from.
pub struct JobGraph {
    /// The job's name.
    pub name: String,
    /// Vertices, indexed by [`VertexId`].
    pub vertices: Vec<JobVertex>,
    /// Edges, indexed by [`EdgeId`].
    pub edges: Vec<JobEdge>,
    /// Key groups (`pipeline.max-parallelism`); no vertex is more parallel.
    pub max_parallelism: u32,
    pub(crate) logical: Arc<LogicalGraph>,
}

impl std::fmt::Debug for JobGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobGraph")
            .field("name", &self.name)
            .field("vertices", &self.vertices)
            .field("edges", &self.edges)
            .finish()
    }
}

impl JobGraph {
    /// Validates the logical graph and chains it into vertices.
    pub(crate) fn compile(
        name: &str,
        mut logical: LogicalGraph,
        max_parallelism: u32,
    ) -> Result<JobGraph, JobError> {
        validate_nodes(&logical, max_parallelism)?;
        check_acyclic(&logical)?;
        resolve_partitioners(&mut logical)?;
        let consumers = consumers_of(&logical);
        check_consumed(&logical, &consumers)?;
        let chained_to_upstream = chaining(&logical, &consumers);
        let (vertices, node_vertex) = build_vertices(&logical, &consumers, &chained_to_upstream);
        let mut graph = JobGraph {
            name: name.to_string(),
            vertices,
            edges: Vec::new(),
            max_parallelism,
            logical: Arc::new(logical),
        };
        graph.connect(&node_vertex, &chained_to_upstream);
        Ok(graph)
    }

    /// The names of the sinks chained into `vertex`, in chain order: what the JobManager
    /// grants a sink subtask's writes for (`connectors::write_grant`).
    pub fn sink_names(&self, vertex: VertexId) -> impl Iterator<Item = &str> {
        self.vertex(vertex).nodes.iter().filter_map(|n| {
            let node = &self.logical.nodes[n.0 as usize];
            matches!(node.kind, NodeKind::Sink(_)).then_some(node.name.as_str())
        })
    }

    fn connect(&mut self, node_vertex: &[VertexId], chained: &[bool]) {
        for (target, node) in self.logical.nodes.iter().enumerate() {
            if chained[target] {
                continue;
            }
            for (i, input) in node.inputs.iter().enumerate() {
                let id = EdgeId(self.edges.len() as u32);
                let (source, target_v) = (node_vertex[input.from.0 as usize], node_vertex[target]);
                self.edges.push(JobEdge {
                    id,
                    source,
                    target: target_v,
                    partitioner: input.partitioner,
                    result_type: input.result_type,
                    logical: (NodeId(target as u32), i),
                });
                self.vertices[source.0 as usize].outputs.push(id);
                self.vertices[target_v.0 as usize].inputs.push(id);
            }
        }
    }

    /// The vertex `id`.
    pub fn vertex(&self, id: VertexId) -> &JobVertex {
        &self.vertices[id.0 as usize]
    }

    /// The edge `id`.
    pub fn edge(&self, id: EdgeId) -> &JobEdge {
        &self.edges[id.0 as usize]
    }

    /// The longest its output may pause in a healthy run because operators hold their input
    /// (windows): the holds of all vertices added up, an upper bound for any path through it.
    pub fn output_hold(&self) -> std::time::Duration {
        self.vertices.iter().map(|v| v.output_hold).sum()
    }

    /// Subtasks over all vertices.
    pub fn subtask_count(&self) -> u32 {
        self.vertices.iter().map(|v| v.parallelism).sum()
    }

    /// How many subpartitions the producer of `edge` writes: one per consumer, or one for a
    /// pointwise (forward) edge.
    pub fn subpartitions(&self, edge: EdgeId) -> u32 {
        let e = self.edge(edge);
        if e.partitioner.is_pointwise() {
            1
        } else {
            self.vertex(e.target).parallelism
        }
    }

    /// The input channels of consumer `subtask` of `vertex`, in gate order.
    pub fn input_channels(&self, vertex: VertexId, subtask: u32) -> Vec<InputChannelSpec> {
        let mut channels = Vec::new();
        for &edge in &self.vertex(vertex).inputs {
            let e = self.edge(edge);
            if e.partitioner.is_pointwise() {
                channels.push(InputChannelSpec {
                    edge,
                    producer_subtask: subtask,
                    subpartition: 0,
                });
            } else {
                for producer in 0..self.vertex(e.source).parallelism {
                    channels.push(InputChannelSpec {
                        edge,
                        producer_subtask: producer,
                        subpartition: subtask,
                    });
                }
            }
        }
        channels
    }
}

fn validate_nodes(logical: &LogicalGraph, max_parallelism: u32) -> Result<(), JobError> {
    if !logical
        .nodes
        .iter()
        .any(|n| matches!(n.kind, NodeKind::Source(_)))
    {
        return Err(JobError::InvalidGraph("the job has no source".into()));
    }
    if !logical
        .nodes
        .iter()
        .any(|n| matches!(n.kind, NodeKind::Sink(_)))
    {
        return Err(JobError::InvalidGraph("the job has no sink".into()));
    }
    check_sink_names(logical)?;
    for node in &logical.nodes {
        if node.parallelism == 0 {
            return Err(JobError::ZeroParallelism {
                operator: node.name.clone(),
            });
        }
        if node.parallelism > max_parallelism {
            return Err(JobError::ParallelismAboveMax {
                operator: node.name.clone(),
                parallelism: node.parallelism,
                max: max_parallelism,
            });
        }
        if node
            .inputs
            .iter()
            .any(|e| e.from.0 as usize >= logical.nodes.len())
        {
            return Err(JobError::InvalidGraph(format!(
                "operator '{}' reads from an unknown operator",
                node.name
            )));
        }
    }
    Ok(())
}

/// Two sinks of one job may not share a name: a sink's name keys its output in the sink store
/// and its write grants (`connectors::write_grant`), so two of the same name would write into
/// one another's output and fence one another's attempts.
fn check_sink_names(logical: &LogicalGraph) -> Result<(), JobError> {
    let mut seen = std::collections::BTreeSet::new();
    let sinks = logical
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Sink(_)));
    for sink in sinks {
        if !seen.insert(sink.name.as_str()) {
            return Err(JobError::InvalidGraph(format!(
                "two sinks are named '{}': a sink's name keys its output and its write grants, so each sink needs a name of its own",
                sink.name
            )));
        }
    }
    Ok(())
}

/// Kahn's algorithm over the logical edges; a node left over lies on a cycle.
fn check_acyclic(logical: &LogicalGraph) -> Result<(), JobError> {
    let n = logical.nodes.len();
    let mut indegree: Vec<usize> = logical.nodes.iter().map(|node| node.inputs.len()).collect();
    let mut outs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (to, node) in logical.nodes.iter().enumerate() {
        for e in &node.inputs {
            outs[e.from.0 as usize].push(to);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = ready.pop() {
        seen += 1;
        for &to in &outs[i] {
            indegree[to] -= 1;
            if indegree[to] == 0 {
                ready.push(to);
            }
        }
    }
    if seen == n {
        return Ok(());
    }
    let on_cycle = (0..n)
        .filter(|&i| indegree[i] > 0)
        .map(|i| logical.nodes[i].name.clone())
        .collect();
    Err(JobError::Cycle {
        operators: on_cycle,
    })
}

/// Default edges become forward or rebalance (Flink's rule); forward needs equal parallelism.
fn resolve_partitioners(logical: &mut LogicalGraph) -> Result<(), JobError> {
    let parallelism: Vec<u32> = logical.nodes.iter().map(|n| n.parallelism).collect();
    let names: Vec<String> = logical.nodes.iter().map(|n| n.name.clone()).collect();
    for node in &mut logical.nodes {
        for edge in &mut node.inputs {
            let from_p = parallelism[edge.from.0 as usize];
            match edge.partitioner {
                PartitionerKind::Default if from_p == node.parallelism => {
                    edge.partitioner = PartitionerKind::Forward
                }
                PartitionerKind::Default => edge.partitioner = PartitionerKind::Rebalance,
                PartitionerKind::Forward if from_p != node.parallelism => {
                    return Err(JobError::ForwardParallelismMismatch {
                        from: format!("{} (parallelism {from_p})", names[edge.from.0 as usize]),
                        to: format!("{} (parallelism {})", node.name, node.parallelism),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// For each node, its consumers as (consumer node, input index).
fn consumers_of(logical: &LogicalGraph) -> Vec<Vec<(usize, usize)>> {
    let mut consumers = vec![Vec::new(); logical.nodes.len()];
    for (to, node) in logical.nodes.iter().enumerate() {
        for (i, e) in node.inputs.iter().enumerate() {
            consumers[e.from.0 as usize].push((to, i));
        }
    }
    consumers
}

fn check_consumed(
    logical: &LogicalGraph,
    consumers: &[Vec<(usize, usize)>],
) -> Result<(), JobError> {
    for (i, node) in logical.nodes.iter().enumerate() {
        let is_sink = matches!(node.kind, NodeKind::Sink(_));
        if !is_sink && consumers[i].is_empty() {
            return Err(JobError::InvalidGraph(format!(
                "the output of operator '{}' is never consumed; add a sink",
                node.name
            )));
        }
        if is_sink && !consumers[i].is_empty() {
            return Err(JobError::InvalidGraph(format!(
                "sink '{}' cannot have consumers",
                node.name
            )));
        }
    }
    Ok(())
}

/// Flink's chaining rule: a node joins its upstream's chain when it is that upstream's only
/// consumer, reads only from it, over a pipelined forward edge, in the same slot-sharing group.
fn chaining(logical: &LogicalGraph, consumers: &[Vec<(usize, usize)>]) -> Vec<bool> {
    logical
        .nodes
        .iter()
        .map(|node| {
            let [edge] = node.inputs.as_slice() else {
                return false;
            };
            let up = &logical.nodes[edge.from.0 as usize];
            edge.partitioner == PartitionerKind::Forward
                && edge.result_type == ResultType::Pipelined
                && consumers[edge.from.0 as usize].len() == 1
                && up.parallelism == node.parallelism
                && up.slot_sharing_group == node.slot_sharing_group
        })
        .collect()
}

fn build_vertices(
    logical: &LogicalGraph,
    consumers: &[Vec<(usize, usize)>],
    chained: &[bool],
) -> (Vec<JobVertex>, Vec<VertexId>) {
    let mut vertices = Vec::new();
    let mut node_vertex = vec![VertexId(0); logical.nodes.len()];
    for head in (0..logical.nodes.len()).filter(|&i| !chained[i]) {
        let id = VertexId(vertices.len() as u32);
        let mut nodes = vec![head];
        while let [(next, _)] = consumers[*nodes.last().expect("non-empty")].as_slice() {
            if !chained[*next] {
                break;
            }
            nodes.push(*next);
        }
        for &n in &nodes {
            node_vertex[n] = id;
        }
        let head_node = &logical.nodes[head];
        let names: Vec<&str> = nodes
            .iter()
            .map(|&n| logical.nodes[n].name.as_str())
            .collect();
        vertices.push(JobVertex {
            id,
            name: names.join(" -> "),
            parallelism: head_node.parallelism,
            nodes: nodes.iter().map(|&n| NodeId(n as u32)).collect(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            slot_sharing_group: head_node.slot_sharing_group.clone(),
            weight: nodes.iter().map(|&n| logical.nodes[n].weight).sum(),
            rate_limit: nodes
                .iter()
                .filter_map(|&n| logical.nodes[n].rate_limit)
                .reduce(f64::min),
            output_hold: std::time::Duration::from_millis(
                nodes
                    .iter()
                    .map(|&n| logical.nodes[n].output_hold_ms)
                    .fold(0u64, u64::saturating_add),
            ),
            is_source: matches!(head_node.kind, NodeKind::Source(_)),
            is_sink: nodes
                .iter()
                .any(|&n| matches!(logical.nodes[n].kind, NodeKind::Sink(_))),
        });
    }
    (vertices, node_vertex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testing::{log_source, Nop};
    use crate::api::{JobSpec, StreamEnv};
    use crate::graph::default_slot_sharing_groups;
    use crate::jobs::build_job;

    fn source(env: &StreamEnv) -> crate::api::DataStream<crate::connectors::log::LogRecord> {
        log_source(env, 2)
    }

    fn compile(env: StreamEnv) -> Result<JobGraph, JobError> {
        JobGraph::compile("test", env.into_logical(), 128)
    }

    #[test]
    fn a_window_holds_output_for_its_size_and_other_operators_do_not() {
        let windowed = crate::jobs::builtin()
            .build(
                &JobSpec::new("ad-stats")
                    .with("window-ms", 250)
                    .with("sink", "collect"),
                128,
                &crate::api::FileAccess::Anywhere,
            )
            .expect("builds");
        assert_eq!(
            windowed.output_hold(),
            std::time::Duration::from_millis(250)
        );
        let plain = crate::jobs::builtin()
            .build(
                &JobSpec::new("keyed-count").with("sink", "collect"),
                128,
                &crate::api::FileAccess::Anywhere,
            )
            .expect("builds");
        assert_eq!(plain.output_hold(), std::time::Duration::ZERO);
    }

    #[test]
    fn keyed_count_chains_into_two_vertices_joined_by_a_hash_edge() {
        let job =
            build_job(&JobSpec::new("keyed-count").with("parallelism", 4), 128).expect("valid");
        let names: Vec<&str> = job.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["source -> map", "count -> sink"]);
        assert_eq!(job.edges.len(), 1);
        assert_eq!(job.edges[0].partitioner, PartitionerKind::Hash);
        assert!(job.vertices[0].is_source && job.vertices[1].is_sink);
        // Consumer subtask 2 reads subpartition 2 of each of the 4 producers.
        let channels = job.input_channels(VertexId(1), 2);
        assert_eq!(channels.len(), 4);
        assert!(channels
            .iter()
            .enumerate()
            .all(|(i, c)| c.producer_subtask == i as u32 && c.subpartition == 2));
        assert_eq!(job.subpartitions(EdgeId(0)), 4);
        // One slot per subtask index: 4 groups of (source chain, count chain).
        let groups = default_slot_sharing_groups(&job);
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| g.members.len() == 2));
    }

    #[test]
    fn union_feeds_one_vertex_from_two_sources() {
        let job = build_job(&JobSpec::new("ad-stats"), 128).expect("valid");
        let window = job
            .vertices
            .iter()
            .find(|v| v.name.starts_with("window"))
            .expect("window vertex");
        assert_eq!(window.inputs.len(), 2);
        assert_eq!(job.vertices.iter().filter(|v| v.is_source).count(), 2);
    }

    #[test]
    fn forward_between_unequal_parallelisms_is_rejected() {
        let env = StreamEnv::new(2);
        source(&env)
            .parallelism(2)
            .forward()
            .map("m", |r| r.key)
            .parallelism(3)
            .sink("s", Nop);
        match compile(env) {
            Err(JobError::ForwardParallelismMismatch { from, to }) => {
                assert!(
                    from.contains("src (parallelism 2)") && to.contains("m (parallelism 3)"),
                    "{from} -> {to}"
                )
            }
            other => panic!("expected a forward mismatch, got {other:?}"),
        }
    }

    #[test]
    fn two_sinks_of_one_name_are_refused() {
        let env = StreamEnv::new(2);
        let stream = source(&env);
        stream.sink("out", Nop);
        stream.map("m", |r| r.key).sink("out", Nop);
        match compile(env) {
            Err(JobError::InvalidGraph(why)) => assert!(why.contains("'out'"), "{why}"),
            other => panic!("expected the duplicate sink refused, got {other:?}"),
        }
        // Named apart, the same job is valid.
        let env = StreamEnv::new(2);
        let stream = source(&env);
        stream.sink("out", Nop);
        stream.map("m", |r| r.key).sink("keys", Nop);
        assert!(compile(env).is_ok());
    }

    #[test]
    fn unequal_parallelism_without_a_partitioner_rebalances() {
        let env = StreamEnv::new(2);
        source(&env)
            .map("m", |r| r.key)
            .parallelism(3)
            .sink("s", Nop);
        let job = compile(env).expect("valid");
        assert_eq!(job.edges[0].partitioner, PartitionerKind::Rebalance);
        assert_eq!(job.vertices.len(), 2);
    }

    #[test]
    fn zero_parallelism_is_rejected_naming_the_operator() {
        let env = StreamEnv::new(2);
        source(&env)
            .map("m", |r| r.key)
            .parallelism(0)
            .sink("s", Nop);
        let err = compile(env).expect_err("invalid");
        assert_eq!(
            err,
            JobError::ZeroParallelism {
                operator: "m".into()
            }
        );
        assert!(err.to_string().contains("'m' has parallelism 0"));
    }

    #[test]
    fn a_cycle_is_rejected_naming_its_operators() {
        let env = StreamEnv::new(1);
        source(&env).map("a", |r| r).map("b", |r| r).sink("s", Nop);
        let mut logical = env.into_logical();
        // b -> a closes a loop a -> b -> a.
        let writer = logical.nodes[1].inputs[0].writer.clone();
        logical.nodes[1]
            .inputs
            .push(crate::api::stream::LogicalEdge {
                from: NodeId(2),
                partitioner: PartitionerKind::Rebalance,
                result_type: ResultType::Pipelined,
                writer,
            });
        match JobGraph::compile("cyclic", logical, 128) {
            Err(JobError::Cycle { operators }) => assert_eq!(operators, ["a", "b", "s"]),
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn an_unconsumed_stream_is_rejected() {
        let env = StreamEnv::new(1);
        let s = source(&env);
        s.map("dangling", |r| r.key);
        s.sink("s", Nop);
        let err = compile(env).expect_err("invalid");
        assert!(
            err.to_string().contains("'dangling' is never consumed"),
            "{err}"
        );
    }

    #[test]
    fn a_stream_consumed_twice_is_not_chained() {
        let env = StreamEnv::new(2);
        let s = source(&env);
        s.sink("s1", Nop);
        s.sink("s2", Nop);
        let job = compile(env).expect("valid");
        assert_eq!(job.vertices.len(), 3);
        assert!(job
            .edges
            .iter()
            .all(|e| e.partitioner == PartitionerKind::Forward && e.partitioner.is_pointwise()));
        assert_eq!(
            job.input_channels(VertexId(1), 1),
            vec![InputChannelSpec {
                edge: EdgeId(0),
                producer_subtask: 1,
                subpartition: 0
            }]
        );
    }
}
