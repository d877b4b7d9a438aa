//! Sources in the shape of Flink's FLIP-27: a [`Source`] names the *splits* of its input (a
//! log's partitions, a set of files, the shards of a generator), each subtask gets its share
//! of them, and a [`SplitReader`] reads one split at a time from the position the split
//! carries. The runtime owns everything recovery needs: it assigns the splits, reads them
//! round robin, keeps each split's position and event time, checkpoints them at every barrier
//! and, on restore, hands the reader its splits at their checkpointed positions, so a restored
//! source replays exactly what followed the checkpoint.
//!
//! A user's source implements [`Source`] (its splits, its reader) and [`SourceSplit`] (its
//! position type), and is added to a job with [`crate::StreamEnv::source`]. The built-in
//! [`LogSource`] is one such source.
//!
//! Splits are assigned statically, split `i` to subtask `i % parallelism` (Flink's enumerator
//! assigns them at run time; rill's jobs do not rescale, so the static assignment is the same
//! on every attempt, and restore matches splits by [`SourceSplit::split_id`]).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use super::ConnectorContext;
use crate::chain::Collector;
use crate::error::JobError;

mod driver;
mod log;

pub(crate) use driver::SplitDriver;
pub use driver::{SourceDriver, SourceStatus};
pub use log::{LogInput, LogReader, LogSource, LogSplit};

/// A source of records of type `T`: the splits of its input, and how to read them.
///
/// One value describes the source for every subtask (it is shared, so it is `Sync`); each
/// subtask gets its own reader from [`Source::reader`].
pub trait Source<T>: Send + Sync + 'static {
    /// One independently readable part of the input, with the position reading has reached.
    type Split: SourceSplit;

    /// Every split of the input, each at its start position. Every subtask calls it, and every
    /// attempt after a restart: it must return the same splits in the same order each time
    /// (the assignment to subtasks is by index).
    fn splits(&self, ctx: &dyn ConnectorContext) -> Result<Vec<Self::Split>, JobError>;

    /// The reader of one subtask. It gets the subtask's splits through
    /// [`SplitReader::open`], at their checkpointed positions when the attempt restores.
    fn reader(
        &self,
        ctx: &dyn ConnectorContext,
    ) -> Result<Box<dyn SplitReader<T, Self::Split>>, JobError>;

    /// Records per second over all subtasks, if the source is paced (a generator standing in
    /// for live traffic); each subtask emits its share.
    fn rate(&self) -> Option<f64> {
        None
    }
}

/// A split together with its reading position: what a checkpoint keeps of a source.
///
/// A split is serialized into every checkpoint (bincode), so it should be small: a partition
/// number and an offset, a file name and a byte position.
pub trait SourceSplit:
    Clone + std::fmt::Debug + Send + Serialize + DeserializeOwned + 'static
{
    /// The split's identity, stable across attempts and positions: a restore matches the
    /// checkpointed splits to the assigned ones by it.
    fn split_id(&self) -> String;
}

/// Reads splits for one subtask.
pub trait SplitReader<T, S>: Send {
    /// Called once, before the first read, with this subtask's unfinished splits at the
    /// positions reading starts from (a reader that prefetches starts its fetches here).
    fn open(&mut self, splits: &[S]) -> Result<(), JobError> {
        let _ = splits;
        Ok(())
    }

    /// Reads at most `max` records of `split` from its position into `out`, and advances the
    /// split past them: the split's position must always be that of the next record to read,
    /// since it is what the next checkpoint keeps.
    fn read(
        &mut self,
        split: &mut S,
        max: usize,
        out: &mut SourceOutput<'_, T>,
    ) -> Result<SplitStatus, JobError>;

    /// What a reader that returned [`SplitStatus::Pending`] signals when it may have records
    /// again; without one the runtime polls it again after a millisecond.
    fn wakeup(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// What one read of a split found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitStatus {
    /// Records were read. A read that emitted nothing counts as `Pending`.
    Read,
    /// Nothing is ready yet: the runtime waits on [`SplitReader::wakeup`] and asks this same
    /// split again (the splits are read in a fixed order, so a replay reads the same records
    /// in the same order as the first reading did).
    Pending,
    /// The split is read to its end: it is finished for good, also after a restore.
    End,
}

/// Where a reader puts the records it read, each with its event time.
pub struct SourceOutput<'a, T> {
    chain: &'a mut dyn Collector<T>,
    emitted: usize,
    /// The latest event time the split's records carried.
    event_time: u64,
}

impl<'a, T> SourceOutput<'a, T> {
    pub(crate) fn new(chain: &'a mut dyn Collector<T>, event_time: u64) -> Self {
        SourceOutput {
            chain,
            emitted: 0,
            event_time,
        }
    }

    /// Emits `record`, whose event time is `timestamp_ms`. The source's watermark is the
    /// least, over its unfinished splits, of the latest event time each has emitted: records
    /// of a split should come in event-time order (late ones are late downstream).
    pub fn collect(&mut self, record: T, timestamp_ms: u64) {
        self.event_time = self.event_time.max(timestamp_ms);
        self.emitted += 1;
        self.chain.collect(record);
    }

    /// Records emitted through this output so far.
    pub fn emitted(&self) -> usize {
        self.emitted
    }
}
