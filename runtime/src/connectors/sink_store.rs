//! The store collecting sinks write to: what an external sink system (a database, a topic)
//! keeps, with what makes exactly-once possible there: writers fenced by attempt (a zombie from
//! a replaced attempt cannot write) and transactions staged per checkpoint that become visible
//! on commit. In-process (`rill local`, tests) the sinks call it directly; served
//! (`sink_service`), they send it their writes over the network.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::chain::Origin;
use crate::ids::{CheckpointId, JobId};

/// One record as a collecting sink saw it (`CollectStore::records`, `decoded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedRecord {
    /// Shared per sink subtask (`Arc<str>`), so a record costs no name allocations.
    pub sink: Arc<str>,
    /// The TaskManager the sink subtask ran on.
    pub taskmanager: Arc<str>,
    /// When the record became visible in the store (`tokio::time`, so virtual time under the
    /// simulator): when its batch was flushed, or its transaction committed.
    pub at: tokio::time::Instant,
    /// The sink subtask that wrote it.
    pub subtask: u32,
    /// The attempt of the sink subtask that wrote it (fencing evidence for the harness).
    pub attempt: u32,
    /// The source position the record came from, if it knows ([`crate::chain::Traceable`]).
    pub origin: Option<Origin>,
    /// The record, bincode-encoded (a slice of its batch's buffer); decode with
    /// `CollectStore::decoded`.
    pub payload: Bytes,
}

/// What one sink subtask flushed at once: the unit the store keeps, stages and commits. What
/// the records share is held once, and their payloads sit back to back in one buffer, so a
/// record costs its provenance and an offset (large outputs stay cheap to keep and to scan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedBatch {
    /// The sink's name (its operator's name).
    pub sink: Arc<str>,
    /// The TaskManager the sink subtask ran on.
    pub taskmanager: Arc<str>,
    /// When the batch became visible: flushed, or its transaction committed.
    pub at: tokio::time::Instant,
    /// The sink subtask that wrote it.
    pub subtask: u32,
    /// The attempt of that subtask that wrote it.
    pub attempt: u32,
    /// The records' bincode encodings, back to back.
    pub payloads: Bytes,
    /// Per record: its provenance and where its encoding ends in `payloads`.
    pub entries: Vec<BatchEntry>,
}

/// One record of a batch: where its encoding ends in the batch's payloads, and its provenance.
/// 16 bytes (no `Option` tag: a partition of `u32::MAX` means none), as a run keeps millions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    end: u32,
    partition: u32,
    offset: u64,
}

impl BatchEntry {
    const NO_ORIGIN: u32 = u32::MAX;

    /// An entry ending at byte `end` of its batch's payloads.
    pub fn new(origin: Option<Origin>, end: u32) -> Self {
        let (partition, offset) = origin.map_or((Self::NO_ORIGIN, 0), |o| (o.partition, o.offset));
        BatchEntry {
            end,
            partition,
            offset,
        }
    }

    /// The record's provenance, if it has one.
    pub fn origin(&self) -> Option<Origin> {
        (self.partition != Self::NO_ORIGIN).then_some(Origin {
            partition: self.partition,
            offset: self.offset,
        })
    }

    /// Where the record's encoding ends in its batch's payloads (it starts where the previous
    /// one ends).
    pub fn end(&self) -> u32 {
        self.end
    }
}

impl CollectedBatch {
    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each record's provenance and encoding, in the order it was written.
    pub fn iter(&self) -> impl Iterator<Item = (Option<Origin>, &[u8])> {
        self.ranges().map(|(origin, r)| (origin, &self.payloads[r]))
    }

    /// As [`CollectedBatch::iter`], each payload a slice of the batch's buffer that can be
    /// kept without copying.
    pub fn iter_shared(&self) -> impl Iterator<Item = (Option<Origin>, Bytes)> + '_ {
        self.ranges()
            .map(|(origin, r)| (origin, self.payloads.slice(r)))
    }

    /// Each record's provenance and the range of its encoding in `payloads` (clamped, so a
    /// malformed batch yields empty payloads rather than a panic).
    fn ranges(&self) -> impl Iterator<Item = (Option<Origin>, std::ops::Range<usize>)> + '_ {
        let mut start = 0usize;
        self.entries.iter().map(move |e| {
            let end = (e.end() as usize).clamp(start, self.payloads.len().max(start));
            let range = start..end;
            start = end;
            (e.origin(), range)
        })
    }

    fn records(&self) -> impl Iterator<Item = CollectedRecord> + '_ {
        self.ranges().map(|(origin, range)| CollectedRecord {
            sink: self.sink.clone(),
            taskmanager: self.taskmanager.clone(),
            at: self.at,
            subtask: self.subtask,
            attempt: self.attempt,
            origin,
            payload: self.payloads.slice(range),
        })
    }
}

