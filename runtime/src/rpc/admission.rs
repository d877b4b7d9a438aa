//! How many connections may be in their handshake at once, in all and per peer: a stranger
//! who opens connections and sends nothing holds each for the handshake timeout at most, and
//! only up to these caps, so it cannot use up the process's file descriptors and lock the
//! cluster's own nodes out. A connection counts from its accept until it has authenticated (or
//! failed to).
//!
//! A peer is an IPv4 address or an IPv6 /64 (what one host is usually given, so one host
//! cannot multiply itself through its own prefix). When every place is taken, a newcomer from a
//! peer with fewer places than the peer holding the most takes that peer's oldest place: its
//! connection is closed ([`Ticket::evicted`]). So a few addresses that fill the listener
//! cannot keep a node of the cluster from its handshake; they can only share it.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::util::lock;

/// Connections in their handshake at once, from everyone.
pub const MAX_UNAUTHENTICATED: usize = 256;
/// Connections in their handshake at once, from one peer (an IPv4 address, an IPv6 /64).
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

/// Where connections come from, as the caps count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl Peer {
    fn of(ip: IpAddr) -> Peer {
        match ip {
            IpAddr::V4(v4) => Peer::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Peer::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Peer::V6(prefix)
                }
            },
        }
    }
}

#[derive(Default)]
struct State {
    total: usize,
    /// Each peer's places, oldest first: (ticket id, its eviction signal).
    by_peer: BTreeMap<Peer, VecDeque<(u64, Arc<Notify>)>>,
    next_id: u64,
    refused_since_warning: u64,
    last_warning: Option<Instant>,
}

impl State {
    fn held_by(&self, peer: &Peer) -> usize {
        self.by_peer.get(peer).map_or(0, VecDeque::len)
    }

    /// Takes the oldest place of the peer holding the most, if it holds more than `peer`
    /// would with one more (the newcomer's share must stay the smaller); signals its holder.
    fn evict_for(&mut self, peer: &Peer) -> bool {
        let would_hold = self.held_by(peer) + 1;
        let Some((&largest, _)) = self
            .by_peer
            .iter()
            .filter(|(p, places)| *p != peer && places.len() > would_hold)
            .max_by_key(|(_, places)| places.len())
        else {
            return false;
        };
        let places = self.by_peer.get_mut(&largest).expect("found above");
        let (_, signal) = places.pop_front().expect("holds more than one");
        signal.notify_one();
        self.total -= 1;
        true
    }

    fn warn_refused(&mut self, listener: &str, peer: IpAddr) {
        self.refused_since_warning += 1;
        let now = Instant::now();
        if self.last_warning.is_none_or(|t| now >= t + WARN_EVERY) {
            let refused = std::mem::take(&mut self.refused_since_warning);
            self.last_warning = Some(now);
            tracing::warn!(listener, %peer, refused, in_handshake = self.total, "connections refused: too many in their handshake");
        }
    }
}

/// A place among the unauthenticated: given back when dropped.
pub struct Ticket {
    admission: Admission,
    peer: Peer,
    id: u64,
    evicted: Arc<Notify>,
}

impl Ticket {
    /// Resolves when the place was given to a newcomer from a peer with fewer: the
    /// handshake holding it should end.
    pub async fn evicted(&self) {
        self.evicted.notified().await
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_PEER)
    }
}

impl Admission {
    /// Caps of `global` connections in all and `per_peer` from one peer.
    pub fn new(global: usize, per_peer: usize) -> Self {
        Admission {
            state: Arc::default(),
            global,
            per_peer,
        }
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached (close it at
    /// once). Refusals are logged, at most one line per ten seconds with how many there were.
    pub fn try_enter(&self, ip: IpAddr, listener: &str) -> Option<Ticket> {
        let peer = Peer::of(ip);
        let mut s = lock(&self.state);
        let refused =
            s.held_by(&peer) >= self.per_peer || (s.total >= self.global && !s.evict_for(&peer));
        if refused {
            s.warn_refused(listener, ip);
            return None;
        }
        let (id, evicted) = (s.next_id, Arc::new(Notify::new()));
        s.next_id += 1;
        s.total += 1;
        s.by_peer
            .entry(peer)
            .or_default()
            .push_back((id, evicted.clone()));
        Some(Ticket {
            admission: self.clone(),
            peer,
            id,
            evicted,
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
        let Some(places) = s.by_peer.get_mut(&self.peer) else {
            return;
        };
        // An evicted place was already given back.
        let Some(at) = places.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        places.remove(at);
        if places.is_empty() {
            s.by_peer.remove(&self.peer);
        }
        s.total -= 1;
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
        let _a1 = admission.try_enter(ip(1), "test").expect("first");
        let _a2 = admission.try_enter(ip(1), "test").expect("second");
        assert!(admission.try_enter(ip(1), "test").is_none(), "per peer");
        let b1 = admission.try_enter(ip(2), "test").expect("another peer");
        // Full, and b holding one more would hold as many as a: refused.
        assert!(admission.try_enter(ip(2), "test").is_none(), "in all");
        drop(b1);
        assert_eq!(admission.in_handshake(), 2);
        assert!(
            admission.try_enter(ip(3), "test").is_some(),
            "a place came back"
        );
    }

    #[tokio::test]
    async fn a_newcomer_takes_the_oldest_place_of_the_peer_holding_the_most() {
        let admission = Admission::new(4, 3);
        let a: Vec<Ticket> = (0..3)
            .map(|_| admission.try_enter(ip(1), "test").expect("a"))
            .collect();
        let _b = admission.try_enter(ip(2), "test").expect("b");
        // Full: c has none, a has three, so a's oldest goes.
        let _c = admission
            .try_enter(ip(3), "test")
            .expect("c takes a place from a");
        assert_eq!(admission.in_handshake(), 4);
        tokio::time::timeout(Duration::from_secs(1), a[0].evicted())
            .await
            .expect("a's oldest place was evicted");
        // Full again, and no peer holds more than d would with one more than b's: refused.
        assert!(admission.try_enter(ip(2), "test").is_none());
        // The evicted ticket's drop gives nothing back twice.
        let mut a = a.into_iter();
        drop(a.next());
        assert_eq!(admission.in_handshake(), 4);
        drop(a);
        assert_eq!(admission.in_handshake(), 2);
    }

    #[test]
    fn an_ipv6_64_is_one_peer_and_a_mapped_ipv4_is_its_address() {
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, last]);
        assert_eq!(Peer::of(host(1)), Peer::of(host(0xffff)));
        assert_ne!(
            Peer::of(host(1)),
            Peer::of(IpAddr::from([0x2001, 0xdb8, 1, 3, 0, 0, 0, 1]))
        );
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(Peer::of(mapped), Peer::of(ip(7)));
        let admission = Admission::new(8, 2);
        let _one = admission.try_enter(host(1), "test").expect("first");
        let _two = admission.try_enter(host(2), "test").expect("second");
        assert!(
            admission.try_enter(host(3), "test").is_none(),
            "the same /64"
        );
    }
}
