//! The JobManager's connections: accepting peers, authenticating them, and relaying what they
//! send to the actor (as [`ActorMessage`] messages) and what the actor sends back to them.
//!
//! Nothing here decides anything about jobs: a connection task only translates between frames
//! and the actor's inbox, so every decision stays in the actor's one order.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Notify};

use super::submission::Submission;
use crate::buggify::{self, Point};
use crate::config::Configuration;
use crate::graph::{CheckpointId, JobId, TaskManagerId};
use crate::jobs::JobRegistry;
use crate::rpc::admission::{Admission, Ticket};
use crate::rpc::frame::spawn_writer;
use crate::rpc::handshake::HandshakeError;
use crate::rpc::secure::{Reader, Writer};
use crate::rpc::{admit, credentials, ClientToJm, JmToClient, JmToTm, PeerRole, RpcError, TmToJm};
use crate::util::{AbortOnDrop, TaskSet};

/// How many messages may wait for the actor. A connection's reader waits while it is full, so
/// a peer that floods the JobManager fills its own TCP window, not the JobManager's memory;
/// the queue is fair, so every other peer's messages still get their turn.
const INBOX_CAPACITY: usize = 1024;

/// How many messages may wait for one TaskManager's or client's connection writer. More than
/// one step of the actor sends to a healthy peer: a full restart sends a TaskManager a cancel
/// and a deployment per task it runs (a few per slot) plus partition updates (one per
/// consumer of each restarted producer: about P^2/4 on an all-to-all edge of parallelism P,
/// 4,096 at P = 128). A peer
/// that leaves this many unread is not reading: its connection is closed (a lost TaskManager,
/// a gone client) rather than let the queue grow without bound.
pub(super) const OUTBOX_CAPACITY: usize = 16_384;

/// The actor's inbox: connection readers and the actor's own spawned work send into it.
pub(super) type Inbox = mpsc::Sender<ActorMessage>;

/// The actor's inbox and its receiving end.
pub(super) fn inbox() -> (Inbox, mpsc::Receiver<ActorMessage>) {
    mpsc::channel(INBOX_CAPACITY)
}

/// What the actor sends one peer through: bounded, never waiting (the actor must not block on
/// a peer). When the peer's queue is full the message is refused and the connection is told to
/// close itself ([`Overflowed`]).
pub(super) struct Outbox<T> {
    tx: mpsc::Sender<T>,
    overflow: Arc<Overflow>,
}

/// An outbox's overflow: once set, it stays set, so that the peer never sees a stream with a
/// message missing from its middle (a cancellation lost, and the next deployment delivered).
#[derive(Default)]
struct Overflow {
    happened: std::sync::atomic::AtomicBool,
    signal: Notify,
}

// By hand: the derive would ask for `T: Clone`.
impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            tx: self.tx.clone(),
            overflow: self.overflow.clone(),
        }
    }
}

/// Why an [`Outbox`] refused a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unsent {
    /// The connection is gone.
    Closed,
    /// The peer left [`OUTBOX_CAPACITY`] messages unread; its connection is closing.
    Full,
}

impl<T> Outbox<T> {
    /// Queues `msg` for the peer's writer, or refuses it at once.
    pub fn send(&self, msg: T) -> Result<(), Unsent> {
        use std::sync::atomic::Ordering;
        if self.overflow.happened.load(Ordering::Acquire) {
            return Err(Unsent::Full);
        }
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.overflow.happened.store(true, Ordering::Release);
                // Stored as a permit if the connection is not waiting right now.
                self.overflow.signal.notify_one();
                Err(Unsent::Full)
            }
            Err(TrySendError::Closed(_)) => Err(Unsent::Closed),
        }
    }
}

/// Resolves when an [`Outbox`] refused a message because its peer is not reading.
pub(super) struct Overflowed(Arc<Overflow>);

impl Overflowed {
    pub async fn wait(&self) {
        self.0.signal.notified().await
    }
}

/// A bounded outbox of [`OUTBOX_CAPACITY`], the queue its writer drains, and its overflow
/// signal.
pub(super) fn outbox<T>() -> (Outbox<T>, mpsc::Receiver<T>, Overflowed) {
    let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
    let overflow = Arc::new(Overflow::default());
    let signal = Overflowed(overflow.clone());
    (Outbox { tx, overflow }, rx, signal)
}

