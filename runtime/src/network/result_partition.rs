//! The producer side of a task's outputs: its result partitions, one subpartition queue per
//! consumer (or one for a pointwise edge) for each output edge, and the rules for a consumer
//! that goes away.
//!
//! The task's record writers seal buffers into an `Outbox`; after each step the task loop
//! calls [`ResultPartitions::drain`], which hands them to their subpartition queues, awaiting
//! space: **that await is back-pressure**. Under `taskmanager` failover a closed queue is not
//! an error: the consumer went away (its TaskManager died), so the producer puts a fresh queue
//! in the `PartitionRegistry` for the replacement to claim and discards data, counting its
//! records, until the replacement has claimed it. End of partition and checkpoint barriers are
//! kept. The task hears of every change through a [`SubpartitionListener`] (it emits cluster
//! events and counts the dropped records), so this module knows nothing of either.

use tokio::sync::mpsc;

use super::writer::Outbox;
use super::{NetBuffer, PartitionRegistry, StreamEvent, SubpartitionKey};

/// What a task's result partitions tell it about consumers that go away (`taskmanager`
/// failover). Called inline, in the order things happen.
pub trait SubpartitionListener: Send {
    /// The consumer of `key` went away: its buffers are discarded from now on.
    fn consumer_gone(&self, key: &SubpartitionKey);
    /// A buffer of `records` records was discarded for an absent consumer.
    fn discarded(&self, records: u64);
    /// Discarding for `key` is over: its replacement consumer claimed the queue, or this task
    /// finished first. `dropped` records were discarded meanwhile.
    fn dropped_while_away(&self, key: &SubpartitionKey, dropped: u64);
}

/// A consumer went away while the task was not to ride that out (every failover strategy but
/// `taskmanager`).
#[derive(Debug, thiserror::Error)]
#[error("a consumer of this task's output went away")]
pub struct DownstreamGone;

/// One subpartition this task writes: its queue, and whether its consumer is away.
struct Subpartition {
    key: SubpartitionKey,
    tx: mpsc::Sender<NetBuffer>,
    /// The consumer went away (its TaskManager died): buffers are dropped, not queued, until
    /// its replacement claims the fresh queue `tx` now is.
    away: bool,
    /// Away because the consumer was lost (not because it had finished): what is dropped is
    /// a loss to report.
    lost: bool,
    /// Records dropped since the consumer went away.
    dropped: u64,
}

/// The sender side of every subpartition a task writes, by output then subpartition.
pub struct ResultPartitions {
    outbox: Outbox,
    queues: Vec<Vec<Subpartition>>,
    registry: PartitionRegistry,
    capacity: usize,
    /// `taskmanager` failover: a consumer that goes away is waited for, not a failure.
    survive_consumer_loss: bool,
    listener: Box<dyn SubpartitionListener>,
}

impl ResultPartitions {
    /// No outputs yet; each subpartition queue will hold `capacity` buffers.
    pub fn new(
        registry: PartitionRegistry,
        capacity: usize,
        survive_consumer_loss: bool,
        listener: Box<dyn SubpartitionListener>,
    ) -> Self {
        ResultPartitions {
            outbox: Outbox::default(),
            queues: Vec::new(),
            registry,
            capacity,
            survive_consumer_loss,
            listener,
        }
    }

    /// Where this task's record writers put sealed buffers.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Registers the next output's subpartition queues, in order: `(key, finished)`, where
    /// `finished` says the consumer has already finished, so the subpartition is written to
    /// nobody (it starts away); so does a consumer the registry heard finish before this
    /// output was registered.
    pub fn add_output(&mut self, subpartitions: impl IntoIterator<Item = (SubpartitionKey, bool)>) {
        let queues = subpartitions
            .into_iter()
            .map(|(key, finished)| Subpartition {
                key,
                tx: self.registry.create(key, self.capacity),
                away: finished || self.registry.take_finished(&key),
                lost: false,
                dropped: 0,
            })
            .collect();
        self.queues.push(queues);
    }

    /// Hands every sealed buffer to its subpartition queue, waiting for space: this await is
    /// where back-pressure stops a producer.
    pub async fn drain(&mut self) -> Result<(), DownstreamGone> {
        while let Some((output, sub, buf)) = self.outbox.pop() {
            let queue = &mut self.queues[output][sub as usize];
            let end = matches!(buf, NetBuffer::Event(StreamEvent::EndOfPartition));
            if !queue.away && self.registry.take_revoked(&queue.key) {
                // Its consumer was replaced while it still holds the queue (a local one whose
                // cancellation is on its way): the replacement gets a fresh queue now, so that
                // the end of this partition reaches it however soon this task finishes.
                self.listener.consumer_gone(&queue.key);
                queue.tx = self.registry.create(queue.key, self.capacity);
                queue.away = true;
                queue.lost = true;
            }
            if queue.away {
                if self.registry.is_unclaimed(&queue.key) {
                    if end {
                        // Kept in the fresh queue; any later replacement gets one too.
                        self.registry.note_end(&queue.key);
                    }
                    discard(queue, buf, &*self.listener);
                    continue;
                }
                self.listener.dropped_while_away(&queue.key, queue.dropped);
                queue.away = false;
                queue.lost = false;
                queue.dropped = 0;
            }
            let sent = queue.tx.send(buf).await;
            if sent.is_ok() && end && self.registry.note_end(&queue.key) {
                // Revoked as the end went out: the replacement gets a queue with it.
                self.listener.consumer_gone(&queue.key);
                queue.tx = self.registry.create(queue.key, self.capacity);
                let _ = queue
                    .tx
                    .try_send(NetBuffer::Event(StreamEvent::EndOfPartition));
                queue.away = true;
                queue.lost = true;
                continue;
            }
            if let Err(mpsc::error::SendError(buf)) = sent {
                if !self.survive_consumer_loss {
                    return Err(DownstreamGone);
                }
                // A fresh queue for the consumer's replacement to claim; meanwhile, drop. A
                // revocation of the claim that just ended is settled by it: left marked, it
                // would replace the replacement's queue.
                self.listener.consumer_gone(&queue.key);
                self.registry.take_revoked(&queue.key);
                queue.tx = self.registry.create(queue.key, self.capacity);
                queue.away = true;
                queue.lost = true;
                if end {
                    self.registry.note_end(&queue.key);
                }
                discard(queue, buf, &*self.listener);
            }
        }
        Ok(())
    }

