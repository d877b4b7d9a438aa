//! The per-attempt at-most-once checker: one attempt of a sink subtask outputs each input
//! record (by the provenance its output names) at most once, under every failover strategy.
//!
//! Across attempts a record may come again (a restarted sink replays from its checkpoint),
//! and under `taskmanager` failover the delivery checker lets repeats pass near a fault. But
//! an attempt that kept running while its producers were restarted must not see their replay
//! twice: every input channel numbers its records and skips what it already had, so a repeat
//! within one attempt is a consumer that lost count, not a fault's cost.

use std::collections::BTreeSet;

use super::delivery::ExpectedInput;
use super::secs;
use crate::history::{OutputRecord, RunHistory, Verdict};

const NAME: &str = "attempt-once";

/// No output of an input record seen yet.
const UNSEEN: u32 = u32::MAX;

/// Every attempt of every sink subtask outputs each input record at most once.
pub fn at_most_once_per_attempt(h: &RunHistory, input: &ExpectedInput) -> Verdict {
    // The first output of every input record (index into `h.outputs`), as delivery keeps it;
    // later attempts' repeats of a record are few, and kept apart.
    let mut first: Vec<Vec<u32>> = input.partition_lens().map(|n| vec![UNSEEN; n]).collect();
    let mut repeats = BTreeSet::<(u32, u64, u32, u32)>::new();
    let mut attempts = BTreeSet::<(u32, u32)>::new();
    let mut last_attempt = None;
    for (index, out) in h.outputs.iter().enumerate() {
        let Some(origin) = out.origin() else { continue };
        let slot = first
            .get_mut(origin.partition as usize)
            .and_then(|p| p.get_mut(origin.offset as usize));
        // An origin outside the input is the delivery checker's (invented output).
        let Some(slot) = slot else { continue };
        let attempt = (out.sink_subtask, out.attempt);
        if last_attempt != Some(attempt) {
            attempts.insert(attempt);
            last_attempt = Some(attempt);
        }
        if *slot == UNSEEN {
            *slot = index as u32;
            continue;
        }
        let key = (origin.partition, origin.offset, attempt.0, attempt.1);
        let earlier = &h.outputs[*slot as usize];
        if (earlier.sink_subtask, earlier.attempt) == attempt || !repeats.insert(key) {
            return twice(h, index);
        }
    }
    if attempts.is_empty() {
        return Verdict::not_checked(NAME, "no output named an input record");
    }
    Verdict::pass(
        NAME,
        format!(
            "{} sink attempt(s), each output every input record at most once ({} repeated by a later attempt)",
            attempts.len(),
            repeats.len()
        ),
    )
}

/// The failure for `h.outputs[index]`, whose attempt already output its input record.
fn twice(h: &RunHistory, index: usize) -> Verdict {
    let out = &h.outputs[index];
    let same = |o: &&OutputRecord| {
        o.origin() == out.origin() && (o.sink_subtask, o.attempt) == (out.sink_subtask, out.attempt)
    };
    let earlier = h.outputs[..index].iter().find(same).expect("output before");
    Verdict::fail(
        NAME,
        "an attempt output an input record twice",
        format!(
            "input {:?} was output by attempt {} of sink subtask {} on {} at {} and again at {}",
            out.origin().expect("has an origin"),
            out.attempt,
            out.sink_subtask,
            out.taskmanager_name(),
            secs(earlier.at),
            secs(out.at)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{history, input, out};
    use super::*;

    #[test]
    fn a_later_attempt_may_repeat_what_an_earlier_one_output() {
        // Offsets 0..10 by attempt 0; the restarted attempt 1 replays 5..10 and goes on.
        let mut outputs: Vec<_> = (0..10).map(|o| out(o * 100, o, 0)).collect();
        outputs.extend((5..20).map(|o| out(2_000 + o * 100, o, 1)));
        let v = at_most_once_per_attempt(&history(outputs), &input(20));
        assert!(v.passed && v.checked, "{v:?}");
        assert!(v.summary.contains("(5 repeated"), "{v:?}");
    }

    #[test]
    fn an_attempt_that_outputs_a_record_twice_fails() {
        // The planted bug: attempt 0 kept running while its producer was restarted, and
        // the producer's replay after its first buffer came through again.
        let mut outputs: Vec<_> = (0..10).map(|o| out(o * 100, o, 0)).collect();
        outputs.extend((6..10).map(|o| out(1_500 + o * 10, o, 0)));
        let v = at_most_once_per_attempt(&history(outputs), &input(10));
        assert!(!v.passed, "{v:?}");
        let evidence = v.evidence.unwrap();
        assert!(
            evidence.contains("offset: 6") && evidence.contains("attempt 0 of sink subtask 0"),
            "{evidence}"
        );
    }

    #[test]
    fn a_later_attempt_that_repeats_its_own_replay_fails() {
        let mut outputs: Vec<_> = (0..10).map(|o| out(o * 100, o, 0)).collect();
        outputs.extend([out(2_000, 5, 1), out(2_100, 5, 1)]);
        let v = at_most_once_per_attempt(&history(outputs), &input(10));
        assert!(
            !v.passed && v.evidence.as_deref().unwrap_or("").contains("attempt 1"),
            "{v:?}"
        );
        // Another sink subtask's attempt 1 is another attempt.
        let mut outputs: Vec<_> = (0..10).map(|o| out(o * 100, o, 0)).collect();
        let mut other = out(2_100, 5, 1);
        other.sink_subtask = 1;
        outputs.extend([out(2_000, 5, 1), other]);
        assert!(at_most_once_per_attempt(&history(outputs), &input(10)).passed);
    }

    #[test]
    fn outputs_without_provenance_are_not_checked() {
        let v = at_most_once_per_attempt(&history(Vec::new()), &input(10));
        assert!(v.passed && !v.checked, "{v:?}");
    }
}
