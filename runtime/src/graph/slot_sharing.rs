//! Slot-sharing groups: subtasks of different vertices that may run in one slot.
//!
//! Two groupings, chosen by `taskmanager.load-balance.mode`:
//! - the default (modes `none` and `slots`): subtask i of every vertex of a slot-sharing group
//!   goes into execution group i, so the first groups collect the subtasks of every vertex and
//!   the last ones only those of the widest vertices;
//! - the task-balanced grouping (mode `tasks`, Flink's FLIP-370
//!   `TaskBalancedPreferredSlotSharingStrategy`): vertices at the group's largest parallelism
//!   still put subtask i into group i, but vertices with a smaller parallelism are dealt round
//!   robin, each continuing where the previous such vertex stopped. Within one slot-sharing
//!   group the execution groups then differ in task count by at most one, and no group holds two
//!   subtasks of one vertex (a vertex below the maximum has fewer subtasks than there are groups).
//!
//! Both count tasks, not weights: the grouping never looks at `JobVertex::weight`. Each group
//! records its summed weight, which the `tasks` placement balances across TaskManagers.

use std::collections::BTreeMap;

use super::{JobGraph, JobVertex, VertexId};
use crate::config::LoadBalanceMode;

/// The subtasks that will share one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionSlotSharingGroup {
    /// The slot-sharing group (by name) its subtasks belong to.
    pub group: String,
    /// The subtasks sharing the slot, as (vertex, subtask index).
    pub members: Vec<(VertexId, u32)>,
    /// Summed `JobVertex::weight` of the members (each subtask counts its vertex's weight once).
    /// With the default weight of 1 per operator this is proportional to the task count.
    pub weight: u64,
}

impl ExecutionSlotSharingGroup {
    /// How many subtasks share this slot.
    pub fn tasks(&self) -> usize {
        self.members.len()
    }

    /// The execution groups of `job` under `mode`: task-balanced for `tasks`, the default for
    /// `none` and `slots`. One group per slot the job needs, ordered by slot-sharing group name,
    /// then group index.
    pub fn for_job(job: &JobGraph, mode: LoadBalanceMode) -> Vec<ExecutionSlotSharingGroup> {
        Self::for_vertices(&job.vertices, mode)
    }

    /// As [`ExecutionSlotSharingGroup::for_job`], from the vertices alone (in the job's order,
    /// which is topological: the round robin follows it).
    pub fn for_vertices(
        vertices: &[JobVertex],
        mode: LoadBalanceMode,
    ) -> Vec<ExecutionSlotSharingGroup> {
        build(vertices, mode == LoadBalanceMode::Tasks)
    }
}

/// Flink's default grouping: within each slot-sharing group, subtask i of every vertex goes into
/// execution group i, so a job needs as many slots per group as its largest parallelism.
pub fn default_slot_sharing_groups(job: &JobGraph) -> Vec<ExecutionSlotSharingGroup> {
    build(&job.vertices, false)
}

