//! The delivery checker: every input record against the outputs that name it, under the
//! scenario's delivery mode (exactly-once, at-least-once, lossy- or fault-accounted).

use std::collections::BTreeMap;
use std::time::Duration;

use rill::api::Origin;

use super::accounting::Reader;
use super::{disruptions, secs, IN_FLIGHT, REPLAY};
use crate::history::{RunHistory, Verdict};
use crate::scenario::DeliveryMode;

/// What the input of a run was, for the delivery checker: the key of every input record, by
/// partition then offset (a partitioned log's offsets run densely from 0), so a check over
/// millions of outputs indexes arrays instead of searching trees.
#[derive(Debug, Clone, Default)]
pub struct ExpectedInput {
    partitions: Vec<Vec<u64>>,
    reader: Option<Reader>,
}

impl ExpectedInput {
    /// Says which source vertex reads the input (when the job has exactly one), so losses
    /// can be traced to the subtask that read each record.
    pub fn with_reader(mut self, reader: Reader) -> Self {
        self.reader = Some(reader);
        self
    }

    /// The source vertex that reads the input, if known.
    pub fn reader(&self) -> Option<Reader> {
        self.reader
    }

    /// Each partition's record count, in partition order.
    pub fn partition_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.partitions.iter().map(Vec::len)
    }

    /// Adds the next record of its partition; records of a partition come in offset order.
    pub fn push(&mut self, origin: Origin, key: u64) {
        let p = origin.partition as usize;
        if self.partitions.len() <= p {
            self.partitions.resize_with(p + 1, Vec::new);
        }
        debug_assert_eq!(self.partitions[p].len() as u64, origin.offset);
        self.partitions[p].push(key);
    }

    /// Room for `records` records of `partition`, so a large input is not copied as it grows.
    pub fn reserve(&mut self, partition: u32, records: usize) {
        let p = partition as usize;
        if self.partitions.len() <= p {
            self.partitions.resize_with(p + 1, Vec::new);
        }
        self.partitions[p].reserve_exact(records);
    }

    /// The key of the input record at `origin`, if the input has one there.
    pub fn key(&self, origin: Origin) -> Option<u64> {
        let partition = self.partitions.get(origin.partition as usize)?;
        partition.get(usize::try_from(origin.offset).ok()?).copied()
    }

    /// Input records over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    /// Whether the input has no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// No output seen yet for an input record.
const UNSEEN: u32 = u32::MAX;

