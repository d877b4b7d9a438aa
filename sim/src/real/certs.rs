//! The TLS identities of a real run: a CA of its own and a certificate for every node, so the
//! processes run as production does (mutual TLS, names bound to certificates, the secret from
//! the environment), not in the plaintext mode the simulator runs.

use std::path::{Path, PathBuf};

use rill::config::keys::{CLUSTER_SECRET, SINK_WRITE_KEY, SSL_CA, SSL_CERT, SSL_ENABLED, SSL_KEY};
use rill::config::Configuration;
use rill::rpc::tls::{cluster_nodes, issue, write_issued};

use super::RealError;

/// The secret a run's processes share, through [`rill::cli::SECRET_ENV`]: fresh OS entropy
/// per run, never on a command line. (The write key is drawn apart from it: a TaskManager holds
/// the secret and must not be able to work the write key out from it.)
pub fn run_secret() -> String {
    format!("rill-real-run-{}", rill::util::fresh_key_hex())
}

/// The nodes that hold the sink-store write key: the JobManager grants, the store checks.
const WRITE_KEY_HOLDERS: [&str; 2] = ["jobmanager", "sink-store"];

/// Certificates issued for one run, under its directory.
pub struct RunCerts {
    dir: PathBuf,
    secret: String,
    write_key: String,
    /// Whether the processes run TLS with these certificates (else the plaintext mode).
    tls: bool,
}

impl RunCerts {
    /// A CA and certificates for the JobManager, the client, the three services and
    /// TaskManagers `tm-1` to `tm-{taskmanagers}`, written under `dir/tls`; `tls` says whether
    /// the nodes' configurations use them.
    pub fn issue(dir: &Path, taskmanagers: u32, tls: bool) -> Result<RunCerts, RealError> {
        let nodes = cluster_nodes((1..=taskmanagers).map(|i| format!("tm-{i}")));
        let dir = dir.join("tls");
        let issued = issue(&nodes).map_err(RealError::Job)?;
        write_issued(&issued, &dir).map_err(|source| RealError::Start {
            what: format!("the run's certificates in {}", dir.display()),
            source,
        })?;
        Ok(RunCerts {
            dir,
            secret: run_secret(),
            write_key: rill::util::fresh_key_hex(),
            tls,
        })
    }

    /// The secret the run's processes share.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `base` for the node whose certificate is `stem` (`jobmanager`, `tm-2`, `sink-store`..):
    /// the run's secret, for the JobManager and the sink store the run's sink-store write key,
    /// and TLS on with its files unless the run is plaintext.
    pub fn config_for(&self, base: &Configuration, stem: &str) -> Result<Configuration, RealError> {
        let path = |name: String| self.dir.join(name).display().to_string();
        let bad = |e: rill::config::ConfigError| RealError::Job(e.to_string());
        let mut config = base.clone();
        config.set(CLUSTER_SECRET, &self.secret).map_err(bad)?;
        if WRITE_KEY_HOLDERS.contains(&stem) {
            config.set(SINK_WRITE_KEY, &self.write_key).map_err(bad)?;
        }
        if !self.tls {
            return Ok(config);
        }
        config.set(SSL_ENABLED, "true").map_err(bad)?;
        config.set(SSL_CA, &path("ca.pem".into())).map_err(bad)?;
        config
            .set(SSL_CERT, &path(format!("{stem}.pem")))
            .map_err(bad)?;
        config
            .set(SSL_KEY, &path(format!("{stem}.key")))
            .map_err(bad)?;
        Ok(config)
    }
}
