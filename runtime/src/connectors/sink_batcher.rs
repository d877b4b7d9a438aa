//! A TaskManager's writes to a sink store, batched: one task per store connection takes the
//! writes its sink subtasks queued while the previous batch was on its way and sends them as
//! one request (group commit), so a TaskManager with many sinks makes one round trip per
//! batch, not one per sink flush. Each sink subtask still has at most one write outstanding
//! and waits for its reply before sending the next (`sink_service`'s writer task), so a
//! writer's writes land in order and are numbered as before; the store applies a batch's
//! writes in order and answers each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::sink_service::{
    BatchReply, SinkBatch, SinkReply, SinkRequest, MAX_BATCH_WRITES, SERVICE, WRITE_TIMEOUT,
};
use crate::config::Configuration;
use crate::rpc::service::{ClientPool, ServiceClient, Unavailable};
use crate::rpc::PeerRole;
use crate::util::{lock, AbortOnDrop};

/// At most this many writes go in one batch (what the store accepts in one)...
const BATCH_WRITES: usize = MAX_BATCH_WRITES;
/// ...and about this many bytes, or a quarter of the configured frame limit if that is less (a
/// single larger write goes alone, as it went before batching): batching never makes a request
/// too large to send.
const BATCH_BYTES: usize = 1 << 20;

type Answer = oneshot::Sender<Result<SinkReply, Unavailable>>;

/// A TaskManager's clients of sink stores, by address: one connection and one batcher per
/// store. Clones share them.
#[derive(Clone)]
pub struct SinkClients {
    pool: ClientPool<SinkBatch, BatchReply>,
    batchers: Arc<Mutex<BTreeMap<String, SinkBatcher>>>,
    /// The byte bound of a batch under this process's frame limit.
    batch_bytes: usize,
}

/// A TaskManager's sink-store clients; `name` is the TaskManager's, for the handshake.
pub fn sink_clients(config: Configuration, name: String) -> SinkClients {
    let batch_bytes = BATCH_BYTES.min(config.max_frame_size() / 4).max(1);
    SinkClients {
        pool: ClientPool::new(SERVICE, PeerRole::TaskManager, name, config, WRITE_TIMEOUT),
        batchers: Arc::default(),
        batch_bytes,
    }
}

impl SinkClients {
    /// The batcher of the store at `addr` (started on first use, in the caller's runtime; a
    /// batcher whose task has ended is replaced).
    pub(crate) fn client(&self, addr: &str) -> SinkBatcher {
        let mut batchers = lock(&self.batchers);
        if batchers.get(addr).is_some_and(|b| b.queue.is_closed()) {
            batchers.remove(addr);
        }
        let bytes = self.batch_bytes;
        batchers
            .entry(addr.to_string())
            .or_insert_with(|| SinkBatcher::start(self.pool.client(addr), addr, bytes))
            .clone()
    }

    /// Forgets every connection and batcher: the next caller connects afresh (writers still
    /// holding the old ones keep them until they end).
    pub fn reset(&self) {
        lock(&self.batchers).clear();
        self.pool.reset();
    }
}

/// The writes to one sink store, sent in batches. Clones share the batch task.
#[derive(Clone)]
pub(crate) struct SinkBatcher {
    /// Unbounded, yet bounded by construction: only this TaskManager's sink writers send,
    /// each holds at most one write here while it waits for its answer.
    queue: mpsc::UnboundedSender<(SinkRequest, Answer)>,
    addr: Arc<str>,
    _task: Arc<AbortOnDrop<()>>,
}

impl SinkBatcher {
    fn start(
        client: ServiceClient<SinkBatch, BatchReply>,
        addr: &str,
        batch_bytes: usize,
    ) -> SinkBatcher {
        let (queue, rx) = mpsc::unbounded_channel();
        let task = run(client, Arc::from(addr), batch_bytes, rx);
        SinkBatcher {
            queue,
            addr: Arc::from(addr),
            _task: Arc::new(AbortOnDrop(tokio::spawn(task))),
        }
    }

