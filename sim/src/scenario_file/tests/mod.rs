//! The scenario-file code's unit tests, split by what each exercises, and the fixtures they
//! share: a small valid file (`BASE`) that each test extends or breaks.

use std::time::Duration;

use super::{parse_scenario, ScenarioError};
use crate::Scenario;

mod anchor;
mod buggify;
mod derive;
mod generate;
mod spec;
mod validate;
mod write;

const BASE: &str = r#"
name = "t"
run_for = "60s"
[cluster]
taskmanagers = 4
slots_per_taskmanager = 2
[job]
name = "keyed-count"
parallelism = 4
records = 1000
"#;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    parse_scenario("t.toml", text)
}

/// BASE with `extra` appended (sections after [job]).
fn with(extra: &str) -> Result<Scenario, ScenarioError> {
    parse(&format!("{BASE}{extra}"))
}

fn err(extra: &str) -> ScenarioError {
    with(extra).expect_err("should be refused")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const CRASH: &str = "[[faults]]\nat = \"1s\"\nkind = \"crash\"\ntarget = \"tm-1\"\n";
