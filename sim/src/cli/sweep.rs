//! `sweep`: many seeds of one scenario, each run by a child process of this same binary
//! (`run --scenario S --seed N`), so that a seed that crashes, hangs the allocator or is
//! OOM-killed by the OS takes down its own process, not the sweep. Failing seeds join the
//! corpus; each is printed with the command that replays it.
//!
//! `--shard K/N` runs one of N disjoint slices of the seeds (`shard.rs`), so machines that
//! know nothing of each other share a sweep; `--results FILE` writes each seed's result as it
//! finishes (`results.rs`), and `merge` combines the shards' files.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::args::SweepArgs;
use super::results::{field, Outcome, Plan, Record, ResultsOut};
use super::shard::{distinct, format_seeds, Shard};
use super::{Ctx, Res};
use crate::corpus;

/// How often the sweep looks at its children.
const POLL: Duration = Duration::from_millis(20);

/// Width of the progress bar, in characters.
const BAR: usize = 40;

/// What a child's exit says about its seed.
#[derive(Debug, PartialEq)]
pub(super) enum SeedResult {
    Passed,
    /// Exit 1: a checker failed; 101: a panic (the runtime or the harness broke). Findings.
    Failed,
    /// Anything else (2: bad arguments; a signal, such as the OS's OOM killer): not a finding,
    /// so it stays out of the corpus.
    Error(String),
}

/// A child's exit code (`None`: killed by a signal) as a seed's result.
pub(super) fn classify(code: Option<i32>) -> SeedResult {
    match code {
        Some(0) => SeedResult::Passed,
        Some(1) | Some(101) => SeedResult::Failed,
        Some(code) => SeedResult::Error(format!("exit code {code}")),
        None => SeedResult::Error("killed by a signal".into()),
    }
}

/// The progress line, redrawn in place: `[####----] 3/8 seeds, 1 failed`.
pub(super) fn progress_line(done: usize, total: usize, failed: usize) -> String {
    let filled = done.min(total) * BAR / total.max(1);
    format!(
        "[{}{}] {done}/{total} seeds, {failed} failed",
        "#".repeat(filled),
        "-".repeat(BAR - filled)
    )
}

/// A child's exit as a results field: its code, or `signal-N`.
fn exit_field(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return code.to_string();
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(status) {
        return format!("signal-{signal}");
    }
    "signal".into()
}

/// The seeds' results so far.
#[derive(Default)]
struct Tally {
    passed: usize,
    /// Each failing seed with the checkers that failed (empty after a panic).
    failed: Vec<(u64, Vec<String>)>,
    errors: Vec<(u64, String)>,
}

impl Tally {
    fn done(&self) -> usize {
        self.passed + self.failed.len() + self.errors.len()
    }

    fn record(&mut self, r: &Record) {
        match r.outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed.push((r.seed, r.failed.clone())),
            Outcome::Error => self.errors.push((r.seed, format!("exit {}", r.exit))),
        }
    }
}

/// A seed's child process.
struct Running {
    seed: u64,
    child: Child,
    started: Instant,
    /// Where the child writes the names of the checkers that failed.
    checkers: PathBuf,
}

