//! The sink store served over the network: `rill sink-store` (or the harness's `sink-store`
//! node) keeps a `CollectStore`, and collecting sinks with `sink-store=rill://HOST:PORT` send
//! it their writes.
//!
//! A sink's writes go, in order, through one writer task per sink subtask: the operator chain
//! never waits on the network except where correctness needs it. Before a checkpoint is
//! acknowledged, and before the task reports FINISHED, the task waits until everything the
//! sink wrote so far is stored (`synced`); when too many writes are outstanding it waits too
//! (back-pressure). A write that gets no reply is sent again, numbered, and the store applies
//! each number once, so a reconnect never doubles output. A store that is down stalls its
//! sinks rather than failing them.
//!
//! A store that holds `security.sink-store.write-key` applies a write only with the grant the
//! JobManager deployed its sink attempt with (`write_grant`), presented by the TaskManager it
//! names; a sink refused for want of one fails its task, with the reason.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};

use super::sink_batcher::SinkBatcher;
use super::sink_journal::SinkJournal;
use super::sink_store::{BatchEntry, CollectStore, CollectedBatch, Fenced, SinkOp, WriterKey};
use super::write_grant::{WriteGrant, WriteKey, WriteTarget};
use crate::buggify::{self, Point};
use crate::chain::TaskWaits;
use crate::config::Configuration;
use crate::error::JobError;
use crate::ids::CheckpointId;
use crate::ids::JobId;
use crate::rpc::service::{serve_by_name, Backoff};
use crate::rpc::PeerRole;
use crate::util::{lock, AbortOnDrop};

pub(crate) const SERVICE: &str = "sink store";
/// Bound on one batch of writes: past it the connection is not trusted and the writes are
/// sent again.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes a sink may have outstanding before its task waits (back-pressure), and how far the
/// backlog must fall before it goes on.
const BACKLOG_HIGH: usize = 64;
const BACKLOG_LOW: usize = 16;

/// One write of a collecting sink subtask to a sink store: which sink subtask and attempt,
/// numbered so a resent write is applied once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkRequest {
    job: JobId,
    sink: String,
    subtask: u32,
    attempt: u32,
    /// The writer's number for this write, from 1: resent writes keep theirs.
    seq: u64,
    /// The JobManager's grant for this attempt (all zeros: none).
    grant: WriteGrant,
    op: WireOp,
}

impl SinkRequest {
    /// Drops the grant (once checked; a journal keeps none).
    pub(crate) fn forget_grant(&mut self) {
        self.grant = WriteGrant::default();
    }

    /// About how many bytes the request takes on the wire (what a batch is bounded by).
    pub(crate) fn size(&self) -> usize {
        let batch = match &self.op {
            WireOp::Append(b) | WireOp::Stage { batch: b, .. } => {
                b.payloads.len() + b.entries.len() * std::mem::size_of::<BatchEntry>()
            }
            WireOp::Open { .. } | WireOp::Commit { .. } => 0,
        };
        batch + self.sink.len() + 96
    }
}

/// The most writes a store takes in one batch (a longer one is refused whole).
pub const MAX_BATCH_WRITES: usize = 256;

/// The store's answer to a batch: one reply per write, in order; or why it could take none of
/// it now (its journal could not be written), and the writes are to be sent again.
pub type BatchReply = Result<Vec<SinkReply>, String>;

/// What a TaskManager sends a sink store at once: the writes its sink subtasks queued while
/// the previous batch was on its way (`sink_batcher`), applied in order and each answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkBatch {
    pub(crate) writes: Vec<SinkRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum WireOp {
    Open {
        restored: Option<CheckpointId>,
    },
    Append(WireBatch),
    Stage {
        checkpoint: CheckpointId,
        batch: WireBatch,
    },
    Commit {
        checkpoint: CheckpointId,
    },
}

/// A batch as it travels: the store stamps it when it arrives, which is when it is stored,
/// with the TaskManager its connection authenticated as (a writer cannot label its output as
/// another TaskManager's).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireBatch {
    payloads: Bytes,
    entries: Vec<BatchEntry>,
}

impl WireBatch {
    fn from_batch(b: CollectedBatch) -> Self {
        WireBatch {
            payloads: b.payloads,
            entries: b.entries,
        }
    }
}

