//! Where rill decides what restarts: the failover planner (Flink's `FailoverStrategy`).
//!
//! A pure function of the failover strategy, the execution graph and what failed; it sends
//! nothing and changes nothing, so every strategy and rule is unit-tested here. The JobManager
//! (`recovery.rs`) carries the plan out: cancels, re-numbers attempts and redeploys.
//!
//! - `full` restarts every subtask.
//! - `region` restarts the pipelined regions of the failed subtasks and the regions they drag
//!   along (Flink's RestartPipelinedRegionFailoverStrategy). rill keeps no finished blocking
//!   results for re-reading, so every result counts as unavailable.
//! - `taskmanager` restarts only the lost TaskManager's subtasks; a task's own failure falls
//!   back to `region` (WeChat's RestartTaskManagerFailoverStrategy).
//!
//! Two rules hold under every strategy:
//! - A finished subtask stays finished (a transactional sink committed its output at the end
//!   of its input), unless it was itself lost with output some consumer still needs.
//! - The finished producers of a restarted subtask restart too, until nothing changes: a
//!   finished producer's output was read once and is gone (Flink restarts the producers of
//!   unavailable partitions likewise).

use std::collections::BTreeSet;

use crate::config::FailoverStrategy;
use crate::graph::{
    pipelined_regions, region_restart_set, ExecutionAttemptId, ExecutionGraph, ExecutionState,
    SubtaskId, Topology,
};

/// What failed: a task by itself, or every task of a TaskManager that was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureScope {
    /// A task reported its own failure (its code, its state, a lost input it cannot survive).
    Task,
    /// A TaskManager was lost, and with it every attempt it ran.
    TaskManagerLost,
}

/// The subtasks a failure of `failed` restarts under `strategy` (see the module docs).
pub fn subtasks_to_restart(
    eg: &ExecutionGraph,
    strategy: FailoverStrategy,
    failed: &[ExecutionAttemptId],
    scope: FailureScope,
) -> BTreeSet<SubtaskId> {
    let chosen: BTreeSet<SubtaskId> = match (strategy, scope) {
        (FailoverStrategy::Full, _) => all(eg),
        (FailoverStrategy::TaskManager, FailureScope::TaskManagerLost) => {
            failed.iter().map(|a| a.subtask_id()).collect()
        }
        _ => regions_of(eg, failed),
    };
    let lost: BTreeSet<SubtaskId> = failed.iter().map(|a| a.subtask_id()).collect();
    let unfinished = chosen
        .into_iter()
        .filter(|s| lost.contains(s) || state(eg, *s) != Some(ExecutionState::Finished))
        .collect();
    with_finished_producers(eg, unfinished)
}

fn all(eg: &ExecutionGraph) -> BTreeSet<SubtaskId> {
    eg.all()
        .map(|ev| SubtaskId::new(ev.vertex, ev.subtask))
        .collect()
}

fn state(eg: &ExecutionGraph, s: SubtaskId) -> Option<ExecutionState> {
    eg.get(s.vertex, s.subtask).map(|ev| ev.state)
}

/// The pipelined regions of the failed subtasks and the regions they drag along. A subtask
/// the topology does not know (it cannot happen for a graph's own attempts) restarts all.
fn regions_of(eg: &ExecutionGraph, failed: &[ExecutionAttemptId]) -> BTreeSet<SubtaskId> {
    let (topology, subtasks) = Topology::from_job_graph(&eg.job);
    let regions = pipelined_regions(&topology);
    let mut restart = BTreeSet::new();
    for attempt in failed {
        let Some(index) = subtasks
            .iter()
            .position(|&(v, s)| v == attempt.vertex && s == attempt.subtask)
        else {
            return all(eg);
        };
        for v in region_restart_set(&topology, &regions, index, &|_| false) {
            let (vertex, subtask) = subtasks[v];
            restart.insert(SubtaskId::new(vertex, subtask));
        }
    }
    restart
}

