//! Subpartition claim grants: the JobManager's word that one consumer attempt, on one
//! TaskManager, may read one subpartition of one producer attempt.
//!
//! A producer does not know who its consumers are (the JobManager deploys and replaces them),
//! so a data-plane peer could otherwise ask for any subpartition it can name and take it from
//! the consumer it was meant for. The JobManager therefore hands every consumer, with each
//! input location, a grant: an HMAC-SHA256, under the *producer's TaskManager's* claim key, of
//! the subpartition, the consumer attempt and the consumer's TaskManager name. The producer's
//! data server admits a request only if the grant matches what the request names and the name
//! the connection authenticated as (with TLS, its certificate's). No other TaskManager can make
//! one: each TaskManager's key is derived from a master key only the JobManager holds, and
//! reaches its TaskManager alone, in the reply to its registration.
//!
//! Grants are stateless, so no message ordering matters: a replacement consumer can claim the
//! moment it is deployed, whether or not the producer has heard of the replacement.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use super::partition::SubpartitionKey;
use crate::ids::ExecutionAttemptId;
use crate::util::hmac_sha256 as mac;

/// Domain tags: a key or a grant made for one purpose never verifies as the other.
const KEY_TAG: &[u8] = b"rill/claim-key/v1\0";
const GRANT_TAG: &[u8] = b"rill/claim-grant/v1\0";

/// The JobManager's master key, from which each TaskManager's [`ClaimKey`] is derived.
#[derive(Clone)]
pub struct ClaimKeys {
    master: [u8; 32],
}

impl ClaimKeys {
    /// A master key for this JobManager process.
    ///
    /// Real build: 32 bytes of OS entropy, the one use of it in the runtime (a key must be
    /// unpredictable; determinism rule 2 is about decisions, and no decision depends on it).
    /// Under the simulator, derived from the cluster secret instead so a seed replays: the
    /// simulated cluster runs without TLS, where peers' names are claimed anyway, so what the
    /// simulator tests is that grants reach the right consumers through every race, not the
    /// key's secrecy (ARCHITECTURE.md, "Security: what the simulator does not run").
    pub fn generate(secret: &str) -> ClaimKeys {
        #[cfg(not(madsim))]
        let master = {
            let _ = secret;
            let mut master = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut master);
            master
        };
        #[cfg(madsim)]
        let master = mac(b"rill/claim-master/simulated", &[secret.as_bytes()]);
        ClaimKeys { master }
    }

    /// A master key given outright (tests).
    pub fn from_master(master: [u8; 32]) -> ClaimKeys {
        ClaimKeys { master }
    }

    /// The claim key of the TaskManager named `taskmanager`: the same for every registration
    /// of that name with this JobManager.
    pub fn key_for(&self, taskmanager: &str) -> ClaimKey {
        ClaimKey(mac(&self.master, &[KEY_TAG, taskmanager.as_bytes()]))
    }
}

impl fmt::Debug for ClaimKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimKeys(..)")
    }
}

/// A producer TaskManager's key: makes and checks grants for its subpartitions.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClaimKey([u8; 32]);

impl ClaimKey {
    /// The grant that lets `consumer`, running on the TaskManager named `consumer_tm`, read
    /// subpartition `key`.
    pub fn grant(
        &self,
        key: &SubpartitionKey,
        consumer_tm: &str,
        consumer: ExecutionAttemptId,
    ) -> ClaimGrant {
        let p = key.producer;
        let numbers = [
            key.job.0,
            p.vertex.0.into(),
            p.subtask.into(),
            p.attempt.into(),
            key.edge.0.into(),
            key.index.into(),
            consumer.vertex.0.into(),
            consumer.subtask.into(),
            consumer.attempt.into(),
        ];
        let mut fixed = [0u8; 9 * 8];
        for (chunk, n) in fixed.chunks_exact_mut(8).zip(numbers) {
            chunk.copy_from_slice(&n.to_le_bytes());
        }
        // The name comes last and unprefixed: everything before it has a fixed length.
        ClaimGrant(mac(&self.0, &[GRANT_TAG, &fixed, consumer_tm.as_bytes()]))
    }

    /// Whether `grant` lets `consumer` on `consumer_tm` read `key` (in constant time).
    pub fn admits(
        &self,
        grant: &ClaimGrant,
        key: &SubpartitionKey,
        consumer_tm: &str,
        consumer: ExecutionAttemptId,
    ) -> bool {
        let wanted = self.grant(key, consumer_tm, consumer);
        wanted.0.ct_eq(&grant.0).into()
    }
}

impl fmt::Debug for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimKey(..)")
    }
}

