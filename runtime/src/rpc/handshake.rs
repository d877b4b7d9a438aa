//! Connection handshake: protocol magic + version, cluster id, shared secret, peer role.
//!
//! The connecting side sends one [`Hello`] frame and waits for one [`HelloReply`]. The accepting
//! side checks, in this order: magic, version (both read from fixed offsets, so they can be
//! checked even if a future protocol version changes `Hello`'s layout), cluster id, secret
//! (constant time), role. Role comes last so an unauthenticated peer learns nothing about
//! which roles an endpoint takes.
//!
//! While the peer is unauthenticated, frames are limited to [`HANDSHAKE_MAX_FRAME`] so a stranger
//! cannot make us buffer a full-size frame. The secret is never logged or echoed: `Hello` and
//! `Credentials` redact it in `Debug`, and rejection reasons never contain it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{decode, FrameReader, FrameWriter, RpcError};
use super::secure::Tls;

/// First four bytes of every `Hello`: tells a rill peer from anything else that connects.
pub const PROTOCOL_MAGIC: [u8; 4] = *b"RILL";
/// Bumped on any incompatible change to the messages.
pub const PROTOCOL_VERSION: u32 = 2;
/// Frame-size limit while the peer is unauthenticated (a `Hello` is a few hundred bytes).
pub const HANDSHAKE_MAX_FRAME: usize = 4 * 1024;
/// Peer-supplied strings are cut to this many characters before they reach logs or errors.
const CLIP_CHARS: usize = 64;

/// What the connecting peer is; an endpoint accepts only the roles it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRole {
    /// A TaskManager, on the JobManager's control endpoint (or as a client of a connector's
    /// service).
    TaskManager,
    /// A job client submitting a job and following its status.
    Client,
    /// A TaskManager's input channels, on another TaskManager's data server.
    DataPlane,
    /// A JobManager, as a client of a checkpoint store.
    JobManager,
}

/// First frame on every connection, sent by the connecting side.
/// Field order is part of the protocol: `magic` then `version` must stay first.
#[derive(Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`PROTOCOL_MAGIC`].
    pub magic: [u8; 4],
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The cluster the sender belongs to (`cluster.id`).
    pub cluster_id: String,
    /// The shared secret (`security.cluster.secret`); never logged.
    pub secret: String,
    /// What the sender is, so the endpoint can refuse roles it does not serve.
    pub role: PeerRole,
    /// Human-readable peer name for logs, e.g. "tm-3".
    pub name: String,
}

impl Hello {
    /// A `Hello` for this protocol version.
    pub fn new(creds: &Credentials, role: PeerRole, name: &str) -> Self {
        Hello {
            magic: PROTOCOL_MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id: creds.cluster_id.clone(),
            secret: creds.secret.clone(),
            role,
            name: name.to_owned(),
        }
    }
}

/// Hand-written so the secret can never reach a log through `{:?}`.
impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("magic", &self.magic)
            .field("version", &self.version)
            .field("cluster_id", &self.cluster_id)
            .field("secret", &format_args!("<redacted>"))
            .field("role", &self.role)
            .field("name", &self.name)
            .finish()
    }
}

/// The accepting side's answer to a `Hello`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HelloReply {
    /// The peer is admitted: protocol frames follow.
    Accepted,
    /// `reason` is meant for the peer's operator; it never contains a secret.
    Rejected {
        /// Why the peer was refused.
        reason: String,
    },
}

/// Why a handshake failed. Values never contain the secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// The first bytes were not [`PROTOCOL_MAGIC`].
    #[error("bad protocol magic: the peer does not speak the rill protocol")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`].
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// `theirs` is clipped to a few dozen characters.
    #[error("cluster id mismatch: ours {ours:?}, theirs {theirs:?}")]
    WrongCluster {
        /// Our cluster id.
        ours: String,
        /// The peer's.
        theirs: String,
    },
    /// The peer presented another secret.
    #[error("wrong shared secret")]
    BadSecret,
    /// The peer's role is not one this endpoint serves.
    #[error("peer role {0:?} is not allowed on this endpoint")]
    RoleNotAllowed(PeerRole),
    /// The other side refused us, with its reason.
    #[error("rejected by peer: {0}")]
    Rejected(String),
    /// TLS failed: no certificate, one the cluster CA did not issue, a server that is not what
    /// was dialled, or TLS configured but unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer's certificate does not name what its hello claims to be.
    #[error("identity: {0}")]
    Identity(String),
}

