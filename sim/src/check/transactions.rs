//! The transaction checker: the two-phase sinks' commits, as the sink store recorded them,
//! against the checkpoints the JobManager completed. Every transaction made visible was
//! committed by a checkpoint that had completed by then (or by the end of the input, or by a
//! restore of a completed checkpoint), never before the checkpoint it was staged under, and
//! no transaction became visible twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rill::events::ClusterEvent;
use rill::ids::CheckpointId;

use super::secs;
use crate::history::{RunHistory, Verdict};
use crate::node::NodeName;

const NAME: &str = "transactions";

/// Every commit the store recorded belongs to a completed checkpoint, once.
pub fn transactions(h: &RunHistory) -> Verdict {
    let commits: Vec<_> = h.commits.iter().filter(|c| c.records > 0).collect();
    if commits.is_empty() {
        return Verdict::not_checked(NAME, "no transaction was committed (no transactional sink)");
    }
    let completed: BTreeMap<CheckpointId, Duration> = h
        .events
        .iter()
        .filter(|e| e.node == NodeName::JobManager)
        .filter_map(|e| match e.event {
            ClusterEvent::CheckpointCompleted { checkpoint, .. } => Some((checkpoint, e.at)),
            _ => None,
        })
        .collect();
    let mut seen = BTreeSet::new();
    for c in &commits {
        let what = format!(
            "{}[{}] transaction of {} ({} records), committed by attempt {} for {} at {}",
            c.sink,
            c.subtask,
            c.staged,
            c.records,
            c.attempt,
            c.by,
            secs(c.at)
        );
        if c.staged > c.by {
            return Verdict::fail(NAME, "committed before its checkpoint", what);
        }
        if c.by != CheckpointId::END_OF_INPUT {
            // A later checkpoint's completion commits what earlier ones staged too (one that
            // expired leaves its transaction to the next): the first to complete at or after
            // `by` is the one that may commit it.
            let first_covering = completed.range(c.by..).map(|(_, at)| *at).min();
            match first_covering.as_ref() {
                Some(done) if *done <= c.at => {}
                Some(done) => {
                    let why = format!(
                        "{what}; {} or a later checkpoint completed only at {}",
                        c.by,
                        secs(*done)
                    );
                    return Verdict::fail(NAME, "committed before its checkpoint completed", why);
                }
                None => {
                    let why = format!("{what}; neither {} nor a later checkpoint completed", c.by);
                    return Verdict::fail(
                        NAME,
                        "committed by a checkpoint that never completed",
                        why,
                    );
                }
            }
        }
        if !seen.insert((c.sink.as_str(), c.subtask, c.staged)) {
            return Verdict::fail(NAME, "a transaction was committed twice", what);
        }
    }
    Verdict::pass(
        NAME,
        format!(
            "{} transaction(s), each once, each by a completed checkpoint or the end of input",
            commits.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use rill::ids::JobId;

    use super::*;
    use crate::events::RecordedEvent;
    use crate::history::CommitRecord;

    fn commit(ms: u64, staged: u64, by: u64) -> CommitRecord {
        CommitRecord {
            at: Duration::from_millis(ms),
            sink: "sink".into(),
            subtask: 0,
            attempt: 0,
            staged: CheckpointId(staged),
            by: CheckpointId(by),
            records: 10,
        }
    }

    fn completed(ms: u64, checkpoint: u64) -> RecordedEvent {
        RecordedEvent {
            at: Duration::from_millis(ms),
            node: NodeName::JobManager,
            event: ClusterEvent::CheckpointCompleted {
                job: JobId(1),
                checkpoint: CheckpointId(checkpoint),
                bytes: 1,
            },
        }
    }

    fn run(commits: Vec<CommitRecord>) -> RunHistory {
        RunHistory {
            commits,
            events: vec![completed(1_000, 1), completed(2_000, 2)],
            ..Default::default()
        }
    }

    #[test]
    fn commits_belong_to_completed_checkpoints_once() {
        assert!(transactions(&run(vec![commit(1_010, 1, 1), commit(2_010, 2, 2)])).passed);
        let v = transactions(&run(vec![commit(900, 1, 1)]));
        assert!(
            v.summary.contains("before its checkpoint completed"),
            "{v:?}"
        );
        let v = transactions(&run(vec![commit(3_000, 3, 3)]));
        assert!(v.summary.contains("never completed"), "{v:?}");
        let v = transactions(&run(vec![commit(1_010, 1, 1), commit(2_010, 1, 2)]));
        assert!(v.summary.contains("twice"), "{v:?}");
        let v = transactions(&run(vec![commit(2_010, 3, 2)]));
        assert!(v.summary.contains("before its checkpoint"), "{v:?}");
        let mut end = commit(5_000, 3, 0);
        end.by = CheckpointId::END_OF_INPUT;
        assert!(transactions(&run(vec![end])).passed);
        assert!(!transactions(&run(Vec::new())).checked);
    }
}
