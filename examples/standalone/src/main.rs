//! The whole `rill` command line over this crate's jobs.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rill::cli::main(page_views::registry()).await
}
