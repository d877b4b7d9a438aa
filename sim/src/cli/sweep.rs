//! `sweep`: many seeds of one scenario, each run by a child process of this same binary
//! (`run --scenario S --seed N`), so that a seed that crashes, hangs the allocator or is
//! OOM-killed by the OS takes down its own process, not the sweep. Failing seeds join the
//! corpus; each is printed with the command that replays it.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use super::args::SweepArgs;
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

/// The seeds' results so far.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<u64>,
    errors: Vec<(u64, String)>,
}

impl Tally {
    fn done(&self) -> usize {
        self.passed + self.failed.len() + self.errors.len()
    }

    fn record(&mut self, seed: u64, result: SeedResult) {
        match result {
            SeedResult::Passed => self.passed += 1,
            SeedResult::Failed => self.failed.push(seed),
            SeedResult::Error(why) => self.errors.push((seed, why)),
        }
    }
}

pub(super) fn sweep(ctx: &Ctx, a: &SweepArgs) -> Res {
    let seeds = &a.seeds.0;
    // An unknown or invalid scenario is one error here, not one per seed.
    ctx.scenario(&a.scenario, seeds[0])?;
    let exe = std::env::current_exe()?;
    let jobs = a.jobs.unwrap_or_else(default_jobs).max(1);
    let mut pending = seeds.iter().copied();
    let mut running: Vec<(u64, Child)> = Vec::new();
    let mut tally = Tally::default();
    let mut shown = usize::MAX;
    loop {
        while running.len() < jobs {
            let Some(seed) = pending.next() else { break };
            // Clear the progress line so the seed log stays readable (and replayable if killed).
            println!("\r\x1b[2Kseed {seed}: starting");
            running.push((seed, spawn(&exe, &a.scenario, seed)?));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(POLL);
        reap(&mut running, &mut tally);
        if tally.done() != shown {
            shown = tally.done();
            print!(
                "\r{}",
                progress_line(shown, seeds.len(), tally.failed.len())
            );
            let _ = std::io::stdout().flush();
        }
    }
    println!();
    report(ctx, &a.scenario, &tally)
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn spawn(exe: &Path, scenario: &str, seed: u64) -> std::io::Result<Child> {
    Command::new(exe)
        .args(["run", "--scenario", scenario, "--seed", &seed.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Records the children that have exited and drops them from `running`.
fn reap(running: &mut Vec<(u64, Child)>, tally: &mut Tally) {
    running.retain_mut(|(seed, child)| match child.try_wait() {
        Ok(None) => true,
        Ok(Some(status)) => {
            tally.record(*seed, classify(status.code()));
            false
        }
        Err(e) => {
            tally.record(*seed, SeedResult::Error(e.to_string()));
            false
        }
    });
}

/// The summary, each failing seed with its replay (added to the corpus), and each seed that
/// could not be run. Exit 2 if any could not, else 1 if any failed.
fn report(ctx: &Ctx, scenario: &str, t: &Tally) -> Res {
    println!("{} passed, {} failed", t.passed, t.failed.len());
    for (seed, why) in &t.errors {
        println!(
            "ERROR seed {seed}: not run to a verdict ({why}); replay: {}",
            ctx.replay(scenario, *seed)
        );
    }
    if !t.failed.is_empty() {
        let path = ctx.source.corpus();
        let added = corpus::append(path, scenario, &t.failed)
            .map_err(|e| format!("cannot update the corpus {}: {e}", path.display()))?;
        for seed in &t.failed {
            println!("FAIL seed {seed}: {}", ctx.replay(scenario, *seed));
        }
        println!("{added} new seeds added to {}", path.display());
    }
    Ok(if !t.errors.is_empty() {
        ExitCode::from(2)
    } else {
        super::exit(t.failed.is_empty())
    })
}