/// Names one sink subtask's writes: the writer the store fences by attempt. Jobs share the
/// store, so the job is part of the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WriterKey {
    pub job: JobId,
    pub sink: Arc<str>,
    pub subtask: u32,
}

/// One write of a sink subtask, as the store applies it.
#[derive(Debug)]
pub(crate) enum SinkOp {
    /// The attempt takes over its sink subtask (see `CollectStore::open`).
    Open {
        restored: Option<CheckpointId>,
    },
    Append(CollectedBatch),
    Stage {
        checkpoint: CheckpointId,
        batch: CollectedBatch,
    },
    Commit {
        checkpoint: CheckpointId,
    },
}

#[derive(Debug, Default)]
struct StoreInner {
    /// Visible records, in the batches the sinks flushed or committed.
    batches: CollectedBatches,
    /// The newest attempt that opened each sink subtask: writes of older ones are refused.
    writers: BTreeMap<WriterKey, u32>,
    /// Pre-committed transactions per sink subtask, by checkpoint id.
    staged: BTreeMap<WriterKey, BTreeMap<CheckpointId, Vec<CollectedBatch>>>,
    /// Records refused because their writer's attempt had been replaced.
    fenced: u64,
    /// The last numbered write applied per writer, as (attempt, number): a resent write is
    /// applied once (`apply_once`).
    applied: BTreeMap<WriterKey, (u32, u64)>,
    /// Sink subtasks whose end-of-input transaction is committed: their output is complete.
    complete: std::collections::BTreeSet<WriterKey>,
    /// Records written to a complete sink subtask, and ignored.
    after_completion: u64,
    /// Every transaction made visible, in order: what a checker holds the sinks' two-phase
    /// commits to.
    commits: Vec<Commit>,
}

/// One pre-committed transaction the store made visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The sink whose transaction it was (its operator's name).
    pub sink: Arc<str>,
    /// Its subtask.
    pub subtask: u32,
    /// The attempt that committed it (a restored attempt commits its predecessors').
    pub attempt: u32,
    /// The checkpoint it was staged under.
    pub staged: CheckpointId,
    /// The checkpoint whose completion (or restore) committed it: `staged` or later.
    pub by: CheckpointId,
    /// The records it held.
    pub records: usize,
    /// When it became visible.
    pub at: tokio::time::Instant,
}

/// See [`CheckpointId::END_OF_INPUT`]: a sink subtask whose end-of-input commit landed is
/// complete, and the store ignores what a later attempt writes for it.
pub const END_OF_INPUT: CheckpointId = CheckpointId::END_OF_INPUT;

/// A write from an attempt that has been replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("write of attempt {attempt} refused: attempt {current} owns this sink subtask")]
pub struct Fenced {
    /// The attempt that tried to write.
    pub attempt: u32,
    /// The attempt that owns the sink subtask now.
    pub current: u32,
}

/// Where collecting sinks put their records: handed to each TaskManager (in-process) or served
/// (`sink_service`), never global. Records are kept in the batches the sinks wrote, so a large
/// output is never copied to grow one vector.
#[derive(Debug, Clone, Default)]
pub struct CollectStore {
    inner: Arc<Mutex<StoreInner>>,
}

