//! A sweep's results file (`sweep --results FILE`): plain text, one line per fact, written as
//! the sweep goes so that a shard killed halfway leaves what it finished; `merge` reads them.
//!
//! ```text
//! # rill-sim sweep results: ...
//! sweep scenario=steady-4x2 seeds=1..9 shard=0/2
//! result scenario=steady-4x2 seed=1 outcome=pass exit=0 wall_s=1.204
//! result scenario=steady-4x2 seed=3 outcome=fail exit=1 wall_s=2.310 failed=delivery,liveness
//! result scenario=steady-4x2 seed=5 outcome=error exit=signal-9 wall_s=0.507
//! ```
//!
//! The `sweep` line is the plan: the scenario, every seed of the sweep (all shards', as
//! ranges) and which shard this is, so `merge` knows which seeds to expect even from a shard
//! that left no file. Each `result` line is one seed: `outcome` is `pass`, `fail` (a finding:
//! a checker failed, exit 1, or a panic, exit 101) or `error` (not run to a verdict); `exit` the
//! child's exit code or `signal-N`; `wall_s` its wall time in seconds; `failed` the checkers
//! that failed, when the child said. Fields are `key=value` without spaces; readers skip keys
//! they do not know. Lines starting with `#` are comments, and other lines (a sweep's own
//! output, when `--results -` mixes the two on stdout for `kubectl logs`) are not results.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use super::shard::{distinct, format_seeds, Shard};
use crate::testing::parse_seeds;

/// The first line of a results file.
pub(super) const HEADER: &str = "# rill-sim sweep results: the `sweep` line is what was asked \
for (scenario, every seed of the sweep, this shard K/N); then one `result` line per seed as it \
finished (outcome pass/fail/error, the child's exit, wall time, failed checkers). \
`rill-sim merge FILES...` combines the shards' files.";

/// What a seed's run came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Outcome {
    Pass,
    /// A finding: a checker failed (exit 1) or the harness or runtime panicked (101).
    Fail,
    /// Not run to a verdict (bad arguments, killed by a signal): not a finding.
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
        }
    }
}

/// What a sweep (or one shard of it) was asked to run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Plan {
    pub scenario: String,
    /// Every seed of the sweep, without repeats: all shards' together.
    pub seeds: Vec<u64>,
    pub shard: Shard,
}

impl Plan {
    /// This shard's seeds.
    pub fn own_seeds(&self) -> Vec<u64> {
        self.shard.select(&self.seeds)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sweep scenario={} seeds={} shard={}",
            self.scenario,
            format_seeds(&self.seeds),
            self.shard
        )
    }
}

/// One seed's result.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Record {
    pub scenario: String,
    pub seed: u64,
    pub outcome: Outcome,
    /// The child's exit code, `signal-N`, or why it could not be waited for.
    pub exit: String,
    pub wall: Duration,
    /// The checkers that failed, when the child could say (not after a panic).
    pub failed: Vec<String>,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "result scenario={} seed={} outcome={} exit={} wall_s={:.3}",
            self.scenario,
            self.seed,
            self.outcome.as_str(),
            self.exit,
            self.wall.as_secs_f64()
        )?;
        if !self.failed.is_empty() {
            write!(f, " failed={}", self.failed.join(","))?;
        }
        Ok(())
    }
}

/// A line of a results file that says something.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Line {
    Plan(Plan),
    Record(Record),
}

/// A value as a field: no whitespace (it would end the field), never empty.
pub(super) fn field(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .collect();
    if text.is_empty() {
        "-".into()
    } else {
        text
    }
}

