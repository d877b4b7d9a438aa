//! The command line's arguments. Seeds are written as `testing::parse_seeds` reads them
//! (`1,2,3`, `A..B`, or a mix), for every command that takes several.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::testing::parse_seeds;

#[derive(Parser, Debug)]
#[command(about = "Runs this binary's scenarios on its jobs under the simulator")]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Several seeds, as `1,2,3`, `A..B` (B exclusive) or a mix.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Seeds(pub Vec<u64>);

fn seeds(text: &str) -> Result<Seeds, String> {
    parse_seeds(text)
        .map(Seeds)
        .map_err(|bad| format!("'{bad}' is not a seed or a range A..B"))
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
    /// Lists the named scenarios.
    List,
    /// Every scenario (or those named) over a set of seeds: a verdict table.
    Check(CheckArgs),
    /// One scenario under one seed (the command every failure prints).
    Run(RunArgs),
    /// Many seeds of one scenario, each in a process of its own, in parallel; failing seeds
    /// join the regression corpus.
    Sweep(SweepArgs),
    /// Minimises a failing seed's fault plan while the same checker still fails; prints it
    /// as TOML.
    Shrink {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        max_trials: u32,
    },
    /// Scenarios over seeds, as `check`, written as a self-contained HTML report.
    Report {
        #[command(flatten)]
        runs: Runs,
        #[arg(long, default_value = "sim-report.html")]
        out: PathBuf,
    },
    /// Wall time per seed and the ratio of virtual to wall time.
    Bench {
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value = "1,2,3", value_parser = seeds)]
        seeds: Seeds,
    },
    /// One scenario under full, region and taskmanager failover, side by side: subtasks
    /// restarted, longest stall, recovery time, records lost and duplicated.
    Recovery {
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Which scenarios over which seeds.
#[derive(Args, Debug)]
pub(super) struct Runs {
    /// Comma-separated scenario names (default: all).
    #[arg(long)]
    pub scenarios: Option<String>,
    #[arg(long, default_value = "1,2,3", value_parser = seeds)]
    pub seeds: Seeds,
}

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    pub runs: Runs,
    /// Also write a self-contained HTML report.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// A named scenario, or `generated` (with --seed choosing the scenario too) if the binary
    /// has a generator.
    #[arg(long)]
    pub scenario: String,
    #[arg(long)]
    pub seed: u64,
    /// Print the canonical trace (the runtime's log lines).
    #[arg(long)]
    pub trace: bool,
    /// Print the timeline: faults and typed cluster events, as snapshots store them.
    #[arg(long)]
    pub events: bool,
    /// Write a self-contained HTML report.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Run the seed twice and compare traces, cluster events and outputs.
    #[arg(long)]
    pub check_determinism: bool,
}

#[derive(Args, Debug)]
pub(super) struct SweepArgs {
    #[arg(long)]
    pub scenario: String,
    /// The seeds, e.g. `0..500` (B exclusive).
    #[arg(long, value_parser = seeds)]
    pub seeds: Seeds,
    /// Seeds run at once (default: the machine's cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}