impl CollectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        crate::util::lock(&self.inner)
    }

    /// Applies one write of `attempt` of a sink subtask, now.
    pub(crate) fn apply(&self, key: &WriterKey, attempt: u32, op: SinkOp) -> Result<(), Fenced> {
        let now = tokio::time::Instant::now();
        Self::apply_in(&mut self.lock(), key, attempt, op, now)
    }

    /// Applies `op` as of `now`: when what it commits becomes visible (a journal replayed
    /// after the fact gives the time the write was first applied).
    fn apply_in(
        inner: &mut StoreInner,
        key: &WriterKey,
        attempt: u32,
        op: SinkOp,
        now: tokio::time::Instant,
    ) -> Result<(), Fenced> {
        match op {
            SinkOp::Open { restored } => Self::open_in(inner, key, attempt, restored, now),
            SinkOp::Append(batch) => Self::append_in(inner, key, attempt, batch),
            SinkOp::Stage { checkpoint, batch } => {
                Self::stage_in(inner, key, attempt, checkpoint, batch)
            }
            SinkOp::Commit { checkpoint } => {
                Self::commit_in(inner, key, attempt, checkpoint, now).map(drop)
            }
        }
    }

    /// Applies write number `seq` of `attempt` as of `now` unless it already was: a writer
    /// that lost a reply resends the write, which must not land twice (Kafka's idempotent
    /// producer).
    pub(crate) fn apply_once(
        &self,
        key: &WriterKey,
        attempt: u32,
        seq: u64,
        op: SinkOp,
        now: tokio::time::Instant,
    ) -> Result<(), Fenced> {
        // Checked, applied and recorded under one lock: a resend racing its late original
        // (two connections, two server tasks) must still land once.
        let mut inner = self.lock();
        if let Some(&(a, last)) = inner.applied.get(key) {
            if a == attempt && seq <= last {
                return Ok(());
            }
        }
        Self::apply_in(&mut inner, key, attempt, op, now)?;
        inner.applied.insert(key.clone(), (attempt, seq));
        Ok(())
    }

    /// Makes `attempt` the writer of a sink subtask, fencing every older attempt. A restored
    /// writer commits the transactions of the checkpoint it restores (and the ones before it,
    /// whose commit may not have happened) and aborts the later ones; a fresh one aborts all.
    fn open_in(
        inner: &mut StoreInner,
        key: &WriterKey,
        attempt: u32,
        restored: Option<CheckpointId>,
        now: tokio::time::Instant,
    ) -> Result<(), Fenced> {
        let current = inner.writers.entry(key.clone()).or_insert(attempt);
        if *current > attempt {
            return Err(Fenced {
                attempt,
                current: *current,
            });
        }
        *current = attempt;
        if inner.complete.contains(key) {
            return Ok(());
        }
        let staged = inner.staged.remove(key).unwrap_or_default();
        for (checkpoint, batches) in staged {
            let Some(by) = restored.filter(|c| checkpoint <= *c) else {
                continue;
            };
            let records = batches.iter().map(CollectedBatch::len).sum();
            inner.commits.push(Commit {
                sink: key.sink.clone(),
                subtask: key.subtask,
                attempt,
                staged: checkpoint,
                by,
                records,
                at: now,
            });
            for batch in batches {
                inner.batches.push(restamp(batch, now));
            }
        }
        Ok(())
    }

    /// Checks the writer's attempt; counts refused records. `Ok(false)`: the sink subtask's
    /// output is complete, so the write is to be ignored.
    fn admit(
        inner: &mut StoreInner,
        key: &WriterKey,
        attempt: u32,
        records: usize,
    ) -> Result<bool, Fenced> {
        let current = inner.writers.get(key).copied().unwrap_or(attempt);
        if current != attempt {
            inner.fenced += records as u64;
            return Err(Fenced { attempt, current });
        }
        if inner.complete.contains(key) {
            inner.after_completion += records as u64;
            return Ok(false);
        }
        Ok(true)
    }

    /// Makes a batch visible at once.
    fn append_in(
        inner: &mut StoreInner,
        key: &WriterKey,
        attempt: u32,
        batch: CollectedBatch,
    ) -> Result<(), Fenced> {
        if Self::admit(inner, key, attempt, batch.len())? && !batch.is_empty() {
            inner.batches.push(batch);
        }
        Ok(())
    }

    /// Pre-commits a batch under checkpoint `checkpoint`: stored, not yet visible.
    fn stage_in(
        inner: &mut StoreInner,
        key: &WriterKey,
        attempt: u32,
        checkpoint: CheckpointId,
        batch: CollectedBatch,
    ) -> Result<(), Fenced> {
        if Self::admit(inner, key, attempt, batch.len())? && !batch.is_empty() {
            let staged = inner.staged.entry(key.clone()).or_default();
            staged.entry(checkpoint).or_default().push(batch);
        }
        Ok(())
    }

    /// Commits every transaction of the writer up to and including `checkpoint`.
    fn commit_in(
        inner: &mut StoreInner,
        key: &WriterKey,
        attempt: u32,
        checkpoint: CheckpointId,
        now: tokio::time::Instant,
    ) -> Result<usize, Fenced> {
        let pending: usize = inner
            .staged
            .get(key)
            .map(|s| {
                s.range(..=checkpoint)
                    .flat_map(|(_, b)| b)
                    .map(CollectedBatch::len)
                    .sum()
            })
            .unwrap_or(0);
        if !Self::admit(inner, key, attempt, pending)? {
            return Ok(0);
        }
        if checkpoint == END_OF_INPUT {
            inner.complete.insert(key.clone());
        }
        let Some(staged) = inner.staged.get_mut(key) else {
            return Ok(0);
        };
        let later = match checkpoint.0.checked_add(1) {
            Some(next) => staged.split_off(&CheckpointId(next)),
            None => BTreeMap::new(),
        };
        let done = std::mem::replace(staged, later);
        for (staged_under, batches) in done {
            inner.commits.push(Commit {
                sink: key.sink.clone(),
                subtask: key.subtask,
                attempt,
                staged: staged_under,
                by: checkpoint,
                records: batches.iter().map(CollectedBatch::len).sum(),
                at: now,
            });
            for batch in batches {
                inner.batches.push(restamp(batch, now));
            }
        }
        Ok(pending)
    }

    /// Records refused so far because their attempt had been replaced.
    pub fn fenced(&self) -> u64 {
        self.lock().fenced
    }

    /// Records ignored because their sink subtask's output was already complete.
    pub fn after_completion(&self) -> u64 {
        self.lock().after_completion
    }

    /// Records staged in transactions not committed (yet).
    pub fn staged(&self) -> usize {
        let inner = self.lock();
        inner
            .staged
            .values()
            .flat_map(|s| s.values())
            .flatten()
            .map(CollectedBatch::len)
            .sum()
    }

    /// Visible records (flushed, or committed), over all batches.
    pub fn len(&self) -> usize {
        self.lock().batches.iter().map(CollectedBatch::len).sum()
    }

    /// Whether no record is visible.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every visible batch out in the order they became visible (so by time), leaving
    /// none visible.
    pub fn take_batches(&self) -> CollectedBatches {
        std::mem::take(&mut self.lock().batches)
    }

    /// Every transaction made visible so far, in order (taken out of the store).
    pub fn take_commits(&self) -> Vec<Commit> {
        std::mem::take(&mut self.lock().commits)
    }

    /// Every visible record with its metadata, in the order it became visible.
    pub fn records(&self) -> Vec<CollectedRecord> {
        self.lock()
            .batches
            .iter()
            .flat_map(CollectedBatch::records)
            .collect()
    }

    /// Every visible record decoded as `T`, with its metadata, in arrival order.
    pub fn decoded<T: DeserializeOwned>(
        &self,
    ) -> Result<Vec<(CollectedRecord, T)>, bincode::Error> {
        self.records()
            .into_iter()
            .map(|r| {
                let item = bincode::deserialize(&r.payload)?;
                Ok((r, item))
            })
            .collect()
    }
}

