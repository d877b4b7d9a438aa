//! The harness's command line, for any job registry and any directory of scenario files:
//! `list`, `check`, `run`, `sweep` (whole, or one shard of it), `merge` (the shards' results),
//! `shrink`, `report`, `bench` and `recovery`.
//!
//! A user's crate gets all of it in a binary of its own built with `--cfg madsim`, over its own
//! jobs and scenarios, as `rill::cli::main(registry)` gives it the runtime's commands:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
//!     rill_sim::cli::main(Harness::new(my_crate::registry()), ScenarioSource::new(scenarios))
//! }
//! ```
//!
//! Exit codes: 0 when every run passed, 1 when a checker failed, 2 when something could not be
//! run (a bad argument, an unknown scenario), 101 when the runtime or the harness panicked.

mod args;
mod commands;
mod merge;
mod print;
mod results;
mod shard;
mod sweep;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::runner::Harness;
use crate::scenario::Scenario;
use crate::scenario_file::{load_file_with, load_named, names_in, validate_with};
use args::Cli;

/// The scenario name that asks the binary's generator for the seed's own scenario.
pub const GENERATED: &str = "generated";

/// Where a binary's scenarios come from and where what its sweeps find goes: the directory of
/// its named scenario files, its regression corpus, optionally a generator of scenarios from a
/// seed, and the command that replays a run (printed with every failure).
#[derive(Clone, Debug)]
pub struct ScenarioSource {
    dir: PathBuf,
    corpus: PathBuf,
    generator: Option<fn(u64) -> Scenario>,
    replay_prefix: Option<String>,
}

impl ScenarioSource {
    /// The scenarios are the `*.toml` files of `dir`; failing seeds go to `<dir>/corpus.txt`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        ScenarioSource {
            corpus: dir.join("corpus.txt"),
            dir,
            generator: None,
            replay_prefix: None,
        }
    }

    /// Failing seeds of sweeps go to `path` instead, where the crate's tests replay them.
    pub fn with_corpus(mut self, path: impl Into<PathBuf>) -> Self {
        self.corpus = path.into();
        self
    }

    /// `--scenario generated --seed N` runs `generate(N)` (validated against the binary's
    /// jobs), so a sweep explores scenarios, not only fault plans.
    pub fn with_generator(mut self, generate: fn(u64) -> Scenario) -> Self {
        self.generator = Some(generate);
        self
    }

    /// Replay commands start with `prefix` (followed by `run --scenario S --seed N`) rather
    /// than the path this binary was started by: for a binary usually run through a wrapper
    /// (rill's own is `cargo xtask sim`).
    pub fn with_replay_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.replay_prefix = Some(prefix.into());
        self
    }

    /// The directory of the named scenarios.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The regression corpus sweeps append to.
    pub fn corpus(&self) -> &Path {
        &self.corpus
    }
}

/// Parses the process's arguments and runs the command on `harness`'s jobs over `scenarios`;
/// the exit code is the outcome (see the module docs).
pub fn main(harness: Harness, scenarios: ScenarioSource) -> ExitCode {
    main_from(harness, scenarios, std::env::args_os().collect())
}

/// [`main`] over `args` (the binary's path first).
fn main_from(harness: Harness, scenarios: ScenarioSource, args: Vec<OsString>) -> ExitCode {
    let program = args.first().map(|p| p.to_string_lossy().into_owned());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let ctx = Ctx::new(harness, scenarios, program);
    commands::dispatch(&ctx, cli.command).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

type Res = Result<ExitCode, Box<dyn std::error::Error>>;

/// What every command works with: the harness, the scenarios, the binary's name (for report
/// titles) and how to name a replay.
struct Ctx {
    harness: Harness,
    source: ScenarioSource,
    name: String,
    replay_prefix: String,
}

impl Ctx {
    fn new(harness: Harness, source: ScenarioSource, program: Option<String>) -> Ctx {
        let program = program.unwrap_or_else(|| "rill-sim".into());
        let name = Path::new(&program)
            .file_name()
            .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
        let replay_prefix = source.replay_prefix.clone().unwrap_or(program);
        Ctx {
            harness,
            source,
            name,
            replay_prefix,
        }
    }

    /// The scenario `name` (or the seed's generated one, or the file at `name` if it ends in
    /// `.toml`: a fuzzer's finding, a scenario kept elsewhere), valid for the harness's jobs.
    fn scenario(&self, name: &str, seed: u64) -> Result<Scenario, Box<dyn std::error::Error>> {
        if name.ends_with(".toml") {
            return Ok(load_file_with(Path::new(name), self.harness.jobs())?);
        }
        if name == GENERATED {
            let generate = self.source.generator.ok_or_else(|| {
                format!(
                    "this binary has no scenario generator; scenarios: {}",
                    self.names_list()
                )
            })?;
            let s = generate(seed);
            validate_with(&s, self.harness.jobs())?;
            return Ok(s);
        }
        Ok(load_named(&self.source.dir, name, self.harness.jobs())?)
    }

    /// The named scenarios, sorted.
    fn names(&self) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        Ok(names_in(&self.source.dir)?)
    }

    fn names_list(&self) -> String {
        self.names()
            .map_or_else(|e| e.to_string(), |n| n.join(", "))
    }

    /// The command that replays `seed` of `name` alone.
    fn replay(&self, name: &str, seed: u64) -> String {
        self.command(&format!("run --scenario {name} --seed {seed}"))
    }

    /// The command line that runs this binary's subcommand `rest`, as replays are named.
    fn command(&self, rest: &str) -> String {
        format!("{} {rest}", self.replay_prefix)
    }
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
