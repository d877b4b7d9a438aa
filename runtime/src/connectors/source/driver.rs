//! The runtime's side of a source: the splits of one subtask, their positions and event time,
//! the round robin over them, and their checkpointed state, around the user's reader and the
//! operator chain it feeds, with the record type erased for the source task.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{Source, SourceOutput, SourceSplit, SplitReader, SplitStatus};
use crate::chain::{ChainEvent, Out};
use crate::connectors::ConnectorContext;
use crate::error::JobError;
use crate::state::snapshot::{decode, encode};

/// What one poll of a source produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// Records emitted (possibly none, when a split just ended).
    Emitted(usize),
    /// Nothing to read yet (a remote log's fetch is under way): wait on `wakeup`.
    Pending,
    /// Every split is read to its end.
    Finished,
}

/// A source reader together with its operator chain, with the record type erased: what a
/// source task drives.
pub trait SourceDriver: Send {
    /// Reads at most `max` records into the chain.
    fn poll(&mut self, max: usize) -> Result<SourceStatus, JobError>;
    /// Sends a control event down the chain.
    fn event(&mut self, event: ChainEvent);
    /// Event time reached on every split this subtask owns.
    fn watermark(&self) -> Option<u64>;
    /// Records per second this subtask should emit, if paced.
    fn rate(&self) -> Option<f64>;
    /// The splits' positions for a checkpoint.
    fn snapshot(&self) -> Result<Option<Vec<u8>>, String>;
    /// What a `Pending` reader signals when it may have records again.
    fn wakeup(&self) -> Option<Arc<Notify>>;
}

/// One split as the runtime tracks it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SplitState<S> {
    split: S,
    /// The latest event time the split emitted: its contribution to the watermark.
    event_time: u64,
    finished: bool,
}

/// What a checkpoint keeps of one source subtask.
#[derive(Debug, Serialize, Deserialize)]
struct SourceState<S> {
    splits: Vec<SplitState<S>>,
    /// Where the round robin stood: a replay reads the splits in the same order, so it
    /// produces the same records in the same order as the first reading did.
    next: usize,
}

/// The splits of one subtask, read round robin through the user's reader into the chain.
pub(crate) struct SplitDriver<T, S> {
    reader: Box<dyn SplitReader<T, S>>,
    chain: Out<T>,
    splits: Vec<SplitState<S>>,
    next: usize,
    rate: Option<f64>,
    opened: bool,
}

impl<T: Send + 'static, S: SourceSplit> SplitDriver<T, S> {
    /// The driver of one subtask of `source`: its share of the splits, at the positions of the
    /// checkpoint the attempt restores from, or at their start.
    pub(crate) fn open<Src: Source<T, Split = S> + ?Sized>(
        source: &Src,
        ctx: &dyn ConnectorContext,
        chain: Out<T>,
    ) -> Result<Self, JobError> {
        let (parallelism, subtask) = (ctx.parallelism().max(1) as usize, ctx.subtask() as usize);
        let assigned: Vec<S> = source
            .splits(ctx)?
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == subtask)
            .map(|(_, s)| s)
            .collect();
        let restored = ctx.restored().and_then(|s| s.operator.as_deref());
        let (splits, next) = restore(assigned, restored)?;
        let rate = source.rate().map(|r| r / parallelism as f64);
        Ok(SplitDriver {
            reader: source.reader(ctx)?,
            chain,
            splits,
            next,
            rate,
            opened: false,
        })
    }
}

