//! What the commands print: a run's outcome, a determinism comparison, the HTML report.

use std::path::Path;

use crate::events::RecordedEvent;
use crate::node::NodeName;
use crate::report::{render_html, ReportRun};
use crate::runner::RunOutcome;
use crate::trace::{first_difference, trace_hash};

/// A run's result line, the peak memory of each TaskManager, and every verdict with its
/// evidence.
pub(super) fn print_outcome(o: &RunOutcome) {
    let h = &o.history;
    let status = if o.passed() { "PASS" } else { "FAIL" };
    println!(
        "{status} {} seed {}: job {} at {:.3}s, {} outputs, {} faults",
        h.scenario,
        h.seed,
        h.job_status,
        h.end.as_secs_f64(),
        h.outputs.len(),
        h.faults.len()
    );
    let mut peaks = std::collections::BTreeMap::new();
    for m in &h.memory {
        let peak = peaks.entry(m.taskmanager).or_insert(0u64);
        *peak = (*peak).max(m.bytes);
    }
    let peaks: Vec<String> = peaks
        .iter()
        .map(|(tm, b)| {
            format!(
                "{} {:.1} MiB",
                NodeName::TaskManager(*tm),
                *b as f64 / 1048576.0
            )
        })
        .collect();
    println!("  peak memory: {}", peaks.join(", "));
    if let Some(line) = crate::buggify::summary(&h.buggify, &h.buggified) {
        println!("  {line}");
    }
    for v in &o.verdicts {
        let mark = v.label();
        println!("  {mark:<4} {:<11} {}", v.checker, v.summary);
        if let Some(e) = &v.evidence {
            println!("       evidence: {e}");
        }
    }
}

/// Compares two runs of one seed: the trace, then the cluster events, then the outputs; prints
/// the first difference. A seed must replay bit for bit.
pub(super) fn same_trace(a: &RunOutcome, b: &RunOutcome) -> bool {
    let (a, b) = (&a.history, &b.history);
    if let Some((line, left, right)) = first_difference(&a.trace, &b.trace) {
        let (ha, hb) = (trace_hash(&a.trace), trace_hash(&b.trace));
        println!("determinism: FAIL, trace hashes {ha:016x} vs {hb:016x}; first difference at line {line}:");
        print_pair(left, right);
        return false;
    }
    if a.events != b.events {
        let at = (0..a.events.len().max(b.events.len()))
            .find(|&i| a.events.get(i) != b.events.get(i))
            .unwrap_or_default();
        let show = |e: Option<&RecordedEvent>| e.map(|e| e.to_string());
        println!("determinism: FAIL, same trace but different cluster events; first difference at event {at}:");
        print_pair(show(a.events.get(at)), show(b.events.get(at)));
        return false;
    }
    if a.buggified != b.buggified {
        let at = (0..a.buggified.len().max(b.buggified.len()))
            .find(|&i| a.buggified.get(i) != b.buggified.get(i))
            .unwrap_or_default();
        let show = |f: Option<&crate::buggify::Buggified>| f.map(|f| format!("{:?}", f));
        println!("determinism: FAIL, same trace but different buggify firings; first difference at firing {at}:");
        print_pair(show(a.buggified.get(at)), show(b.buggified.get(at)));
        return false;
    }
    if a.outputs != b.outputs {
        let at = a.outputs.iter().zip(&b.outputs).position(|(x, y)| x != y);
        println!("determinism: FAIL, same trace but different outputs (first at output {at:?})");
        return false;
    }
    println!(
        "determinism: trace hash {:016x} and {} outputs identical both times",
        trace_hash(&a.trace),
        a.outputs.len()
    );
    true
}

/// The two sides of a difference, `<end>` for the side that ran out.
fn print_pair(first: Option<String>, second: Option<String>) {
    let end = || "<end>".to_string();
    println!("  first:  {}", first.unwrap_or_else(end));
    println!("  second: {}", second.unwrap_or_else(end));
}

/// Writes the self-contained HTML report of `runs` (each with its replay command) to `path`.
pub(super) fn write_report(
    path: &Path,
    title: &str,
    runs: &[(&RunOutcome, String)],
) -> Result<(), std::io::Error> {
    let runs: Vec<ReportRun<'_>> = runs
        .iter()
        .map(|(o, replay)| ReportRun {
            history: &o.history,
            verdicts: &o.verdicts,
            replay: replay.clone(),
        })
        .collect();
    std::fs::write(path, render_html(title, &runs))?;
    println!("report: {}", path.display());
    Ok(())
}
