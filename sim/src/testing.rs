//! Helpers for simulated tests in any crate (a user's too): which seeds a test runs, the command
//! that replays one failing seed of that test, and the part of a run's timeline a snapshot
//! keeps.

use std::time::Duration;

use crate::events::timeline;
use crate::history::RunHistory;

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

/// A run's timeline (faults and cluster events) from just before its first fault to the end,
/// or all of it without faults, at most `max_lines` lines: what a recovery snapshot stores.
pub fn recovery_window(h: &RunHistory, max_lines: usize) -> String {
    let from = h
        .faults
        .iter()
        .map(|f| f.fault.at)
        .min()
        .map(|at| at.saturating_sub(Duration::from_millis(500)));
    timeline(h)
        .into_iter()
        .filter(|(at, _)| from.is_none_or(|f| *at >= f))
        .take(max_lines)
        .fold(String::new(), |out, (_, line)| out + &line + "\n")
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
    fn a_replay_names_the_package_the_test_and_the_seed() {
        let cmd = replay("card-risk", "sim::every_scenario_passes", 7);
        assert!(cmd.starts_with("RILL_SEEDS=7 "), "{cmd}");
        assert!(cmd.contains("-p card-risk") && cmd.contains("--exact sim::every_scenario_passes"));
        assert!(cmd.contains("--cfg madsim"));
    }
}
