//! `cargo xtask mutants`: plants each bug of `mutants/*.patch` in a scratch copy of the tree,
//! runs the harness over a set of named scenarios and seeds, and reports which bugs were
//! caught, by which checkers, and how far the first failure shrank.
//!
//! Everything happens under `target-mutants/`: one git worktree (`wt/`, detached at HEAD,
//! reset before each mutant, so the working tree is never touched), one target directory for
//! every mutant's simulated release build (`target/`, so builds after the first are
//! incremental), the harness's results and logs per mutant (`runs/NAME/`), and the report
//! (`report.md`). The unpatched tree runs first: a run that fails there is reported, and a
//! checker that failed there does not count as a catch in the same run of a mutant.
//!
//! Each scenario runs as its own `rill-sim check --scenarios S --seeds .. --results FILE`, so
//! a panicking or hanging mutant loses only that scenario's remaining seeds (recorded as
//! `panic` or `timeout`, which count as catches, as a crash would in a sweep).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use crate::steps::{elapsed, Failure};

/// The default scenarios: bounded and fast, one or more per failover strategy and per kind of
/// recovery path (crash, partition with zombies, one whose zombies' held writes land after
/// their replacements opened, pauses only one side's timer can notice,
/// crashes inside a checkpoint's alignment and store write, a second crash during recovery,
/// balanced placement after failovers, with spare slots for a placement to get wrong under
/// `taskmanager` and `region`, and with none, so that consumers stay away for seconds and their
/// producers' drop counts are held to what went missing, a restore of checkpoints aligned
/// under latency, and a restart strategy's last allowed restart).
pub const DEFAULT_SCENARIOS: &[&str] = &[
    "tm-crash-4x2-full",
    "etl-crash-region",
    "tm-crash-4x2-taskmanager",
    "replacement-crash-taskmanager",
    "jm-tm-partition-full",
    "jm-tm-partition-taskmanager",
    "partition-zombie-taskmanager",
    "tm-mute-region",
    "jm-pause-full",
    "crash-during-checkpoint-full",
    "crash-during-checkpoint-write-full",
    "crash-during-restore-full",
    "spare-slots-crash-taskmanager",
    "spare-slots-crash-region",
    "full-slots-crash-taskmanager",
    "latency-crash-during-checkpoint-full",
    "two-crashes-two-attempts-region",
];

