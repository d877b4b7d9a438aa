//! Coverage-guided scenario search: what a fuzz target (`fuzz/`, cargo-fuzz and libFuzzer)
//! does with one input. The input's bytes become a scenario and a simulator seed
//! ([`generate_from_bytes`] under [`Profile::FUZZ`]: short runs, so libFuzzer gets many
//! executions), the harness runs it in a fresh simulator, and the checkers are the oracle: a
//! failing verdict (or a panic in the runtime or the harness) is a finding. A finding is
//! written as a scenario file, the same scenario with its plan shrunk, and a summary with the
//! replay command ([`write_finding`]), before the target panics so that libFuzzer keeps the
//! input as a crash artifact.
//!
//! libFuzzer steers by the coverage of everything linked in, the runtime's recovery paths
//! included: inputs that reach new branches of the JobManager, the TaskManagers or the
//! connectors are kept and mutated further, which no list of seeds does.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::fault::Fault;
use crate::runner::Harness;
use crate::scenario::Scenario;
use crate::scenario_file::{generate_from_bytes, scenario_to_toml, Generated, Profile};
use crate::shrink::{failure_class, shrink_timed, Trial};

/// Runs a finding's plan at most this often while shrinking it: a finding costs the fuzzer a
/// few seconds, not minutes.
pub const SHRINK_TRIALS: u32 = 32;

/// The environment variable naming the directory findings are written to.
pub const FINDINGS_ENV: &str = "RILL_FUZZ_FINDINGS";

/// Where findings go when [`FINDINGS_ENV`] is not set (relative to the working directory).
pub const DEFAULT_FINDINGS: &str = "findings";

/// A run of a fuzzer's input that failed.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The scenario the input became (its expectations derived from its plan).
    pub scenario: Scenario,
    /// The seed it runs under.
    pub seed: u64,
    /// What failed: `checker: summary (evidence)` per failing verdict, or the panic.
    pub failures: Vec<String>,
    /// The same scenario with its plan shrunk while the first failure still fails.
    pub shrunk: Scenario,
    /// Runs the shrink made.
    pub trials: u32,
}

/// What one failing run looks like to the shrinker: the first failing verdict's class, or a
/// panic's message (numbers left out).
type Class = (String, String);

