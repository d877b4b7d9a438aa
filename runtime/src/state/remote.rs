//! A checkpoint store served over TCP: another process keeps the JobManager's checkpoints (the
//! part HDFS or S3 plays for Flink), so they outlive the JobManager's machine and the store can
//! fail on its own: crash, restart, or sit behind a partition.
//!
//! `serve_checkpoint_store` serves any `CheckpointStore` (files in production, `rill
//! checkpoint-store`); `RemoteCheckpointStore` is the JobManager's side, selected by
//! `state.checkpoints.dir=rill://HOST:PORT`. Connections use the control plane's framing and
//! handshake (cluster id and secret), and only JobManagers are accepted. Requests carry an id
//! and are served concurrently, so one slow write does not hold up a delete.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::{CheckpointStore, StoreError};
use crate::config::Configuration;
use crate::rpc::frame::spawn_writer;
use crate::rpc::handshake::{accept_handshake, connect_handshake};
use crate::rpc::{credentials, framed, Credentials, PeerRole, RpcError};
use crate::util::{lock, AbortOnDrop};

/// Bound on the handshake of a store connection, either side.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
enum StoreRequest {
    Put {
        id: u64,
        job: u64,
        checkpoint: u64,
        data: Bytes,
    },
    Get {
        id: u64,
        job: u64,
        checkpoint: u64,
    },
    Delete {
        id: u64,
        job: u64,
        checkpoint: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum StoreReply {
    Done { id: u64 },
    Data { id: u64, data: Bytes },
    Failed { id: u64, error: StoreError },
}

impl StoreReply {
    fn id(&self) -> u64 {
        match self {
            StoreReply::Done { id }
            | StoreReply::Data { id, .. }
            | StoreReply::Failed { id, .. } => *id,
        }
    }
}

/// Serves `store` to JobManagers on `listener` until the task is dropped. A connection that
/// fails its handshake or sends a malformed frame is closed; the server goes on.
pub async fn serve_checkpoint_store(
    listener: TcpListener,
    store: Arc<dyn CheckpointStore>,
    config: Configuration,
) {
    let (creds, max_frame) = (credentials(&config), config.max_frame_size());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (store, creds) = (store.clone(), creds.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, store, &creds, max_frame).await {
                        tracing::warn!(peer = %peer, error = %e, "checkpoint store connection closed");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "checkpoint store accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    store: Arc<dyn CheckpointStore>,
    creds: &Credentials,
    max_frame: usize,
) -> Result<(), RpcError> {
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = framed(stream, max_frame);
    let allowed = [PeerRole::JobManager];
    accept_handshake(&mut reader, &mut writer, creds, &allowed, HANDSHAKE_TIMEOUT).await?;
    let (out, out_rx) = mpsc::unbounded_channel::<StoreReply>();
    let _writer = AbortOnDrop(spawn_writer(writer, out_rx));
    while let Some(request) = reader.recv::<StoreRequest>().await? {
        let (store, out) = (store.clone(), out.clone());
        tokio::spawn(async move {
            // The peer may be gone by the time the store answers; nothing to tell it then.
            let _ = out.send(execute(&*store, request).await);
        });
    }
    Ok(())
}

async fn execute(store: &dyn CheckpointStore, request: StoreRequest) -> StoreReply {
    let (id, result) = match request {
        StoreRequest::Put {
            id,
            job,
            checkpoint,
            data,
        } => (id, store.put(job, checkpoint, data).await.map(|()| None)),
        StoreRequest::Get {
            id,
            job,
            checkpoint,
        } => (id, store.get(job, checkpoint).await.map(Some)),
        StoreRequest::Delete {
            id,
            job,
            checkpoint,
        } => (id, store.delete(job, checkpoint).await.map(|()| None)),
    };
    match result {
        Ok(None) => StoreReply::Done { id },
        Ok(Some(data)) => StoreReply::Data { id, data },
        Err(error) => StoreReply::Failed { id, error },
    }
}

/// The JobManager's handle on a served store. It connects on first use and again after the
/// connection is lost or an operation times out (a connection behind a partition never breaks
/// by itself, so a timed-out one is not trusted again). Every operation is bounded by `timeout`.
#[derive(Clone)]
pub struct RemoteCheckpointStore {
    client: Arc<Client>,
}

struct Client {
    addr: String,
    creds: Credentials,
    max_frame: usize,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
}

/// Callers waiting for replies, by request id; `None` once the connection is gone.
type Waiting = Arc<Mutex<Option<BTreeMap<u64, oneshot::Sender<StoreReply>>>>>;

struct Conn {
    out: mpsc::UnboundedSender<StoreRequest>,
    waiting: Waiting,
    _tasks: (AbortOnDrop<()>, AbortOnDrop<()>),
}

impl RemoteCheckpointStore {
    /// A store at `addr` (HOST:PORT), reached with the cluster's credentials.
    pub fn new(addr: impl Into<String>, config: &Configuration, timeout: Duration) -> Self {
        RemoteCheckpointStore {
            client: Arc::new(Client {
                addr: addr.into(),
                creds: credentials(config),
                max_frame: config.max_frame_size(),
                timeout,
                conn: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    fn call(
        &self,
        request: impl FnOnce(u64) -> StoreRequest + Send + 'static,
    ) -> BoxFuture<'static, Result<StoreReply, StoreError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let id = client.next_id.fetch_add(1, Ordering::Relaxed);
            match tokio::time::timeout(client.timeout, client.exchange(id, request(id))).await {
                Ok(reply) => reply,
                Err(_) => {
                    client.forget_connection().await;
                    Err(unavailable(&client.addr, "no reply in time"))
                }
            }
        })
    }
}

fn unavailable(addr: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("checkpoint store {addr}: {why}"))
}

impl Client {
    async fn exchange(&self, id: u64, request: StoreRequest) -> Result<StoreReply, StoreError> {
        let conn = self.connection().await?;
        let (tx, rx) = oneshot::channel();
        match lock(&conn.waiting).as_mut() {
            Some(waiting) => waiting.insert(id, tx),
            None => return Err(unavailable(&self.addr, "connection lost")),
        };
        if conn.out.send(request).is_err() {
            return Err(unavailable(&self.addr, "connection lost"));
        }
        rx.await
            .map_err(|_| unavailable(&self.addr, "connection lost"))
    }

    async fn connection(&self) -> Result<Arc<Conn>, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| lock(&c.waiting).is_some()) {
            return Ok(conn.clone());
        }
        let conn = Arc::new(
            self.connect()
                .await
                .map_err(|e| unavailable(&self.addr, e))?,
        );
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn forget_connection(&self) {
        self.conn.lock().await.take();
    }

    async fn connect(&self) -> Result<Conn, RpcError> {
        let stream = TcpStream::connect(self.addr.as_str()).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = framed(stream, self.max_frame);
        let (creds, role) = (&self.creds, PeerRole::JobManager);
        connect_handshake(
            &mut reader,
            &mut writer,
            creds,
            role,
            "jobmanager",
            HANDSHAKE_TIMEOUT,
        )
        .await?;
        let (out, out_rx) = mpsc::unbounded_channel::<StoreRequest>();
        let writer_task = AbortOnDrop(spawn_writer(writer, out_rx));
        let waiting: Waiting = Arc::new(Mutex::new(Some(BTreeMap::new())));
        let (routes, addr) = (waiting.clone(), self.addr.clone());
        let reader_task = AbortOnDrop(tokio::spawn(async move {
            loop {
                match reader.recv::<StoreReply>().await {
                    Ok(Some(reply)) => {
                        let caller = lock(&routes).as_mut().and_then(|w| w.remove(&reply.id()));
                        // A caller that timed out has stopped listening.
                        if let Some(caller) = caller {
                            let _ = caller.send(reply);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(store = %addr, error = %e, "checkpoint store connection lost");
                        break;
                    }
                }
            }
            // Dropping the senders tells every waiting caller the connection is gone.
            lock(&routes).take();
        }));
        Ok(Conn {
            out,
            waiting,
            _tasks: (writer_task, reader_task),
        })
    }
}

/// A reply that does not answer the request is the server's bug; it must not pass as success.
fn unexpected(reply: &StoreReply) -> StoreError {
    StoreError::Io(format!("unexpected checkpoint store reply: {reply:?}"))
}

impl CheckpointStore for RemoteCheckpointStore {
    fn put(
        &self,
        job: u64,
        checkpoint: u64,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let call = self.call(move |id| StoreRequest::Put {
            id,
            job,
            checkpoint,
            data,
        });
        Box::pin(async move { expect_done(call.await?) })
    }

    fn get(&self, job: u64, checkpoint: u64) -> BoxFuture<'static, Result<Bytes, StoreError>> {
        let call = self.call(move |id| StoreRequest::Get {
            id,
            job,
            checkpoint,
        });
        Box::pin(async move {
            match call.await? {
                StoreReply::Data { data, .. } => Ok(data),
                StoreReply::Failed { error, .. } => Err(error),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn delete(&self, job: u64, checkpoint: u64) -> BoxFuture<'static, Result<(), StoreError>> {
        let call = self.call(move |id| StoreRequest::Delete {
            id,
            job,
            checkpoint,
        });
        Box::pin(async move { expect_done(call.await?) })
    }
}

fn expect_done(reply: StoreReply) -> Result<(), StoreError> {
    match reply {
        StoreReply::Done { .. } => Ok(()),
        StoreReply::Failed { error, .. } => Err(error),
        other => Err(unexpected(&other)),
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::state::MemoryCheckpointStore;

    async fn served(config: &Configuration) -> (String, MemoryCheckpointStore, AbortOnDrop<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let store = MemoryCheckpointStore::default();
        let server = serve_checkpoint_store(listener, Arc::new(store.clone()), config.clone());
        (addr, store, AbortOnDrop(tokio::spawn(server)))
    }

    #[tokio::test]
    async fn a_served_store_round_trips_and_reports_missing_checkpoints() {
        let config = Configuration::default();
        let (addr, held, _server) = served(&config).await;
        let remote = RemoteCheckpointStore::new(addr, &config, Duration::from_secs(5));
        remote
            .put(1, 5, Bytes::from_static(b"state"))
            .await
            .unwrap();
        assert_eq!(held.held(), vec![(1, 5)]);
        assert_eq!(
            remote.get(1, 5).await.unwrap(),
            Bytes::from_static(b"state")
        );
        let missing = StoreError::NotFound {
            job: 1,
            checkpoint: 6,
        };
        assert_eq!(remote.get(1, 6).await.unwrap_err(), missing);
        remote.delete(1, 5).await.unwrap();
        assert!(held.held().is_empty());
    }

    #[tokio::test]
    async fn a_store_refuses_a_jobmanager_of_another_cluster() {
        let (addr, held, _server) = served(&Configuration::default()).await;
        let stranger = Configuration::default()
            .with("security.cluster.secret", "not-the-secret")
            .unwrap();
        let remote = RemoteCheckpointStore::new(addr, &stranger, Duration::from_secs(5));
        let err = remote
            .put(1, 1, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(held.held().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_store_is_unavailable_and_a_later_one_is_used() {
        let config = Configuration::default();
        // A port nothing listens on (bound, then released).
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let remote = RemoteCheckpointStore::new(addr.to_string(), &config, Duration::from_secs(5));
        let err = remote.put(1, 1, Bytes::new()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        let listener = TcpListener::bind(addr).await.unwrap();
        let store = MemoryCheckpointStore::default();
        let server = serve_checkpoint_store(listener, Arc::new(store.clone()), config.clone());
        let _server = AbortOnDrop(tokio::spawn(server));
        remote.put(1, 1, Bytes::new()).await.unwrap();
        assert_eq!(store.held(), vec![(1, 1)]);
    }
}
