//! The commands of `rill-sim` (simulated build only).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rill::events::ClusterEvent;
use rill_scenarios::{load, names};
use rill_sim::events::timeline;
use rill_sim::report::{render_html, ReportRun};
use rill_sim::runner::{fault_plan, run, run_with_faults, RunOutcome};
use rill_sim::scenario_file::{generate, scenario_to_toml};
use rill_sim::shrink::{shrink, Trial};
use rill_sim::trace::{first_difference, render, trace_hash};
use rill_sim::{DeliveryMode, NodeName, RunHistory, Scenario, Verdict};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "rill-sim", about = "Runs rill's simulated scenarios")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the named scenarios.
    List,
    /// Every scenario (or those named) over a set of seeds: a verdict table.
    Check {
        /// Comma-separated scenario names (default: all).
        #[arg(long)]
        scenarios: Option<String>,
        /// Comma-separated seeds.
        #[arg(long, default_value = "1,2,3")]
        seeds: String,
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// One scenario under one seed.
    Run {
        /// A named scenario, or `generated` (with --seed choosing the scenario too).
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Print the canonical trace (the runtime's log lines).
        #[arg(long)]
        trace: bool,
        /// Print the timeline: faults and typed cluster events, as snapshots store them.
        #[arg(long)]
        events: bool,
        /// Write a self-contained HTML report.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Run the seed twice and compare traces, cluster events and outputs.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Wall time per seed and the ratio of virtual to wall time.
    Bench {
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value = "1,2,3")]
        seeds: String,
    },
    /// One TaskManager-crash scenario under full, region and taskmanager failover, side by
    /// side: subtasks restarted, longest stall, recovery time, records lost and duplicated.
    Recovery {
        #[arg(long, default_value = "tm-crash-4x2-taskmanager")]
        scenario: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Minimises a failing seed's fault plan while the same checker still fails.
    Shrink {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        max_trials: u32,
    },
}

pub fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::List => list(),
        Command::Check {
            scenarios,
            seeds,
            report,
        } => check(scenarios, &seeds, report),
        Command::Run {
            scenario,
            seed,
            trace,
            events,
            report,
            check_determinism,
        } => {
            let print = Print { trace, events };
            run_one(&scenario, seed, print, report, check_determinism)
        }
        Command::Shrink {
            scenario,
            seed,
            max_trials,
        } => shrink_one(&scenario, seed, max_trials),
        Command::Bench { scenario, seeds } => bench_scenario(&scenario, &seeds),
        Command::Recovery { scenario, seed } => recovery_bench(&scenario, seed),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

type Res = Result<ExitCode, Box<dyn std::error::Error>>;

fn scenario(name: &str, seed: u64) -> Result<Scenario, Box<dyn std::error::Error>> {
    if name == "generated" {
        return Ok(generate(seed));
    }
    Ok(load(name)?)
}

fn replay(name: &str, seed: u64) -> String {
    format!("cargo xtask sim run --scenario {name} --seed {seed}")
}

fn list() -> Res {
    for name in names()? {
        let s = load(&name)?;
        println!("{name:<26} {}", s.description);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_outcome(o: &RunOutcome) {
    let h = &o.history;
    let status = if o.passed() { "PASS" } else { "FAIL" };
    println!(
        "{status} {} seed {}: job {} at {:.3}s, {} outputs, {} faults",
        h.scenario,
        h.seed,
        h.job_status,
        h.end.as_secs_f64(),
        h.outputs.len(),
        h.faults.len()
    );
    let mut peaks = std::collections::BTreeMap::new();
    for m in &h.memory {
        let peak = peaks.entry(m.taskmanager).or_insert(0u64);
        *peak = (*peak).max(m.bytes);
    }
    let peaks: Vec<String> = peaks
        .iter()
        .map(|(tm, b)| {
            format!(
                "{} {:.1} MiB",
                NodeName::TaskManager(*tm),
                *b as f64 / 1048576.0
            )
        })
        .collect();
    println!("  peak memory: {}", peaks.join(", "));
    for v in &o.verdicts {
        let mark = if v.passed { "ok  " } else { "FAIL" };
        println!("  {mark} {:<11} {}", v.checker, v.summary);
        if let Some(e) = &v.evidence {
            println!("       evidence: {e}");
        }
    }
}

/// What `run` prints besides the verdicts.
struct Print {
    trace: bool,
    events: bool,
}

fn run_one(name: &str, seed: u64, print: Print, report: Option<PathBuf>, determinism: bool) -> Res {
    let s = scenario(name, seed)?;
    println!("seed {seed}: {name}  (replay: {})", replay(name, seed));
    let outcome = run(&s, seed);
    print_outcome(&outcome);
    if print.trace {
        print!("{}", render(&outcome.history.trace));
    }
    if print.events {
        for (_, line) in timeline(&outcome.history) {
            println!("{line}");
        }
    }
    if let Some(path) = report {
        write_report(
            &path,
            &format!("{name} seed {seed}"),
            &[(&outcome, replay(name, seed))],
        )?;
    }
    let mut ok = outcome.passed();
    if determinism {
        ok &= same_trace(&outcome, &run(&s, seed));
    }
    if !ok {
        println!("replay: {}", replay(name, seed));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Compares two runs of one seed; prints the first differing trace line.
fn same_trace(a: &RunOutcome, b: &RunOutcome) -> bool {
    let (ha, hb) = (trace_hash(&a.history.trace), trace_hash(&b.history.trace));
    match first_difference(&a.history.trace, &b.history.trace) {
        None if a.history.events != b.history.events => {
            let (x, y) = (&a.history.events, &b.history.events);
            let at = (0..x.len().max(y.len()))
                .find(|&i| x.get(i) != y.get(i))
                .unwrap_or_default();
            let show =
                |e: Option<&rill_sim::RecordedEvent>| e.map_or("<end>".into(), |e| e.to_string());
            println!("determinism: FAIL, same trace but different cluster events; first difference at event {at}:");
            println!("  first:  {}", show(x.get(at)));
            println!("  second: {}", show(y.get(at)));
            false
        }
        None if a.history.outputs != b.history.outputs => {
            let at = a
                .history
                .outputs
                .iter()
                .zip(&b.history.outputs)
                .position(|(x, y)| x != y);
            println!(
                "determinism: FAIL, same trace but different outputs (first at output {at:?})"
            );
            false
        }
        None => {
            println!(
                "determinism: trace hash {ha:016x} and {} outputs identical both times",
                a.history.outputs.len()
            );
            true
        }
        Some((line, left, right)) => {
            println!("determinism: FAIL, trace hashes {ha:016x} vs {hb:016x}; first difference at line {line}:");
            println!("  first:  {}", left.unwrap_or_else(|| "<end>".into()));
            println!("  second: {}", right.unwrap_or_else(|| "<end>".into()));
            false
        }
    }
}

fn check(scenarios: Option<String>, seeds: &str, report: Option<PathBuf>) -> Res {
    let names: Vec<String> = match scenarios {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => names()?,
    };
    let seeds: Vec<u64> = seeds
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    println!(
        "{:<26} {:>6}  {:<6} {:<10} checks",
        "scenario", "seed", "result", "job"
    );
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for name in &names {
        for &seed in &seeds {
            let o = run(&scenario(name, seed)?, seed);
            let checks: Vec<String> = o
                .verdicts
                .iter()
                .map(|v| format!("{}{}", v.checker, if v.passed { "" } else { "!" }))
                .collect();
            let result = if o.passed() { "PASS" } else { "FAIL" };
            println!(
                "{name:<26} {seed:>6}  {result:<6} {:<10} {}",
                o.history.job_status,
                checks.join(" ")
            );
            if !o.passed() {
                failures.push((
                    name.clone(),
                    seed,
                    o.verdicts
                        .iter()
                        .filter(|v| !v.passed)
                        .cloned()
                        .collect::<Vec<_>>(),
                ));
            }
            outcomes.push((o, replay(name, seed)));
        }
    }
    for (name, seed, failed) in &failures {
        println!("\nFAIL {name} seed {seed}");
        for v in failed {
            println!(
                "  {}: {} ({})",
                v.checker,
                v.summary,
                v.evidence.as_deref().unwrap_or("")
            );
        }
        println!("  replay: {}", replay(name, *seed));
    }
    println!(
        "\n{} runs, {} passed, {} failed",
        outcomes.len(),
        outcomes.len() - failures.len(),
        failures.len()
    );
    if let Some(path) = report {
        let runs: Vec<(&RunOutcome, String)> =
            outcomes.iter().map(|(o, r)| (o, r.clone())).collect();
        write_report(&path, "rill simulation", &runs)?;
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_report(
    path: &PathBuf,
    title: &str,
    runs: &[(&RunOutcome, String)],
) -> Result<(), std::io::Error> {
    let runs: Vec<ReportRun<'_>> = runs
        .iter()
        .map(|(o, replay)| ReportRun {
            history: &o.history,
            verdicts: &o.verdicts,
            replay: replay.clone(),
        })
        .collect();
    std::fs::write(path, render_html(title, &runs))?;
    println!("report: {}", path.display());
    Ok(())
}

/// What kind of failure a verdict is: its checker and its summary without numbers, so a
/// shrink keeps "duplicate output" from turning into "missing records".
fn failure_class(v: &Verdict) -> (String, String) {
    (
        v.checker.to_string(),
        v.summary.chars().filter(|c| !c.is_ascii_digit()).collect(),
    )
}

fn shrink_one(name: &str, seed: u64, max_trials: u32) -> Res {
    let s = scenario(name, seed)?;
    let first = run(&s, seed);
    let Some(class) = first.verdicts.iter().find(|v| !v.passed).map(failure_class) else {
        println!("{name} seed {seed} passes: nothing to shrink");
        return Ok(ExitCode::SUCCESS);
    };
    let plan = fault_plan(&s, seed);
    println!(
        "shrinking {} faults while '{}: {}' fails (at most {max_trials} runs)",
        plan.len(),
        class.0,
        class.1
    );
    // The shrunk plan replaces the drawn one, so swarm draws are off while shrinking.
    let fixed = Scenario {
        swarm: None,
        ..s.clone()
    };
    let (minimal, stats) = shrink(plan, max_trials, |candidate| {
        // A candidate that breaks the harness itself is a different failure, not this one.
        let outcome =
            std::panic::catch_unwind(|| run_with_faults(&fixed, seed, candidate.to_vec()));
        let same = outcome.is_ok_and(|o| {
            o.verdicts
                .iter()
                .any(|v| !v.passed && failure_class(v) == class)
        });
        if same {
            Trial::StillFails
        } else {
            Trial::Passes
        }
    });
    println!(
        "{} trials, {} accepted; the minimal scenario ({} faults):\n",
        stats.trials,
        stats.accepted,
        minimal.len()
    );
    print!(
        "{}",
        scenario_to_toml(&Scenario {
            faults: minimal,
            ..fixed
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs each seed and reports its wall time against the virtual time it simulated. Wall time
/// is read outside the simulation (madsim's clock is virtual only inside a runtime).
fn bench_scenario(name: &str, seeds: &str) -> Res {
    let s = scenario(name, 0)?;
    let seeds: Vec<u64> = seeds
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()?;
    let (mut wall_total, mut virtual_total) = (0f64, 0f64);
    let mut ratios = Vec::new();
    // One unreported warm-up run, as benchmark harnesses do: the first run after a build pays
    // for loading the fresh binary and growing the heap, which is not the harness's speed.
    if let Some(&first) = seeds.first() {
        run(&s, first);
    }
    for seed in seeds {
        let started = std::time::Instant::now();
        let o = run(&s, seed);
        let wall = started.elapsed().as_secs_f64();
        let virt = o.history.end.as_secs_f64();
        (wall_total, virtual_total) = (wall_total + wall, virtual_total + virt);
        ratios.push(virt / wall.max(1e-9));
        println!(
            "seed {seed}: wall {wall:.3}s, virtual {virt:.1}s, {:.0}x real time, {} outputs, job {}",
            virt / wall.max(1e-9),
            o.history.outputs.len(),
            o.history.job_status
        );
    }
    // The median too: on a shared machine one seed can land on a busy moment.
    ratios.sort_by(f64::total_cmp);
    println!(
        "virtual_per_wall: {:.0} (total virtual / total wall), median {:.0}",
        virtual_total / wall_total.max(1e-9),
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0)
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs one TaskManager-crash scenario under each failover strategy and prints, side by side,
/// what each restarted and what the output saw: the numbers of `cargo xtask bench recovery`.
fn recovery_bench(name: &str, seed: u64) -> Res {
    let base = scenario(name, seed)?;
    let fault_at = base.faults.iter().map(|f| f.at).min().unwrap_or_default();
    println!("{name}, seed {seed}: the same job, cluster, sink and crash under each strategy");
    println!(
        "{:<12} {:>9} {:>14} {:>12}  delivery",
        "strategy", "restarted", "longest stall", "recovered"
    );
    for strategy in ["full", "region", "taskmanager"] {
        let mut s = base.clone();
        s.config = s
            .config
            .with("jobmanager.execution.failover-strategy", strategy)?;
        // Count losses and duplicates rather than demand a guarantee.
        s.expect.delivery = DeliveryMode::FaultAccounted;
        let o = run(&s, seed);
        let h = &o.history;
        let restarted: usize = h
            .events
            .iter()
            .filter(|e| e.at >= fault_at)
            .map(|e| match &e.event {
                ClusterEvent::TasksDeployed { tasks, .. } => tasks.len(),
                _ => 0,
            })
            .sum();
        let summary = |checker: &str| {
            o.verdicts
                .iter()
                .find(|v| v.checker == checker)
                .map_or_else(|| "-".to_string(), |v| v.summary.clone())
        };
        println!(
            "{strategy:<12} {restarted:>9} {:>14} {:>12}  {}",
            format!("{:.3}s", longest_stall_after(h, fault_at).as_secs_f64()),
            summary("recovery").trim_start_matches("slowest recovery "),
            summary("delivery")
        );
    }
    Ok(ExitCode::SUCCESS)
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
