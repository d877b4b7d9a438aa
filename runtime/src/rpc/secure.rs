//! Opening and admitting connections, the one way every rill connection starts: TCP, then TLS
//! where the configuration enables it (`security.ssl.internal.*`, real build), then the
//! handshake ([`super::handshake`]). [`connect`] is the dialling side, [`admit`] the accepting
//! side; both bound the whole exchange by one timeout.
//!
//! With TLS, both ends verify the other's certificate against the cluster CA, the dialling side
//! checks that the server is what it meant to reach, and the accepting side binds the role and
//! name the peer claims in its hello to the names its certificate holds. Without TLS the
//! secret travels in the clear and identities are whatever peers claim: development on
//! loopback only (the CLI refuses it elsewhere unless told `--insecure`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::frame::{framed, FrameReader, FrameWriter, RpcError};
use super::handshake::{accept_handshake, connect_handshake, Credentials, Hello, PeerRole};

/// A connection's byte stream: plain TCP, or TLS over it.
pub enum Stream {
    /// TCP as it is (plaintext mode, and always under the simulator).
    Plain(TcpStream),
    /// TLS over TCP.
    #[cfg(not(madsim))]
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

/// The receiving half of a connection.
pub type Reader = FrameReader<ReadHalf<Stream>>;
/// The sending half of a connection.
pub type Writer = FrameWriter<WriteHalf<Stream>>;

/// What protects a node's connections, from its configuration.
#[derive(Clone)]
pub enum Tls {
    /// Plaintext: the hello's secret authenticates, nothing is encrypted.
    Off,
    /// TLS with this node's certificate and the cluster CA.
    #[cfg(not(madsim))]
    On(Arc<super::tls::TlsContext>),
    /// TLS is configured but cannot be used: every connection fails with this reason (the
    /// CLI reports it at start, before serving anything).
    Unusable(Arc<str>),
}

impl Tls {
    /// The TLS mode `config` asks for, its files loaded (once per process).
    pub fn from_config(config: &crate::config::Configuration) -> Tls {
        if !config.ssl_enabled() {
            return Tls::Off;
        }
        #[cfg(not(madsim))]
        {
            let files = super::tls::TlsFiles::from_config(config).expect("enabled");
            match super::tls::context(&files) {
                Ok(context) => Tls::On(context),
                Err(reason) => Tls::Unusable(reason.into()),
            }
        }
        #[cfg(madsim)]
        Tls::Unusable(
            "TLS is not available in the simulator build: it runs the authenticated \
             plaintext mode"
                .into(),
        )
    }

    /// Why this mode cannot be used, if it cannot.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Tls::Unusable(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether connections are encrypted and authenticated by certificate.
    pub fn is_on(&self) -> bool {
        match self {
            #[cfg(not(madsim))]
            Tls::On(_) => true,
            _ => false,
        }
    }
}

/// The name a server holds in its certificate for the endpoint kind `endpoint`: `jobmanager`,
/// `taskmanager` (a data server), or a service's name (`log server` → `log-server.rill`).
pub fn server_name(endpoint: &str) -> String {
    format!("{}.rill", endpoint.replace(' ', "-"))
}

/// Dials `addr`, which must be a `endpoint` server ([`server_name`]), and introduces this
/// process as `role` named `name`. TCP connect, TLS and the hello are bounded by `timeout`.
pub async fn connect(
    addr: &str,
    endpoint: &str,
    creds: &Credentials,
    (role, name): (PeerRole, &str),
    max_frame: usize,
    timeout: Duration,
) -> Result<(Reader, Writer), RpcError> {
    // Only TLS checks whom it reached; plaintext takes whoever answers.
    #[cfg(madsim)]
    let _ = endpoint;
    let open = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match &creds.tls {
            Tls::Off => Stream::Plain(tcp),
            #[cfg(not(madsim))]
            Tls::On(context) => {
                let tls = context.connect(tcp, &server_name(endpoint)).await?;
                Stream::Tls(Box::new(tls.into()))
            }
            Tls::Unusable(reason) => return Err(unusable(reason)),
        };
        Ok(framed(stream, max_frame))
    };
    let (mut reader, mut writer) = tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| RpcError::Timeout("connecting"))??;
    connect_handshake(&mut reader, &mut writer, creds, role, name, timeout).await?;
    Ok((reader, writer))
}

/// Admits an accepted connection: TLS (when on) and the hello, whose role must be one of
/// `allowed` and, with TLS, match the peer's certificate. Bounded by `timeout`; `place` (its
/// place among the connections in their handshake) is given back when it is over.
pub async fn admit(
    tcp: TcpStream,
    place: super::admission::Ticket,
    creds: &Credentials,
    allowed: &[PeerRole],
    max_frame: usize,
    timeout: Duration,
) -> Result<(Hello, Reader, Writer), RpcError> {
    tcp.set_nodelay(true)?;
    let handshakes = async {
        let (stream, names) = match &creds.tls {
            Tls::Off => (Stream::Plain(tcp), None::<Vec<String>>),
            #[cfg(not(madsim))]
            Tls::On(context) => {
                let (tls, names) = context.accept(tcp).await?;
                (Stream::Tls(Box::new(tls.into())), Some(names.0))
            }
            Tls::Unusable(reason) => return Err(unusable(reason)),
        };
        let (mut reader, mut writer) = framed(stream, max_frame);
        let peer = names.as_deref();
        let hello =
            accept_handshake(&mut reader, &mut writer, creds, allowed, peer, timeout).await?;
        Ok::<_, RpcError>((hello, reader, writer))
    };
    // One deadline for TLS and the hello together: a peer that dawdles through both holds
    // its place for `timeout`, not twice that.
    let admitted = tokio::select! {
        biased;
        _ = place.evicted() => Err(RpcError::Timeout("handshake (its place went to another peer)")),
        admitted = tokio::time::timeout(timeout, handshakes) => {
            admitted.map_err(|_| RpcError::Timeout("handshake"))?
        }
    };
    drop(place);
    admitted
}

fn unusable(reason: &str) -> RpcError {
    RpcError::Handshake(super::handshake::HandshakeError::Tls(reason.to_owned()))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(not(madsim))]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(not(madsim))]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(not(madsim))]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(not(madsim))]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
