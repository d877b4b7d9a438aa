//! Sink-store write grants: the JobManager's word that one sink attempt, on one TaskManager,
//! may write one sink subtask of one job.
//!
//! A sink store serves every job's sinks, and the writer of the newest attempt of a sink
//! subtask takes it over (it fences the older ones, commits and aborts their transactions). So
//! a peer that may write at all could otherwise open a writer with a huge attempt number for
//! another job's sink and fence it, commit its staged output, or mark it complete. The
//! JobManager therefore deploys every sink subtask with a grant: an HMAC-SHA256, under a key
//! only it and the sink store hold (`security.sink-store.write-key`), of the job, the sink,
//! the subtask, the attempt and the TaskManager it runs on. The store applies a write only if
//! its grant matches what the write names and the name its connection authenticated as (with
//! TLS, the certificate's), so a TaskManager can write only what the JobManager put there.
//! Without TLS the name is only what the hello claims and grants cross the wire in the clear:
//! a grant then binds nothing against a peer that can watch the network.
//!
//! Like claim grants (`network::claim`) they are stateless: a replacement attempt writes the
//! moment it is deployed. A grant outlives a JobManager restart, but the job it names does not
//! come back: each JobManager process numbers its jobs from a random incarnation.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::config::{keys, Configuration};
use crate::ids::JobId;
use crate::util::hmac_sha256 as mac;

/// Domain tags: a key or a grant made for one purpose never verifies as another.
const KEY_TAG: &[u8] = b"rill/sink-write-key/v1\0";
const GRANT_TAG: &[u8] = b"rill/sink-write-grant/v1\0";

/// The key the JobManager makes write grants with and the sink store checks them with.
#[derive(Clone)]
pub struct WriteKey([u8; 32]);

impl WriteKey {
    /// The key `security.sink-store.write-key` names, if it is set. A node that has none
    /// neither issues grants (JobManager) nor asks for them (sink store).
    pub fn from_config(config: &Configuration) -> Option<WriteKey> {
        config
            .get_raw(keys::SINK_WRITE_KEY)
            .map(WriteKey::from_text)
    }

    /// The key derived from a shared text (any length; a long random one, as `rill certs`
    /// writes).
    pub fn from_text(text: &str) -> WriteKey {
        WriteKey(mac(KEY_TAG, &[text.trim().as_bytes()]))
    }

    /// The grant that lets `target` write.
    pub fn grant(&self, target: &WriteTarget<'_>) -> WriteGrant {
        let numbers = [
            target.job.0,
            target.subtask.into(),
            target.attempt.into(),
            target.sink.len() as u64,
        ];
        let mut fixed = [0u8; 4 * 8];
        for (chunk, n) in fixed.chunks_exact_mut(8).zip(numbers) {
            chunk.copy_from_slice(&n.to_le_bytes());
        }
        // The sink's name is length-prefixed; the TaskManager's comes last, so no two targets
        // encode alike.
        WriteGrant(mac(
            &self.0,
            &[
                GRANT_TAG,
                &fixed,
                target.sink.as_bytes(),
                target.taskmanager.as_bytes(),
            ],
        ))
    }

    /// Whether `grant` lets `target` write (in constant time).
    pub fn admits(&self, grant: &WriteGrant, target: &WriteTarget<'_>) -> bool {
        self.grant(target).0.ct_eq(&grant.0).into()
    }
}

impl fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriteKey(..)")
    }
}

/// What a write grant names: one attempt of one sink subtask, on one TaskManager.
#[derive(Debug, Clone, Copy)]
pub struct WriteTarget<'a> {
    /// The job.
    pub job: JobId,
    /// The sink operator's name.
    pub sink: &'a str,
    /// The sink subtask.
    pub subtask: u32,
    /// The attempt number.
    pub attempt: u32,
    /// The TaskManager it runs on, as its connections authenticate.
    pub taskmanager: &'a str,
}

/// The JobManager's permission for one sink attempt to write. All zeros (the default) is no
/// grant: a store that checks grants refuses it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteGrant(pub [u8; 32]);

impl fmt::Debug for WriteGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteGrant({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> WriteTarget<'static> {
        WriteTarget {
            job: JobId(7),
            sink: "out",
            subtask: 2,
            attempt: 1,
            taskmanager: "tm-1",
        }
    }

    #[test]
    fn a_grant_admits_exactly_what_it_names() {
        let key = WriteKey::from_text("shared");
        let grant = key.grant(&target());
        assert!(key.admits(&grant, &target()));
        let others = [
            WriteTarget {
                job: JobId(8),
                ..target()
            },
            WriteTarget {
                sink: "out2",
                ..target()
            },
            WriteTarget {
                subtask: 3,
                ..target()
            },
            WriteTarget {
                attempt: u32::MAX,
                ..target()
            },
            WriteTarget {
                taskmanager: "tm-2",
                ..target()
            },
        ];
        for other in others {
            assert!(!key.admits(&grant, &other), "{other:?} admitted");
        }
        assert!(!key.admits(&WriteGrant::default(), &target()));
    }

    #[test]
    fn another_key_makes_no_grant_for_this_one() {
        let forged = WriteKey::from_text("guessed").grant(&target());
        assert!(!WriteKey::from_text("shared").admits(&forged, &target()));
    }

    #[test]
    fn sink_and_taskmanager_names_cannot_trade_bytes() {
        let key = WriteKey::from_text("shared");
        let a = WriteTarget {
            sink: "ab",
            taskmanager: "c",
            ..target()
        };
        let b = WriteTarget {
            sink: "a",
            taskmanager: "bc",
            ..target()
        };
        assert!(!key.admits(&key.grant(&a), &b));
    }
}