/// Batches in the order they became visible, kept in chunks of a fixed size: a run keeps
/// millions of batches (a sink flushes every buffer timeout), and one vector of them would be
/// copied whole, and its new pages faulted in, each time it doubled.
#[derive(Debug, Default)]
pub struct CollectedBatches {
    chunks: Vec<Vec<CollectedBatch>>,
}

impl CollectedBatches {
    const CHUNK: usize = 4096;

    fn push(&mut self, batch: CollectedBatch) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(batch),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(batch);
                self.chunks.push(chunk);
            }
        }
    }

    /// The batches in the order they became visible.
    pub fn iter(&self) -> impl Iterator<Item = &CollectedBatch> {
        self.chunks.iter().flatten()
    }

    /// How many batches there are.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Vec::is_empty)
    }
}

impl IntoIterator for CollectedBatches {
    type Item = CollectedBatch;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<CollectedBatch>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

/// Records become visible when they are committed: that is their output time.
fn restamp(batch: CollectedBatch, at: tokio::time::Instant) -> CollectedBatch {
    CollectedBatch { at, ..batch }
}

#[cfg(test)]
use tokio::time::Instant;

#[cfg(test)]
impl CollectStore {
    fn open(
        &self,
        key: &WriterKey,
        attempt: u32,
        restored: Option<CheckpointId>,
    ) -> Result<(), Fenced> {
        Self::open_in(&mut self.lock(), key, attempt, restored, Instant::now())
    }

    fn append(&self, key: &WriterKey, attempt: u32, batch: CollectedBatch) -> Result<(), Fenced> {
        Self::append_in(&mut self.lock(), key, attempt, batch)
    }

    fn stage(
        &self,
        key: &WriterKey,
        attempt: u32,
        checkpoint: CheckpointId,
        batch: CollectedBatch,
    ) -> Result<(), Fenced> {
        Self::stage_in(&mut self.lock(), key, attempt, checkpoint, batch)
    }

