//! `cargo xtask fuzz <target> --time 60`: coverage-guided fuzzing with cargo-fuzz (libFuzzer).
//! Builds the fuzz target `fuzz/fuzz_targets/<target>.rs`, runs it for the given time, and
//! then reports every crash artifact the run left in the findings directory.
//!
//! - `scenarios`: scenario search. Built with `--cfg madsim` into `fuzz/target`; for every
//!   crash artifact the target itself writes the scenario it stands for, the same scenario
//!   with its plan shrunk, and what failed, and the replay commands are printed.
//! - `wire_control`, `wire_data`, `wire_services`, `jobmanager_actor`: the wire decoders and a
//!   live JobManager, in the real build (no `--cfg madsim`, stripped from `RUSTFLAGS` if set)
//!   into `fuzz/target-wire`, so neither build invalidates the other. For every crash
//!   artifact the input is run once more and what panicked is written to the findings.
//! - `all`: every target in turn, `--time` each; exits non-zero if any left a crash artifact
//!   (the bounded run for CI).
//!
//! cargo-fuzz appends the caller's `RUSTFLAGS` to its own (sanitizer coverage), so the cfg goes
//! there (never into `CARGO_ENCODED_RUSTFLAGS`, which would silence cargo-fuzz's flags); it
//! passes `-Z` flags to rustc, which a stable toolchain accepts with `RUSTC_BOOTSTRAP=1`.

use std::ffi::OsStr;
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
    Scenarios(RunArgs),
    /// The control plane's messages (TmToJm, JmToTm, ClientToJm, JmToClient, Hello,
    /// HelloReply) from arbitrary bytes, frame streams, and the handshake's accepting side
    #[command(name = "wire_control", alias = "wire-control")]
    WireControl(RunArgs),
    /// The data plane: DataMsg frames, data buffers decoded as records, and sequences of
    /// buffers and events through an input gate
    #[command(name = "wire_data", alias = "wire-data")]
    WireData(RunArgs),
    /// The sink store's, log server's and checkpoint store's requests and replies, checkpoint
    /// snapshots, keyed-state restore
    #[command(name = "wire_services", alias = "wire-services")]
    WireServices(RunArgs),
    /// Structure-aware sequences of TaskManager and client messages to a live JobManager
    #[command(name = "jobmanager_actor", alias = "jobmanager-actor")]
    JobmanagerActor(RunArgs),
    /// Every target in turn, --time seconds each; fails if any left a crash artifact (for CI)
    All(RunArgs),
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Seconds to fuzz for (each target, with `all`).
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

/// How one target is built and run.
struct Target {
    /// `fuzz/fuzz_targets/<name>.rs`.
    name: &'static str,
    /// Built with `--cfg madsim` (the simulator) into fuzz/target; else the real build into
    /// fuzz/target-wire.
    madsim: bool,
    /// Longest input.
    max_len: usize,
    /// Longest one input may run, in seconds.
    timeout_secs: u64,
    /// Inputs of random bytes the corpus starts with, when it is empty (0: libFuzzer's own).
    seed_inputs: u64,
    /// Mutate at full length from the start (libFuzzer's `-len_control=0`).
    full_length: bool,
    /// The target writes its own findings for an artifact (`RILL_FUZZ_FINDINGS`).
    writes_findings: bool,
    /// The target writes valid messages into an empty corpus (`RILL_FUZZ_SEEDS`).
    writes_seeds: bool,
}

