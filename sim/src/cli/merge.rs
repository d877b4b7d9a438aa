//! `merge RESULTS...`: the results files of a sharded sweep (or of several sweeps) as one: what
//! was expected (every `sweep` line's seeds, all shards'), what each seed came to, the seeds no
//! file holds a result for, and seeds with more than one. Failing seeds join the corpus.
//!
//! A seed with several results (a shard run twice, a retried pod, overlapping files) counts
//! once: a verdict beats an error (a retry that got through), and a pass and a fail of the same
//! seed are a disagreement (a seed must replay bit for bit), counted as failed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use super::args::MergeArgs;
use super::results::{parse, read, Line, Outcome, Parsed, Plan, Record};
use super::shard::{format_seeds, Shard};
use super::{Ctx, Res};
use crate::corpus;

/// How many seeds a list shows before it says how many more there are.
const SHOWN: usize = 10;

/// One seed's results, merged.
#[derive(Debug, PartialEq)]
pub(super) enum Merged {
    Pass,
    Fail,
    /// Passed in one result and failed in another.
    Disagree,
    /// Never run to a verdict.
    Error,
}

/// What a seed's results come to together.
pub(super) fn merge_seed(results: &[&Record]) -> Merged {
    let has = |o| results.iter().any(|r| r.outcome == o);
    match (has(Outcome::Pass), has(Outcome::Fail)) {
        (true, true) => Merged::Disagree,
        (false, true) => Merged::Fail,
        (true, false) => Merged::Pass,
        (false, false) => Merged::Error,
    }
}

/// A shard of a plan, and the seeds it owes that no file has a result for.
#[derive(Debug, PartialEq)]
pub(super) struct Gap {
    pub scenario: String,
    pub seeds: Vec<u64>,
    pub shard: Shard,
    /// Whether any file holds this shard's `sweep` line (if not, it never started or its file
    /// is not among those merged).
    pub started: bool,
    /// How many seeds the shard has.
    pub owed: usize,
    pub missing: Vec<u64>,
    /// The file holding this shard's `sweep` line and no other, which `sweep --resume` can
    /// finish.
    pub file: Option<String>,
}

/// Everything the files say, merged.
#[derive(Debug, Default)]
pub(super) struct Merge {
    /// Every result, by scenario and seed, in file order.
    pub results: BTreeMap<(String, u64), Vec<Record>>,
    pub plans: BTreeSet<Plan>,
    /// The files that hold one `sweep` line, by that line.
    pub files: BTreeMap<Plan, String>,
}

impl Merge {
    /// Adds the lines of the file `name`.
    pub fn add(&mut self, name: &str, lines: Vec<Line>) {
        let mut plans = lines.iter().filter_map(|l| match l {
            Line::Plan(p) => Some(p),
            Line::Record(_) => None,
        });
        if let (Some(p), None) = (plans.next(), plans.next()) {
            self.files.insert(p.clone(), name.to_string());
        }
        for line in lines {
            match line {
                Line::Plan(p) => {
                    self.plans.insert(p);
                }
                Line::Record(r) => self
                    .results
                    .entry((r.scenario.clone(), r.seed))
                    .or_default()
                    .push(r),
            }
        }
    }

    /// Each shard of every plan that is owed seeds, in order. A plan's shards are all those of
    /// its count, whether or not a file holds their `sweep` line.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut sweeps: BTreeMap<(&str, &[u64], usize), BTreeSet<usize>> = BTreeMap::new();
        for p in &self.plans {
            sweeps
                .entry((&p.scenario, &p.seeds, p.shard.count))
                .or_default()
                .insert(p.shard.index);
        }
        let mut gaps = Vec::new();
        for ((scenario, seeds, count), started) in sweeps {
            for shard in (Shard { index: 0, count }).siblings() {
                let own = shard.select(seeds);
                let missing: Vec<u64> = own
                    .iter()
                    .copied()
                    .filter(|s| !self.results.contains_key(&(scenario.to_string(), *s)))
                    .collect();
                if !missing.is_empty() {
                    let plan = Plan {
                        scenario: scenario.to_string(),
                        seeds: seeds.to_vec(),
                        shard,
                    };
                    gaps.push(Gap {
                        file: self.files.get(&plan).cloned(),
                        scenario: scenario.to_string(),
                        seeds: seeds.to_vec(),
                        shard,
                        started: started.contains(&shard.index),
                        owed: own.len(),
                        missing,
                    });
                }
            }
        }
        gaps
    }
}

/// `seeds` as a short list: the first few, then how many more.
fn some(seeds: &[u64]) -> String {
    let shown: Vec<String> = seeds.iter().take(SHOWN).map(u64::to_string).collect();
    match seeds.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{}, ... ({more} more)", shown.join(", ")),
    }
}

