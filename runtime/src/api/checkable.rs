//! What a harness can verify of a job's output, said by the job's output record type.
//!
//! Checkers that need nothing from the job (stalls, recovery, balance, liveness, fencing) run
//! on every job, and so does exactly-once against a fault-free reference run of the same
//! scenario and seed (the committed outputs must be the same records; per key in order when
//! the output says its key). The delivery checks that compare outputs with the *input*
//! (lossy- and fault-accounted: which records were lost, which replayed, and was a fault
//! active then) need the output to name the input record it came from: a job whose output
//! type implements [`CheckableOutput`] says what it offers, and its entry in the job registry
//! carries the resulting [`OutputChecks`]. The harness asks that, never the job's name.

use serde::de::DeserializeOwned;

use super::operator::Traceable;

/// An output record type that tells checkers what they may assume about it.
pub trait CheckableOutput: Traceable + DeserializeOwned + std::fmt::Debug + 'static {
    /// Every input record produces exactly one output, naming it ([`Traceable::origin`]):
    /// the output can be checked for loss and duplicates against the input.
    const ONE_PER_INPUT: bool;
    /// Whether [`CheckableOutput::running_count`] reports per-key running counts.
    const RUNNING_COUNTS: bool = false;

    /// (key, running count): each key's counts must run 1..=n when nothing was lost or
    /// replayed.
    fn running_count(&self) -> Option<(u64, u64)> {
        None
    }

    /// Whether [`CheckableOutput::key`] names each output's key: exactly-once then compares
    /// each key's outputs in order with the reference run's, instead of all outputs as one
    /// multiset (and can judge a run that was cut off before its input ended: each key's
    /// outputs must then be a prefix of the reference's).
    const KEYED: bool = false;

    /// The key this output belongs to. Outputs of one key must leave the job in a
    /// deterministic order (one sink subtask per key, as after a `key_by`).
    fn key(&self) -> Option<u64> {
        None
    }
}

/// Decodes a serialized output record's (key, running count).
type RunningCountDecoder = fn(&[u8]) -> Option<(u64, u64)>;
/// Decodes a serialized output record's key.
type KeyDecoder = fn(&[u8]) -> Option<u64>;
/// A serialized output record as people read it (its `Debug` form), for evidence.
type Describer = fn(&[u8]) -> Option<String>;

/// What can be checked of one job's output, as data (the job registry holds one per job).
#[derive(Clone, Copy, Debug)]
pub struct OutputChecks {
    one_per_input: bool,
    running_count: Option<RunningCountDecoder>,
    key: Option<KeyDecoder>,
    describe: Option<Describer>,
}

impl OutputChecks {
    /// Outputs a checker can say nothing about beyond their arrival and their bytes
    /// (exactly-once against a reference run still applies; evidence shows bytes).
    pub const OPAQUE: OutputChecks = OutputChecks {
        one_per_input: false,
        running_count: None,
        key: None,
        describe: None,
    };

    /// Outputs of type `T` that say nothing of their provenance: as [`OutputChecks::OPAQUE`],
    /// but evidence shows the records as `T`'s `Debug` form.
    pub const fn opaque<T: DeserializeOwned + std::fmt::Debug + 'static>() -> Self {
        OutputChecks {
            describe: Some(describe::<T> as Describer),
            ..OutputChecks::OPAQUE
        }
    }

    /// What `T` says of itself.
    pub const fn of<T: CheckableOutput>() -> Self {
        OutputChecks {
            one_per_input: T::ONE_PER_INPUT,
            running_count: if T::RUNNING_COUNTS {
                Some(decode_running_count::<T> as RunningCountDecoder)
            } else {
                None
            },
            key: if T::KEYED {
                Some(decode_key::<T> as KeyDecoder)
            } else {
                None
            },
            describe: Some(describe::<T> as Describer),
        }
    }

    /// Whether outputs name their key (exactly-once compares per key in order).
    pub fn keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The key a serialized output record names, if the output type names keys.
    pub fn key(&self, payload: &[u8]) -> Option<u64> {
        self.key.and_then(|decode| decode(payload))
    }

    /// A serialized output record as evidence: its `Debug` form when the type is known,
    /// else its length and first bytes.
    pub fn describe(&self, payload: &[u8]) -> String {
        match self.describe.and_then(|d| d(payload)) {
            Some(text) => text,
            None => {
                let head: Vec<String> = payload
                    .iter()
                    .take(16)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let more = if payload.len() > 16 { " ..." } else { "" };
                format!("{} bytes [{}{more}]", payload.len(), head.join(" "))
            }
        }
    }

    /// Whether every input record produces exactly one output naming it.
    pub fn one_per_input(&self) -> bool {
        self.one_per_input
    }

    /// Whether outputs report per-key running counts.
    pub fn has_running_counts(&self) -> bool {
        self.running_count.is_some()
    }

    /// The running count a serialized output record reports, if it reports one.
    pub fn running_count(&self, payload: &[u8]) -> Option<(u64, u64)> {
        self.running_count.and_then(|decode| decode(payload))
    }
}

fn decode_running_count<T: CheckableOutput>(payload: &[u8]) -> Option<(u64, u64)> {
    bincode::deserialize::<T>(payload).ok()?.running_count()
}

fn decode_key<T: CheckableOutput>(payload: &[u8]) -> Option<u64> {
    bincode::deserialize::<T>(payload).ok()?.key()
}

fn describe<T: DeserializeOwned + std::fmt::Debug>(payload: &[u8]) -> Option<String> {
    Some(format!("{:?}", bincode::deserialize::<T>(payload).ok()?))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::api::Origin;

    #[derive(Debug, Serialize, Deserialize)]
    struct Counted {
        key: u64,
        n: u64,
        origin: Origin,
    }

    impl Traceable for Counted {
        fn origin(&self) -> Option<Origin> {
            Some(self.origin)
        }
    }

    impl CheckableOutput for Counted {
        const ONE_PER_INPUT: bool = true;
        const RUNNING_COUNTS: bool = true;
        fn running_count(&self) -> Option<(u64, u64)> {
            Some((self.key, self.n))
        }
        const KEYED: bool = true;
        fn key(&self) -> Option<u64> {
            Some(self.key)
        }
    }

    #[test]
    fn a_record_type_says_what_can_be_checked() {
        let checks = OutputChecks::of::<Counted>();
        assert!(checks.one_per_input() && checks.has_running_counts());
        let origin = Origin {
            partition: 0,
            offset: 3,
        };
        let bytes = bincode::serialize(&Counted {
            key: 7,
            n: 2,
            origin,
        })
        .unwrap();
        assert_eq!(checks.running_count(&bytes), Some((7, 2)));
        assert_eq!(checks.running_count(b"garbage"), None);
        assert_eq!(checks.key(&bytes), Some(7));
        assert!(checks
            .describe(&bytes)
            .starts_with("Counted { key: 7, n: 2"));
        assert!(!OutputChecks::OPAQUE.one_per_input());
        assert_eq!(OutputChecks::OPAQUE.describe(&[1, 2]), "2 bytes [01 02]");
    }
}
