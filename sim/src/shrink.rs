//! Fault-plan shrinking: delta debugging for the fault plan of a failing seed.
//!
//! A failing run's plan usually carries faults that have nothing to do with the failure, and the
//! ones that matter are longer and later than they need to be. The harness re-runs the seed with
//! candidate plans (the oracle); this module only decides which candidates to try, greedily
//! keeping every candidate that still fails, until a full pass over all transformations changes
//! nothing (a local minimum) or the trial budget runs out.
//!
//! Transformations, cheapest-to-verify and biggest-win first within each pass:
//! 1. drop chunks of faults, ddmin style (halves, quarters, ..., single faults);
//! 2. merge two faults of the same kind on the same target(s) whose intervals overlap or touch;
//! 3. shorten durations by halving, down to [`DURATION_FLOOR`] (never removing an optional
//!    duration: a crash without restart is a different fault, not a smaller one);
//! 4. place an anchored fault (one that waits for a point of the job's cycle) at a plain time
//!    instead: when it began in the failing run, if the caller says ([`shrink_timed`]), else
//!    its `from` plus its offset; failing that, halve its offset toward 0 (the event itself);
//! 5. shift each fault's `at` earlier, halving the distance to the previous fault (or to 0);
//! 6. simplify numeric parameters: packet-loss rate halves down to [`RATE_FLOOR`], a latency's
//!    `max` moves toward its `min`.
//!
//! There is no randomness: the same plan and the same oracle answers give the same result.

use std::time::Duration;

use crate::fault::{Fault, FaultKind};
use crate::history::Verdict;

/// The outcome of trying a candidate plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trial {
    /// The checker still fails: the candidate is kept.
    StillFails,
    /// The checker passes: the candidate lost what made the run fail.
    Passes,
}

/// What a shrink cost and achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShrinkStats {
    /// Oracle calls made (never more than `max_trials`).
    pub trials: u32,
    /// Candidates that still failed and so replaced the current plan.
    pub accepted: u32,
}

/// Shortening stops here: shorter faults rarely read simpler, and each halving costs a run.
pub const DURATION_FLOOR: Duration = Duration::from_millis(100);
/// Shifting snaps a fault onto its predecessor (or 0) once the gap would drop below this.
pub const SHIFT_SNAP: Duration = Duration::from_millis(100);
/// Packet-loss rates halve down to this, not to 0: a zero rate is a no-op the drop pass covers.
pub const RATE_FLOOR: f64 = 0.01;

/// Greedy shrinking to a local minimum: repeat passes of the transformations (see the module
/// docs), keeping any candidate for which `oracle` says [`Trial::StillFails`], until a full
/// pass changes nothing or `max_trials` oracle calls have been made.
///
/// `plan` is assumed to fail already (the oracle is not asked about it). Candidates are only
/// ever valid plans: durations > 0, sorted by `at`, no two identical faults. If nothing is
/// accepted the original plan comes back unchanged.
pub fn shrink(
    plan: Vec<Fault>,
    max_trials: u32,
    oracle: impl FnMut(&[Fault]) -> Trial,
) -> (Vec<Fault>, ShrinkStats) {
    shrink_timed(plan, &[], max_trials, oracle)
}

/// [`shrink`], told when each fault of `plan` began in the failing run (`began[i]` for
/// `plan[i]`; missing or `None`: unknown, or it never began): an anchored fault is first tried
/// at a plain time, where its anchor had placed it.
pub fn shrink_timed(
    plan: Vec<Fault>,
    began: &[Option<Duration>],
    max_trials: u32,
    oracle: impl FnMut(&[Fault]) -> Trial,
) -> (Vec<Fault>, ShrinkStats) {
    let began = (0..plan.len())
        .map(|i| began.get(i).copied().flatten())
        .collect();
    let mut s = Shrinker {
        plan,
        began,
        max_trials,
        oracle,
        stats: ShrinkStats::default(),
    };
    loop {
        let before = s.stats.accepted;
        s.drop_pass();
        s.merge_pass();
        s.shorten_pass();
        s.anchor_pass();
        s.shift_pass();
        s.params_pass();
        if s.stats.accepted == before || s.exhausted() {
            break;
        }
    }
    (s.plan, s.stats)
}

/// The search state: the smallest still-failing plan so far, the oracle and the budget.
struct Shrinker<F> {
    plan: Vec<Fault>,
    /// When each fault of `plan` began in the failing run, as far as known.
    began: Vec<Option<Duration>>,
    max_trials: u32,
    oracle: F,
    stats: ShrinkStats,
}

