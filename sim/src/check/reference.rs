//! Exactly-once for any job: the committed output of a run equals that of a fault-free
//! reference run of the same scenario and seed (the harness runs it), compared as a multiset of
//! records, or, when the output names its key ([`OutputChecks::keyed`]), key by key in order.
//! It needs nothing from the job but a deterministic output: records that are a function of
//! the input, not of processing time, nor of the order in which records from different input
//! channels meet (event-time windows and counts are; a running count that names the record it
//! counted is not, as which record is the n-th of its key depends on that order: such a job
//! names its origin and is checked against the input instead). And it can only see what a
//! fault changed: a bug that is there in fault-free runs too is in the reference as well.

use std::collections::BTreeMap;

use bytes::Bytes;
use rill::api::OutputChecks;

use super::secs;
use crate::history::{RunHistory, Verdict};

const NAME: &str = "delivery";

/// Whether `h`'s committed output is the reference run's, record for record.
pub fn matches_reference(h: &RunHistory, reference: &RunHistory, checks: &OutputChecks) -> Verdict {
    if let Some(why) = unusable(reference) {
        return Verdict::fail(NAME, "no reference to compare with", why);
    }
    if h.payloads.len() != h.outputs.len() {
        return Verdict::fail(
            NAME,
            "outputs not kept",
            "the run did not keep its outputs' encodings, which exactly-once against a reference compares",
        );
    }
    if reference.payloads.is_empty() {
        return Verdict::fail(
            NAME,
            "nothing to compare",
            "the fault-free reference run committed no output to the harness's sink store: a job checked under the harness writes through rill::jobs::io::add_sink or add_own_sink, whose sink the harness points at its sink-store node",
        );
    }
    let mut verdict = match checks.keyed() {
        true => per_key(h, reference, checks),
        false => multiset(h, reference, checks),
    };
    // Without an effective fault the run is the reference run, record for record: a pass
    // then says nothing about recovery.
    if verdict.passed && !h.faults.iter().any(|f| f.took_effect()) {
        verdict
            .summary
            .push_str(" (no fault took effect: the run is its own reference)");
    }
    verdict
}

/// Why `reference` cannot stand for the fault-free output, if it cannot.
fn unusable(reference: &RunHistory) -> Option<String> {
    if reference.payloads.len() != reference.outputs.len() {
        return Some("the reference run did not keep its outputs".into());
    }
    if let Some(f) = reference.faults.iter().find(|f| f.took_effect()) {
        return Some(format!(
            "the reference run was not fault-free: {} (the memory model OOM-killed a TaskManager without any planned fault; lower the skew or raise memory_mb)",
            f.fault
        ));
    }
    (!reference.finished()).then(|| {
        format!(
            "the reference run (no faults, same seed) did not finish: {:?}; exactly-once against a reference compares whole outputs, so the job needs a bounded input that ends within run_for",
            reference.job_status
        )
    })
}

/// Every record as often as in the reference. The run must have finished: an unfinished run's
/// output is a part of the reference's that a multiset cannot place.
fn multiset(h: &RunHistory, reference: &RunHistory, checks: &OutputChecks) -> Verdict {
    if !h.finished() {
        return Verdict::fail(
            NAME,
            "run did not finish",
            format!(
                "the run ended {:?} before its input did, so its output cannot be compared as a whole with the reference's; give it more run_for, or name the output's key (CheckableOutput::KEYED) to compare per key",
                h.job_status
            ),
        );
    }
    let (ours, theirs) = (counts(&h.payloads), counts(&reference.payloads));
    let summary = format!(
        "{} outputs, the fault-free reference run {}",
        h.payloads.len(),
        reference.payloads.len()
    );
    let keys = ours.keys().chain(theirs.keys());
    for record in keys.collect::<std::collections::BTreeSet<_>>() {
        let (n, want) = (
            ours.get(record).copied().unwrap_or(0),
            theirs.get(record).copied().unwrap_or(0),
        );
        if n != want {
            let what = checks.describe(record);
            let evidence = match first_output_of(h, record, want) {
                Some((at, attempt)) => format!(
                    "{what} is output {n} time(s), the reference {want}; the extra one at {} (sink attempt {attempt})",
                    secs(at)
                ),
                None => format!("{what} is output {n} time(s), the reference {want}"),
            };
            return Verdict::fail(NAME, summary, evidence);
        }
    }
    Verdict::pass(
        NAME,
        format!("{summary}: the same records (compared as a multiset)"),
    )
}

