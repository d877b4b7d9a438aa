//! The command line's argument handling, its scenario lookup and replay commands, the
//! sweep's bookkeeping and the merging of sweeps' results (no simulation runs here).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::args::{Cli, Command, Seeds};
use super::shard::Shard;
use super::sweep::{classify, progress_line, SeedResult};
use super::{main_from, Ctx, ScenarioSource};
use crate::corpus;
use crate::runner::Harness;
use crate::scenario_file::generate;

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|c| c.command)
}

/// A directory holding one valid scenario, `t`.
fn scenario_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = "name = \"t\"\ndescription = \"a test\"\nrun_for = \"10s\"\n[cluster]\ntaskmanagers = 1\nslots_per_taskmanager = 2\n[job]\nname = \"keyed-count\"\nparallelism = 2\n";
    std::fs::write(dir.join("t.toml"), text).unwrap();
    dir
}

#[test]
fn sweep_takes_a_range_and_a_job_count() {
    let Command::Sweep(a) =
        parse(&["sweep", "--scenario", "s", "--seeds", "1..5", "--jobs", "3"]).unwrap()
    else {
        panic!("not a sweep")
    };
    assert_eq!(
        (a.scenario.as_str(), a.seeds, a.jobs),
        ("s", Seeds(vec![1, 2, 3, 4]), Some(3))
    );
    let Command::Sweep(a) = parse(&["sweep", "--scenario", "s", "--seeds", "7,9"]).unwrap() else {
        panic!("not a sweep")
    };
    assert_eq!((a.seeds, a.jobs), (Seeds(vec![7, 9]), None));
}

#[test]
fn check_writes_its_results_only_when_asked() {
    let Command::Check(c) = parse(&["check", "--scenarios", "a", "--results", "out.txt"]).unwrap()
    else {
        panic!("not check")
    };
    assert_eq!(c.results, Some(PathBuf::from("out.txt")));
    let Command::Check(c) = parse(&["check"]).unwrap() else {
        panic!("not check")
    };
    assert_eq!(c.results, None);
}

#[test]
fn seeds_that_name_no_seed_are_refused() {
    for bad in ["7..3", "x", "1..", ""] {
        let e = parse(&["sweep", "--scenario", "s", "--seeds", bad]).unwrap_err();
        assert!(
            e.to_string().contains("is not a seed or a range A..B"),
            "{bad}: {e}"
        );
    }
    assert!(
        parse(&["sweep", "--scenario", "s"]).is_err(),
        "--seeds is required"
    );
    assert!(
        parse(&["run", "--scenario", "s"]).is_err(),
        "--seed is required"
    );
}

#[test]
fn check_and_report_default_to_three_seeds_of_every_scenario() {
    let Command::Check(c) = parse(&["check"]).unwrap() else {
        panic!("not check")
    };
    assert_eq!(
        (c.runs.scenarios, c.runs.seeds),
        (None, Seeds(vec![1, 2, 3]))
    );
    let Command::Report { runs, out } = parse(&["report", "--scenarios", "a,b"]).unwrap() else {
        panic!("not report")
    };
    assert_eq!(runs.scenarios.as_deref(), Some("a,b"));
    assert_eq!(out, PathBuf::from("sim-report.html"));
}

#[test]
fn the_corpus_defaults_to_the_scenario_directory() {
    let s = ScenarioSource::new("/x/scenarios");
    assert_eq!(s.dir(), std::path::Path::new("/x/scenarios"));
    assert_eq!(s.corpus(), std::path::Path::new("/x/scenarios/corpus.txt"));
    let s = s.with_corpus("/x/corpus.txt");
    assert_eq!(s.corpus(), std::path::Path::new("/x/corpus.txt"));
}

#[test]
fn replays_name_the_binary_unless_told_otherwise() {
    let source = ScenarioSource::new("/x");
    let program = Some("target-sim/release/my-sim".to_string());
    let ctx = Ctx::new(Harness::builtin(), source.clone(), program.clone());
    assert_eq!(
        ctx.replay("t", 7),
        "target-sim/release/my-sim run --scenario t --seed 7"
    );
    assert_eq!(ctx.name, "my-sim");
    let ctx = Ctx::new(
        Harness::builtin(),
        source.with_replay_prefix("cargo xtask sim"),
        program,
    );
    assert_eq!(
        ctx.replay("t", 7),
        "cargo xtask sim run --scenario t --seed 7"
    );
}