/// What reaches the JobManager actor through its inbox.
pub(super) enum ActorMessage {
    TmRegistered {
        name: String,
        slots: u32,
        data_addr: String,
        out: Outbox<JmToTm>,
        /// Dropped by the JobManager to close the connection (a lost TaskManager).
        close: oneshot::Sender<()>,
        reply: oneshot::Sender<TaskManagerId>,
    },
    TmMessage {
        tm: TaskManagerId,
        msg: TmToJm,
    },
    TmDisconnected {
        tm: TaskManagerId,
        reason: String,
    },
    /// A job whose graph the client's connection built (off the actor: building may read
    /// files, `input=DIR`).
    Submit {
        submission: Submission,
        out: Outbox<JmToClient>,
    },
    /// The checkpoint store finished writing a completed checkpoint.
    CheckpointPersisted {
        job: JobId,
        checkpoint: CheckpointId,
        result: Result<(), String>,
    },
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    config: Configuration,
    jobs: JobRegistry,
    inbox: Inbox,
) {
    let mut connections = TaskSet::default();
    let admission = Admission::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(place) = admission.try_enter(peer.ip(), "jobmanager") else {
                    continue;
                };
                let (config, jobs, inbox) = (config.clone(), jobs.clone(), inbox.clone());
                connections.spawn(async move {
                    if let Err(e) = serve_connection(stream, place, config, jobs, inbox).await {
                        tracing::warn!(peer = %peer, error = %e, "control connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Authenticates a peer, then relays its messages to the actor and the actor's to it.
async fn serve_connection(
    stream: TcpStream,
    place: Ticket,
    config: Configuration,
    jobs: JobRegistry,
    inbox: Inbox,
) -> Result<(), RpcError> {
    let roles = [PeerRole::TaskManager, PeerRole::Client];
    let creds = credentials(&config);
    let timeout = Duration::from_secs(10);
    let (hello, reader, writer) = admit(
        stream,
        place,
        &creds,
        &roles,
        config.max_frame_size(),
        timeout,
    )
    .await?;
    match hello.role {
        PeerRole::TaskManager => serve_taskmanager(reader, writer, &hello.name, inbox).await,
        _ => serve_client(reader, writer, &config, &jobs, inbox).await,
    }
}

async fn serve_taskmanager(
    mut reader: Reader,
    writer: Writer,
    authenticated: &str,
    inbox: Inbox,
) -> Result<(), RpcError> {
    let Some(TmToJm::Register {
        name,
        slots,
        data_addr,
        ..
    }) = reader.recv().await?
    else {
        return Err(RpcError::Malformed("expected Register".into()));
    };
    // The hello's name is the one the handshake bound to the peer's certificate (with TLS):
    // registering under any other would let one TaskManager evict another.
    if name != authenticated {
        return Err(RpcError::Handshake(HandshakeError::Identity(format!(
            "registration as {name:?} over a connection authenticated as {authenticated:?}"
        ))));
    }
    let (out, out_rx, overflowed) = outbox();
    let (close, mut closed) = oneshot::channel();
    let (reply, id) = oneshot::channel();
    let registered = ActorMessage::TmRegistered {
        name,
        slots,
        data_addr,
        out,
        close,
        reply,
    };
    inbox.send(registered).await.map_err(|_| RpcError::Closed)?;
    let tm = id.await.map_err(|_| RpcError::Closed)?;
    let _writer = AbortOnDrop(spawn_writer(writer, out_rx));
    let reason = loop {
        tokio::select! {
            biased;
            // The JobManager dropped this TaskManager: close the connection so it learns at once.
            _ = &mut closed => return Ok(()),
            _ = overflowed.wait() => {
                tracing::warn!(taskmanager = %authenticated, queued = OUTBOX_CAPACITY, "closing the connection of a TaskManager that is not reading it");
                break format!("not reading: {OUTBOX_CAPACITY} messages unread");
            }
            msg = reader.recv::<TmToJm>() => match msg {
                Ok(Some(msg)) => {
                    // Buggify: the actor gets it late; later messages wait behind it.
                    buggify::sleep(Point::ControlMessageLate).await;
                    if inbox.send(ActorMessage::TmMessage { tm, msg }).await.is_err() {
                        return Err(RpcError::Closed);
                    }
                }
                Ok(None) => break "connection closed".to_string(),
                Err(e) => break format!("connection error: {e}"),
            },
        }
    };
    let _ = inbox
        .send(ActorMessage::TmDisconnected { tm, reason })
        .await;
    Ok(())
}

async fn serve_client(
    mut reader: Reader,
    mut writer: Writer,
    config: &Configuration,
    jobs: &JobRegistry,
    inbox: Inbox,
) -> Result<(), RpcError> {
    let Some(ClientToJm::Submit {
        spec,
        config: job_config,
    }) = reader.recv().await?
    else {
        return Err(RpcError::Malformed("expected Submit".into()));
    };
    let submission = match Submission::prepare(config, jobs, spec, job_config).await {
        Ok(submission) => submission,
        Err(reason) => return writer.send(&JmToClient::Rejected { reason }).await,
    };
    let (out, out_rx, overflowed) = outbox();
    let submit = ActorMessage::Submit { submission, out };
    inbox.send(submit).await.map_err(|_| RpcError::Closed)?;
    // The writer is a task of its own so that a client that stops reading blocks it, not
    // this task's watch on the outbox.
    let mut writer = AbortOnDrop(spawn_writer(writer, out_rx));
    tokio::select! {
        // The job runs on; only this client's view of it ends.
        _ = overflowed.wait() => {
            tracing::warn!(queued = OUTBOX_CAPACITY, "closing the connection of a client that is not reading it");
            Err(RpcError::Closed)
        }
        _ = &mut writer.0 => Ok(()),
    }
}