/// How often each record occurs.
fn counts(payloads: &[Bytes]) -> BTreeMap<&[u8], usize> {
    let mut m: BTreeMap<&[u8], usize> = BTreeMap::new();
    for p in payloads {
        *m.entry(&p[..]).or_default() += 1;
    }
    m
}

/// When the `(skip+1)`-th output of `record` was received, and by which sink attempt.
fn first_output_of(
    h: &RunHistory,
    record: &[u8],
    skip: usize,
) -> Option<(std::time::Duration, u32)> {
    h.payloads
        .iter()
        .zip(&h.outputs)
        .filter(|(p, _)| &p[..] == record)
        .nth(skip)
        .map(|(_, o)| (o.at, o.attempt))
}

/// Each key's outputs, in order, as the reference's; a run cut off before its input ended
/// must have each key's outputs a prefix of the reference's.
fn per_key(h: &RunHistory, reference: &RunHistory, checks: &OutputChecks) -> Verdict {
    let by_key = |history: &RunHistory| -> Result<BTreeMap<u64, Vec<usize>>, usize> {
        let mut m: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, p) in history.payloads.iter().enumerate() {
            m.entry(checks.key(p).ok_or(i)?).or_default().push(i);
        }
        Ok(m)
    };
    let (ours, theirs) = match (by_key(h), by_key(reference)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(i), _) | (_, Err(i)) => {
            return Verdict::fail(
                NAME,
                "output without a key",
                format!("output #{i} names no key, though its type says outputs are keyed"),
            )
        }
    };
    let complete = h.finished();
    if !complete && h.payloads.is_empty() {
        return Verdict::fail(
            NAME,
            "no output",
            format!(
                "the run ended {:?} without committing any output, the reference committed {}",
                h.job_status,
                reference.payloads.len()
            ),
        );
    }
    let summary = format!(
        "{} outputs over {} keys, the fault-free reference run {} over {}",
        h.payloads.len(),
        ours.len(),
        reference.payloads.len(),
        theirs.len()
    );
    let empty = Vec::new();
    for key in ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (mine, want) = (
            ours.get(key).unwrap_or(&empty),
            theirs.get(key).unwrap_or(&empty),
        );
        if let Some(evidence) = first_difference(h, reference, checks, *key, mine, want, complete) {
            return Verdict::fail(NAME, summary, evidence);
        }
    }
    let how = if complete {
        "the same records"
    } else {
        "a prefix of the reference's (cut off)"
    };
    Verdict::pass(
        NAME,
        format!("{summary}: each key's outputs are {how}, in order"),
    )
}

