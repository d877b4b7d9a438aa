//! The command line's arguments. Seeds are written as `testing::parse_seeds` reads them
//! (`1,2,3`, `A..B`, or a mix), for every command that takes several.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::shard::Shard;
use super::Ctx;
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
    /// Combines sweeps' results files (`sweep --results`), such as a sharded sweep's.
    ///
    /// Prints the totals, each failing seed with its replay, the seeds no file has a result
    /// for (a shard that died or never ran) and duplicates; failing seeds join the corpus.
    /// Exit 0 if every expected seed passed, 1 if some failed, 2 if some are missing or were
    /// not run to a verdict.
    Merge(MergeArgs),
    /// Prints a scenario as a file: a named one as it loads, `generated` as the seed draws it
    /// (with the expectations derived from its plan, and why, in its description).
    Show {
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
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
    /// Also write each run's result to FILE as it finishes, one `result` line each (the
    /// fields of `sweep --results`, plus `faults=` the size of the seed's fault plan), for
    /// tools that read them (`cargo xtask mutants`).
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// A named scenario, a scenario file's path (`*.toml`), or `generated` (with --seed
    /// choosing the scenario too) if the binary has a generator.
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
    /// Write the run's verdicts and figures here, for `rill-sim real --compare FILE` (the
    /// same scenario on real processes, side by side).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Write the names of the checkers that failed here, one a line (for `sweep`).
    #[arg(long, hide = true, value_name = "FILE")]
    pub failed_checkers_to: Option<PathBuf>,
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
    /// Run only shard K of N, K from 0 to N-1: the seeds at positions K, K+N, K+2N, ... of
    /// --seeds (repeats dropped), so N machines given 0/N .. N-1/N run every seed once.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Write each seed's result to FILE as it finishes (`-`: stdout), for `merge`.
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Keep the verdicts an earlier, interrupted run of the same sweep and shard left in
    /// --results FILE, and run only the other seeds.
    #[arg(long, requires = "results")]
    pub resume: bool,
    #[command(flatten)]
    pub corpus: CorpusArgs,
}

#[derive(Args, Debug)]
pub(super) struct MergeArgs {
    /// Results files written by `sweep --results` (`-`: stdin); a log holding result lines
    /// among other output (`kubectl logs`) will do.
    #[arg(required = true, value_name = "RESULTS")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub corpus: CorpusArgs,
}

/// Where failing seeds go.
#[derive(Args, Debug)]
pub(super) struct CorpusArgs {
    /// Append failing seeds to this corpus instead of the binary's own.
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Append failing seeds to no corpus (a shard whose results `merge` will add).
    #[arg(long, conflicts_with = "corpus")]
    pub no_corpus: bool,
}

impl CorpusArgs {
    /// The corpus to append to, if any.
    pub fn path(&self, ctx: &Ctx) -> Option<PathBuf> {
        match (&self.corpus, self.no_corpus) {
            (_, true) => None,
            (Some(path), false) => Some(path.clone()),
            (None, false) => Some(ctx.source.corpus().to_path_buf()),
        }
    }
}