/// Reads one line: `Ok(None)` for a comment, a blank line or text that is not a result (a
/// sweep's own output in a log); an error for a `sweep` or `result` line that does not parse.
/// A leading carriage return or line erase (a terminal's progress bar) is skipped.
pub(super) fn parse_line(line: &str) -> Result<Option<Line>, String> {
    let line = line.rsplit('\r').next().unwrap_or(line);
    let line = line.trim_start_matches("\x1b[2K").trim();
    let mut words = line.split_whitespace();
    let kind = match words.next() {
        Some(kind @ ("sweep" | "result")) => kind,
        _ => return Ok(None),
    };
    let mut fields = std::collections::BTreeMap::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("'{word}' is not key=value"))?;
        fields.insert(key, value);
    }
    let get = |key: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("no {key}= in a `{kind}` line"))
    };
    let scenario = get("scenario")?.to_string();
    if kind == "sweep" {
        let seeds = get("seeds")?;
        let seeds = parse_seeds(seeds).map_err(|bad| format!("seeds: '{bad}' is not a seed"))?;
        let shard = get("shard")?.parse()?;
        return Ok(Some(Line::Plan(Plan {
            scenario,
            seeds: distinct(&seeds),
            shard,
        })));
    }
    let seed = get("seed")?;
    let seed = seed
        .parse()
        .map_err(|_| format!("seed: '{seed}' is not a seed"))?;
    let outcome = match get("outcome")? {
        "pass" => Outcome::Pass,
        "fail" => Outcome::Fail,
        "error" => Outcome::Error,
        other => return Err(format!("outcome: '{other}' is not pass, fail or error")),
    };
    let wall = match fields.get("wall_s") {
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("wall_s: '{s}' is not a number of seconds"))?,
        None => Duration::ZERO,
    };
    let failed = fields
        .get("failed")
        .map(|f| {
            f.split(',')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Line::Record(Record {
        scenario,
        seed,
        outcome,
        exit: fields.get("exit").map_or("-", |e| e).to_string(),
        wall,
        failed,
    })))
}

/// What a results file (or a log holding results) says.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Parsed {
    pub lines: Vec<Line>,
    /// A last line cut off mid-write (the writer was killed): its seed counts as not run.
    pub notes: Vec<String>,
    /// `sweep` or `result` lines that do not parse, each named `FILE:LINE`.
    pub errors: Vec<String>,
}

/// Every line of `text` (named `name` in messages) that says something.
pub(super) fn parse(text: &str, name: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let count = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(l)) => parsed.lines.push(l),
            Ok(None) => {}
            Err(e) if i + 1 == count && !text.ends_with('\n') => parsed.notes.push(format!(
                "{name}:{}: a cut-off last line ({e}), ignored",
                i + 1
            )),
            Err(e) => parsed
                .errors
                .push(format!("{name}:{}: {e}: '{}'", i + 1, line.trim())),
        }
    }
    parsed
}

/// Where a sweep writes its results: a file, or stdout (`-`), one whole line per write,
/// flushed, so nothing finished is lost if the sweep is killed.
pub(super) struct ResultsOut {
    out: Box<dyn Write>,
    /// Stdout at a terminal: the progress bar's line is cleared first.
    clear: bool,
}

impl ResultsOut {
    /// Starts `path` (`-` for stdout) with the header and `plan`. With `resume`, an existing
    /// file of the same plan is kept and the seeds it holds a verdict for are returned (a
    /// cut-off last line is dropped); a file of another plan is an error.
    pub fn start(
        path: &Path,
        plan: &Plan,
        resume: bool,
        tty: bool,
    ) -> io::Result<(ResultsOut, Vec<Record>)> {
        if path == Path::new("-") {
            if resume {
                return Err(io::Error::other(
                    "--resume needs --results FILE, not stdout",
                ));
            }
            let mut out = ResultsOut {
                out: Box::new(io::stdout()),
                clear: tty,
            };
            out.write(HEADER)?;
            out.write(&plan.to_string())?;
            return Ok((out, Vec::new()));
        }
        if resume {
            if let Some((file, done)) = resume_file(path, plan)? {
                let out = ResultsOut {
                    out: Box::new(file),
                    clear: false,
                };
                return Ok((out, done));
            }
        }
        let mut out = ResultsOut {
            out: Box::new(std::fs::File::create(path)?),
            clear: false,
        };
        out.write(HEADER)?;
        out.write(&plan.to_string())?;
        Ok((out, Vec::new()))
    }

    /// Writes one line (and its newline) in one write, and flushes.
    pub fn write(&mut self, line: &str) -> io::Result<()> {
        let clear = if self.clear { "\r\x1b[2K" } else { "" };
        self.out.write_all(format!("{clear}{line}\n").as_bytes())?;
        self.out.flush()
    }
}