/// Every target, in the order `all` runs them.
const TARGETS: &[Target] = &[
    Target {
        name: "wire_control",
        madsim: false,
        max_len: 4096,
        timeout_secs: 10,
        seed_inputs: 0,
        full_length: false,
        writes_findings: false,
        writes_seeds: true,
    },
    Target {
        name: "wire_data",
        madsim: false,
        max_len: 4096,
        timeout_secs: 10,
        seed_inputs: 0,
        full_length: false,
        writes_findings: false,
        writes_seeds: true,
    },
    Target {
        name: "wire_services",
        madsim: false,
        max_len: 4096,
        timeout_secs: 10,
        seed_inputs: 0,
        full_length: false,
        writes_findings: false,
        writes_seeds: true,
    },
    // One input is a JobManager run of up to 64 operations and a minute or two of paused
    // clock: milliseconds of real time, but the actor's timers run out on the way.
    Target {
        name: "jobmanager_actor",
        madsim: false,
        max_len: 4096,
        timeout_secs: 60,
        seed_inputs: 0,
        full_length: false,
        writes_findings: false,
        writes_seeds: true,
    },
    // A scenario takes a couple of hundred bytes (more only repeats); one input is a whole
    // simulated run and, for a finding, its shrink; libFuzzer's own first inputs are a few
    // bytes, which draw the smallest scenario there is.
    Target {
        name: "scenarios",
        madsim: true,
        max_len: 256,
        timeout_secs: 300,
        seed_inputs: 32,
        full_length: true,
        writes_findings: true,
        writes_seeds: false,
    },
];

fn target(name: &str) -> &'static Target {
    TARGETS
        .iter()
        .find(|t| t.name == name)
        .expect("every command names a target of TARGETS")
}

pub fn main(root: &Path, command: &FuzzCommand) -> Result<(), Failure> {
    let (name, args) = match command {
        FuzzCommand::Scenarios(args) => ("scenarios", args),
        FuzzCommand::WireControl(args) => ("wire_control", args),
        FuzzCommand::WireData(args) => ("wire_data", args),
        FuzzCommand::WireServices(args) => ("wire_services", args),
        FuzzCommand::JobmanagerActor(args) => ("jobmanager_actor", args),
        FuzzCommand::All(args) => return all(root, args),
    };
    match fuzz(root, target(name), args)? {
        // A crash fails the command (CI's short run relies on it); the findings are above.
        Outcome { artifacts, .. } if artifacts > 0 => Err(Failure::new(format!(
            "{name}: {artifacts} crash artifact(s) (findings above)"
        ))),
        _ => Ok(()),
    }
}

/// Every target for `args.time` each; a summary line per target, and a failure if any left a
/// crash artifact.
fn all(root: &Path, args: &RunArgs) -> Result<(), Failure> {
    let mut lines = Vec::new();
    let mut crashed = Vec::new();
    for target in TARGETS {
        let outcome = fuzz(root, target, args)?;
        lines.push(format!(
            "{}: {} ({} crash artifact(s))",
            target.name,
            outcome
                .stats
                .as_deref()
                .unwrap_or("(libFuzzer printed no status line)"),
            outcome.artifacts
        ));
        if outcome.artifacts > 0 {
            crashed.push(target.name);
        }
    }
    println!("\n==> fuzzed every target for {} s each:", args.time);
    for line in &lines {
        println!("    {line}");
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "crash artifacts from {} (findings above)",
            crashed.join(", ")
        )))
    }
}

/// What one fuzzing run left: libFuzzer's last status line, and how many crash artifacts.
struct Outcome {
    stats: Option<String>,
    artifacts: usize,
}

/// Gives the fuzz crate the workspace's lock file, so its targets resolve the versions the
/// workspace uses (and reuse what the workspace's build compiled).
pub fn prepare(root: &Path) -> Result<(), Failure> {
    let lock = root.join("fuzz").join("Cargo.lock");
    std::fs::copy(root.join("Cargo.lock"), &lock)
        .map(drop)
        .map_err(|e| Failure::new(format!("cannot copy Cargo.lock to {}: {e}", lock.display())))
}

/// `cargo check` of the fuzz targets of one build (`madsim` or the real one), for
/// `cargo xtask test`: the fuzz crate is outside the workspace, so nothing else notices when a
/// change to the runtime's types breaks a target (CI's bounded fuzz run would, after the
/// whole test run). The caller sets the build's flags and target directory; run
/// [`prepare`] first.
pub fn check_step(root: &Path, madsim: bool) -> Step {
    let manifest = root.join("fuzz").join("Cargo.toml");
    let bins = TARGETS
        .iter()
        .filter(|t| t.madsim == madsim)
        .flat_map(|t| ["--bin", t.name]);
    let label = if madsim {
        "fuzz targets type-check, simulated"
    } else {
        "fuzz targets type-check"
    };
    Step::cargo(label, root, ["check", "--quiet", "--manifest-path"])
        .args([manifest])
        .args(bins)
}

