//! Why a scenario was refused. Every variant names the file and, where there is one, the key
//! path (`faults[2].restart_after`), so a message points at the line to fix.

use rill::api::JobError;
use rill::config::ConfigError;

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// The file is not valid TOML (the message keeps toml's line and column).
    #[error("{file}: {message}")]
    Toml { file: String, message: String },
    /// The file or directory could not be read.
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    /// [`load_named`](super::load_named) found no file of that name in `dir`.
    #[error("no scenario named '{name}' in {dir}; known: {}", .known.join(", "))]
    UnknownScenario {
        name: String,
        dir: String,
        known: Vec<String>,
    },
    /// A key the section (or the fault's kind) does not accept. `path` is the section
    /// (`""` for the top level, `cluster`, `faults[2]`).
    #[error("{file}: unknown key `{}`; accepted keys: {}", join_path(.path, .key), .expected.join(", "))]
    UnknownKey {
        file: String,
        path: String,
        key: String,
        expected: Vec<&'static str>,
    },
    /// A required key is absent; `path` is the full key path.
    #[error("{file}: missing required key `{path}`")]
    MissingKey { file: String, path: String },
    #[error("{file}: `{path}`: bad duration {value}: {reason}")]
    BadDuration {
        file: String,
        path: String,
        value: String,
        reason: String,
    },
    /// A fault (index into `faults`, from 0) names a node the cluster does not have.
    #[error("{file}: faults[{fault}]: unknown node '{node}'; known nodes: {}", .known.join(", "))]
    UnknownNode {
        file: String,
        fault: usize,
        node: String,
        known: Vec<String>,
    },
    #[error("{file}: unknown job '{name}'; registered jobs: {}", .known.join(", "))]
    UnknownJob {
        file: String,
        name: String,
        known: Vec<&'static str>,
    },
    /// `rill::api::build_job` refused the job spec (bad parameter, parallelism, ...).
    #[error("{file}: invalid job: {error}")]
    InvalidJob { file: String, error: JobError },
    /// `Configuration::set` refused a `[config]` entry; the error names the key.
    #[error("{file}: [config]: {error}")]
    Config { file: String, error: ConfigError },
    /// A value of the right type but out of range or inconsistent with the rest.
    #[error("{file}: `{path}`: {reason}")]
    Invalid {
        file: String,
        path: String,
        reason: String,
    },
    #[error("{file}: scenario name '{name}' must equal the file name '{stem}'")]
    NameMismatch {
        file: String,
        name: String,
        stem: String,
    },
}

fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