/// Why a sink store did not apply a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SinkRefusal {
    /// The attempt has been replaced: what it would write is its successor's to write.
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// The write carried no grant for this attempt on this TaskManager.
    #[error(
        "the sink store refused the write: no write grant for this attempt on this \
         TaskManager (does the JobManager hold the store's security.sink-store.write-key?)"
    )]
    Ungranted,
}

/// The store's answer to one write.
pub type SinkReply = Result<(), SinkRefusal>;

/// Serves `store` to TaskManagers on `listener` until the task is dropped. Each write is
/// applied when it arrives, before the next one is read: a writer's writes land in order.
/// With `security.sink-store.write-key` set, only granted writes are applied. With a
/// `journal`, each write is appended to it before it is applied (`sink_journal`), so a
/// restarted store, and a harness, can replay what this one applied.
pub async fn serve_sink_store(
    listener: TcpListener,
    store: CollectStore,
    config: Configuration,
    journal: Option<SinkJournal>,
) {
    let key = WriteKey::from_config(&config);
    if key.is_none() {
        tracing::warn!(
            "sink store without security.sink-store.write-key: any TaskManager may write any \
             job's sinks"
        );
    }
    let journal = journal.map(Arc::new);
    let handler = move |peer: &str, batch: SinkBatch| {
        let replies = if batch.writes.len() > MAX_BATCH_WRITES {
            Err(format!(
                "a batch of {} writes (at most {MAX_BATCH_WRITES})",
                batch.writes.len()
            ))
        } else {
            // Up to the first write that could not be journaled: the rest of the batch is
            // sent again, and what was applied before it lands once (numbered).
            batch
                .writes
                .into_iter()
                .map(|request| receive(&store, key.as_ref(), journal.as_deref(), peer, request))
                .collect::<Result<Vec<SinkReply>, String>>()
        };
        // Buggify: applied now, acknowledged late (a slow sync); the writers wait for it.
        let late = buggify::delay(Point::SinkStoreAckLate);
        async move {
            if let Some(late) = late {
                tokio::time::sleep(late).await;
            }
            replies
        }
    };
    serve_by_name(listener, config, SERVICE, PeerRole::TaskManager, handler).await
}

/// Applies one write of a batch from `peer`, if it is granted (journaled first, with a
/// journal; not applied at all if the journal could not be written).
fn receive(
    store: &CollectStore,
    key: Option<&WriteKey>,
    journal: Option<&SinkJournal>,
    peer: &str,
    request: SinkRequest,
) -> Result<SinkReply, String> {
    if let Some(key) = key {
        if !granted(key, peer, &request) {
            tracing::debug!(peer, job = %request.job, sink = %request.sink, "ungranted sink write refused");
            return Ok(Err(SinkRefusal::Ungranted));
        }
    }
    let applied = match journal {
        Some(journal) => journal.applied(peer, request, |r, now| apply(store, peer, r, now))?,
        None => apply(store, peer, request, tokio::time::Instant::now()),
    };
    Ok(applied.map_err(SinkRefusal::from))
}

/// Whether `r` carries the grant of the attempt it names, on the TaskManager `peer`.
fn granted(key: &WriteKey, peer: &str, r: &SinkRequest) -> bool {
    let target = WriteTarget {
        job: r.job,
        sink: &r.sink,
        subtask: r.subtask,
        attempt: r.attempt,
        taskmanager: peer,
    };
    key.admits(&r.grant, &target)
}

/// Applies `r`, from the TaskManager `peer`, to `store` as of `now`.
pub(crate) fn apply(
    store: &CollectStore,
    peer: &str,
    r: SinkRequest,
    now: tokio::time::Instant,
) -> Result<(), Fenced> {
    let key = WriterKey {
        job: r.job,
        sink: Arc::from(r.sink),
        subtask: r.subtask,
    };
    let taskmanager: Arc<str> = Arc::from(peer);
    let batch = |b: WireBatch| CollectedBatch {
        sink: key.sink.clone(),
        taskmanager: taskmanager.clone(),
        at: now,
        subtask: r.subtask,
        attempt: r.attempt,
        payloads: b.payloads,
        entries: b.entries,
    };
    let op = match r.op {
        WireOp::Open { restored } => SinkOp::Open { restored },
        WireOp::Append(b) => SinkOp::Append(batch(b)),
        WireOp::Stage {
            checkpoint,
            batch: b,
        } => SinkOp::Stage {
            checkpoint,
            batch: batch(b),
        },
        WireOp::Commit { checkpoint } => SinkOp::Commit { checkpoint },
    };
    store.apply_once(&key, r.attempt, r.seq, op, now)
}

