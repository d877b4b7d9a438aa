//! TLS with mutual authentication (rustls), for every connection of the real build: the cluster
//! has one CA, every node a certificate from it, and both ends of a connection verify the
//! other's. A certificate names its node in its DNS subject alternative names:
//!
//! | node              | names                                        |
//! |-------------------|----------------------------------------------|
//! | JobManager        | `jobmanager.rill`                            |
//! | TaskManager `tm-3`| `tm-3.taskmanager.rill`, `taskmanager.rill`  |
//! | job client        | `client.rill`                                |
//! | a service         | `log-server.rill`, `sink-store.rill`, `checkpoint-store.rill` |
//!
//! The connecting side checks that the server holds the name of what it meant to reach (a
//! TaskManager that dials the JobManager's address reaches nobody else, whoever binds the port
//! while it is down); the accepting side reads the client's names and hands them to the
//! handshake, which binds the role and name the peer claims to them
//! ([`super::handshake::identity_matches`]).
//!
//! Not compiled under the simulator: ring draws its randomness through a raw `getrandom`
//! syscall that madsim cannot seed, so a handshake would make runs irreproducible. The
//! simulated cluster runs the authenticated plaintext mode (see ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

use super::handshake::HandshakeError;
use super::RpcError;
use crate::config::Configuration;
use crate::util::lock;

/// The DNS-name suffix of every name a rill certificate holds.
pub const DOMAIN: &str = "rill";

/// A node's TLS identity and trust, loaded once per (cert, key, CA) files.
pub struct TlsContext {
    connector: tokio_rustls::TlsConnector,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// Where a node's PEM files are (`security.ssl.internal.{cert,key,ca}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TlsFiles {
    /// The node's certificate (chain), PEM.
    pub cert: PathBuf,
    /// The node's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The cluster CA's certificate, PEM: the only issuer trusted.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The files the configuration names, if TLS is enabled there.
    pub fn from_config(config: &Configuration) -> Option<TlsFiles> {
        config.ssl_enabled().then(|| TlsFiles {
            cert: config.ssl_cert().into(),
            key: config.ssl_key().into(),
            ca: config.ssl_ca().into(),
        })
    }
}

/// The context for `files`, loaded on first use and shared after: connections are opened all
/// the time, and the files are the process's for its lifetime. A failure is kept too, so
/// every connection reports it rather than retrying the files each time.
pub fn context(files: &TlsFiles) -> Result<Arc<TlsContext>, String> {
    type Cache = Mutex<BTreeMap<TlsFiles, Result<Arc<TlsContext>, String>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    lock(cache)
        .entry(files.clone())
        .or_insert_with(|| TlsContext::load(files).map(Arc::new))
        .clone()
}

impl TlsContext {
    fn load(files: &TlsFiles) -> Result<TlsContext, String> {
        let certs = read_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| format!("TLS key {}: {e}", files.key.display()))?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&files.ca)? {
            roots
                .add(ca)
                .map_err(|e| format!("TLS CA {}: {e}", files.ca.display()))?;
        }
        TlsContext::new(certs, key, roots)
    }

    /// A context presenting `certs` with `key`, trusting only `roots`, on both sides of a
    /// connection; a server requires a client certificate from `roots`.
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: RootCertStore,
    ) -> Result<TlsContext, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(roots);
        let bad = |e: rustls::Error| format!("TLS configuration: {e}");
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("TLS client verifier: {e}"))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(bad)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(bad)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(bad)?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(bad)?;
        Ok(TlsContext {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// Opens TLS over `tcp` to a server that must hold the name `server` (e.g.
    /// `jobmanager.rill`).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        server: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, RpcError> {
        let name = ServerName::try_from(server.to_owned())
            .map_err(|e| tls_error(format!("server name {server:?}: {e}")))?;
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error(e.to_string()))
    }

    /// Accepts TLS over `tcp`; returns the stream and the names the client's certificate
    /// holds (the verifier has checked it was issued by the cluster CA).
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, PeerNames), RpcError> {
        let stream = self
            .acceptor
            .accept(tcp)
            .await
            .map_err(|e| tls_error(e.to_string()))?;
        let names = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(dns_names)
            .transpose()?
            .unwrap_or_default();
        Ok((stream, PeerNames(names)))
    }
}

/// The DNS names of a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerNames(pub Vec<String>);

fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, RpcError> {
    let cert = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| tls_error(format!("peer certificate: {e}")))?;
    Ok(cert.valid_dns_names().map(str::to_owned).collect())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn tls_error(reason: String) -> RpcError {
    RpcError::Handshake(HandshakeError::Tls(reason))
}