impl<F: FnMut(&[Fault]) -> Trial> Shrinker<F> {
    fn exhausted(&self) -> bool {
        self.stats.trials >= self.max_trials
    }

    /// Asks the oracle about `candidate` and keeps it if it still fails. Invalid or unchanged
    /// candidates, and any candidate once the budget is spent, are refused without a trial, so
    /// every pass winds down on its own when the budget runs out.
    fn try_candidate(&mut self, candidate: Vec<Fault>) -> bool {
        let began = self.began.clone();
        self.try_timed(candidate, began)
    }

    /// [`Self::try_candidate`] with the fault times that go with `candidate`.
    fn try_timed(&mut self, candidate: Vec<Fault>, began: Vec<Option<Duration>>) -> bool {
        if self.exhausted() || candidate == self.plan || !is_valid(&candidate) {
            return false;
        }
        self.stats.trials += 1;
        match (self.oracle)(&candidate) {
            Trial::StillFails => {
                self.plan = candidate;
                self.began = began;
                self.stats.accepted += 1;
                true
            }
            Trial::Passes => false,
        }
    }

    /// Tries `plan` with fault `i` replaced by `edit` of it; false if `edit` declines.
    fn try_edit(&mut self, i: usize, edit: impl FnOnce(&mut Fault) -> bool) -> bool {
        let mut candidate = self.plan.clone();
        edit(&mut candidate[i]) && self.try_candidate(candidate)
    }

    /// Tries `plan` without the faults in `range`.
    fn try_without(&mut self, range: std::ops::Range<usize>) -> bool {
        let (mut candidate, mut began) = (self.plan.clone(), self.began.clone());
        candidate.drain(range.clone());
        began.drain(range);
        self.try_timed(candidate, began)
    }