#[test]
fn scenarios_come_from_the_directory_or_the_generator() {
    let dir = scenario_dir("lookup");
    let ctx = Ctx::new(Harness::builtin(), ScenarioSource::new(&dir), None);
    assert_eq!(ctx.scenario("t", 1).unwrap().name, "t");
    let e = ctx.scenario("u", 1).unwrap_err().to_string();
    assert!(
        e.contains("no scenario named 'u'") && e.ends_with("known: t"),
        "{e}"
    );
    let e = ctx.scenario("generated", 1).unwrap_err().to_string();
    assert!(e.contains("no scenario generator; scenarios: t"), "{e}");
    let source = ScenarioSource::new(&dir).with_generator(generate);
    let ctx = Ctx::new(Harness::builtin(), source, None);
    assert_eq!(ctx.scenario("generated", 4).unwrap(), generate(4));
    let _ = std::fs::remove_dir_all(dir);
}

/// A generated scenario is validated against the binary's jobs, like a file.
#[test]
fn a_generated_scenario_of_jobs_the_binary_lacks_is_refused() {
    let only_etl = rill::jobs::JobRegistry::new()
        .with(*rill::jobs::builtin().get("etl").unwrap())
        .unwrap();
    let source = ScenarioSource::new("/x").with_generator(generate);
    let ctx = Ctx::new(Harness::new(only_etl), source, None);
    let refused = (0..20).filter(|&seed| ctx.scenario("generated", seed).is_err());
    assert!(refused.count() > 0, "some seeds draw a job other than etl");
}

