//! The regression corpus: a text file of `scenario seed` lines, one per seed a sweep found
//! failing, that a crate's tests replay so that a bug found once stays fixed. Lines starting
//! with `#` are comments.
//!
//! One home for the format, so that the sweep that appends to a corpus and the tests that
//! replay it cannot drift apart.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;

/// What a corpus file starts with when a sweep creates it: how it is read and written.
pub const HEADER: &str = "# Regression corpus: `scenario seed` per line, appended by sweeps \
when a seed fails; the tests replay every entry. Lines starting with '#' are comments.\n";

/// One failing seed of one scenario.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The scenario's name.
    pub scenario: String,
    /// The seed that failed.
    pub seed: u64,
    /// `known=CHECKER`: the one checker this seed is known to fail, a finding still open
    /// (the line's comment says which). Every other checker must pass on it, and the replay
    /// fails once this one passes too, so the mark cannot outlive its finding.
    pub known: Option<String>,
}

impl Entry {
    /// The entry as its corpus line (without the newline).
    pub fn line(&self) -> String {
        match &self.known {
            Some(checker) => format!("{} {} known={checker}", self.scenario, self.seed),
            None => format!("{} {}", self.scenario, self.seed),
        }
    }
}

/// The entries of a corpus's text, in file order; the first line that is neither a comment,
/// blank, nor `scenario seed` is the error, quoted with its line number.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // A comment may follow the entry.
        let fields = line.split('#').next().unwrap_or_default();
        let mut parts = fields.split_whitespace();
        let known = |part: Option<&str>| match part {
            None => Some(None),
            Some(mark) => mark
                .strip_prefix("known=")
                .filter(|c| !c.is_empty())
                .map(|c| Some(c.to_string())),
        };
        let entry = match (
            parts.next(),
            parts.next().map(str::parse),
            known(parts.next()),
            parts.next(),
        ) {
            (Some(scenario), Some(Ok(seed)), Some(known), None) => Entry {
                scenario: scenario.to_string(),
                seed,
                known,
            },
            _ => {
                return Err(format!(
                    "line {}: '{line}' is not `scenario seed [known=CHECKER]`",
                    i + 1
                ))
            }
        };
        entries.push(entry);
    }
    Ok(entries)
}

/// The entries of the corpus at `path`; a corpus no sweep has written yet is empty. A
/// malformed line is an `InvalidData` error naming the file and the line.
pub fn read(path: &Path) -> io::Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    parse(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Appends the `scenario seed` lines of `seeds` the corpus does not hold yet (creating it with
/// [`HEADER`] if need be), so a seed found twice is replayed once; returns how many were new.
pub fn append(path: &Path, scenario: &str, seeds: &[u64]) -> io::Result<usize> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    // By scenario and seed: a line's `known=` mark or comment does not make it another entry.
    let held: BTreeSet<String> = existing
        .iter()
        .flat_map(|t| t.lines())
        .map(|l| {
            let fields = l.split('#').next().unwrap_or_default();
            fields
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut new: Vec<String> = Vec::new();
    for seed in seeds {
        let line = format!("{scenario} {seed}");
        if !held.contains(&line) && !new.contains(&line) {
            new.push(line);
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if existing.is_none() {
        file.write_all(HEADER.as_bytes())?;
    }
    for line in &new {
        writeln!(file, "{line}")?;
    }
    Ok(new.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rill-corpus-{name}-{}", std::process::id()))
    }

    #[test]
    fn corpus_appends_only_new_lines() {
        let path = temp("append");
        std::fs::write(&path, "# header\nsteady 1\n").unwrap();
        assert_eq!(append(&path, "steady", &[1, 2, 2]).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# header\nsteady 1\nsteady 2\n"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_new_corpus_starts_with_its_header_and_reads_back() {
        let path = temp("new");
        let _ = std::fs::remove_file(&path);
        assert_eq!(read(&path).unwrap(), []);
        assert_eq!(append(&path, "swarm", &[7, 3]).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        let entry = |seed| Entry {
            scenario: "swarm".into(),
            seed,
            known: None,
        };
        assert_eq!(read(&path).unwrap(), [entry(7), entry(3)]);
        assert_eq!(entry(7).line(), "swarm 7");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_malformed_line_is_named() {
        assert_eq!(
            parse("# c\n\n a 1 \n"),
            Ok(vec![Entry {
                scenario: "a".into(),
                seed: 1,
                known: None,
            }])
        );
        assert_eq!(
            parse("a 1\nb x\n"),
            Err("line 2: 'b x' is not `scenario seed [known=CHECKER]`".into())
        );
        assert!(parse("a 1 2").is_err() && parse("a").is_err());
        assert!(parse("a 1 known=").is_err() && parse("a 1 known=x y").is_err());
    }

    #[test]
    fn a_known_finding_is_marked_and_a_sweep_does_not_repeat_its_seed() {
        let marked = parse("s 4 known=drop-accounting # why\n").unwrap();
        assert_eq!(marked[0].known.as_deref(), Some("drop-accounting"));
        assert_eq!(marked[0].line(), "s 4 known=drop-accounting");
        let path = temp("known");
        std::fs::write(&path, "s 4 known=drop-accounting # why\n").unwrap();
        assert_eq!(append(&path, "s", &[4, 5]).unwrap(), 1);
        assert_eq!(read(&path).unwrap().len(), 2);
        let _ = std::fs::remove_file(path);
    }
}
