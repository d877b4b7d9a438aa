//! The `card-risk-sim` binary: the harness's command line (`run`, `check`, `list`, `sweep`,
//! `shrink`, `report`, `bench`, `recovery`) over this crate's jobs and its `scenarios/`
//! directory, whose `corpus.txt` collects the seeds sweeps find failing. Simulated build only.

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    rill_sim::cli::main(
        rill_sim::runner::Harness::new(card_risk::registry()),
        rill_sim::cli::ScenarioSource::new(scenarios),
    )
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "card-risk-sim runs only in the simulated build: RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target-sim cargo run --release -p card-risk --bin card-risk-sim -- list"
    );
    std::process::ExitCode::from(2)
}
