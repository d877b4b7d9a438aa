//! Pipelined regions and region failover, ported from Flink.
//!
//! A pipelined region is a set of subtasks that exchange data while running, so they have to be
//! scheduled, and restarted, together: a consumer reading a pipelined partition cannot resume
//! from the middle of a stream its producer no longer has. Blocking partitions are written out
//! completely before they are read, so they may separate regions.
//!
//! Region building follows Flink's `SchedulingPipelinedRegionComputeUtil`: subtasks joined by
//! pipelined results are united; the blocking results between the resulting raw regions form a
//! region graph, and every strongly connected component of that graph (regions that depend on
//! each other both ways) becomes one region, since neither side could be restarted first.
//!
//! The restart set follows Flink's `RestartPipelinedRegionFailoverStrategy`: the failed region,
//! the producer region of every input partition of a restarted region that cannot be read again,
//! and every region consuming a result of a restarted region, to a fixed point.

use std::collections::{BTreeSet, VecDeque};

use super::{JobGraph, ResultType, VertexId};

/// One end of a connection, seen from the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    peer: usize,
    result_type: ResultType,
}

/// A subtask and the result partitions it reads and writes.
#[derive(Debug, Clone, Default)]
struct TopologyVertex {
    /// Producers this subtask reads from.
    inputs: Vec<Link>,
    /// Consumers reading what this subtask produces.
    outputs: Vec<Link>,
}

/// A subtask-level topology: the unit Flink's region algorithms work on.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    vertices: Vec<TopologyVertex>,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subtask; returns its index.
    pub fn add_vertex(&mut self) -> usize {
        self.vertices.push(TopologyVertex::default());
        self.vertices.len() - 1
    }

    /// Subtasks in the topology.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// Whether it has no subtask.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    /// Connects producer vertex to consumer vertex through a result partition of `result_type`.
    pub fn connect(&mut self, producer: usize, consumer: usize, result_type: ResultType) {
        assert!(
            producer < self.len() && consumer < self.len(),
            "connect({producer}, {consumer}) on a topology of {} vertices",
            self.len()
        );
        self.vertices[producer].outputs.push(Link {
            peer: consumer,
            result_type,
        });
        self.vertices[consumer].inputs.push(Link {
            peer: producer,
            result_type,
        });
    }

    /// The subtask-level topology of a compiled job: vertex index = position of (vertex id,
    /// subtask) in job order. Connections come from the job's own input channels, so pointwise
    /// (forward) and all-to-all edges are expanded exactly as the network will wire them.
    pub fn from_job_graph(job: &JobGraph) -> (Self, Vec<(VertexId, u32)>) {
        let mut topology = Topology::new();
        let mut first = Vec::with_capacity(job.vertices.len());
        let mut subtasks = Vec::new();
        for vertex in &job.vertices {
            first.push(topology.len());
            for subtask in 0..vertex.parallelism {
                topology.add_vertex();
                subtasks.push((vertex.id, subtask));
            }
        }
        for (index, &(vertex, subtask)) in subtasks.iter().enumerate() {
            for channel in job.input_channels(vertex, subtask) {
                let edge = job.edge(channel.edge);
                let producer = first[edge.source.0 as usize] + channel.producer_subtask as usize;
                topology.connect(producer, index, edge.result_type);
            }
        }
        (topology, subtasks)
    }
}

/// Pipelined regions: each a sorted Vec of vertex indices; regions sorted by their smallest
/// vertex. Every vertex is in exactly one region.
pub fn pipelined_regions(t: &Topology) -> Vec<Vec<usize>> {
    let raw = raw_regions(t);
    let region_of = region_index(&raw, t.len());
    let graph = blocking_region_graph(t, &region_of, raw.len());
    let mut merged: Vec<Vec<usize>> = strongly_connected_components(&graph)
        .into_iter()
        .map(|scc| {
            let mut vertices: Vec<usize> = scc.iter().flat_map(|&r| raw[r].clone()).collect();
            vertices.sort_unstable();
            vertices
        })
        .collect();
    merged.sort_unstable_by_key(|region| region[0]);
    merged
}

