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

/// What a replaced local consumer's queue leaves to settle, under one lock so that a
/// revocation and the producer's end of partition cannot pass each other.
#[derive(Default)]
struct LocalEnds {
    /// Revoked before the producer ended the subpartition: the producer opens a fresh queue
    /// for the replacement at its next write.
    revoked: std::collections::BTreeSet<SubpartitionKey>,
    /// Subpartitions whose end of partition the producer wrote: a revocation after it gives
    /// the replacement a queue holding just that end.
    ended: std::collections::BTreeSet<SubpartitionKey>,
}

enum Slot {
    Ready(mpsc::Receiver<NetBuffer>),
    Waiting(oneshot::Sender<mpsc::Receiver<NetBuffer>>),
}

/// A claim: the consumer attempt that made it, and how to end it.
type Claim = (ExecutionAttemptId, ClaimedBy);

/// Who holds a claimed queue.
enum ClaimedBy {
    /// A remote consumer's forwarder, which ends when the signal comes.
    Remote(Arc<Notify>),
    /// A consumer task on this TaskManager, holding the queue itself: the producer replaces the
    /// queue (see [`PartitionRegistry::take_revoked`]).
    Local,
}

/// The subpartition queues of every producer task on this TaskManager, until their consumer
/// (local channel or remote data connection) claims them. A consumer may ask before its
/// producer is deployed: it then waits for the registration.
#[derive(Clone, Default)]
pub struct PartitionRegistry {
    slots: Arc<Mutex<BTreeMap<SubpartitionKey, Slot>>>,
    /// Claims that can be revoked, with the consumer attempt that made each: the forwarder of
    /// a remote one waits on its signal.
    claims: Arc<Mutex<BTreeMap<SubpartitionKey, Claim>>>,
    /// Locally claimed queues whose consumer was replaced, and the ends already written.
    local: Arc<Mutex<LocalEnds>>,
    /// How many keys `revoked` holds, so producers check it without a lock.
    revoked_count: Arc<std::sync::atomic::AtomicUsize>,
    /// For each revoked key, the attempt of the consumer that replaced the revoked one: a
    /// claim by an earlier attempt is refused from then on. A replaced consumer that
    /// reconnects (its grant stays valid) must not take its replacement's queue.
    fenced: Arc<Mutex<BTreeMap<SubpartitionKey, u32>>>,
    /// Subpartitions whose consumer finished before their producer registered the queue (a
    /// restored producer still restoring when the JobManager said so): the producer writes
    /// them to nobody from the start ([`PartitionRegistry::take_finished`]).
    finished_early: Arc<Mutex<std::collections::BTreeSet<SubpartitionKey>>>,
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

    /// How many claims wait for their producer to register the queue (what a consumer that
    /// asks early, or a peer that asks for what never comes, leaves here).
    pub fn waiting(&self) -> usize {
        self.lock()
            .values()
            .filter(|slot| matches!(slot, Slot::Waiting(_)))
            .count()
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
        let _forget = ForgetWaiter {
            registry: self,
            key,
        };
        waiter.await.ok()
    }

    /// [`PartitionRegistry::take`] for `consumer`: refused (`None`) if a revocation replaced
    /// `consumer` with a later attempt, before it asked or while it waited; a queue it was
    /// handed meanwhile goes back for the replacement.
    pub async fn take_for(
        &self,
        key: SubpartitionKey,
        consumer: ExecutionAttemptId,
    ) -> Option<mpsc::Receiver<NetBuffer>> {
        if self.is_fenced(&key, consumer) {
            return None;
        }
        let rx = self.take(key).await?;
        if self.is_fenced(&key, consumer) {
            self.give_back(key, rx);
            return None;
        }
        Some(rx)
    }

    fn is_fenced(&self, key: &SubpartitionKey, consumer: ExecutionAttemptId) -> bool {
        crate::util::lock(&self.fenced)
            .get(key)
            .is_some_and(|replacement| consumer.attempt < *replacement)
    }

    /// Returns a queue a fenced claim was handed: to a claim waiting now, or registered for
    /// the next. A newer queue already there stays (the returned one is dropped).
    fn give_back(&self, key: SubpartitionKey, rx: mpsc::Receiver<NetBuffer>) {
        let mut slots = self.lock();
        match slots.remove(&key) {
            Some(Slot::Waiting(waiter)) => {
                if let Err(rx) = waiter.send(rx) {
                    slots.insert(key, Slot::Ready(rx));
                }
            }
            Some(newer) => {
                slots.insert(key, newer);
            }
            None => {
                slots.insert(key, Slot::Ready(rx));
            }
        }
    }