/// What both sides of a connection must agree on.
#[derive(Clone)]
pub struct Credentials {
    /// `cluster.id`.
    pub cluster_id: String,
    /// `security.cluster.secret`; redacted in `Debug`.
    pub secret: String,
    /// Whether connections run TLS, with which certificate.
    pub tls: Tls,
}

impl Credentials {
    /// Plaintext credentials for `cluster_id` with `secret`.
    pub fn new(cluster_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials {
            cluster_id: cluster_id.into(),
            secret: secret.into(),
            tls: Tls::Off,
        }
    }

    /// The same credentials over `tls`.
    pub fn with_tls(self, tls: Tls) -> Self {
        Credentials { tls, ..self }
    }
}

/// Hand-written so the secret can never reach a log through `{:?}`.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("cluster_id", &self.cluster_id)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// Client side: sends `Hello`, then awaits the `HelloReply`; the whole exchange is bounded by
/// `timeout`. A refusal comes back as `Err(Handshake(Rejected(reason)))`.
pub async fn connect_handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    creds: &Credentials,
    role: PeerRole,
    name: &str,
    timeout: Duration,
) -> Result<(), RpcError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello = Hello::new(creds, role, name);
    let normal = lower_frame_limit(reader);
    let exchange = async {
        writer.send(&hello).await?;
        let frame = recv_hello_frame(reader).await?;
        decode::<HelloReply>(&frame, frame.len())
    };
    let reply = with_timeout(timeout, "handshake reply", exchange).await;
    reader.set_max_frame(normal);
    match reply? {
        HelloReply::Accepted => Ok(()),
        HelloReply::Rejected { reason } => Err(HandshakeError::Rejected(reason).into()),
    }
}

/// Server side: reads the `Hello` (bounded by `timeout`) and verifies magic, version, cluster id,
/// secret (constant time), role (must be in `allowed`) and, when the peer presented a
/// certificate (`peer`: its DNS names), that the certificate names the role and name the hello
/// claims ([`identity_matches`]). Replies `Accepted` and returns the `Hello`, or replies
/// `Rejected { reason }` (best effort) and returns the error.
pub async fn accept_handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    creds: &Credentials,
    allowed: &[PeerRole],
    peer: Option<&[String]>,
    timeout: Duration,
) -> Result<Hello, RpcError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let normal = lower_frame_limit(reader);
    let checked = with_timeout(timeout, "hello", read_and_verify(reader, creds, allowed)).await;
    let checked = checked.and_then(|hello| match peer {
        Some(names) => identity_matches(&hello, names).map(|()| hello),
        None => Ok(hello),
    });
    reader.set_max_frame(normal);
    match checked {
        Ok(hello) => {
            with_timeout(
                timeout,
                "sending hello reply",
                writer.send(&HelloReply::Accepted),
            )
            .await?;
            tracing::debug!(peer = %clip(&hello.name), role = ?hello.role, "handshake accepted");
            Ok(hello)
        }
        Err(err) => {
            tracing::warn!(error = %err, "handshake refused");
            if let Some(reason) = rejection_reason(&err) {
                let reply = HelloReply::Rejected { reason };
                // Best effort: the peer may already be gone, and we are failing anyway.
                let _ = with_timeout(timeout, "sending hello reply", writer.send(&reply)).await;
            }
            Err(err)
        }
    }
}

/// Reads one `Hello` and checks it against our credentials.
async fn read_and_verify<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    creds: &Credentials,
    allowed: &[PeerRole],
) -> Result<Hello, RpcError> {
    let frame = recv_hello_frame(reader).await?;
    check_prefix(&frame)?;
    // The frame is already bounded by HANDSHAKE_MAX_FRAME; its own length is the tightest limit.
    let hello: Hello = decode(&frame, frame.len())?;
    verify(&hello, creds, allowed)?;
    Ok(hello)
}

/// One handshake frame; the peer closing instead is `Closed`.
async fn recv_hello_frame<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<bytes::BytesMut, RpcError> {
    reader.recv_bytes().await?.ok_or(RpcError::Closed)
}

/// Checks magic and protocol version from their fixed offsets (bytes 0..4 and 4..8, in the
/// fixint little-endian layout of `frame::encode`) before the layout-dependent full decode.
fn check_prefix(frame: &[u8]) -> Result<(), RpcError> {
    let (magic, rest) = frame
        .split_first_chunk::<4>()
        .ok_or(HandshakeError::BadMagic)?;
    if *magic != PROTOCOL_MAGIC {
        return Err(HandshakeError::BadMagic.into());
    }
    let theirs = rest
        .first_chunk::<4>()
        .map(|v| u32::from_le_bytes(*v))
        .ok_or_else(|| RpcError::Malformed("hello too short for a protocol version".into()))?;
    if theirs != PROTOCOL_VERSION {
        return Err(HandshakeError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        }
        .into());
    }
    Ok(())
}