/// Region failover: given the failed vertex and which vertices' produced results are currently
/// available (finished blocking results), the set of vertices to restart, sorted.
///
/// `regions` must be `pipelined_regions(t)` (or a coarser partition of all vertices).
pub fn region_restart_set(
    t: &Topology,
    regions: &[Vec<usize>],
    failed: usize,
    result_available: &dyn Fn(usize) -> bool,
) -> Vec<usize> {
    let region_of = region_index(regions, t.len());
    let mut involved = vec![false; regions.len()];
    let mut queue = VecDeque::from([region_of[failed]]);
    involved[region_of[failed]] = true;
    while let Some(region) = queue.pop_front() {
        for next in regions_involved_by(t, &regions[region], &region_of, result_available) {
            if !involved[next] {
                involved[next] = true;
                queue.push_back(next);
            }
        }
    }
    let mut restart: Vec<usize> = (0..regions.len())
        .filter(|&r| involved[r])
        .flat_map(|r| regions[r].iter().copied())
        .collect();
    restart.sort_unstable();
    restart
}

/// The regions a restarted region drags along: producers of inputs it cannot read again (a
/// pipelined partition is gone once consumed; a blocking one only if lost or never finished),
/// and all consumers, whose input is about to be produced anew.
fn regions_involved_by(
    t: &Topology,
    region: &[usize],
    region_of: &[usize],
    result_available: &dyn Fn(usize) -> bool,
) -> BTreeSet<usize> {
    let mut involved = BTreeSet::new();
    for &v in region {
        let vertex = &t.vertices[v];
        for input in &vertex.inputs {
            let rereadable =
                input.result_type == ResultType::Blocking && result_available(input.peer);
            if !rereadable {
                involved.insert(region_of[input.peer]);
            }
        }
        involved.extend(vertex.outputs.iter().map(|o| region_of[o.peer]));
    }
    involved
}