pub(super) fn merge(ctx: &Ctx, a: &MergeArgs) -> Res {
    let mut m = Merge::default();
    let mut problems = Vec::new();
    for path in &a.files {
        let name = path.display().to_string();
        let text = match read(path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{name}: cannot read it: {e}"));
                continue;
            }
        };
        let Parsed {
            lines,
            notes,
            errors,
        } = parse(&text, &name);
        for note in notes {
            println!("note: {note}");
        }
        if lines.is_empty() && errors.is_empty() {
            problems.push(format!("{name}: no results in it"));
        }
        problems.extend(errors);
        m.add(&name, lines);
    }
    for p in &problems {
        println!("ERROR {p}");
    }

    // What each seed came to, expected or not.
    let mut expected: BTreeSet<(String, u64)> = BTreeSet::new();
    for p in &m.plans {
        expected.extend(p.seeds.iter().map(|s| (p.scenario.clone(), *s)));
    }
    let gaps = m.gaps();
    let missing: BTreeSet<(String, u64)> = gaps
        .iter()
        .flat_map(|g| g.missing.iter().map(|s| (g.scenario.clone(), *s)))
        .collect();
    let mut failed: Vec<(&str, u64, Vec<&Record>)> = Vec::new();
    let mut disagree = Vec::new();
    let mut errors = Vec::new();
    let mut duplicates = Vec::new();
    let mut passed = 0;
    let mut wall = Duration::ZERO;
    let mut slowest: Option<&Record> = None;
    for ((scenario, seed), results) in &m.results {
        let all: Vec<&Record> = results.iter().collect();
        if results.len() > 1 {
            duplicates.push((scenario.as_str(), *seed, results.len()));
        }
        for r in results {
            wall += r.wall;
            if slowest.is_none_or(|s| r.wall > s.wall) {
                slowest = Some(r);
            }
        }
        match merge_seed(&all) {
            Merged::Pass => passed += 1,
            Merged::Fail => failed.push((scenario.as_str(), *seed, all)),
            Merged::Disagree => {
                disagree.push((scenario.as_str(), *seed));
                failed.push((scenario.as_str(), *seed, all));
            }
            Merged::Error => errors.push((scenario.as_str(), *seed, all)),
        }
    }

    let sweeps: BTreeSet<(&str, &[u64], usize)> = m
        .plans
        .iter()
        .map(|p| (p.scenario.as_str(), p.seeds.as_slice(), p.shard.count))
        .collect();
    println!(
        "{} results files: {} results of {} seeds, {} sweep line(s) of {} sweep(s)",
        a.files.len(),
        m.results.values().map(Vec::len).sum::<usize>(),
        m.results.len(),
        m.plans.len(),
        sweeps.len()
    );
    for (scenario, seeds, count) in &sweeps {
        let present: Vec<String> = m
            .plans
            .iter()
            .filter(|p| {
                (p.scenario.as_str(), p.seeds.as_slice(), p.shard.count)
                    == (scenario, seeds, *count)
            })
            .map(|p| p.shard.to_string())
            .collect();
        println!(
            "  {scenario} {} in {count} shard(s); results of shards {}",
            format_seeds(seeds),
            present.join(", ")
        );
    }
    let unplanned = m.results.keys().filter(|k| !expected.contains(*k)).count();
    if unplanned > 0 && !m.plans.is_empty() {
        println!("  {unplanned} seeds have results but are in no sweep line's seeds");
    }
    if let Some(s) = slowest {
        println!(
            "  wall time {:.1}s over all runs; slowest {} seed {} ({:.1}s)",
            wall.as_secs_f64(),
            s.scenario,
            s.seed,
            s.wall.as_secs_f64()
        );
    }

    if !duplicates.is_empty() {
        println!(
            "{} seeds have more than one result (a shard run twice, a retried pod, files that \
             overlap); each counts once",
            duplicates.len()
        );
        for (scenario, seed, n) in duplicates.iter().take(SHOWN) {
            println!("  DUPLICATE {scenario} seed {seed}: {n} results");
        }
        if duplicates.len() > SHOWN {
            println!("  ... and {} more", duplicates.len() - SHOWN);
        }
    }
    for (scenario, seed) in &disagree {
        println!(
            "DISAGREE {scenario} seed {seed}: passed in one result and failed in another; \
             a seed must replay bit for bit: {} --check-determinism",
            ctx.replay(scenario, *seed)
        );
    }
    for (scenario, seed, results) in &errors {
        let exits: Vec<&str> = results.iter().map(|r| r.exit.as_str()).collect();
        println!(
            "ERROR {scenario} seed {seed}: not run to a verdict (exit {}); replay: {}",
            exits.join(", "),
            ctx.replay(scenario, *seed)
        );
    }
    for g in &gaps {
        let what = if g.started {
            format!(
                "{} of its {} seeds have no result (first: {})",
                g.missing.len(),
                g.owed,
                some(&g.missing)
            )
        } else {
            format!(
                "no file has its sweep line, and {} of its {} seeds have no result",
                g.missing.len(),
                g.owed
            )
        };
        let shard = match g.shard.count {
            1 => String::new(),
            _ => format!(" --shard {}", g.shard),
        };
        let results = match &g.file {
            Some(file) => format!("{file} --resume"),
            None => format!("shard-{}.txt", g.shard.index),
        };
        println!(
            "MISSING {} shard {}: {what}; run it: {}",
            g.scenario,
            g.shard,
            ctx.command(&format!(
                "sweep --scenario {} --seeds {}{shard} --results {results}",
                g.scenario,
                format_seeds(&g.seeds),
            ))
        );
    }
    for (scenario, seed, results) in &failed {
        let mut checkers: Vec<&str> = Vec::new();
        for c in results.iter().flat_map(|r| &r.failed) {
            if !checkers.contains(&c.as_str()) {
                checkers.push(c);
            }
        }
        if checkers.is_empty() && results.iter().any(|r| r.exit == "101") {
            checkers.push("panic");
        }
        let which = match checkers.is_empty() {
            true => String::new(),
            false => format!(" ({})", checkers.join(", ")),
        };
        println!(
            "FAIL {scenario} seed {seed}{which}: {}",
            ctx.replay(scenario, *seed)
        );
    }
    println!(
        "{} seeds: {passed} passed, {} failed, {} not run to a verdict, {} missing",
        m.results.len() + missing.len(),
        failed.len(),
        errors.len(),
        missing.len()
    );

    if !failed.is_empty() {
        match a.corpus.path(ctx) {
            Some(path) => {
                let mut by_scenario: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
                for (scenario, seed, _) in &failed {
                    by_scenario.entry(scenario).or_default().push(*seed);
                }
                let mut added = 0;
                for (scenario, seeds) in by_scenario {
                    added += corpus::append(&path, scenario, &seeds)
                        .map_err(|e| format!("cannot update the corpus {}: {e}", path.display()))?;
                }
                println!("{added} new seeds added to {}", path.display());
            }
            None => println!("--no-corpus: the failing seeds are not added to a corpus"),
        }
    }
    let incomplete = !missing.is_empty() || !errors.is_empty() || !problems.is_empty();
    Ok(if incomplete || m.results.is_empty() {
        ExitCode::from(2)
    } else {
        super::exit(failed.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seed: u64, outcome: Outcome) -> Record {
        Record {
            scenario: "s".into(),
            seed,
            outcome,
            exit: "0".into(),
            wall: Duration::ZERO,
            failed: vec![],
        }
    }

    #[test]
    fn a_seeds_results_come_to_one_verdict() {
        let (p, f, e) = (
            record(1, Outcome::Pass),
            record(1, Outcome::Fail),
            record(1, Outcome::Error),
        );
        assert_eq!(merge_seed(&[&p]), Merged::Pass);
        assert_eq!(
            merge_seed(&[&e, &p]),
            Merged::Pass,
            "a retry that got through"
        );
        assert_eq!(merge_seed(&[&f, &e]), Merged::Fail);
        assert_eq!(merge_seed(&[&p, &f]), Merged::Disagree);
        assert_eq!(merge_seed(&[&e, &e]), Merged::Error);
    }

    #[test]
    fn the_seeds_of_a_shard_that_left_nothing_are_missing() {
        let plan = |index| Plan {
            scenario: "s".into(),
            seeds: (1..9).collect(),
            shard: Shard { index, count: 3 },
        };
        let mut m = Merge::default();
        // Shard 0 finished (1, 4, 7); shard 1 was killed after seed 2; shard 2 left nothing.
        m.add("s0.txt", vec![Line::Plan(plan(0))]);
        let passed = |seeds: &[u64]| {
            let pass = |s: &u64| Line::Record(record(*s, Outcome::Pass));
            seeds.iter().map(pass).collect::<Vec<_>>()
        };
        m.add("s0-more.txt", passed(&[1, 4, 7]));
        let shard1 = vec![Line::Plan(plan(1)), Line::Record(record(2, Outcome::Fail))];
        m.add("s1.txt", shard1);
        let gaps = m.gaps();
        // Shard, started, seeds owed, missing, the file to resume.
        type Shown<'a> = (usize, bool, usize, &'a [u64], Option<&'a str>);
        let shown: Vec<Shown> = gaps
            .iter()
            .map(|g| {
                let file = g.file.as_deref();
                (g.shard.index, g.started, g.owed, g.missing.as_slice(), file)
            })
            .collect();
        let expected: [Shown; 2] = [
            (1, true, 3, &[5, 8], Some("s1.txt")),
            (2, false, 2, &[3, 6], None),
        ];
        assert_eq!(shown, expected);
        // Results for shard 2's seeds, from anywhere, fill its gap.
        m.add("more.txt", passed(&[3, 6]));
        assert_eq!(m.gaps().len(), 1);
    }
}
