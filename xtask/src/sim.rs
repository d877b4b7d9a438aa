//! `cargo xtask sim ...`: builds the simulated `rill-sim` binary (release, `--cfg madsim`,
//! target-sim/) and drives it: the verdict table, single runs, parallel seed sweeps that feed
//! the regression corpus (the binary's own `sweep`, whole or one shard of it), merging sharded
//! sweeps' results, shrinking, and the harness benchmark.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

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
    /// Combines sweeps' results files (the shards of one sweep): totals, failing seeds with
    /// their replays, seeds no file has; failing seeds join the corpus.
    Merge(MergeArgs),
    /// Minimises a failing seed's fault plan; prints it as TOML.
    Shrink(ShrinkArgs),
    /// Scenarios both ways, simulated and on real processes, side by side (the parity set CI
    /// runs, unless scenarios are named); fails on a real failure or a differing verdict.
    Parity(ParityArgs),
}

#[derive(Args)]
pub struct ParityArgs {
    /// Scenarios to run both ways (default: the parity set).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    /// Seeds for the verdict table (without a subcommand).
    #[arg(long, default_value = "1,2,3,4,5")]
    pub seeds: String,
    /// Instead of the verdict table: every named scenario that can run for real, both ways,
    /// side by side (`parity` over `rill-sim runnable`), under the first seed.
    #[arg(long)]
    pub real: bool,
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
    /// Instead: run the scenario and seed simulated and on real processes (`rill-sim real`,
    /// built without the simulator) and print both runs side by side (`sim parity` for one
    /// scenario); fails if a real checker fails or a verdict differs.
    #[arg(long)]
    real: bool,
}

#[derive(Args)]
pub struct SweepArgs {
    #[arg(long)]
    scenario: String,
    /// A range A..B (B exclusive), or a list.
    #[arg(long)]
    seeds: String,
    /// Processes at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Only shard K of N (K from 0): the seeds at positions K, K+N, ... of --seeds.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Write each seed's result here as it finishes (`-`: stdout), for `merge`.
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Keep the verdicts an interrupted run of the same shard left in --results FILE.
    #[arg(long, requires = "results")]
    resume: bool,
    #[command(flatten)]
    corpus: CorpusArgs,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Results files written by `sweep --results` (`-`: stdin).
    #[arg(required = true, value_name = "RESULTS")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    corpus: CorpusArgs,
}

#[derive(Args)]
pub struct CorpusArgs {
    /// Failing seeds go to this corpus instead of scenarios/corpus.txt.
    #[arg(long, value_name = "FILE")]
    corpus: Option<PathBuf>,
    /// Failing seeds go to no corpus.
    #[arg(long, conflicts_with = "corpus")]
    no_corpus: bool,
}

impl CorpusArgs {
    /// The binary's arguments for these.
    fn args(&self) -> Vec<std::ffi::OsString> {
        match (&self.corpus, self.no_corpus) {
            (_, true) => vec!["--no-corpus".into()],
            (Some(path), false) => vec!["--corpus".into(), absolute(path).into_os_string()],
            (None, false) => Vec::new(),
        }
    }
}

/// A `--scenario` for the binary: a name as it is, a scenario file's path (`*.toml`) from the
/// directory xtask was started in, as the binary runs in the workspace root.
fn scenario_arg(scenario: &str) -> String {
    match scenario.ends_with(".toml") {
        true => absolute(Path::new(scenario)).display().to_string(),
        false => scenario.to_string(),
    }
}

/// `path` from the directory xtask was started in, as the binary runs in the workspace root
/// (`-`, stdin or stdout, stays).
fn absolute(path: &Path) -> PathBuf {
    if path == Path::new("-") {
        return path.to_path_buf();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
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
    if let Some(SimCommand::Parity(p)) = &args.command {
        return parity(root, p);
    }
    if let Some(SimCommand::Run(r)) = &args.command {
        if r.real {
            let both = ParityArgs {
                scenarios: vec![scenario_arg(&r.scenario)],
                seed: r.seed,
            };
            return parity(root, &both);
        }
    }
    if args.real && args.command.is_none() {
        return real_all(root, args);
    }
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
                &scenario_arg(&r.scenario),
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
        Some(SimCommand::Parity(_)) => unreachable!("handled above"),
        Some(SimCommand::List) => {
            plan.run(step("list").args(["list"]))?;
        }
        Some(SimCommand::Shrink(a)) => {
            let args = [
                "shrink",
                "--scenario",
                &scenario_arg(&a.scenario),
                "--seed",
                &a.seed.to_string(),
                "--max-trials",
                &a.max_trials.to_string(),
            ];
            plan.run(step("shrink").args(args))?;
        }
        Some(SimCommand::Sweep(a)) => {
            let jobs = a.jobs.to_string();
            let args = [
                "sweep",
                "--scenario",
                &a.scenario,
                "--seeds",
                &a.seeds,
                "--jobs",
                &jobs,
            ];
            let mut s = step("sweep").args(args).args(a.corpus.args());
            if let Some(shard) = &a.shard {
                s = s.args(["--shard", shard]);
            }
            if let Some(results) = &a.results {
                s = s.args([
                    std::ffi::OsStr::new("--results"),
                    absolute(results).as_os_str(),
                ]);
            }
            if a.resume {
                s = s.args(["--resume"]);
            }
            plan.run(s)?;
        }
        Some(SimCommand::Merge(a)) => {
            let files = a.files.iter().map(|f| absolute(f));
            plan.run(
                step("merge")
                    .args(["merge"])
                    .args(files)
                    .args(a.corpus.args()),
            )?;
        }
    }
    plan.finish();
    Ok(())
}

