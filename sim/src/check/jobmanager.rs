//! The JobManager-loss checker: what the TaskManagers must do when they lose their JobManager,
//! judged from their own `JobManagerLost` events.
//!
//! A TaskManager that hears nothing from the JobManager for longer than the heartbeat timeout
//! (the JobManager crashed, is paused or cut off, or this TaskManager's inbound link is cut)
//! must give up on it by its own timer, within the timeout plus one interval and a moment to
//! act, and cancel every task the JobManager had running there: their slots are free, and
//! none of them may write output afterwards. A JobManager crash also ends the job for the
//! client (rill keeps no job across a JobManager restart), and no output may arrive after
//! the last TaskManager gave up.
//!
//! madsim delivers a connection's close at once, across any partition, so a TaskManager often
//! hears of a crash before its timer fires; the JobManager pause and the inbound-only
//! partition are the faults that exercise the timer alone.

use std::collections::BTreeSet;
use std::time::Duration;

use rill::events::ClusterEvent;
use rill::graph::{ExecutionAttemptId, ExecutionState};

use super::bounds::{cut_delivers_by, Timing};
use super::secs;
use crate::fault::{Direction, FaultKind};
use crate::history::{AppliedFault, RunEnd, RunHistory, Verdict};
use crate::node::NodeName;

const NAME: &str = "jobmanager-loss";

/// How long after a TaskManager gave up on the JobManager a batch its cancelled tasks sent
/// before may still arrive at the sink store.
const LAST_BATCH: Duration = Duration::from_millis(250);

/// Which TaskManagers `f` cuts off from the JobManager's heartbeats, for how long (`None`:
/// for good): `All` for a fault of the JobManager itself.
enum Deaf<'a> {
    All,
    One(&'a NodeName),
}

