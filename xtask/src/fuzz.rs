//! `cargo xtask fuzz scenarios --time 60`: coverage-guided scenario search. Builds the fuzz
//! target `fuzz/fuzz_targets/scenarios.rs` with cargo-fuzz (libFuzzer, `--cfg madsim`, its own
//! target directory `fuzz/target`), runs it for the given time, and then, for every crash
//! artifact the run left, has the target write the scenario it stands for, the same scenario
//! with its plan shrunk, and what failed into the findings directory, and prints the replay
//! commands.
//!
//! cargo-fuzz appends the caller's `RUSTFLAGS` to its own (sanitizer coverage), so the cfg goes
//! there (never into `CARGO_ENCODED_RUSTFLAGS`, which would silence cargo-fuzz's flags); it
//! passes `-Z` flags to rustc, which a stable toolchain accepts with `RUSTC_BOOTSTRAP=1`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use clap::{Args, Subcommand};

use crate::steps::{elapsed, Failure, Plan, Step};

#[derive(Subcommand)]
pub enum FuzzCommand {
    /// Scenarios from libFuzzer's inputs, run in the simulator, judged by the checkers
    ///
    /// Each input becomes a short scenario (its expectations derived from its plan) and a
    /// simulator seed; a failing checker or a panic is a finding: a scenario file, the same
    /// with its plan shrunk, and a summary with the replay command, in --out.
    Scenarios(ScenariosArgs),
}

#[derive(Args)]
pub struct ScenariosArgs {
    /// Seconds to fuzz for.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Where findings go (default fuzz/findings).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fuzzing processes at once (libFuzzer's -fork).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// More libFuzzer flags, e.g. `-- -seed=7`.
    #[arg(last = true, value_name = "LIBFUZZER_ARGS")]
    libfuzzer: Vec<String>,
}

/// The target's name (`fuzz/fuzz_targets/<TARGET>.rs`).
const TARGET: &str = "scenarios";
/// Longest input: a scenario takes a couple of hundred bytes; more only repeats.
const MAX_LEN: usize = 256;
/// Longest one input may run (a whole simulated run and, for a finding, its shrink).
const TIMEOUT_SECS: u64 = 300;
/// Inputs the corpus starts with, when it is empty.
const SEED_INPUTS: u64 = 32;

pub fn main(root: &Path, command: &FuzzCommand) -> Result<(), Failure> {
    let FuzzCommand::Scenarios(args) = command;
    let fuzz = root.join("fuzz");
    let out = absolute(args.out.clone().unwrap_or_else(|| fuzz.join("findings")));
    let corpus = fuzz.join("corpus").join(TARGET);
    let artifacts = fuzz.join("artifacts").join(TARGET);
    for dir in [&out, &corpus, &artifacts] {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    seed_corpus(&corpus)?;
    // The workspace's lock file, so the target resolves the versions the workspace uses.
    let lock = fuzz.join("Cargo.lock");
    std::fs::copy(root.join("Cargo.lock"), &lock)
        .map_err(|e| Failure::new(format!("cannot copy Cargo.lock to {}: {e}", lock.display())))?;
    let mut plan = Plan::new(1);
    plan.run(build(root))?;
    plan.finish();
    let binary = fuzz
        .join("target")
        .join(host_triple())
        .join("release")
        .join(TARGET);
    let started = SystemTime::now();
    let wall = Instant::now();
    let stats = run(&binary, root, args, &corpus, &artifacts, &out)?;
    println!(
        "==> fuzzed {} for {}: {}",
        TARGET,
        elapsed(wall.elapsed()),
        stats
            .as_deref()
            .unwrap_or("(libFuzzer printed no status line)")
    );
    let written = findings(&binary, root, &artifacts, &out, started)?;
    report(&out, started, written)
}

/// `cargo fuzz build`: release, no sanitizer (the runtime is safe Rust; the oracle is the
/// checkers, not a sanitizer, and address sanitizing would halve the executions), 4 codegen
/// units as the workspace's release profile (cargo-fuzz's 1 makes the first build take long).
fn build(root: &Path) -> Step {
    let flags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{} --cfg madsim", flags.trim()),
        _ => "--cfg madsim".to_string(),
    };
    Step::cargo(
        "build the fuzz target",
        root,
        [
            "fuzz",
            "build",
            "--sanitizer",
            "none",
            "--codegen-units",
            "4",
            TARGET,
        ],
    )
    .env("RUSTFLAGS", flags)
    .env("RUSTC_BOOTSTRAP", "1")
    // cargo prefers the encoded flags: they would drop the coverage flags cargo-fuzz sets.
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
}

