//! The attacks TLS with mutual authentication and the CLI's checks exist to defeat, each tried
//! for real: an impostor server that binds the JobManager's address (a TaskManager must not
//! hand it the cluster secret), a peer with no certificate or one from another CA (refused
//! before any hello is read, while the server keeps serving), a TaskManager whose certificate
//! claims another name or role (refused by the handshake, and by the JobManager at
//! registration), and at the command line: the secret given where `ps` shows it, and a process
//! exposed beyond loopback without TLS. Finally a whole cluster of `rill` processes runs a job
//! over TLS, and a TaskManager holding another's certificate never joins it.
//!
//! In-process tests speak over loopback TCP with the runtime's own `connect` / `admit`;
//! process tests run the `rill` binary. Certificates come from `rill::rpc::tls::issue` (or
//! `rill certs`) into a fresh temporary directory per test.
#![cfg(not(madsim))]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rill::config::Configuration;
use rill::jobmanager::{run_jobmanager_with, JobManagerServices};
use rill::rpc::admission::Admission;
use rill::rpc::handshake::{connect_handshake, HandshakeError, Hello};
use rill::rpc::tls::{issue, write_issued, IssuedCerts, NodeKind, TlsContext};
use rill::rpc::{admit, connect, framed, Credentials, JmToTm, PeerRole, RpcError, Tls, TmToJm};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const RILL: &str = env!("CARGO_BIN_EXE_rill");
/// The cluster secret of every test; asserted never to reach an impostor or an error message.
const SECRET: &str = "s3cret-of-the-security-tests";
/// The cluster id of the in-process tests.
const CLUSTER: &str = "security-tests";
/// Bound of every in-process exchange.
const T: Duration = Duration::from_secs(5);
/// Bound of a process's start (it prints its address within milliseconds when idle).
const START: Duration = Duration::from_secs(15);
const MAX_FRAME: usize = 1 << 20;
const ALL_ROLES: &[PeerRole] = &[
    PeerRole::TaskManager,
    PeerRole::Client,
    PeerRole::DataPlane,
    PeerRole::JobManager,
];

// ---------------------------------------------------------------------------------------------
// Certificates

/// A fresh, empty directory under the system's temp dir, unique to this process and call.
fn fresh_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rill-security-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Removes a directory when the test ends, pass or fail.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One CA and its certificates, as PEM and as files (`<stem>.pem`, `<stem>.key`, `ca.pem`).
struct Pki {
    dir: TempDir,
    issued: IssuedCerts,
}

fn tm(name: &str) -> NodeKind {
    NodeKind::TaskManager(name.into())
}

fn named(name: &str) -> NodeKind {
    NodeKind::Named(name.into())
}

impl Pki {
    fn issue(tag: &str, nodes: &[NodeKind]) -> Pki {
        let dir = fresh_dir(tag);
        let issued = issue(nodes).expect("issue certificates");
        write_issued(&issued, &dir).expect("write certificates");
        Pki {
            dir: TempDir(dir),
            issued,
        }
    }

    fn path(&self) -> &Path {
        &self.dir.0
    }

    /// A node's configuration: TLS from its files, the tests' secret and cluster id.
    fn config(&self, stem: &str) -> Configuration {
        let file = |name: String| self.path().join(name).display().to_string();
        Configuration::new()
            .with("cluster.id", CLUSTER)
            .and_then(|c| c.with("security.cluster.secret", SECRET))
            .and_then(|c| c.with("security.ssl.internal.enabled", "true"))
            .and_then(|c| c.with("security.ssl.internal.cert", &file(format!("{stem}.pem"))))
            .and_then(|c| c.with("security.ssl.internal.key", &file(format!("{stem}.key"))))
            .and_then(|c| c.with("security.ssl.internal.ca", &file("ca.pem".into())))
            .expect("configuration")
    }

    /// A node's credentials, through the runtime's own path from configuration to TLS.
    fn creds(&self, stem: &str) -> Credentials {
        let creds = rill::rpc::credentials(&self.config(stem));
        assert!(creds.tls.is_on(), "TLS unusable: {:?}", creds.tls.problem());
        creds
    }

    /// A node's certificate chain and key.
    fn identity(&self, stem: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (_, cert, key) = self
            .issued
            .nodes
            .iter()
            .find(|(s, _, _)| s == stem)
            .unwrap_or_else(|| panic!("no certificate {stem}"));
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        (
            certs,
            PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
        )
    }

    /// A trust store holding only this CA.
    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.issued.ca_cert.as_bytes()) {
            roots.add(ca.expect("CA PEM")).expect("CA certificate");
        }
        roots
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------------------------
// In-process servers

/// Admits every connection at `listener` with `creds` (one at a time), reporting each outcome;
/// admitted connections stay open for the test's length.
fn serve(
    listener: TcpListener,
    creds: Credentials,
    allowed: &'static [PeerRole],
) -> mpsc::UnboundedReceiver<Result<Hello, RpcError>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (admission, mut open) = (Admission::default(), Vec::new());
        while let Ok((tcp, peer)) = listener.accept().await {
            let place = admission.try_enter(peer.ip(), "test").expect("a place");
            let outcome = admit(tcp, place, &creds, allowed, MAX_FRAME, T).await;
            let report = match outcome {
                Ok((hello, reader, writer)) => {
                    open.push((reader, writer));
                    Ok(hello)
                }
                Err(e) => Err(e),
            };
            if tx.send(report).is_err() {
                return;
            }
        }
    });
    rx
}