fn deafens(f: &AppliedFault) -> Option<(Deaf<'_>, Option<Duration>)> {
    let jm = |n: &NodeName| *n == NodeName::JobManager;
    match &f.fault.kind {
        FaultKind::Crash {
            target,
            restart_after,
        }
        | FaultKind::OomKill {
            target,
            restart_after,
        } if jm(target) => Some((Deaf::All, *restart_after)),
        FaultKind::Pause { target, duration } if jm(target) => Some((Deaf::All, Some(*duration))),
        FaultKind::Partition {
            target,
            direction,
            heal_after,
        } => match (jm(target), direction) {
            (true, Direction::Both | Direction::Outbound) => Some((Deaf::All, *heal_after)),
            (false, Direction::Both | Direction::Inbound) if target.taskmanager().is_some() => {
                Some((Deaf::One(target), *heal_after))
            }
            _ => None,
        },
        FaultKind::LinkPartition {
            from,
            to,
            both_ways,
            heal_after,
        } => {
            if jm(from) && to.taskmanager().is_some() {
                Some((Deaf::One(to), *heal_after))
            } else if *both_ways && jm(to) && from.taskmanager().is_some() {
                Some((Deaf::One(from), *heal_after))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn is_jm_crash(f: &AppliedFault) -> bool {
    matches!(&f.fault.kind,
        FaultKind::Crash { target, .. } | FaultKind::OomKill { target, .. }
            if *target == NodeName::JobManager)
}

/// Whether `tm` was itself down, paused or cut off by a fault other than the one `judged` at
/// some time in `from..=to`: it hears nothing then and decides nothing.
fn silenced(
    h: &RunHistory,
    judged: &AppliedFault,
    tm: &NodeName,
    from: Duration,
    to: Duration,
) -> bool {
    let others = h
        .faults
        .iter()
        .filter(|f| !std::ptr::eq(*f, judged) && f.took_effect());
    others.into_iter().any(|f| {
        // Down, paused, or cut off itself: what it hears and when it decides is another
        // fault's story (a cut-off TaskManager may hear of the crash only when it heals).
        let own = f.fault.kind.touches(tm);
        let (Some(b), e) = (f.began_at, f.ended_at.unwrap_or(h.end)) else {
            return false;
        };
        own && b <= to && e >= from
    })
}

/// Until when `tm`, silenced by a fault other than `judged` around `from` and never giving up,
/// may still have written: a crash or OOM kill of it ends its tasks when it strikes; a pause
/// or cut holds them until it ends (the run's end, if it never does).
fn silent_until(h: &RunHistory, judged: &AppliedFault, tm: &NodeName, from: Duration) -> Duration {
    let others: Vec<(&FaultKind, (Duration, Duration))> = h
        .faults
        .iter()
        .filter(|f| !std::ptr::eq(*f, judged) && f.took_effect() && f.fault.kind.touches(tm))
        .filter_map(|f| Some((&f.fault.kind, f.window(h.end)?)))
        .collect();
    let crashed = others
        .iter()
        .filter(|(k, _)| matches!(k, FaultKind::Crash { .. } | FaultKind::OomKill { .. }))
        .map(|(_, (b, _))| *b)
        .filter(|b| *b >= from)
        .min();
    let held = others.iter().map(|(_, (_, e))| *e).max().unwrap_or(from);
    crashed.unwrap_or(held.max(from))
}

/// The TaskManagers with a session at the JobManager at `at`, by the JobManager's events and
/// their own: registered, and not lost or given up on since.
fn serving_at(h: &RunHistory, at: Duration) -> BTreeSet<String> {
    let mut serving = BTreeSet::new();
    for e in h.events.iter().take_while(|e| e.at < at) {
        match &e.event {
            ClusterEvent::TaskManagerRegistered { taskmanager, .. } => {
                serving.insert(taskmanager.clone());
            }
            ClusterEvent::TaskManagerLost { taskmanager, .. }
            | ClusterEvent::JobManagerLost { taskmanager, .. } => {
                serving.remove(taskmanager);
            }
            _ => {}
        }
    }
    serving
}

/// The attempts the JobManager's events place on `tm` that had not ended by `at`: what the
/// TaskManager must cancel.
fn live_on(h: &RunHistory, tm: &str, at: Duration) -> BTreeSet<ExecutionAttemptId> {
    let mut live: BTreeSet<ExecutionAttemptId> = BTreeSet::new();
    // An earlier crash of the JobManager (the one that came back knows no job) or of the
    // TaskManager itself (its tasks died with it) left nothing from before it.
    let node = NodeName::from(tm);
    let wiped = h
        .faults
        .iter()
        .filter(|f| f.took_effect())
        .filter(|f| match &f.fault.kind {
            FaultKind::Crash { target, .. } | FaultKind::OomKill { target, .. } => {
                *target == NodeName::JobManager || *target == node
            }
            _ => false,
        })
        .filter_map(|f| f.began_at)
        .filter(|b| *b < at)
        .max()
        .unwrap_or_default();
    let since = h
        .events
        .iter()
        .take_while(|e| e.at < at)
        .filter(|e| e.at >= wiped);
    for e in since {
        match &e.event {
            ClusterEvent::TasksDeployed { tasks, .. } => {
                // A new attempt replaces the old one wherever that ran.
                live.retain(|a| {
                    !tasks.iter().any(|d| {
                        d.attempt.subtask_id() == a.subtask_id() && d.attempt.attempt > a.attempt
                    })
                });
                live.extend(
                    tasks
                        .iter()
                        .filter(|d| d.taskmanager == tm)
                        .map(|d| d.attempt),
                );
            }
            // A failover or a move cancels what it restarts (the TaskManager may have acted
            // on that before the JobManager crashed).
            ClusterEvent::FailoverStarted { restart, .. } => {
                live.retain(|a| !restart.contains(&a.subtask_id()));
            }
            ClusterEvent::Rebalanced { moves, .. } => {
                live.retain(|a| !moves.iter().any(|m| m.subtasks.contains(&a.subtask_id())));
            }
            // It gave up on a JobManager before: what it says it cancelled or had ended is
            // gone (what it kept, it must still cancel).
            ClusterEvent::JobManagerLost {
                taskmanager,
                cancelled,
                ended,
                ..
            } if taskmanager == tm => {
                live.retain(|a| !cancelled.contains(a) && !ended.contains(a));
            }
            ClusterEvent::SubtaskStateChanged { attempt, state, .. }
                if state.is_terminal() || *state == ExecutionState::Canceling =>
            {
                live.remove(attempt);
            }
            _ => {}
        }
    }
    live
}

/// One TaskManager's giving up on the JobManager.
struct GaveUp<'a> {
    at: Duration,
    cancelled: &'a [ExecutionAttemptId],
    /// What had ended on its own, unknown to the JobManager perhaps: not kept either.
    ended: &'a [ExecutionAttemptId],
}

fn gave_up<'a>(h: &'a RunHistory, tm: &str, from: Duration) -> Option<GaveUp<'a>> {
    h.events.iter().find_map(|e| match &e.event {
        ClusterEvent::JobManagerLost {
            taskmanager,
            cancelled,
            ended,
            ..
        } if e.at >= from && taskmanager == tm => Some(GaveUp {
            at: e.at,
            cancelled,
            ended,
        }),
        _ => None,
    })
}

/// Whether the output at `o` became visible by another attempt's commit: a restored
/// attempt commits the transactions its predecessor staged for the checkpoint it restores.
fn committed_by_successor(h: &RunHistory, o: &crate::history::OutputRecord) -> bool {
    h.commits
        .iter()
        .any(|c| c.at == o.at && c.subtask == o.sink_subtask && c.attempt != o.attempt)
}

/// When a write `writer` sent at `at` has reached the sink store at the latest: at once, or
/// when a pause or crash of the store that holds it then ends. A partition of the store or
/// of the writer's TaskManager (or a cut of the link between them) holds a write sent while
/// it lasts until the link's next try after the heal, and that wait doubles with each try:
/// the write lands by `cut_delivers_by`, as long again as the cut lasted (at most
/// `LINK_RETRY_MAX`) after the heal, even when the heal came before `at` (a write sent during
/// the cut, before `at`). A TaskManager gives up on a JobManager it cannot reach while its
/// own writes wait in such a cut: they were sent before it gave up, and land after.
fn store_reached_by(h: &RunHistory, at: Duration, writer: &NodeName) -> Duration {
    let store = NodeName::SinkStore;
    // Only a cut of what the writer sends holds its writes: an inbound-only cut of it does
    // not (its writes leave freely; that is the fault that exercises the give-up timer).
    let holds = |kind: &FaultKind| match kind {
        FaultKind::Partition {
            target, direction, ..
        } if target == writer => matches!(direction, Direction::Both | Direction::Outbound),
        FaultKind::LinkPartition {
            from,
            to,
            both_ways,
            ..
        } if from == writer || to == writer => {
            (from == writer && *to == store) || (*both_ways && *from == store && to == writer)
        }
        other => other.touches(&store),
    };
    h.faults
        .iter()
        .filter(|f| f.took_effect())
        .filter(|f| holds(&f.fault.kind))
        .filter_map(|f| Some((&f.fault.kind, f.window(h.end)?)))
        .filter(|(_, (b, _))| *b <= at)
        .map(|(kind, (b, e))| match kind {
            FaultKind::Partition { .. } | FaultKind::LinkPartition { .. } => cut_delivers_by(b, e),
            _ => e,
        })
        .fold(at, Duration::max)
}

/// The first output a cancelled (or already ended) attempt wrote after its TaskManager gave
/// up, if any.
fn output_after(h: &RunHistory, tm: &NodeName, g: &GaveUp<'_>) -> Option<String> {
    let index = tm.taskmanager()?;
    let quiet_from = store_reached_by(h, g.at, tm) + LAST_BATCH;
    h.outputs
        .iter()
        .filter(|o| o.at > quiet_from && o.taskmanager == index)
        .filter(|o| !committed_by_successor(h, o))
        .find(|o| {
            g.cancelled
                .iter()
                .chain(g.ended)
                .any(|a| a.subtask == o.sink_subtask && a.attempt == o.attempt)
        })
        .map(|o| {
            format!(
                "sink subtask {} attempt {} on {tm} wrote at {}, after {tm} cancelled it at {}",
                o.sink_subtask,
                o.attempt,
                secs(o.at),
                secs(g.at)
            )
        })
}

/// Every TaskManager that lost its JobManager's heartbeats past the timeout gave up on it in
/// time, cancelled what ran there, and wrote nothing afterwards; a JobManager crash ended the
/// job for the client with nothing output after the last TaskManager gave up.
pub fn jobmanager_loss(h: &RunHistory, timing: &Timing, timeout: Duration) -> Verdict {
    let (mut checked, mut slowest) = (0usize, Duration::ZERO);
    let mut last_gave_up = None::<Duration>;
    for f in h.faults.iter().filter(|f| f.took_effect()) {
        let (Some((deaf, lasts)), Some(began)) = (deafens(f), f.began_at) else {
            continue;
        };
        // A crashed JobManager is gone however soon it restarts (the new one knows no
        // session); anything else must outlast the timeout to count.
        if !is_jm_crash(f) && lasts.is_some_and(|d| d <= timeout) {
            continue;
        }
        let deadline = began + timing.detection;
        let serving = serving_at(h, began);
        let targets: Vec<NodeName> = match deaf {
            Deaf::All => serving.iter().map(|n| NodeName::from(&n[..])).collect(),
            Deaf::One(tm) if serving.contains(&tm.to_string()) => vec![tm.clone()],
            Deaf::One(_) => vec![],
        };
        for tm in targets {
            let name = tm.to_string();
            if silenced(h, f, &tm, began, deadline) {
                // Its timing is another fault's story, but until it gives up its tasks may
                // still write (a paused one, once it runs again).
                if is_jm_crash(f) {
                    let at = match gave_up(h, &name, began) {
                        Some(g) => g.at,
                        None => silent_until(h, f, &tm, began),
                    };
                    last_gave_up = last_gave_up.max(Some(at));
                }
                continue;
            }
            let Some(g) = gave_up(h, &name, began) else {
                if deadline > h.end {
                    continue; // the run ended before it had to
                }
                return Verdict::fail(
                    NAME,
                    format!("{tm} never gave up on the JobManager"),
                    format!(
                        "{} at {}: no JobManagerLost from {tm} by {} (heartbeat timeout + interval + slack) nor after",
                        f.fault,
                        secs(began),
                        secs(deadline)
                    ),
                );
            };
            checked += 1;
            if g.at > deadline {
                return Verdict::fail(
                    NAME,
                    format!(
                        "{tm} gave up on the JobManager {} after it went silent",
                        secs(g.at - began)
                    ),
                    format!(
                        "{} at {}: {tm} gave up at {}, after the bound {}",
                        f.fault,
                        secs(began),
                        secs(g.at),
                        secs(deadline)
                    ),
                );
            }
            slowest = slowest.max(g.at - began);
            let must = live_on(h, &name, began.min(g.at));
            let kept: Vec<String> = must
                .iter()
                .filter(|a| !g.cancelled.contains(a) && !g.ended.contains(a))
                .map(ToString::to_string)
                .collect();
            if is_jm_crash(f) && !kept.is_empty() {
                return Verdict::fail(
                    NAME,
                    format!("{tm} kept tasks after losing the JobManager"),
                    format!(
                        "the JobManager had [{}] running on {tm} when it crashed at {}; {tm} gave up at {} and cancelled only [{}] (nor had they ended)",
                        kept.join(" "),
                        secs(began),
                        secs(g.at),
                        g.cancelled.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
                    ),
                );
            }
            if let Some(evidence) = output_after(h, &tm, &g) {
                return Verdict::fail(NAME, "a cancelled task wrote output", evidence);
            }
            if is_jm_crash(f) {
                last_gave_up = last_gave_up.max(Some(g.at));
            }
        }
        if is_jm_crash(f) {
            if let Some(v) = crash_ended_the_job(h, f, last_gave_up) {
                return v;
            }
        }
    }
    match checked {
        0 => Verdict::not_checked(
            NAME,
            format!(
                "no TaskManager lost the JobManager's heartbeats past the timeout ({}) before the run ended",
                secs(timeout)
            ),
        ),
        n => Verdict::pass(
            NAME,
            format!(
                "{n} TaskManager(s) gave up on the JobManager and cancelled its tasks, the slowest after {} (bound {})",
                secs(slowest),
                secs(timing.detection)
            ),
        ),
    }
}

/// Whether the JobManager had announced the job's end (finished, failed, cancelled) by `at`.
fn ended_by(h: &RunHistory, at: Duration) -> bool {
    h.events.iter().take_while(|e| e.at <= at).any(|e| {
        matches!(&e.event, ClusterEvent::JobStatusChanged { status, .. } if status.is_terminal())
    })
}

/// A JobManager crash must end the job for the client, and nothing may be output after the
/// last TaskManager gave up (no task of the job is left anywhere).
fn crash_ended_the_job(
    h: &RunHistory,
    f: &AppliedFault,
    last_gave_up: Option<Duration>,
) -> Option<Verdict> {
    let began = f.began_at?;
    // A job that had ended before the crash has nothing left to lose.
    if ended_by(h, began) {
        return None;
    }
    if h.job_status != RunEnd::Lost {
        return Some(Verdict::fail(
            NAME,
            format!("job {} after the JobManager crashed", h.job_status),
            format!(
                "{} at {}: the client must be told it lost the JobManager (rill keeps no job across a JobManager restart); it saw {}: {}",
                f.fault,
                secs(began),
                h.job_status,
                h.job_message.clone().unwrap_or_default()
            ),
        ));
    }
    let gave_up = last_gave_up.unwrap_or(began);
    let late = h.outputs.iter().find(|o| {
        let writer = NodeName::TaskManager(o.taskmanager);
        o.at > store_reached_by(h, gave_up, &writer) + LAST_BATCH
    })?;
    Some(Verdict::fail(
        NAME,
        "output after the JobManager crashed",
        format!(
            "{} at {}: sink subtask {} attempt {} on tm-{} wrote at {}, after every TaskManager had given up by {}",
            f.fault,
            secs(began),
            late.sink_subtask,
            late.attempt,
            late.taskmanager,
            secs(late.at),
            secs(last_gave_up.unwrap_or(began))
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{deployed, history, out};
    use crate::events::RecordedEvent;
    use crate::fault::Fault;
    use rill::config::Configuration;
    use rill::events::JobManagerLossCause;
    use rill::graph::{SubtaskId, VertexId};
    use rill::ids::TaskManagerId;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn timing() -> Timing {
        let config = Configuration::new()
            .with("heartbeat.interval", "1s")
            .and_then(|c| c.with("heartbeat.timeout", "5s"))
            .expect("valid");
        Timing::of(&config)
    }

    fn at(ms: u64, node: NodeName, event: ClusterEvent) -> RecordedEvent {
        RecordedEvent {
            at: Duration::from_millis(ms),
            node,
            event,
        }
    }

    fn attempt(vertex: u32, subtask: u32) -> ExecutionAttemptId {
        SubtaskId::new(VertexId(vertex), subtask).attempt(0)
    }

    /// tm-1 and tm-2 registered, v0 and v1 of subtask i deployed on tm-(i+1), and the fault
    /// `kind` at 1 s (ending after `lasts`, if it ends).
    fn run(kind: FaultKind, lasts: Option<u64>) -> RunHistory {
        let mut h = history(vec![out(500, 0, 0)]);
        for i in 1..=2u32 {
            let registered = ClusterEvent::TaskManagerRegistered {
                taskmanager: format!("tm-{i}"),
                instance: TaskManagerId(i.into()),
                slots: 2,
            };
            h.events.push(at(0, NodeName::JobManager, registered));
        }
        let tms = ["tm-1", "tm-2"];
        let tasks = (0..2).flat_map(|s| (0..2).map(move |v| (attempt(v, s), tms[s as usize], 0)));
        h.events
            .push(at(10, NodeName::JobManager, deployed(tasks, None)));
        let mut fault = AppliedFault::planned(Fault::new(Duration::from_secs(1), kind));
        fault.began_at = Some(Duration::from_secs(1));
        fault.ended_at = lasts.map(|ms| Duration::from_millis(1_000 + ms));
        fault.effective = true;
        h.faults.push(fault);
        h
    }

    /// `kind`, begun at `from` and ended at `to`.
    fn applied(from: Duration, to: Duration, kind: FaultKind) -> AppliedFault {
        let mut fault = AppliedFault::planned(Fault::new(from, kind));
        fault.began_at = Some(from);
        fault.ended_at = Some(to);
        fault.effective = true;
        fault
    }

    fn jm_crash() -> RunHistory {
        let mut h = run(
            FaultKind::Crash {
                target: NodeName::JobManager,
                restart_after: Some(Duration::from_secs(3)),
            },
            Some(3_000),
        );
        h.job_status = RunEnd::Lost;
        h
    }

    /// tm-`i` gives up at `ms`, cancelling `cancelled`.
    fn gives_up(h: &mut RunHistory, ms: u64, i: u32, cancelled: Vec<ExecutionAttemptId>) {
        gives_up_with_ended(h, ms, i, cancelled, Vec::new());
    }

    /// tm-`i` gives up at `ms`, cancelling `cancelled`, saying `ended` had ended on their own.
    fn gives_up_with_ended(
        h: &mut RunHistory,
        ms: u64,
        i: u32,
        cancelled: Vec<ExecutionAttemptId>,
        ended: Vec<ExecutionAttemptId>,
    ) {
        let event = ClusterEvent::JobManagerLost {
            taskmanager: format!("tm-{i}"),
            cause: JobManagerLossCause::ConnectionClosed("closed".into()),
            cancelled,
            ended,
        };
        h.events.push(at(ms, NodeName::TaskManager(i), event));
        h.events.sort_by_key(|e| e.at);
    }

    fn both_give_up(h: &mut RunHistory, ms: u64) {
        gives_up(h, ms, 1, vec![attempt(0, 0), attempt(1, 0)]);
        gives_up(h, ms, 2, vec![attempt(0, 1), attempt(1, 1)]);
    }

    #[test]
    fn a_crash_is_judged_by_what_every_taskmanager_did() {
        let mut h = jm_crash();
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(!v.passed && v.summary.contains("never gave up"), "{v:?}");
        both_give_up(&mut h, 1_010);
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(v.passed && v.checked, "{v:?}");
        assert!(v.summary.starts_with("2 TaskManager(s)"), "{v:?}");
    }

    #[test]
    fn a_second_crash_is_judged_by_what_the_restarted_jobmanager_deployed() {
        // The first crash (1 s) ends the job: both TaskManagers cancel everything. The
        // JobManager comes back, knows no job, and crashes again at 5 s.
        let mut h = jm_crash();
        both_give_up(&mut h, 1_010);
        let second = applied(
            Duration::from_secs(5),
            Duration::from_secs(6),
            FaultKind::Crash {
                target: NodeName::JobManager,
                restart_after: Some(Duration::from_secs(1)),
            },
        );
        h.faults.push(second);
        for i in 1..=2u32 {
            let registered = ClusterEvent::TaskManagerRegistered {
                taskmanager: format!("tm-{i}"),
                instance: TaskManagerId(u64::from(i) + 2),
                slots: 2,
            };
            h.events.push(at(4_100, NodeName::JobManager, registered));
        }
        let mut again = h.clone();
        gives_up(&mut h, 5_000, 1, Vec::new());
        gives_up(&mut h, 5_000, 2, Vec::new());
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(
            v.passed && v.checked,
            "nothing of the first job was left to cancel: {v:?}"
        );
        // Had the restarted JobManager deployed something on tm-1, it must go.
        let redeployed = SubtaskId::new(VertexId(0), 0).attempt(1);
        let tasks = [(redeployed, "tm-1", 0)];
        again
            .events
            .push(at(4_500, NodeName::JobManager, deployed(tasks, None)));
        gives_up(&mut again, 5_000, 1, Vec::new());
        gives_up(&mut again, 5_000, 2, Vec::new());
        let v = jobmanager_loss(&again, &timing(), TIMEOUT);
        assert!(!v.passed && v.summary.contains("kept tasks"), "{v:?}");
    }

    #[test]
    fn a_paused_taskmanager_may_write_until_it_gives_up_once_it_runs_again() {
        // tm-1 is paused from 0.5 s to 2 s, through the crash at 1 s: it gives up at 2 s, and
        // its last batch lands just after (a fuzz finding).
        let mut h = jm_crash();
        let pause = applied(
            Duration::from_millis(500),
            Duration::from_secs(2),
            FaultKind::Pause {
                target: NodeName::TaskManager(1),
                duration: Duration::from_millis(1_500),
            },
        );
        h.faults.insert(0, pause);
        gives_up(&mut h, 1_010, 2, vec![attempt(0, 1), attempt(1, 1)]);
        gives_up(&mut h, 2_000, 1, vec![attempt(0, 0), attempt(1, 0)]);
        let mut late = h.clone();
        h.outputs.push(out(2_100, 1, 0));
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(v.passed, "{v:?}");
        late.outputs.push(out(3_000, 1, 0));
        let v = jobmanager_loss(&late, &timing(), TIMEOUT);
        assert!(!v.passed, "{v:?}");
    }

    #[test]
    fn a_taskmanager_that_crashed_before_keeps_nothing_of_what_ran_there() {
        // tm-1 was OOM-killed at 0.5 s and came back empty (the JobManager had not noticed
        // yet): at the crash at 1 s it has nothing to cancel (a fuzz finding).
        let mut h = jm_crash();
        let oom = applied(
            Duration::from_millis(500),
            Duration::from_millis(510),
            FaultKind::OomKill {
                target: NodeName::TaskManager(1),
                restart_after: Some(Duration::from_millis(10)),
            },
        );
        h.faults.insert(0, oom);
        gives_up(&mut h, 1_010, 1, Vec::new());
        gives_up(&mut h, 1_010, 2, vec![attempt(0, 1), attempt(1, 1)]);
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(v.passed && v.checked, "{v:?}");
    }

    #[test]
    fn a_task_left_running_after_the_crash_fails() {
        let mut h = jm_crash();
        gives_up(&mut h, 1_010, 1, vec![attempt(0, 0), attempt(1, 0)]);
        gives_up(&mut h, 1_010, 2, vec![attempt(0, 1)]);
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(!v.passed && v.summary.contains("kept tasks"), "{v:?}");
        assert!(v.evidence.unwrap().contains("v1[1]"));
    }

    #[test]
    fn a_task_that_had_ended_on_its_own_was_not_kept() {
        // tm-2 noticed last: its consumer had already failed on an input lost with tm-1, and
        // the JobManager never heard of it. It was not kept, and says so.
        let mut h = jm_crash();
        gives_up(&mut h, 1_010, 1, vec![attempt(0, 0), attempt(1, 0)]);
        gives_up_with_ended(&mut h, 1_025, 2, vec![attempt(0, 1)], vec![attempt(1, 1)]);
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(v.passed && v.checked, "{v:?}");
        // What it says had ended must write nothing afterwards either.
        h.outputs.push(crate::history::OutputRecord::new(
            Duration::from_millis(3_000),
            2,
            1,
            0,
            None,
            None,
        ));
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(
            !v.passed && v.summary == "a cancelled task wrote output",
            "{v:?}"
        );
    }

    #[test]
    fn output_after_giving_up_fails() {
        let mut h = jm_crash();
        both_give_up(&mut h, 1_010);
        // tm-1's sink subtask 0, attempt 0: cancelled at 1.01 s, yet it writes at 3 s.
        h.outputs.push(out(3_000, 1, 0));
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(
            !v.passed && v.summary == "a cancelled task wrote output",
            "{v:?}"
        );
    }

    #[test]
    fn a_write_a_healed_store_partition_held_may_land_after_giving_up() {
        let mut h = jm_crash();
        // The sink store was cut off from 0.2 s to 0.8 s: a write sent then is tried again
        // after 1 ms, 2 ms, 4 ms, ... and lands at the first try after the heal, by 1.4 s.
        let cut = applied(
            Duration::from_millis(200),
            Duration::from_millis(800),
            FaultKind::Partition {
                target: NodeName::SinkStore,
                direction: Direction::Both,
                heal_after: Some(Duration::from_millis(600)),
            },
        );
        h.faults.insert(0, cut);
        both_give_up(&mut h, 1_010);
        let mut held = h.clone();
        held.outputs.push(out(1_390, 1, 0));
        let v = jobmanager_loss(&held, &timing(), TIMEOUT);
        assert!(v.passed, "{v:?}");
        // Past that (and the last batch's moment), the cancelled task itself wrote it.
        h.outputs.push(out(1_700, 1, 0));
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(
            !v.passed && v.summary == "a cancelled task wrote output",
            "{v:?}"
        );
    }

    /// A JobManager crash at 1 s with `target` cut off from 0.2 s to 0.8 s before it, both
    /// TaskManagers giving up at 1.01 s, and tm-1's cancelled sink writing at `write_ms`.
    fn crash_after_a_cut_of(target: NodeName, write_ms: u64) -> Verdict {
        crash_after_a_cut(target, Direction::Both, write_ms)
    }

    fn crash_after_a_cut(target: NodeName, direction: Direction, write_ms: u64) -> Verdict {
        let mut h = jm_crash();
        let cut = applied(
            Duration::from_millis(200),
            Duration::from_millis(800),
            FaultKind::Partition {
                target,
                direction,
                heal_after: Some(Duration::from_millis(600)),
            },
        );
        h.faults.insert(0, cut);
        both_give_up(&mut h, 1_010);
        h.outputs.push(out(write_ms, 1, 0));
        jobmanager_loss(&h, &timing(), TIMEOUT)
    }

    #[test]
    fn a_write_its_own_taskmanagers_healed_partition_held_may_land_after_giving_up() {
        // tm-1's write, sent during its own cut, lands at the first try after the heal.
        let v = crash_after_a_cut_of(NodeName::TaskManager(1), 1_390);
        assert!(v.passed, "{v:?}");
        // Another TaskManager's cut held nothing of tm-1's, nor did an inbound-only cut of
        // tm-1 (its writes left freely).
        let v = crash_after_a_cut_of(NodeName::TaskManager(2), 1_390);
        assert!(!v.passed, "{v:?}");
        let v = crash_after_a_cut(NodeName::TaskManager(1), Direction::Inbound, 1_390);
        assert!(!v.passed, "{v:?}");
        // Past the retry after the heal, the cancelled task itself wrote it.
        let v = crash_after_a_cut_of(NodeName::TaskManager(1), 1_700);
        assert!(!v.passed, "{v:?}");
    }

    #[test]
    fn a_crash_must_end_the_job_for_the_client() {
        let mut h = jm_crash();
        both_give_up(&mut h, 1_010);
        h.job_status = RunEnd::Ended(rill::graph::JobStatus::Finished);
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(
            !v.passed && v.summary.contains("after the JobManager crashed"),
            "{v:?}"
        );
        // Unless the job had finished before the crash (a fuzz finding).
        let finished = ClusterEvent::JobStatusChanged {
            job: rill::graph::JobId(1),
            status: rill::graph::JobStatus::Finished,
        };
        h.events.push(at(900, NodeName::JobManager, finished));
        h.events.sort_by_key(|e| e.at);
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(v.passed, "{v:?}");
    }

    #[test]
    fn a_pause_must_be_noticed_by_each_taskmanager_within_the_bound() {
        let pause = || FaultKind::Pause {
            target: NodeName::JobManager,
            duration: Duration::from_secs(8),
        };
        let mut h = run(pause(), Some(8_000));
        both_give_up(&mut h, 6_500);
        assert!(jobmanager_loss(&h, &timing(), TIMEOUT).passed);
        let mut late = run(pause(), Some(8_000));
        both_give_up(&mut late, 8_500); // bound: 1 s + 5 s + 1 s + 1 s = 8 s
        let v = jobmanager_loss(&late, &timing(), TIMEOUT);
        assert!(!v.passed, "{v:?}");
        assert!(v.evidence.unwrap().contains("after the bound"));
        // Shorter than the timeout: nobody has to notice.
        let short = run(
            FaultKind::Pause {
                target: NodeName::JobManager,
                duration: Duration::from_secs(3),
            },
            Some(3_000),
        );
        assert!(!jobmanager_loss(&short, &timing(), TIMEOUT).checked);
    }

    #[test]
    fn an_inbound_partition_concerns_only_its_taskmanager() {
        let mut h = run(
            FaultKind::Partition {
                target: NodeName::TaskManager(2),
                direction: Direction::Inbound,
                heal_after: Some(Duration::from_secs(8)),
            },
            Some(8_000),
        );
        gives_up(&mut h, 6_500, 2, vec![attempt(0, 1), attempt(1, 1)]);
        let v = jobmanager_loss(&h, &timing(), TIMEOUT);
        assert!(
            v.passed && v.summary.starts_with("1 TaskManager(s)"),
            "{v:?}"
        );
    }
}
