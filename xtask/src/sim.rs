//! `cargo xtask sim ...`: builds the simulated `rill-sim` binary (release, `--cfg madsim`,
//! target-sim/) and drives it: the verdict table, single runs, parallel seed sweeps that feed
//! the regression corpus, shrinking, and the harness benchmark.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::steps::{Failure, Plan, Step};

#[derive(Subcommand)]
pub enum SimCommand {
    /// Lists the named scenarios.
    List,
    /// One scenario under one seed (the command every failure prints).
    Run(RunArgs),
    /// Many seeds of one scenario, one process per seed, in parallel; failing seeds join the
    /// regression corpus (scenarios/corpus.txt) that the tests replay.
    Sweep(SweepArgs),
    /// Minimises a failing seed's fault plan; prints it as TOML.
    Shrink(ShrinkArgs),
}

#[derive(Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    /// Seeds for the verdict table (without a subcommand).
    #[arg(long, default_value = "1,2,3,4,5")]
    pub seeds: String,
}

#[derive(Args)]
pub struct RunArgs {
    #[arg(long)]
    scenario: String,
    #[arg(long)]
    seed: u64,
    /// Print the canonical trace (the runtime's log lines).
    #[arg(long)]
    trace: bool,
    /// Print the timeline of faults and typed cluster events.
    #[arg(long)]
    events: bool,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Run twice and compare trace hashes.
    #[arg(long)]
    check_determinism: bool,
}

#[derive(Args)]
pub struct SweepArgs {
    #[arg(long)]
    scenario: String,
    /// A range A..B (B exclusive).
    #[arg(long)]
    seeds: String,
    /// Processes at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
}

#[derive(Args)]
pub struct ShrinkArgs {
    #[arg(long)]
    scenario: String,
    #[arg(long)]
    seed: u64,
    #[arg(long, default_value_t = 60)]
    max_trials: u32,
}

/// Builds `target-sim/release/rill-sim` with `--cfg madsim`.
fn build(root: &Path, plan: &mut Plan) -> Result<PathBuf, Failure> {
    let (var, flags) = crate::sim_rustflags();
    let step = Step::cargo(
        "build rill-sim",
        root,
        [
            "build",
            "--release",
            "-p",
            "rill-scenarios",
            "--bin",
            "rill-sim",
        ],
    )
    .env(var, flags)
    .env("CARGO_TARGET_DIR", root.join("target-sim"));
    plan.run(step)?;
    Ok(root
        .join("target-sim")
        .join("release")
        .join(format!("rill-sim{}", std::env::consts::EXE_SUFFIX)))
}

pub fn main(root: &Path, args: &SimArgs) -> Result<(), Failure> {
    let mut plan = Plan::new(2);
    let bin = build(root, &mut plan)?;
    let step = |label| Step::new(label, root, &bin);
    match &args.command {
        None => {
            let report = root.join("target-sim").join("sim-report.html");
            plan.run(
                step("check")
                    .args(["check", "--seeds", &args.seeds, "--report"])
                    .args([&report]),
            )?;
        }
        Some(SimCommand::Run(r)) => {
            let mut s = step("run").args([
                "run",
                "--scenario",
                &r.scenario,
                "--seed",
                &r.seed.to_string(),
            ]);
            if r.trace {
                s = s.args(["--trace"]);
            }
            if r.events {
                s = s.args(["--events"]);
            }
            if r.check_determinism {
                s = s.args(["--check-determinism"]);
            }
            if let Some(report) = &r.report {
                s = s.args([std::ffi::OsStr::new("--report"), report.as_os_str()]);
            }
            plan.run(s)?;
        }
        Some(SimCommand::List) => {
            plan.run(step("list").args(["list"]))?;
        }
        Some(SimCommand::Shrink(a)) => {
            let args = [
                "shrink",
                "--scenario",
                &a.scenario,
                "--seed",
                &a.seed.to_string(),
                "--max-trials",
                &a.max_trials.to_string(),
            ];
            plan.run(step("shrink").args(args))?;
        }
        Some(SimCommand::Sweep(a)) => {
            plan.finish();
            return sweep(root, &bin, a);
        }
    }
    plan.finish();
    Ok(())
}