/// The file at `path` opened for appending after its last whole line, and the verdicts it
/// holds for `plan`'s seeds; `None` if there is no such file (or it is empty).
fn resume_file(path: &Path, plan: &Plan) -> io::Result<Option<(std::fs::File, Vec<Record>)>> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    // Keep whole lines only: a line cut off by a kill is run again.
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    text.truncate(whole);
    let Parsed { lines, errors, .. } = parse(&text, "line");
    if let Some(e) = errors.first() {
        return Err(bad(format!("cannot resume: {e}")));
    }
    let mut plans = lines.iter().filter_map(|l| match l {
        Line::Plan(p) => Some(p),
        Line::Record(_) => None,
    });
    match plans.next() {
        None if lines.is_empty() => return Ok(None),
        Some(p) if p == plan && plans.next().is_none() => {}
        other => {
            return Err(bad(format!(
                "cannot resume: it holds another sweep ({}), not `{plan}`; remove it, or run \
                 without --resume to start it over",
                other.map_or_else(
                    || "results without a `sweep` line".into(),
                    |p| format!("`{p}`")
                )
            )))
        }
    }
    let own: std::collections::HashSet<u64> = plan.own_seeds().into_iter().collect();
    let mut done: Vec<Record> = Vec::new();
    for line in lines {
        if let Line::Record(r) = line {
            let counts =
                r.outcome != Outcome::Error && r.scenario == plan.scenario && own.contains(&r.seed);
            if counts && !done.iter().any(|d| d.seed == r.seed) {
                done.push(r);
            }
        }
    }
    file.set_len(whole as u64)?;
    file.seek(SeekFrom::End(0))?;
    Ok(Some((file, done)))
}