/// `sim parity`: the parity steps over the named scenarios or the parity set.
fn parity(root: &Path, p: &ParityArgs) -> Result<(), Failure> {
    let scenarios = match p.scenarios.is_empty() {
        true => crate::parity::PARITY_SET
            .iter()
            .map(|s| s.to_string())
            .collect(),
        false => p.scenarios.clone(),
    };
    crate::parity::prepare(root).map_err(|e| Failure::new(format!("parity directory: {e}")))?;
    let steps = crate::parity::steps(root, &scenarios, p.seed);
    let mut plan = Plan::new(steps.len());
    let mut steps = steps.into_iter();
    // The builds must succeed; after them every scenario runs, whatever the others found.
    for step in steps.by_ref().take(2) {
        plan.run(step)?;
    }
    let mut failed = Vec::new();
    for scenario in &scenarios {
        for step in steps.by_ref().take(2) {
            // A failing simulated verdict is compared too: the real run still goes.
            if plan.run(step).is_err() && !failed.contains(scenario) {
                failed.push(scenario.clone());
            }
        }
    }
    if failed.is_empty() {
        plan.finish();
        return Ok(());
    }
    Err(Failure::new(format!(
        "parity: {} of {} scenario(s) failed a checker or differ: {}",
        failed.len(),
        scenarios.len(),
        failed.join(", ")
    )))
}

/// `sim --real`: the parity steps over every scenario the real runner can apply whole.
fn real_all(root: &Path, args: &SimArgs) -> Result<(), Failure> {
    let mut plan = Plan::new(1);
    plan.run(Step::cargo(
        "build rill-sim (real)",
        root,
        ["build", "-p", "rill-scenarios", "--bin", "rill-sim"],
    ))?;
    plan.finish();
    let bin = crate::parity::real_binary(root, "rill-sim");
    let mut list = Plan::new(1);
    let names = list.run(
        Step::new("runnable", root, &bin)
            .args(["runnable"])
            .capture_stdout(),
    )?;
    let seed = args
        .seeds
        .split([',', '.'])
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let p = ParityArgs {
        scenarios: names.lines().map(str::to_string).collect(),
        seed,
    };
    parity(root, &p)
}

/// `cargo xtask bench sim`: wall time per seed (simulating and judging apart) and the
/// virtual/wall ratio, for the 4 x 2 TaskManager-crash bench over five seeds and the 64 x 32
/// scale bench (`scenarios/bench/`, 2,048 subtasks) over one. The targets are printed beside
/// the figures by `rill-sim bench`'s own lines; missing one is reported, not an error.
pub fn bench(root: &Path) -> Result<(), Failure> {
    let mut plan = Plan::new(3);
    let bin = build(root, &mut plan)?;
    println!("target: a median of at least 1000x real time on the 4 x 2 bench");
    plan.run(Step::new("bench 4x2", root, &bin).args([
        "bench",
        "--scenario",
        "bench-crash-4x2",
        "--seeds",
        "1,2,3,4,5",
    ]))?;
    println!("target: 60 virtual seconds of 2,048 subtasks in under 10 s of wall time");
    let large = root.join("scenarios/bench/bench-etl-64x32.toml");
    plan.run(Step::new("bench 64x32", root, &bin).args([
        OsStr::new("bench"),
        OsStr::new("--scenario"),
        large.as_os_str(),
        OsStr::new("--seeds"),
        OsStr::new("1"),
    ]))?;
    plan.finish();
    Ok(())
}

/// `cargo xtask bench recovery`: the TaskManager-crash scenario under each failover strategy.
pub fn bench_recovery(root: &Path) -> Result<(), Failure> {
    let mut plan = Plan::new(2);
    let bin = build(root, &mut plan)?;
    plan.run(Step::new("recovery", root, &bin).args([
        "recovery",
        "--scenario",
        "tm-crash-4x2-taskmanager",
    ]))?;
    plan.finish();
    Ok(())
}
