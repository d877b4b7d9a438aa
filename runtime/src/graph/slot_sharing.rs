//! Slot-sharing groups: subtasks of different vertices that may run in one slot.

use std::collections::BTreeMap;

use super::{JobGraph, VertexId};

/// The subtasks that will share one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionSlotSharingGroup {
    pub group: String,
    pub members: Vec<(VertexId, u32)>,
}

/// Flink's default grouping: within each slot-sharing group, subtask i of every vertex goes into
/// execution group i, so a job needs as many slots per group as its largest parallelism.
pub fn default_slot_sharing_groups(job: &JobGraph) -> Vec<ExecutionSlotSharingGroup> {
    let mut by_group: BTreeMap<&str, Vec<ExecutionSlotSharingGroup>> = BTreeMap::new();
    for vertex in &job.vertices {
        let groups = by_group
            .entry(vertex.slot_sharing_group.as_str())
            .or_default();
        for subtask in 0..vertex.parallelism {
            while groups.len() <= subtask as usize {
                groups.push(ExecutionSlotSharingGroup {
                    group: vertex.slot_sharing_group.clone(),
                    members: Vec::new(),
                });
            }
            groups[subtask as usize].members.push((vertex.id, subtask));
        }
    }
    by_group.into_values().flatten().collect()
}