    /// Sends `request` in the next batch and waits for the store's answer to it.
    pub(crate) async fn call(&self, request: SinkRequest) -> Result<SinkReply, Unavailable> {
        let (tx, rx) = oneshot::channel();
        let stopped = || Unavailable {
            service: SERVICE,
            addr: self.addr.to_string(),
            reason: "the TaskManager's sink store batcher stopped".into(),
        };
        self.queue.send((request, tx)).map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Sends what is queued, batch after batch, until every handle is gone.
async fn run(
    client: ServiceClient<SinkBatch, BatchReply>,
    addr: Arc<str>,
    batch_bytes: usize,
    mut queue: mpsc::UnboundedReceiver<(SinkRequest, Answer)>,
) {
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        // Connected first, then gathered: the batch goes out as soon as it is put together, so
        // a writer cancelled while a connection was being made is not in it.
        let ready = client.ready().await;
        let (batch, rest) = gather(first, &mut queue, batch_bytes);
        carried = rest;
        // A write whose writer is gone (its task was cancelled) is not sent: a cancelled
        // attempt must not write after it was cancelled.
        let (writes, answers): (Vec<_>, Vec<_>) =
            batch.into_iter().filter(|(_, a)| !a.is_closed()).unzip();
        if writes.is_empty() {
            continue;
        }
        let sent = writes.len();
        let result = match ready {
            Ok(()) => client.call(&SinkBatch { writes }).await,
            Err(e) => Err(e),
        };
        answer(answers, result, sent, &addr);
    }
}

/// `first` and what else is queued now, up to the batch bounds; the write that would have
/// passed the byte bound, if one did, is returned to start the next batch.
type Gathered = (Vec<(SinkRequest, Answer)>, Option<(SinkRequest, Answer)>);

fn gather(
    first: (SinkRequest, Answer),
    queue: &mut mpsc::UnboundedReceiver<(SinkRequest, Answer)>,
    batch_bytes: usize,
) -> Gathered {
    let mut bytes = first.0.size();
    let mut batch = vec![first];
    while batch.len() < BATCH_WRITES {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        let size = next.0.size();
        if bytes + size > batch_bytes {
            return (batch, Some(next));
        }
        bytes += size;
        batch.push(next);
    }
    (batch, None)
}

/// Hands each writer its reply, or the batch's failure.
fn answer(answers: Vec<Answer>, result: Result<BatchReply, Unavailable>, sent: usize, addr: &str) {
    let failed = |reason: String| Unavailable {
        service: SERVICE,
        addr: addr.to_string(),
        reason,
    };
    let replies = match result {
        Ok(Ok(replies)) if replies.len() == sent => replies,
        Ok(Ok(replies)) => {
            let e = failed(format!(
                "{} replies to a batch of {sent} writes",
                replies.len()
            ));
            return fail_all(answers, e);
        }
        // The store could not take the batch now (its journal failed): sent again later.
        Ok(Err(reason)) => return fail_all(answers, failed(reason)),
        Err(e) => return fail_all(answers, e),
    };
    for (a, reply) in answers.into_iter().zip(replies) {
        let _ = a.send(Ok(reply));
    }
}

fn fail_all(answers: Vec<Answer>, e: Unavailable) {
    for a in answers {
        let _ = a.send(Err(e.clone()));
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::connectors::sink_service::tests_support::request;

    type Waiting = oneshot::Receiver<Result<SinkReply, Unavailable>>;

    /// `n` writes of `payload` bytes, each with the receiver and sender of its answer.
    fn queued(n: usize, payload: usize) -> Vec<(SinkRequest, Waiting, Answer)> {
        (0..n)
            .map(|i| {
                let (tx, rx) = oneshot::channel();
                (request(i as u64 + 1, payload), rx, tx)
            })
            .collect()
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_its_bounds() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut receivers = Vec::new();
        for (r, answer_rx, answer) in queued(BATCH_WRITES + 3, 10) {
            tx.send((r, answer)).unwrap();
            receivers.push(answer_rx);
        }
        let first = rx.try_recv().unwrap();
        let (batch, carried) = gather(first, &mut rx, BATCH_BYTES);
        assert_eq!((batch.len(), carried.is_none()), (BATCH_WRITES, true));
        let (batch, _) = gather(rx.try_recv().unwrap(), &mut rx, BATCH_BYTES);
        let seqs: Vec<u64> = batch.iter().map(|(r, _)| r.seq()).collect();
        let next = BATCH_WRITES as u64;
        assert_eq!(
            seqs,
            vec![next + 1, next + 2, next + 3],
            "the rest, in order"
        );
        // Large writes: each batch stops before the byte bound, a write larger than the
        // bound goes alone, and the one that would have passed it starts the next batch.
        for (r, answer_rx, answer) in queued(3, BATCH_BYTES / 2) {
            tx.send((r, answer)).unwrap();
            receivers.push(answer_rx);
        }
        let (batch, carried) = gather(rx.try_recv().unwrap(), &mut rx, BATCH_BYTES);
        assert_eq!(batch.len(), 1);
        let (batch, carried) = gather(carried.expect("carried over"), &mut rx, BATCH_BYTES);
        assert_eq!(batch.len(), 1);
        let (batch, carried) = gather(carried.expect("carried over"), &mut rx, BATCH_BYTES);
        assert_eq!((batch.len(), carried.is_none()), (1, true));
    }

    #[test]
    fn a_batch_answers_each_writer_or_fails_them_all() {
        let unavailable = |reason: &str| Unavailable {
            service: SERVICE,
            addr: "a".into(),
            reason: reason.into(),
        };
        let run = |result: Result<BatchReply, Unavailable>| {
            let (answers, mut receivers): (Vec<_>, Vec<_>) = (0..2)
                .map(|_| {
                    let (tx, rx) = oneshot::channel();
                    (tx, rx)
                })
                .unzip();
            answer(answers, result, 2, "a");
            receivers
                .iter_mut()
                .map(|rx| rx.try_recv().unwrap())
                .collect::<Vec<_>>()
        };
        let refused = Err(crate::connectors::sink_service::SinkRefusal::Ungranted);
        assert_eq!(
            run(Ok(Ok(vec![Ok(()), refused]))),
            vec![Ok(Ok(())), Ok(refused)]
        );
        let failed = run(Err(unavailable("timed out")));
        assert!(failed.iter().all(|r| r == &Err(unavailable("timed out"))));
        // A store that answers a batch with the wrong number of replies is not trusted.
        let short = run(Ok(Ok(vec![Ok(())])));
        // A store that could not take the batch now (its journal failed) is asked again.
        let later = run(Ok(Err("journal write failed".into())));
        assert!(later.iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.reason == "journal write failed")));
        assert!(short.iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.reason.contains("1 replies to a batch of 2"))));
    }
}
