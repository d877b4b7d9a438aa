//! The control plane: length-prefixed frames over TCP carrying serde messages, after a
//! handshake that checks protocol version, cluster id and the shared secret.
//!
//! The JobManager's and TaskManagers' messages themselves live in `crate::messages`, above
//! `api`, `network` and `state`; this module sits below them (the data plane, the checkpoint
//! store and the connectors' services speak through it) and re-exports the messages, so
//! `rill::rpc::{TmToJm, JobStatusReport, ..}` and `rill::rpc::messages` keep working.

pub mod frame;
pub mod handshake;
pub mod service;

pub use crate::messages;
pub use crate::messages::*;
pub use frame::{framed, FrameReader, FrameWriter, RpcError};
pub use handshake::{Credentials, PeerRole};

use crate::config::Configuration;

/// The credentials every process of a cluster shares, from its configuration.
pub fn credentials(config: &Configuration) -> Credentials {
    Credentials::new(config.cluster_id(), config.cluster_secret())
}