/// Reads a results file, or stdin for `-`.
/// Bytes that are not UTF-8 (a log's) are replaced, not an error.
pub(super) fn read(path: &Path) -> io::Result<String> {
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        io::stdin().read_to_end(&mut bytes)?;
        bytes
    } else {
        std::fs::read(path)?
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rill-results-{name}-{}", std::process::id()))
    }

    fn record(seed: u64, outcome: Outcome) -> Record {
        Record {
            scenario: "steady".into(),
            seed,
            outcome,
            exit: match outcome {
                Outcome::Pass => "0",
                Outcome::Fail => "1",
                Outcome::Error => "signal-9",
            }
            .into(),
            wall: Duration::from_millis(1250),
            failed: match outcome {
                Outcome::Fail => vec!["delivery".into(), "liveness".into()],
                _ => vec![],
            },
        }
    }

    fn plan(index: usize) -> Plan {
        Plan {
            scenario: "steady".into(),
            seeds: (1..9).collect(),
            shard: Shard { index, count: 2 },
        }
    }

    #[test]
    fn lines_read_back_as_written() {
        assert_eq!(
            plan(1).to_string(),
            "sweep scenario=steady seeds=1..9 shard=1/2"
        );
        assert_eq!(
            record(3, Outcome::Fail).to_string(),
            "result scenario=steady seed=3 outcome=fail exit=1 wall_s=1.250 failed=delivery,liveness"
        );
        assert_eq!(
            parse_line(&plan(1).to_string()),
            Ok(Some(Line::Plan(plan(1))))
        );
        for outcome in [Outcome::Pass, Outcome::Fail, Outcome::Error] {
            let r = record(5, outcome);
            assert_eq!(parse_line(&r.to_string()), Ok(Some(Line::Record(r))));
        }
        // Unknown keys are skipped; what is not a result is no line at all.
        let with_more = format!("{} host=pod-3", record(2, Outcome::Pass));
        assert_eq!(
            parse_line(&with_more),
            Ok(Some(Line::Record(record(2, Outcome::Pass))))
        );
        for other in [
            "",
            "# comment",
            "seed 3: starting",
            "3 passed, 1 failed",
            HEADER,
        ] {
            assert_eq!(parse_line(other), Ok(None), "{other}");
        }
        // A progress bar's carriage return and line erase before a result (stdout, a tty).
        let drawn = format!("[##--] 1/2 seeds\r\x1b[2K{}", record(4, Outcome::Pass));
        assert_eq!(
            parse_line(&drawn),
            Ok(Some(Line::Record(record(4, Outcome::Pass))))
        );
    }

    #[test]
    fn malformed_results_are_named() {
        let e = |line: &str| parse_line(line).unwrap_err();
        assert_eq!(
            e("result scenario=s seed=x outcome=pass"),
            "seed: 'x' is not a seed"
        );
        assert_eq!(
            e("result scenario=s seed=1 outcome=ok"),
            "outcome: 'ok' is not pass, fail or error"
        );
        assert_eq!(
            e("result scenario=s outcome=pass"),
            "no seed= in a `result` line"
        );
        assert_eq!(
            e("result scenario=s seed=1 outcome=pass wall_s=-1"),
            "wall_s: '-1' is not a number of seconds"
        );
        assert_eq!(
            e("sweep scenario=s seeds=1..9"),
            "no shard= in a `sweep` line"
        );
        assert!(e("sweep scenario=s seeds=1..9 shard=2/2").contains("K must be below N"));
        assert_eq!(e("result seed"), "'seed' is not key=value");

        // Cut off mid-line at the very end: a note, the seed is just not there. In the middle:
        // an error naming the line.
        let whole = format!("{HEADER}\n{}\n{}\n", plan(0), record(1, Outcome::Pass));
        let cut = format!("{whole}result scenario=steady seed=3 outc");
        let parsed = parse(&cut, "f");
        assert_eq!(parsed.lines.len(), 2);
        assert_eq!(parsed.errors, [] as [String; 0]);
        assert_eq!(parsed.notes.len(), 1);
        assert!(
            parsed.notes[0].starts_with("f:4: a cut-off last line"),
            "{:?}",
            parsed.notes
        );
        let parsed = parse(&format!("{cut}\n{}\n", record(5, Outcome::Pass)), "f");
        assert_eq!(parsed.lines.len(), 3);
        assert!(parsed.errors[0].starts_with("f:4: "), "{:?}", parsed.errors);
    }

    #[test]
    fn a_results_file_is_written_line_by_line_and_resumed() {
        let path = temp("resume");
        let _ = std::fs::remove_file(&path);
        // No file yet: --resume starts one.
        let (mut out, done) = ResultsOut::start(&path, &plan(0), true, false).unwrap();
        assert_eq!(done, []);
        out.write(&record(1, Outcome::Pass).to_string()).unwrap();
        // Each line is in the file as soon as it is written.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{HEADER}\n{}\n{}\n", plan(0), record(1, Outcome::Pass))
        );
        out.write(&record(3, Outcome::Fail).to_string()).unwrap();
        out.write(&record(5, Outcome::Error).to_string()).unwrap();
        // Not this shard's seed: not counted as done.
        out.write(&record(2, Outcome::Pass).to_string()).unwrap();
        drop(out);
        // Killed mid-line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"result scenario=steady seed=7 out").unwrap();
        drop(f);

        let (mut out, done) = ResultsOut::start(&path, &plan(0), true, false).unwrap();
        let seeds: Vec<u64> = done.iter().map(|r| r.seed).collect();
        assert_eq!(
            seeds,
            [1, 3],
            "verdicts of its own seeds; the error is run again"
        );
        assert_eq!(done[1], record(3, Outcome::Fail));
        out.write(&record(7, Outcome::Pass).to_string()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(&format!(
                "seed=2 outcome=pass exit=0 wall_s=1.250\n{}\n",
                record(7, Outcome::Pass)
            )),
            "{text}"
        );
        assert_eq!(parse(&text, "f").errors, [] as [String; 0]);

        // Another shard's file is not resumed; without --resume it starts over.
        let e = ResultsOut::start(&path, &plan(1), true, false)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("holds another sweep (`sweep scenario=steady seeds=1..9 shard=0/2`)"),
            "{e}"
        );
        let (_, done) = ResultsOut::start(&path, &plan(1), false, false).unwrap();
        assert_eq!(done, []);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n{}\n", plan(1))
        );
        let _ = std::fs::remove_file(path);
    }
}