fn fuzz(root: &Path, target: &Target, args: &RunArgs) -> Result<Outcome, Failure> {
    let fuzz = root.join("fuzz");
    let out = absolute(args.out.clone().unwrap_or_else(|| fuzz.join("findings")));
    let corpus = fuzz.join("corpus").join(target.name);
    let artifacts = fuzz.join("artifacts").join(target.name);
    for dir in [&out, &corpus, &artifacts] {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let seeds = target.writes_seeds && is_empty(&corpus)?;
    seed_corpus(&corpus, target)?;
    prepare(root)?;
    let target_dir = fuzz.join(if target.madsim {
        "target"
    } else {
        "target-wire"
    });
    let mut plan = Plan::new(1);
    plan.run(build(root, target, &target_dir))?;
    plan.finish();
    let binary = target_dir
        .join(host_triple())
        .join("release")
        .join(target.name);
    let started = SystemTime::now();
    let wall = Instant::now();
    let dirs = Dirs {
        corpus: &corpus,
        artifacts: &artifacts,
        out: &out,
    };
    let stats = run(&binary, root, target, args, &dirs, seeds)?;
    println!(
        "==> fuzzed {} for {}: {}",
        target.name,
        elapsed(wall.elapsed()),
        stats
            .as_deref()
            .unwrap_or("(libFuzzer printed no status line)")
    );
    let written = findings(&binary, root, target, &artifacts, &out, started)?;
    report(&out, started, written)?;
    Ok(Outcome {
        stats,
        artifacts: written,
    })
}

/// `cargo fuzz build`: release, no sanitizer (the runtime is safe Rust; the oracles are the
/// checkers and the targets' assertions, not a sanitizer, and address sanitizing would halve
/// the executions), 4 codegen units as the workspace's release profile (cargo-fuzz's 1 makes
/// the first build take long), debug assertions and overflow checks on (cargo-fuzz's default).
fn build(root: &Path, target: &Target, target_dir: &Path) -> Step {
    let caller = std::env::var("RUSTFLAGS").unwrap_or_default();
    let flags = if target.madsim {
        match caller.trim() {
            "" => "--cfg madsim".to_string(),
            flags => format!("{flags} --cfg madsim"),
        }
    } else {
        without_madsim(&caller)
    };
    let step = Step::cargo(
        "build the fuzz target",
        root,
        [
            "fuzz",
            "build",
            "--sanitizer",
            "none",
            "--codegen-units",
            "4",
        ],
    )
    .args([OsStr::new("--target-dir"), target_dir.as_os_str()])
    .args([target.name])
    .env("RUSTC_BOOTSTRAP", "1")
    // cargo prefers the encoded flags: they would drop the coverage flags cargo-fuzz sets.
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    // The directory is `--target-dir`'s, whatever the caller's environment says.
    .env_remove("CARGO_TARGET_DIR");
    if flags.is_empty() {
        step.env_remove("RUSTFLAGS")
    } else {
        step.env("RUSTFLAGS", flags)
    }
}

/// The caller's `RUSTFLAGS` without `--cfg madsim` (`--cfg=madsim`): the wire targets run the
/// real build even from a shell set up for the simulator.
fn without_madsim(flags: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut words = flags.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if word == "--cfg=madsim" {
            continue;
        }
        if word == "--cfg" && words.peek() == Some(&"madsim") {
            words.next();
            continue;
        }
        kept.push(word);
    }
    kept.join(" ")
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

/// Starts an empty corpus with `target.seed_inputs` inputs of random bytes of its longest
/// length (a fixed generator: the same inputs on every machine).
fn seed_corpus(corpus: &Path, target: &Target) -> Result<(), Failure> {
    if target.seed_inputs == 0 || !is_empty(corpus)? {
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
    for i in 0..target.seed_inputs {
        let bytes: Vec<u8> = (0..target.max_len / 8)
            .flat_map(|_| next().to_le_bytes())
            .collect();
        let path = corpus.join(format!("seed-{i:02}"));
        std::fs::write(&path, bytes)
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn is_empty(dir: &Path) -> Result<bool, Failure> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", dir.display())))?
        .next()
        .is_none())
}

/// A target's corpus, its crash artifacts, and where findings go.
struct Dirs<'a> {
    corpus: &'a Path,
    artifacts: &'a Path,
    out: &'a Path,
}

/// Runs libFuzzer for `args.time` seconds, in fork mode (a crash is recorded and fuzzing goes
/// on), echoing its output; returns its last status line.
fn run(
    binary: &Path,
    root: &Path,
    target: &Target,
    args: &RunArgs,
    dirs: &Dirs,
    seeds: bool,
) -> Result<Option<String>, Failure> {
    let mut command = Command::new(binary);
    command
        .current_dir(root)
        .env("RILL_FUZZ_FINDINGS", dirs.out)
        .arg(dirs.corpus)
        .arg(format!("-artifact_prefix={}/", dirs.artifacts.display()))
        .arg(format!("-max_total_time={}", args.time))
        .arg(format!("-max_len={}", target.max_len))
        .arg(format!("-timeout={}", target.timeout_secs))
        .arg(format!("-fork={}", args.jobs.max(1)))
        .arg("-ignore_crashes=1")
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    if seeds {
        // The target writes its seeds into the corpus when it starts, before libFuzzer reads it.
        command.env("RILL_FUZZ_SEEDS", dirs.corpus);
    }
    if target.full_length {
        // Mutate at full length from the start: short inputs draw trivial scenarios.
        command.arg("-len_control=0");
    }
    command.args(&args.libfuzzer);
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

/// Writes a finding for every artifact the run left: `scenarios` writes its own (it runs the
/// input once, writes, and panics; those the fuzzing processes wrote already are written
/// again, the same); for the other targets the input is run once more and what it died of
/// (the panic message, a timeout, running out of memory) goes into `<target>-<artifact>.txt`
/// with the replay command. Returns how many artifacts there were.
fn findings(
    binary: &Path,
    root: &Path,
    target: &Target,
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
        let mut command = Command::new(binary);
        command
            .current_dir(root)
            .arg(format!("-timeout={}", target.timeout_secs))
            .arg(artifact)
            .stdout(Stdio::null());
        if target.writes_findings {
            // The input alone, once; its exit is the crash.
            let _ = command
                .env("RILL_FUZZ_FINDINGS", out)
                .stderr(Stdio::null())
                .status();
            continue;
        }
        let output = command
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Failure::new(format!("cannot run {}: {e}", binary.display())))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let name = artifact
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let summary = format!(
            "{target}: {kind} ({artifact})\n{what}\nreplay: {binary} {artifact}\n   or: cargo fuzz run --sanitizer none {target} {artifact}\n",
            target = target.name,
            kind = name.split('-').next().unwrap_or("crash"),
            artifact = artifact.display(),
            what = death(&stderr),
            binary = binary.strip_prefix(root).unwrap_or(binary).display(),
        );
        let path = out.join(format!("{}-{name}.txt", target.name));
        std::fs::write(&path, summary)
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(new.len())
}

/// What a target's run of one input died of, from its stderr: the panic (message and place),
/// else libFuzzer's own verdict (timeout, out of memory, a signal), else its last lines.
fn death(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(at) = lines.iter().position(|l| l.contains("panicked at")) {
        // `thread '..' panicked at FILE:LINE:COL:` then the message, up to the backtrace note.
        let message: Vec<&str> = lines[at..]
            .iter()
            .take_while(|l| !l.starts_with("note:") && !l.starts_with("=="))
            .take(12)
            .copied()
            .collect();
        return message.join("\n");
    }
    if let Some(verdict) = lines.iter().find(|l| l.contains("ERROR: libFuzzer:")) {
        return verdict.trim().to_string();
    }
    let tail = lines.len().saturating_sub(8);
    lines[tail..].join("\n")
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
