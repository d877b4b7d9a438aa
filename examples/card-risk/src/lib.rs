//! Card-payment risk control, written as a user of rill writes jobs: its own record types
//! ([`Payment`], [`CardActivity`], [`CardWindow`]), its own source ([`Payments`], a generated
//! payment feed with a skewed card distribution) and sink ([`AlertDesk`]), jobs built on
//! rill's typed `DataStream` API, and a [`registry`] that the binaries (`src/main.rs`,
//! `src/bin/card-risk-sim.rs`), the cluster and the tests share.
//!
//! - `card-risk` reads payments from a log (rill's standard source, [`rill::jobs::io`]; card
//!   numbers skewed by `hot-key-per-mille`), keeps a running count of each card's payments in
//!   keyed state, and emits one [`CardActivity`] per payment, flagged `suspicious` once the
//!   card has paid more than `threshold` times. Its outputs name the payment they answer, so
//!   the harness checks every payment against them.
//! - `card-windows` reads the crate's own payment feed, counts each card's payments and
//!   money in tumbling event-time windows, flags suspicious windows, and files them at the
//!   alert desk (see [`windows`]). Its outputs name their card, so the harness compares them
//!   card by card with a fault-free run of the same seed.

pub mod alerts;
pub mod payments;
pub mod windows;

pub use alerts::AlertDesk;
pub use payments::{Payment, Payments};
pub use windows::CardWindow;

use rill::api::registry::Params;
use rill::api::{CheckableOutput, JobError, Origin, OutputChecks, StreamEnv, Traceable};
use rill::connectors::log::LogRecord;
use rill::jobs::io::{add_sink, log_source, SinkParams, SourceParams};
use rill::jobs::{JobDef, JobRegistry};
use serde::{Deserialize, Serialize};

/// What the job says about a card after one of its payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardActivity {
    /// The card number.
    pub card: u64,
    /// The card's payments so far, this one included.
    pub payments: u64,
    /// More than `threshold` payments: the card is flagged for review.
    pub suspicious: bool,
    /// The payment it answers (partition and offset of the payments log).
    pub origin: Origin,
}

impl Traceable for CardActivity {
    fn origin(&self) -> Option<Origin> {
        Some(self.origin)
    }
}

/// One activity record per payment, each its card's running count: the harness can check
/// exactly-once delivery and the counts.
impl CheckableOutput for CardActivity {
    const ONE_PER_INPUT: bool = true;
    const RUNNING_COUNTS: bool = true;

    fn running_count(&self) -> Option<(u64, u64)> {
        Some((self.card, self.payments))
    }
}

/// The jobs of this crate, by name: what its binary and its tests run.
pub fn registry() -> JobRegistry {
    JobRegistry::new()
        .with(JobDef {
            name: "card-risk",
            description: "payments -> key_by card -> running count, flag over threshold -> sink",
            build: card_risk,
            output: OutputChecks::of::<CardActivity>(),
        })
        .and_then(|jobs| {
            jobs.with(JobDef {
                name: "card-windows",
                description: "payment feed -> key_by card -> event-time windows, flag suspicious -> number per card -> alert desk",
                build: windows::card_windows,
                output: OutputChecks::of::<CardWindow>(),
            })
        })
        .expect("distinct job names")
}

/// Parameters: the standard source and sink ones ([`SourceParams::read`],
/// [`SinkParams::read`]), `parallelism`, `threshold` (default 20), and `planted-bug-every`
/// (default 0: none), a bug for the tests to catch: every N-th payment is counted twice.
fn card_risk(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let threshold = p.get("threshold", 20u64)?;
    let planted_bug_every = p.get("planted-bug-every", 0u64)?;
    let source = SourceParams::read(p, 0, parallelism)?;
    let sink = SinkParams::read(p)?;
    let payments = log_source(p, env, "payments", source).flat_map("parse", move |r: LogRecord| {
        let twice = planted_bug_every > 0 && r.offset % planted_bug_every == planted_bug_every - 1;
        std::iter::repeat_n(parse(&r), if twice { 2 } else { 1 })
    });
    let activity = payments
        .key_by(|p: &Payment| p.card)
        .aggregate(
            "count",
            || 0u64,
            |n, _| *n += 1,
            move |card, n, p| CardActivity {
                card: *card,
                payments: *n,
                suspicious: *n > threshold,
                origin: p.origin,
            },
        )
        .parallelism(parallelism);
    add_sink(activity, sink, parallelism);
    Ok(())
}

fn parse(r: &LogRecord) -> Payment {
    let cents = r
        .payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    Payment {
        card: r.key,
        amount: cents % 100_000,
        at_ms: r.timestamp_ms,
        origin: r.origin(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill::api::FileAccess;
    use rill::JobSpec;

    #[test]
    fn the_registry_builds_the_job_and_refuses_unknown_parameters() {
        let jobs = registry();
        let spec = JobSpec::new("card-risk").with("parallelism", 3);
        let graph = jobs
            .build(&spec, 128, &FileAccess::Anywhere)
            .expect("builds");
        assert_eq!(
            graph.subtask_count(),
            6,
            "source+parse and count+sink, 3 each"
        );
        let bad = JobSpec::new("card-risk").with("treshold", 5);
        let err = jobs
            .build(&bad, 128, &FileAccess::Anywhere)
            .expect_err("misspelt parameter");
        assert!(err.to_string().contains("treshold"), "{err}");
    }

    #[test]
    fn card_windows_builds_with_its_own_source_and_sink_and_names_bad_parameters() {
        let jobs = registry();
        let spec = JobSpec::new("card-windows").with("parallelism", 3);
        let graph = jobs
            .build(&spec, 128, &FileAccess::Anywhere)
            .expect("builds");
        assert_eq!(
            graph.subtask_count(),
            9,
            "source, window, number+sink: 3 each"
        );
        assert!(
            jobs.inputs(&spec).expect("builds").is_empty(),
            "its source is its own, not a log"
        );
        let bad = spec.clone().with("planted-bug", "typo");
        let err = jobs
            .build(&bad, 128, &FileAccess::Anywhere)
            .expect_err("unknown bug");
        assert!(err.to_string().contains("unmanaged-state"), "{err}");
        for parallelism in [0, u32::MAX] {
            let bad = spec.clone().with("parallelism", parallelism);
            let err = jobs
                .build(&bad, 128, &FileAccess::Anywhere)
                .expect_err("an error, not a panic");
            assert!(err.to_string().contains("parallelism"), "{err}");
        }
    }
}