/// Runs `scenario` under `seed`; the failures, if any, and the class to shrink by.
fn failures(
    harness: &Harness,
    scenario: &Scenario,
    seed: u64,
    faults: &[Fault],
) -> Option<(Vec<String>, Class, Vec<Option<std::time::Duration>>)> {
    let run = catch_unwind(AssertUnwindSafe(|| {
        harness.run_with_faults(scenario, seed, faults.to_vec())
    }));
    match run {
        Ok(outcome) => {
            let failed: Vec<_> = outcome.verdicts.iter().filter(|v| !v.passed).collect();
            let class = failure_class(failed.first()?);
            let lines = failed
                .iter()
                .map(|v| {
                    let evidence = v.evidence.as_deref().unwrap_or("");
                    format!("{}: {} ({evidence})", v.checker, v.summary)
                })
                .collect();
            let began = outcome.history.faults.iter().map(|f| f.began_at).collect();
            Some((lines, class, began))
        }
        Err(panic) => {
            let message = panic_message(&*panic);
            let class = (
                "panic".to_string(),
                message.chars().filter(|c| !c.is_ascii_digit()).collect(),
            );
            Some((vec![format!("panic: {message}")], class, Vec::new()))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The scenario `bytes` become and its seed; if a run of it fails a checker (or panics), the
/// finding with its plan shrunk by at most `max_trials` runs.
pub fn check_input(
    harness: &Harness,
    bytes: &[u8],
    max_trials: u32,
) -> (Generated, Option<Finding>) {
    let generated = generate_from_bytes(bytes, &Profile::FUZZ);
    let finding = check_generated(harness, &generated, max_trials);
    (generated, finding)
}

/// Runs a generated scenario under its seed; if it fails a checker (or panics), the finding
/// with its plan shrunk by at most `max_trials` runs while the first failure still fails.
pub fn check_generated(
    harness: &Harness,
    generated: &Generated,
    max_trials: u32,
) -> Option<Finding> {
    let (scenario, seed) = (&generated.scenario, generated.seed);
    let (lines, class, began) = failures(harness, scenario, seed, &scenario.faults)?;
    let (plan, stats) =
        shrink_timed(
            scenario.faults.clone(),
            &began,
            max_trials,
            |candidate| match failures(harness, scenario, seed, candidate) {
                Some((_, c, _)) if c == class => Trial::StillFails,
                _ => Trial::Passes,
            },
        );
    let shrunk = Scenario {
        name: format!("{}-shrunk", scenario.name),
        faults: plan,
        ..scenario.clone()
    };
    Some(Finding {
        scenario: scenario.clone(),
        seed,
        failures: lines,
        shrunk,
        trials: stats.trials,
    })
}

/// The command that replays the scenario file at `path` under `seed` (rill's own binary).
pub fn replay(path: &Path, seed: u64) -> String {
    format!(
        "cargo xtask sim run --scenario {} --seed {seed}",
        path.display()
    )
}

/// Writes a finding into `dir`: `<name>.toml` (the scenario), `<name>-shrunk.toml` (its plan
/// shrunk) and `<name>.txt` (what failed, and the replay commands of both). Returns the
/// summary's path.
pub fn write_finding(dir: &Path, f: &Finding) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let scenario = dir.join(format!("{}.toml", f.scenario.name));
    let shrunk = dir.join(format!("{}.toml", f.shrunk.name));
    std::fs::write(&scenario, scenario_to_toml(&f.scenario))?;
    std::fs::write(&shrunk, scenario_to_toml(&f.shrunk))?;
    let summary = dir.join(format!("{}.txt", f.scenario.name));
    let mut text = format!("{} seed {}\n", f.scenario.name, f.seed);
    for line in &f.failures {
        text += &format!("  FAIL {line}\n");
    }
    text += &format!("  replay: {}\n", replay(&scenario, f.seed));
    text += &format!(
        "  shrunk to {} of {} faults in {} runs: {}\n",
        f.shrunk.faults.len(),
        f.scenario.faults.len(),
        f.trials,
        replay(&shrunk, f.seed)
    );
    std::fs::write(&summary, text)?;
    Ok(summary)
}

/// A fuzz target's body: checks `bytes` on the built-in jobs; a finding is written to the
/// directory [`FINDINGS_ENV`] names (else [`DEFAULT_FINDINGS`]) and then panics, so that
/// libFuzzer records the input. A panic of the run itself is written first too, then raised
/// again. (libFuzzer's panic hook aborts the process: while the input is checked and shrunk,
/// a hook that only prints stands in for it, so a panicking run can be caught and shrunk.)
pub fn fuzz_one(bytes: &[u8]) {
    let harness = Harness::builtin();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    let (generated, finding) = check_input(&harness, bytes, SHRINK_TRIALS);
    std::panic::set_hook(hook);
    let Some(finding) = finding else {
        return;
    };
    let dir = std::env::var_os(FINDINGS_ENV)
        .map_or_else(|| PathBuf::from(DEFAULT_FINDINGS), PathBuf::from);
    let written = write_finding(&dir, &finding);
    let summary = match &written {
        Ok(path) => std::fs::read_to_string(path).unwrap_or_default(),
        Err(e) => format!("(could not write the finding to {}: {e})\n", dir.display()),
    };
    eprintln!("\nfinding:\n{summary}");
    let panicked = finding.failures.iter().any(|l| l.starts_with("panic: "));
    if panicked {
        // The run's own panic, under libFuzzer's hook again: it sees it as it was.
        let again = catch_unwind(AssertUnwindSafe(|| {
            harness.run(&generated.scenario, generated.seed)
        }));
        if let Err(panic) = again {
            resume_unwind(panic);
        }
    }
    panic!(
        "{} seed {} fails: {}",
        finding.scenario.name,
        finding.seed,
        finding.failures.join("; ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario_file::parse_scenario;
    use crate::{DeliveryMode, Fault, FaultKind};
    use std::time::Duration;

    #[test]
    fn an_empty_input_is_a_fault_free_scenario_that_passes() {
        let (generated, finding) = check_input(&Harness::builtin(), &[], 8);
        assert!(generated.scenario.faults.is_empty());
        assert!(finding.is_none(), "{:?}", finding.map(|f| f.failures));
    }

    /// A planted bug (keyed-count emits every 1000th record twice) under a fault that has
    /// nothing to do with it: the oracle catches it, the shrink drops the fault, and the
    /// finding is written as files that parse back to the scenarios it names.
    #[test]
    fn a_planted_duplicate_is_a_finding_shrunk_and_written() {
        let mut generated = generate_from_bytes(&[7; 64], &Profile::FUZZ);
        let s = &mut generated.scenario;
        s.job = rill::JobSpec::new("keyed-count")
            .with("parallelism", 1)
            .with("records", 3_000)
            .with("rate", 10_000)
            .with("sink", "collect")
            .with("buggify-duplicate-every", 1000);
        s.cluster.taskmanagers = 2;
        s.cluster.slots_per_taskmanager = 1;
        s.faults = vec![Fault::new(
            Duration::from_millis(100),
            FaultKind::Latency {
                min: Duration::from_millis(1),
                max: Duration::from_millis(5),
                duration: Some(Duration::from_millis(200)),
            },
        )];
        s.expect = crate::scenario_file::derive_expectations(s).expect;
        assert_eq!(s.expect.delivery, DeliveryMode::ExactlyOnce);
        let finding = check_generated(&Harness::builtin(), &generated, 8).expect("caught");
        assert!(
            finding.failures[0].starts_with("delivery: "),
            "{:?}",
            finding.failures
        );
        assert_eq!(finding.shrunk.faults, Vec::new(), "the latency is not why");
        let dir = std::env::temp_dir().join(format!("rill-fuzz-test-{}", std::process::id()));
        let summary = write_finding(&dir, &finding).unwrap();
        let text = std::fs::read_to_string(&summary).unwrap();
        let dir = dir.canonicalize().unwrap();
        let file = dir.join(format!("{}.toml", finding.scenario.name));
        assert!(text.contains(&replay(&file, finding.seed)), "{text}");
        for s in [&finding.scenario, &finding.shrunk] {
            let path = dir.join(format!("{}.toml", s.name));
            let back = parse_scenario(
                &path.file_name().unwrap().to_string_lossy(),
                &std::fs::read_to_string(&path).unwrap(),
            )
            .unwrap();
            assert_eq!(&back, s);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