/// The server's outcome for the next connection, within `T`.
async fn outcome(
    rx: &mut mpsc::UnboundedReceiver<Result<Hello, RpcError>>,
) -> Result<Hello, RpcError> {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("the server decided within the timeout")
        .expect("the server is running")
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    (listener, addr)
}

fn tls_reason(r: &Result<impl std::fmt::Debug, RpcError>) -> Option<&str> {
    match r {
        Err(RpcError::Handshake(HandshakeError::Tls(reason))) => Some(reason),
        _ => None,
    }
}

/// A TCP stream that keeps a copy of every byte it reads.
struct Recorder {
    inner: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.seen
                .lock()
                .unwrap()
                .extend_from_slice(&buf.filled()[before..]);
        }
        poll
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What an impostor server saw of one connection.
struct Seen {
    /// Every byte that arrived on the socket.
    raw: Vec<u8>,
    /// Whether its TLS handshake completed.
    tls: Result<(), String>,
    /// Application data decrypted after the handshake (a hello frame would be here).
    plaintext: Vec<u8>,
}

/// A server as lenient as can be: it presents `identity`, asks for no client certificate and
/// reads whatever the client sends, for one connection.
async fn impostor(
    listener: TcpListener,
    (certs, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> Seen {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    let (tcp, _) = listener.accept().await.expect("accept");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let io = Recorder {
        inner: tcp,
        seen: seen.clone(),
    };
    let (tls, plaintext) = match tokio_rustls::TlsAcceptor::from(Arc::new(config))
        .accept(io)
        .await
    {
        Ok(mut stream) => {
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got).await;
            (Ok(()), got)
        }
        Err(e) => (Err(e.to_string()), Vec::new()),
    };
    let raw = seen.lock().unwrap().clone();
    Seen {
        raw,
        tls,
        plaintext,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// In-process tests

/// Whoever binds the JobManager's address while it is down (or sits in the path) cannot pose
/// as it: neither with a `jobmanager.rill` certificate from another CA, nor with a genuine
/// certificate of the cluster issued to another node. The TaskManager's TLS fails before its
/// hello, so the impostor never sees a frame, let alone the secret.
#[tokio::test]
async fn a_taskmanager_never_sends_its_secret_to_a_server_without_the_jobmanagers_certificate() {
    let cluster = Pki::issue("a-cluster", &[named("jobmanager"), tm("tm-1")]);
    let other = Pki::issue("a-other", &[named("jobmanager")]);
    let creds = cluster.creds("tm-1");
    let impostors = [
        (
            "a jobmanager certificate of another CA",
            other.identity("jobmanager"),
        ),
        (
            "the cluster's own tm-1 certificate",
            cluster.identity("tm-1"),
        ),
    ];
    for (what, identity) in impostors {
        let (listener, addr) = listen().await;
        let fake = tokio::spawn(impostor(listener, identity));
        let client = connect(
            &addr,
            "jobmanager",
            &creds,
            (PeerRole::TaskManager, "tm-1"),
            MAX_FRAME,
            T,
        )
        .await
        .map(|_| ());
        assert!(
            tls_reason(&client).is_some(),
            "{what}: the TaskManager must fail at TLS, got {client:?}"
        );
        let seen = tokio::time::timeout(T, fake)
            .await
            .expect("the impostor finished")
            .expect("the impostor task");
        assert!(seen.tls.is_err(), "{what}: the impostor completed TLS");
        assert!(
            seen.plaintext.is_empty(),
            "{what}: the impostor received {} bytes of application data",
            seen.plaintext.len()
        );
        assert!(!seen.raw.is_empty(), "{what}: the client never even tried");
        assert!(
            !contains(&seen.raw, SECRET.as_bytes()) && !contains(&seen.raw, b"RILL"),
            "{what}: a hello reached the impostor's socket"
        );
    }
    // The genuine JobManager is reached by the same credentials.
    let (listener, addr) = listen().await;
    let mut server = serve(
        listener,
        cluster.creds("jobmanager"),
        &[PeerRole::TaskManager],
    );
    let client = connect(
        &addr,
        "jobmanager",
        &creds,
        (PeerRole::TaskManager, "tm-1"),
        MAX_FRAME,
        T,
    )
    .await;
    assert!(client.is_ok(), "{:?}", client.map(|_| ()));
    assert_eq!(outcome(&mut server).await.expect("admitted").name, "tm-1");
}

/// A TLS server admits only peers holding a certificate of the cluster CA, whatever they know:
/// raw bytes, a plaintext hello with the right secret, TLS without a client certificate, and
/// one from another CA are all refused at TLS, none of them reaching the hello; the server
/// keeps serving and a proper TaskManager gets through after them.
#[tokio::test]
async fn a_peer_without_a_certificate_is_refused() {
    let cluster = Pki::issue("b-cluster", &[named("jobmanager"), tm("tm-1")]);
    let other = Pki::issue("b-other", &[tm("tm-1")]);
    let (listener, addr) = listen().await;
    let mut server = serve(
        listener,
        cluster.creds("jobmanager"),
        &[PeerRole::TaskManager],
    );

    // Raw plaintext bytes (starting like a hello): refused, and the connection is closed.
    let mut raw = TcpStream::connect(&addr).await.expect("connect");
    raw.write_all(b"RILL\x01\x00\x00\x00 not TLS at all\r\n\r\n")
        .await
        .expect("write");
    let refused = outcome(&mut server).await;
    assert!(tls_reason(&refused).is_some(), "raw bytes: {refused:?}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(T, raw.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server left a refused connection open");

    // A plaintext hello with the right secret.
    let plain = Credentials::new(CLUSTER, SECRET);
    let client = connect(
        &addr,
        "jobmanager",
        &plain,
        (PeerRole::TaskManager, "tm-1"),
        MAX_FRAME,
        T,
    )
    .await
    .map(|_| ());
    assert!(client.is_err(), "a plaintext hello was admitted");
    let refused = outcome(&mut server).await;
    assert!(
        tls_reason(&refused).is_some(),
        "plaintext hello: {refused:?}"
    );

    // TLS that trusts the cluster CA, but with no certificate of its own, then the hello.
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(cluster.roots())
        .with_no_client_auth();
    let tcp = TcpStream::connect(&addr).await.expect("connect");
    let name = ServerName::try_from("jobmanager.rill").expect("server name");
    let client = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        // TLS 1.3: the client's side of the handshake may complete before the server has
        // judged its (missing) certificate; the hello then meets the server's alert.
        Ok(tls) => {
            let (mut reader, mut writer) = framed(tls, MAX_FRAME);
            connect_handshake(
                &mut reader,
                &mut writer,
                &plain,
                PeerRole::TaskManager,
                "tm-1",
                T,
            )
            .await
            .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    assert!(
        client.is_err(),
        "a client without a certificate was admitted"
    );
    let refused = outcome(&mut server).await;
    assert!(
        tls_reason(&refused).is_some(),
        "no certificate: {refused:?}"
    );

    // A tm-1 certificate from another CA, the client trusting the cluster's.
    let (certs, key) = other.identity("tm-1");
    let foreign = TlsContext::new(certs, key, cluster.roots()).expect("context");
    let foreign = Credentials::new(CLUSTER, SECRET).with_tls(Tls::On(Arc::new(foreign)));
    let client = connect(
        &addr,
        "jobmanager",
        &foreign,
        (PeerRole::TaskManager, "tm-1"),
        MAX_FRAME,
        T,
    )
    .await
    .map(|_| ());
    assert!(client.is_err(), "a certificate of another CA was admitted");
    let refused = outcome(&mut server).await;
    assert!(tls_reason(&refused).is_some(), "another CA: {refused:?}");

    // The server is still serving.
    let client = connect(
        &addr,
        "jobmanager",
        &cluster.creds("tm-1"),
        (PeerRole::TaskManager, "tm-1"),
        MAX_FRAME,
        T,
    )
    .await
    .map(|_| ());
    assert!(client.is_ok(), "{client:?}");
    let hello = outcome(&mut server).await.expect("admitted");
    assert_eq!(
        (hello.role, hello.name.as_str()),
        (PeerRole::TaskManager, "tm-1")
    );
}

/// A certificate binds its holder's role and name: tm-1's cannot introduce itself as tm-2 (to
/// the control plane or a data server), as the job client or as the JobManager, and the
/// client's cannot pose as a TaskManager; each is refused as an identity error and told so.
#[tokio::test]
async fn a_taskmanager_certificate_cannot_claim_another_name() {
    let cluster = Pki::issue(
        "c-cluster",
        &[named("jobmanager"), named("client"), tm("tm-1"), tm("tm-2")],
    );
    let (listener, addr) = listen().await;
    // Every role is allowed, so only the identity check stands in the way.
    let mut server = serve(listener, cluster.creds("jobmanager"), ALL_ROLES);
    let tm1 = cluster.creds("tm-1");
    let client = cluster.creds("client");
    let claims = [
        (&tm1, PeerRole::TaskManager, "tm-2"),
        (&tm1, PeerRole::DataPlane, "tm-2"),
        (&tm1, PeerRole::Client, "client"),
        (&tm1, PeerRole::Client, "tm-1"),
        (&tm1, PeerRole::JobManager, "jobmanager"),
        (&tm1, PeerRole::JobManager, "tm-1"),
        (&client, PeerRole::TaskManager, "tm-1"),
        (&client, PeerRole::TaskManager, "client"),
    ];
    for (creds, role, name) in claims {
        let r = connect(&addr, "jobmanager", creds, (role, name), MAX_FRAME, T)
            .await
            .map(|_| ());
        match &r {
            Err(RpcError::Handshake(HandshakeError::Rejected(reason))) => {
                assert!(reason.contains("identity"), "{role:?} {name}: {reason}");
                assert!(!reason.contains(SECRET), "{reason}");
            }
            other => panic!("{role:?} {name}: expected a rejection, got {other:?}"),
        }
        let refused = outcome(&mut server).await;
        assert!(
            matches!(
                refused,
                Err(RpcError::Handshake(HandshakeError::Identity(_)))
            ),
            "{role:?} {name}: {refused:?}"
        );
    }
    for (creds, role, name) in [
        (&tm1, PeerRole::TaskManager, "tm-1"),
        (&tm1, PeerRole::DataPlane, "tm-1"),
        (&client, PeerRole::Client, "client"),
    ] {
        let r = connect(&addr, "jobmanager", creds, (role, name), MAX_FRAME, T)
            .await
            .map(|_| ());
        assert!(r.is_ok(), "{role:?} {name}: {r:?}");
        let hello = outcome(&mut server).await.expect("admitted");
        assert_eq!((hello.role, hello.name.as_str()), (role, name));
    }
}

/// Past the handshake, the JobManager holds a TaskManager to the name it authenticated as:
/// tm-1, admitted as tm-1, cannot register as tm-2 (which would evict the real tm-2).
#[tokio::test]
async fn a_taskmanager_cannot_register_under_a_name_its_certificate_does_not_hold() {
    let cluster = Pki::issue("reg-cluster", &[named("jobmanager"), tm("tm-1")]);
    let (listener, addr) = listen().await;
    let config = cluster.config("jobmanager");
    let services = JobManagerServices::from_config(&config).expect("services");
    let jm = tokio::spawn(run_jobmanager_with(listener, config, services));
    let creds = cluster.creds("tm-1");
    let register = |name: &str| TmToJm::Register {
        name: name.into(),
        slots: 1,
        memory_bytes: 1 << 30,
        data_addr: "127.0.0.1:1".into(),
    };
    for (name, admitted) in [("tm-2", false), ("tm-1", true)] {
        let (mut reader, mut writer) = connect(
            &addr,
            "jobmanager",
            &creds,
            (PeerRole::TaskManager, "tm-1"),
            MAX_FRAME,
            T,
        )
        .await
        .expect("tm-1 is admitted as tm-1");
        writer.send(&register(name)).await.expect("send Register");
        let reply = tokio::time::timeout(T, reader.recv::<JmToTm>())
            .await
            .expect("the JobManager answered or hung up within the timeout");
        let registered = matches!(reply, Ok(Some(JmToTm::Registered { .. })));
        assert_eq!(
            registered,
            admitted,
            "Register as {name} over tm-1's connection: {:?}",
            reply.map(|m| m.map(|_| "a message"))
        );
    }
    jm.abort();
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Kills the process when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's stdout or stderr, read on a thread so that every wait is bounded.
struct Lines {
    rx: std_mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(from: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line containing `marker`, within `within`.
    fn wait_for(&mut self, marker: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(marker) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {marker:?} within {within:?} ({e}); lines so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// A `rill` command with `env` set, and no secret but what `env` gives.
fn rill(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(RILL);
    cmd.args(args)
        .env_remove("RILL_CLUSTER_SECRET")
        .env_remove("RILL_LOG")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied());
    cmd
}

/// Starts a long-running process; its stdout and stderr as lines.
fn start(args: &[&str], env: &[(&str, &str)]) -> (Proc, Lines, Lines) {
    let mut child = rill(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let out = Lines::new(child.stdout.take().expect("stdout"));
    let err = Lines::new(child.stderr.take().expect("stderr"));
    (Proc(child), out, err)
}

/// Runs a command that ends by itself, within `within` (killed and failed otherwise).
fn finish(args: &[&str], env: &[(&str, &str)], within: Duration) -> Output {
    let mut child = rill(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let drain = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = from.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`rill {}` did not end within {within:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    }
}

/// `-c` arguments for a node's TLS files under `dir`.
fn tls_args(dir: &Path, stem: &str) -> Vec<String> {
    let d = dir.display();
    [
        "security.ssl.internal.enabled=true".to_string(),
        format!("security.ssl.internal.ca={d}/ca.pem"),
        format!("security.ssl.internal.cert={d}/{stem}.pem"),
        format!("security.ssl.internal.key={d}/{stem}.key"),
    ]
    .into_iter()
    .flat_map(|kv| ["-c".to_string(), kv])
    .collect()
}

fn with<'a>(args: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(more.iter().map(String::as_str))
        .collect()
}

/// The address at the end of a `... listening on ADDR` line.
fn address(line: &str) -> String {
    line.trim().rsplit(' ').next().expect("address").to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `rill certs`, then a JobManager, two TaskManagers and a client, all over TLS: the job runs
/// on both TaskManagers (so their data plane is TLS too). Then a TaskManager holding tm-1's
/// certificate but calling itself tm-2 is refused by the JobManager on every try.
#[test]
fn a_whole_cluster_runs_over_tls() {
    let dir = TempDir(fresh_dir("cluster"));
    let d = dir.0.display().to_string();
    let certs = finish(
        &[
            "certs",
            "--dir",
            &d,
            "--taskmanager",
            "tm-1",
            "--taskmanager",
            "tm-2",
        ],
        &[],
        START,
    );
    assert!(
        certs.status.success(),
        "rill certs: {}",
        text(&certs.stderr)
    );
    for stem in ["ca", "jobmanager", "client", "tm-1", "tm-2"] {
        assert!(dir.0.join(format!("{stem}.pem")).is_file(), "no {stem}.pem");
    }
    let env = [("RILL_CLUSTER_SECRET", SECRET)];

    let jm_tls = tls_args(&dir.0, "jobmanager");
    let (_jm, mut jm_out, mut jm_err) = start(
        &with(&["jobmanager", "--bind", "127.0.0.1:0"], &jm_tls),
        &env,
    );
    let addr = address(&jm_out.wait_for("listening on", START));

    let mut tms = Vec::new();
    for name in ["tm-1", "tm-2"] {
        let tm_tls = tls_args(&dir.0, name);
        let args = [
            "taskmanager",
            "--jobmanager",
            &addr,
            "--slots",
            "2",
            "--name",
            name,
        ];
        let (p, mut out, _err) = start(&with(&args, &tm_tls), &env);
        out.wait_for("serving data", START);
        tms.push(p);
    }

    let client_tls = tls_args(&dir.0, "client");
    let run_args = [
        "run",
        "--job",
        "keyed-count",
        "--jobmanager",
        &addr,
        "-p",
        "records=2000",
        "-p",
        "parallelism=4",
        "-c",
        "taskmanager.load-balance.mode=tasks",
    ];
    let run = finish(&with(&run_args, &client_tls), &env, Duration::from_secs(60));
    let stdout = text(&run.stdout);
    assert!(
        run.status.success(),
        "rill run over TLS failed: {stdout}\n{}",
        text(&run.stderr)
    );
    assert!(stdout.contains("Finished"), "{stdout}");
    assert!(stdout.contains("records out: 2000"), "{stdout}");
    for name in ["tm-1", "tm-2"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} ran nothing: {stdout}"));
        assert!(!line.contains(": 0 tasks"), "{line}");
    }

    // tm-1's certificate, tm-2's name.
    let tm1_tls = tls_args(&dir.0, "tm-1");
    let args = [
        "taskmanager",
        "--jobmanager",
        &addr,
        "--slots",
        "2",
        "--name",
        "tm-2",
    ];
    let (_impostor, mut out, mut err) =
        start(&with(&args, &tm1_tls), &[env[0], ("RILL_LOG", "info")]);
    out.wait_for("serving data", START);
    // It keeps trying (back-off 100 ms, then 200 ms) and is refused each time, for its identity.
    for _ in 0..2 {
        let line = err.wait_for("registration failed", Duration::from_secs(10));
        assert!(
            line.contains("rejected by peer") && line.contains("identity"),
            "{line}"
        );
    }
    assert!(
        !err.seen
            .iter()
            .any(|l| l.contains("registered at the JobManager")),
        "the impostor registered:\n{}",
        err.seen.join("\n")
    );
    let refused = jm_err.wait_for("handshake refused", START);
    assert!(refused.contains("tm-2.taskmanager.rill"), "{refused}");
    assert!(!refused.contains(SECRET), "{refused}");
}

/// `-c security.cluster.secret=...` would show the secret to everyone through `ps`: every
/// command refuses it, says where the secret goes instead, and does not repeat it.
#[test]
fn the_secret_is_refused_on_the_command_line() {
    let secret = "hunter2-never-echoed";
    let given = format!("security.cluster.secret={secret}");
    let commands: [&[&str]; 3] = [
        &["jobmanager", "--bind", "127.0.0.1:0"],
        &[
            "taskmanager",
            "--jobmanager",
            "127.0.0.1:1",
            "--name",
            "tm-1",
        ],
        &["run", "--job", "keyed-count", "--jobmanager", "127.0.0.1:1"],
    ];
    for command in commands {
        let args: Vec<&str> = command.iter().copied().chain(["-c", &given]).collect();
        let out = finish(&args, &[], START);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{command:?}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("RILL_CLUSTER_SECRET"),
            "{command:?}: {stderr}"
        );
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{command:?} echoed the secret: {stdout}\n{stderr}"
        );
        assert!(!stdout.contains("listening on"), "{command:?}: {stdout}");
    }
}

/// The sink-store write key is refused on the command line, as the secret is, and a short one
/// (guessable offline from the grants every TaskManager sees) is refused from the environment.
#[test]
fn the_write_key_is_refused_on_the_command_line_or_when_short() {
    let key = "k".repeat(40);
    let given = format!("security.sink-store.write-key={key}");
    let store = ["sink-store", "--bind", "127.0.0.1:0"];
    let args: Vec<&str> = store.iter().copied().chain(["-c", &given]).collect();
    let out = finish(&args, &[], START);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("RILL_SINK_WRITE_KEY"), "{stderr}");
    assert!(
        !stderr.contains(&key) && !stdout.contains(&key),
        "echoed: {stderr}"
    );

    let out = finish(&store, &[("RILL_SINK_WRITE_KEY", "short-key")], START);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
}

/// A JobManager bound beyond loopback without TLS would take the secret in the clear from
/// anyone: refused (naming TLS) unless `--insecure`; with TLS and a secret it serves.
#[test]
fn a_non_loopback_bind_without_tls_is_refused_unless_insecure() {
    let env = [("RILL_CLUSTER_SECRET", SECRET)];
    let bind = ["jobmanager", "--bind", "0.0.0.0:0"];

    let refused = finish(&bind, &env, START);
    let (stdout, stderr) = (text(&refused.stdout), text(&refused.stderr));
    assert_eq!(refused.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("TLS") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!stdout.contains("listening on"), "{stdout}");

    let insecure: Vec<&str> = bind.iter().copied().chain(["--insecure"]).collect();
    let (_jm, mut out, _err) = start(&insecure, &env);
    let line = out.wait_for("listening on", START);
    assert!(line.contains("0.0.0.0:"), "{line}");

    let pki = Pki::issue("bind", &[named("jobmanager")]);
    let tls = tls_args(pki.path(), "jobmanager");
    let (_jm, mut out, _err) = start(&with(&bind, &tls), &env);
    let line = out.wait_for("listening on", START);
    assert!(line.contains("0.0.0.0:"), "{line}");
}

#[tokio::test]
async fn a_taskmanager_cannot_pose_as_another_taskmanagers_data_server() {
    let cluster = Pki::issue("h-cluster", &[tm("tm-1"), tm("tm-2"), tm("tm-3")]);
    // tm-3's data server, as a consumer on tm-1 dials it for a producer on tm-2.
    let (listener, addr) = listen().await;
    let mut server = serve(listener, cluster.creds("tm-3"), &[PeerRole::DataPlane]);
    let consumer = cluster.creds("tm-1");
    let posing = connect(
        &addr,
        "tm-2.taskmanager",
        &consumer,
        (PeerRole::DataPlane, "tm-1"),
        MAX_FRAME,
        T,
    )
    .await
    .map(|_| ());
    assert!(
        tls_reason(&posing).is_some(),
        "tm-3 was taken for tm-2's data server: {posing:?}"
    );
    let _ = outcome(&mut server).await;
    // The server it is: admitted.
    let honest = connect(
        &addr,
        "tm-3.taskmanager",
        &consumer,
        (PeerRole::DataPlane, "tm-1"),
        MAX_FRAME,
        T,
    )
    .await
    .map(|_| ());
    assert!(honest.is_ok(), "{honest:?}");
    assert!(outcome(&mut server).await.is_ok());
}

/// A data-plane peer that holds the secret and a certificate of the cluster's own CA (tm-3)
/// asks tm-2's data server for the subpartition the JobManager deployed tm-1's consumer to
/// read: with no grant, with tm-1's grant (captured), with a grant it made itself, and posing
/// as tm-1. Each is refused and takes nothing: tm-1's consumer then reads the whole
/// subpartition. (Before grants, the first request took the queue and the consumer got
/// nothing.)
#[tokio::test]
async fn a_taskmanager_cannot_claim_a_subpartition_deployed_to_another() {
    use rill::graph::{EdgeId, ExecutionAttemptId, JobId, VertexId};
    use rill::network::transport::DataPlaneConfig;
    use rill::network::{
        ClaimCheck, ClaimGrant, ClaimKeys, DataClient, DataServer, NetBuffer, PartitionRegistry,
        StreamEvent, SubpartitionKey,
    };
    use rill::taskmanager::MemoryAccount;

    let cluster = Pki::issue("claims", &[tm("tm-1"), tm("tm-2"), tm("tm-3")]);
    // The JobManager's keys: tm-2's reaches tm-2 alone (at registration).
    let keys = ClaimKeys::from_master([42; 32]);
    let config = |stem: &str, claims: ClaimCheck| DataPlaneConfig {
        credentials: Arc::new(cluster.creds(stem)),
        max_frame: MAX_FRAME,
        request_timeout: T,
        handshake_timeout: T,
        claims,
    };
    let registry = PartitionRegistry::default();
    let (listener, addr) = listen().await;
    let producer_config = config("tm-2", ClaimCheck::with_key(keys.key_for("tm-2")));
    let _server = DataServer::spawn(listener, registry.clone(), producer_config, "tm-2".into());
    let key = SubpartitionKey {
        job: JobId(1),
        producer: ExecutionAttemptId {
            vertex: VertexId(0),
            subtask: 0,
            attempt: 0,
        },
        edge: EdgeId(0),
        index: 1,
    };
    let consumer = ExecutionAttemptId {
        vertex: VertexId(1),
        subtask: 1,
        attempt: 0,
    };
    let queue = registry.create(key, 4);
    queue
        .send(NetBuffer::Event(StreamEvent::Watermark(7)))
        .await
        .expect("queue open");
    queue
        .send(NetBuffer::Event(StreamEvent::EndOfPartition))
        .await
        .expect("queue open");
    let granted = keys.key_for("tm-2").grant(&key, "tm-1", consumer);

    let attacker = DataClient::new(
        config("tm-3", ClaimCheck::default()),
        MemoryAccount::default(),
        "tm-3".into(),
    );
    let own_key = keys.key_for("tm-3");
    let attempts = [
        ("no grant", ClaimGrant::default()),
        ("tm-1's grant", granted),
        ("a grant of its own", own_key.grant(&key, "tm-3", consumer)),
    ];
    for (what, grant) in attempts {
        let (mut rx, _credit) = attacker
            .request((&addr, "tm-2"), key, (consumer, grant), 4)
            .await
            .expect("the connection itself is admitted");
        let got = tokio::time::timeout(T, rx.recv())
            .await
            .expect("refused within the timeout");
        assert!(got.is_none(), "tm-3 with {what} was served: {got:?}");
    }
    // Posing as tm-1 to present its grant: its certificate names tm-3.
    let posing = DataClient::new(
        config("tm-3", ClaimCheck::default()),
        MemoryAccount::default(),
        "tm-1".into(),
    );
    let posed = posing
        .request((&addr, "tm-2"), key, (consumer, granted), 4)
        .await;
    let refused = match posed {
        Err(_) => true,
        Ok((mut rx, _)) => tokio::time::timeout(T, rx.recv())
            .await
            .ok()
            .flatten()
            .is_none(),
    };
    assert!(refused, "tm-3 posing as tm-1 was served");

    // The consumer the JobManager deployed: everything, in order.
    let honest = DataClient::new(
        config("tm-1", ClaimCheck::default()),
        MemoryAccount::default(),
        "tm-1".into(),
    );
    let (mut rx, _credit) = honest
        .request((&addr, "tm-2"), key, (consumer, granted), 4)
        .await
        .expect("tm-1 connects");
    let mut events = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(T, rx.recv()).await {
        match item {
            NetBuffer::Event(e) => events.push(e),
            NetBuffer::Data(_) => panic!("no data was written"),
        }
        if events.last() == Some(&StreamEvent::EndOfPartition) {
            break;
        }
    }
    assert_eq!(
        events,
        [StreamEvent::Watermark(7), StreamEvent::EndOfPartition],
        "the deployed consumer did not get its subpartition whole"
    );
}

/// A client names where the file sink writes (`sink=file:DIR`) and which directory the
/// sources read (`input=DIR`), and the JobManager and TaskManagers act on it with their own
/// rights. Each node lets jobs name only its own `security.files.allowed-dirs`: the JobManager
/// refuses the rest when the job is submitted (and keeps serving), and a TaskManager refuses
/// what its own setting does not allow even when the JobManager's does. Nothing is written
/// outside; inside both, the job runs.
#[test]
fn a_job_cannot_name_paths_outside_the_allowed_directories() {
    let dir = TempDir(fresh_dir("files"));
    let (allowed, tm_refuses) = (dir.0.join("allowed"), dir.0.join("jm-only"));
    let outside = TempDir(fresh_dir("files-outside"));
    let env = [("RILL_CLUSTER_SECRET", SECRET)];
    let jm_files = format!("security.files.allowed-dirs={}", dir.0.display());
    let tm_files = format!("security.files.allowed-dirs={}", allowed.display());
    let (_jm, mut jm_out, _jm_err) = start(
        &["jobmanager", "--bind", "127.0.0.1:0", "-c", &jm_files],
        &env,
    );
    let addr = address(&jm_out.wait_for("listening on", START));
    let tm_args = ["taskmanager", "--jobmanager", &addr, "--slots", "2"];
    let tm_args: Vec<&str> = tm_args
        .iter()
        .copied()
        .chain(["--name", "tm-1", "-c", &tm_files])
        .collect();
    let (_tm, mut tm_out, _tm_err) = start(&tm_args, &env);
    tm_out.wait_for("serving data", START);
    let run = |param: &str| {
        let args = ["run", "--job", "keyed-count", "--jobmanager", &addr];
        let args: Vec<&str> = args
            .iter()
            .copied()
            .chain(["-p", "records=1000", "-p", param])
            .collect();
        let out = finish(&args, &env, Duration::from_secs(60));
        (
            out.status,
            format!("{}\n{}", text(&out.stdout), text(&out.stderr)),
        )
    };

    let escapes = [
        format!("sink=file:{}/out", outside.0.display()),
        format!("sink=file:{}/allowed/../../escape", dir.0.display()),
        "sink=file:relative/out".to_string(),
        format!("input={}", outside.0.display()),
        "input=/etc".to_string(),
    ];
    for param in &escapes {
        let (status, said) = run(param);
        assert!(!status.success(), "{param} accepted: {said}");
        assert!(
            said.contains("security.files.allowed-dirs")
                || said.contains("absolute")
                || said.contains("'..'"),
            "{param}: {said}"
        );
        assert!(!said.contains("Finished"), "{param}: {said}");
    }
    let outside_entries = std::fs::read_dir(&outside.0).expect("outside dir").count();
    assert_eq!(outside_entries, 0, "something was written outside");
    assert!(!dir.0.parent().unwrap().join("escape").exists());

    // Allowed by the JobManager, not by the TaskManager: the deployment is refused there.
    let (status, said) = run(&format!("sink=file:{}/out", tm_refuses.display()));
    assert!(
        !status.success(),
        "the TaskManager wrote where it allows none: {said}"
    );
    assert!(
        !tm_refuses.exists(),
        "{} was created: {said}",
        tm_refuses.display()
    );
    assert!(
        said.contains("cannot build job") && said.contains(&tm_files[..26]),
        "{said}"
    );

    // Inside both: the JobManager kept serving, and the job runs.
    let out = allowed.join("out");
    let (status, said) = run(&format!("sink=file:{}", out.display()));
    assert!(status.success(), "{said}");
    assert!(said.contains("records out: 1000"), "{said}");
    assert!(out.is_dir(), "no output in {}", out.display());
}

/// The sink store applies only the writes the JobManager granted (`connectors::write_grant`),
/// under a key only the two of them hold. `rill certs` writes the key; with it a job's sinks
/// write through TLS to a `rill sink-store` on both TaskManagers. A second JobManager that
/// does not hold the key deploys its sinks without grants, as any TaskManager writing on its
/// own would: the store refuses every write, and the job fails with the reason instead of
/// reporting output it never stored. (With the store's check planted away, that job finishes.)
/// A third JobManager, with the key, is a restarted one: its job is a new job to the store.
#[test]
fn a_sink_store_applies_only_writes_the_jobmanager_granted() {
    let dir = TempDir(fresh_dir("write-grants"));
    let d = dir.0.display().to_string();
    let args = ["certs", "--dir", &d, "--taskmanager", "tm-1"];
    let certs = finish(&args, &[], START);
    assert!(certs.status.success(), "{}", text(&certs.stderr));
    let key_file = dir.0.join("sink-write.key");
    let key = std::fs::read_to_string(&key_file).expect("rill certs writes sink-write.key");
    assert_eq!(key.trim().len(), 64, "{key}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&key_file.metadata().unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the write key is readable by its owner only"
    );
    let env = [("RILL_CLUSTER_SECRET", SECRET)];
    let key_arg = [
        "--write-key-file".to_string(),
        key_file.display().to_string(),
    ];

    let store_tls: Vec<String> = tls_args(&dir.0, "sink-store")
        .into_iter()
        .chain(key_arg.iter().cloned())
        .collect();
    let (_store, mut store_out, _store_err) = start(
        &with(&["sink-store", "--bind", "127.0.0.1:0"], &store_tls),
        &env,
    );
    let store = address(&store_out.wait_for("sink store listening on", START));
    let sink_store = format!("sink-store=rill://{store}");

    // Runs keyed-count on a fresh JobManager (with or without the key) and one TaskManager.
    let run_job = |jm_extra: &[String]| {
        let jm_args: Vec<String> = tls_args(&dir.0, "jobmanager")
            .into_iter()
            .chain(jm_extra.iter().cloned())
            .collect();
        let (jm, mut jm_out, _jm_err) = start(
            &with(&["jobmanager", "--bind", "127.0.0.1:0"], &jm_args),
            &env,
        );
        let addr = address(&jm_out.wait_for("listening on", START));
        let tm_tls = tls_args(&dir.0, "tm-1");
        let args = [
            "taskmanager",
            "--jobmanager",
            &addr,
            "--slots",
            "4",
            "--name",
            "tm-1",
        ];
        let (tm, mut tm_out, _tm_err) = start(&with(&args, &tm_tls), &env);
        tm_out.wait_for("serving data", START);
        let client_tls = tls_args(&dir.0, "client");
        let run_args = [
            "run",
            "--job",
            "keyed-count",
            "--jobmanager",
            &addr,
            "-p",
            "records=2000",
            "-p",
            "parallelism=2",
            "-p",
            "sink=collect",
            "-p",
            &sink_store,
        ];
        let run = finish(&with(&run_args, &client_tls), &env, Duration::from_secs(60));
        drop((tm, jm));
        (run.status.success(), text(&run.stdout) + &text(&run.stderr))
    };

    let (ok, said) = run_job(&key_arg);
    assert!(ok && said.contains("Finished"), "granted job: {said}");
    store_out.wait_for("sink store: 2000 records visible", Duration::from_secs(15));

    let (ok, said) = run_job(&[]);
    assert!(!ok, "a job without grants finished: {said}");
    assert!(said.contains("no write grant"), "{said}");
    // Nothing of it was stored: the store still holds the first job's output alone.
    let line = store_out.wait_for("sink store:", Duration::from_secs(10));
    assert!(line.contains("2000 records visible"), "{line}");

    // A JobManager started afresh with the key (as after a restart) numbers its jobs anew: its
    // job must not be taken for the first one, whose sinks the store holds as complete.
    let (ok, said) = run_job(&key_arg);
    assert!(
        ok && said.contains("Finished"),
        "the restarted JobManager's job: {said}"
    );
    store_out.wait_for("sink store: 4000 records visible", Duration::from_secs(15));
}
