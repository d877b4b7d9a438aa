//! The snapshot-contents checker: every checkpoint the JobManager announced as completed
//! against what the harness's checkpoint store accepted for it (read back as it was written,
//! `RunHistory::stored_checkpoints`): the store holds it, under its own id, with a snapshot
//! of every subtask of the job (every task acknowledged it, so every task's state is in it),
//! and its state's size is the `bytes` the completion announced.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rill::events::ClusterEvent;
use rill::ids::{CheckpointId, JobId, SubtaskId};

use super::secs;
use crate::history::{RunHistory, Verdict};
use crate::node::NodeName;
use crate::store::StoredCheckpoint;

const NAME: &str = "snapshots";

/// A failure's summary and evidence.
type Failure = (&'static str, String);

/// One completion as announced: which checkpoint, of which job, when, how large.
struct Completion {
    job: JobId,
    checkpoint: CheckpointId,
    bytes: u64,
    at: Duration,
}

/// Every completed checkpoint is stored whole, with the size announced.
pub fn snapshot_contents(h: &RunHistory) -> Verdict {
    let Some(stored) = &h.stored_checkpoints else {
        return Verdict::not_checked(
            NAME,
            "the job's checkpoints are not kept in the harness's checkpoint store (state.checkpoints.dir)",
        );
    };
    // The job's subtasks: every one deployed by the time (a checkpoint is triggered only
    // once every task runs, so all are deployed before any completes).
    let mut subtasks = BTreeMap::<JobId, BTreeSet<SubtaskId>>::new();
    let mut completed = 0usize;
    for e in h.events.iter().filter(|e| e.node == NodeName::JobManager) {
        match &e.event {
            ClusterEvent::JobSubmitted { job, .. } => {
                subtasks.remove(job);
            }
            ClusterEvent::TasksDeployed { job, tasks, .. } => {
                let deployed = tasks.iter().map(|t| t.attempt.subtask_id());
                subtasks.entry(*job).or_default().extend(deployed);
            }
            &ClusterEvent::CheckpointCompleted {
                job,
                checkpoint,
                bytes,
            } => {
                completed += 1;
                let c = Completion {
                    job,
                    checkpoint,
                    bytes,
                    at: e.at,
                };
                let expected = subtasks.get(&job).cloned().unwrap_or_default();
                if let Err((summary, evidence)) = check_stored(stored, &c, &expected) {
                    return Verdict::fail(NAME, summary, evidence);
                }
            }
            _ => {}
        }
    }
    if completed == 0 {
        return Verdict::not_checked(NAME, "no checkpoint completed");
    }
    Verdict::pass(
        NAME,
        format!("{completed} completed checkpoint(s), each stored with every subtask's snapshot and the size announced"),
    )
}

/// The last write of `c`'s checkpoint the store accepted by its completion holds it whole.
fn check_stored(
    stored: &[StoredCheckpoint],
    c: &Completion,
    expected: &BTreeSet<SubtaskId>,
) -> Result<(), Failure> {
    let what = format!(
        "{} completed at {} ({} bytes)",
        c.checkpoint,
        secs(c.at),
        c.bytes
    );
    let write = stored
        .iter()
        .rev()
        .find(|s| s.job == c.job && s.checkpoint == c.checkpoint && s.at <= c.at);
    let Some(write) = write else {
        let why = format!("{what}: the checkpoint store accepted no write of it by then");
        return Err(("a completed checkpoint was never stored", why));
    };
    let contents = match &write.contents {
        Ok(contents) => contents,
        Err(e) => {
            let why = format!("{what}: its stored data does not decode: {e}");
            return Err(("a stored checkpoint does not decode", why));
        }
    };
    if contents.id != c.checkpoint {
        let why = format!("{what}: the data stored for it is {}", contents.id);
        return Err(("a stored checkpoint names another id", why));
    }
    let held: BTreeSet<SubtaskId> = contents.subtasks.iter().copied().collect();
    if let Some(missing) = expected.difference(&held).next() {
        let why = format!(
            "{what}: no snapshot of {missing:?} ({} of the job's {} subtasks stored)",
            held.intersection(expected).count(),
            expected.len()
        );
        return Err(("a completed checkpoint lacks a subtask's snapshot", why));
    }
    if let Some(extra) = held.difference(expected).next() {
        let why = format!("{what}: holds a snapshot of {extra:?}, never deployed");
        return Err((
            "a stored checkpoint holds a subtask the job does not have",
            why,
        ));
    }
    if contents.bytes != c.bytes {
        let why = format!("{what}: its stored state is {} bytes", contents.bytes);
        return Err(("a completed checkpoint's size is not what was stored", why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::jm_event as jm;
    use crate::events::RecordedEvent;
    use crate::store::StoredContents;
    use rill::events::Deployment;
    use rill::ids::VertexId;

    const JOB: JobId = JobId(1);

    fn subtask(v: u32, s: u32) -> SubtaskId {
        SubtaskId::new(VertexId(v), s)
    }

    fn deployed_all() -> RecordedEvent {
        let task = |v, s| Deployment {
            attempt: subtask(v, s).attempt(0),
            taskmanager: "tm-1".into(),
            slot: Some(0),
        };
        let tasks = vec![task(0, 0), task(0, 1), task(1, 0), task(1, 1)];
        jm(
            0,
            ClusterEvent::TasksDeployed {
                job: JOB,
                tasks,
                checkpoint: None,
            },
        )
    }

    fn completed(ms: u64, c: u64, bytes: u64) -> RecordedEvent {
        let checkpoint = CheckpointId(c);
        jm(
            ms,
            ClusterEvent::CheckpointCompleted {
                job: JOB,
                checkpoint,
                bytes,
            },
        )
    }

    fn stored(ms: u64, c: u64, subtasks: Vec<SubtaskId>, bytes: u64) -> StoredCheckpoint {
        StoredCheckpoint {
            at: Duration::from_millis(ms),
            job: JOB,
            checkpoint: CheckpointId(c),
            contents: Ok(StoredContents {
                id: CheckpointId(c),
                subtasks,
                bytes,
            }),
        }
    }

    fn all() -> Vec<SubtaskId> {
        vec![subtask(0, 0), subtask(0, 1), subtask(1, 0), subtask(1, 1)]
    }

    fn run(stored: Vec<StoredCheckpoint>, events: Vec<RecordedEvent>) -> RunHistory {
        RunHistory {
            stored_checkpoints: Some(stored),
            events,
            ..Default::default()
        }
    }

    #[test]
    fn a_checkpoint_stored_whole_with_its_size_passes() {
        let h = run(
            vec![stored(1_050, 1, all(), 300)],
            vec![deployed_all(), completed(1_100, 1, 300)],
        );
        let v = snapshot_contents(&h);
        assert!(v.passed && v.checked, "{v:?}");
    }

    #[test]
    fn a_checkpoint_completed_without_a_subtask_fails() {
        // The planted bug: completed one acknowledgement early, the last task's state missing.
        let mut three = all();
        three.pop();
        let h = run(
            vec![stored(1_050, 1, three, 300)],
            vec![deployed_all(), completed(1_100, 1, 300)],
        );
        let v = snapshot_contents(&h);
        assert!(!v.passed && v.summary.contains("lacks a subtask"), "{v:?}");
        assert!(v.evidence.unwrap().contains("3 of the job's 4"));
    }

    #[test]
    fn sizes_ids_and_the_write_itself_must_agree() {
        let events = vec![deployed_all(), completed(1_100, 1, 300)];
        let v = snapshot_contents(&run(vec![stored(1_050, 1, all(), 200)], events.clone()));
        assert!(!v.passed && v.summary.contains("size"), "{v:?}");
        let v = snapshot_contents(&run(vec![stored(1_200, 1, all(), 300)], events.clone()));
        assert!(
            !v.passed && v.summary.contains("never stored"),
            "written too late: {v:?}"
        );
        let mut other = stored(1_050, 1, all(), 300);
        other.contents.as_mut().unwrap().id = CheckpointId(2);
        let v = snapshot_contents(&run(vec![other], events.clone()));
        assert!(!v.passed && v.summary.contains("another id"), "{v:?}");
        let mut garbage = stored(1_050, 1, all(), 300);
        garbage.contents = Err("unexpected end of file".into());
        let v = snapshot_contents(&run(vec![garbage], events));
        assert!(!v.passed && v.summary.contains("decode"), "{v:?}");
    }

    #[test]
    fn nothing_completed_or_nothing_visible_is_not_checked() {
        let v = snapshot_contents(&run(Vec::new(), vec![deployed_all()]));
        assert!(v.passed && !v.checked, "{v:?}");
        let mut h = run(Vec::new(), vec![deployed_all(), completed(1_100, 1, 300)]);
        h.stored_checkpoints = None;
        let v = snapshot_contents(&h);
        assert!(v.passed && !v.checked, "{v:?}");
    }

    #[test]
    fn what_the_jobmanager_writes_reads_back() {
        use rill::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
        use rill::state::{OperatorState, TaskSnapshot};
        let state = OperatorState {
            keyed: [(3, vec![1, 2, 3])].into(),
            operator: Some(vec![9; 5]),
        };
        let task = TaskSnapshot {
            operators: [(0, state)].into(),
            outputs: Default::default(),
        };
        let c = CompletedCheckpoint {
            id: CheckpointId(4),
            tasks: [((0, 0), task.clone()), ((1, 1), task)].into(),
        };
        let back = StoredContents::decode(&bincode::serialize(&c).unwrap()).unwrap();
        assert_eq!(back.id, CheckpointId(4));
        assert_eq!(back.subtasks, vec![subtask(0, 0), subtask(1, 1)]);
        assert_eq!(back.bytes, 16);
    }
}