/// The certificate's names for a node of `kind` (see the module docs).
pub fn names_for(kind: &NodeKind) -> Vec<String> {
    match kind {
        NodeKind::TaskManager(name) => vec![
            format!("{name}.taskmanager.{DOMAIN}"),
            format!("taskmanager.{DOMAIN}"),
        ],
        NodeKind::Named(service) => vec![format!("{service}.{DOMAIN}")],
        NodeKind::Embedded { taskmanagers } => {
            let mut names: Vec<String> = NAMED_NODES
                .iter()
                .map(|n| format!("{n}.{DOMAIN}"))
                .collect();
            names.extend((1..=*taskmanagers).map(|i| format!("tm-{i}.taskmanager.{DOMAIN}")));
            names.push(format!("taskmanager.{DOMAIN}"));
            names
        }
    }
}

/// The nodes of a cluster other than its TaskManagers, by the names their certificates hold.
pub const NAMED_NODES: [&str; 5] = [
    "jobmanager",
    "client",
    "log-server",
    "sink-store",
    "checkpoint-store",
];

/// Every node of a cluster with `taskmanagers`: what `rill certs` and a real run issue
/// certificates for.
pub fn cluster_nodes(taskmanagers: impl IntoIterator<Item = String>) -> Vec<NodeKind> {
    NAMED_NODES
        .iter()
        .map(|n| NodeKind::Named((*n).to_owned()))
        .chain(taskmanagers.into_iter().map(NodeKind::TaskManager))
        .collect()
}

/// What a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A TaskManager, by its name.
    TaskManager(String),
    /// The JobManager (`jobmanager`), a job client (`client`), or a service
    /// (`log-server`, `sink-store`, `checkpoint-store`).
    Named(String),
    /// Every node of an embedded cluster in one process (`rill local`, `rill bench`): the
    /// JobManager, the client, the services and TaskManagers `tm-1` to `tm-{taskmanagers}`.
    Embedded {
        /// How many TaskManagers the cluster has.
        taskmanagers: u32,
    },
}

/// A cluster CA and certificates issued by it, PEM, for `rill certs` and for tests.
pub struct IssuedCerts {
    /// The CA certificate (what every node trusts).
    pub ca_cert: String,
    /// The CA's key (keep it away from the nodes; needed only to issue more).
    pub ca_key: String,
    /// Per node: (file stem, certificate, key).
    pub nodes: Vec<(String, String, String)>,
}

/// Generates a CA and one certificate per node in `nodes`, each valid for both ends of a
/// connection (server and client authentication).
pub fn issue(nodes: &[NodeKind]) -> Result<IssuedCerts, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| format!("certificate generation: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    // A name of its own, so a certificate of another cluster's CA is refused as of an unknown
    // issuer, not as a bad signature (the same name would make them look alike).
    let serial = crate::events::unix_nanos();
    ca.distinguished_name
        .push(DnType::CommonName, format!("rill cluster CA {serial:x}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let (ca_cert_pem, ca_key_pem) = (ca_cert.pem(), ca_key.serialize_pem());
    let issuer = Issuer::new(ca, ca_key);
    let mut issued = Vec::new();
    for node in nodes {
        let names = names_for(node);
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(names.clone()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        let stem = match node {
            NodeKind::TaskManager(name) | NodeKind::Named(name) => name.clone(),
            NodeKind::Embedded { .. } => "embedded".to_owned(),
        };
        issued.push((stem, cert.pem(), key.serialize_pem()));
    }
    Ok(IssuedCerts {
        ca_cert: ca_cert_pem,
        ca_key: ca_key_pem,
        nodes: issued,
    })
}

/// A CA and one certificate for an embedded cluster of `taskmanagers` TaskManagers, written
/// under `dir`; returns `config` with TLS on over them.
pub fn embedded(
    config: &Configuration,
    taskmanagers: u32,
    dir: &Path,
) -> Result<Configuration, String> {
    let issued = issue(&[NodeKind::Embedded { taskmanagers }])?;
    write_issued(&issued, dir).map_err(|e| format!("certificates in {}: {e}", dir.display()))?;
    let path = |name: &str| dir.join(name).display().to_string();
    let mut config = config.clone();
    for (key, value) in [
        (crate::config::keys::SSL_ENABLED, "true".to_owned()),
        (crate::config::keys::SSL_CA, path("ca.pem")),
        (crate::config::keys::SSL_CERT, path("embedded.pem")),
        (crate::config::keys::SSL_KEY, path("embedded.key")),
    ] {
        config.set(key, &value).map_err(|e| e.to_string())?;
    }
    Ok(config)
}

/// Writes `issued` under `dir`: `ca.pem`, `ca.key`, and `<node>.pem` / `<node>.key` per node
/// (keys readable by the owner only).
pub fn write_issued(issued: &IssuedCerts, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut write = |name: String, text: &str, secret: bool| -> std::io::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        if secret {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        written.push(path);
        Ok(())
    };
    write("ca.pem".into(), &issued.ca_cert, false)?;
    write("ca.key".into(), &issued.ca_key, true)?;
    for (stem, cert, key) in &issued.nodes {
        write(format!("{stem}.pem"), cert, false)?;
        write(format!("{stem}.key"), key, true)?;
    }
    Ok(written)
}
