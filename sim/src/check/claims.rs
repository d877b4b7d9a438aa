//! Cross-checks of what the runtime claims against what it did: every subtask a failover
//! announced it would restart was redeployed (unless the job ended first), and nothing was
//! redeployed that no failover or rebalancing announced.

use std::collections::BTreeSet;

use rill::events::ClusterEvent;
use rill::ids::SubtaskId;

use super::secs;
use crate::history::{RunHistory, Verdict};
use crate::node::NodeName;

const NAME: &str = "restarts";

/// The restart sets the JobManager announced against the deployments it made.
pub fn restarts(h: &RunHistory) -> Verdict {
    let (mut announced, mut pending) = (0usize, BTreeSet::<SubtaskId>::new());
    // A subtask's first deployment is no restart, whenever it comes (slots may arrive late).
    let mut deployed = BTreeSet::<SubtaskId>::new();
    let mut since = std::time::Duration::ZERO;
    let jm = h.events.iter().filter(|e| e.node == NodeName::JobManager);
    for e in jm {
        match &e.event {
            ClusterEvent::FailoverStarted { restart, .. } => {
                announced += 1;
                // A later failover may restart more; what it leaves out of an earlier set
                // that was never redeployed must still come.
                pending.extend(restart.iter().copied());
                since = e.at;
            }
            ClusterEvent::Rebalanced { moves, .. } => {
                pending.extend(moves.iter().flat_map(|m| m.subtasks.iter().copied()));
                since = e.at;
            }
            ClusterEvent::TasksDeployed { tasks, .. } => {
                for t in tasks {
                    let subtask = t.attempt.subtask_id();
                    if deployed.insert(subtask) {
                        pending.remove(&subtask);
                        continue;
                    }
                    if !pending.remove(&subtask) {
                        return Verdict::fail(
                            NAME,
                            "a subtask was redeployed that no failover announced",
                            format!(
                                "{subtask:?} deployed at {} as {:?}, not in any announced restart set",
                                secs(e.at),
                                t.attempt
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    if announced == 0 {
        return Verdict::not_checked(NAME, "no failover");
    }
    if !pending.is_empty() && h.finished() {
        let first = pending.iter().next().expect("not empty");
        return Verdict::fail(
            NAME,
            format!("{} announced subtask(s) never redeployed", pending.len()),
            format!("{first:?}, announced for restart at or after {}, never redeployed, yet the job finished", secs(since)),
        );
    }
    Verdict::pass(
        NAME,
        format!("{announced} failover(s): every announced subtask redeployed, nothing else"),
    )
}