fn build(vertices: &[JobVertex], balanced: bool) -> Vec<ExecutionSlotSharingGroup> {
    let mut widest: BTreeMap<&str, u32> = BTreeMap::new();
    for vertex in vertices {
        let max = widest
            .entry(vertex.slot_sharing_group.as_str())
            .or_default();
        *max = (*max).max(vertex.parallelism);
    }
    // Per slot-sharing group: its execution groups and the next round-robin index.
    let mut by_group: BTreeMap<&str, (Vec<ExecutionSlotSharingGroup>, u32)> = widest
        .iter()
        .map(|(&name, &max)| {
            let groups = (0..max)
                .map(|_| ExecutionSlotSharingGroup {
                    group: name.to_string(),
                    members: Vec::new(),
                    weight: 0,
                })
                .collect();
            (name, (groups, 0))
        })
        .collect();
    for vertex in vertices {
        let (groups, next) = by_group
            .get_mut(vertex.slot_sharing_group.as_str())
            .expect("every slot-sharing group was counted");
        let slots = groups.len() as u32;
        if vertex.parallelism == 0 {
            continue;
        }
        let round_robin = balanced && vertex.parallelism < slots;
        let start = if round_robin { *next } else { 0 };
        for subtask in 0..vertex.parallelism {
            let group = &mut groups[((start + subtask) % slots) as usize];
            group.members.push((vertex.id, subtask));
            group.weight += u64::from(vertex.weight);
        }
        if round_robin {
            *next = (start + vertex.parallelism) % slots;
        }
    }
    by_group
        .into_values()
        .flat_map(|(groups, _)| groups)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn vertex(id: u32, parallelism: u32, group: &str) -> JobVertex {
        JobVertex {
            id: VertexId(id),
            name: format!("v{id}"),
            parallelism,
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            slot_sharing_group: group.into(),
            weight: 1,
            rate_limit: None,
            output_hold: std::time::Duration::ZERO,
            is_source: false,
            is_sink: false,
        }
    }

    fn chain(parallelisms: &[u32]) -> Vec<JobVertex> {
        parallelisms
            .iter()
            .enumerate()
            .map(|(i, &p)| vertex(i as u32, p, "default"))
            .collect()
    }

    fn task_counts(groups: &[ExecutionSlotSharingGroup]) -> Vec<usize> {
        groups
            .iter()
            .map(ExecutionSlotSharingGroup::tasks)
            .collect()
    }

    /// Flink's balanced-scheduling docs, figures (c)-(e): parallelisms 1, 4, 4, 2, 3 in one
    /// slot-sharing group need 4 slots; the default leaves 5..2 tasks per slot (range 3), the
    /// balanced grouping 4, 4, 3, 3 (range 1).
    #[test]
    fn docs_example_tasks_to_slots() {
        let vertices = chain(&[1, 4, 4, 2, 3]);
        let default = ExecutionSlotSharingGroup::for_vertices(&vertices, LoadBalanceMode::None);
        assert_eq!(task_counts(&default), [5, 4, 3, 2]);
        let balanced = ExecutionSlotSharingGroup::for_vertices(&vertices, LoadBalanceMode::Tasks);
        assert_eq!(task_counts(&balanced), [4, 4, 3, 3]);
        // Vertex 0 (p=1) takes group 0; vertex 3 (p=2) continues at 1, 2; vertex 4 (p=3) at 3, 0, 1.
        assert_eq!(
            balanced[0].members,
            [
                (VertexId(0), 0),
                (VertexId(1), 0),
                (VertexId(2), 0),
                (VertexId(4), 1)
            ]
        );
        assert_eq!(
            balanced[3].members,
            [(VertexId(1), 3), (VertexId(2), 3), (VertexId(4), 0)]
        );
        assert!(balanced.iter().all(|g| g.weight == g.tasks() as u64));
        assert_eq!(
            ExecutionSlotSharingGroup::for_vertices(&vertices, LoadBalanceMode::Slots),
            default
        );
    }

    #[test]
    fn round_robin_wraps_and_never_doubles_a_vertex() {
        // 64 + 256 + 256 non-maximal subtasks over 512 groups: the third vertex wraps around.
        let vertices = chain(&[64, 256, 256, 512]);
        let groups = ExecutionSlotSharingGroup::for_vertices(&vertices, LoadBalanceMode::Tasks);
        assert_eq!(groups.len(), 512);
        let counts = task_counts(&groups);
        assert!(counts[..64].iter().all(|&c| c == 3));
        assert!(counts[64..].iter().all(|&c| c == 2));
        for g in &groups {
            let distinct: BTreeSet<VertexId> = g.members.iter().map(|m| m.0).collect();
            assert_eq!(distinct.len(), g.members.len());
        }
    }

    #[test]
    fn slot_sharing_groups_are_kept_apart_and_weights_summed() {
        let mut vertices = vec![vertex(0, 2, "a"), vertex(1, 3, "b"), vertex(2, 1, "a")];
        vertices[1].weight = 5;
        vertices[2].weight = 7;
        let groups = ExecutionSlotSharingGroup::for_vertices(&vertices, LoadBalanceMode::Tasks);
        let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["a", "a", "b", "b", "b"]);
        assert_eq!(groups[0].members, [(VertexId(0), 0), (VertexId(2), 0)]);
        assert_eq!(groups[0].weight, 8);
        assert_eq!(groups[1].weight, 1);
        assert!(groups[2..].iter().all(|g| g.weight == 5));
    }
}
