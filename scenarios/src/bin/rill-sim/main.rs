//! `rill-sim`: runs simulated scenarios. Built with `--cfg madsim` (`cargo xtask sim ...` does
//! that); the real-tokio build only explains how to get the simulated one.

#[cfg(madsim)]
mod cli;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!("rill-sim runs only in the simulated build: use `cargo xtask sim` (or build with RUSTFLAGS=\"--cfg madsim\")");
    std::process::ExitCode::from(2)
}
