//! The `rill` binary: the command line ([`rill::cli`]) over the built-in jobs.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    rill::cli::main(rill::jobs::builtin()).await
}