#[derive(Args)]
pub struct MutantsArgs {
    /// Only these mutants (names of mutants/NAME.patch, comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seeds each scenario runs under (`1,2`, `A..B`).
    #[arg(long, default_value = "1,2")]
    seeds: String,
    /// Comma-separated scenario names, or `all` for every named scenario (default: a bounded
    /// set covering the strategies and recovery paths).
    #[arg(long)]
    scenarios: Option<String>,
    /// Scenario processes at once.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Runs the shrinker may spend on a caught mutant's first failure.
    #[arg(long, default_value_t = 60)]
    max_trials: u32,
    /// Do not shrink.
    #[arg(long)]
    no_shrink: bool,
    /// Wall-clock limit for one scenario's runs (or one shrink), in seconds: past it the
    /// process is killed and the run counts as `timeout`.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// One run's result as `rill-sim check --results` wrote it (or as xtask found it missing).
#[derive(Clone, Debug)]
struct RunResult {
    scenario: String,
    seed: u64,
    /// The checkers that failed; `panic`, `timeout` or `error` when the process said nothing.
    failed: BTreeSet<String>,
    /// Faults in the seed's plan.
    faults: Option<usize>,
}

impl RunResult {
    fn passed(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What became of one mutant (or the baseline).
struct Outcome {
    name: String,
    description: String,
    /// Why it was not run to verdicts (does not apply, does not build).
    broken: Option<String>,
    runs: Vec<RunResult>,
    /// Runs that failed with a checker that did not fail in the same run of the baseline,
    /// and those checkers.
    catches: Vec<(RunResult, BTreeSet<String>)>,
    /// The first catch's fault plan: from how many faults, to how many (or why not).
    shrunk: Option<Result<(usize, usize), String>>,
    wall: Duration,
}

impl Outcome {
    fn caught(&self) -> bool {
        !self.catches.is_empty()
    }

    fn checkers(&self) -> BTreeSet<String> {
        self.catches.iter().flat_map(|(_, c)| c.clone()).collect()
    }

    fn failing_scenarios(&self) -> BTreeSet<&str> {
        self.catches
            .iter()
            .map(|(r, _)| r.scenario.as_str())
            .collect()
    }
}

struct Ctx<'a> {
    root: &'a Path,
    scratch: PathBuf,
    wt: PathBuf,
    target: PathBuf,
    head: String,
    scenarios: Vec<String>,
    args: &'a MutantsArgs,
}

pub fn main(root: &Path, args: &MutantsArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let scratch = root.join("target-mutants");
    let mutants = select(&list_mutants(&root.join("mutants"))?, &args.only)?;
    let head = git(root, &["rev-parse", "HEAD"])?.trim().to_string();
    let wt = scratch.join("wt");
    prepare_worktree(root, &wt, &head)?;
    let scenarios = scenario_names(&wt, args.scenarios.as_deref())?;
    let ctx = Ctx {
        root,
        target: scratch.join("target"),
        wt,
        scratch,
        head,
        scenarios,
        args,
    };
    println!(
        "==> mutants: {} of mutants/ at {}, {} scenarios x seeds {} ({})",
        mutants.len(),
        &ctx.head[..12.min(ctx.head.len())],
        ctx.scenarios.len(),
        args.seeds,
        ctx.scenarios.join(", ")
    );
    let baseline = run_one(&ctx, "baseline", None, None)?;
    if let Some(why) = &baseline.broken {
        return Err(Failure::new(format!("the unpatched tree: {why}")));
    }
    let mut outcomes = Vec::new();
    for (name, patch) in &mutants {
        outcomes.push(run_one(&ctx, name, Some(patch), Some(&baseline))?);
    }
    // Leave the worktree as HEAD, not as the last mutant.
    reset_worktree(&ctx.wt, &ctx.head)?;
    let report = render(&ctx, &baseline, &outcomes, started.elapsed());
    println!("\n{report}");
    let path = ctx.scratch.join("report.md");
    std::fs::write(&path, &report)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    println!("report: {}", path.display());
    Ok(())
}

/// Every `mutants/*.patch`, by name, with its path.
fn list_mutants(dir: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", dir.display())))?;
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .filter_map(|p| Some((p.file_stem()?.to_string_lossy().into_owned(), p)))
        .collect();
    found.sort();
    Ok(found)
}

/// The mutants `only` names (all if empty); an unknown name is an error.
fn select(all: &[(String, PathBuf)], only: &[String]) -> Result<Vec<(String, PathBuf)>, Failure> {
    if only.is_empty() {
        return Ok(all.to_vec());
    }
    only.iter()
        .map(|name| {
            all.iter().find(|(n, _)| n == name).cloned().ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                Failure::new(format!(
                    "no mutant '{name}' in mutants/; there are: {}",
                    names.join(", ")
                ))
            })
        })
        .collect()
}

/// The first line of a patch: what it plants (git apply ignores text before `diff --git`).
fn description(patch: &Path) -> String {
    std::fs::read_to_string(patch)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .filter(|l| !l.starts_with("diff --git"))
        .unwrap_or_default()
}