/// Where key `key`'s outputs in `h` (`mine`, indices) first depart from the reference's.
fn first_difference(
    h: &RunHistory,
    reference: &RunHistory,
    checks: &OutputChecks,
    key: u64,
    mine: &[usize],
    want: &[usize],
    complete: bool,
) -> Option<String> {
    for (n, (a, b)) in mine.iter().zip(want).enumerate() {
        if h.payloads[*a] != reference.payloads[*b] {
            let o = &h.outputs[*a];
            return Some(format!(
                "key {key}, output {}: {} at {} (sink attempt {}), the reference has {}",
                n + 1,
                checks.describe(&h.payloads[*a]),
                secs(o.at),
                o.attempt,
                checks.describe(&reference.payloads[*b])
            ));
        }
    }
    if mine.len() > want.len() {
        let extra = mine[want.len()];
        let o = &h.outputs[extra];
        return Some(format!(
            "key {key}: {} outputs, the reference {}; the first extra is {} at {} (sink attempt {})",
            mine.len(),
            want.len(),
            checks.describe(&h.payloads[extra]),
            secs(o.at),
            o.attempt
        ));
    }
    if complete && mine.len() < want.len() {
        let missing = &reference.payloads[want[mine.len()]];
        return Some(format!(
            "key {key}: {} outputs, the reference {}; the first missing is {}",
            mine.len(),
            want.len(),
            checks.describe(missing)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rill::api::{CheckableOutput, Origin, Traceable};
    use rill::rpc::JobStatus;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::history::{OutputRecord, RunEnd};

    #[derive(Debug, Serialize, Deserialize)]
    struct Total {
        key: u64,
        sum: u64,
    }

    impl Traceable for Total {
        fn origin(&self) -> Option<Origin> {
            None
        }
    }

    impl CheckableOutput for Total {
        const ONE_PER_INPUT: bool = false;
        const KEYED: bool = true;
        fn key(&self) -> Option<u64> {
            Some(self.key)
        }
    }

    fn run(records: &[(u64, u64)], finished: bool) -> RunHistory {
        let payloads: Vec<Bytes> = records
            .iter()
            .map(|&(key, sum)| bincode::serialize(&Total { key, sum }).unwrap().into())
            .collect();
        let outputs = (0..records.len())
            .map(|i| OutputRecord::new(Duration::from_millis(i as u64), 1, 0, 0, None, None))
            .collect();
        RunHistory {
            outputs,
            payloads,
            job_status: match finished {
                true => RunEnd::Ended(JobStatus::Finished),
                false => RunEnd::CutOff,
            },
            ..Default::default()
        }
    }

    const REFERENCE: &[(u64, u64)] = &[(1, 1), (2, 5), (1, 3), (2, 9)];

    #[test]
    fn the_same_records_in_another_interleaving_pass_both_ways() {
        let reference = run(REFERENCE, true);
        let ours = run(&[(2, 5), (1, 1), (2, 9), (1, 3)], true);
        assert!(matches_reference(&ours, &reference, &OutputChecks::of::<Total>()).passed);
        let v = matches_reference(&ours, &reference, &OutputChecks::opaque::<Total>());
        assert!(v.passed, "{v:?}");
    }

    #[test]
    fn a_duplicate_a_loss_or_a_reordering_is_the_evidence() {
        let reference = run(REFERENCE, true);
        let keyed = OutputChecks::of::<Total>();
        let dup = run(&[(1, 1), (2, 5), (1, 1), (1, 3), (2, 9)], true);
        let v = matches_reference(&dup, &reference, &keyed);
        assert!(!v.passed);
        assert!(
            v.evidence
                .as_deref()
                .unwrap()
                .contains("Total { key: 1, sum: 1 }"),
            "{v:?}"
        );
        let v = matches_reference(&dup, &reference, &OutputChecks::opaque::<Total>());
        assert!(
            v.evidence
                .as_deref()
                .unwrap()
                .contains("output 2 time(s), the reference 1"),
            "{v:?}"
        );
        let lost = run(&[(1, 1), (2, 5), (2, 9)], true);
        assert!(!matches_reference(&lost, &reference, &keyed).passed);
        assert!(!matches_reference(&lost, &reference, &OutputChecks::OPAQUE).passed);
        let swapped = run(&[(1, 3), (2, 5), (1, 1), (2, 9)], true);
        assert!(
            !matches_reference(&swapped, &reference, &keyed).passed,
            "order per key matters"
        );
        assert!(
            matches_reference(&swapped, &reference, &OutputChecks::OPAQUE).passed,
            "not as a multiset"
        );
    }

    #[test]
    fn nothing_to_compare_is_a_failure_not_a_pass() {
        let empty = run(&[], true);
        let v = matches_reference(&empty, &empty, &OutputChecks::OPAQUE);
        assert!(!v.passed && v.summary == "nothing to compare", "{v:?}");
        let reference = run(REFERENCES_ONE, true);
        let v = matches_reference(&run(&[], false), &reference, &OutputChecks::of::<Total>());
        assert!(!v.passed && v.summary == "no output", "{v:?}");
    }

    const REFERENCES_ONE: &[(u64, u64)] = &[(1, 1)];

    #[test]
    fn a_pass_without_an_effective_fault_says_so() {
        let reference = run(REFERENCE, true);
        let v = matches_reference(&run(REFERENCE, true), &reference, &OutputChecks::OPAQUE);
        assert!(
            v.passed && v.summary.contains("no fault took effect"),
            "{v:?}"
        );
    }

    #[test]
    fn a_cut_off_run_passes_per_key_as_a_prefix_but_not_as_a_multiset() {
        let reference = run(REFERENCE, true);
        let cut = run(&[(1, 1), (2, 5), (1, 3)], false);
        assert!(matches_reference(&cut, &reference, &OutputChecks::of::<Total>()).passed);
        assert!(!matches_reference(&cut, &reference, &OutputChecks::OPAQUE).passed);
        let unfinished_reference = run(REFERENCE, false);
        let v = matches_reference(
            &run(REFERENCE, true),
            &unfinished_reference,
            &OutputChecks::OPAQUE,
        );
        assert!(!v.passed && v.summary.contains("no reference"), "{v:?}");
    }
}
