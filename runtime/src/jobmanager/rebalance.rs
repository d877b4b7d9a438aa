//! Rebalancing: which slot-sharing groups to move when a TaskManager joins a cluster whose
//! placement a failover left uneven. A pure function of load; the JobManager carries the moves
//! out (`recovery.rs`), restarting only the moved subtasks.
//!
//! Only jobs under `taskmanager` failover in `tasks` mode rebalance: under `full` and `region`
//! a move would restart whole regions, so they keep their placement until their next restart,
//! which places everything evenly again.

use std::collections::BTreeMap;

use super::scheduler::SlotOffer;
use crate::graph::TaskManagerId;

/// Moves, as (group index, the free slot it moves to), that narrow the task-count range:
/// repeatedly the smallest group on the busiest TaskManager that fits under the gap goes to a
/// free slot of the lightest one, while that strictly narrows the gap.
///
/// `taskmanagers` lists every registered TaskManager (idle ones count as load 0); `groups`
/// holds each group's task count and current slot; `free` the free slots in pool order.
pub fn plan_moves(
    taskmanagers: impl IntoIterator<Item = TaskManagerId>,
    groups: &[(usize, Option<SlotOffer>)],
    mut free: Vec<SlotOffer>,
) -> Vec<(usize, SlotOffer)> {
    let mut load: BTreeMap<TaskManagerId, u64> = taskmanagers.into_iter().map(|t| (t, 0)).collect();
    for (tasks, slot) in groups {
        if let Some(o) = slot {
            *load.entry(o.tm).or_default() += *tasks as u64;
        }
    }
    let mut moved: Vec<(usize, SlotOffer)> = Vec::new();
    while let Some((&hi, &hi_load)) = load
        .iter()
        .max_by_key(|(t, l)| (**l, std::cmp::Reverse(**t)))
    {
        let Some((lo, lo_load)) = free
            .iter()
            .map(|o| (o.tm, load.get(&o.tm).copied().unwrap_or(0)))
            .min_by_key(|(t, l)| (*l, *t))
        else {
            break;
        };
        let gap = hi_load.saturating_sub(lo_load);
        let candidate = (0..groups.len())
            .filter(|g| groups[*g].1.is_some_and(|o| o.tm == hi))
            .filter(|g| !moved.iter().any(|(m, _)| m == g))
            .filter(|g| (groups[*g].0 as u64) < gap)
            .min_by_key(|g| groups[*g].0);
        let Some(g) = candidate else { break };
        let pos = free
            .iter()
            .position(|o| o.tm == lo)
            .expect("lo has a free slot");
        let offer = free.remove(pos);
        let tasks = groups[g].0 as u64;
        *load.entry(hi).or_default() -= tasks;
        *load.entry(lo).or_default() += tasks;
        moved.push((g, offer));
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(tm: u64, slot: u32) -> SlotOffer {
        SlotOffer {
            tm: TaskManagerId(tm),
            slot,
        }
    }

    fn tms(n: u64) -> Vec<TaskManagerId> {
        (1..=n).map(TaskManagerId).collect()
    }

    #[test]
    fn a_rejoined_taskmanager_gets_a_group_back() {
        // 4 groups of 2 tasks: tm-1 took tm-2's group after a crash; tm-2 rejoined, empty.
        let groups = vec![
            (2, Some(slot(1, 0))),
            (2, Some(slot(1, 1))),
            (2, Some(slot(3, 0))),
            (2, Some(slot(4, 0))),
        ];
        let free = vec![slot(2, 0), slot(2, 1), slot(3, 1), slot(4, 1)];
        let moves = plan_moves(tms(4), &groups, free);
        assert_eq!(moves, vec![(0, slot(2, 0))]);
    }

    #[test]
    fn an_even_placement_moves_nothing() {
        let groups = vec![(2, Some(slot(1, 0))), (2, Some(slot(2, 0)))];
        let free = vec![slot(1, 1), slot(2, 1)];
        assert!(plan_moves(tms(2), &groups, free).is_empty());
    }

    #[test]
    fn a_move_that_would_only_swap_the_imbalance_is_not_made() {
        // tm-1 holds 3 tasks, tm-2 1: moving the 3-task group would leave range 2 the other way.
        let groups = vec![(3, Some(slot(1, 0))), (1, Some(slot(2, 0)))];
        let free = vec![slot(2, 1)];
        assert!(plan_moves(tms(2), &groups, free).is_empty());
    }

    #[test]
    fn without_free_slots_nothing_moves() {
        let groups = vec![(2, Some(slot(1, 0))), (2, Some(slot(1, 1)))];
        assert!(plan_moves(tms(2), &groups, Vec::new()).is_empty());
    }

    #[test]
    fn several_moves_even_out_a_pile() {
        // Everything on tm-1, three empty TaskManagers with a slot each.
        let groups: Vec<(usize, Option<SlotOffer>)> =
            (0..4).map(|s| (1, Some(slot(1, s)))).collect();
        let free = vec![slot(2, 0), slot(3, 0), slot(4, 0)];
        let moves = plan_moves(tms(4), &groups, free);
        assert_eq!(moves.len(), 3);
        let targets: Vec<u64> = moves.iter().map(|(_, o)| o.tm.0).collect();
        assert_eq!(targets, vec![2, 3, 4]);
    }
}
