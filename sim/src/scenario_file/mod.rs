//! Scenario files: the TOML format of a [`Scenario`](crate::Scenario), its parser
//! ([`parse_scenario_with`], [`load_dir_with`], [`load_named`]), its validator
//! ([`validate_with`]), its writer ([`scenario_to_toml`], for shrunk fault plans and saved
//! generated scenarios), scenarios generated from a seed ([`generate`]) or a fuzzer's bytes
//! ([`generate_from_bytes`]), and the expectations a plan implies ([`derive_expectations`]).
//!
//! It lives in the harness, not beside rill's own named scenarios, so that a user's crate that
//! depends on `rill` and `rill-sim` alone can keep its scenarios as files. Every path into a
//! `Scenario` goes through the same [`validate_with`], against the registry the scenario will
//! run with: a scenario that loads is one the harness can run.

mod derive;
mod error;
mod generate;
mod spec;
mod validate;
mod write;

pub use derive::{
    derive_expectations, derive_with, drain_bound, input_time, refused_deployments,
    stopping_for_good, tolerates, Derived, FAILOVERS_PER_LOSS, UNNOTICED_MARGIN,
};
pub use error::ScenarioError;
pub use generate::{generate, generate_from_bytes, Generated, Profile};
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