    /// The task finished (its end of partition drained): what it dropped for a consumer it
    /// lost and that is still away is reported now, as nobody will claim that queue from this
    /// task any more. Without it, a producer that finished while a consumer was away claimed
    /// fewer losses than it caused (swarm-taskmanager seed 6022: `v0[0]` ended 0.8 s into its
    /// consumer's absence). What it discarded for a consumer that had finished is no loss.
    pub fn finish(&mut self) {
        for queue in self.queues.iter_mut().flatten() {
            if queue.lost && queue.dropped > 0 {
                self.listener.dropped_while_away(&queue.key, queue.dropped);
                queue.dropped = 0;
            }
        }
    }
}

/// Drops a buffer for an absent consumer, counting its records. The end of the partition and
/// checkpoint barriers are kept: the replacement must still learn that the input ended, and a
/// barrier it never got would hold its alignment, and with it the channel of its own restored
/// producer, until a newer checkpoint (found by a swarm seed whose sources stalled on the
/// log, so that the first buffer to find the consumer gone was a barrier). The queue holds
/// only such events while away, and a barrier never takes its last slot, which is the end's.
fn discard(queue: &mut Subpartition, buf: NetBuffer, listener: &dyn SubpartitionListener) {
    match buf {
        NetBuffer::Data(data) => {
            queue.dropped += data.records as u64;
            listener.discarded(data.records as u64);
        }
        NetBuffer::Event(StreamEvent::EndOfPartition) => {
            let _ = queue.tx.try_send(buf);
        }
        NetBuffer::Event(StreamEvent::Barrier(_)) if queue.tx.capacity() > 1 => {
            let _ = queue.tx.try_send(buf);
        }
        NetBuffer::Event(StreamEvent::Barrier(_)) => {}
        NetBuffer::Event(StreamEvent::Watermark(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::ids::{EdgeId, ExecutionAttemptId, JobId, VertexId};
    use crate::memory::MemoryAccount;
    use crate::network::DataBuffer;

    /// What a producer reports, in order: `(subpartition, dropped)` per report.
    #[derive(Clone, Default)]
    struct Reports(Arc<Mutex<Vec<(u32, u64)>>>);

    impl SubpartitionListener for Reports {
        fn consumer_gone(&self, _key: &SubpartitionKey) {}
        fn discarded(&self, _records: u64) {}
        fn dropped_while_away(&self, key: &SubpartitionKey, dropped: u64) {
            self.0.lock().unwrap().push((key.index, dropped));
        }
    }

    fn key(index: u32) -> SubpartitionKey {
        let producer = ExecutionAttemptId {
            vertex: VertexId(0),
            subtask: 0,
            attempt: 0,
        };
        SubpartitionKey {
            job: JobId(1),
            producer,
            edge: EdgeId(0),
            index,
        }
    }

    fn data(records: u32) -> NetBuffer {
        NetBuffer::Data(DataBuffer {
            bytes: bytes::Bytes::new(),
            guard: MemoryAccount::default().buffer(0),
            seq: 0,
            records,
        })
    }

    #[tokio::test]
    async fn a_producer_that_finishes_while_a_lost_consumer_is_away_reports_its_drops() {
        let (registry, reports) = (PartitionRegistry::default(), Reports::default());
        let mut partitions =
            ResultPartitions::new(registry.clone(), 4, true, Box::new(reports.clone()));
        // Subpartition 0's consumer is lost; subpartition 1's had finished before.
        partitions.add_output([(key(0), false), (key(1), true)]);
        drop(registry.take(key(0)).await);
        let outbox = partitions.outbox();
        for sub in [0, 1, 0] {
            outbox.push(0, sub, data(5));
        }
        partitions.drain().await.unwrap();
        assert!(
            reports.0.lock().unwrap().is_empty(),
            "nobody claimed the queue yet"
        );
        partitions.finish();
        assert_eq!(
            *reports.0.lock().unwrap(),
            vec![(0, 10)],
            "the finished consumer's are no loss"
        );
        partitions.finish();
        assert_eq!(reports.0.lock().unwrap().len(), 1, "reported once");
    }
}