pub(super) fn sweep(ctx: &Ctx, a: &SweepArgs) -> Res {
    let all = distinct(&a.seeds.0);
    let shard = a.shard.unwrap_or(Shard::ALL);
    let plan = Plan {
        scenario: a.scenario.clone(),
        seeds: all.clone(),
        shard,
    };
    // An unknown or invalid scenario is one error here, not one per seed (nor one per shard:
    // the first seed of the whole sweep, so every shard checks the same thing).
    ctx.scenario(&a.scenario, all[0])?;
    let tty = std::io::stdout().is_terminal();
    let (mut results, done) = match &a.results {
        Some(path) => {
            let (out, done) = ResultsOut::start(path, &plan, a.resume, tty)
                .map_err(|e| format!("results {}: {e}", path.display()))?;
            (Some(out), done)
        }
        None => (None, Vec::new()),
    };
    let own = plan.own_seeds();
    if shard != Shard::ALL {
        println!(
            "shard {shard} of {} {}: {} of its {} seeds (positions {}, {}, ... of the list)",
            a.scenario,
            format_seeds(&all),
            own.len(),
            all.len(),
            shard.index,
            shard.index + shard.count
        );
    }
    let mut tally = Tally::default();
    for r in &done {
        tally.record(r);
    }
    if let (Some(path), true) = (&a.results, a.resume) {
        println!(
            "resuming {}: {} seeds already have a verdict there",
            path.display(),
            done.len()
        );
    }
    let total = own.len();
    let mut pending = own
        .into_iter()
        .filter(|s| !done.iter().any(|d| d.seed == *s));
    let exe = std::env::current_exe()?;
    let jobs = a.jobs.unwrap_or_else(default_jobs).max(1);
    let scratch = std::env::temp_dir().join(format!("rill-sim-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut running: Vec<Running> = Vec::new();
    let mut shown = usize::MAX;
    loop {
        while running.len() < jobs {
            let Some(seed) = pending.next() else { break };
            // Clear the progress line so the seed log stays readable (and replayable if killed).
            if tty {
                println!("\r\x1b[2Kseed {seed}: starting");
            } else {
                println!("seed {seed}: starting");
            }
            let checkers = scratch.join(format!("seed-{seed}"));
            let _ = std::fs::remove_file(&checkers);
            let child = spawn(&exe, &a.scenario, seed, &checkers)?;
            running.push(Running {
                seed,
                child,
                started: Instant::now(),
                checkers,
            });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(POLL);
        for r in reap(&mut running, &a.scenario) {
            tally.record(&r);
            if let Some(out) = &mut results {
                out.write(&r.to_string())
                    .map_err(|e| format!("cannot write the results: {e}"))?;
            }
            if !tty {
                println!(
                    "seed {}: {} (exit {}) in {:.1}s; {}/{total} seeds, {} failed",
                    r.seed,
                    outcome_word(r.outcome),
                    r.exit,
                    r.wall.as_secs_f64(),
                    tally.done(),
                    tally.failed.len()
                );
            }
        }
        if tty && tally.done() != shown {
            shown = tally.done();
            print!("\r{}", progress_line(shown, total, tally.failed.len()));
            let _ = std::io::stdout().flush();
        }
    }
    if tty {
        println!();
    }
    let _ = std::fs::remove_dir_all(&scratch);
    report(ctx, a, &tally)
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Error => "ERROR",
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn spawn(exe: &Path, scenario: &str, seed: u64, checkers: &Path) -> std::io::Result<Child> {
    Command::new(exe)
        .args(["run", "--scenario", scenario, "--seed", &seed.to_string()])
        .arg("--failed-checkers-to")
        .arg(checkers)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// The children that have exited, as results; drops them from `running`.
fn reap(running: &mut Vec<Running>, scenario: &str) -> Vec<Record> {
    let mut finished = Vec::new();
    running.retain_mut(|r| {
        let (outcome, exit) = match r.child.try_wait() {
            Ok(None) => return true,
            Ok(Some(status)) => {
                let outcome = match classify(status.code()) {
                    SeedResult::Passed => Outcome::Pass,
                    SeedResult::Failed => Outcome::Fail,
                    SeedResult::Error(_) => Outcome::Error,
                };
                (outcome, exit_field(&status))
            }
            Err(e) => (Outcome::Error, field(&e.to_string())),
        };
        let failed = std::fs::read_to_string(&r.checkers)
            .map(|text| text.lines().map(field).collect())
            .unwrap_or_default();
        let _ = std::fs::remove_file(&r.checkers);
        finished.push(Record {
            scenario: scenario.to_string(),
            seed: r.seed,
            outcome,
            exit,
            wall: r.started.elapsed(),
            failed,
        });
        false
    });
    finished
}

/// The summary, each failing seed with its replay (added to the corpus unless told not to),
/// and each seed that could not be run. Exit 2 if any could not, else 1 if any failed.
fn report(ctx: &Ctx, a: &SweepArgs, t: &Tally) -> Res {
    let scenario = &a.scenario;
    println!("{} passed, {} failed", t.passed, t.failed.len());
    for (seed, why) in &t.errors {
        println!(
            "ERROR seed {seed}: not run to a verdict ({why}); replay: {}",
            ctx.replay(scenario, *seed)
        );
    }
    if !t.failed.is_empty() {
        for (seed, checkers) in &t.failed {
            let which = match checkers.is_empty() {
                true => String::new(),
                false => format!(" ({})", checkers.join(", ")),
            };
            println!("FAIL seed {seed}{which}: {}", ctx.replay(scenario, *seed));
        }
        match a.corpus.path(ctx) {
            Some(path) => {
                let seeds: Vec<u64> = t.failed.iter().map(|(s, _)| *s).collect();
                let added = corpus::append(&path, scenario, &seeds)
                    .map_err(|e| format!("cannot update the corpus {}: {e}", path.display()))?;
                println!("{added} new seeds added to {}", path.display());
            }
            None => println!("--no-corpus: the failing seeds are not added to a corpus"),
        }
    }
    Ok(if !t.errors.is_empty() {
        ExitCode::from(2)
    } else {
        super::exit(t.failed.is_empty())
    })
}