#[test]
fn main_lists_and_refuses_what_it_cannot_run() {
    let dir = scenario_dir("main");
    let run = |args: &[&str]| {
        let args = std::iter::once("sim").chain(args.iter().copied());
        main_from(
            Harness::builtin(),
            ScenarioSource::new(&dir),
            args.map(Into::into).collect(),
        )
    };
    assert_eq!(run(&["list"]), ExitCode::SUCCESS);
    assert_eq!(
        run(&["run", "--scenario", "nope", "--seed", "1"]),
        ExitCode::from(2)
    );
    assert_eq!(
        run(&["sweep", "--scenario", "nope", "--seeds", "1..3"]),
        ExitCode::from(2)
    );
    assert_eq!(run(&["frobnicate"]), ExitCode::from(2));
    assert_eq!(run(&["--help"]), ExitCode::SUCCESS);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_childs_exit_says_what_its_seed_found() {
    assert_eq!(classify(Some(0)), SeedResult::Passed);
    assert_eq!(classify(Some(1)), SeedResult::Failed);
    assert_eq!(classify(Some(101)), SeedResult::Failed);
    assert_eq!(classify(Some(2)), SeedResult::Error("exit code 2".into()));
    assert_eq!(
        classify(None),
        SeedResult::Error("killed by a signal".into())
    );
}

#[test]
fn the_progress_bar_fills_with_the_seeds_done() {
    assert_eq!(
        progress_line(0, 4, 0),
        format!("[{}] 0/4 seeds, 0 failed", "-".repeat(40))
    );
    assert_eq!(
        progress_line(1, 4, 1),
        format!("[{}{}] 1/4 seeds, 1 failed", "#".repeat(10), "-".repeat(30))
    );
    assert_eq!(
        progress_line(4, 4, 0),
        format!("[{}] 4/4 seeds, 0 failed", "#".repeat(40))
    );
}

#[test]
fn a_sweep_takes_a_shard_a_results_file_and_a_corpus() {
    let sweep = |extra: &[&str]| {
        let args = ["sweep", "--scenario", "s", "--seeds", "0..100"];
        parse(&[&args[..], extra].concat())
    };
    let Command::Sweep(a) = sweep(&[
        "--shard",
        "3/4",
        "--results",
        "r.txt",
        "--resume",
        "--no-corpus",
    ])
    .unwrap() else {
        panic!("not a sweep")
    };
    assert_eq!(a.shard, Some(Shard { index: 3, count: 4 }));
    assert_eq!(a.results, Some(PathBuf::from("r.txt")));
    assert!(a.resume && a.corpus.no_corpus && a.corpus.corpus.is_none());
    let Command::Sweep(a) = sweep(&["--corpus", "c.txt"]).unwrap() else {
        panic!("not a sweep")
    };
    assert_eq!((a.shard, a.resume), (None, false));
    assert_eq!(a.corpus.corpus, Some(PathBuf::from("c.txt")));
    let e = sweep(&["--shard", "4/4"]).unwrap_err().to_string();
    assert!(
        e.contains("shards are numbered from 0, so K must be below N (0/4 .. 3/4)"),
        "{e}"
    );
    let e = sweep(&["--shard", "1..4"]).unwrap_err().to_string();
    assert!(e.contains("is not a shard K/N"), "{e}");
    assert!(sweep(&["--resume"]).is_err(), "--resume needs --results");
    assert!(sweep(&["--corpus", "c", "--no-corpus"]).is_err());
    assert!(parse(&["merge"]).is_err(), "merge needs a file");
    let Command::Merge(m) = parse(&["merge", "a", "b", "--no-corpus"]).unwrap() else {
        panic!("not merge")
    };
    assert_eq!(m.files, [PathBuf::from("a"), PathBuf::from("b")]);
}

/// Two shards' files merged: totals, the corpus gets the failing seed once, and a shard's file
/// cut short or left out makes the merge incomplete (exit 2).
#[test]
fn merge_combines_shards_and_says_what_is_missing() {
    let dir = std::env::temp_dir().join(format!("rill-cli-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (s0, s1, corpus) = (
        dir.join("s0.txt"),
        dir.join("s1.txt"),
        dir.join("corpus.txt"),
    );
    let _ = std::fs::remove_file(&corpus);
    let result = |seed: u64, outcome: &str, exit: u8| {
        format!("result scenario=t seed={seed} outcome={outcome} exit={exit} wall_s=0.5\n")
    };
    let mut shard0 = String::from("sweep scenario=t seeds=1..5 shard=0/2\n");
    shard0 += &result(1, "pass", 0);
    shard0 += &result(3, "fail", 1);
    let mut shard1 = String::from("sweep scenario=t seeds=1..5 shard=1/2\n");
    shard1 += &result(2, "pass", 0);
    std::fs::write(&s0, &shard0).unwrap();
    std::fs::write(&s1, format!("{shard1}{}", result(4, "pass", 0))).unwrap();
    let merge = |files: &[&PathBuf]| {
        let mut args: Vec<std::ffi::OsString> = vec!["sim".into(), "merge".into()];
        args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
        args.extend(["--corpus".into(), corpus.as_os_str().to_owned()]);
        main_from(Harness::builtin(), ScenarioSource::new(&dir), args)
    };
    assert_eq!(merge(&[&s0, &s1]), ExitCode::from(1), "seed 3 failed");
    assert_eq!(corpus::read(&corpus).unwrap().len(), 1);
    assert_eq!(
        merge(&[&s0, &s1, &s0]),
        ExitCode::from(1),
        "duplicates count once"
    );
    assert_eq!(
        std::fs::read_to_string(&corpus)
            .unwrap()
            .lines()
            .filter(|l| *l == "t 3")
            .count(),
        1,
        "only new lines join the corpus"
    );
    // Shard 1 killed before seed 4, or its file not there: seed 4, or 2 and 4, are missing.
    std::fs::write(&s1, &shard1).unwrap();
    assert_eq!(merge(&[&s0, &s1]), ExitCode::from(2));
    assert_eq!(merge(&[&s0]), ExitCode::from(2));
    // All passed and all there.
    std::fs::write(
        &s0,
        shard0.replace("outcome=fail exit=1", "outcome=pass exit=0"),
    )
    .unwrap();
    std::fs::write(&s1, format!("{shard1}{}", result(4, "pass", 0))).unwrap();
    assert_eq!(merge(&[&s0, &s1]), ExitCode::SUCCESS);
    assert_eq!(merge(&[&s0, &dir.join("absent.txt")]), ExitCode::from(2));
    let _ = std::fs::remove_dir_all(dir);
}
