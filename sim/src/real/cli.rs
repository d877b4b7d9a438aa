//! `rill-sim real`: a scenario on real processes, judged by the simulator's checkers, and
//! optionally side by side with the simulated run's summary (`rill-sim run --summary FILE`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use rill::jobs::JobRegistry;

use super::{RealHarness, RealOptions};
use crate::parity::{side_by_side, Summary};
use crate::scenario_file::{load_file_with, load_named};

/// The real-process harness's command line.
#[derive(Parser, Debug)]
#[command(
    name = "rill-sim",
    about = "rill's scenarios on real processes (the simulated build has the rest)"
)]
enum Cli {
    /// Runs one scenario's cluster as real processes on this machine, applies its fault plan
    /// by real means, and judges the run with the simulator's checkers.
    Real(RealArgs),
    /// Lists the named scenarios whose every fault this runner applies for real (no swarm, no
    /// buggify point, no latency, no crash or pause of an external system, clock skew only
    /// of TaskManagers).
    Runnable,
}

#[derive(clap::Args, Debug)]
struct RealArgs {
    /// A named scenario, or a scenario file (`*.toml`).
    #[arg(long)]
    scenario: String,
    /// The seed whose fault plan runs (a swarm's draw); real timing is not seeded.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The binary the JobManager and TaskManagers run: `rill`, or a binary of yours over
    /// the same jobs.
    #[arg(long, value_name = "PATH")]
    rill: PathBuf,
    /// Where events files and process logs go (a subdirectory per run).
    #[arg(long, default_value = "target/real-runs")]
    workdir: PathBuf,
    /// Keep every process on loopback, without network namespaces (partitions are then not
    /// applied); without it, namespaces are used where root, `ip` and `nft` are at hand.
    #[arg(long)]
    loopback: bool,
    /// Run without TLS (the authenticated plaintext mode, every process `--insecure`), to
    /// measure what TLS costs; identities are then only claimed.
    #[arg(long)]
    plaintext: bool,
    /// Fail if a fault of the plan was not applied (a parity run without its fault proves
    /// nothing), as well as on a failing or differing checker.
    #[arg(long)]
    require_applied: bool,
    /// Print the timeline of faults and typed cluster events.
    #[arg(long)]
    events: bool,
    /// Write this run's summary here.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// The simulated run's summary: print both side by side, and fail if a checker's verdict
    /// differs.
    #[arg(long, value_name = "FILE")]
    compare: Option<PathBuf>,
}

/// Parses the arguments and runs the command over `jobs`, with named scenarios in `specs`.
pub fn main(jobs: JobRegistry, specs: &Path) -> ExitCode {
    let result = match Cli::parse() {
        Cli::Real(args) => real(jobs, specs, &args),
        Cli::Runnable => runnable(&jobs, specs),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn runnable(jobs: &JobRegistry, specs: &Path) -> Result<ExitCode, Box<dyn std::error::Error>> {
    for name in crate::scenario_file::names_in(specs)? {
        let s = load_named(specs, &name, jobs)?;
        // Buggify points fire only in the simulator: a scenario that needs them is not the same
        // scenario for real.
        let whole = s.swarm.is_none() && s.buggify.is_empty();
        if whole && s.faults.iter().all(|f| super::applies_for_real(&f.kind)) {
            println!("{name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn real(
    jobs: JobRegistry,
    specs: &Path,
    a: &RealArgs,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let s = if a.scenario.ends_with(".toml") {
        load_file_with(Path::new(&a.scenario), &jobs)?
    } else {
        load_named(specs, &a.scenario, &jobs)?
    };
    let compare = a
        .compare
        .as_ref()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Summary::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
        })
        .transpose()?;
    println!(
        "real run: {} seed {} on {} TaskManager processes x {} slots ({}, {})",
        s.name,
        a.seed,
        s.cluster.taskmanagers,
        s.cluster.slots_per_taskmanager,
        a.rill.display(),
        if a.plaintext {
            "plaintext"
        } else {
            "mutual TLS"
        }
    );
    let harness = RealHarness::new(
        jobs,
        RealOptions {
            program: a.rill.clone(),
            workdir: a.workdir.clone(),
            loopback: a.loopback,
            plaintext: a.plaintext,
        },
    );
    let outcome = harness.run(&s, a.seed)?;
    let summary = Summary::of("real", &outcome.history, &outcome.verdicts);
    println!(
        "job {} after {:.1}s, {} outputs",
        summary.job,
        outcome.history.end.as_secs_f64(),
        outcome.history.outputs.len()
    );
    if let Some(message) = &outcome.history.job_message {
        println!("  {message}");
    }
    for v in &outcome.verdicts {
        let status = match (v.checked, v.passed) {
            (_, false) => "FAIL",
            (true, true) => "ok  ",
            (false, true) => "n/a ",
        };
        println!("  {status} {:<14} {}", v.checker, v.summary);
        if let (false, Some(evidence)) = (v.passed, &v.evidence) {
            println!("       evidence: {evidence}");
        }
    }
    for f in &outcome.history.faults {
        match (&f.not_applied, &f.applied_as) {
            (Some(why), _) => println!("  fault {}: {why}", f.fault),
            (None, Some(how)) => println!("  fault {}: applied, {how}", f.fault),
            (None, None) => println!("  fault {}: applied", f.fault),
        }
    }
    if a.events {
        for (_, line) in crate::events::timeline(&outcome.history) {
            println!("{line}");
        }
    }
    if let Some(path) = &a.summary {
        std::fs::write(path, summary.render(&s.name, a.seed))?;
    }
    let mut ok = outcome.passed();
    let unapplied = outcome
        .history
        .faults
        .iter()
        .filter(|f| f.not_applied.is_some())
        .count();
    if a.require_applied && unapplied > 0 {
        println!("{unapplied} fault(s) of the plan were not applied (--require-applied)");
        ok = false;
    }
    if let Some(sim) = compare {
        let (table, differ) = side_by_side(&sim, &summary);
        println!("\n{table}");
        if differ > 0 {
            println!("{differ} checker(s) judged the simulated and the real run differently (<<)");
            ok = false;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
