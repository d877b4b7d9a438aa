//! The harness's side of buggify ([`rill::buggify`]): which of the runtime's named points are
//! live in a run, whether a live one fires at an evaluation and for how long, and the record
//! of every firing.
//!
//! A scenario makes points live with `buggify = [..]` (or `"all"`) at its top level: live in
//! every seed. A swarm names candidates with `[swarm] buggify = [..]` (or `"all"`): each seed
//! makes each of them live with probability 1/2, from a stream of its own, so the faults a seed
//! draws are those it drew before buggify existed. Without a live point no hook is installed
//! and the run is exactly what it was.
//!
//! A live point fires at an evaluation with its [`PointSpec::percent`](rill::buggify::PointSpec)
//! (FoundationDB's 25% for most), with a delay drawn in whole milliseconds in its range, from a
//! ChaCha8 stream seeded by the run's seed: inside the simulator every evaluation comes in one
//! order, so a seed fires the same points at the same times every time. Each firing becomes a
//! [`Buggified`] in `RunHistory::buggified` (with its virtual time and node) and a trace line;
//! the timeline, `run` and the report show them, and the derived bounds allow for them
//! ([`widen`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rill::buggify::{BuggifyHook, Installed, Point};
use tokio::time::Instant;

use crate::check::Bounds;
use crate::fault::format_duration;
use crate::node::NodeName;
use crate::scenario::{Scenario, Swarm};

/// Mixed into the seed for the swarm's draw of live points (apart from its fault draw's).
const DRAW_SALT: u64 = 0x4255_4747_4946_5931;
/// Mixed into the seed for the firings' stream.
const FIRE_SALT: u64 = 0x4255_4747_4946_5932;

/// One firing of a buggify point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buggified {
    /// Virtual time since the job's submission (0 before it).
    pub at: Duration,
    /// The node it fired on.
    pub node: NodeName,
    /// The point.
    pub point: Point,
    /// The delay it added.
    pub delay: Duration,
}

impl fmt::Display for Buggified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buggify {} +{}", self.point, format_duration(self.delay))
    }
}

/// Which of a swarm's buggify candidates seed `seed` makes live: each with probability 1/2,
/// from a stream of its own (the seed's fault plan does not change).
pub fn draw(swarm: &Swarm, seed: u64) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ DRAW_SALT);
    swarm
        .buggify
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(0.5))
        .collect()
}

/// The points live in a run of `s` under `seed`: the scenario's, and those its swarm draws;
/// sorted, each once.
pub fn live_points(s: &Scenario, seed: u64) -> Vec<Point> {
    let mut live: BTreeSet<Point> = s.buggify.iter().copied().collect();
    if let Some(sw) = &s.swarm {
        live.extend(draw(sw, seed));
    }
    live.into_iter().collect()
}

/// Where an evaluation happens: the node of the task that asks.
pub type Locator = Box<dyn Fn() -> NodeName + Send>;

struct State {
    live: BTreeSet<Point>,
    rng: ChaCha8Rng,
    start: Option<Instant>,
    locate: Option<Locator>,
    firings: Vec<Buggified>,
}

/// The hook a run installs: its live points, its stream, its record. Clones share them.
#[derive(Clone)]
pub struct Buggifier(Arc<Mutex<State>>);

