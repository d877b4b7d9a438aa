//! The JobManager's connections: accepting peers, authenticating them, and relaying what they
//! send to the actor (as [`ActorMessage`] messages) and what the actor sends back to them.
//!
//! Nothing here decides anything about jobs: a connection task only translates between frames
//! and the actor's inbox, so every decision stays in the actor's one order.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

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

/// A channel into a task of the JobManager: a connection's writer, or the actor itself.
pub(super) type Sender<T> = mpsc::UnboundedSender<T>;

/// What reaches the JobManager actor through its inbox.
pub(super) enum ActorMessage {
    TmRegistered {
        name: String,
        slots: u32,
        data_addr: String,
        out: Sender<JmToTm>,
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
        out: Sender<JmToClient>,
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
    inbox: Sender<ActorMessage>,
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
    inbox: Sender<ActorMessage>,
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
    inbox: Sender<ActorMessage>,
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
    let (out, out_rx) = mpsc::unbounded_channel();
    let (close, mut closed) = oneshot::channel();
    let (reply, id) = oneshot::channel();
    let _ = inbox.send(ActorMessage::TmRegistered {
        name,
        slots,
        data_addr,
        out,
        close,
        reply,
    });
    let tm = id.await.map_err(|_| RpcError::Closed)?;
    let _writer = AbortOnDrop(spawn_writer(writer, out_rx));
    let reason = loop {
        tokio::select! {
            biased;
            // The JobManager dropped this TaskManager: close the connection so it learns at once.
            _ = &mut closed => return Ok(()),
            msg = reader.recv::<TmToJm>() => match msg {
                Ok(Some(msg)) => {
                    // Buggify: the actor gets it late; later messages wait behind it.
                    buggify::sleep(Point::ControlMessageLate).await;
                    let _ = inbox.send(ActorMessage::TmMessage { tm, msg });
                }
                Ok(None) => break "connection closed".to_string(),
                Err(e) => break format!("connection error: {e}"),
            },
        }
    };
    let _ = inbox.send(ActorMessage::TmDisconnected { tm, reason });
    Ok(())
}

async fn serve_client(
    mut reader: Reader,
    mut writer: Writer,
    config: &Configuration,
    jobs: &JobRegistry,
    inbox: Sender<ActorMessage>,
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
    let (out, mut out_rx) = mpsc::unbounded_channel();
    let _ = inbox.send(ActorMessage::Submit { submission, out });
    while let Some(msg) = out_rx.recv().await {
        writer.send(&msg).await?;
    }
    Ok(())
}