    fn commit(
        &self,
        key: &WriterKey,
        attempt: u32,
        checkpoint: CheckpointId,
    ) -> Result<usize, Fenced> {
        Self::commit_in(&mut self.lock(), key, attempt, checkpoint, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> WriterKey {
        WriterKey {
            job: JobId(1),
            sink: Arc::from("sink"),
            subtask: 0,
        }
    }

    fn batch(n: usize, attempt: u32) -> CollectedBatch {
        CollectedBatch {
            sink: Arc::from("sink"),
            taskmanager: Arc::from("tm-1"),
            at: tokio::time::Instant::now(),
            subtask: 0,
            attempt,
            payloads: Bytes::from((0..n as u8).collect::<Vec<u8>>()),
            entries: (0..n)
                .map(|i| {
                    let origin = Origin {
                        partition: 0,
                        offset: i as u64,
                    };
                    BatchEntry::new(Some(origin), i as u32 + 1)
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_batch_hands_out_each_record_with_its_own_payload() {
        let (store, w) = (CollectStore::new(), writer());
        store.open(&w, 0, None).unwrap();
        store.append(&w, 0, batch(3, 0)).unwrap();
        let records = store.records();
        let payloads: Vec<&[u8]> = records.iter().map(|r| &r.payload[..]).collect();
        assert_eq!(payloads, [&[0u8][..], &[1], &[2]]);
        let offsets: Vec<u64> = records
            .iter()
            .filter_map(|r| r.origin)
            .map(|o| o.offset)
            .collect();
        assert_eq!(offsets, [0, 1, 2]);
    }

    #[tokio::test]
    async fn staged_records_become_visible_only_when_their_checkpoint_commits() {
        let (store, w) = (CollectStore::new(), writer());
        store.open(&w, 0, None).unwrap();
        store.stage(&w, 0, CheckpointId(1), batch(3, 0)).unwrap();
        store.stage(&w, 0, CheckpointId(2), batch(2, 0)).unwrap();
        assert_eq!((store.len(), store.staged()), (0, 5));
        assert_eq!(store.commit(&w, 0, CheckpointId(1)), Ok(3));
        assert_eq!((store.len(), store.staged()), (3, 2));
    }

    #[tokio::test]
    async fn a_restore_commits_its_checkpoint_and_aborts_later_ones() {
        let (store, w) = (CollectStore::new(), writer());
        store.open(&w, 0, None).unwrap();
        store.stage(&w, 0, CheckpointId(4), batch(3, 0)).unwrap(); // checkpoint 4 completed, not yet committed
        store.stage(&w, 0, CheckpointId(5), batch(2, 0)).unwrap(); // checkpoint 5 never completed
        store.open(&w, 1, Some(CheckpointId(4))).unwrap();
        assert_eq!((store.len(), store.staged()), (3, 0));
    }

    #[tokio::test]
    async fn after_the_end_of_input_commits_a_restarted_attempt_writes_nothing() {
        let (store, w) = (CollectStore::new(), writer());
        store.open(&w, 0, None).unwrap();
        store.stage(&w, 0, END_OF_INPUT, batch(3, 0)).unwrap();
        store.commit(&w, 0, END_OF_INPUT).unwrap();
        // The task was cancelled before its FINISHED arrived: attempt 1 replays from checkpoint 2.
        store.open(&w, 1, Some(CheckpointId(2))).unwrap();
        store.stage(&w, 1, END_OF_INPUT, batch(3, 1)).unwrap();
        store.commit(&w, 1, END_OF_INPUT).unwrap();
        store.append(&w, 1, batch(2, 1)).unwrap();
        assert_eq!((store.len(), store.after_completion()), (3, 5));
    }

    #[tokio::test]
    async fn a_replaced_attempt_can_neither_write_nor_commit_nor_reopen() {
        let (store, w) = (CollectStore::new(), writer());
        store.open(&w, 0, None).unwrap();
        store.open(&w, 1, None).unwrap();
        let fenced = Fenced {
            attempt: 0,
            current: 1,
        };
        assert_eq!(store.append(&w, 0, batch(2, 0)), Err(fenced));
        assert_eq!(
            store.stage(&w, 0, CheckpointId(1), batch(3, 0)),
            Err(fenced)
        );
        assert_eq!(store.commit(&w, 0, CheckpointId(1)), Err(fenced));
        assert_eq!(store.open(&w, 0, None), Err(fenced));
        assert_eq!((store.len(), store.fenced()), (0, 5));
        store.append(&w, 1, batch(1, 1)).unwrap();
        assert_eq!(store.len(), 1);
    }
}
