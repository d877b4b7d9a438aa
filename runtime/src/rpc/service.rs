//! Request/reply services over the control plane's framing and handshake: what rill's external
//! systems (the checkpoint store, the source log) speak.
//!
//! A client keeps one connection per server, made on first use and again after it is lost or
//! a call times out (a connection behind a partition never breaks by itself, so one that let a
//! call time out is not trusted again). Requests carry an id; the server answers each as soon
//! as its handler is done, so one slow request does not hold up the others. Callers that must
//! ride out an outage retry with `Backoff`.

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::admission::{Admission, Ticket};
use super::frame::spawn_writer;
use super::pending::{Late, Pending};
use super::{admit, connect, credentials, Credentials, PeerRole, RpcError};
use crate::config::Configuration;
use crate::util::{lock, AbortOnDrop};

/// Bound on the handshake of a service connection, either side.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests one connection may have in flight (handled, or replied to but not yet written).
const MAX_IN_FLIGHT: usize = 64;

/// The address in a service URL, `rill://HOST:PORT` -> `HOST:PORT`.
pub fn parse_url(url: &str) -> Result<String, String> {
    let valid = |addr: &str| {
        addr.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    match url.strip_prefix("rill://") {
        Some(addr) if valid(addr) => Ok(addr.to_string()),
        _ => Err(format!(
            "invalid service address '{url}': expected rill://HOST:PORT"
        )),
    }
}

/// Retry pacing for a caller riding out an outage: 100 ms, doubling to at most 2 s. It says
/// when to warn (the first failure) and how many failures a recovery ended.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    /// Records a failure: how long to wait before the next try, and whether it is the first.
    pub fn failed(&mut self) -> (Duration, bool) {
        let wait = Self::MIN
            .saturating_mul(1 << self.failures.min(5))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        (wait, self.failures == 1)
    }

    /// Records a success: the failures it ended, if any.
    pub fn succeeded(&mut self) -> Option<u32> {
        let failures = std::mem::take(&mut self.failures);
        (failures > 0).then_some(failures)
    }
}

/// A request or reply with the id that pairs them.
#[derive(Debug, Serialize, Deserialize)]
struct Tagged<T> {
    id: u64,
    body: T,
}

/// Why a call got no reply. The service's own failures travel inside the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} at {addr}: {reason}")]
pub struct Unavailable {
    /// The service's name (`log server`, `sink store`, `checkpoint store`).
    pub service: &'static str,
    /// The server's address.
    pub addr: String,
    /// What went wrong: no connection, a timeout, a lost connection.
    pub reason: String,
}

/// Serves `handler` on `listener` to peers of role `client`. A connection that fails its
/// handshake or sends a malformed frame is closed; the server goes on. `handler` is called in
/// the order requests arrive on a connection, before the next one is read, so whatever it does
/// synchronously happens in that order (the sink store relies on it); the futures it returns
/// run concurrently. Connections are served by tasks of their own, which end when their peer
/// goes.
pub async fn serve<Req, Rep, H, F>(
    listener: TcpListener,
    config: Configuration,
    service: &'static str,
    client: PeerRole,
    handler: H,
) where
    Req: DeserializeOwned + Send + 'static,
    Rep: Serialize + Send + Sync + 'static,
    H: Fn(Req) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Rep> + Send + 'static,
{
    let handler = move |_: &str, request: Req| handler(request);
    serve_by_name(listener, config, service, client, handler).await
}

