//! The control plane: length-prefixed frames over TCP (TLS with mutual authentication where
//! configured) carrying serde messages, after a handshake that checks protocol version,
//! cluster id, the shared secret and, with TLS, the peer's identity.
//!
//! The JobManager's and TaskManagers' messages themselves live in `crate::messages`, above
//! `api`, `network` and `state`; this module sits below them (the data plane, the checkpoint
//! store and the connectors' services speak through it) and re-exports the messages, so
//! `rill::rpc::{TmToJm, JobStatusReport, ..}` and `rill::rpc::messages` keep working.

pub mod admission;
pub mod frame;
pub mod handshake;
mod pending;
pub mod secure;
pub mod service;
#[cfg(not(madsim))]
pub mod tls;

pub use crate::messages;
pub use crate::messages::*;
pub use frame::{framed, FrameReader, FrameWriter, RpcError};
pub use handshake::{Credentials, PeerRole};
pub use secure::{admit, connect, Tls};

use crate::config::Configuration;

/// The credentials every process of a cluster shares, from its configuration, with this
/// node's TLS identity where TLS is enabled.
pub fn credentials(config: &Configuration) -> Credentials {
    Credentials::new(config.cluster_id(), config.cluster_secret())
        .with_tls(Tls::from_config(config))
}
