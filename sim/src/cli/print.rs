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
    for v in &o.verdicts {
        let mark = if v.passed { "ok  " } else { "FAIL" };
        println!("  {mark} {:<11} {}", v.checker, v.summary);
        if let Some(e) = &v.evidence {
            println!("       evidence: {e}");
        }
    }
}

/// Compares two runs of one seed: the trace, then the cluster events, then the outputs; prints
/// the first difference. A seed must replay bit for bit.
pub(super) fn same_trace(a: &RunOutcome, b: &RunOutcome) -> bool {
    let (ha, hb) = (trace_hash(&a.history.trace), trace_hash(&b.history.trace));
    match first_difference(&a.history.trace, &b.history.trace) {
        None if a.history.events != b.history.events => {
            let (x, y) = (&a.history.events, &b.history.events);
            let at = (0..x.len().max(y.len()))
                .find(|&i| x.get(i) != y.get(i))
                .unwrap_or_default();
            let show = |e: Option<&RecordedEvent>| e.map_or("<end>".into(), |e| e.to_string());
            println!("determinism: FAIL, same trace but different cluster events; first difference at event {at}:");
            println!("  first:  {}", show(x.get(at)));
            println!("  second: {}", show(y.get(at)));
            false
        }
        None if a.history.outputs != b.history.outputs => {
            let at = a
                .history
                .outputs
                .iter()
                .zip(&b.history.outputs)
                .position(|(x, y)| x != y);
            println!(
                "determinism: FAIL, same trace but different outputs (first at output {at:?})"
            );
            false
        }
        None => {
            println!(
                "determinism: trace hash {ha:016x} and {} outputs identical both times",
                a.history.outputs.len()
            );
            true
        }
        Some((line, left, right)) => {
            println!("determinism: FAIL, trace hashes {ha:016x} vs {hb:016x}; first difference at line {line}:");
            println!("  first:  {}", left.unwrap_or_else(|| "<end>".into()));
            println!("  second: {}", right.unwrap_or_else(|| "<end>".into()));
            false
        }
    }
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
