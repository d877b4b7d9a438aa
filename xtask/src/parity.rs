//! Simulated against real: the parity set CI runs (`cargo xtask test`), and `cargo xtask sim
//! parity` over it or over named scenarios. Each scenario runs once in the simulator (`rill-sim
//! run --summary`) and once on real processes (`rill-sim real --compare`, JobManager and
//! TaskManagers as `rill` processes in network namespaces of their own), and fails if the real
//! run fails a checker or a checker judges the two differently.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::steps::Step;

/// What CI runs for real: a TaskManager crash under `taskmanager` failover (no 500 ms window
/// without output, every missing record accounted to the crash, duplicates counted), the same
/// crash under `region` failover with the transactional sink (exactly-once), a pause past the
/// heartbeat timeout (detected by the JobManager's timer alone), a partition that heals
/// before the timeout (exactly-once, nothing restarted), and an OOM kill under `taskmanager`
/// failover, which the real run leaves to the kernel's OOM killer (the TaskManager's memory
/// cgroup pressed); and the checkpoint store's process failing and stalling (its health file),
/// then crashing, restarting and sitting behind a partition (exactly-once throughout); and the
/// log server's process crashing and sitting behind a partition (sources wait, nothing
/// restarts); and the sink store's process crashing (it restarts from its journal) and sitting
/// behind a partition (writes wait and are sent again, applied once: exactly-once).
pub const PARITY_SET: &[&str] = &[
    "tm-crash-4x2-taskmanager",
    "oom-kill-4x2-taskmanager",
    "tm-crash-4x2-region",
    "long-pause",
    "partition-heals-in-time-taskmanager",
    "store-failure",
    "checkpoint-store-down",
    "source-log-down",
    "sink-store-down",
];

/// The steps that build both harness binaries (dev profile, so CI's test builds are reused)
/// and run each of `scenarios` both ways under `seed`.
pub fn steps(root: &Path, scenarios: &[String], seed: u64) -> Vec<Step> {
    let mut steps = builds(root);
    let (sim_bin, real_bin, rill) = (
        sim_binary(root),
        real_binary(root, "rill-sim"),
        real_binary(root, "rill"),
    );
    let seed = seed.to_string();
    for scenario in scenarios {
        // A scenario file's summary is named after the file.
        let name = Path::new(scenario)
            .file_stem()
            .map_or(scenario.clone(), |s| s.to_string_lossy().into_owned());
        let summary = summary_dir(root).join(format!("{name}-{seed}.sim"));
        steps.push(
            Step::new("parity: simulated", root, &sim_bin)
                .args(["run", "--scenario", scenario, "--seed", &seed])
                .args([OsStr::new("--summary"), summary.as_os_str()]),
        );
        steps.push(
            Step::new("parity: real", root, &real_bin)
                .args([
                    "real",
                    "--scenario",
                    scenario,
                    "--seed",
                    &seed,
                    "--require-applied",
                ])
                .args([OsStr::new("--rill"), rill.as_os_str()])
                .args([OsStr::new("--compare"), summary.as_os_str()]),
        );
    }
    steps
}

/// The two builds: the simulated `rill-sim`, and the real `rill` and `rill-sim`.
pub fn builds(root: &Path) -> Vec<Step> {
    let (var, flags) = crate::sim_rustflags();
    let sim_dir = root.join("target-sim");
    let build_sim = Step::cargo(
        "parity: build rill-sim (simulated)",
        root,
        ["build", "-p", "rill-scenarios", "--bin", "rill-sim"],
    )
    .env(var, flags)
    .env("CARGO_TARGET_DIR", &sim_dir);
    let build_real = Step::cargo(
        "parity: build rill and rill-sim (real)",
        root,
        [
            "build",
            "-p",
            "rill",
            "--bin",
            "rill",
            "-p",
            "rill-scenarios",
            "--bin",
            "rill-sim",
        ],
    );
    vec![build_sim, build_real]
}

/// Where the summaries go; made before the steps run.
pub fn prepare(root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(summary_dir(root))
}

/// The directory of the simulated runs' summaries.
pub fn summary_dir(root: &Path) -> PathBuf {
    target_dir(root).join("parity")
}

/// The simulated build's `rill-sim` (dev profile).
pub fn sim_binary(root: &Path) -> PathBuf {
    binary(&root.join("target-sim"), "rill-sim")
}

/// The real build's target directory, honouring CARGO_TARGET_DIR as cargo does.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d))
}

/// A binary of the real build's dev profile.
pub fn real_binary(root: &Path, name: &str) -> PathBuf {
    binary(&target_dir(root), name)
}

fn binary(target: &Path, name: &str) -> PathBuf {
    target
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}