/// Exactly-once: every input record produced exactly one output, with the key's running counts
/// 1..=n. Lossy-accounted: no duplicates, nothing invented, and every missing record attributed
/// to a fault that was active around the time it would have been output. At-least-once: every
/// input delivered, duplicates allowed (counted), nothing invented.
pub fn delivery(h: &RunHistory, mode: DeliveryMode, input: &ExpectedInput) -> Verdict {
    const NAME: &str = "delivery";
    let disruptions = disruptions(h);
    // The first output of every input record (index into `h.outputs`), by partition and offset.
    let mut seen: Vec<Vec<u32>> = input
        .partitions
        .iter()
        .map(|p| vec![UNSEEN; p.len()])
        .collect();
    let (mut delivered, mut duplicates) = (0usize, 0u64);
    for (index, out) in h.outputs.iter().enumerate() {
        let Some(origin) = out.origin() else { continue };
        let Some(key) = input.key(origin) else {
            let evidence = format!(
                "output at {} claims input {origin:?}, which does not exist",
                secs(out.at)
            );
            return Verdict::fail(NAME, "invented output", evidence);
        };
        let slot = &mut seen[origin.partition as usize][origin.offset as usize];
        if *slot != UNSEEN {
            let first = &h.outputs[*slot as usize];
            match mode {
                DeliveryMode::AtLeastOnce => duplicates += 1,
                DeliveryMode::FaultAccounted if near(&disruptions, out.at, REPLAY) => {
                    duplicates += 1
                }
                DeliveryMode::FaultAccounted => {
                    let evidence = format!(
                        "input {origin:?} was output again at {} (attempt {}), when no fault was active",
                        secs(out.at),
                        out.attempt
                    );
                    return Verdict::fail(NAME, "unaccounted duplicate", evidence);
                }
                _ => {
                    let evidence = format!(
                        "input {origin:?} was output at {} (attempt {}) and again at {} (attempt {})",
                        secs(first.at),
                        first.attempt,
                        secs(out.at),
                        out.attempt
                    );
                    return Verdict::fail(NAME, "duplicate output", evidence);
                }
            }
            continue;
        }
        *slot = index as u32;
        delivered += 1;
        if out.key().is_some_and(|k| k != key) {
            let evidence = format!(
                "input {origin:?} has key {key}, its output at {} says {:?}",
                secs(out.at),
                out.key()
            );
            return Verdict::fail(NAME, "wrong key", evidence);
        }
    }
    let missing = input.len() - delivered;
    let summary = format!(
        "{delivered} of {} inputs delivered, {missing} missing, {duplicates} duplicated",
        input.len(),
    );
    let complete = matches!(mode, DeliveryMode::ExactlyOnce | DeliveryMode::AtLeastOnce);
    if complete && missing > 0 {
        let first = first_missing(&seen).expect("something is missing");
        return Verdict::fail(NAME, summary, format!("input {first:?} produced no output"));
    }
    if let Some(evidence) = first_unaccounted(h, &seen, &disruptions) {
        return Verdict::fail(NAME, summary, evidence);
    }
    // Running counts are contiguous only when nothing was lost or replayed.
    if missing == 0 && duplicates == 0 {
        if let Err(e) = running_counts(h) {
            return Verdict::fail(NAME, summary, e);
        }
    }
    let note = if missing == 0 {
        ""
    } else {
        " (all attributed to faults)"
    };
    Verdict::pass(NAME, format!("{summary}{note}"))
}

fn first_missing(seen: &[Vec<u32>]) -> Option<Origin> {
    seen.iter().enumerate().find_map(|(p, offsets)| {
        let o = offsets.iter().position(|s| *s == UNSEEN)?;
        Some(Origin {
            partition: p as u32,
            offset: o as u64,
        })
    })
}

/// True if a disruption was active within `IN_FLIGHT` before `at`, or ended at most `after`
/// before it.
fn near(disruptions: &[(Duration, Duration)], at: Duration, after: Duration) -> bool {
    disruptions
        .iter()
        .any(|(b, e)| *b <= at + IN_FLIGHT && *e + after >= at)
}

/// The first missing record no disruption accounts for. A missing record would have been
/// output between its partition's neighbouring delivered records; a disruption within
/// `IN_FLIGHT` of that interval accounts for it.
fn first_unaccounted(
    h: &RunHistory,
    seen: &[Vec<u32>],
    disruptions: &[(Duration, Duration)],
) -> Option<String> {
    let at = |slot: u32| h.outputs[slot as usize].at;
    for (p, offsets) in seen.iter().enumerate() {
        if !offsets.contains(&UNSEEN) {
            continue;
        }
        // The output time of the nearest delivered record after each offset, in one pass.
        let mut next = vec![None; offsets.len()];
        let mut later = None;
        for (o, slot) in offsets.iter().enumerate().rev() {
            next[o] = later;
            if *slot != UNSEEN {
                later = Some(at(*slot));
            }
        }
        let mut earlier = None;
        for (o, slot) in offsets.iter().enumerate() {
            if *slot != UNSEEN {
                earlier = Some(at(*slot));
                continue;
            }
            // Neighbours may have been output out of order (a replay, another sink subtask),
            // so the interval runs from the earlier to the later of them.
            let (before, after) = (earlier.unwrap_or_default(), next[o].unwrap_or(h.end));
            let from = before.min(after).saturating_sub(IN_FLIGHT);
            let to = before.max(after) + IN_FLIGHT;
            if !disruptions.iter().any(|(b, e)| *b <= to && *e >= from) {
                let origin = Origin {
                    partition: p as u32,
                    offset: o as u64,
                };
                return Some(format!(
                    "input {origin:?} is missing; it would have been output between {} and {}, when no fault was active",
                    secs(from),
                    secs(to)
                ));
            }
        }
    }
    None
}

