//! `rill-sim`: the harness's command line (`rill_sim::cli`) over the built-in jobs, rill's named
//! scenarios (`scenarios/specs/`), the generated ones, and the corpus `scenarios/corpus.txt`.
//! Built with `--cfg madsim` (`cargo xtask sim ...` does that) it simulates; the real-tokio
//! build runs scenarios on real processes (`rill-sim real`).

/// A run keeps every output of its job (over a million records for the benchmark scenario) and
/// frees it at the end; glibc's allocator hands such blocks back to the OS and faults them in
/// again, which cost a fifth of the harness's time. mimalloc keeps and reuses them.
#[cfg(madsim)]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    use rill_sim::cli::ScenarioSource;
    let scenarios = ScenarioSource::new(rill_scenarios::specs_dir())
        .with_corpus(rill_scenarios::corpus_path())
        .with_generator(rill_sim::scenario_file::generate)
        .with_replay_prefix("cargo xtask sim");
    rill_sim::cli::main(rill_sim::runner::Harness::builtin(), scenarios)
}

/// The real-tokio build runs scenarios on real processes (`rill-sim real`); everything else is
/// the simulated build's (`cargo xtask sim`).
#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    rill_sim::real::cli::main(rill::jobs::builtin(), &rill_scenarios::specs_dir())
}
