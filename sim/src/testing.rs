//! Helpers for simulated tests in any crate (a user's too): which seeds a test runs, the command
//! that replays one failing seed of that test, the part of a run's timeline a snapshot keeps,
//! HTML reports on request, and [`SimTest`], which puts them together:
//!
//! ```ignore
//! #[test]
//! fn survives_a_taskmanager_crash() {
//!     let harness = rill_sim::runner::Harness::new(my_crate::registry());
//!     let scenario = rill_sim::scenario_file::load_file_with(path, harness.jobs()).unwrap();
//!     SimTest::new("my-crate", "survives_a_taskmanager_crash", &[1, 2, 3])
//!         .assert_passes(&harness, &scenario);
//! }
//! ```
//!
//! A failing seed panics with every failed verdict, its evidence and the command that replays
//! that seed of that test alone; `RILL_SEEDS=7` runs only seed 7, and `RILL_REPORT=DIR` writes
//! an HTML report of every run into `DIR`.

use std::path::PathBuf;
use std::time::Duration;

use crate::events::timeline_of;
use crate::history::{RunHistory, Verdict};

/// The environment variable that narrows a seeded test to the seeds it names: `RILL_SEEDS=7`,
/// `RILL_SEEDS=1,5,9` or `RILL_SEEDS=10..20` (see [`parse_seeds`]).
pub const SEEDS_VAR: &str = "RILL_SEEDS";

/// The seeds a test runs: those of [`SEEDS_VAR`] when it is set (to replay one), else `fixed`.
///
/// # Panics
/// On a [`SEEDS_VAR`] that names no seed or something that is not one: a test must not pass
/// by running nothing.
pub fn seeds(fixed: &[u64]) -> Vec<u64> {
    match std::env::var(SEEDS_VAR) {
        Ok(list) if !list.trim().is_empty() => parse_seeds(&list)
            .unwrap_or_else(|bad| panic!("{SEEDS_VAR}={list}: '{bad}' is not a seed")),
        _ => fixed.to_vec(),
    }
}

/// Seeds as people write them on a command line or in [`SEEDS_VAR`]: `7`, `1,5,9`, a range
/// `A..B` (B exclusive) or a mix (`1..4,9`). The first item that is not a seed or a non-empty
/// range is the error, so a list never silently names no seed.
pub fn parse_seeds(list: &str) -> Result<Vec<u64>, String> {
    let mut seeds = Vec::new();
    for item in list.split(',').map(str::trim) {
        let bad = || item.to_string();
        match item.split_once("..") {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a >= b {
                    return Err(bad());
                }
                seeds.extend(a..b);
            }
            None => seeds.push(item.parse().map_err(|_| bad())?),
        }
    }
    Ok(seeds)
}

/// The command that replays `seed` of the simulated test `test` of package `package`: one
/// copy-paste from a failure message.
pub fn replay(package: &str, test: &str, seed: u64) -> String {
    format!(
        "{SEEDS_VAR}={seed} RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target-sim cargo test -p {package} -- --exact {test} --nocapture"
    )
}

/// The environment variable that asks seeded tests for HTML reports: `RILL_REPORT=DIR` writes
/// one per run into `DIR` (`<scenario>-seed<N>.html`).
pub const REPORT_VAR: &str = "RILL_REPORT";

/// Where [`REPORT_VAR`] asks for reports, if it does.
pub fn report_dir() -> Option<PathBuf> {
    std::env::var_os(REPORT_VAR)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// One seeded simulated test: the package and test it is (for the replay command) and the
/// seeds it runs ([`seeds`]: the fixed ones, or those of [`SEEDS_VAR`]).
#[derive(Debug, Clone)]
pub struct SimTest {
    package: String,
    test: String,
    seeds: Vec<u64>,
}

impl SimTest {
    /// The test `test` of package `package` (as `cargo test -p` names them), over `fixed`
    /// seeds unless [`SEEDS_VAR`] names others.
    pub fn new(package: &str, test: &str, fixed: &[u64]) -> Self {
        SimTest {
            package: package.to_string(),
            test: test.to_string(),
            seeds: seeds(fixed),
        }
    }

    /// The seeds it runs.
    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    /// The command that replays `seed` of this test alone.
    pub fn replay(&self, seed: u64) -> String {
        replay(&self.package, &self.test, seed)
    }

    /// What a failing run says: every failed verdict with its evidence, and its replay.
    pub fn failure(&self, history: &RunHistory, verdicts: &[Verdict]) -> String {
        let failed: Vec<String> = verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| {
                let evidence = v.evidence.as_deref().unwrap_or("");
                format!("{}: {} ({evidence})", v.checker, v.summary)
            })
            .collect();
        format!(
            "{} seed {}:\n  {}\nreplay: {}",
            history.scenario,
            history.seed,
            failed.join("\n  "),
            self.replay(history.seed)
        )
    }

    /// Writes the HTML report of one run into [`report_dir`], if reports were asked for;
    /// returns where.
    pub fn write_report(&self, history: &RunHistory, verdicts: &[Verdict]) -> Option<PathBuf> {
        let dir = report_dir()?;
        let file = dir.join(format!("{}-seed{}.html", history.scenario, history.seed));
        let run = crate::report::ReportRun {
            history,
            verdicts,
            replay: self.replay(history.seed),
        };
        let html = crate::report::render_html(&history.scenario, &[run]);
        let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, html));
        match written {
            Ok(()) => Some(file),
            Err(e) => panic!("{REPORT_VAR}: cannot write {}: {e}", file.display()),
        }
    }
}

