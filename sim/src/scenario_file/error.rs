//! Why a scenario was refused. Every variant names the file and, where there is one, the key
//! path (`faults[2].restart_after`), so a message points at the line to fix.

use rill::api::JobError;
use rill::config::ConfigError;

/// Why a scenario file was refused: each variant names the file and, where it can, the key
/// path of the value to fix.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// The file is not valid TOML (the message keeps toml's line and column).
    #[error("{file}: {message}")]
    Toml {
        /// The file, as named to the parser.
        file: String,
        /// toml's message.
        message: String,
    },
    /// The file or directory could not be read.
    #[error("{file}: cannot read: {message}")]
    Io {
        /// The file or directory.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// [`load_named`](super::load_named) found no file of that name in `dir`.
    #[error("no scenario named '{name}' in {dir}; known: {}", .known.join(", "))]
    UnknownScenario {
        /// The name asked for.
        name: String,
        /// The directory searched.
        dir: String,
        /// The scenario names it holds.
        known: Vec<String>,
    },
    /// A key the section (or the fault's kind) does not accept. `path` is the section
    /// (`""` for the top level, `cluster`, `faults[2]`).
    #[error("{file}: unknown key `{}`; accepted keys: {}", join_path(.path, .key), .expected.join(", "))]
    UnknownKey {
        /// The file.
        file: String,
        /// The section.
        path: String,
        /// The key.
        key: String,
        /// The keys the section accepts.
        expected: Vec<&'static str>,
    },
    /// A required key is absent; `path` is the full key path.
    #[error("{file}: missing required key `{path}`")]
    MissingKey {
        /// The file.
        file: String,
        /// The key's full path.
        path: String,
    },
    /// A value that is not a duration (a string with a unit: `"5s"`, `"250ms"`).
    #[error("{file}: `{path}`: bad duration {value}: {reason}")]
    BadDuration {
        /// The file.
        file: String,
        /// The key's full path.
        path: String,
        /// The value as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A fault (index into `faults`, from 0) names a node the cluster does not have.
    #[error("{file}: faults[{fault}]: unknown node '{node}'; known nodes: {}", .known.join(", "))]
    UnknownNode {
        /// The file.
        file: String,
        /// The fault's index in `faults`.
        fault: usize,
        /// The node it names.
        node: String,
        /// The cluster's nodes.
        known: Vec<String>,
    },
    /// The job is not in the registry the file is checked against.
    #[error("{file}: unknown job '{name}'; registered jobs: {}", .known.join(", "))]
    UnknownJob {
        /// The file.
        file: String,
        /// The job named.
        name: String,
        /// The registry's jobs.
        known: Vec<&'static str>,
    },
    /// `rill::api::build_job` refused the job spec (bad parameter, parallelism, ...).
    #[error("{file}: invalid job: {error}")]
    InvalidJob {
        /// The file.
        file: String,
        /// Why the job was refused.
        error: JobError,
    },
    /// `Configuration::set` refused a `[config]` entry; the error names the key.
    #[error("{file}: [config]: {error}")]
    Config {
        /// The file.
        file: String,
        /// What `Configuration::set` said.
        error: ConfigError,
    },
    /// A value of the right type but out of range or inconsistent with the rest.
    #[error("{file}: `{path}`: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The key's full path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The scenario's `name` differs from its file's stem.
    #[error("{file}: scenario name '{name}' must equal the file name '{stem}'")]
    NameMismatch {
        /// The file.
        file: String,
        /// The `name` it gives.
        name: String,
        /// Its file name, without the extension.
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