    /// [`PartitionRegistry::take_for`] for `consumer`, a task on this TaskManager: the claim is
    /// recorded, so that a replacement of `consumer` can revoke it.
    pub async fn take_local(
        &self,
        key: SubpartitionKey,
        consumer: ExecutionAttemptId,
    ) -> Option<mpsc::Receiver<NetBuffer>> {
        let rx = self.take_for(key, consumer).await?;
        crate::util::lock(&self.claims).insert(key, (consumer, ClaimedBy::Local));
        Some(rx)
    }

    /// Whether `key`'s local claim was revoked (once): its producer then drops the queue the
    /// replaced consumer holds and opens a fresh one for the replacement.
    pub fn take_revoked(&self, key: &SubpartitionKey) -> bool {
        use std::sync::atomic::Ordering;
        if self.revoked_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut local = crate::util::lock(&self.local);
        let taken = local.revoked.remove(key);
        self.count_revoked(&local);
        taken
    }

    /// Keeps the lock-free count in step with `local`; called with its lock held, so a
    /// concurrent revocation can never be counted away.
    fn count_revoked(&self, local: &LocalEnds) {
        self.revoked_count
            .store(local.revoked.len(), std::sync::atomic::Ordering::Release);
    }

    /// The producer wrote `key`'s end of partition (into whichever queue: every later
    /// replacement of its consumer is then given one of its own). Returns whether its local
    /// claim was revoked meanwhile: the end then went to the replaced consumer, and the
    /// producer must write it again into the fresh queue it opens.
    pub fn note_end(&self, key: &SubpartitionKey) -> bool {
        let mut local = crate::util::lock(&self.local);
        local.ended.insert(*key);
        let revoked = local.revoked.remove(key);
        self.count_revoked(&local);
        revoked
    }

    /// A queue holding only the end of partition, for the replacement of a consumer whose
    /// producer has written everything (it may have finished and be gone).
    fn create_ended(&self, key: SubpartitionKey) {
        let tx = self.create(key, 1);
        let _ = tx.try_send(NetBuffer::Event(super::StreamEvent::EndOfPartition));
    }

