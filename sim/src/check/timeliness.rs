//! The detection checker: a TaskManager cut off from the JobManager for longer than the
//! heartbeat timeout (crashed for good, partitioned either way or on its link to the
//! JobManager, paused) must be declared lost within the
//! timeout plus one heartbeat interval (and a moment to act) of when it was cut off. A lost
//! connection may make it faster; nothing may make it slower.

use std::time::Duration;

use rill::events::ClusterEvent;

use super::bounds::Timing;
use super::secs;
use crate::fault::FaultKind;
use crate::history::{AppliedFault, RunHistory, Verdict};
use crate::node::NodeName;

const NAME: &str = "detection";

/// The TaskManager `f` cuts off from the JobManager, and for how long (`None`: for good), if
/// it cuts one off at all.
fn cut_off(f: &AppliedFault) -> Option<(&NodeName, Option<Duration>)> {
    match &f.fault.kind {
        FaultKind::Crash {
            target,
            restart_after,
        }
        | FaultKind::OomKill {
            target,
            restart_after,
        } => Some((target, *restart_after)),
        // Heartbeats are a request and a reply: cutting either direction stops them.
        FaultKind::Partition {
            target, heal_after, ..
        } => Some((target, *heal_after)),
        FaultKind::LinkPartition {
            from,
            to,
            heal_after,
            ..
        } => match (from, to) {
            (NodeName::JobManager, tm) | (tm, NodeName::JobManager) => Some((tm, *heal_after)),
            _ => None,
        },
        FaultKind::Pause { target, duration } => Some((target, Some(*duration))),
        _ => None,
    }
    .filter(|(target, _)| target.taskmanager().is_some())
}

/// Whether `target` was registered at the JobManager at `at`: its last registration or loss
/// before then was a registration, made with the JobManager running then. A JobManager that
/// crashed comes back knowing no TaskManager, and one that gave up on the JobManager is not
/// registered until it registers again.
fn registered_at(h: &RunHistory, target: &NodeName, at: Duration) -> bool {
    let restarted = h
        .faults
        .iter()
        .filter(|f| f.took_effect())
        .filter(|f| {
            matches!(&f.fault.kind,
                FaultKind::Crash { target, .. } | FaultKind::OomKill { target, .. }
                    if *target == NodeName::JobManager)
        })
        .filter_map(|f| f.began_at)
        .filter(|b| *b <= at)
        .max();
    let mut registered = false;
    for e in h.events.iter().take_while(|e| e.at <= at) {
        match &e.event {
            ClusterEvent::TaskManagerRegistered { taskmanager, .. }
                if *target == taskmanager.as_str() =>
            {
                registered = restarted.is_none_or(|r| e.at > r)
            }
            ClusterEvent::TaskManagerLost { taskmanager, .. }
            | ClusterEvent::JobManagerLost { taskmanager, .. }
                if *target == taskmanager.as_str() =>
            {
                registered = false
            }
            _ => {}
        }
    }
    registered
}

/// Whether the JobManager was down, paused or partitioned at some time in `from..=to`.
fn jobmanager_silenced(h: &RunHistory, from: Duration, to: Duration) -> bool {
    h.faults.iter().filter(|f| f.took_effect()).any(|f| {
        f.fault.kind.isolates(&NodeName::JobManager)
            && f.window(h.end).is_some_and(|(b, e)| b <= to && e >= from)
    })
}

/// Every TaskManager cut off past the heartbeat timeout was declared lost in time.
pub fn detection(h: &RunHistory, timing: &Timing, timeout: Duration) -> Verdict {
    let mut checked = 0usize;
    let mut slowest = Duration::ZERO;
    for f in h.faults.iter().filter(|f| f.took_effect()) {
        let (Some((target, lasts)), Some(began)) = (cut_off(f), f.began_at) else {
            continue;
        };
        // Cut off for less than the timeout: the JobManager need not notice. Already lost
        // (an earlier fault took it, and it has not registered again): nothing to notice.
        if lasts.is_some_and(|d| d <= timeout) || !registered_at(h, target, began) {
            continue;
        }
        let deadline = began + timing.detection;
        // A JobManager that is itself down, paused or cut off meanwhile declares nothing in
        // time: that is the jobmanager-loss checker's to judge.
        if jobmanager_silenced(h, began, deadline) {
            continue;
        }
        let lost = h.events.iter().find_map(|e| match &e.event {
            ClusterEvent::TaskManagerLost { taskmanager, .. }
                if e.at >= began && *target == taskmanager.as_str() =>
            {
                Some(e.at)
            }
            _ => None,
        });
        // The run ended before the deadline and the loss was not declared: nothing to hold
        // it to.
        if deadline > h.end && lost.is_none() {
            continue;
        }
        checked += 1;
        match lost {
            Some(at) if at <= deadline => slowest = slowest.max(at - began),
            Some(at) => {
                return Verdict::fail(
                    NAME,
                    format!("{target} declared lost {} after it was cut off", secs(at - began)),
                    format!(
                        "{} at {}: declared lost at {}, after the bound {} (heartbeat timeout + interval + {})",
                        f.fault,
                        secs(began),
                        secs(at),
                        secs(deadline),
                        secs(super::bounds::DETECTION_SLACK)
                    ),
                )
            }
            None => {
                return Verdict::fail(
                    NAME,
                    format!("{target} was never declared lost"),
                    format!(
                        "{} at {}: no TaskManagerLost by the bound {} nor after",
                        f.fault,
                        secs(began),
                        secs(deadline)
                    ),
                )
            }
        }
    }
    match checked {
        0 => Verdict::not_checked(
            NAME,
            format!(
                "no TaskManager was cut off past the heartbeat timeout ({}) before the run ended",
                secs(timeout)
            ),
        ),
        n => Verdict::pass(
            NAME,
            format!(
                "{n} TaskManager loss(es) detected, the slowest after {} (bound {})",
                secs(slowest),
                secs(timing.detection)
            ),
        ),
    }
}