/// The scenarios to run: those named, every one in the tree's scenarios/specs for `all`, or
/// the default set.
fn scenario_names(wt: &Path, arg: Option<&str>) -> Result<Vec<String>, Failure> {
    let specs = wt.join("scenarios").join("specs");
    let mut named: Vec<String> = std::fs::read_dir(&specs)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", specs.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    named.sort();
    let chosen: Vec<String> = match arg {
        Some("all") => return Ok(named),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        None => DEFAULT_SCENARIOS.iter().map(|s| s.to_string()).collect(),
    };
    if let Some(unknown) = chosen.iter().find(|c| !named.contains(c)) {
        return Err(Failure::new(format!(
            "no scenario '{unknown}' in {}",
            specs.display()
        )));
    }
    Ok(chosen)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| Failure::new(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The scratch worktree at `head`, created on first use.
fn prepare_worktree(root: &Path, wt: &Path, head: &str) -> Result<(), Failure> {
    if !wt.join(".git").exists() {
        let _ = git(root, &["worktree", "prune"]);
        let path = wt.to_string_lossy();
        git(root, &["worktree", "add", "--detach", &path, head])?;
    }
    reset_worktree(wt, head)
}

/// Discards whatever the last mutant changed. Only changed files are rewritten, so the shared
/// target directory rebuilds only what a patch touches.
fn reset_worktree(wt: &Path, head: &str) -> Result<(), Failure> {
    git(wt, &["reset", "--quiet", "--hard", head])?;
    git(wt, &["clean", "--quiet", "-fd"])?;
    Ok(())
}

/// A child process with a wall-clock limit: its exit code, `None` if killed at the limit.
fn wait_with_timeout(mut child: Child, limit: Duration) -> std::io::Result<Option<i32>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status.code().unwrap_or(-1)));
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_file(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::File::create(path)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", path.display())))
}

/// Applies `patch` (none: the baseline), builds, runs every scenario, shrinks the first catch.
fn run_one(
    ctx: &Ctx<'_>,
    name: &str,
    patch: Option<&Path>,
    baseline: Option<&Outcome>,
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let dir = ctx.scratch.join("runs").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    let mut outcome = Outcome {
        name: name.to_string(),
        description: patch.map(description).unwrap_or_default(),
        broken: None,
        runs: Vec::new(),
        catches: Vec::new(),
        shrunk: None,
        wall: Duration::ZERO,
    };
    println!("\n==> {name}: {}", outcome.description);
    reset_worktree(&ctx.wt, &ctx.head)?;
    if let Some(patch) = patch {
        let path = patch.to_string_lossy();
        if let Err(e) = git(&ctx.wt, &["apply", &path]) {
            println!("    does not apply: {}", e.message());
            outcome.broken = Some("does not apply (regenerate it against HEAD)".into());
            return Ok(outcome);
        }
    }
    let bin = match build(ctx, &dir.join("build.log"))? {
        Ok(bin) => bin,
        Err(why) => {
            println!("    {why}");
            outcome.broken = Some(why);
            return Ok(outcome);
        }
    };
    outcome.runs = run_scenarios(ctx, &bin, &dir)?;
    for run in &outcome.runs {
        let before = baseline
            .and_then(|b| {
                b.runs
                    .iter()
                    .find(|r| r.scenario == run.scenario && r.seed == run.seed)
            })
            .map(|r| r.failed.clone())
            .unwrap_or_default();
        let new: BTreeSet<String> = run.failed.difference(&before).cloned().collect();
        if baseline.is_some() && !new.is_empty() {
            outcome.catches.push((run.clone(), new));
        }
    }
    if !ctx.args.no_shrink {
        // The first catch in a run the baseline passed entirely, else the first catch.
        let clean = |r: &RunResult| {
            baseline.is_some_and(|b| {
                b.runs
                    .iter()
                    .any(|x| x.scenario == r.scenario && x.seed == r.seed && x.passed())
            })
        };
        let first = outcome
            .catches
            .iter()
            .find(|(r, _)| clean(r))
            .or(outcome.catches.first())
            .map(|(r, _)| r.clone());
        if let Some(run) = first {
            outcome.shrunk = Some(shrink(ctx, &bin, &dir, &run)?);
        }
    }
    outcome.wall = started.elapsed();
    let verdict = match (baseline, outcome.caught()) {
        (None, _) => format!(
            "{} of {} runs fail on the unpatched tree",
            outcome.runs.iter().filter(|r| !r.passed()).count(),
            outcome.runs.len()
        ),
        (Some(_), true) => format!(
            "CAUGHT by {} in {} of {} runs",
            join(&outcome.checkers()),
            outcome.catches.len(),
            outcome.runs.len()
        ),
        (Some(_), false) => format!("survived {} runs", outcome.runs.len()),
    };
    println!("    {verdict} ({})", elapsed(outcome.wall));
    Ok(outcome)
}