/// What the sink and its writer task share.
#[derive(Default)]
struct Shared {
    /// Set when the store refused this attempt: it has been replaced, or was never granted.
    refused: Mutex<Option<SinkRefusal>>,
    outstanding: AtomicUsize,
    /// Signalled as writes complete.
    progress: Notify,
}

enum Queued {
    Write(WireOp),
    /// Answered once every write queued before it is done.
    Sync(oneshot::Sender<()>),
}

/// One sink subtask's writes to a served store, in order.
pub(crate) struct RemoteSinkWriter {
    queue: mpsc::UnboundedSender<Queued>,
    shared: Arc<Shared>,
    _task: AbortOnDrop<()>,
}

impl RemoteSinkWriter {
    pub fn start(
        client: SinkBatcher,
        key: &WriterKey,
        attempt: u32,
        grant: WriteGrant,
        waits: TaskWaits,
    ) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let writer = WriterTask {
            client,
            job: key.job,
            sink: key.sink.to_string(),
            subtask: key.subtask,
            attempt,
            grant,
            waits,
            shared: shared.clone(),
        };
        RemoteSinkWriter {
            queue,
            shared,
            _task: AbortOnDrop(tokio::spawn(writer.run(rx))),
        }
    }

    /// Queues a write; refused at once if the store has refused this attempt.
    pub fn send(&self, op: SinkOp) -> Result<(), SinkRefusal> {
        if let Some(refused) = *lock(&self.shared.refused) {
            return Err(refused);
        }
        let op = match op {
            SinkOp::Open { restored } => WireOp::Open { restored },
            SinkOp::Append(b) => WireOp::Append(WireBatch::from_batch(b)),
            SinkOp::Stage { checkpoint, batch } => WireOp::Stage {
                checkpoint,
                batch: WireBatch::from_batch(batch),
            },
            SinkOp::Commit { checkpoint } => WireOp::Commit { checkpoint },
        };
        self.shared.outstanding.fetch_add(1, Ordering::Relaxed);
        // The writer task lives as long as this handle; a send cannot fail before it ends.
        let _ = self.queue.send(Queued::Write(op));
        Ok(())
    }

    /// Completes once everything queued so far is stored (or refused).
    pub fn synced(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let _ = self.queue.send(Queued::Sync(tx));
        async move {
            let _ = rx.await;
        }
    }

    /// While too many writes are outstanding: completes once the backlog is down again.
    pub fn backlogged(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if self.shared.outstanding.load(Ordering::Relaxed) < BACKLOG_HIGH {
            return None;
        }
        let shared = self.shared.clone();
        Some(async move {
            loop {
                let progress = shared.progress.notified();
                if shared.outstanding.load(Ordering::Relaxed) <= BACKLOG_LOW {
                    return;
                }
                progress.await;
            }
        })
    }
}

struct WriterTask {
    client: SinkBatcher,
    job: JobId,
    sink: String,
    subtask: u32,
    attempt: u32,
    grant: WriteGrant,
    /// Where an ungranted write fails the task (a replaced attempt just stops writing).
    waits: TaskWaits,
    shared: Arc<Shared>,
}

