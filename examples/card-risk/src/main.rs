//! The `card-risk` binary: the whole `rill` command line (`local`, `jobmanager`,
//! `taskmanager`, `run`, `jobs`, `config`, ...) over this crate's jobs.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    rill::cli::main(card_risk::registry()).await
}