    /// The signal that revokes the remote claim of `key` by `consumer` (see `revoke`); the
    /// forwarder that serves the claim waits on it and calls `unwatch` when it ends.
    pub fn watch_claim(&self, key: SubpartitionKey, consumer: ExecutionAttemptId) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        let claim = (consumer, ClaimedBy::Remote(signal.clone()));
        crate::util::lock(&self.claims).insert(key, claim);
        signal
    }

    /// Forgets a claim's signal, unless a newer claim of the key replaced it.
    pub fn unwatch(&self, key: &SubpartitionKey, signal: &Arc<Notify>) {
        let mut claims = crate::util::lock(&self.claims);
        let same = |by: &ClaimedBy| matches!(by, ClaimedBy::Remote(s) if Arc::ptr_eq(s, signal));
        if claims.get(key).is_some_and(|(_, by)| same(by)) {
            claims.remove(key);
        }
    }

    /// Drops the queue of `key` if nobody claimed it: its consumer finished, so nobody will.
    /// The producer's next send fails and, under `taskmanager` failover, it discards from then
    /// on instead of filling the queue and blocking.
    /// A queue not registered yet (its producer is still being deployed or restoring) is
    /// remembered as finished for when it is: a queue nobody will claim would fill up and hold
    /// its producer, and the consumers of the rest of its output, for good (found by a swarm
    /// seed whose restarted source was restoring, buggified slow, when its only remaining
    /// consumer finished). A claimed queue is its consumer's to close.
    pub fn drop_unclaimed(&self, key: &SubpartitionKey) -> bool {
        let mut slots = self.lock();
        match slots.get(key) {
            Some(Slot::Ready(_)) => {
                slots.remove(key);
                true
            }
            Some(Slot::Waiting(_)) => false,
            None => {
                drop(slots);
                crate::util::lock(&self.finished_early).insert(*key);
                false
            }
        }
    }

    /// Whether `key`'s consumer finished before this queue was registered (once): its producer
    /// then writes the subpartition to nobody.
    pub fn take_finished(&self, key: &SubpartitionKey) -> bool {
        crate::util::lock(&self.finished_early).remove(key)
    }

    /// Ends the claim of `key`: its consumer was replaced (`taskmanager` failover or a
    /// rebalancing move) but may hold on to the queue for a while: a remote one's connection
    /// may never break (a partitioned TaskManager), a local one is cancelled only when its
    /// cancellation arrives. A remote claim's forwarder drops the queue, so the producer's next
    /// send fails and it opens a fresh queue for the replacement; a local claim is marked, and
    /// the producer replaces the queue at its next write (the old consumer holds the receiver).
    /// Either way the replacement gets its queue before the producer can finish into the old
    /// one, which nobody would read. A notification stored before the forwarder waits is not
    /// lost. Only a claim by an attempt before `replacement` goes: the replacement's own claim
    /// may have come first, and must stay.
    pub fn revoke(&self, key: &SubpartitionKey, replacement: ExecutionAttemptId) -> bool {
        // A consumer that finished and is now replaced (its TaskManager was lost) needs the
        // subpartition again: it is no longer written to nobody.
        crate::util::lock(&self.finished_early).remove(key);
        // First: a replaced consumer woken by what this hands out must find itself fenced.
        let mut fenced = crate::util::lock(&self.fenced);
        let below = fenced.entry(*key).or_default();
        *below = (*below).max(replacement.attempt);
        drop(fenced);
        let mut claims = crate::util::lock(&self.claims);
        match claims.get(key) {
            Some((consumer, _)) if consumer.attempt < replacement.attempt => {
                let by = claims.remove(key).expect("checked above").1;
                drop(claims);
                let mut local = crate::util::lock(&self.local);
                let ended = local.ended.contains(key);
                match by {
                    ClaimedBy::Remote(signal) => signal.notify_one(),
                    // The producer is still to write its end: it replaces the queue then.
                    ClaimedBy::Local if !ended => {
                        local.revoked.insert(*key);
                        self.count_revoked(&local);
                    }
                    ClaimedBy::Local => {}
                }
                drop(local);
                // The end went to the replaced consumer, and the producer writes nothing
                // more (it may be gone): the replacement gets a queue holding just the end.
                if ended {
                    self.create_ended(*key);
                }
                true
            }
            Some(_) => false,
            None => {
                drop(claims);
                self.revoke_unclaimed(key)
            }
        }
    }

    /// A revocation that finds no claim: the replaced consumer's forwarder already ended (its
    /// consumer was cancelled, or its connection dropped, before the revocation arrived; a
    /// TaskManager busy elsewhere handles its JobManager's messages late). Its queue went
    /// with it. If the producer had written its end, that end went too and the producer
    /// writes nothing more: the replacement gets a queue holding just the end, or it would
    /// wait for it forever. Otherwise the producer's next send fails and it opens a fresh
    /// queue itself.
    fn revoke_unclaimed(&self, key: &SubpartitionKey) -> bool {
        let ended = crate::util::lock(&self.local).ended.contains(key);
        // A queue already there (an end-only one, or one not yet claimed) is the
        // replacement's: it is not replaced.
        let queued = matches!(self.lock().get(key), Some(Slot::Ready(_)));
        if ended && !queued {
            self.create_ended(*key);
        }
        ended && !queued
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
        crate::util::lock(&self.claims).retain(|k, _| !(k.job == job && k.producer == producer));
        crate::util::lock(&self.fenced).retain(|k, _| !(k.job == job && k.producer == producer));
        crate::util::lock(&self.finished_early)
            .retain(|k| !(k.job == job && k.producer == producer));
        self.forget_revoked(|k| k.job == job && k.producer == producer);
    }

    fn forget_revoked(&self, gone: impl Fn(&SubpartitionKey) -> bool) {
        let mut local = crate::util::lock(&self.local);
        local.revoked.retain(|k| !gone(k));
        local.ended.retain(|k| !gone(k));
        self.count_revoked(&local);
    }

    /// Forgets everything of a job.
    pub fn release_job(&self, job: JobId) {
        self.lock().retain(|k, _| k.job != job);
        crate::util::lock(&self.claims).retain(|k, _| k.job != job);
        crate::util::lock(&self.fenced).retain(|k, _| k.job != job);
        crate::util::lock(&self.finished_early).retain(|k| k.job != job);
        self.forget_revoked(|k| k.job == job);
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

/// Removes a waiting claim whose taker gave up (timed out, or its connection closed): a
/// request for a subpartition that never comes must not stay in the registry.
struct ForgetWaiter<'a> {
    registry: &'a PartitionRegistry,
    key: SubpartitionKey,
}