fn parse_range(text: &str) -> Result<std::ops::Range<u64>, Failure> {
    let bad = || Failure::new(format!("--seeds wants A..B, got '{text}'"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    Ok(a.trim().parse().map_err(|_| bad())?..b.trim().parse().map_err(|_| bad())?)
}

/// Runs every seed as its own process, `jobs` at a time. Each seed is printed before it starts,
/// so a sweep killed midway can still be replayed from its log.
fn sweep(root: &Path, bin: &Path, a: &SweepArgs) -> Result<(), Failure> {
    let seeds: Vec<u64> = parse_range(&a.seeds)?.collect();
    let total = seeds.len();
    let mut pending = seeds.into_iter();
    let mut running: Vec<(u64, Child)> = Vec::new();
    let (mut passed, mut failed, mut errors) = (0usize, Vec::new(), Vec::new());
    let mut shown = usize::MAX;
    loop {
        while running.len() < a.jobs.max(1) {
            let Some(seed) = pending.next() else { break };
            // Clear the progress line so the seed log stays readable (and replayable if killed).
            println!("\r\x1b[2Kseed {seed}: starting");
            let child = Command::new(bin)
                .args([
                    "run",
                    "--scenario",
                    &a.scenario,
                    "--seed",
                    &seed.to_string(),
                ])
                .current_dir(root)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| Failure::new(format!("cannot start rill-sim: {e}")))?;
            running.push((seed, child));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        running.retain_mut(|(seed, child)| match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                passed += 1;
                false
            }
            // Exit 1: a checker failed; 101: a panic (the runtime or harness broke). Anything
            // else (2: bad arguments; a signal) is not a finding and stays out of the corpus.
            Ok(Some(status)) if matches!(status.code(), Some(1) | Some(101)) => {
                failed.push(*seed);
                false
            }
            Ok(Some(status)) => {
                errors.push((*seed, status.to_string()));
                false
            }
            Err(e) => {
                errors.push((*seed, e.to_string()));
                false
            }
            Ok(None) => true,
        });
        if passed + failed.len() + errors.len() != shown {
            shown = passed + failed.len() + errors.len();
            progress(shown, total, failed.len());
        }
    }
    println!();
    for (seed, why) in &errors {
        println!("ERROR seed {seed}: rill-sim did not run it ({why}); replay: cargo xtask sim run --scenario {} --seed {seed}", a.scenario);
    }
    if !errors.is_empty() {
        return Err(Failure::new(format!(
            "{} seeds could not be run",
            errors.len()
        )));
    }
    report_sweep(root, &a.scenario, passed, &failed)
}

fn progress(done: usize, total: usize, failed: usize) {
    let width = 40;
    let filled = done * width / total.max(1);
    print!(
        "\r[{}{}] {done}/{total} seeds, {failed} failed",
        "#".repeat(filled),
        "-".repeat(width - filled)
    );
    let _ = std::io::stdout().flush();
}

fn report_sweep(root: &Path, scenario: &str, passed: usize, failed: &[u64]) -> Result<(), Failure> {
    println!("{passed} passed, {} failed", failed.len());
    if failed.is_empty() {
        return Ok(());
    }
    let added = append_to_corpus(&root.join("scenarios").join("corpus.txt"), scenario, failed)
        .map_err(|e| Failure::new(format!("cannot update the corpus: {e}")))?;
    for seed in failed {
        println!("FAIL seed {seed}: cargo xtask sim run --scenario {scenario} --seed {seed}");
    }
    println!("{added} new seeds added to scenarios/corpus.txt");
    Err(Failure::new(format!(
        "{} seeds of {scenario} failed",
        failed.len()
    )))
}

/// Appends `scenario seed` lines not already in the corpus; returns how many were new.
fn append_to_corpus(path: &Path, scenario: &str, seeds: &[u64]) -> std::io::Result<usize> {
    let existing: BTreeSet<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    let new: Vec<String> = seeds
        .iter()
        .map(|s| format!("{scenario} {s}"))
        .filter(|l| !existing.contains(l))
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for line in &new {
        writeln!(file, "{line}")?;
    }
    Ok(new.len())
}

/// `cargo xtask bench sim`: wall time per seed and virtual/wall ratio.
pub fn bench(root: &Path) -> Result<(), Failure> {
    let mut plan = Plan::new(2);
    let bin = build(root, &mut plan)?;
    plan.run(Step::new("bench", root, &bin).args([
        "bench",
        "--scenario",
        "bench-crash-4x2",
        "--seeds",
        "1,2,3,4,5",
    ]))?;
    plan.finish();
    Ok(())
}

/// `cargo xtask bench recovery`: the TaskManager-crash scenario under each failover strategy.
pub fn bench_recovery(root: &Path) -> Result<(), Failure> {
    let mut plan = Plan::new(2);
    let bin = build(root, &mut plan)?;
    plan.run(Step::new("recovery", root, &bin).args(["recovery"]))?;
    plan.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_and_reject_garbage() {
        assert_eq!(parse_range("3..7").ok(), Some(3..7));
        assert!(parse_range("7").is_err() && parse_range("a..b").is_err());
    }

    #[test]
    fn corpus_appends_only_new_lines() {
        let path = std::env::temp_dir().join(format!("rill-corpus-{}", std::process::id()));
        std::fs::write(&path, "# header\nsteady 1\n").unwrap();
        assert_eq!(append_to_corpus(&path, "steady", &[1, 2]).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# header\nsteady 1\nsteady 2\n"
        );
        let _ = std::fs::remove_file(path);
    }
}
