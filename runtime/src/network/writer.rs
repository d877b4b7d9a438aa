//! Serializing a task's output records into per-subpartition buffers.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::{DataBuffer, NetBuffer, PartitionerKind, StreamEvent};
use crate::chain::{ChainEvent, Collector};
use crate::memory::MemoryAccount;
use crate::state::{key_group, subtask_for_key_group};

/// Sealed buffers waiting to be handed to their subpartition queues: the operator chain is
/// synchronous, so writers park finished buffers here and the task loop sends them (awaiting
/// queue space: back-pressure) after each step.
#[derive(Clone, Default)]
pub struct Outbox {
    queue: Arc<Mutex<VecDeque<(usize, u32, NetBuffer)>>>,
}

impl Outbox {
    pub(super) fn push(&self, output: usize, subpartition: u32, buf: NetBuffer) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((output, subpartition, buf));
    }

    /// Takes the oldest sealed buffer: (output index, subpartition, buffer).
    pub fn pop(&self) -> Option<(usize, u32, NetBuffer)> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

/// Everything a writer needs to know about the partition it writes.
#[derive(Clone)]
pub struct PartitionTarget {
    /// How records are routed to subpartitions.
    pub partitioner: PartitionerKind,
    /// The producing subtask's index (round robin starts from it).
    pub producer_subtask: u32,
    /// How many subpartitions the partition has (one per consumer, one for a forward edge).
    pub subpartitions: u32,
    /// Key groups, for hash partitioning.
    pub max_parallelism: u32,
    /// The bytes at which a buffer is sealed (`taskmanager.memory.segment-size`).
    pub buffer_size: usize,
    /// Index of this output among the task's outputs.
    pub output: usize,
    /// The number of the first record of each subpartition (see `DataBuffer::seq`).
    pub first_seq: Vec<u64>,
    /// Where sealed buffers wait for the task loop to send them.
    pub outbox: Outbox,
    /// The task's memory account, charged for every buffer.
    pub memory: MemoryAccount,
    /// Where the writer records its numbering at barriers.
    pub state: Option<crate::state::TaskStateHandle>,
}

/// How a record picks its subpartition(s).
pub(crate) enum Route<T> {
    Forward,
    Rebalance { next: usize },
    Hash(Arc<dyn Fn(&T) -> u64 + Send + Sync>),
    Broadcast,
}

pub(crate) struct RecordWriter<T> {
    route: Route<T>,
    target: PartitionTarget,
    buffers: Vec<BytesMut>,
    /// Per subpartition: the number of the next record, and records in the open buffer.
    next_seq: Vec<u64>,
    pending: Vec<u32>,
    _t: PhantomData<fn(T)>,
}

impl<T: Serialize> RecordWriter<T> {
    pub fn new(route: Route<T>, target: PartitionTarget) -> Self {
        // A subpartition's buffer is allocated when a record first goes there (`write`): at
        // parallelism p an all-to-all edge has p subpartitions per producer, and most of them
        // may be idle between flushes, so eager segments would cost p^2 x segment-size.
        let buffers = (0..target.subpartitions).map(|_| BytesMut::new()).collect();
        let n = target.subpartitions as usize;
        let next_seq = (0..n)
            .map(|i| target.first_seq.get(i).copied().unwrap_or(0))
            .collect();
        RecordWriter {
            route,
            target,
            buffers,
            next_seq,
            pending: vec![0; n],
            _t: PhantomData,
        }
    }

    fn subpartition(&mut self, item: &T) -> usize {
        let n = self.buffers.len();
        match &mut self.route {
            Route::Forward | Route::Broadcast => 0,
            Route::Rebalance { next } => {
                *next = (*next + 1) % n;
                *next
            }
            Route::Hash(hash) => {
                let group = key_group(hash(item), self.target.max_parallelism);
                subtask_for_key_group(group, self.target.max_parallelism, n as u32) as usize
            }
        }
    }

    fn write(&mut self, idx: usize, item: &T) {
        let buf = &mut self.buffers[idx];
        if buf.capacity() == 0 {
            buf.reserve(self.target.buffer_size);
        }
        let before = buf.len();
        if let Err(e) = bincode::serialize_into(buf.writer(), item) {
            // Cut the partial record off so the records after it stay readable.
            buf.truncate(before);
            tracing::error!(error = %e, "record serialization failed; record dropped");
        } else {
            self.pending[idx] += 1;
        }
        if buf.len() >= self.target.buffer_size {
            self.seal(idx);
        }
    }

    fn seal(&mut self, idx: usize) {
        let buf = &mut self.buffers[idx];
        if buf.is_empty() {
            return;
        }
        // The next segment is reserved by the next `write`, not here, and what the split left
        // of this one is let go (it would pin the whole segment), so a subpartition that goes
        // quiet holds no memory.
        let bytes = std::mem::take(buf).freeze();
        let guard = self.target.memory.buffer(bytes.len() as u64);
        let records = std::mem::take(&mut self.pending[idx]);
        let seq = self.next_seq[idx];
        self.next_seq[idx] = seq.saturating_add(records as u64);
        let data = DataBuffer {
            bytes,
            guard,
            seq,
            records,
        };
        self.target
            .outbox
            .push(self.target.output, idx as u32, NetBuffer::Data(data));
    }

    fn seal_all_then(&mut self, event: Option<StreamEvent>) {
        for idx in 0..self.buffers.len() {
            self.seal(idx);
            if let Some(ev) = event {
                self.target
                    .outbox
                    .push(self.target.output, idx as u32, NetBuffer::Event(ev));
            }
        }
    }
}

impl<T: Serialize + Send> Collector<T> for RecordWriter<T> {
    fn collect(&mut self, item: T) {
        if matches!(self.route, Route::Broadcast) {
            for idx in 0..self.buffers.len() {
                self.write(idx, &item);
            }
        } else {
            let idx = self.subpartition(&item);
            self.write(idx, &item);
        }
    }

    fn event(&mut self, event: ChainEvent) {
        match event {
            ChainEvent::Flush => self.seal_all_then(None),
            ChainEvent::Watermark(wm) => self.seal_all_then(Some(StreamEvent::Watermark(wm))),
            ChainEvent::Finish => self.seal_all_then(Some(StreamEvent::EndOfPartition)),
            ChainEvent::Barrier(id) => {
                self.seal_all_then(Some(StreamEvent::Barrier(id)));
                // Where each subpartition's numbering stands at this checkpoint, so a restored
                // source numbers its replay as before.
                if let Some(slot) = &self.target.state {
                    slot.put_output(self.target.output, self.next_seq.clone());
                }
            }
            ChainEvent::CheckpointComplete(_) => {}
        }
    }
}
