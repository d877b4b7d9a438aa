//! `rill-sim`: runs simulated scenarios. Built with `--cfg madsim` (`cargo xtask sim ...` does
//! that); the real-tokio build only explains how to get the simulated one.

#[cfg(madsim)]
mod cli;

/// A run keeps every output of its job (over a million records for the benchmark scenario) and
/// frees it at the end; glibc's allocator hands such blocks back to the OS and faults them in
/// again, which cost a fifth of the harness's time. mimalloc keeps and reuses them.
#[cfg(madsim)]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!("rill-sim runs only in the simulated build: use `cargo xtask sim` (or build with RUSTFLAGS=\"--cfg madsim\")");
    std::process::ExitCode::from(2)
}