/// [`serve`], with `handler` told the name each request's connection authenticated as (with
/// TLS, its certificate's): for a service that binds what a peer may do to who it is.
pub async fn serve_by_name<Req, Rep, H, F>(
    listener: TcpListener,
    config: Configuration,
    service: &'static str,
    client: PeerRole,
    handler: H,
) where
    Req: DeserializeOwned + Send + 'static,
    Rep: Serialize + Send + Sync + 'static,
    H: Fn(&str, Req) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Rep> + Send + 'static,
{
    let (creds, max_frame) = (credentials(&config), config.max_frame_size());
    let admission = Admission::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(place) = admission.try_enter(peer.ip(), service) else {
                    continue;
                };
                let (creds, handler) = (creds.clone(), handler.clone());
                tokio::spawn(async move {
                    let served =
                        serve_connection(stream, place, &creds, max_frame, client, handler);
                    if let Err(e) = served.await {
                        tracing::warn!(service, peer = %peer, error = %e, "service connection closed");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(service, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection<Req, Rep, H, F>(
    stream: TcpStream,
    place: Ticket,
    creds: &Credentials,
    max_frame: usize,
    client: PeerRole,
    handler: H,
) -> Result<(), RpcError>
where
    Req: DeserializeOwned + Send + 'static,
    Rep: Serialize + Send + Sync + 'static,
    H: Fn(&str, Req) -> F + Send + Sync + 'static,
    F: Future<Output = Rep> + Send + 'static,
{
    let (hello, mut reader, writer) = admit(
        stream,
        place,
        creds,
        &[client],
        max_frame,
        HANDSHAKE_TIMEOUT,
    )
    .await?;
    // A request is read only with a place among the `MAX_IN_FLIGHT`, given back once its reply
    // is queued; the queue holds as many. So a client that sends requests and never reads the
    // replies holds at most that many replies here, and then is simply not read from.
    let (out, out_rx) = mpsc::channel::<Tagged<Rep>>(MAX_IN_FLIGHT);
    let _writer = AbortOnDrop(spawn_writer(writer, out_rx));
    let places = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let place = places.clone().acquire_owned().await.expect("never closed");
        let Some(Tagged { id, body }) = reader.recv::<Tagged<Req>>().await? else {
            return Ok(());
        };
        let (reply, out) = (handler(&hello.name, body), out.clone());
        // Not tied to the connection: a write the peer asked for completes even if it left.
        tokio::spawn(async move {
            // The peer may be gone by the time the reply is ready; nothing to tell it then.
            let _ = out
                .send(Tagged {
                    id,
                    body: reply.await,
                })
                .await;
            drop(place);
        });
    }
}

/// A process's clients of one kind of service, by server address: one connection per
/// server, shared by everyone in the process who calls it.
pub struct ClientPool<Req, Rep> {
    service: &'static str,
    role: PeerRole,
    name: String,
    config: Configuration,
    timeout: Duration,
    clients: Arc<Mutex<BTreeMap<String, ServiceClient<Req, Rep>>>>,
}

impl<Req, Rep> Clone for ClientPool<Req, Rep> {
    fn clone(&self) -> Self {
        ClientPool {
            service: self.service,
            role: self.role,
            name: self.name.clone(),
            config: self.config.clone(),
            timeout: self.timeout,
            clients: self.clients.clone(),
        }
    }
}

impl<Req, Rep> ClientPool<Req, Rep>
where
    Req: Serialize + Send + 'static,
    Rep: DeserializeOwned + Send + 'static,
{
    /// A pool for `service`, connecting as `role` under this process's `name`, each call bounded
    /// by `timeout`.
    pub fn new(
        service: &'static str,
        role: PeerRole,
        name: String,
        config: Configuration,
        timeout: Duration,
    ) -> Self {
        ClientPool {
            service,
            role,
            name,
            config,
            timeout,
            clients: Arc::default(),
        }
    }

    /// The client of the server at `addr`.
    pub fn client(&self, addr: &str) -> ServiceClient<Req, Rep> {
        lock(&self.clients)
            .entry(addr.to_string())
            .or_insert_with(|| {
                let (role, name) = (self.role, self.name.clone());
                ServiceClient::new(self.service, addr, role, name, &self.config, self.timeout)
            })
            .clone()
    }

    /// Forgets every connection: the next caller connects afresh.
    pub fn reset(&self) {
        lock(&self.clients).clear();
    }
}

/// The calling side of a service. Clones share the connection.
pub struct ServiceClient<Req, Rep> {
    inner: Arc<Client<Rep>>,
    _req: PhantomData<fn(Req)>,
}

impl<Req, Rep> Clone for ServiceClient<Req, Rep> {
    fn clone(&self) -> Self {
        ServiceClient {
            inner: self.inner.clone(),
            _req: PhantomData,
        }
    }
}

struct Client<Rep> {
    service: &'static str,
    addr: String,
    role: PeerRole,
    name: String,
    creds: Credentials,
    max_frame: usize,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<Arc<Conn<Rep>>>>,
    next_id: AtomicU64,
}

struct Conn<Rep> {
    /// Encoded requests (the client is generic over the request type only at the edge).
    /// Unbounded, yet bounded by construction: only this process's callers send, each holds
    /// at most one request here while it waits for its reply, none waits beyond `timeout`,
    /// and a timeout drops the connection with its queue. Nothing a peer sends adds to it.
    out: mpsc::UnboundedSender<bytes::Bytes>,
    /// Callers waiting for their replies, until their deadlines.
    waiting: Arc<Pending<Rep>>,
    /// The writer, the reader, and the timer that lets late callers go.
    _tasks: [AbortOnDrop<()>; 3],
}

impl<Req, Rep> ServiceClient<Req, Rep>
where
    Req: Serialize + Send + 'static,
    Rep: DeserializeOwned + Send + 'static,
{
    /// A client of `service` at `addr` (HOST:PORT), introducing itself as `role` named `name`
    /// with the cluster's credentials; every call is bounded by `timeout`.
    pub fn new(
        service: &'static str,
        addr: impl Into<String>,
        role: PeerRole,
        name: impl Into<String>,
        config: &Configuration,
        timeout: Duration,
    ) -> Self {
        ServiceClient {
            inner: Arc::new(Client {
                service,
                addr: addr.into(),
                role,
                name: name.into(),
                creds: credentials(config),
                max_frame: config.max_frame_size(),
                timeout,
                conn: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(0),
            }),
            _req: PhantomData,
        }
    }

    /// Connects (bounded by the call timeout) if there is no connection, so that the next
    /// call's request goes out at once: a caller that decides what to send after a connect
    /// decides with what it knows when it is sent.
    pub async fn ready(&self) -> Result<(), Unavailable> {
        let client = &self.inner;
        let bound = client.timeout.min(Duration::from_secs(30 * 365 * 86_400));
        match tokio::time::timeout(bound, client.connection()).await {
            Ok(conn) => conn.map(drop),
            Err(_) => Err(client.unavailable("no connection in time")),
        }
    }

    /// Sends `request` and waits for its reply. Borrowed, so a caller that retries sends the
    /// same request again without copying it.
    pub async fn call(&self, request: &Req) -> Result<Rep, Unavailable> {
        let client = &self.inner;
        let id = client.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = super::frame::encode(&Tagged { id, body: request })
            .map_err(|e| client.unavailable(e))?;
        let started = tokio::time::Instant::now();
        // A timeout past what an instant can hold (a configured checkpoint timeout may be
        // huge) is as good as none: 30 years at most, tokio's own far future.
        let bound = client.timeout.min(Duration::from_secs(30 * 365 * 86_400));
        let deadline = started + bound;
        let conn: Arc<Conn<Rep>> = match tokio::time::timeout(bound, client.connection()).await {
            Ok(conn) => conn?,
            Err(_) => return Err(client.unavailable("no connection in time")),
        };
        match client.exchange(&conn, id, frame.into(), deadline).await {
            Err(Exchange::Late) => {
                // Not trusted again, but only this one: a newer connection another caller
                // made meanwhile may be fine.
                let mut slot = client.conn.lock().await;
                if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                    slot.take();
                }
                Err(client.unavailable("no reply in time"))
            }
            Err(Exchange::Lost) => Err(client.unavailable("connection lost")),
            Ok(reply) => Ok(reply),
        }
    }
}

/// Why an exchange ended without a reply.
enum Exchange {
    /// The reply did not come by the call's deadline.
    Late,
    /// The connection went first.
    Lost,
}

impl<Rep: DeserializeOwned + Send + 'static> Client<Rep> {
    fn unavailable(&self, reason: impl std::fmt::Display) -> Unavailable {
        Unavailable {
            service: self.service,
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }

    /// Sends `frame` and waits for its reply until `deadline` (the connection's timer lets the
    /// caller go then: no timer per call).
    async fn exchange(
        &self,
        conn: &Conn<Rep>,
        id: u64,
        frame: bytes::Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<Rep, Exchange> {
        let rx = conn.waiting.wait(id, deadline).ok_or(Exchange::Lost)?;
        if conn.out.send(frame).is_err() {
            return Err(Exchange::Lost);
        }
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(Late)) => Err(Exchange::Late),
            Err(_) => Err(Exchange::Lost),
        }
    }

    async fn connection(&self) -> Result<Arc<Conn<Rep>>, Unavailable> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.waiting.is_open()) {
            return Ok(conn.clone());
        }
        let conn = Arc::new(self.connect().await.map_err(|e| self.unavailable(e))?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Conn<Rep>, RpcError> {
        let me = (self.role, self.name.as_str());
        let (mut reader, mut writer) = connect(
            &self.addr,
            self.service,
            &self.creds,
            me,
            self.max_frame,
            HANDSHAKE_TIMEOUT,
        )
        .await?;
        let (out, mut out_rx) = mpsc::unbounded_channel::<bytes::Bytes>();
        let writer_task = AbortOnDrop(tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if writer.send_bytes(frame).await.is_err() {
                    break;
                }
            }
        }));
        let waiting = Pending::new();
        let (routes, service, addr) = (waiting.clone(), self.service, self.addr.clone());
        let reader_task = AbortOnDrop(tokio::spawn(async move {
            loop {
                match reader.recv::<Tagged<Rep>>().await {
                    Ok(Some(Tagged { id, body })) => routes.answer(id, body),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(service, peer = %addr, error = %e, "service connection lost");
                        break;
                    }
                }
            }
            // Every waiting caller is told the connection is gone.
            routes.close();
        }));
        let timer_task = AbortOnDrop(tokio::spawn(waiting.clone().expire_late()));
        Ok(Conn {
            out,
            waiting,
            _tasks: [writer_task, reader_task, timer_task],
        })
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    async fn echo_server(config: &Configuration) -> (String, AbortOnDrop<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = serve(
            listener,
            config.clone(),
            "echo",
            PeerRole::JobManager,
            |n: u64| {
                // Larger requests answer sooner: replies overtake each other.
                async move {
                    tokio::time::sleep(Duration::from_millis(50u64.saturating_sub(n * 10))).await;
                    n * 2
                }
            },
        );
        (addr, AbortOnDrop(tokio::spawn(server)))
    }

    fn client(addr: &str, config: &Configuration) -> ServiceClient<u64, u64> {
        let timeout = Duration::from_secs(5);
        ServiceClient::new("echo", addr, PeerRole::JobManager, "test", config, timeout)
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_and_reports_the_outage_it_ended() {
        let mut b = Backoff::default();
        let waits: Vec<(u64, bool)> = (0..7)
            .map(|_| b.failed())
            .map(|(w, first)| (w.as_millis() as u64, first))
            .collect();
        assert_eq!(
            waits,
            [
                (100, true),
                (200, false),
                (400, false),
                (800, false),
                (1600, false),
                (2000, false),
                (2000, false)
            ]
        );
        assert_eq!((b.succeeded(), b.succeeded()), (Some(7), None));
    }

    #[test]
    fn service_urls_name_host_and_port() {
        assert_eq!(parse_url("rill://store:6130"), Ok("store:6130".into()));
        for bad in [
            "rill://store",
            "rill://:6130",
            "rill://store:http",
            "store:6130",
        ] {
            assert!(parse_url(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn concurrent_calls_get_their_own_replies_out_of_order() {
        let config = Configuration::default();
        let (addr, _server) = echo_server(&config).await;
        let c = client(&addr, &config);
        let calls = (0..5u64).map(|n| {
            let c = c.clone();
            async move { c.call(&n).await }
        });
        let replies = futures_util::future::join_all(calls).await;
        assert_eq!(replies, (0..5).map(|n| Ok(n * 2)).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_timeout_too_large_for_an_instant_is_as_good_as_none() {
        // A checkpoint store's client is bounded by execution.checkpointing.timeout, which
        // may be given as large as a duration goes.
        let config = Configuration::default();
        let (addr, _server) = echo_server(&config).await;
        let role = PeerRole::JobManager;
        let c: ServiceClient<u64, u64> =
            ServiceClient::new("echo", &addr, role, "t", &config, Duration::MAX);
        assert_eq!(c.call(&3).await, Ok(6));
    }

    #[tokio::test]
    async fn a_peer_of_another_cluster_or_role_is_refused() {
        let config = Configuration::default();
        let (addr, _server) = echo_server(&config).await;
        let stranger = config.clone().with("cluster.id", "other").unwrap();
        assert!(client(&addr, &stranger).call(&1).await.is_err());
        let timeout = Duration::from_secs(5);
        let wrong_role: ServiceClient<u64, u64> =
            ServiceClient::new("echo", &addr, PeerRole::Client, "t", &config, timeout);
        let err = wrong_role.call(&1).await.unwrap_err();
        assert!(err.reason.contains("handshake"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_service_is_unavailable_and_a_later_one_is_used() {
        let config = Configuration::default();
        // A port nothing listens on (bound, then released).
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let c = client(&addr.to_string(), &config);
        assert!(c.call(&1).await.is_err());
        let listener = TcpListener::bind(addr).await.unwrap();
        let server = serve(
            listener,
            config.clone(),
            "echo",
            PeerRole::JobManager,
            |n: u64| async move { n + 1 },
        );
        let _server = AbortOnDrop(tokio::spawn(server));
        assert_eq!(c.call(&1).await, Ok(2));
    }

    #[tokio::test]
    async fn a_malformed_request_closes_only_that_connection() {
        use tokio::io::AsyncWriteExt;
        let config = Configuration::default();
        let (addr, _server) = echo_server(&config).await;
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
        drop(raw);
        assert_eq!(client(&addr, &config).call(&2).await, Ok(4));
    }
}
