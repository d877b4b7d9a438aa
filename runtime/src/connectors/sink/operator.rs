//! The runtime's side of a two-phase sink: the chain's last operator, which drives the user's
//! [`SinkWriter`] through the checkpoint protocol and keeps its committables in the
//! checkpoint until the checkpoint completes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::SinkWriter;
use crate::chain::{ChainEvent, Collector, TaskWaits};
use crate::connectors::ConnectorContext;
use crate::error::JobError;
use crate::ids::CheckpointId;
use crate::state::snapshot::{decode, encode};
use crate::state::{OperatorState, StateSlot};

/// Committables by the checkpoint that pre-committed them, oldest first.
type Pending<C> = Vec<(CheckpointId, Vec<C>)>;

/// The operator at the end of a chain that writes into a sink.
pub struct SinkOperator<T, C> {
    writer: Box<dyn SinkWriter<T, C>>,
    slot: StateSlot,
    /// Pre-committed and not yet committed: what the next checkpoint keeps.
    pending: Pending<C>,
    /// The first error of the writer since the last barrier: the checkpoint that would cover
    /// the output it lost must not complete.
    failed: Option<String>,
    /// Where a lost write fails the task.
    waits: TaskWaits,
    name: String,
}

impl<T, C> SinkOperator<T, C>
where
    C: Clone + Serialize + DeserializeOwned + Send,
{
    /// Opens the sink for the subtask `ctx` describes: the writer recovers the committables
    /// of the checkpoint the attempt restores from, if any.
    pub fn open(
        mut writer: Box<dyn SinkWriter<T, C>>,
        ctx: &dyn ConnectorContext,
    ) -> Result<Self, JobError> {
        let restored: Pending<C> = match ctx.restored().and_then(|s| s.operator.as_deref()) {
            Some(bytes) => decode(bytes).map_err(JobError::State)?,
            None => Vec::new(),
        };
        writer.recover(restored.into_iter().flat_map(|(_, cs)| cs).collect())?;
        Ok(SinkOperator {
            writer,
            slot: ctx.state_slot(),
            pending: Vec::new(),
            failed: None,
            waits: ctx.waits().clone(),
            name: ctx.operator_name().to_string(),
        })
    }

    /// A writer error: the output it lost must not be covered by a checkpoint, and the task
    /// fails, so the job replays it from the last completed one.
    fn note(&mut self, result: Result<(), JobError>) {
        if let Err(e) = result {
            tracing::error!(sink = %self.name, error = %e, "sink write failed");
            self.failed.get_or_insert_with(|| e.to_string());
            self.waits
                .fail(JobError::Sink(format!("sink {}: {e}", self.name)));
        }
    }

    /// Pre-commits under `checkpoint` and records the committables in its state.
    fn barrier(&mut self, checkpoint: CheckpointId) {
        self.pre_commit(checkpoint);
        if let Some(reason) = self.failed.take() {
            self.slot.fail(format!("sink {}: {reason}", self.name));
            return;
        }
        // Nothing pending is the same as no state: a restore then recovers nothing.
        if self.pending.is_empty() {
            return;
        }
        match encode(&self.pending) {
            Ok(bytes) => self.slot.put(OperatorState {
                keyed: Default::default(),
                operator: Some(bytes),
            }),
            Err(e) => self.slot.fail(e),
        }
    }

    /// Commits what checkpoints up to `checkpoint` pre-committed.
    fn commit_up_to(&mut self, checkpoint: CheckpointId) {
        let later = self.pending.partition_point(|(c, _)| *c <= checkpoint);
        let due: Vec<C> = self.pending.drain(..later).flat_map(|(_, cs)| cs).collect();
        if !due.is_empty() {
            let result = self.writer.commit(due);
            self.note(result);
        }
    }

    /// The writer's pre-commit under `checkpoint`; its committables wait in `pending`.
    fn pre_commit(&mut self, checkpoint: CheckpointId) {
        match self.writer.prepare_commit(checkpoint) {
            Ok(cs) if !cs.is_empty() => self.pending.push((checkpoint, cs)),
            Ok(_) => {}
            Err(e) => self.note(Err(e)),
        }
    }

    /// End of input: the last pre-commit, and the commit of everything, at once.
    fn finish(&mut self) {
        self.pre_commit(CheckpointId::END_OF_INPUT);
        self.commit_up_to(CheckpointId::END_OF_INPUT);
        let result = self.writer.finish();
        self.note(result);
    }
}