impl Buggifier {
    /// A hook for a run under `seed` in which `live` are live.
    pub fn new(live: &[Point], seed: u64) -> Self {
        Buggifier(Arc::new(Mutex::new(State {
            live: live.iter().copied().collect(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ FIRE_SALT),
            start: None,
            locate: None,
            firings: Vec::new(),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs it on this thread while any point is live (else nothing: the run is what it
    /// would be without buggify); uninstalled when the guard is dropped.
    pub fn install(&self) -> Option<Installed> {
        let any = !self.state().live.is_empty();
        any.then(|| rill::buggify::install(Box::new(self.clone())))
    }

    /// Firings' times count from here (the job's submission).
    pub fn set_start(&self, start: Instant) {
        self.state().start = Some(start);
    }

    /// How a firing learns its node (the harness's node when none is set).
    pub fn set_locator(&self, locate: Locator) {
        self.state().locate = Some(locate);
    }

    /// Every firing so far, in order.
    pub fn firings(&self) -> Vec<Buggified> {
        self.state().firings.clone()
    }
}

impl BuggifyHook for Buggifier {
    fn evaluate(&self, point: Point, min: Duration, max: Duration) -> Option<Duration> {
        let firing = {
            let mut st = self.state();
            if !st.live.contains(&point) || st.rng.gen_range(0..100) >= point.spec().percent {
                return None;
            }
            let max = max.as_millis() as u64;
            let min = (min.as_millis() as u64).min(max);
            let delay = Duration::from_millis(st.rng.gen_range(min..=max));
            let at = st
                .start
                .map(|s| Instant::now().saturating_duration_since(s))
                .unwrap_or_default();
            let node = st.locate.as_ref().map_or(NodeName::Harness, |f| f());
            let firing = Buggified {
                at,
                node,
                point,
                delay,
            };
            st.firings.push(firing.clone());
            firing
        };
        tracing::info!(target: "rill_sim::buggify", "{firing}");
        Some(firing.delay)
    }
}

/// One line on a run's buggify: the live points, and how often each fired with its longest
/// delay; `None` when none was live.
pub fn summary(live: &[Point], firings: &[Buggified]) -> Option<String> {
    if live.is_empty() {
        return None;
    }
    let names: Vec<&str> = live.iter().map(|p| p.name()).collect();
    let mut fired: BTreeMap<Point, (usize, Duration)> = BTreeMap::new();
    for b in firings {
        let e = fired.entry(b.point).or_default();
        *e = (e.0 + 1, e.1.max(b.delay));
    }
    let fired: Vec<String> = fired
        .iter()
        .map(|(p, (n, longest))| format!("{p} x{n} (longest +{})", format_duration(*longest)))
        .collect();
    let fired = match fired.is_empty() {
        true => "none fired".to_string(),
        false => {
            let s = if firings.len() == 1 { "" } else { "s" };
            format!("{} firing{s}: {}", firings.len(), fired.join(", "))
        }
    };
    Some(format!("buggify: live {}; {fired}", names.join(", ")))
}

/// What the points that fired may add to a derived bound: per point, its longest delay.
/// `None` when nothing fired.
pub fn allowance(firings: &[Buggified]) -> Option<(Duration, Vec<Point>)> {
    let fired: BTreeSet<Point> = firings.iter().map(|f| f.point).collect();
    let total = fired.iter().map(|p| p.spec().max).sum();
    (!fired.is_empty()).then(|| (total, fired.into_iter().collect()))
}

/// Widens the bounds derived for a run (not those its scenario gives: a scenario that turns
/// buggify on states its bounds knowing it) by what the points that fired may add: each
/// point's longest delay, once. The stall and recovery bounds, and the detection time (a
/// TaskManager's last report may reach the JobManager's actor late).
pub fn widen(bounds: &mut Bounds, firings: &[Buggified]) {
    let Some((extra, points)) = allowance(firings) else {
        return;
    };
    let names: Vec<&str> = points.iter().map(|p| p.name()).collect();
    let note = format!(
        " + buggify {} ({})",
        format_duration(extra),
        names.join(", ")
    );
    for bound in [&mut bounds.stall, &mut bounds.recovery] {
        if bound.source != "given" {
            bound.value += extra;
            bound.source += &note;
        }
    }
    bounds.timing.detection += extra;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swarm(points: &[Point]) -> Swarm {
        Swarm {
            kinds: vec!["crash".into()],
            min_faults: 1,
            max_faults: 3,
            from: Duration::ZERO,
            until: Duration::from_secs(10),
            max_duration: Duration::from_secs(5),
            anchored_percent: 50,
            buggify: points.to_vec(),
        }
    }

    #[test]
    fn a_swarm_draws_a_subset_per_seed_the_same_each_time() {
        let all = swarm(&Point::ALL);
        let draws: BTreeSet<Vec<Point>> = (0..40).map(|seed| draw(&all, seed)).collect();
        assert!(draws.len() > 20, "seeds should draw different subsets");
        for seed in 0..40 {
            let d = draw(&all, seed);
            assert_eq!(d, draw(&all, seed));
            assert!(d.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(draw(&swarm(&[]), 3).is_empty());
    }

    #[test]
    fn a_hook_fires_only_live_points_and_a_seed_fires_the_same_way() {
        let run = |seed| {
            let b = Buggifier::new(&[Point::RestoreSlow], seed);
            let fired: Vec<Option<Duration>> = (0..200)
                .map(|_| {
                    assert_eq!(b.evaluate(Point::ControlMessageLate, ms(1), ms(9)), None);
                    b.evaluate(Point::RestoreSlow, ms(10), ms(20))
                })
                .collect();
            (fired, b.firings())
        };
        let (fired, firings) = run(7);
        assert_eq!(run(7), (fired.clone(), firings.clone()));
        assert_ne!(run(8).0, fired);
        // About a quarter fire (25%), each within the range asked for, each recorded.
        let n = fired.iter().flatten().count();
        assert!((25..=75).contains(&n), "{n} of 200");
        assert!(fired
            .iter()
            .flatten()
            .all(|d| (ms(10)..=ms(20)).contains(d)));
        assert_eq!(firings.len(), n);
        assert!(firings
            .iter()
            .all(|f| f.point == Point::RestoreSlow && f.node == NodeName::Harness));
    }

    #[test]
    fn nothing_is_installed_without_a_live_point() {
        assert!(Buggifier::new(&[], 1).install().is_none());
        let b = Buggifier::new(&[Point::BuffersRunDry], 1);
        let guard = b.install();
        assert!(guard.is_some() && rill::buggify::installed());
        drop(guard);
        assert!(!rill::buggify::installed());
    }

    #[test]
    fn the_allowance_is_each_fired_points_longest_delay_once() {
        assert_eq!(allowance(&[]), None);
        let f = |point| Buggified {
            at: ms(1),
            node: NodeName::JobManager,
            point,
            delay: ms(1),
        };
        let firings = [
            f(Point::RestoreSlow),
            f(Point::RestoreSlow),
            f(Point::ControlMessageLate),
        ];
        let (extra, points) = allowance(&firings).unwrap();
        assert_eq!(
            extra,
            Point::RestoreSlow.spec().max + Point::ControlMessageLate.spec().max
        );
        assert_eq!(points, vec![Point::ControlMessageLate, Point::RestoreSlow]);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}