/// Cluster id, then secret, then role (see the module docs for why this order).
fn verify(hello: &Hello, creds: &Credentials, allowed: &[PeerRole]) -> Result<(), HandshakeError> {
    if hello.cluster_id != creds.cluster_id {
        let (ours, theirs) = (creds.cluster_id.clone(), clip(&hello.cluster_id));
        return Err(HandshakeError::WrongCluster { ours, theirs });
    }
    if !secrets_match(&hello.secret, &creds.secret) {
        return Err(HandshakeError::BadSecret);
    }
    if !allowed.contains(&hello.role) {
        return Err(HandshakeError::RoleNotAllowed(hello.role));
    }
    Ok(())
}

/// A certificate's names bind its holder: a TaskManager (or its data plane) must hold
/// `<name>.taskmanager.rill` for the name it claims, a client `client.rill`, a JobManager
/// `jobmanager.rill` (see `rpc::tls`). So no peer can register, read or write under another's
/// name, whatever secret it holds.
pub fn identity_matches(hello: &Hello, names: &[String]) -> Result<(), RpcError> {
    let wanted = match hello.role {
        PeerRole::TaskManager | PeerRole::DataPlane => format!("{}.taskmanager.rill", hello.name),
        PeerRole::Client => "client.rill".to_owned(),
        PeerRole::JobManager => "jobmanager.rill".to_owned(),
    };
    // Exact: `TM-3` is another TaskManager than `tm-3` to the JobManager.
    if names.contains(&wanted) {
        return Ok(());
    }
    let held: Vec<String> = names.iter().take(4).map(|n| clip(n)).collect();
    Err(HandshakeError::Identity(format!(
        "a {:?} named {:?} must hold a certificate for {wanted}; this one is for {held:?}",
        hello.role,
        clip(&hello.name)
    ))
    .into())
}

/// Constant-time comparison, so response timing does not reveal how much of a guessed secret
/// was right. (Only the secret's length can leak, as with any plain comparison.)
fn secrets_match(theirs: &str, ours: &str) -> bool {
    theirs.as_bytes().ct_eq(ours.as_bytes()).into()
}

/// What we tell a refused peer. Our own cluster id stays out of it (the peer's operator
/// can see what they sent; our logs have both); `None` when the stream is already broken.
fn rejection_reason(err: &RpcError) -> Option<String> {
    let reason = match err {
        RpcError::Handshake(HandshakeError::WrongCluster { theirs, .. }) => {
            format!("cluster id mismatch: {theirs:?} is not this cluster's id")
        }
        RpcError::Handshake(HandshakeError::VersionMismatch { ours, theirs }) => {
            format!("protocol version mismatch: this endpoint speaks {ours}, you sent {theirs}")
        }
        RpcError::Handshake(e) => e.to_string(),
        RpcError::Malformed(_) => "malformed hello".to_owned(),
        RpcError::FrameTooLarge { max, .. } => format!("hello larger than {max} bytes"),
        RpcError::Timeout(_) => "no hello within the handshake timeout".to_owned(),
        RpcError::Io(_) | RpcError::Closed => return None,
    };
    Some(reason)
}

/// Lowers the reader's frame limit to `HANDSHAKE_MAX_FRAME` for the unauthenticated exchange
/// and returns the previous limit; the caller restores it once the bounded wait is over (also
/// after a timeout, which is why this is not done inside the timed future).
fn lower_frame_limit<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>) -> usize {
    let normal = reader.max_frame();
    reader.set_max_frame(normal.min(HANDSHAKE_MAX_FRAME));
    normal
}

/// Bounds `fut` by `limit` (tokio::time only, so it is simulated under madsim).
async fn with_timeout<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, RpcError>>,
) -> Result<T, RpcError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| RpcError::Timeout(what))?
}

