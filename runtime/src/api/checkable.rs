//! What a harness can verify of a job's output, said by the job's output record type.
//!
//! Checkers that need nothing from the job (stalls, recovery, balance, liveness, fencing) run
//! on every job. Delivery checks compare outputs with the input, so they need the output to
//! name the input record it came from and to say how outputs relate to inputs; a job whose
//! output type implements [`CheckableOutput`] says so, and its entry in the job table carries
//! the resulting [`OutputChecks`]. The harness asks that, never the job's name.

use serde::de::DeserializeOwned;

use super::operator::Traceable;

/// An output record type that tells checkers what they may assume about it.
pub trait CheckableOutput: Traceable + DeserializeOwned + 'static {
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
}

/// Decodes a serialized output record's (key, running count).
type RunningCountDecoder = fn(&[u8]) -> Option<(u64, u64)>;

/// What can be checked of one job's output, as data (the job table holds one per job).
#[derive(Clone, Copy, Debug)]
pub struct OutputChecks {
    one_per_input: bool,
    running_count: Option<RunningCountDecoder>,
}

impl OutputChecks {
    /// Outputs a checker can say nothing about beyond their arrival.
    pub const OPAQUE: OutputChecks = OutputChecks {
        one_per_input: false,
        running_count: None,
    };

    /// What `T` says of itself.
    pub const fn of<T: CheckableOutput>() -> Self {
        OutputChecks {
            one_per_input: T::ONE_PER_INPUT,
            running_count: if T::RUNNING_COUNTS {
                Some(decode_running_count::<T> as RunningCountDecoder)
            } else {
                None
            },
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

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::api::Origin;

    #[derive(Serialize, Deserialize)]
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
        assert!(!OutputChecks::OPAQUE.one_per_input());
    }
}