/// Builds the simulated release `rill-sim` in the worktree; `Err` if the mutant does not build.
fn build(ctx: &Ctx<'_>, log: &Path) -> Result<Result<PathBuf, String>, Failure> {
    let started = Instant::now();
    let (var, flags) = crate::sim_rustflags();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = log_file(log)?;
    let err = out
        .try_clone()
        .map_err(|e| Failure::new(format!("cannot log the build: {e}")))?;
    let status = Command::new(cargo)
        .current_dir(&ctx.wt)
        .args([
            "build",
            "--release",
            "-p",
            "rill-scenarios",
            "--bin",
            "rill-sim",
        ])
        .env(var, flags)
        .env("CARGO_TARGET_DIR", &ctx.target)
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| Failure::new(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Ok(Err(format!(
            "does not build (see {})",
            log.strip_prefix(ctx.root).unwrap_or(log).display()
        )));
    }
    println!("    built in {}", elapsed(started.elapsed()));
    let bin = ctx
        .target
        .join("release")
        .join(format!("rill-sim{}", std::env::consts::EXE_SUFFIX));
    Ok(Ok(bin))
}

/// One `rill-sim check` per scenario, `--jobs` at a time; their results, in scenario order.
fn run_scenarios(ctx: &Ctx<'_>, bin: &Path, dir: &Path) -> Result<Vec<RunResult>, Failure> {
    let seeds = parse_seeds(&ctx.args.seeds)?;
    let limit = Duration::from_secs(ctx.args.timeout);
    let mut pending = ctx.scenarios.iter();
    let mut running: Vec<(String, Child, Instant)> = Vec::new();
    let mut done: Vec<(String, Vec<RunResult>)> = Vec::new();
    loop {
        while running.len() < ctx.args.jobs.max(1) {
            let Some(scenario) = pending.next() else {
                break;
            };
            let log = log_file(&dir.join(format!("{scenario}.log")))?;
            let err = log
                .try_clone()
                .map_err(|e| Failure::new(format!("cannot log: {e}")))?;
            let results = dir.join(format!("{scenario}.results"));
            let child = Command::new(bin)
                .current_dir(&ctx.wt)
                .args(["check", "--scenarios", scenario, "--seeds", &ctx.args.seeds])
                .arg("--results")
                .arg(&results)
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| Failure::new(format!("cannot run {}: {e}", bin.display())))?;
            running.push((scenario.clone(), child, Instant::now()));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut still = Vec::new();
        for (scenario, mut child, started) in running {
            let exit = match child.try_wait() {
                Ok(Some(status)) => Some(status.code()),
                Ok(None) if started.elapsed() > limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Some(None)
                }
                Ok(None) => None,
                Err(e) => return Err(Failure::new(format!("waiting for {scenario}: {e}"))),
            };
            let Some(exit) = exit else {
                still.push((scenario, child, started));
                continue;
            };
            let results = read_results(&dir.join(format!("{scenario}.results")));
            let runs = complete(&scenario, &seeds, results, exit);
            let failed = runs.iter().filter(|r| !r.passed()).count();
            let checkers: BTreeSet<String> = runs.iter().flat_map(|r| r.failed.clone()).collect();
            println!(
                "    {scenario}: {}/{} failed{} in {}",
                failed,
                runs.len(),
                if checkers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", join(&checkers))
                },
                elapsed(started.elapsed())
            );
            done.push((scenario, runs));
        }
        running = still;
    }
    let order = |s: &str| ctx.scenarios.iter().position(|x| x == s);
    done.sort_by_key(|(s, _)| order(s));
    Ok(done.into_iter().flat_map(|(_, r)| r).collect())
}

/// The `result` lines of a `check --results` file.
fn read_results(path: &Path) -> Vec<RunResult> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(parse_result).collect()
}