impl Drop for ForgetWaiter<'_> {
    fn drop(&mut self) {
        let mut slots = self.registry.lock();
        // Closed: its receiver (this taker's) is gone; a later taker's waiter stays.
        if matches!(slots.get(&self.key), Some(Slot::Waiting(tx)) if tx.is_closed()) {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    #[tokio::test]
    async fn a_claim_given_up_leaves_nothing_behind_and_a_later_one_still_waits() {
        let registry = PartitionRegistry::default();
        let gave_up = tokio::time::timeout(Duration::from_millis(10), registry.take(key())).await;
        assert!(gave_up.is_err());
        assert_eq!(registry.lock().len(), 0, "the abandoned waiter stayed");
        // A second taker's wait survives the first one's end. The first must be waiting
        // before the second asks (the simulator may run spawned tasks in any order), and the
        // later claim supersedes it: the first ends with nothing, and its ForgetWaiter must
        // leave the second's waiter in place.
        let first = registry.clone();
        let superseded = tokio::spawn(async move { first.take(key()).await });
        while registry.lock().is_empty() {
            tokio::task::yield_now().await;
        }
        let second = registry.clone();
        let waiting = tokio::spawn(async move { second.take(key()).await });
        let first_got = superseded.await.expect("joined");
        assert!(first_got.is_none(), "a superseded claim got the queue");
        assert_eq!(
            registry.lock().len(),
            1,
            "the later waiter went with the first"
        );
        let _tx = registry.create(key(), 4);
        let rx = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(rx.expect("in time").expect("joined").is_some());
    }

    /// The JobManager says a consumer finished while its restored producer is still
    /// restoring: the queue it registers afterwards is written to nobody, once.
    #[test]
    fn a_consumer_that_finished_before_its_queue_was_registered_is_remembered_once() {
        let registry = PartitionRegistry::default();
        assert!(!registry.drop_unclaimed(&key()), "nothing to drop yet");
        assert!(registry.take_finished(&key()));
        assert!(!registry.take_finished(&key()), "once");
        // A registered, unclaimed queue is dropped at once, and not remembered.
        let _tx = registry.create(key(), 4);
        assert!(registry.drop_unclaimed(&key()));
        assert!(!registry.take_finished(&key()));
        // A replacement of the finished consumer needs the subpartition again.
        registry.drop_unclaimed(&key());
        registry.revoke(&key(), consumer(1));
        assert!(!registry.take_finished(&key()));
        // What a producer that went leaves is forgotten with it.
        registry.drop_unclaimed(&key());
        registry.release(key().job, key().producer);
        assert!(!registry.take_finished(&key()));
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

    #[tokio::test]
    async fn a_revoked_local_claim_is_replaced_by_the_producer_once() {
        let registry = PartitionRegistry::default();
        let _tx = registry.create(key(), 4);
        let _held = registry
            .take_local(key(), consumer(0))
            .await
            .expect("claimed");
        assert!(!registry.take_revoked(&key()), "nothing revoked yet");
        // Attempt 1 replaces attempt 0: its claim goes, and the producer learns it once.
        assert!(registry.revoke(&key(), consumer(1)));
        assert!(registry.take_revoked(&key()));
        assert!(!registry.take_revoked(&key()), "once");
        // The fresh queue the producer opens then is the replacement's.
        let _tx = registry.create(key(), 4);
        assert!(registry.take_local(key(), consumer(1)).await.is_some());
        assert!(!registry.revoke(&key(), consumer(1)), "its own claim stays");
    }

    #[tokio::test]
    async fn a_replacement_of_a_consumer_whose_producer_already_ended_gets_the_end() {
        let registry = PartitionRegistry::default();
        let tx = registry.create(key(), 4);
        let _old = registry
            .take_local(key(), consumer(0))
            .await
            .expect("claimed");
        // The producer wrote its end into the old consumer's queue, and finished.
        tx.try_send(NetBuffer::Event(super::super::StreamEvent::EndOfPartition))
            .unwrap();
        assert!(!registry.note_end(&key()));
        drop(tx);
        assert!(registry.revoke(&key(), consumer(1)));
        let mut rx = registry
            .take_local(key(), consumer(1))
            .await
            .expect("a queue");
        assert!(matches!(
            rx.recv().await,
            Some(NetBuffer::Event(super::super::StreamEvent::EndOfPartition))
        ));
    }

    #[tokio::test]
    async fn a_replacement_gets_the_end_when_its_revocation_comes_after_the_old_forwarder_ended() {
        let registry = PartitionRegistry::default();
        let tx = registry.create(key(), 4);
        // The old consumer's forwarder claims the queue; the producer writes its end into it.
        let old_queue = registry.take(key()).await.expect("claimed");
        let signal = registry.watch_claim(key(), consumer(0));
        tx.try_send(NetBuffer::Event(super::super::StreamEvent::EndOfPartition))
            .unwrap();
        assert!(!registry.note_end(&key()));
        // The old consumer is cancelled before this TaskManager handles the revocation: its
        // forwarder ends and drops the queue, end and all.
        registry.unwatch(&key(), &signal);
        drop(old_queue);
        // The replacement asks first and waits; the revocation comes late.
        let taker = registry.clone();
        let waiting = tokio::spawn(async move { taker.take(key()).await });
        while registry.lock().is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(registry.revoke(&key(), consumer(1)));
        let mut rx = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the replacement got a queue in time")
            .expect("joined")
            .expect("a queue");
        // Its forwarder holds the claim from then on, which the revocation leaves alone.
        let _own = registry.watch_claim(key(), consumer(1));
        assert!(matches!(
            rx.recv().await,
            Some(NetBuffer::Event(super::super::StreamEvent::EndOfPartition))
        ));
        assert!(!registry.revoke(&key(), consumer(1)), "its own claim stays");
    }

    #[tokio::test]
    async fn a_revocation_without_a_claim_before_the_end_leaves_the_queue_to_the_producer() {
        let registry = PartitionRegistry::default();
        let _tx = registry.create(key(), 4);
        let old_queue = registry.take(key()).await.expect("claimed");
        drop(old_queue);
        // Not ended: the producer's next send fails and it opens the fresh queue itself.
        assert!(!registry.revoke(&key(), consumer(1)));
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn a_replaced_consumer_cannot_take_its_replacements_queue() {
        let registry = PartitionRegistry::default();
        let tx = registry.create(key(), 4);
        let old_queue = registry
            .take_for(key(), consumer(0))
            .await
            .expect("claimed");
        let signal = registry.watch_claim(key(), consumer(0));
        tx.try_send(NetBuffer::Event(super::super::StreamEvent::EndOfPartition))
            .unwrap();
        registry.note_end(&key());
        registry.unwatch(&key(), &signal);
        drop(old_queue);
        // The replaced consumer reconnects and waits again (its grant stays valid) before
        // the revocation arrives; the revocation's end-only queue is not for it.
        let again = registry.clone();
        let old = tokio::spawn(async move { again.take_for(key(), consumer(0)).await });
        while registry.lock().is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(registry.revoke(&key(), consumer(1)));
        let old_got = tokio::time::timeout(Duration::from_secs(1), old).await;
        assert!(old_got.expect("in time").expect("joined").is_none());
        // Asking again, it is refused at once; the replacement gets the end.
        assert!(registry.take_for(key(), consumer(0)).await.is_none());
        let mut rx = registry
            .take_for(key(), consumer(1))
            .await
            .expect("the replacement's queue");
        assert!(matches!(
            rx.recv().await,
            Some(NetBuffer::Event(super::super::StreamEvent::EndOfPartition))
        ));
    }

    #[tokio::test]
    async fn every_later_replacement_of_a_finished_producers_consumer_gets_the_end() {
        let registry = PartitionRegistry::default();
        let tx = registry.create(key(), 4);
        let _old = registry
            .take_local(key(), consumer(0))
            .await
            .expect("claimed");
        assert!(!registry.note_end(&key()));
        drop(tx);
        for attempt in 1..=3 {
            assert!(registry.revoke(&key(), consumer(attempt)));
            let mut rx = registry
                .take_local(key(), consumer(attempt))
                .await
                .expect("a queue");
            assert!(matches!(
                rx.recv().await,
                Some(NetBuffer::Event(super::super::StreamEvent::EndOfPartition))
            ));
        }
        // A remote replacement too.
        let _signal = registry.watch_claim(key(), consumer(3));
        assert!(registry.revoke(&key(), consumer(4)));
        assert!(registry.take(key()).await.is_some());
    }

    #[test]
    fn a_revocation_before_the_end_makes_the_producer_write_it_again() {
        let registry = PartitionRegistry::default();
        crate::util::lock(&registry.claims).insert(key(), (consumer(0), ClaimedBy::Local));
        assert!(registry.revoke(&key(), consumer(1)));
        assert!(
            registry.note_end(&key()),
            "the end went to the replaced consumer"
        );
        assert!(!registry.take_revoked(&key()), "settled by the end");
    }
}
