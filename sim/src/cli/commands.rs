//! The commands that run scenarios in this process: list, check, run, shrink, report, bench,
//! recovery. (`sweep` runs each seed in a child process: `sweep.rs`; `merge` reads sweeps'
//! results: `merge.rs`.)

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use rill::config::keys::FAILOVER_STRATEGY;
use rill::events::ClusterEvent;

use super::args::{CheckArgs, Command, RunArgs, Runs};
use super::print::{print_outcome, same_trace, write_report};
use super::results::{field, Outcome, Record};
use super::{exit, merge, sweep, Ctx, Res};
use crate::events::timeline;
use crate::fault::Fault;
use crate::history::RunHistory;
use crate::runner::{fault_plan, RunOutcome};
use crate::scenario::{DeliveryMode, Scenario};
use crate::scenario_file::scenario_to_toml;
use crate::shrink::{failure_class, shrink_timed, Trial};
use crate::trace::render;

pub(super) fn dispatch(ctx: &Ctx, command: Command) -> Res {
    match command {
        Command::List => list(ctx),
        Command::Check(CheckArgs {
            runs,
            report,
            results,
        }) => check(ctx, &runs, report.as_deref(), results.as_deref()),
        Command::Report { runs, out } => check(ctx, &runs, Some(&out), None),
        Command::Run(args) => run_one(ctx, &args),
        Command::Sweep(args) => sweep::sweep(ctx, &args),
        Command::Merge(args) => merge::merge(ctx, &args),
        Command::Show { scenario, seed } => {
            print!("{}", scenario_to_toml(&ctx.scenario(&scenario, seed)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Shrink {
            scenario,
            seed,
            max_trials,
        } => shrink_one(ctx, &scenario, seed, max_trials),
        Command::Bench { scenario, seeds } => bench(ctx, &scenario, &seeds.0),
        Command::Recovery { scenario, seed } => recovery(ctx, &scenario, seed),
    }
}

fn list(ctx: &Ctx) -> Res {
    let names = ctx.names()?;
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for name in &names {
        let s = ctx.scenario(name, 0)?;
        println!("{name:<width$}  {}", s.description);
    }
    if ctx.source.generator.is_some() {
        println!(
            "{:<width$}  a scenario generated from the seed",
            super::GENERATED
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_one(ctx: &Ctx, a: &RunArgs) -> Res {
    let (name, seed) = (a.scenario.as_str(), a.seed);
    let s = ctx.scenario(name, seed)?;
    println!("seed {seed}: {name}  (replay: {})", ctx.replay(name, seed));
    let outcome = ctx.harness.run(&s, seed);
    print_outcome(&outcome);
    if a.trace {
        print!("{}", render(&outcome.history.trace));
    }
    if a.events {
        for (_, line) in timeline(&outcome.history) {
            println!("{line}");
        }
    }
    if let Some(path) = &a.report {
        let title = format!("{name} seed {seed}");
        write_report(path, &title, &[(&outcome, ctx.replay(name, seed))])?;
    }
    if let Some(path) = &a.summary {
        let summary = crate::parity::Summary::of("sim", &outcome.history, &outcome.verdicts);
        std::fs::write(path, summary.render(name, seed))?;
    }
    let mut ok = outcome.passed();
    let mut failed: Vec<&str> = outcome
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.checker)
        .collect();
    if a.check_determinism && !same_trace(&outcome, &ctx.harness.run(&s, seed)) {
        ok = false;
        failed.push("determinism");
    }
    if let Some(path) = &a.failed_checkers_to {
        std::fs::write(
            path,
            failed.iter().map(|c| format!("{c}\n")).collect::<String>(),
        )?;
    }
    if !ok {
        println!("replay: {}", ctx.replay(name, seed));
    }
    Ok(exit(ok))
}

/// The names `runs` asks for: those listed, or every named scenario.
fn names_of(ctx: &Ctx, runs: &Runs) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    match &runs.scenarios {
        Some(list) => Ok(list.split(',').map(|s| s.trim().to_string()).collect()),
        None => ctx.names(),
    }
}

fn check(ctx: &Ctx, runs: &Runs, report: Option<&Path>, results: Option<&Path>) -> Res {
    let names = names_of(ctx, runs)?;
    let width = names.iter().map(String::len).max().unwrap_or(0).max(8);
    let mut results = match results {
        Some(path) => Some(
            CheckResults::create(path).map_err(|e| format!("results {}: {e}", path.display()))?,
        ),
        None => None,
    };
    println!(
        "{:<width$} {:>6}  {:<6} {:<10} checks (name! failed, name? not checked)",
        "scenario", "seed", "result", "job"
    );
    let mut outcomes = Vec::new();
    for name in &names {
        for &seed in &runs.seeds.0 {
            let s = ctx.scenario(name, seed)?;
            let started = std::time::Instant::now();
            let o = ctx.harness.run(&s, seed);
            if let Some(out) = &mut results {
                out.write(
                    name,
                    seed,
                    &o,
                    started.elapsed(),
                    fault_plan(&s, seed).len(),
                )
                .map_err(|e| format!("cannot write the results: {e}"))?;
            }
            let checks: Vec<String> = o
                .verdicts
                .iter()
                .map(|v| {
                    let mark = match (v.passed, v.checked) {
                        (false, _) => "!",
                        (true, false) => "?",
                        (true, true) => "",
                    };
                    format!("{}{mark}", v.checker)
                })
                .collect();
            let result = if o.passed() { "PASS" } else { "FAIL" };
            println!(
                "{name:<width$} {seed:>6}  {result:<6} {:<10} {}",
                o.history.job_status,
                checks.join(" ")
            );
            outcomes.push((o, ctx.replay(name, seed)));
        }
    }
    let failed = print_failures(&outcomes);
    println!(
        "\n{} runs, {} passed, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    );
    if let Some(path) = report {
        let title = format!(
            "{}: {} scenarios x {} seeds",
            ctx.name,
            names.len(),
            runs.seeds.0.len()
        );
        let shown: Vec<(&RunOutcome, String)> =
            outcomes.iter().map(|(o, r)| (o, r.clone())).collect();
        write_report(path, &title, &shown)?;
    }
    Ok(exit(failed == 0))
}

/// Where `check --results FILE` writes: a comment, then one `result` line per run as it
/// finishes, flushed, so a check killed halfway (a panic) leaves the runs it finished.
struct CheckResults {
    out: std::fs::File,
}

impl CheckResults {
    fn create(path: &Path) -> std::io::Result<CheckResults> {
        let mut out = std::fs::File::create(path)?;
        writeln!(
            out,
            "# rill-sim check results: one `result` line per run (outcome pass/fail, the exit \
             `run` would give, wall time, faults in the seed's plan, failed checkers)"
        )?;
        Ok(CheckResults { out })
    }

    fn write(
        &mut self,
        scenario: &str,
        seed: u64,
        o: &RunOutcome,
        wall: Duration,
        faults: usize,
    ) -> std::io::Result<()> {
        let passed = o.passed();
        let record = Record {
            scenario: field(scenario),
            seed,
            outcome: if passed { Outcome::Pass } else { Outcome::Fail },
            exit: if passed { "0" } else { "1" }.into(),
            wall,
            failed: o
                .verdicts
                .iter()
                .filter(|v| !v.passed)
                .map(|v| field(v.checker))
                .collect(),
        };
        writeln!(self.out, "{record} faults={faults}")?;
        self.out.flush()
    }
}

/// Each failed run's failed verdicts and replay command; returns how many runs failed.
fn print_failures(outcomes: &[(RunOutcome, String)]) -> usize {
    let failed: Vec<_> = outcomes.iter().filter(|(o, _)| !o.passed()).collect();
    for (o, replay) in &failed {
        println!("\nFAIL {} seed {}", o.history.scenario, o.history.seed);
        for v in o.verdicts.iter().filter(|v| !v.passed) {
            let evidence = v.evidence.as_deref().unwrap_or("");
            println!("  {}: {} ({evidence})", v.checker, v.summary);
        }
        println!("  replay: {replay}");
    }
    failed.len()
}

/// One shrink trial: does `faults` still fail `class`? A candidate that breaks the harness
/// itself (a panic) is a different failure, not this one.
fn trial(ctx: &Ctx, s: &Scenario, seed: u64, faults: &[Fault], class: &(String, String)) -> Trial {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ctx.harness.run_with_faults(s, seed, faults.to_vec())
    }));
    let same = outcome.is_ok_and(|o| {
        o.verdicts
            .iter()
            .any(|v| !v.passed && failure_class(v) == *class)
    });
    if same {
        Trial::StillFails
    } else {
        Trial::Passes
    }
}

fn shrink_one(ctx: &Ctx, name: &str, seed: u64, max_trials: u32) -> Res {
    let s = ctx.scenario(name, seed)?;
    let first = ctx.harness.run(&s, seed);
    let Some(class) = first.verdicts.iter().find(|v| !v.passed).map(failure_class) else {
        println!("{name} seed {seed} passes: nothing to shrink");
        return Ok(ExitCode::SUCCESS);
    };
    let plan = fault_plan(&s, seed);
    // Where the failing run placed each fault (an anchored one where its event came).
    let began: Vec<_> = first.history.faults.iter().map(|f| f.began_at).collect();
    println!(
        "shrinking {} faults while '{}: {}' fails (at most {max_trials} runs)",
        plan.len(),
        class.0,
        class.1
    );
    // The shrunk plan replaces the drawn one, so swarm draws are off while shrinking.
    // The seed's drawn buggify points stay live in the fixed plan, as its drawn faults do.
    let fixed = Scenario {
        swarm: None,
        buggify: crate::buggify::live_points(&s, seed),
        ..s
    };
    let (minimal, stats) = shrink_timed(plan, &began, max_trials, |candidate| {
        trial(ctx, &fixed, seed, candidate, &class)
    });
    println!(
        "{} trials, {} accepted; the minimal scenario ({} faults):\n",
        stats.trials,
        stats.accepted,
        minimal.len()
    );
    let minimal = Scenario {
        faults: minimal,
        ..fixed
    };
    print!("{}", scenario_to_toml(&minimal));
    Ok(ExitCode::SUCCESS)
}

/// Runs each seed and reports its wall time against the virtual time it simulated, split into
/// simulating (the run) and judging (the checkers). Wall time is read outside the simulation
/// (madsim's clock is virtual only inside a runtime).
fn bench(ctx: &Ctx, name: &str, seeds: &[u64]) -> Res {
    let s = ctx.scenario(name, 0)?;
    let mut totals = BenchTotals::default();
    let mut ratios = Vec::new();
    // One unreported warm-up run, as benchmark harnesses do: the first run after a build pays
    // for loading the fresh binary and growing the heap, which is not the harness's speed.
    if let Some(&first) = seeds.first() {
        ctx.harness.run(&s, first);
    }
    for &seed in seeds {
        let started = std::time::Instant::now();
        let history = ctx.harness.record(&s, seed, fault_plan(&s, seed));
        let simulated = started.elapsed().as_secs_f64();
        let verdicts = ctx.harness.judge(&s, &history);
        let wall = started.elapsed().as_secs_f64();
        let virt = history.end.as_secs_f64();
        let failed = verdicts.iter().filter(|v| !v.passed).count();
        totals.add(wall, simulated, virt);
        ratios.push(virt / wall.max(1e-9));
        println!(
            "seed {seed}: wall {wall:.3}s (simulate {simulated:.3}s, judge {:.3}s), virtual {virt:.1}s, {:.0}x real time ({:.0}x simulating), {} outputs, job {}, {failed} failed verdict(s)",
            wall - simulated,
            virt / wall.max(1e-9),
            virt / simulated.max(1e-9),
            history.outputs.len(),
            history.job_status
        );
    }
    // The median too: on a shared machine one seed can land on a busy moment.
    ratios.sort_by(f64::total_cmp);
    println!(
        "virtual_per_wall: {:.0} (total virtual / total wall), median {:.0}; simulating {:.0}% of the wall time, judging {:.0}%",
        totals.virt / totals.wall.max(1e-9),
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0),
        100.0 * totals.simulated / totals.wall.max(1e-9),
        100.0 * (totals.wall - totals.simulated) / totals.wall.max(1e-9),
    );
    Ok(ExitCode::SUCCESS)
}

/// Seconds summed over a benchmark's seeds.
#[derive(Default)]
struct BenchTotals {
    wall: f64,
    simulated: f64,
    virt: f64,
}

impl BenchTotals {
    fn add(&mut self, wall: f64, simulated: f64, virt: f64) {
        self.wall += wall;
        self.simulated += simulated;
        self.virt += virt;
    }
}

/// Runs one scenario under each failover strategy and prints, side by side, what each
/// restarted and what the output saw (the numbers of `cargo xtask bench recovery`).
fn recovery(ctx: &Ctx, name: &str, seed: u64) -> Res {
    let base = ctx.scenario(name, seed)?;
    let fault_at = base.faults.iter().map(|f| f.at).min().unwrap_or_default();
    println!("{name}, seed {seed}: the same job, cluster, sink and faults under each strategy");
    println!(
        "{:<12} {:>9} {:>14} {:>12}  delivery",
        "strategy", "restarted", "longest stall", "recovered"
    );
    for strategy in ["full", "region", "taskmanager"] {
        let mut s = base.clone();
        s.config = s.config.with(FAILOVER_STRATEGY, strategy)?;
        // Count losses and duplicates rather than demand a guarantee.
        s.expect.delivery = DeliveryMode::FaultAccounted;
        let o = ctx.harness.run(&s, seed);
        let summary = |checker: &str| {
            o.verdicts
                .iter()
                .find(|v| v.checker == checker)
                .map_or_else(|| "-".to_string(), |v| v.summary.clone())
        };
        println!(
            "{strategy:<12} {:>9} {:>14} {:>12}  {}",
            restarted_after(&o.history, fault_at),
            format!(
                "{:.3}s",
                longest_stall_after(&o.history, fault_at).as_secs_f64()
            ),
            summary("recovery").trim_start_matches("slowest recovery "),
            summary("delivery")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Subtasks deployed from the first fault on: what the failovers restarted.
fn restarted_after(h: &RunHistory, from: Duration) -> usize {
    h.events
        .iter()
        .filter(|e| e.at >= from)
        .map(|e| match &e.event {
            ClusterEvent::TasksDeployed { tasks, .. } => tasks.len(),
            _ => 0,
        })
        .sum()
}

/// The longest interval without output from the fault until the job ended.
fn longest_stall_after(h: &RunHistory, from: Duration) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for o in h.outputs.iter().filter(|o| o.at >= from) {
        longest = longest.max(o.at - last);
        last = o.at;
    }
    longest
}
