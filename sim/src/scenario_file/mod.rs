//! Scenario files: the TOML format of a [`Scenario`](crate::Scenario), its parser
//! ([`parse_scenario_with`], [`load_dir_with`], [`load_named`]), its validator
//! ([`validate_with`]), its writer ([`scenario_to_toml`], for shrunk fault plans and saved
//! generated scenarios), and scenarios generated from a seed ([`generate`]).
//!
//! It lives in the harness, not beside rill's own named scenarios, so that a user's crate that
//! depends on `rill` and `rill-sim` alone can keep its scenarios as files. Every path into a
//! `Scenario` goes through the same [`validate_with`], against the registry the scenario will
//! run with: a scenario that loads is one the harness can run.

mod error;
mod generate;
mod spec;
mod validate;
mod write;

pub use error::ScenarioError;
pub use generate::generate;
pub use spec::{
    load_dir, load_dir_with, load_file, load_file_with, load_named, names_in, parse_scenario,
    parse_scenario_with, DEFAULT_ANCHORED_PERCENT, DEFAULT_RUN_FOR,
};
pub use validate::{
    apply_memory, known_nodes, validate, validate_with, MAX_DURATION, MAX_MEMORY_MB,
    MAX_SWARM_FAULTS, MAX_TASKMANAGERS,
};
pub use write::{duration_str, faults_to_toml, scenario_to_toml};

#[cfg(test)]
mod tests;