/// Adds, until nothing changes, the finished producers of restarted subtasks.
fn with_finished_producers(
    eg: &ExecutionGraph,
    mut restart: BTreeSet<SubtaskId>,
) -> BTreeSet<SubtaskId> {
    let graph = &eg.job;
    loop {
        let more: Vec<SubtaskId> = restart
            .iter()
            .flat_map(|s| graph.input_channels(s.vertex, s.subtask))
            .map(|ch| SubtaskId::new(graph.edge(ch.edge).source, ch.producer_subtask))
            .filter(|p| !restart.contains(p))
            .filter(|p| state(eg, *p) == Some(ExecutionState::Finished))
            .collect();
        if more.is_empty() {
            return restart;
        }
        restart.extend(more);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::build_job;
    use crate::graph::VertexId;
    use crate::JobSpec;

    /// keyed-count: v0 (source+map) -hash-> v1 (count+sink), one pipelined region.
    fn keyed_count(parallelism: u32) -> ExecutionGraph {
        let spec = JobSpec::new("keyed-count").with("parallelism", parallelism);
        ExecutionGraph::new(Arc::new(build_job(&spec, 128).expect("builds")))
    }

    /// etl: forward only, so every subtask index is a region of its own.
    fn etl(parallelism: u32) -> ExecutionGraph {
        let spec = JobSpec::new("etl").with("parallelism", parallelism);
        ExecutionGraph::new(Arc::new(build_job(&spec, 128).expect("builds")))
    }

    fn run_all(eg: &mut ExecutionGraph) {
        for ev in eg.all_mut() {
            ev.state = ExecutionState::Running;
        }
    }

    fn st(v: u32, s: u32) -> SubtaskId {
        SubtaskId::new(VertexId(v), s)
    }

    fn set(items: &[(u32, u32)]) -> BTreeSet<SubtaskId> {
        items.iter().map(|&(v, s)| st(v, s)).collect()
    }

    const LOST: FailureScope = FailureScope::TaskManagerLost;

    #[test]
    fn full_restarts_every_subtask() {
        let mut eg = etl(3);
        run_all(&mut eg);
        let failed = [st(0, 1).attempt(0)];
        let plan = subtasks_to_restart(&eg, FailoverStrategy::Full, &failed, LOST);
        assert_eq!(plan, all(&eg));
        assert_eq!(plan.len(), eg.subtask_count());
    }

    #[test]
    fn region_restarts_only_the_failed_subtasks_region() {
        let mut eg = etl(3);
        run_all(&mut eg);
        let vertices = eg.job.vertices.len() as u32;
        let failed = [st(0, 1).attempt(0)];
        let plan = subtasks_to_restart(&eg, FailoverStrategy::Region, &failed, FailureScope::Task);
        let expected: BTreeSet<SubtaskId> = (0..vertices).map(|v| st(v, 1)).collect();
        assert_eq!(
            plan, expected,
            "subtask index 1 of every vertex, nothing else"
        );
    }

    #[test]
    fn region_over_an_all_to_all_exchange_is_the_whole_job() {
        let mut eg = keyed_count(2);
        run_all(&mut eg);
        let failed = [st(1, 0).attempt(0)];
        let plan = subtasks_to_restart(&eg, FailoverStrategy::Region, &failed, LOST);
        assert_eq!(plan, set(&[(0, 0), (0, 1), (1, 0), (1, 1)]));
    }

    #[test]
    fn taskmanager_restarts_only_what_was_lost() {
        let mut eg = keyed_count(4);
        run_all(&mut eg);
        let failed = [st(0, 2).attempt(0), st(1, 2).attempt(0)];
        let plan = subtasks_to_restart(&eg, FailoverStrategy::TaskManager, &failed, LOST);
        assert_eq!(plan, set(&[(0, 2), (1, 2)]));
    }

    #[test]
    fn taskmanager_falls_back_to_region_for_a_task_failure() {
        let mut eg = keyed_count(2);
        run_all(&mut eg);
        let failed = [st(1, 0).attempt(0)];
        let plan = subtasks_to_restart(
            &eg,
            FailoverStrategy::TaskManager,
            &failed,
            FailureScope::Task,
        );
        assert_eq!(plan, all(&eg), "keyed-count is one region");
    }

    #[test]
    fn finished_subtasks_stay_finished_unless_they_were_lost() {
        let mut eg = keyed_count(2);
        run_all(&mut eg);
        // Sink subtask 1 committed its output and finished; a failure elsewhere leaves it.
        eg.get_mut(VertexId(1), 1).unwrap().state = ExecutionState::Finished;
        let failed = [st(1, 0).attempt(0)];
        let plan = subtasks_to_restart(&eg, FailoverStrategy::Full, &failed, LOST);
        assert!(!plan.contains(&st(1, 1)), "{plan:?}");
        assert_eq!(plan.len(), 3);
        // Lost itself (its output still needed), it restarts.
        let failed = [st(1, 1).attempt(0)];
        let plan = subtasks_to_restart(&eg, FailoverStrategy::TaskManager, &failed, LOST);
        assert_eq!(plan, set(&[(1, 1)]));
    }

    #[test]
    fn finished_producers_of_a_restarted_consumer_restart_too() {
        let mut eg = keyed_count(2);
        run_all(&mut eg);
        // Both sources finished; their output was read once and is gone.
        eg.get_mut(VertexId(0), 0).unwrap().state = ExecutionState::Finished;
        eg.get_mut(VertexId(0), 1).unwrap().state = ExecutionState::Finished;
        let failed = [st(1, 1).attempt(0)];
        let plan = subtasks_to_restart(&eg, FailoverStrategy::TaskManager, &failed, LOST);
        assert_eq!(plan, set(&[(0, 0), (0, 1), (1, 1)]));
        // A running producer keeps running: it replays into the new consumer by itself.
        eg.get_mut(VertexId(0), 1).unwrap().state = ExecutionState::Running;
        let plan = subtasks_to_restart(&eg, FailoverStrategy::TaskManager, &failed, LOST);
        assert_eq!(plan, set(&[(0, 0), (1, 1)]));
    }
}