/// For keyed counts: each key's emitted counts are exactly 1..=n.
fn running_counts(h: &RunHistory) -> Result<(), String> {
    let mut counts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for out in &h.outputs {
        if let (Some(k), Some(v)) = (out.key(), out.value()) {
            counts.entry(k).or_default().push(v);
        }
    }
    for (key, mut c) in counts {
        c.sort_unstable();
        if let Some((i, v)) = c.iter().enumerate().find(|(i, v)| **v != *i as u64 + 1) {
            return Err(format!(
                "key {key}: running counts are not 1..={}; position {i} holds {v}",
                c.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{crash_at, history, input, out};

    #[test]
    fn exactly_once_passes_on_complete_output_and_names_the_first_duplicate() {
        let h = history((0..4).map(|o| out(o * 10, o, 0)).collect());
        assert!(delivery(&h, DeliveryMode::ExactlyOnce, &input(4)).passed);
        let mut dup = h.clone();
        dup.outputs.push(out(500, 2, 1));
        let v = delivery(&dup, DeliveryMode::ExactlyOnce, &input(4));
        assert!(!v.passed);
        assert!(
            v.evidence.unwrap().contains("offset: 2"),
            "evidence names the record"
        );
    }

    #[test]
    fn missing_records_fail_exactly_once_and_need_a_fault_when_lossy() {
        let h = history((0..3).map(|o| out(o * 10, o, 0)).collect());
        assert!(!delivery(&h, DeliveryMode::ExactlyOnce, &input(4)).passed);
        assert!(!delivery(&h, DeliveryMode::LossyAccounted, &input(4)).passed);
        let mut faulted = h;
        faulted.faults.push(crash_at(1));
        assert!(delivery(&faulted, DeliveryMode::LossyAccounted, &input(4)).passed);
    }

    #[test]
    fn at_least_once_counts_duplicates_but_needs_every_input() {
        let mut h = history((0..4).map(|o| out(o * 10, o, 0)).collect());
        h.outputs.push(out(500, 2, 1));
        let v = delivery(&h, DeliveryMode::AtLeastOnce, &input(4));
        assert!(v.passed && v.summary.contains("1 duplicated"), "{v:?}");
        assert!(!delivery(&h, DeliveryMode::AtLeastOnce, &input(5)).passed);
    }

    #[test]
    fn fault_accounted_allows_duplicates_only_near_a_fault() {
        let mut h = history((0..4).map(|o| out(o * 10, o, 0)).collect());
        h.outputs.push(out(1_500, 2, 1));
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(4));
        assert!(!v.passed && v.summary == "unaccounted duplicate", "{v:?}");
        h.faults.push(crash_at(1));
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(4));
        assert!(v.passed && v.summary.contains("1 duplicated"), "{v:?}");
        assert!(!delivery(&h, DeliveryMode::LossyAccounted, &input(4)).passed);
    }

    #[test]
    fn invented_output_is_caught() {
        let h = history(vec![out(0, 0, 0), out(10, 99, 0)]);
        let v = delivery(&h, DeliveryMode::LossyAccounted, &input(2));
        assert!(!v.passed && v.summary == "invented output");
    }

    #[test]
    fn a_missing_record_needs_a_fault_near_when_it_would_have_been_output() {
        // Offsets 0..10 output every 100 ms; offset 5 (due around 0.5 s) is missing.
        let outputs = (0..10u64)
            .filter(|o| *o != 5)
            .map(|o| out(o * 100, o, 0))
            .collect();
        let mut far = history(outputs);
        far.faults.push(crash_at(8)); // long after: cannot account for it
        let v = delivery(&far, DeliveryMode::LossyAccounted, &input(10));
        assert!(!v.passed, "{v:?}");
        assert!(v.evidence.unwrap().contains("offset: 5"));
        let mut near = far.clone();
        near.faults[0] = crash_at(1);
        assert!(delivery(&near, DeliveryMode::LossyAccounted, &input(10)).passed);
    }
}