/// The JobManager's permission for one consumer attempt to read one subpartition. All zeros
/// (the default) is no grant: it admits nothing.
#[derive(Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimGrant(pub [u8; 32]);

impl fmt::Debug for ClaimGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimGrant({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// A data server's view of its TaskManager's claim key: none until the TaskManager has
/// registered, replaced when it registers again (with a restarted JobManager, a new key).
#[derive(Clone)]
pub struct ClaimCheck {
    key: watch::Sender<Option<ClaimKey>>,
}

impl Default for ClaimCheck {
    fn default() -> Self {
        ClaimCheck {
            key: watch::Sender::new(None),
        }
    }
}

impl ClaimCheck {
    /// A check that admits by `key` from the start (tests, embedded servers).
    pub fn with_key(key: ClaimKey) -> ClaimCheck {
        let check = ClaimCheck::default();
        check.set(key);
        check
    }

    /// The key from the TaskManager's latest registration.
    pub fn set(&self, key: ClaimKey) {
        self.key.send_replace(Some(key));
    }

    /// Whether `grant` admits the claim, waiting up to `within` for a key: a consumer deployed
    /// just after this TaskManager registered may ask before the registration's reply has been
    /// read here. `false` when no key came in time.
    pub async fn admits(
        &self,
        within: Duration,
        grant: &ClaimGrant,
        key: &SubpartitionKey,
        consumer_tm: &str,
        consumer: ExecutionAttemptId,
    ) -> bool {
        let mut rx = self.key.subscribe();
        let Ok(Ok(current)) = tokio::time::timeout(within, rx.wait_for(Option::is_some)).await
        else {
            return false;
        };
        current
            .as_ref()
            .is_some_and(|k| k.admits(grant, key, consumer_tm, consumer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EdgeId, JobId, VertexId};

    fn attempt(vertex: u32, subtask: u32, attempt: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            vertex: VertexId(vertex),
            subtask,
            attempt,
        }
    }

    fn key() -> SubpartitionKey {
        SubpartitionKey {
            job: JobId(1),
            producer: attempt(0, 2, 0),
            edge: EdgeId(0),
            index: 3,
        }
    }

    #[test]
    fn a_grant_admits_exactly_what_it_names() {
        let keys = ClaimKeys::from_master([7; 32]);
        let producer_tm = keys.key_for("tm-1");
        let consumer = attempt(1, 3, 0);
        let grant = producer_tm.grant(&key(), "tm-2", consumer);
        assert!(producer_tm.admits(&grant, &key(), "tm-2", consumer));
        // Another TaskManager presenting it, another attempt, another subpartition, another
        // producer attempt: refused.
        assert!(!producer_tm.admits(&grant, &key(), "tm-3", consumer));
        assert!(!producer_tm.admits(&grant, &key(), "tm-2", attempt(1, 3, 1)));
        let other_index = SubpartitionKey { index: 4, ..key() };
        assert!(!producer_tm.admits(&grant, &other_index, "tm-2", consumer));
        let replayed = SubpartitionKey {
            producer: attempt(0, 2, 1),
            ..key()
        };
        assert!(!producer_tm.admits(&grant, &replayed, "tm-2", consumer));
        // No grant at all.
        assert!(!producer_tm.admits(&ClaimGrant::default(), &key(), "tm-2", consumer));
    }

    #[test]
    fn one_taskmanagers_key_makes_no_grant_for_another() {
        let keys = ClaimKeys::from_master([7; 32]);
        let consumer = attempt(1, 3, 0);
        // tm-3 holds its own key and forges a grant for tm-1's subpartition.
        let forged = keys.key_for("tm-3").grant(&key(), "tm-3", consumer);
        assert!(!keys
            .key_for("tm-1")
            .admits(&forged, &key(), "tm-3", consumer));
        // Another JobManager's key for the same name is another key.
        let other = ClaimKeys::from_master([8; 32]).key_for("tm-1");
        let stale = other.grant(&key(), "tm-2", consumer);
        assert!(!keys
            .key_for("tm-1")
            .admits(&stale, &key(), "tm-2", consumer));
    }

    #[tokio::test]
    async fn a_check_waits_for_its_key_and_refuses_without_one() {
        let keys = ClaimKeys::from_master([1; 32]);
        let consumer = attempt(1, 3, 0);
        let grant = keys.key_for("tm-1").grant(&key(), "tm-2", consumer);
        let check = ClaimCheck::default();
        let short = Duration::from_millis(50);
        assert!(!check.admits(short, &grant, &key(), "tm-2", consumer).await);
        let later = check.clone();
        let k = keys.key_for("tm-1");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.set(k);
        });
        let long = Duration::from_secs(5);
        assert!(check.admits(long, &grant, &key(), "tm-2", consumer).await);
    }
}