#[cfg(madsim)]
impl SimTest {
    /// Runs `scenario` under every seed of the test; writes reports if asked for.
    pub fn run(
        &self,
        harness: &crate::runner::Harness,
        scenario: &crate::Scenario,
    ) -> Vec<crate::runner::RunOutcome> {
        self.seeds
            .iter()
            .map(|&seed| {
                let outcome = harness.run(scenario, seed);
                self.write_report(&outcome.history, &outcome.verdicts);
                outcome
            })
            .collect()
    }

    /// Runs `scenario` under every seed, and panics with the failures of every seed that
    /// failed (each with its replay command); returns the outcomes for further checks.
    pub fn assert_passes(
        &self,
        harness: &crate::runner::Harness,
        scenario: &crate::Scenario,
    ) -> Vec<crate::runner::RunOutcome> {
        let outcomes = self.run(harness, scenario);
        let failures: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.passed())
            .map(|o| self.failure(&o.history, &o.verdicts))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        outcomes
    }
}

/// A run's timeline (faults and cluster events) from just before its first fault to the end,
/// or all of it without faults, at most `max_lines` lines: what a recovery snapshot stores.
/// An anchored fault counts from when it began (its anchor's resolved time), or not at all if
/// its anchor never came. Buggify firings, hundreds a run, are left out of the lines and
/// summed up in one last line (which points were live, how often each fired).
pub fn recovery_window(h: &RunHistory, max_lines: usize) -> String {
    let from = h
        .faults
        .iter()
        .filter_map(|f| match f.fault.anchor {
            None => Some(f.fault.at),
            Some(_) => f.began_at,
        })
        .min()
        .map(|at| at.saturating_sub(Duration::from_millis(500)));
    let window = timeline_of(h, false)
        .into_iter()
        .filter(|(at, _)| from.is_none_or(|f| *at >= f))
        .take(max_lines)
        .fold(String::new(), |out, (_, line)| out + &line + "\n");
    match crate::buggify::summary(&h.buggify, &h.buggified) {
        Some(summary) => window + &summary + "\n",
        None => window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_parse_or_name_what_is_not_a_seed() {
        assert_eq!(parse_seeds("7"), Ok(vec![7]));
        assert_eq!(parse_seeds(" 1, 5 ,9"), Ok(vec![1, 5, 9]));
        assert_eq!(parse_seeds("1;2"), Err("1;2".to_string()));
        assert_eq!(parse_seeds("3,x"), Err("x".to_string()));
        assert_eq!(parse_seeds("3..6"), Ok(vec![3, 4, 5]));
        assert_eq!(parse_seeds("1..3, 9"), Ok(vec![1, 2, 9]));
        assert_eq!(parse_seeds("5..5"), Err("5..5".to_string()));
        assert_eq!(parse_seeds("a..b"), Err("a..b".to_string()));
        assert_eq!(parse_seeds(""), Err(String::new()));
    }

    #[test]
    fn a_failure_names_every_failed_verdict_and_the_replay_of_its_seed() {
        let t = SimTest {
            package: "card-risk".into(),
            test: "survives".into(),
            seeds: vec![7],
        };
        let h = RunHistory {
            scenario: "crash".into(),
            seed: 7,
            ..Default::default()
        };
        let verdicts = [
            Verdict::pass("stall", "fine"),
            Verdict::fail("delivery", "2 duplicated", "record X twice"),
        ];
        let text = t.failure(&h, &verdicts);
        assert!(
            text.contains("delivery: 2 duplicated (record X twice)"),
            "{text}"
        );
        assert!(!text.contains("stall"), "{text}");
        assert!(
            text.contains("RILL_SEEDS=7 ") && text.contains("--exact survives"),
            "{text}"
        );
    }

    #[test]
    fn a_replay_names_the_package_the_test_and_the_seed() {
        let cmd = replay("card-risk", "sim::every_scenario_passes", 7);
        assert!(cmd.starts_with("RILL_SEEDS=7 "), "{cmd}");
        assert!(cmd.contains("-p card-risk") && cmd.contains("--exact sim::every_scenario_passes"));
        assert!(cmd.contains("--cfg madsim"));
    }
}
