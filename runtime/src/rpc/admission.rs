//! How many connections may be in their handshake at once, in all and per peer address: a
//! stranger who opens connections and sends nothing holds each for the handshake timeout at
//! most, and only up to these caps, so it cannot use up the process's file descriptors and
//! lock the cluster's own nodes out. A connection counts from its accept until it has
//! authenticated (or failed to).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::util::lock;

/// Connections in their handshake at once, from everyone.
pub const MAX_UNAUTHENTICATED: usize = 256;
/// Connections in their handshake at once, from one address.
pub const MAX_UNAUTHENTICATED_PER_PEER: usize = 32;
/// At most one warning line per this interval about refused connections.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The caps of one listener.
#[derive(Clone)]
pub struct Admission {
    state: Arc<Mutex<State>>,
    global: usize,
    per_peer: usize,
}

#[derive(Default)]
struct State {
    total: usize,
    by_peer: BTreeMap<IpAddr, usize>,
    refused_since_warning: u64,
    last_warning: Option<Instant>,
}

/// A place among the unauthenticated: given back when dropped.
pub struct Ticket {
    admission: Admission,
    peer: IpAddr,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_PEER)
    }
}

impl Admission {
    /// Caps of `global` connections in all and `per_peer` from one address.
    pub fn new(global: usize, per_peer: usize) -> Self {
        Admission {
            state: Arc::default(),
            global,
            per_peer,
        }
    }

    /// A place for a connection from `peer`, or `None` when a cap is reached (close it at
    /// once). Refusals are logged, at most one line per ten seconds with how many there were.
    pub fn try_enter(&self, peer: IpAddr, listener: &str) -> Option<Ticket> {
        let mut s = lock(&self.state);
        let from_peer = s.by_peer.get(&peer).copied().unwrap_or(0);
        if s.total >= self.global || from_peer >= self.per_peer {
            s.refused_since_warning += 1;
            let now = Instant::now();
            if s.last_warning.is_none_or(|t| now >= t + WARN_EVERY) {
                let refused = std::mem::take(&mut s.refused_since_warning);
                s.last_warning = Some(now);
                tracing::warn!(listener, %peer, refused, in_handshake = s.total, "connections refused: too many in their handshake");
            }
            return None;
        }
        s.total += 1;
        *s.by_peer.entry(peer).or_default() += 1;
        Some(Ticket {
            admission: self.clone(),
            peer,
        })
    }

    /// Connections holding a place now.
    pub fn in_handshake(&self) -> usize {
        lock(&self.state).total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = lock(&self.admission.state);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                s.by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn caps_hold_per_peer_and_in_all_and_places_come_back() {
        let admission = Admission::new(3, 2);
        let a1 = admission.try_enter(ip(1), "test").expect("first");
        let _a2 = admission.try_enter(ip(1), "test").expect("second");
        assert!(admission.try_enter(ip(1), "test").is_none(), "per peer");
        let _b1 = admission.try_enter(ip(2), "test").expect("another peer");
        assert!(admission.try_enter(ip(3), "test").is_none(), "in all");
        drop(a1);
        assert_eq!(admission.in_handshake(), 2);
        assert!(
            admission.try_enter(ip(3), "test").is_some(),
            "a place came back"
        );
    }
}
