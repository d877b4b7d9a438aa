//! Result partitions on the producer side and the TaskManager-wide registry consumers claim
//! subpartitions from.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};

use super::NetBuffer;
use crate::ids::{EdgeId, ExecutionAttemptId, JobId};

/// Names one subpartition: which job, which producer attempt, which edge, which consumer.
/// The producer attempt is part of the name, so a consumer can only ever reach the attempt it
/// was told about: a request for a replaced attempt finds nothing (fencing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubpartitionKey {
    /// The producer's job.
    pub job: JobId,
    /// The producer attempt.
    pub producer: ExecutionAttemptId,
    /// The edge written.
    pub edge: EdgeId,
    /// The subpartition's index: the consumer subtask it is for (0 on a forward edge).
    pub index: u32,
}

enum Slot {
    Ready(mpsc::Receiver<NetBuffer>),
    Waiting(oneshot::Sender<mpsc::Receiver<NetBuffer>>),
}

/// A remote claim: the consumer attempt that made it, and the signal that revokes it.
type Claim = (ExecutionAttemptId, Arc<Notify>);

/// The subpartition queues of every producer task on this TaskManager, until their consumer
/// (local channel or remote data connection) claims them. A consumer may ask before its
/// producer is deployed: it then waits for the registration.
#[derive(Clone, Default)]
pub struct PartitionRegistry {
    slots: Arc<Mutex<BTreeMap<SubpartitionKey, Slot>>>,
    /// Remote claims that can be revoked, with the consumer attempt that made each: the
    /// forwarder serving the key waits on the signal.
    claims: Arc<Mutex<BTreeMap<SubpartitionKey, Claim>>>,
}

impl PartitionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SubpartitionKey, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the bounded queue of one subpartition; the producer keeps the sender.
    pub fn create(&self, key: SubpartitionKey, capacity: usize) -> mpsc::Sender<NetBuffer> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut slots = self.lock();
        match slots.remove(&key) {
            Some(Slot::Waiting(waiter)) => {
                if let Err(rx) = waiter.send(rx) {
                    slots.insert(key, Slot::Ready(rx));
                }
            }
            _ => {
                slots.insert(key, Slot::Ready(rx));
            }
        }
        tx
    }

    /// Claims a subpartition's queue, waiting for its producer to register it.
    pub async fn take(&self, key: SubpartitionKey) -> Option<mpsc::Receiver<NetBuffer>> {
        let waiter = {
            let mut slots = self.lock();
            match slots.remove(&key) {
                Some(Slot::Ready(rx)) => return Some(rx),
                _ => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(key, Slot::Waiting(tx));
                    rx
                }
            }
        };
        waiter.await.ok()
    }

    /// The signal that revokes the remote claim of `key` by `consumer` (see `revoke`); the
    /// forwarder that serves the claim waits on it and calls `unwatch` when it ends.
    pub fn watch_claim(&self, key: SubpartitionKey, consumer: ExecutionAttemptId) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        crate::util::lock(&self.claims).insert(key, (consumer, signal.clone()));
        signal
    }

    /// Forgets a claim's signal, unless a newer claim of the key replaced it.
    pub fn unwatch(&self, key: &SubpartitionKey, signal: &Arc<Notify>) {
        let mut claims = crate::util::lock(&self.claims);
        if claims.get(key).is_some_and(|(_, s)| Arc::ptr_eq(s, signal)) {
            claims.remove(key);
        }
    }

    /// Drops the queue of `key` if nobody claimed it: its consumer finished, so nobody will.
    /// The producer's next send fails and, under `taskmanager` failover, it discards from then
    /// on instead of filling the queue and blocking.
    pub fn drop_unclaimed(&self, key: &SubpartitionKey) -> bool {
        let mut slots = self.lock();
        let unclaimed = matches!(slots.get(key), Some(Slot::Ready(_)));
        if unclaimed {
            slots.remove(key);
        }
        unclaimed
    }

    /// Ends the remote claim of `key`: its consumer was replaced (`taskmanager` failover) but
    /// its connection may never break (a partitioned TaskManager). The forwarder drops the
    /// queue, so the producer's next send fails and it opens a fresh queue for the
    /// replacement. A notification stored before the forwarder waits is not lost. Only a claim
    /// by an attempt before `replacement` goes: the replacement's own claim may have come
    /// first, and must stay.
    pub fn revoke(&self, key: &SubpartitionKey, replacement: ExecutionAttemptId) -> bool {
        let mut claims = crate::util::lock(&self.claims);
        match claims.get(key) {
            Some((consumer, _)) if consumer.attempt < replacement.attempt => {
                let (_, signal) = claims.remove(key).expect("checked above");
                signal.notify_one();
                true
            }
            _ => false,
        }
    }

    /// True while `key`'s queue is registered and no consumer has claimed it.
    pub fn is_unclaimed(&self, key: &SubpartitionKey) -> bool {
        matches!(self.lock().get(key), Some(Slot::Ready(_)))
    }

    /// Forgets every subpartition of a producer attempt (it ended or was cancelled); waiting
    /// consumers see their request fail.
    pub fn release(&self, job: JobId, producer: ExecutionAttemptId) {
        self.lock()
            .retain(|k, _| !(k.job == job && k.producer == producer));
    }

    /// Forgets everything of a job.
    pub fn release_job(&self, job: JobId) {
        self.lock().retain(|k, _| k.job != job);
    }

    /// Subpartition queues registered and not yet claimed (and consumers waiting for theirs).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is registered or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VertexId;

    fn key() -> SubpartitionKey {
        SubpartitionKey {
            job: JobId(1),
            producer: ExecutionAttemptId {
                vertex: VertexId(0),
                subtask: 0,
                attempt: 0,
            },
            edge: EdgeId(0),
            index: 3,
        }
    }

    fn consumer(attempt: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            vertex: VertexId(1),
            subtask: 3,
            attempt,
        }
    }

    #[test]
    fn a_revocation_closes_only_claims_of_earlier_attempts() {
        let registry = PartitionRegistry::default();
        // The replacement (attempt 1) claimed before the revocation for it arrived.
        let _signal = registry.watch_claim(key(), consumer(1));
        assert!(!registry.revoke(&key(), consumer(1)));
        // The old attempt's claim goes.
        let old = registry.watch_claim(key(), consumer(0));
        assert!(registry.revoke(&key(), consumer(1)));
        assert!(!registry.revoke(&key(), consumer(1)), "once");
        // The stored notification reaches the forwarder that waits after it.
        futures_util::FutureExt::now_or_never(old.notified()).expect("notified");
    }
}