/// One `result scenario=.. seed=.. outcome=.. failed=a,b faults=N` line.
fn parse_result(line: &str) -> Option<RunResult> {
    let mut words = line.split_whitespace();
    if words.next() != Some("result") {
        return None;
    }
    let fields: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
    let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut failed: BTreeSet<String> = get("failed")
        .map(|f| {
            f.split(',')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if get("outcome") != Some("pass") && failed.is_empty() {
        failed.insert("unknown".into());
    }
    Some(RunResult {
        scenario: get("scenario")?.to_string(),
        seed: get("seed")?.parse().ok()?,
        failed,
        faults: get("faults").and_then(|f| f.parse().ok()),
    })
}

/// Every seed of `scenario`: its result, or for a seed the process never reported, what the
/// process's end says (`panic` for exit 101, `timeout` if it was killed at the limit, else
/// `error`).
fn complete(
    scenario: &str,
    seeds: &[u64],
    results: Vec<RunResult>,
    exit: Option<i32>,
) -> Vec<RunResult> {
    let missing = match exit {
        Some(101) => "panic",
        None => "timeout",
        _ => "error",
    };
    seeds
        .iter()
        .map(|&seed| {
            results
                .iter()
                .find(|r| r.scenario == scenario && r.seed == seed)
                .cloned()
                .unwrap_or_else(|| RunResult {
                    scenario: scenario.to_string(),
                    seed,
                    failed: BTreeSet::from([missing.to_string()]),
                    faults: None,
                })
        })
        .collect()
}

/// `1,2`, `A..B` (B exclusive), or a mix, as the harness reads them.
fn parse_seeds(text: &str) -> Result<Vec<u64>, Failure> {
    let bad = || Failure::new(format!("--seeds: '{text}' is not seeds like 1,2 or A..B"));
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b): (u64, u64) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                seeds.extend(a..b);
            }
            None => seeds.push(part.parse().map_err(|_| bad())?),
        }
    }
    if seeds.is_empty() {
        return Err(bad());
    }
    Ok(seeds)
}

/// Shrinks `run`'s fault plan; the faults it started from and those left, read from the
/// minimal scenario the shrinker prints (its `[[faults]]` tables). The scenario is kept in
/// `dir/shrunk.toml`.
fn shrink(
    ctx: &Ctx<'_>,
    bin: &Path,
    dir: &Path,
    run: &RunResult,
) -> Result<Result<(usize, usize), String>, Failure> {
    let started = Instant::now();
    let log = dir.join("shrink.log");
    let out = log_file(&log)?;
    let child = Command::new(bin)
        .current_dir(&ctx.wt)
        .args(["shrink", "--scenario", &run.scenario])
        .args(["--seed", &run.seed.to_string()])
        .args(["--max-trials", &ctx.args.max_trials.to_string()])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::new(format!("cannot run {}: {e}", bin.display())))?;
    let exit = wait_with_timeout(child, Duration::from_secs(ctx.args.timeout))
        .map_err(|e| Failure::new(format!("waiting for the shrink: {e}")))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let result = match exit {
        None => Err("timeout".to_string()),
        Some(0) => match text.find("\nname = ") {
            Some(at) => {
                let toml = &text[at + 1..];
                let _ = std::fs::write(dir.join("shrunk.toml"), toml);
                let left = toml.lines().filter(|l| l.trim() == "[[faults]]").count();
                Ok((run.faults.unwrap_or(left), left))
            }
            None => Err("no scenario printed".to_string()),
        },
        Some(code) => Err(format!("exit {code}")),
    };
    let shown = match &result {
        Ok((from, to)) => format!("{from} -> {to} faults"),
        Err(why) => why.clone(),
    };
    println!(
        "    shrunk {} seed {}: {shown} in {}",
        run.scenario,
        run.seed,
        elapsed(started.elapsed())
    );
    Ok(result)
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

