//! rill-scenarios: named scenario files (`specs/*.toml`), their parser and validator, their
//! writer (for shrunk fault plans and saved generated scenarios), and scenarios generated from a
//! seed. Every path into a [`rill_sim::Scenario`] goes through the same [`validate`].

mod error;
pub mod generate;
pub mod spec;
mod validate;
pub mod write;

pub use error::ScenarioError;
pub use generate::generate;
pub use rill_sim::fault::FAULT_KINDS;
pub use spec::{
    load, load_dir, load_dir_with, load_file, load_file_with, names, parse_scenario,
    parse_scenario_with, specs_dir,
};
pub use validate::{
    apply_memory, known_nodes, validate, validate_with, EXTERNAL_NODES, MAX_MEMORY_MB,
    MAX_TASKMANAGERS,
};
pub use write::{duration_str, faults_to_toml, scenario_to_toml};

#[cfg(test)]
mod tests;
