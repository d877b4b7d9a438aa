//! The scenario fuzz target: libFuzzer's input becomes a scenario and a simulator seed, the
//! harness runs it, and a failing checker (or a panic) is a crash, written first as a scenario
//! file with its shrunk plan (`rill_sim::fuzz`). Run it with `cargo xtask fuzz scenarios`.

#![no_main]

#[cfg(not(madsim))]
compile_error!("the scenario fuzz target runs the simulator: build it with RUSTFLAGS=\"--cfg madsim\" (cargo xtask fuzz scenarios does)");

#[cfg(madsim)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rill_sim::fuzz::fuzz_one(data));