impl<T, C> Collector<T> for SinkOperator<T, C>
where
    T: Send,
    C: Clone + Serialize + DeserializeOwned + Send,
{
    fn collect(&mut self, item: T) {
        let result = self.writer.write(item);
        self.note(result);
    }

    fn event(&mut self, event: ChainEvent) {
        match event {
            ChainEvent::Flush => {
                let result = self.writer.flush();
                self.note(result);
            }
            ChainEvent::Barrier(id) => self.barrier(id),
            ChainEvent::CheckpointComplete(id) => self.commit_up_to(id),
            ChainEvent::Finish => self.finish(),
            ChainEvent::Watermark(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::chain::{Origin, Traceable};
    use crate::connectors::context::testing::TestContext;
    use crate::connectors::sink::{Sink, SinkSpec, StandardCommittable};
    use crate::connectors::CollectStore;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Rec(u64);

    impl Traceable for Rec {
        fn origin(&self) -> Option<Origin> {
            None
        }
    }

    type Op = SinkOperator<Rec, StandardCommittable>;

    fn open(spec: &SinkSpec, ctx: &TestContext) -> Result<Op, JobError> {
        let sink = spec.clone().with_store(None);
        SinkOperator::open(Sink::<Rec>::writer(&sink, ctx)?, ctx)
    }

    fn write(op: &mut Op, from: u64, n: u64) {
        for i in from..from + n {
            op.collect(Rec(i));
        }
        op.event(ChainEvent::Flush);
    }

    fn lines(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for f in files {
            out.extend(
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
        out.sort();
        out
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A writer whose every write fails.
    struct Broken;

    impl SinkWriter<Rec, u8> for Broken {
        fn write(&mut self, _: Rec) -> Result<(), JobError> {
            Err(JobError::Sink("disk full".into()))
        }
        fn prepare_commit(&mut self, _: CheckpointId) -> Result<Vec<u8>, JobError> {
            Ok(vec![1])
        }
        fn commit(&mut self, _: Vec<u8>) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[test]
    fn a_lost_write_fails_the_task_and_the_checkpoint_that_would_cover_it() {
        let ctx = TestContext::new(0, &CollectStore::new(), None);
        let mut op = SinkOperator::open(Box::new(Broken), &ctx).unwrap();
        op.collect(Rec(1));
        let failure = ctx.waits.failure().expect("the task must fail");
        assert!(failure.to_string().contains("disk full"), "{failure}");
        op.event(ChainEvent::Barrier(CheckpointId(1)));
        assert!(ctx.taken().is_err(), "the checkpoint must not complete");
    }

    #[test]
    fn transactional_output_is_visible_when_its_checkpoint_completes() {
        let store = CollectStore::new();
        let ctx = TestContext::new(0, &store, None);
        let mut op = open(&SinkSpec::CollectTransactional, &ctx).unwrap();
        write(&mut op, 0, 3);
        op.event(ChainEvent::Barrier(CheckpointId(1)));
        let state = ctx.taken().expect("the checkpoint takes the sink's state");
        let pending: Pending<StandardCommittable> =
            decode(state.operator.as_deref().unwrap()).unwrap();
        assert_eq!(
            pending.len(),
            1,
            "one committable for checkpoint 1: {pending:?}"
        );
        assert_eq!(store.records().len(), 0, "staged, not visible");
        op.event(ChainEvent::CheckpointComplete(CheckpointId(1)));
        assert_eq!(store.records().len(), 3);
    }

    #[test]
    fn the_file_sink_publishes_each_record_once_across_restarts_and_zombies() {
        let dir = scratch("file-sink");
        let spec = SinkSpec::File(dir.clone());
        let store = CollectStore::new();
        let first = TestContext::new(0, &store, None);
        let mut op = open(&spec, &first).unwrap();
        write(&mut op, 0, 3);
        assert!(lines(&dir).is_empty(), "nothing is output before a commit");
        op.event(ChainEvent::Barrier(CheckpointId(1)));
        first.taken().unwrap();
        op.event(ChainEvent::CheckpointComplete(CheckpointId(1)));
        assert_eq!(lines(&dir).len(), 3);
        write(&mut op, 3, 2);
        op.event(ChainEvent::Barrier(CheckpointId(2)));
        let cp2 = first.taken().unwrap();
        // Checkpoint 2 completes, but its notification is lost; record 5 is written and
        // pre-committed under checkpoint 3, which never completes: the attempt is replaced.
        write(&mut op, 5, 1);
        op.event(ChainEvent::Barrier(CheckpointId(3)));

        let second = TestContext::new(1, &store, Some((CheckpointId(2), cp2.clone())));
        let mut op2 = open(&spec, &second).unwrap();
        assert_eq!(
            lines(&dir).len(),
            5,
            "the restored committable is published"
        );
        let lingering: Vec<_> = std::fs::read_dir(dir.join(".staging"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("sink-0-a0"))
            .collect();
        assert!(
            lingering.is_empty(),
            "the first attempt's files are aborted: {lingering:?}"
        );
        // The zombie goes on: its staged checkpoint 3 was aborted, and what it writes now it
        // cannot publish, nor can it open again.
        op.event(ChainEvent::CheckpointComplete(CheckpointId(3)));
        write(&mut op, 100, 1);
        op.event(ChainEvent::Barrier(CheckpointId(4)));
        op.event(ChainEvent::CheckpointComplete(CheckpointId(4)));
        assert_eq!(lines(&dir).len(), 5, "a replaced attempt publishes nothing");
        assert!(
            open(&spec, &first).is_err(),
            "an older attempt cannot take over"
        );

        // The replay writes record 5 again, then the input ends.
        write(&mut op2, 5, 1);
        op2.event(ChainEvent::Finish);
        let expected: Vec<String> = (0..6).map(|i| format!("Rec({i})")).collect();
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(lines(&dir), sorted);

        // An attempt restarted after the end-of-input commit writes nothing more.
        let third = TestContext::new(2, &store, Some((CheckpointId(2), cp2)));
        let mut op3 = open(&spec, &third).unwrap();
        write(&mut op3, 5, 1);
        op3.event(ChainEvent::Finish);
        assert_eq!(
            lines(&dir),
            sorted,
            "a complete subtask's output does not change"
        );

        // A new run into the same directory is refused, naming what is there.
        let rerun = TestContext::new(0, &store, None);
        let err = open(&spec, &rerun)
            .err()
            .expect("another run's files are there");
        assert!(err.to_string().contains("earlier run"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_older_attempt_opening_late_cannot_fence_the_newer_one() {
        let dir = scratch("file-sink-fence");
        let spec = SinkSpec::File(dir.clone());
        let store = CollectStore::new();
        let first = TestContext::new(0, &store, None);
        let mut op = open(&spec, &first).unwrap();
        op.event(ChainEvent::Barrier(CheckpointId(1)));
        let cp1 = first.taken().unwrap_or_default();
        let newer = TestContext::new(3, &store, Some((CheckpointId(1), cp1.clone())));
        let mut op3 = open(&spec, &newer).unwrap();
        let older = TestContext::new(2, &store, Some((CheckpointId(1), cp1)));
        assert!(
            open(&spec, &older).is_err(),
            "attempt 2 opens behind attempt 3"
        );
        write(&mut op3, 0, 2);
        op3.event(ChainEvent::Barrier(CheckpointId(2)));
        op3.event(ChainEvent::CheckpointComplete(CheckpointId(2)));
        assert_eq!(lines(&dir).len(), 2, "the newest attempt still publishes");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