impl WriterTask {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Queued>) {
        let mut seq = 0u64;
        while let Some(item) = queue.recv().await {
            match item {
                Queued::Sync(done) => {
                    let _ = done.send(());
                }
                Queued::Write(op) => {
                    seq += 1;
                    if lock(&self.shared.refused).is_none() {
                        self.deliver(seq, op).await;
                    }
                    self.shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                    // One waiter at most (its task); a stored permit covers a wakeup that
                    // comes before it waits.
                    self.shared.progress.notify_one();
                }
            }
        }
    }

    /// Sends write `seq` until the store has it or refuses it.
    async fn deliver(&self, seq: u64, op: WireOp) {
        let request = SinkRequest {
            job: self.job,
            sink: self.sink.clone(),
            subtask: self.subtask,
            attempt: self.attempt,
            seq,
            grant: self.grant,
            op,
        };
        let mut backoff = Backoff::default();
        loop {
            match self.client.call(request.clone()).await {
                Ok(Ok(())) => break,
                Ok(Err(refused)) => {
                    tracing::warn!(sink = %self.sink, subtask = self.subtask, error = %refused, "sink write refused");
                    if refused == SinkRefusal::Ungranted {
                        self.waits.fail(JobError::Sink(refused.to_string()));
                    }
                    *lock(&self.shared.refused) = Some(refused);
                    break;
                }
                Err(e) => {
                    let (wait, first) = backoff.failed();
                    if first {
                        tracing::warn!(sink = %self.sink, subtask = self.subtask, error = %e, "sink write failed; retrying");
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if let Some(failures) = backoff.succeeded() {
            tracing::info!(sink = %self.sink, subtask = self.subtask, failures, "sink write recovered");
        }
    }
}

/// Requests for the batcher's tests, whose fields are this module's.
#[cfg(all(test, not(madsim)))]
pub(crate) mod tests_support {
    use super::*;

    /// Write number `seq` of a writer: an append of `payload` bytes as one record.
    pub(crate) fn request(seq: u64, payload: usize) -> SinkRequest {
        let bytes = payload.min(u32::MAX as usize) as u32;
        SinkRequest {
            job: JobId(1),
            sink: "sink".into(),
            subtask: 0,
            attempt: 0,
            seq,
            grant: WriteGrant::default(),
            op: WireOp::Append(WireBatch {
                payloads: Bytes::from(vec![0u8; payload]),
                entries: vec![BatchEntry::new(None, bytes)],
            }),
        }
    }

    impl SinkRequest {
        pub(crate) fn seq(&self) -> u64 {
            self.seq
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::connectors::sink_batcher::sink_clients;

    async fn served() -> (String, CollectStore, AbortOnDrop<()>) {
        served_with(Configuration::default()).await
    }

    async fn served_with(config: Configuration) -> (String, CollectStore, AbortOnDrop<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let store = CollectStore::new();
        let server = serve_sink_store(listener, store.clone(), config, None);
        (addr, store, AbortOnDrop(tokio::spawn(server)))
    }

    fn ungranted() -> WriteGrant {
        WriteGrant::default()
    }

    fn waits() -> TaskWaits {
        TaskWaits::default()
    }

    fn grant(key: &WriteKey, attempt: u32, taskmanager: &str) -> WriteGrant {
        key.grant(&WriteTarget {
            job: JobId(1),
            sink: "sink",
            subtask: 0,
            attempt,
            taskmanager,
        })
    }

    fn key() -> WriterKey {
        WriterKey {
            job: JobId(1),
            sink: Arc::from("sink"),
            subtask: 0,
        }
    }

    fn batch(n: u8) -> CollectedBatch {
        CollectedBatch {
            sink: Arc::from("sink"),
            taskmanager: Arc::from("tm-1"),
            at: tokio::time::Instant::now(),
            subtask: 0,
            attempt: 0,
            payloads: Bytes::from((0..n).collect::<Vec<u8>>()),
            entries: (0..n)
                .map(|i| BatchEntry::new(None, u32::from(i) + 1))
                .collect(),
        }
    }

    #[tokio::test]
    async fn writes_land_in_order_and_synced_waits_for_them() {
        let (addr, store, _server) = served().await;
        let pool = sink_clients(Configuration::default(), "tm-1".into());
        let w = RemoteSinkWriter::start(pool.client(&addr), &key(), 0, ungranted(), waits());
        w.send(SinkOp::Open { restored: None }).unwrap();
        w.send(SinkOp::Stage {
            checkpoint: CheckpointId(1),
            batch: batch(3),
        })
        .unwrap();
        w.send(SinkOp::Append(batch(2))).unwrap();
        w.send(SinkOp::Commit {
            checkpoint: CheckpointId(1),
        })
        .unwrap();
        w.synced().await;
        assert_eq!((store.len(), store.staged()), (5, 0));
    }

    /// A store journaling into `path`, holding what the journal replays.
    async fn served_journaled(
        path: &std::path::Path,
    ) -> (String, CollectStore, AbortOnDrop<()>, usize) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let store = CollectStore::new();
        let (journal, replayed) = SinkJournal::open(path, &store).unwrap();
        let server = serve_sink_store(
            listener,
            store.clone(),
            Configuration::default(),
            Some(journal),
        );
        (addr, store, AbortOnDrop(tokio::spawn(server)), replayed)
    }

    /// What a store holds, as a harness compares it: per visible batch (attempt, records), per
    /// commit (attempt, staged, by, records), and the counts.
    type Held = (
        Vec<(u32, usize)>,
        Vec<(u32, CheckpointId, CheckpointId, usize)>,
        usize,
        u64,
    );

    fn held(store: &CollectStore) -> Held {
        let batches = store
            .take_batches()
            .iter()
            .map(|b| (b.attempt, b.len()))
            .collect();
        let commits = store
            .take_commits()
            .iter()
            .map(|c| (c.attempt, c.staged, c.by, c.records))
            .collect();
        (batches, commits, store.staged(), store.fenced())
    }

    #[tokio::test]
    async fn a_journaled_store_replays_to_what_it_held_and_keeps_it_across_a_restart() {
        use super::super::sink_journal::{read_sink_journal, replay};
        let dir = std::env::temp_dir().join(format!("rill-sink-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sink.journal");
        let _ = std::fs::remove_file(&path);
        let (addr, store, server, replayed) = served_journaled(&path).await;
        assert_eq!(replayed, 0);
        let pool = sink_clients(Configuration::default(), "tm-1".into());
        let old = RemoteSinkWriter::start(pool.client(&addr), &key(), 0, ungranted(), waits());
        old.send(SinkOp::Open { restored: None }).unwrap();
        old.send(SinkOp::Stage {
            checkpoint: CheckpointId(1),
            batch: batch(3),
        })
        .unwrap();
        old.send(SinkOp::Append(batch(2))).unwrap();
        old.send(SinkOp::Commit {
            checkpoint: CheckpointId(1),
        })
        .unwrap();
        old.send(SinkOp::Stage {
            checkpoint: CheckpointId(2),
            batch: batch(4),
        })
        .unwrap();
        old.synced().await;
        let new = RemoteSinkWriter::start(pool.client(&addr), &key(), 1, ungranted(), waits());
        new.send(SinkOp::Open {
            restored: Some(CheckpointId(1)),
        })
        .unwrap();
        new.send(SinkOp::Stage {
            checkpoint: CheckpointId(2),
            batch: batch(1),
        })
        .unwrap();
        new.synced().await;
        old.send(SinkOp::Append(batch(6))).unwrap();
        old.synced().await;
        let (start, start_ns) = (tokio::time::Instant::now(), crate::events::unix_nanos());
        let live = held(&store);
        assert_eq!(
            live.0,
            vec![(0, 2), (0, 3)],
            "the append, then the commit of checkpoint 1"
        );
        assert_eq!(live.1, vec![(0, CheckpointId(1), CheckpointId(1), 3)]);
        assert_eq!(
            (live.2, live.3),
            (1, 6),
            "the new attempt's stage; the old one's fenced append"
        );
        // A harness replays the journal into a store of its own and finds what the store held,
        // at the times it held it (nothing later than when the replay began).
        let journal = read_sink_journal(&std::fs::read(&path).unwrap());
        assert_eq!((journal.items.len(), journal.damaged.clone()), (8, None));
        let replica = CollectStore::new();
        let at = |ns: u64| {
            start
                .checked_sub(Duration::from_nanos(start_ns.saturating_sub(ns)))
                .unwrap_or(start)
        };
        assert_eq!(replay(&replica, journal.items, at), 8);
        assert!(replica.records().iter().all(|r| r.at <= start));
        assert_eq!(held(&replica), live);
        // A restarted store replays its journal: the fence holds, the staged transaction
        // commits, and nothing applied before the restart is applied again.
        drop(server);
        let (addr, restarted, _server, replayed) = served_journaled(&path).await;
        assert_eq!(replayed, 8);
        let pool = sink_clients(Configuration::default(), "tm-1".into());
        let zombie = RemoteSinkWriter::start(pool.client(&addr), &key(), 0, ungranted(), waits());
        zombie.send(SinkOp::Append(batch(5))).unwrap();
        zombie.synced().await;
        assert!(
            zombie.send(SinkOp::Append(batch(1))).is_err(),
            "the fence survived the restart"
        );
        let after = RemoteSinkWriter::start(pool.client(&addr), &key(), 1, ungranted(), waits());
        // Numbered as its predecessor's first writes: already applied, so not applied again.
        after
            .send(SinkOp::Open {
                restored: Some(CheckpointId(1)),
            })
            .unwrap();
        after
            .send(SinkOp::Stage {
                checkpoint: CheckpointId(2),
                batch: batch(1),
            })
            .unwrap();
        after
            .send(SinkOp::Commit {
                checkpoint: CheckpointId(2),
            })
            .unwrap();
        after.synced().await;
        assert_eq!(
            (restarted.len(), restarted.staged(), restarted.fenced()),
            (6, 0, 11)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn many_writers_share_one_connection_and_each_lands_in_order() {
        let (addr, store, _server) = served().await;
        let pool = sink_clients(Configuration::default(), "tm-1".into());
        let writers: Vec<_> = (0..32u32)
            .map(|subtask| {
                let key = WriterKey { subtask, ..key() };
                RemoteSinkWriter::start(pool.client(&addr), &key, 0, ungranted(), waits())
            })
            .collect();
        for round in 1..=20u8 {
            for w in &writers {
                if round == 1 {
                    w.send(SinkOp::Open { restored: None }).unwrap();
                }
                w.send(SinkOp::Append(batch(round))).unwrap();
            }
        }
        for w in &writers {
            w.synced().await;
        }
        let batches = store.take_batches();
        assert_eq!(batches.len(), 32 * 20);
        for subtask in 0..32 {
            let sizes: Vec<usize> = batches
                .iter()
                .filter(|b| b.subtask == subtask)
                .map(|b| b.len())
                .collect();
            assert_eq!(sizes, (1..=20).collect::<Vec<usize>>(), "subtask {subtask}");
        }
    }

    #[tokio::test]
    async fn a_replaced_attempt_is_fenced_and_writes_nothing_more() {
        let (addr, store, _server) = served().await;
        let pool = sink_clients(Configuration::default(), "tm-1".into());
        let old = RemoteSinkWriter::start(pool.client(&addr), &key(), 0, ungranted(), waits());
        old.send(SinkOp::Open { restored: None }).unwrap();
        old.synced().await;
        let new = RemoteSinkWriter::start(pool.client(&addr), &key(), 1, ungranted(), waits());
        new.send(SinkOp::Open { restored: None }).unwrap();
        new.synced().await;
        old.send(SinkOp::Append(batch(2))).unwrap();
        old.synced().await;
        assert!(old.send(SinkOp::Append(batch(1))).is_err());
        assert_eq!((store.len(), store.fenced()), (0, 2));
    }

    #[tokio::test]
    async fn a_store_with_a_write_key_applies_only_granted_writes() {
        let config = Configuration::new()
            .with(
                crate::config::keys::SINK_WRITE_KEY,
                "shared-by-jm-and-store",
            )
            .unwrap();
        let write_key = WriteKey::from_config(&config).unwrap();
        let (addr, store, _server) = served_with(config).await;
        let pool = sink_clients(Configuration::default(), "tm-1".into());
        let owner_waits = waits();
        let owner = RemoteSinkWriter::start(
            pool.client(&addr),
            &key(),
            0,
            grant(&write_key, 0, "tm-1"),
            owner_waits.clone(),
        );
        owner.send(SinkOp::Open { restored: None }).unwrap();
        owner.send(SinkOp::Append(batch(2))).unwrap();
        owner.synced().await;
        assert_eq!(store.len(), 2);
        // A writer with a huge attempt and no grant, and one presenting another
        // TaskManager's grant: neither takes the sink over, and each fails its task.
        for (attempt, grant) in [(u32::MAX, ungranted()), (5, grant(&write_key, 5, "tm-2"))] {
            let w = waits();
            let intruder =
                RemoteSinkWriter::start(pool.client(&addr), &key(), attempt, grant, w.clone());
            intruder.send(SinkOp::Open { restored: None }).unwrap();
            intruder.synced().await;
            let failure = w.failure().expect("an ungranted writer fails its task");
            assert!(failure.to_string().contains("no write grant"), "{failure}");
            assert_eq!(
                intruder.send(SinkOp::Append(batch(1))),
                Err(SinkRefusal::Ungranted)
            );
        }
        // The granted attempt still owns the sink subtask.
        owner.send(SinkOp::Append(batch(3))).unwrap();
        owner.synced().await;
        assert_eq!((store.len(), store.fenced()), (5, 0));
        assert!(owner_waits.failure().is_none());
    }

    #[tokio::test]
    async fn a_resent_write_is_applied_once() {
        let store = CollectStore::new();
        let open = SinkOp::Open { restored: None };
        let now = tokio::time::Instant::now();
        store.apply_once(&key(), 0, 1, open, now).unwrap();
        store
            .apply_once(&key(), 0, 2, SinkOp::Append(batch(2)), now)
            .unwrap();
        store
            .apply_once(&key(), 0, 2, SinkOp::Append(batch(2)), now)
            .unwrap();
        assert_eq!(store.len(), 2);
    }
}
