//! `cargo xtask`: developer commands for rill (alias in .cargo/config.toml).
//!
//! A host tool that only orchestrates cargo and the `rill` binary, so the runtime's determinism
//! rules do not apply here. Every child process inherits stdio; any failing child makes xtask
//! exit non-zero, naming the step that failed.

mod bench;
mod fuzz;
mod mutants;
mod parity;
mod recovery;
mod sim;
mod steps;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use steps::{Failure, Plan, Step};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Developer commands for rill: test, bench, sim, mutants, fuzz"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every test: real tokio, then simulated (--cfg madsim, target-sim/)
    ///
    /// Step 1 runs `cargo test --workspace`; step 2 runs it again with `--cfg madsim` appended to
    /// RUSTFLAGS and `CARGO_TARGET_DIR=<workspace>/target-sim`, so the two builds never evict each
    /// other. Stops at the first failing step.
    Test(TestArgs),
    /// The simulation harness: without a subcommand, every scenario over the default seeds
    /// (verdict table, HTML report in target-sim/sim-report.html); `run`, `sweep`, `shrink`.
    Sim(sim::SimArgs),
    /// Benchmarks: runtime, sim, recovery, balance
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Plants each bug of mutants/*.patch in a scratch worktree (target-mutants/), runs the
    /// harness over named scenarios and seeds, and reports which were caught, by which
    /// checkers, and how far the first failure shrank (target-mutants/report.md)
    Mutants(mutants::MutantsArgs),
    /// Coverage-guided fuzzing (cargo-fuzz, libFuzzer): `scenarios`, the wire decoders
    /// (`wire_control`, `wire_data`, `wire_services`), `jobmanager_actor`, or `all`; `--time N`
    ///
    /// Needs `cargo install cargo-fuzz`. Builds into fuzz/target (scenarios, --cfg madsim) and
    /// fuzz/target-wire (the rest), keeps corpora in fuzz/corpus and crash inputs in
    /// fuzz/artifacts, writes findings to fuzz/findings.
    #[command(subcommand)]
    Fuzz(fuzz::FuzzCommand),
}

#[derive(Args)]
struct TestArgs {
    /// Run only the real-tokio step.
    #[arg(long, conflicts_with = "sim_only")]
    real_only: bool,
    /// Run only the simulated (--cfg madsim) step.
    #[arg(long)]
    sim_only: bool,
    /// Passed to both `cargo test` runs, e.g. `-- my_test -- --nocapture`.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_args: Vec<String>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Throughput and peak memory of keyed-count (`rill bench`) against the targets
    ///
    /// Builds `cargo build --release --bin rill`, runs `target/release/rill bench` (keyed-count on
    /// an in-process cluster) and compares its `records_per_sec` and `peak_rss_mib` lines with the
    /// targets: >= 6.5 million records/s, peak RSS < 100 MiB. A missed target is reported; only a
    /// failing build or run exits non-zero.
    Runtime(bench::RuntimeArgs),
    /// Speed of the simulation harness: wall time per seed, virtual/wall ratio
    Sim,
    /// The 4x2 TaskManager crash under full, region and taskmanager failover, side by side:
    /// simulated, or with `--real` as processes on loopback (about 3 minutes)
    Recovery {
        /// Real processes: a JobManager, 4 TaskManagers, SIGKILL of one after 25 s.
        #[arg(long)]
        real: bool,
    },
    /// Task-count range and memory per TaskManager under each load-balance mode
    Balance,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Command::Test(args) => test(&root, &args),
        Command::Sim(args) => sim::main(&root, &args),
        Command::Bench(BenchCommand::Runtime(args)) => bench::runtime(&root, &args),
        Command::Bench(BenchCommand::Sim) => sim::bench(&root),
        Command::Bench(BenchCommand::Recovery { real: false }) => sim::bench_recovery(&root),
        Command::Bench(BenchCommand::Recovery { real: true }) => recovery::real(&root),
        Command::Bench(BenchCommand::Balance) => bench::balance(&root),
        Command::Mutants(args) => mutants::main(&root, &args),
        Command::Fuzz(command) => fuzz::main(&root, &command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// The workspace root: the parent of xtask's own manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// `cargo xtask test`: the real-tokio run, the docs (warnings denied: broken links and
/// malformed docs fail), then the simulated run, then the parity set on real processes
/// (`parity::PARITY_SET`), failing fast.
fn test(root: &Path, args: &TestArgs) -> Result<(), Failure> {
    let mut steps = Vec::new();
    // Arguments for cargo narrow the run to part of the workspace: the crate outside it is
    // not part of that.
    let outside = args.cargo_args.is_empty();
    if outside {
        prepare_standalone(root)?;
        fuzz::prepare(root)?;
    }
    if !args.sim_only {
        steps.push(test_step("real tokio", root, args));
        if outside {
            steps.push(standalone_step("real tokio, outside the workspace", root));
            let check = fuzz::check_step(root, false).env("CARGO_TARGET_DIR", root.join("target"));
            steps.push(check);
        }
        let docs = Step::cargo("docs", root, ["doc", "--no-deps", "--workspace", "--quiet"])
            .env("RUSTDOCFLAGS", "-D warnings");
        steps.push(docs);
    }
    if !args.real_only {
        let (flags_var, flags) = sim_rustflags();
        let seed = unit_test_seed();
        let simulated = |step: Step| {
            step.env(flags_var, &flags)
                .env("MADSIM_TEST_SEED", &seed)
                // rustdoc reads its own flags: without the cfg, a doc test's simulated half
                // (the README's sample test) would be dropped before it is type-checked.
                .env("RUSTDOCFLAGS", sim_rustdocflags())
                .env("CARGO_TARGET_DIR", root.join("target-sim"))
        };
        steps.push(simulated(test_step("simulated", root, args)));
        if outside {
            let step = standalone_step("simulated, outside the workspace", root);
            steps.push(simulated(step));
            steps.push(simulated(fuzz::check_step(root, true)));
        }
    }
    // The same scenarios on real processes, judged side by side with the simulator: only in a
    // whole run (both builds, the whole workspace).
    if outside && !args.real_only && !args.sim_only {
        parity::prepare(root).map_err(|e| Failure::new(format!("parity directory: {e}")))?;
        let set: Vec<String> = parity::PARITY_SET.iter().map(|s| s.to_string()).collect();
        steps.extend(parity::steps(root, &set, 1));
    }
    let mut plan = Plan::new(steps.len());
    for step in steps {
        plan.run(step)?;
    }
    plan.finish();
    Ok(())
}

/// The seed every `#[madsim::test]` / simulated `#[tokio::test]` runs under: the caller's
/// `MADSIM_TEST_SEED`, else 1. Left unset, madsim draws one from the clock, and a test that
/// depends on the order of spawned tasks passes or fails by the run; `MADSIM_TEST_SEED=N
/// cargo xtask test --sim-only` tries another seed, `MADSIM_TEST_NUM=K` K seeds from it.
fn unit_test_seed() -> String {
    let seed = std::env::var("MADSIM_TEST_SEED").unwrap_or_else(|_| "1".to_string());
    eprintln!("xtask: simulated tests run with MADSIM_TEST_SEED={seed}");
    seed
}

/// The crate outside the workspace (`examples/standalone`), as a user's crate depends on
/// rill: by path, with its own `[workspace]`. It gets the workspace's lock file, so it
/// resolves the same versions and reuses what the workspace's build compiled (same target
/// directory), and costs only its own crate.
const STANDALONE: &str = "examples/standalone";

fn prepare_standalone(root: &Path) -> Result<(), Failure> {
    let lock = root.join(STANDALONE).join("Cargo.lock");
    std::fs::copy(root.join("Cargo.lock"), &lock)
        .map(drop)
        .map_err(|e| Failure::new(format!("cannot copy Cargo.lock to {}: {e}", lock.display())))
}

fn standalone_step(label: &'static str, root: &Path) -> Step {
    let manifest = root.join(STANDALONE).join("Cargo.toml");
    Step::cargo(label, root, ["test", "--manifest-path"])
        .args([manifest])
        .env("CARGO_TARGET_DIR", root.join("target"))
}

fn test_step(label: &'static str, root: &Path, args: &TestArgs) -> Step {
    Step::cargo(label, root, ["test", "--workspace"]).args(&args.cargo_args)
}

/// rustdoc's flags for the simulated build: the user's `RUSTDOCFLAGS` with `--cfg madsim`.
fn sim_rustdocflags() -> String {
    match std::env::var("RUSTDOCFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} --cfg madsim"),
        _ => "--cfg madsim".to_string(),
    }
}

/// The rustflags variable for the simulated build: the user's flags with `--cfg madsim` appended.
///
/// Cargo prefers CARGO_ENCODED_RUSTFLAGS (0x1f-separated) over RUSTFLAGS, so when it is set the
/// cfg goes there; otherwise into RUSTFLAGS.
pub(crate) fn sim_rustflags() -> (&'static str, String) {
    if let Ok(encoded) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        let sep = if encoded.is_empty() { "" } else { "\x1f" };
        return (
            "CARGO_ENCODED_RUSTFLAGS",
            format!("{encoded}{sep}--cfg\x1fmadsim"),
        );
    }
    match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => {
            ("RUSTFLAGS", format!("{} --cfg madsim", flags.trim()))
        }
        _ => ("RUSTFLAGS", "--cfg madsim".to_string()),
    }
}