/// Cuts a peer-supplied string for logs and errors, at a character boundary.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(CLIP_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream, ReadHalf, WriteHalf};

    type Reader = FrameReader<ReadHalf<DuplexStream>>;
    type Writer = FrameWriter<WriteHalf<DuplexStream>>;

    const T: Duration = Duration::from_secs(5);
    const SERVER_SECRET: &str = "server-s3cr3t";

    fn server_creds() -> Credentials {
        Credentials::new("prod", SERVER_SECRET)
    }

    /// Two connected ends: (client reader, client writer), (server reader, server writer).
    fn pair() -> ((Reader, Writer), (Reader, Writer)) {
        let (a, b) = duplex(256 * 1024); // room for an oversize test frame without a reader
        (
            super::super::frame::framed(a, 1 << 20),
            super::super::frame::framed(b, 1 << 20),
        )
    }

    /// Runs the real client and server handshakes against each other.
    async fn run(
        client: Credentials,
        role: PeerRole,
        allowed: &[PeerRole],
    ) -> (Result<(), RpcError>, Result<Hello, RpcError>) {
        let ((mut cr, mut cw), (mut sr, mut sw)) = pair();
        let creds = server_creds();
        tokio::join!(
            connect_handshake(&mut cr, &mut cw, &client, role, "tm-3", T),
            accept_handshake(&mut sr, &mut sw, &creds, allowed, None, T),
        )
    }

    /// Sends a hand-made `Hello` to the real server; returns the server's result and its reply.
    async fn run_raw(hello: Hello) -> (Result<Hello, RpcError>, HelloReply) {
        let ((mut cr, mut cw), (mut sr, mut sw)) = pair();
        cw.send(&hello).await.unwrap();
        let server = accept_handshake(
            &mut sr,
            &mut sw,
            &server_creds(),
            &[PeerRole::TaskManager],
            None,
            T,
        )
        .await;
        let reply = cr.recv::<HelloReply>().await.unwrap().expect("a reply");
        (server, reply)
    }

    fn handshake_err(r: Result<impl fmt::Debug, RpcError>) -> HandshakeError {
        match r {
            Err(RpcError::Handshake(e)) => e,
            other => panic!("expected a handshake error, got {other:?}"),
        }
    }

    fn rejected_reason(reply: HelloReply) -> String {
        match reply {
            HelloReply::Rejected { reason } => reason,
            HelloReply::Accepted => panic!("expected a rejection"),
        }
    }

    #[tokio::test]
    async fn success() {
        let (client, server) = run(
            server_creds(),
            PeerRole::TaskManager,
            &[PeerRole::TaskManager],
        )
        .await;
        client.unwrap();
        let hello = server.unwrap();
        assert_eq!(
            (hello.role, hello.name.as_str(), hello.cluster_id.as_str()),
            (PeerRole::TaskManager, "tm-3", "prod")
        );
    }

    #[tokio::test]
    async fn frame_limit_is_restored_after_handshake() {
        let ((mut cr, mut cw), (mut sr, mut sw)) = pair();
        let creds = server_creds();
        let (c, s) = tokio::join!(
            connect_handshake(&mut cr, &mut cw, &creds, PeerRole::DataPlane, "tm-1", T),
            accept_handshake(&mut sr, &mut sw, &creds, &[PeerRole::DataPlane], None, T),
        );
        c.unwrap();
        s.unwrap();
        assert_eq!((cr.max_frame(), sr.max_frame()), (1 << 20, 1 << 20));
        cw.send_bytes(bytes::Bytes::from(vec![7u8; HANDSHAKE_MAX_FRAME + 1]))
            .await
            .unwrap();
        assert_eq!(
            sr.recv_bytes().await.unwrap().unwrap().len(),
            HANDSHAKE_MAX_FRAME + 1
        );
    }

    #[tokio::test]
    async fn wrong_secret() {
        let client_secret = "client-guess-123";
        let (client, server) = run(
            Credentials::new("prod", client_secret),
            PeerRole::TaskManager,
            &[PeerRole::TaskManager],
        )
        .await;
        assert_eq!(handshake_err(server), HandshakeError::BadSecret);
        let HandshakeError::Rejected(reason) = handshake_err(client) else {
            panic!("expected Rejected")
        };
        assert!(reason.contains("secret"), "{reason}");
        assert!(
            !reason.contains(client_secret) && !reason.contains(SERVER_SECRET),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn wrong_version() {
        let hello = Hello {
            version: 99,
            ..Hello::new(&server_creds(), PeerRole::TaskManager, "old")
        };
        let (server, reply) = run_raw(hello).await;
        assert_eq!(
            handshake_err(server),
            HandshakeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 99
            }
        );
        assert!(rejected_reason(reply).contains("99"));
    }

    #[tokio::test]
    async fn wrong_cluster_id() {
        let (client, server) = run(
            Credentials::new("staging", SERVER_SECRET),
            PeerRole::TaskManager,
            &[PeerRole::TaskManager],
        )
        .await;
        assert_eq!(
            handshake_err(server),
            HandshakeError::WrongCluster {
                ours: "prod".into(),
                theirs: "staging".into()
            }
        );
        let HandshakeError::Rejected(reason) = handshake_err(client) else {
            panic!("expected Rejected")
        };
        assert!(
            reason.contains("staging") && !reason.contains("prod"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn bad_magic() {
        let hello = Hello {
            magic: *b"HTTP",
            ..Hello::new(&server_creds(), PeerRole::TaskManager, "x")
        };
        let (server, reply) = run_raw(hello).await;
        assert_eq!(handshake_err(server), HandshakeError::BadMagic);
        rejected_reason(reply);
    }

    #[tokio::test]
    async fn disallowed_role() {
        let (client, server) = run(
            server_creds(),
            PeerRole::Client,
            &[PeerRole::TaskManager, PeerRole::DataPlane],
        )
        .await;
        assert_eq!(
            handshake_err(server),
            HandshakeError::RoleNotAllowed(PeerRole::Client)
        );
        assert!(matches!(handshake_err(client), HandshakeError::Rejected(_)));
    }

    #[tokio::test]
    async fn server_times_out_on_silent_client() {
        let ((_cr, _cw), (mut sr, mut sw)) = pair();
        let server = accept_handshake(
            &mut sr,
            &mut sw,
            &server_creds(),
            &[PeerRole::TaskManager],
            None,
            Duration::from_millis(200),
        )
        .await;
        assert!(matches!(server, Err(RpcError::Timeout(_))), "{server:?}");
    }

    #[tokio::test]
    async fn client_sees_closed_when_server_hangs_up() {
        let ((mut cr, mut cw), server_end) = pair();
        drop(server_end);
        let client = connect_handshake(
            &mut cr,
            &mut cw,
            &server_creds(),
            PeerRole::Client,
            "cli",
            T,
        )
        .await;
        // Depending on timing the write or the read notices first.
        assert!(
            matches!(client, Err(RpcError::Closed | RpcError::Io(_))),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn server_survives_garbage_and_oversize_hello() {
        let ((_cr, mut cw), (mut sr, mut sw)) = pair();
        // The magic and this version, then garbage where the hello should be.
        let hello = [
            &PROTOCOL_MAGIC[..],
            &PROTOCOL_VERSION.to_le_bytes(),
            b"garbage",
        ]
        .concat();
        cw.send_bytes(bytes::Bytes::from(hello)).await.unwrap();
        let r = accept_handshake(
            &mut sr,
            &mut sw,
            &server_creds(),
            &[PeerRole::TaskManager],
            None,
            T,
        )
        .await;
        assert!(matches!(r, Err(RpcError::Malformed(_))), "{r:?}");

        let ((_cr, mut cw), (mut sr, mut sw)) = pair();
        cw.send_bytes(bytes::Bytes::from(vec![0u8; HANDSHAKE_MAX_FRAME + 1]))
            .await
            .unwrap();
        let r = accept_handshake(
            &mut sr,
            &mut sw,
            &server_creds(),
            &[PeerRole::TaskManager],
            None,
            T,
        )
        .await;
        assert!(matches!(r, Err(RpcError::FrameTooLarge { .. })), "{r:?}");
    }

    #[test]
    fn prefix_offsets_match_the_encoding() {
        let bytes =
            super::super::frame::encode(&Hello::new(&server_creds(), PeerRole::Client, "c"))
                .unwrap();
        assert_eq!(&bytes[..4], &PROTOCOL_MAGIC);
        assert_eq!(&bytes[4..8], &PROTOCOL_VERSION.to_le_bytes());
        check_prefix(&bytes).unwrap();
    }

    #[test]
    fn debug_redacts_secret() {
        let hello = Hello::new(&server_creds(), PeerRole::TaskManager, "tm-3");
        for shown in [format!("{hello:?}"), format!("{:?}", server_creds())] {
            assert!(
                shown.contains("<redacted>") && !shown.contains(SERVER_SECRET),
                "{shown}"
            );
        }
    }

    #[test]
    fn clip_cuts_long_peer_strings() {
        assert_eq!(clip("tm-1"), "tm-1");
        assert_eq!(clip(&"é".repeat(100)).chars().count(), CLIP_CHARS + 1);
    }
}