/// Unites the vertices joined by pipelined results (Flink's `buildRawRegions`); union-find
/// makes this independent of vertex order, where Flink needs a topological order.
fn raw_regions(t: &Topology) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..t.len()).collect();
    for (consumer, vertex) in t.vertices.iter().enumerate() {
        for input in &vertex.inputs {
            if input.result_type == ResultType::Pipelined {
                let (a, b) = (find(&mut parent, input.peer), find(&mut parent, consumer));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    group_by_root(&mut parent)
}

/// The root of `v`'s set, halving the path on the way.
fn find(parent: &mut [usize], mut v: usize) -> usize {
    while parent[v] != v {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    v
}

/// Sets as sorted vertex lists, ordered by smallest vertex (roots are always the smallest
/// member, since unions point the larger root at the smaller).
fn group_by_root(parent: &mut [usize]) -> Vec<Vec<usize>> {
    let mut slot = vec![usize::MAX; parent.len()];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for v in 0..parent.len() {
        let root = find(parent, v);
        if slot[root] == usize::MAX {
            slot[root] = groups.len();
            groups.push(Vec::new());
        }
        groups[slot[root]].push(v);
    }
    groups
}

/// For each vertex, the index of its region. Panics if a vertex is in no region: the regions
/// were not computed from this topology.
fn region_index(regions: &[Vec<usize>], vertices: usize) -> Vec<usize> {
    let mut region_of = vec![usize::MAX; vertices];
    for (r, region) in regions.iter().enumerate() {
        for &v in region {
            region_of[v] = r;
        }
    }
    if let Some(v) = region_of.iter().position(|&r| r == usize::MAX) {
        panic!("vertex {v} is in no region; regions must cover the topology");
    }
    region_of
}

/// Region-level edges along blocking results: the consumer region depends on the producer's.
fn blocking_region_graph(t: &Topology, region_of: &[usize], regions: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); regions];
    for (producer, vertex) in t.vertices.iter().enumerate() {
        for output in &vertex.outputs {
            let (from, to) = (region_of[producer], region_of[output.peer]);
            if output.result_type == ResultType::Blocking && from != to {
                out[from].insert(to);
            }
        }
    }
    out.into_iter().map(|s| s.into_iter().collect()).collect()
}

/// Tarjan's strongly connected components, iterative so a long chain of regions cannot
/// overflow the stack. Each component is a list of node indices.
fn strongly_connected_components(graph: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut tarjan = Tarjan::new(graph.len());
    for root in 0..graph.len() {
        if tarjan.index[root] == UNVISITED {
            tarjan.search(graph, root);
        }
    }
    tarjan.components
}

const UNVISITED: usize = usize::MAX;

struct Tarjan {
    next_index: usize,
    index: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    components: Vec<Vec<usize>>,
}

impl Tarjan {
    fn new(nodes: usize) -> Self {
        Tarjan {
            next_index: 0,
            index: vec![UNVISITED; nodes],
            low: vec![0; nodes],
            on_stack: vec![false; nodes],
            stack: Vec::new(),
            components: Vec::new(),
        }
    }

    /// Depth-first search from `root`; the explicit call stack holds (node, next child).
    fn search(&mut self, graph: &[Vec<usize>], root: usize) {
        self.open(root);
        let mut calls = vec![(root, 0usize)];
        while let Some((v, child)) = calls.last_mut() {
            let v = *v;
            if let Some(&w) = graph[v].get(*child) {
                *child += 1;
                if self.index[w] == UNVISITED {
                    self.open(w);
                    calls.push((w, 0));
                } else if self.on_stack[w] {
                    self.low[v] = self.low[v].min(self.index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                self.low[parent] = self.low[parent].min(self.low[v]);
            }
            if self.low[v] == self.index[v] {
                self.close_component(v);
            }
        }
    }

    fn open(&mut self, v: usize) {
        self.index[v] = self.next_index;
        self.low[v] = self.next_index;
        self.next_index += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
    }

    /// `v` is the root of a component: everything above it on the stack belongs to it.
    fn close_component(&mut self, v: usize) {
        let mut component = Vec::new();
        loop {
            let w = self
                .stack
                .pop()
                .expect("the component root is on the stack");
            self.on_stack[w] = false;
            component.push(w);
            if w == v {
                break;
            }
        }
        self.components.push(component);
    }
}

#[cfg(test)]
mod tests {
    //! Region cases ported from Flink's `SchedulingPipelinedRegionComputeUtilTest` and
    //! `LogicalPipelinedRegionComputeUtilTest`, failover cases from
    //! `RestartPipelinedRegionFailoverStrategyTest` (apache/flink, package
    //! `org.apache.flink.runtime.executiongraph.failover`). Flink's tests name vertices v1, v2,
    //! ...; here they are indices 0, 1, ... in creation order. Flink asserts "same region" and
    //! "distinct regions" pairwise; these tests assert the whole partition, which is stricter.

    use super::*;
    use crate::api::testing::{log_source, Nop};
    use crate::api::{JobSpec, StreamEnv};
    use crate::jobs::build_job;

    const P: ResultType = ResultType::Pipelined;
    const B: ResultType = ResultType::Blocking;

    /// A topology of `n` vertices with the given connections.
    fn topology(n: usize, edges: &[(usize, usize, ResultType)]) -> Topology {
        let mut t = Topology::new();
        for _ in 0..n {
            t.add_vertex();
        }
        for &(from, to, ty) in edges {
            t.connect(from, to, ty);
        }
        t
    }

    /// Every producer connected to every consumer.
    fn all_to_all(
        producers: &[usize],
        consumers: &[usize],
        ty: ResultType,
    ) -> Vec<(usize, usize, ResultType)> {
        producers
            .iter()
            .flat_map(|&p| consumers.iter().map(move |&c| (p, c, ty)))
            .collect()
    }

    fn regions(n: usize, edges: &[(usize, usize, ResultType)]) -> Vec<Vec<usize>> {
        pipelined_regions(&topology(n, edges))
    }

    fn restarts(t: &Topology, failed: usize, available: &dyn Fn(usize) -> bool) -> Vec<usize> {
        region_restart_set(t, &pipelined_regions(t), failed, available)
    }

    fn all_available(_: usize) -> bool {
        true
    }

    /// Mirrors `testIndividualVertices`.
    /// ```text
    ///   (v1)
    ///   (v2)
    ///   (v3)
    /// ```
    #[test]
    fn individual_vertices_are_separate_regions() {
        assert_eq!(regions(3, &[]), [vec![0], vec![1], vec![2]]);
    }

    /// Mirrors `testEmbarrassinglyParallelCase`.
    /// ```text
    ///   (a1) --> (b1)        a1..a3 = 0..2
    ///   (a2) --> (b2)        b1..b3 = 3..5
    ///   (a3) --> (b3)
    /// ```
    #[test]
    fn embarrassingly_parallel_chains_are_one_region_each() {
        let edges = [(0, 3, P), (1, 4, P), (2, 5, P)];
        assert_eq!(regions(6, &edges), [vec![0, 3], vec![1, 4], vec![2, 5]]);
    }

    /// Mirrors `testOneComponentViaTwoExchanges`.
    /// ```text
    ///   (a1) -+-> (b1) -+-> (c1)      a = 0,1; b = 2,3; c = 4,5
    ///         X         X
    ///   (a2) -+-> (b2) -+-> (c2)
    /// ```
    #[test]
    fn two_pipelined_all_to_all_exchanges_form_one_region() {
        let mut edges = all_to_all(&[0, 1], &[2, 3], P);
        edges.extend(all_to_all(&[2, 3], &[4, 5], P));
        assert_eq!(regions(6, &edges), [vec![0, 1, 2, 3, 4, 5]]);
    }

    /// Mirrors `testOneComponentViaCascadeOfJoins`.
    /// ```text
    ///   (v1)--+
    ///         +--(v5)-+
    ///   (v2)--+       |
    ///                 +--(v7)
    ///   (v3)--+       |
    ///         +--(v6)-+
    ///   (v4)--+
    /// ```
    #[test]
    fn pipelined_cascade_of_joins_is_one_region() {
        let edges = [
            (0, 4, P),
            (1, 4, P),
            (2, 5, P),
            (3, 5, P),
            (4, 6, P),
            (5, 6, P),
        ];
        assert_eq!(regions(7, &edges), [(0..7).collect::<Vec<_>>()]);
    }

    /// Mirrors `testOneComponentInstanceFromOneSource`.
    /// ```text
    ///                +--(v4)
    ///         +--(v2)-+
    ///         |       +--(v5)
    ///   (v1)--+
    ///         |       +--(v6)
    ///         +--(v3)-+
    ///                 +--(v7)
    /// ```
    #[test]
    fn pipelined_fan_out_from_one_source_is_one_region() {
        let edges = [
            (0, 1, P),
            (0, 2, P),
            (1, 3, P),
            (1, 4, P),
            (2, 5, P),
            (2, 6, P),
        ];
        assert_eq!(regions(7, &edges), [(0..7).collect::<Vec<_>>()]);
    }

    /// Mirrors `testTwoComponentsViaBlockingExchange`.
    /// ```text
    ///   (a1) -+-> (b1) ---> (c1)      a = 0,1; b = 2,3; c = 4,5
    ///         X
    ///   (a2) -+-> (b2) ---> (c2)
    ///         ^          ^
    ///    (pipelined) (blocking, pointwise)
    /// ```
    #[test]
    fn pointwise_blocking_exchange_splits_consumers_off() {
        let mut edges = all_to_all(&[0, 1], &[2, 3], P);
        edges.extend([(2, 4, B), (3, 5, B)]);
        assert_eq!(regions(6, &edges), [vec![0, 1, 2, 3], vec![4], vec![5]]);
    }

    /// Mirrors `testTwoComponentsViaBlockingExchange2`.
    /// ```text
    ///   (a1) -+-> (b1) -+-> (c1)      a = 0,1; b = 2,3; c = 4,5
    ///         X         X
    ///   (a2) -+-> (b2) -+-> (c2)
    ///         ^         ^
    ///    (pipelined) (blocking)
    /// ```
    #[test]
    fn all_to_all_blocking_exchange_splits_consumers_off() {
        let mut edges = all_to_all(&[0, 1], &[2, 3], P);
        edges.extend(all_to_all(&[2, 3], &[4, 5], B));
        assert_eq!(regions(6, &edges), [vec![0, 1, 2, 3], vec![4], vec![5]]);
    }

    /// Mirrors `testMultipleComponentsViaCascadeOfJoins`: components {1,2,5}, {3,4,6}, {7}.
    /// ```text
    ///   (1)--+
    ///        +--(5)-+
    ///   (2)--+      |
    ///           (blocking)
    ///               +--(7)
    ///           (blocking)
    ///   (3)--+      |
    ///        +--(6)-+
    ///   (4)--+
    /// ```
    #[test]
    fn blocking_cascade_of_joins_gives_three_regions() {
        let edges = [
            (0, 4, P),
            (1, 4, P),
            (2, 5, P),
            (3, 5, P),
            (4, 6, B),
            (5, 6, B),
        ];
        assert_eq!(regions(7, &edges), [vec![0, 1, 4], vec![2, 3, 5], vec![6]]);
    }

    /// Mirrors `testDiamondWithMixedPipelinedAndBlockingExchanges`: the blocking edge does not
    /// split, because v2 and v1 are also joined through pipelined v4 and v3.
    /// ```text
    ///      (blocking)
    ///          v
    ///        +-|-(v2)-+
    ///   (v1)-+        +--(v4)
    ///        +---(v3)-+
    /// ```
    #[test]
    fn diamond_with_one_blocking_edge_is_one_region() {
        let edges = [(0, 1, B), (0, 2, P), (1, 3, P), (2, 3, P)];
        assert_eq!(regions(4, &edges), [vec![0, 1, 2, 3]]);
    }

    /// Mirrors `testCyclicDependentRegionsAreMerged`: raw regions {v1,v3,v4} and {v2} depend on
    /// each other through the two blocking edges, so they merge.
    /// ```text
    ///      (blocking)(blocking)
    ///          v         v
    ///        +-|-(v2)----|-+
    ///   (v1)-+             +--(v4)
    ///        +---(v3)------+
    /// ```
    #[test]
    fn cyclic_dependent_regions_are_merged() {
        let edges = [(0, 1, B), (0, 2, P), (1, 3, B), (2, 3, P)];
        assert_eq!(regions(4, &edges), [vec![0, 1, 2, 3]]);
    }

    /// Mirrors `LogicalPipelinedRegionComputeUtilTest.testVariousResultPartitionTypesBetweenVertices`
    /// (at parallelism 1): region sizes {1,2}, {1,1,1} and {3}.
    /// ```text
    ///   (v1) -x-> (v2) -y-> (v3)     (x, y) in {(B, P), (B, B), (P, P)}
    /// ```
    #[test]
    fn sequential_chain_with_each_result_type_combination() {
        let chain = |x, y| regions(3, &[(0, 1, x), (1, 2, y)]);
        assert_eq!(chain(B, P), [vec![0], vec![1, 2]]);
        assert_eq!(chain(B, B), [vec![0], vec![1], vec![2]]);
        assert_eq!(chain(P, P), [vec![0, 1, 2]]);
    }

    /// Mirrors `LogicalPipelinedRegionComputeUtilTest.testTwoInputsMergesIntoOne`: sizes {3, 1}.
    /// ```text
    ///   (v1) --P--+
    ///             +--> (v3) --P--> (v4)
    ///   (v2) --B--+
    /// ```
    #[test]
    fn two_inputs_merge_only_over_the_pipelined_one() {
        let edges = [(0, 2, P), (1, 2, B), (2, 3, P)];
        assert_eq!(regions(4, &edges), [vec![0, 2, 3], vec![1]]);
    }

    /// Mirrors `LogicalPipelinedRegionComputeUtilTest.testOneInputSplitsIntoTwo`: sizes {3, 1}.
    /// ```text
    ///                      +--P--> (v3)
    ///   (v1) --P--> (v2) --+
    ///                      +--B--> (v4)
    /// ```
    #[test]
    fn one_input_splits_off_the_blocking_consumer() {
        let edges = [(0, 1, P), (1, 2, P), (1, 3, B)];
        assert_eq!(regions(4, &edges), [vec![0, 1, 2], vec![3]]);
    }

    /// Not in Flink's suite: a dependency cycle through three raw regions ({0,3}, {1}, {2})
    /// merges all three, while {4}, only downstream of the cycle, stays apart.
    /// ```text
    ///   (0) ----------P----------> (3) --B--> (4)
    ///    |                          ^
    ///    +--B--> (1) --B--> (2) --B-+
    /// ```
    #[test]
    fn a_cycle_through_three_regions_merges_only_the_cycle() {
        let edges = [(0, 3, P), (0, 1, B), (1, 2, B), (2, 3, B), (3, 4, B)];
        assert_eq!(regions(5, &edges), [vec![0, 1, 2, 3], vec![4]]);
    }

    /// Mirrors `RestartPipelinedRegionFailoverStrategyTest.testRegionFailoverForRegionInternalErrors`:
    /// a task's own failure restarts its region and its consumer regions.
    /// ```text
    ///   (v1) -+-> (v4)
    ///         x
    ///   (v2) -+-> (v5)
    ///   (v3) ---> (v6)
    ///         ^
    ///     (blocking)
    /// ```
    #[test]
    fn internal_error_restarts_the_region_and_its_consumers() {
        let mut edges = all_to_all(&[0, 1], &[3, 4], B);
        edges.push((2, 5, B));
        let t = topology(6, &edges);
        assert_eq!(restarts(&t, 0, &all_available), [0, 3, 4]);
        assert_eq!(restarts(&t, 1, &all_available), [1, 3, 4]);
        assert_eq!(restarts(&t, 2, &all_available), [2, 5]);
        assert_eq!(restarts(&t, 3, &all_available), [3]);
        assert_eq!(restarts(&t, 4, &all_available), [4]);
        assert_eq!(restarts(&t, 5, &all_available), [5]);
    }

    /// Mirrors `RestartPipelinedRegionFailoverStrategyTest.testRegionFailoverForDataConsumptionErrors`:
    /// a consumer failing to read a partition also restarts that partition's producer, and the
    /// producer's other consumers. (Flink marks the partition named by the exception as failed;
    /// here that is the availability function.)
    /// ```text
    ///   (v1) -+-> (v4)
    ///         x
    ///   (v2) -+-> (v5)
    ///   (v3) ---> (v6)
    ///         ^
    ///     (blocking)
    /// ```
    #[test]
    fn data_consumption_error_restarts_the_producer_region_too() {
        let mut edges = all_to_all(&[0, 1], &[3, 4], B);
        edges.push((2, 5, B));
        let t = topology(6, &edges);
        let lost = |producer: usize| move |p: usize| p != producer;
        assert_eq!(restarts(&t, 3, &lost(0)), [0, 3, 4]);
        assert_eq!(restarts(&t, 3, &lost(1)), [1, 3, 4]);
        assert_eq!(restarts(&t, 4, &lost(0)), [0, 3, 4]);
        assert_eq!(restarts(&t, 4, &lost(1)), [1, 3, 4]);
        assert_eq!(restarts(&t, 5, &lost(2)), [2, 5]);
    }

    /// Mirrors `RestartPipelinedRegionFailoverStrategyTest
    /// .testRegionFailoverForVariousResultPartitionAvailabilityCombinations`.
    /// ```text
    ///   (v1) --rp1--+
    ///               +--> (v3)      rp1, rp2 blocking
    ///   (v2) --rp2--+
    /// ```
    #[test]
    fn every_availability_combination_of_two_blocking_inputs() {
        let t = topology(3, &[(0, 2, B), (1, 2, B)]);
        let cases: [(bool, bool, [&[usize]; 3]); 4] = [
            (true, true, [&[0, 2], &[1, 2], &[2]]),
            (false, true, [&[0, 2], &[0, 1, 2], &[0, 2]]),
            (true, false, [&[0, 1, 2], &[1, 2], &[1, 2]]),
            (false, false, [&[0, 1, 2], &[0, 1, 2], &[0, 1, 2]]),
        ];
        for (rp1, rp2, expected) in cases {
            let available = move |p: usize| if p == 0 { rp1 } else { rp2 };
            for (failed, want) in expected.iter().enumerate() {
                assert_eq!(
                    restarts(&t, failed, &available),
                    *want,
                    "rp1={rp1} rp2={rp2} v{}",
                    failed + 1
                );
            }
        }
    }

    /// Mirrors `RestartPipelinedRegionFailoverStrategyTest.testRegionFailoverForMultipleVerticesRegions`:
    /// regions {1,2}, {3,4}, {5,6}; restarts propagate downstream transitively, and upstream
    /// only when an input partition is lost.
    /// ```text
    ///   (v1) --P--> (v2) --B--> (v3) --P--> (v4) --B--> (v5) --P--> (v6)
    /// ```
    #[test]
    fn restarts_propagate_through_multi_vertex_regions() {
        let edges = [(0, 1, P), (1, 2, B), (2, 3, P), (3, 4, B), (4, 5, P)];
        let t = topology(6, &edges);
        assert_eq!(pipelined_regions(&t), [vec![0, 1], vec![2, 3], vec![4, 5]]);
        assert_eq!(restarts(&t, 2, &all_available), [2, 3, 4, 5]);
        assert_eq!(restarts(&t, 2, &|p| p != 1), [0, 1, 2, 3, 4, 5]);
    }

    /// Mirrors `RestartPipelinedRegionFailoverStrategyTest.testRegionFailoverForHybridEdge`, with
    /// rill's two result types standing in: HYBRID_FULL (re-readable) becomes an available
    /// blocking result, HYBRID_SELECTIVE (not re-readable) a blocking result that is unavailable.
    /// Only v4 and v5 share a region.
    /// ```text
    ///   (v1) -full------+
    ///   (v2) -blocking--+
    ///   (v3) -selective-+--> (v5) -full--> (v6)
    ///   (v4) -pipelined-+
    /// ```
    #[test]
    fn hybrid_edges_as_blocking_results_with_their_availability() {
        let edges = [(0, 4, B), (1, 4, B), (2, 4, B), (3, 4, P), (4, 5, B)];
        let t = topology(6, &edges);
        let reconsumable = |p: usize| p != 2;
        assert_eq!(restarts(&t, 4, &reconsumable), [2, 3, 4, 5]);
        assert_eq!(restarts(&t, 5, &reconsumable), [5]);
    }

    fn source(env: &StreamEnv) -> crate::api::DataStream<crate::connectors::log::LogRecord> {
        log_source(env, 3)
    }

    fn compile(env: StreamEnv) -> JobGraph {
        JobGraph::compile("test", env.into_logical(), 128).expect("valid job")
    }

    /// keyed-count at parallelism 4: `source -> map` and `count -> sink`, joined by a pipelined
    /// hash (all-to-all) exchange, so all 8 subtasks are one region and any failure restarts all.
    #[test]
    fn keyed_count_is_one_region_of_eight_subtasks() {
        let job =
            build_job(&JobSpec::new("keyed-count").with("parallelism", 4), 128).expect("valid");
        let (t, subtasks) = Topology::from_job_graph(&job);
        assert_eq!(subtasks.len(), 8);
        assert_eq!(subtasks[5], (VertexId(1), 1));
        let regions = pipelined_regions(&t);
        assert_eq!(regions, [(0..8).collect::<Vec<_>>()]);
        assert_eq!(
            region_restart_set(&t, &regions, 6, &all_available),
            (0..8).collect::<Vec<_>>()
        );
    }

    /// A forward-only job (one source read by two sinks, three vertices that do not chain):
    /// subtask i of each vertex forms region i, and a failure restarts only that chain.
    /// ```text
    ///   src[i] --fwd--> s1[i]
    ///          --fwd--> s2[i]     i = 0..3; indices src 0..3, s1 3..6, s2 6..9
    /// ```
    #[test]
    fn forward_only_job_has_one_region_per_subtask_chain() {
        let env = StreamEnv::new(3);
        let s = source(&env);
        s.sink("s1", Nop);
        s.sink("s2", Nop);
        let job = compile(env);
        let (t, subtasks) = Topology::from_job_graph(&job);
        assert_eq!(subtasks[4], (VertexId(1), 1));
        let regions = pipelined_regions(&t);
        assert_eq!(regions, [vec![0, 3, 6], vec![1, 4, 7], vec![2, 5, 8]]);
        assert_eq!(
            region_restart_set(&t, &regions, 7, &all_available),
            [1, 4, 7]
        );
    }

    /// A blocking rebalance splits every subtask into its own region: a consumer restarts alone
    /// while its inputs are finished, a producer restarts with every consumer it feeds.
    /// ```text
    ///   src[0] -+-B-> m[0] -> sink      indices: src 0,1; map->sink chain 2,3
    ///           X
    ///   src[1] -+-B-> m[1] -> sink
    /// ```
    #[test]
    fn blocking_job_exchange_splits_regions() {
        let env = StreamEnv::new(2);
        source(&env)
            .rebalance()
            .blocking()
            .map("m", |r| r.key)
            .sink("s", Nop);
        let job = compile(env);
        let (t, _) = Topology::from_job_graph(&job);
        let regions = pipelined_regions(&t);
        assert_eq!(regions, [vec![0], vec![1], vec![2], vec![3]]);
        assert_eq!(region_restart_set(&t, &regions, 2, &all_available), [2]);
        assert_eq!(region_restart_set(&t, &regions, 2, &|p| p != 1), [1, 2, 3]);
        assert_eq!(
            region_restart_set(&t, &regions, 0, &all_available),
            [0, 2, 3]
        );
    }
}