    /// ddmin-style removal: chunks of half the plan first (one success halves the work left),
    /// then quarters, and so on down to single faults. After a removal the same index is tried
    /// again, since the next chunk has slid into it.
    fn drop_pass(&mut self) {
        let mut chunk = self.plan.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < self.plan.len() {
                let end = (i + chunk).min(self.plan.len());
                if !self.try_without(i..end) {
                    i += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// Merges pairs `i < j` that overlap or touch into one fault at `i`'s place. Since the plan
    /// is sorted, the merged fault (starting at `i`'s `at`) keeps it sorted.
    fn merge_pass(&mut self) {
        let mut i = 0;
        while i < self.plan.len() {
            let mut j = i + 1;
            while j < self.plan.len() {
                let merged = merge(&self.plan[i], &self.plan[j]);
                let accepted = merged.is_some_and(|m| {
                    let (mut candidate, mut began) = (self.plan.clone(), self.began.clone());
                    candidate[i] = m;
                    candidate.remove(j);
                    began.remove(j);
                    self.try_timed(candidate, began)
                });
                if !accepted {
                    j += 1;
                }
            }
            i += 1;
        }
    }

    /// Halves each fault's duration for as long as the run still fails.
    fn shorten_pass(&mut self) {
        for i in 0..self.plan.len() {
            while self.try_edit(i, shorten_step) {}
        }
    }

    /// Replaces each anchored fault by the same fault at a plain time (where it began, or its
    /// `from` plus its offset), the plan re-sorted; failing that, halves its offset for as long
    /// as the run still fails.
    fn anchor_pass(&mut self) {
        let mut i = 0;
        while i < self.plan.len() {
            let Some(anchor) = self.plan[i].anchor else {
                i += 1;
                continue;
            };
            // Whole milliseconds, so the shrunk plan prints cleanly (the oracle says whether
            // the sub-millisecond difference mattered).
            let exact = self.began[i].unwrap_or(self.plan[i].at + anchor.offset);
            let at = Duration::from_millis(exact.as_millis() as u64);
            let (mut candidate, mut began) = (self.plan.clone(), self.began.clone());
            candidate[i] = Fault::new(at, candidate[i].kind.clone());
            began[i] = Some(at);
            let mut both: Vec<(Fault, Option<Duration>)> =
                candidate.into_iter().zip(began).collect();
            both.sort_by_key(|(f, _)| f.at);
            let (candidate, began) = both.into_iter().unzip();
            if self.try_timed(candidate, began) {
                // The plan was re-sorted: look at every index again.
                i = 0;
                continue;
            }
            loop {
                let (mut candidate, mut began) = (self.plan.clone(), self.began.clone());
                let Some(a) = candidate[i].anchor.as_mut() else {
                    break;
                };
                if a.offset.is_zero() {
                    break;
                }
                let half = half_ms(a.offset);
                began[i] = began[i].map(|b| b.saturating_sub(a.offset - half));
                a.offset = half;
                if !self.try_timed(candidate, began) {
                    break;
                }
            }
            i += 1;
        }
    }

    /// Moves each fault earlier by halving its distance to the previous fault's `at` (or to 0
    /// for the first). Never moving past the predecessor keeps the plan sorted without
    /// reordering, so the shrunk plan still reads in the original order.
    fn shift_pass(&mut self) {
        for i in 0..self.plan.len() {
            let floor = if i == 0 {
                Duration::ZERO
            } else {
                self.plan[i - 1].at
            };
            while self.try_edit(i, |f| shift_step(f, floor)) {}
        }
    }

    /// Simplifies numeric parameters where smaller is plainly simpler.
    fn params_pass(&mut self) {
        for i in 0..self.plan.len() {
            while self.try_edit(i, simplify_param) {}
        }
    }
}

/// What kind of failure a verdict is: its checker and its summary without numbers, so a
/// shrink keeps "duplicate output" from turning into "missing records".
pub fn failure_class(v: &Verdict) -> (String, String) {
    (
        v.checker.to_string(),
        v.summary.chars().filter(|c| !c.is_ascii_digit()).collect(),
    )
}

/// A valid plan: every duration > 0, sorted by `at`, and no fault listed twice.
fn is_valid(plan: &[Fault]) -> bool {
    let positive = plan
        .iter()
        .all(|f| f.duration().is_none_or(|d| !d.is_zero()));
    let sorted = plan.windows(2).all(|w| w[0].at <= w[1].at);
    let distinct = plan
        .iter()
        .enumerate()
        .all(|(i, f)| !plan[i + 1..].contains(f));
    positive && sorted && distinct
}

/// `a` and `b` (with `a.at <= b.at`) as one fault spanning both, if they are the same kind on
/// the same target(s) with equal parameters, both end by themselves, and overlap or touch.
fn merge(a: &Fault, b: &Fault) -> Option<Fault> {
    let (a_end, b_end) = (a.end()?, b.end()?);
    if !same_but_duration(a, b) || b.at > a_end {
        return None;
    }
    let mut merged = a.clone();
    *merged.duration_mut()? = a_end.max(b_end) - a.at;
    Some(merged)
}

/// Whether two faults differ at most in `at` and duration: then they are "the same fault"
/// twice and a merge changes nothing but the interval.
fn same_but_duration(a: &Fault, b: &Fault) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    for f in [&mut a, &mut b] {
        f.at = Duration::ZERO;
        if let Some(d) = f.duration_mut() {
            *d = Duration::ZERO;
        }
    }
    a == b
}

/// One halving of a fault's duration; false if it has none or is at the floor.
fn shorten_step(f: &mut Fault) -> bool {
    let Some(d) = f.duration_mut() else {
        return false;
    };
    let Some(half) = halve_duration(*d) else {
        return false;
    };
    *d = half;
    true
}

/// One shift of `f` toward `floor` (its predecessor's `at`); false if it is already there.
fn shift_step(f: &mut Fault, floor: Duration) -> bool {
    let Some(gap) = shift_gap(f.at.saturating_sub(floor)) else {
        return false;
    };
    f.at = floor + gap;
    true
}

/// Half of `d`, in whole milliseconds so shrunk plans print cleanly, but not below
/// [`DURATION_FLOOR`]; `None` once `d` is at the floor.
fn halve_duration(d: Duration) -> Option<Duration> {
    (d > DURATION_FLOOR).then(|| half_ms(d).max(DURATION_FLOOR))
}

/// The next, halved gap to the previous fault: whole milliseconds, and 0 once it would drop
/// below [`SHIFT_SNAP`] (starting together with the predecessor is the simplest timing);
/// `None` when the gap is already 0.
fn shift_gap(gap: Duration) -> Option<Duration> {
    let half = half_ms(gap);
    (!gap.is_zero()).then_some(if half < SHIFT_SNAP {
        Duration::ZERO
    } else {
        half
    })
}

/// Half of `d`, truncated to whole milliseconds.
fn half_ms(d: Duration) -> Duration {
    Duration::from_millis((d.as_millis() / 2) as u64)
}

/// One simplification step of a fault's numeric parameters; false if there is none left.
/// Latency keeps `max` at least 1 ms above `min`, so `min..max` never becomes an empty range.
fn simplify_param(f: &mut Fault) -> bool {
    match &mut f.kind {
        FaultKind::PacketLoss { rate, .. } if *rate > RATE_FLOOR => {
            *rate = (*rate / 2.0).max(RATE_FLOOR);
            true
        }
        FaultKind::Latency { min, max, .. } => {
            let gap = half_ms(max.saturating_sub(*min));
            let shrinks = !gap.is_zero();
            if shrinks {
                *max = *min + gap;
            }
            shrinks
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Direction;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }
    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }
    fn fault(at: Duration, kind: FaultKind) -> Fault {
        Fault::new(at, kind)
    }
    fn crash(at: Duration, target: &str, restart: Duration) -> Fault {
        fault(
            at,
            FaultKind::Crash {
                target: target.into(),
                restart_after: Some(restart),
            },
        )
    }
    fn partition(at: Duration, target: &str, heal: Duration) -> Fault {
        let kind = FaultKind::Partition {
            target: target.into(),
            direction: Direction::Both,
            heal_after: Some(heal),
        };
        fault(at, kind)
    }
    fn pause(at: Duration, target: &str, duration: Duration) -> Fault {
        fault(
            at,
            FaultKind::Pause {
                target: target.into(),
                duration,
            },
        )
    }
    fn targets(f: &Fault, name: &str) -> bool {
        f.targets() == [name]
    }

    /// Wraps an oracle so every candidate it sees is checked for validity.
    fn checked(mut oracle: impl FnMut(&[Fault]) -> bool) -> impl FnMut(&[Fault]) -> Trial {
        move |plan: &[Fault]| {
            assert!(is_valid(plan), "invalid candidate: {plan:?}");
            if oracle(plan) {
                Trial::StillFails
            } else {
                Trial::Passes
            }
        }
    }

    fn six_fault_plan() -> Vec<Fault> {
        vec![
            crash(s(1.0), "tm-1", s(2.0)),
            partition(s(2.0), "tm-3", s(4.0)),
            crash(s(5.0), "tm-2", s(3.0)),
            pause(s(6.0), "tm-1", s(1.0)),
            fault(
                s(7.0),
                FaultKind::PacketLoss {
                    rate: 0.3,
                    duration: Some(s(5.0)),
                },
            ),
            fault(
                s(9.0),
                FaultKind::ClockSkew {
                    target: "tm-3".into(),
                    offset_ms: 500,
                },
            ),
        ]
    }

    #[test]
    fn drops_everything_but_the_culprit_crash() {
        let is_culprit =
            |f: &Fault| matches!(f.kind, FaultKind::Crash { .. }) && targets(f, "tm-2");
        let (plan, stats) = shrink(
            six_fault_plan(),
            1000,
            checked(|p| p.iter().any(is_culprit)),
        );
        // Restart shortened to the floor, then shifted to 0 (halving 5s down past the snap).
        assert_eq!(plan, vec![crash(Duration::ZERO, "tm-2", DURATION_FLOOR)]);
        assert!(stats.accepted > 0 && stats.trials < 1000);
    }

    /// Partition seconds of tm-1, summed over faults.
    fn tm1_partition_time(plan: &[Fault]) -> Duration {
        let parts = plan
            .iter()
            .filter(|f| matches!(f.kind, FaultKind::Partition { .. }) && targets(f, "tm-1"));
        parts.filter_map(Fault::duration).sum()
    }

    #[test]
    fn merges_overlapping_partitions_into_one() {
        // 1s..3s and 2s..4s: either alone is 2s (passes); merged they span exactly 3s, and
        // halving 3s passes, so the merged partition keeps exactly 3s and only moves to 0.
        let plan = vec![
            partition(s(1.0), "tm-1", s(2.0)),
            crash(s(1.5), "tm-2", s(1.0)),
            partition(s(2.0), "tm-1", s(2.0)),
        ];
        let (plan, _) = shrink(plan, 1000, checked(|p| tm1_partition_time(p) >= s(3.0)));
        assert_eq!(plan, vec![partition(Duration::ZERO, "tm-1", s(3.0))]);
    }

    #[test]
    fn merges_touching_partitions() {
        // 1s..2.5s and 2.5s..4s touch: neither alone reaches 3s; merged they span exactly 3s.
        let plan = vec![
            partition(s(1.0), "tm-1", s(1.5)),
            partition(s(2.5), "tm-1", s(1.5)),
        ];
        let (plan, _) = shrink(plan, 1000, checked(|p| tm1_partition_time(p) >= s(3.0)));
        assert_eq!(plan.len(), 1);
        let d = plan[0].duration().unwrap();
        assert!((s(3.0)..=s(6.0)).contains(&d), "{d:?}");
        assert_eq!(plan, vec![partition(Duration::ZERO, "tm-1", s(3.0))]);
    }

    #[test]
    fn does_not_merge_different_directions_or_targets() {
        let inbound = FaultKind::Partition {
            target: "tm-1".into(),
            direction: Direction::Inbound,
            heal_after: Some(s(2.0)),
        };
        let a = partition(s(1.0), "tm-1", s(2.0));
        assert!(merge(&a, &fault(s(2.0), inbound)).is_none());
        assert!(merge(&a, &partition(s(2.0), "tm-2", s(2.0))).is_none());
        assert!(
            merge(&a, &partition(s(3.5), "tm-1", s(2.0))).is_none(),
            "a gap is not a touch"
        );
        assert_eq!(
            merge(&a, &partition(s(1.5), "tm-1", s(0.5))),
            Some(a.clone()),
            "contained"
        );
    }

    #[test]
    fn shifts_a_pause_earlier_while_it_still_fails() {
        let early_pause = |p: &[Fault]| {
            p.iter()
                .any(|f| matches!(f.kind, FaultKind::Pause { .. }) && f.at < s(10.0))
        };
        let plan = vec![crash(s(2.0), "tm-1", s(1.0)), pause(s(8.0), "tm-2", s(5.0))];
        let (shrunk, _) = shrink(plan, 1000, checked(early_pause));
        assert_eq!(shrunk, vec![pause(Duration::ZERO, "tm-2", DURATION_FLOOR)]);

        // A window the pause must stay in: 8s halves to 4s, and 2s would leave it.
        let in_window = |p: &[Fault]| p.iter().any(|f| f.at >= s(3.0) && f.at < s(10.0));
        let (shrunk, _) = shrink(
            vec![pause(s(8.0), "tm-2", s(1.0))],
            1000,
            checked(in_window),
        );
        assert_eq!(shrunk, vec![pause(s(4.0), "tm-2", DURATION_FLOOR)]);
    }

    #[test]
    fn shift_never_passes_the_previous_fault() {
        let plan = vec![crash(s(4.0), "tm-1", s(1.0)), pause(s(6.0), "tm-2", s(1.0))];
        let both = |p: &[Fault]| p.len() == 2;
        let (shrunk, _) = shrink(plan, 1000, checked(both));
        let expected = vec![
            crash(Duration::ZERO, "tm-1", DURATION_FLOOR),
            pause(Duration::ZERO, "tm-2", DURATION_FLOOR),
        ];
        assert_eq!(shrunk, expected);
    }

    fn anchored_crash(offset: Duration) -> Fault {
        use crate::fault::{Anchor, AnchorEvent};
        let anchor = Anchor {
            event: AnchorEvent::CheckpointTriggered,
            checkpoint: Some(5),
            offset,
        };
        Fault::anchored(
            anchor,
            Duration::ZERO,
            FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: Some(s(3.0)),
            },
        )
    }

    #[test]
    fn an_anchored_fault_becomes_a_plain_one_where_it_began() {
        // Fails with the crash anchored, or at a plain time from 5 s on (where chk-5's
        // alignment was in the failing run).
        let late_crash = |p: &[Fault]| {
            p.iter().any(|f| {
                matches!(f.kind, FaultKind::Crash { .. }) && (f.anchor.is_some() || f.at >= s(5.0))
            })
        };
        let plan = vec![pause(s(1.0), "tm-1", s(1.0)), anchored_crash(ms(20))];
        // It began 5.0204 s in: the plain fault gets whole milliseconds.
        let began = [Some(s(1.0)), Some(Duration::from_micros(5_020_400))];
        let (shrunk, _) = shrink_timed(plan, &began, 1000, checked(late_crash));
        // The pause is dropped (and its time with it); the crash keeps its own, which no
        // shift can halve without leaving the window.
        assert_eq!(shrunk, vec![crash(ms(5_020), "tm-2", DURATION_FLOOR)]);
        // Without the run's times the plain time is `from` plus the offset: too early here,
        // so the anchor stays, its offset halved to 0 (the event itself).
        let (shrunk, _) = shrink(vec![anchored_crash(ms(20))], 1000, checked(late_crash));
        assert_eq!(shrunk.len(), 1);
        assert_eq!(shrunk[0].anchor.map(|a| a.offset), Some(Duration::ZERO));
    }

    #[test]
    fn an_anchor_offset_halves_while_the_run_still_fails() {
        // Fails only anchored, and only 15 ms or more into the alignment.
        let deep = |p: &[Fault]| {
            p.iter()
                .any(|f| f.anchor.is_some_and(|a| a.offset >= ms(15)))
        };
        let (shrunk, stats) = shrink(vec![anchored_crash(ms(200))], 1000, checked(deep));
        // 200 -> 100 -> 50 -> 25; 12 would pass.
        assert_eq!(shrunk[0].anchor.map(|a| a.offset), Some(ms(25)));
        assert_eq!(shrunk[0].duration(), Some(DURATION_FLOOR));
        assert!(stats.accepted >= 3);
    }

    #[test]
    fn simplifies_loss_rate_and_latency_range() {
        let plan = vec![
            fault(
                s(1.0),
                FaultKind::PacketLoss {
                    rate: 0.8,
                    duration: Some(s(1.0)),
                },
            ),
            fault(
                s(1.0),
                FaultKind::Latency {
                    min: ms(10),
                    max: ms(200),
                    duration: Some(s(1.0)),
                },
            ),
        ];
        let fails = |p: &[Fault]| {
            let lossy = p
                .iter()
                .any(|f| matches!(f.kind, FaultKind::PacketLoss { rate, .. } if rate >= 0.1));
            let slow = p
                .iter()
                .any(|f| matches!(f.kind, FaultKind::Latency { max, .. } if max >= ms(50)));
            lossy && slow
        };
        let (shrunk, _) = shrink(plan, 1000, checked(fails));
        assert_eq!(
            shrunk,
            vec![
                fault(
                    Duration::ZERO,
                    FaultKind::PacketLoss {
                        rate: 0.1,
                        duration: Some(DURATION_FLOOR)
                    }
                ),
                // Gap 190ms -> 95 -> 47 (max 57ms); 23 would give 33ms and pass.
                fault(
                    Duration::ZERO,
                    FaultKind::Latency {
                        min: ms(10),
                        max: ms(57),
                        duration: Some(DURATION_FLOOR)
                    }
                ),
            ]
        );
    }

    #[test]
    fn max_trials_bounds_oracle_calls_and_stats_count_them() {
        for budget in [0, 1, 5, 17] {
            let (mut calls, mut fails) = (0, 0);
            let oracle = |p: &[Fault]| {
                calls += 1;
                let fail = p.len() >= 2; // keeps shrinking busy well past the budget
                fails += u32::from(fail);
                if fail {
                    Trial::StillFails
                } else {
                    Trial::Passes
                }
            };
            let (_, stats) = shrink(six_fault_plan(), budget, oracle);
            assert_eq!((stats.trials, calls), (budget, budget));
            assert_eq!(stats.accepted, fails);
        }
    }

    #[test]
    fn always_passing_oracle_returns_plan_unchanged() {
        let mut calls = 0;
        let (plan, stats) = shrink(six_fault_plan(), 1000, |_: &[Fault]| {
            calls += 1;
            Trial::Passes
        });
        assert_eq!(plan, six_fault_plan());
        assert_eq!(
            stats,
            ShrinkStats {
                trials: calls,
                accepted: 0
            }
        );
        assert!(calls > 0);
    }

    #[test]
    fn same_input_same_output() {
        let run = || {
            shrink(
                six_fault_plan(),
                1000,
                checked(|p| p.iter().filter(|f| f.duration().is_some()).count() >= 2),
            )
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn never_offers_duplicates_or_zero_durations() {
        // Two pauses that shrink toward each other: the candidate making them identical is
        // refused before the oracle (which `checked` would fail on).
        let plan = vec![pause(s(1.0), "tm-1", s(0.4)), pause(s(1.0), "tm-1", s(0.2))];
        let (shrunk, _) = shrink(plan, 1000, checked(|p| p.len() == 2));
        assert_eq!(shrunk.len(), 2);
        assert_ne!(shrunk[0], shrunk[1]);
    }
}