fn host_triple() -> &'static str {
    // cargo-fuzz builds with an explicit --target, the host's.
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "linux")) {
        "aarch64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "macos")) {
        "aarch64-apple-darwin"
    } else {
        "x86_64-apple-darwin"
    }
}

/// Starts an empty corpus with inputs of random bytes (a fixed generator: the same inputs on
/// every machine), long enough to draw whole scenarios: libFuzzer's own first inputs are a few
/// bytes, which draw the smallest scenario there is.
fn seed_corpus(corpus: &Path) -> Result<(), Failure> {
    let empty = std::fs::read_dir(corpus)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", corpus.display())))?
        .next()
        .is_none();
    if !empty {
        return Ok(());
    }
    let mut state = 0x5eed_u64;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in 0..SEED_INPUTS {
        let bytes: Vec<u8> = (0..MAX_LEN / 8)
            .flat_map(|_| next().to_le_bytes())
            .collect();
        let path = corpus.join(format!("seed-{i:02}"));
        std::fs::write(&path, bytes)
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Runs libFuzzer for `args.time` seconds, in fork mode (a crash is recorded and fuzzing goes
/// on), echoing its output; returns its last status line.
fn run(
    binary: &Path,
    root: &Path,
    args: &ScenariosArgs,
    corpus: &Path,
    artifacts: &Path,
    out: &Path,
) -> Result<Option<String>, Failure> {
    let mut command = Command::new(binary);
    command
        .current_dir(root)
        .env("RILL_FUZZ_FINDINGS", out)
        .arg(corpus)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-max_total_time={}", args.time))
        .arg(format!("-max_len={MAX_LEN}"))
        // Mutate at full length from the start: short inputs draw trivial scenarios.
        .arg("-len_control=0")
        .arg(format!("-timeout={TIMEOUT_SECS}"))
        .arg(format!("-fork={}", args.jobs.max(1)))
        .arg("-ignore_crashes=1")
        .arg("-print_final_stats=1")
        .args(&args.libfuzzer)
        .stderr(Stdio::piped());
    println!(
        "==> fuzz: {} {}",
        binary.strip_prefix(root).unwrap_or(binary).display(),
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = command
        .spawn()
        .map_err(|e| Failure::new(format!("cannot run {}: {e}", binary.display())))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut last = None;
    let mut echo = std::io::stderr().lock();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(echo, "{line}");
        if line.starts_with('#') && line.contains("cov: ") {
            last = Some(line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("lost {}: {e}", binary.display())))?;
    // In fork mode libFuzzer ends non-zero when a job crashed (a finding, listed below).
    if !status.success() {
        println!("==> libFuzzer ended: {status} (any crash inputs are below)");
    }
    Ok(last)
}

/// Has the target write every new artifact's finding (it runs the input once, writes, and
/// panics): those the fuzzing processes wrote already are written again, the same. Returns how
/// many artifacts there were.
fn findings(
    binary: &Path,
    root: &Path,
    artifacts: &Path,
    out: &Path,
    since: SystemTime,
) -> Result<usize, Failure> {
    let mut new: Vec<PathBuf> = std::fs::read_dir(artifacts)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", artifacts.display())))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
        .map(|e| e.path())
        .collect();
    new.sort();
    for artifact in &new {
        println!("==> finding: {}", artifact.display());
        // The input alone, once; its exit is the crash.
        let _ = Command::new(binary)
            .current_dir(root)
            .env("RILL_FUZZ_FINDINGS", out)
            .arg(format!("-timeout={TIMEOUT_SECS}"))
            .arg(artifact)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    Ok(new.len())
}

/// Prints each finding written since `since`: what failed and the replay commands.
fn report(out: &Path, since: SystemTime, artifacts: usize) -> Result<(), Failure> {
    let mut summaries: Vec<PathBuf> = std::fs::read_dir(out)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", out.display())))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
        .map(|e| e.path())
        .collect();
    summaries.sort();
    if summaries.is_empty() {
        println!("==> no findings ({artifacts} crash artifact(s))");
        return Ok(());
    }
    println!(
        "==> {} finding(s) from {artifacts} crash artifact(s), in {}:",
        summaries.len(),
        out.display()
    );
    for path in &summaries {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        print!("\n{text}");
    }
    Ok(())
}

/// `path` from the directory xtask was started in.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
