//! rill-scenarios: rill's own named scenarios (`specs/*.toml`), the regression corpus their
//! sweeps feed (`corpus.txt`), and the `rill-sim` binary over the built-in jobs. The file
//! format, its parser, validator, writer and generator are the harness's
//! ([`rill_sim::scenario_file`]), so that a user's crate has them without this one.

use std::path::PathBuf;

use rill_sim::scenario_file::{load_named, names_in, ScenarioError};
use rill_sim::Scenario;

type Result<T> = std::result::Result<T, ScenarioError>;

/// The directory of the named scenarios: `scenarios/specs/`.
pub fn specs_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/specs"))
}

/// The regression corpus: the `scenario seed` lines sweeps and fuzz campaigns found failing,
/// which the tests replay so that a bug found once stays fixed (see [`load_entry`]).
pub fn corpus_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus.txt"))
}

/// Loads a regression corpus entry's scenario: a name from [`specs_dir`], or a scenario file
/// given by its path relative to this crate (`findings/NAME.toml`: a drawn scenario a fuzz
/// campaign or sweep found failing, kept as it was drawn).
pub fn load_entry(scenario: &str) -> Result<Scenario> {
    match scenario.ends_with(".toml") {
        true => rill_sim::scenario_file::load_file(&crate_dir().join(scenario)),
        false => load(scenario),
    }
}

/// The command that replays a corpus entry from the workspace's root.
pub fn replay_entry(scenario: &str, seed: u64) -> String {
    let scenario = match scenario.ends_with(".toml") {
        true => format!("scenarios/{scenario}"),
        false => scenario.to_string(),
    };
    format!("cargo xtask sim run --scenario {scenario} --seed {seed}")
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names of the scenarios in [`specs_dir`] (file stems), sorted.
pub fn names() -> Result<Vec<String>> {
    names_in(&specs_dir())
}

/// Loads the named scenario from [`specs_dir`].
pub fn load(name: &str) -> Result<Scenario> {
    load_named(&specs_dir(), name, &rill::jobs::builtin())
}

/// Every named scenario, sorted by name; the first that does not parse stops it.
pub fn load_dir() -> Result<Vec<Scenario>> {
    rill_sim::scenario_file::load_dir(&specs_dir())
}

#[cfg(test)]
mod tests;