/// The report: the table, the score, each mutant's failing runs, and the baseline's.
fn render(ctx: &Ctx<'_>, baseline: &Outcome, outcomes: &[Outcome], wall: Duration) -> String {
    let mut s = String::new();
    let runs_per = ctx.scenarios.len() * parse_seeds(&ctx.args.seeds).map_or(0, |v| v.len());
    let _ = writeln!(s, "# cargo xtask mutants\n");
    let _ = writeln!(
        s,
        "HEAD {}; seeds {}; {} scenarios: {}; {} in all.\n",
        ctx.head,
        ctx.args.seeds,
        ctx.scenarios.len(),
        ctx.scenarios.join(", "),
        elapsed(wall)
    );
    let _ = writeln!(
        s,
        "| mutant | caught | scenarios failing / run | checkers that failed | shrunk to |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for o in outcomes {
        let (caught, failing, checkers) = match &o.broken {
            Some(why) => ("-".to_string(), why.clone(), String::new()),
            None => (
                if o.caught() { "yes" } else { "no" }.to_string(),
                format!("{} / {}", o.failing_scenarios().len(), ctx.scenarios.len()),
                join(&o.checkers()),
            ),
        };
        let shrunk = match &o.shrunk {
            Some(Ok((from, to))) => format!("{to} faults (from {from})"),
            Some(Err(why)) => format!("- ({why})"),
            None => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {caught} | {failing} | {checkers} | {shrunk} |",
            o.name
        );
    }
    let counted: Vec<&Outcome> = outcomes.iter().filter(|o| o.broken.is_none()).collect();
    let caught = counted.iter().filter(|o| o.caught()).count();
    let _ = writeln!(
        s,
        "\nscore: {caught}/{} caught ({} runs each){}",
        counted.len(),
        runs_per,
        match outcomes.len() - counted.len() {
            0 => String::new(),
            n => format!("; {n} not run (do not apply or do not build)"),
        }
    );
    let _ = writeln!(s, "\n## Mutants\n");
    for o in outcomes {
        let _ = writeln!(s, "- **{}**: {}", o.name, o.description);
        for (run, new) in &o.catches {
            let _ = writeln!(s, "  - {} seed {}: {}", run.scenario, run.seed, join(new));
        }
    }
    let failing: Vec<&RunResult> = baseline.runs.iter().filter(|r| !r.passed()).collect();
    let _ = writeln!(
        s,
        "\n## Baseline (unpatched)\n\n{} of {} runs fail{}",
        failing.len(),
        baseline.runs.len(),
        if failing.is_empty() {
            "."
        } else {
            ": their checkers do not count as catches in the same runs."
        }
    );
    for r in failing {
        let _ = writeln!(s, "- {} seed {}: {}", r.scenario, r.seed, join(&r.failed));
    }
    let _ = writeln!(
        s,
        "\nLogs and results per mutant: target-mutants/runs/NAME/ (SCENARIO.log, \
         SCENARIO.results, build.log, shrink.log, shrunk.toml)."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_names_its_run_its_failed_checkers_and_its_plan() {
        let line = "result scenario=tm-crash seed=2 outcome=fail exit=1 wall_s=1.5 \
                    failed=delivery,restarts faults=3";
        let r = parse_result(line).expect("a result");
        assert_eq!(
            (r.scenario.as_str(), r.seed, r.faults),
            ("tm-crash", 2, Some(3))
        );
        assert_eq!(join(&r.failed), "delivery,restarts");
        let pass = parse_result("result scenario=a seed=1 outcome=pass exit=0 faults=0").unwrap();
        assert!(pass.passed());
        assert!(parse_result("# a comment").is_none());
        assert!(parse_result("FAIL a seed 1").is_none());
    }

    #[test]
    fn seeds_the_process_never_reported_take_its_end() {
        let reported = vec![parse_result("result scenario=a seed=1 outcome=pass").unwrap()];
        let runs = complete("a", &[1, 2], reported.clone(), Some(101));
        assert!(runs[0].passed());
        assert_eq!(join(&runs[1].failed), "panic");
        let runs = complete("a", &[1, 2], reported, None);
        assert_eq!(join(&runs[1].failed), "timeout");
    }

    #[test]
    fn seeds_are_lists_and_ranges() {
        assert_eq!(parse_seeds("1,2").ok(), Some(vec![1, 2]));
        assert_eq!(parse_seeds("3..6,9").ok(), Some(vec![3, 4, 5, 9]));
        assert!(parse_seeds("x").is_err());
        assert!(parse_seeds("").is_err());
    }
}
