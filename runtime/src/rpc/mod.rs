//! The control plane: length-prefixed frames over TCP carrying serde messages, after a
//! handshake that checks protocol version, cluster id and the shared secret.

pub mod frame;
pub mod handshake;
pub mod messages;
pub mod service;

pub use frame::{framed, FrameReader, FrameWriter, RpcError};
pub use handshake::{Credentials, PeerRole};
pub use messages::*;

use crate::config::Configuration;

/// The credentials every process of a cluster shares, from its configuration.
pub fn credentials(config: &Configuration) -> Credentials {
    Credentials::new(config.cluster_id(), config.cluster_secret())
}