/// The assigned splits at their checkpointed positions (by split id); splits the checkpoint
/// does not name start at their beginning.
fn restore<S: SourceSplit>(
    assigned: Vec<S>,
    state: Option<&[u8]>,
) -> Result<(Vec<SplitState<S>>, usize), JobError> {
    let fresh = |split| SplitState {
        split,
        event_time: 0,
        finished: false,
    };
    let Some(bytes) = state else {
        return Ok((assigned.into_iter().map(fresh).collect(), 0));
    };
    let saved: SourceState<S> = decode(bytes).map_err(JobError::State)?;
    let mut by_id: std::collections::HashMap<String, SplitState<S>> = saved
        .splits
        .into_iter()
        .map(|s| (s.split.split_id(), s))
        .collect();
    let splits = assigned
        .into_iter()
        .map(|split| {
            by_id
                .remove(&split.split_id())
                .unwrap_or_else(|| fresh(split))
        })
        .collect();
    Ok((splits, saved.next))
}

impl<T: Send + 'static, S: SourceSplit> SourceDriver for SplitDriver<T, S> {
    fn poll(&mut self, max: usize) -> Result<SourceStatus, JobError> {
        if !self.opened {
            self.opened = true;
            let live: Vec<S> = self
                .splits
                .iter()
                .filter(|s| !s.finished)
                .map(|s| s.split.clone())
                .collect();
            self.reader.open(&live)?;
        }
        if self.splits.iter().all(|s| s.finished) {
            return Ok(SourceStatus::Finished);
        }
        // The next unfinished split, round robin, so splits progress evenly.
        while self.splits[self.next % self.splits.len()].finished {
            self.next += 1;
        }
        let idx = self.next % self.splits.len();
        let state = &mut self.splits[idx];
        let mut out = SourceOutput::new(&mut *self.chain, state.event_time);
        let status = self.reader.read(&mut state.split, max, &mut out)?;
        let (emitted, event_time) = (out.emitted, out.event_time);
        state.event_time = event_time;
        match status {
            // Wait for this split rather than skip it: a replay must read the splits in the
            // same order to produce the same records as the first reading. A read that found
            // nothing is a wait too, or whether the split is skipped would depend on timing
            // (and the task would spin).
            SplitStatus::Pending | SplitStatus::Read if emitted == 0 => {
                return Ok(SourceStatus::Pending)
            }
            SplitStatus::Pending | SplitStatus::Read => {}
            SplitStatus::End => state.finished = true,
        }
        self.next += 1;
        Ok(SourceStatus::Emitted(emitted))
    }

    fn event(&mut self, event: ChainEvent) {
        self.chain.event(event)
    }

    fn watermark(&self) -> Option<u64> {
        // A subtask without splits must not hold event time back: it is at the end.
        Some(
            self.splits
                .iter()
                .map(|s| if s.finished { u64::MAX } else { s.event_time })
                .min()
                .unwrap_or(u64::MAX),
        )
    }

    fn rate(&self) -> Option<f64> {
        self.rate
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        let state = SourceState {
            splits: self.splits.clone(),
            next: self.next % self.splits.len().max(1),
        };
        encode(&state).map(Some)
    }

    fn wakeup(&self) -> Option<Arc<Notify>> {
        self.reader.wakeup()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Shard {
        name: String,
        at: u64,
    }

    impl SourceSplit for Shard {
        fn split_id(&self) -> String {
            self.name.clone()
        }
    }

    fn shard(name: &str, at: u64) -> Shard {
        Shard {
            name: name.into(),
            at,
        }
    }

    #[test]
    fn a_restore_matches_splits_by_id_and_starts_new_ones_fresh() {
        let saved = SourceState {
            splits: vec![SplitState {
                split: shard("b", 7),
                event_time: 70,
                finished: false,
            }],
            next: 1,
        };
        let bytes = encode(&saved).unwrap();
        let (splits, next) = restore(vec![shard("a", 0), shard("b", 0)], Some(&bytes)).unwrap();
        assert_eq!(next, 1);
        assert_eq!(
            splits[0].split,
            shard("a", 0),
            "not in the checkpoint: fresh"
        );
        assert_eq!(splits[1].split, shard("b", 7), "restored at its position");
        assert_eq!(splits[1].event_time, 70);
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error_not_a_fresh_start() {
        assert!(restore(vec![shard("a", 0)], Some(b"\xff\xff")).is_err());
    }
}
