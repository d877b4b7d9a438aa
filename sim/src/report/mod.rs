//! A self-contained HTML report of simulated runs: per run a header, the checkers' verdicts,
//! the replay command, one SVG timeline (output rates, faults, recovery phases, memory) and
//! the trace.
//!
//! The page is a single string with inline CSS and SVG and no scripts, so it can be attached
//! to a CI run or mailed and still open anywhere. Rendering is deterministic (no clocks, only
//! ordered maps, inputs kept in their recorded order) so two renders of one history are
//! byte-identical and reports can be diffed between a failing seed and its shrunk replay.
//!
//! This module assembles the page (index, per-run header, verdicts, fault list, legend,
//! trace); `timeline` draws the SVG charts, `phases` turns cluster events into recovery-phase
//! markers and `scale` holds the axis arithmetic and label formats.

use std::fmt::Write as _;

use crate::fault::{format_duration, Fault};
use rill::graph::JobStatus;

use crate::history::{AppliedFault, RunEnd, RunHistory, TraceLine, Verdict};

/// Writing into a `String` cannot fail, so the `fmt::Result` is dropped here once instead of
/// being unwrapped at every call site.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

mod phases;
mod scale;
mod timeline;

use phases::PhaseKind;
use scale::fmt_secs;
use timeline::{Timeline, FAULT_FILL};

/// One run to show: its history and the checkers' verdicts.
pub struct ReportRun<'a> {
    /// What the run recorded.
    pub history: &'a RunHistory,
    /// The checkers' verdicts on it.
    pub verdicts: &'a [Verdict],
    /// Command that replays the run (see [`crate::replay_command`]).
    pub replay: String,
}

/// Renders every run into one self-contained HTML page (inline CSS and SVG, no scripts
/// required, no external resources).
pub fn render_html(title: &str, runs: &[ReportRun<'_>]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = escape(title);
    w!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    render_index(&mut out, runs);
    for (i, run) in runs.iter().enumerate() {
        render_run(&mut out, i, run);
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Inline so the page needs no other file.
const CSS: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1080px}\
h1{font-size:22px}h2{font-size:18px;margin:0 0 6px}\
section.run{border-top:2px solid #ccc;padding:16px 0;margin-top:16px}\
table.verdicts{border-collapse:collapse;margin:8px 0}\
table.verdicts th,table.verdicts td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
.badge{display:inline-block;padding:1px 6px;border-radius:3px;font-weight:bold;color:#fff;font-size:12px}\
.pass{background:#2e7d32}.fail{background:#c62828}.unchecked{background:#757575}\
.status-ok{color:#2e7d32;font-weight:bold}.status-bad{color:#c62828;font-weight:bold}\
.status-other{color:#8a6d00;font-weight:bold}\
pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
.evidence{font-family:ui-monospace,monospace;white-space:pre-wrap}\
svg.timeline{display:block;max-width:100%;height:auto;border:1px solid #eee;background:#fff}\
.legend{font-size:13px}.legend span.item{margin-right:14px;white-space:nowrap}\
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}";

/// Escapes text for HTML element content and quoted attributes; everything from a history
/// (scenario names, trace text, evidence) goes through here.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A run passes when every checker passed; the index shows that at a glance.
fn run_passed(run: &ReportRun<'_>) -> bool {
    run.verdicts.iter().all(|v| v.passed)
}

fn badge(passed: bool) -> &'static str {
    if passed {
        "<span class=\"badge pass\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

/// A checker's result: checked and passed, failed, or not checked (grey: it held the run to
/// nothing, and must not read as a pass).
fn verdict_badge(v: &Verdict) -> &'static str {
    match (v.passed, v.checked) {
        (true, false) => "<span class=\"badge unchecked\">N/A</span>",
        (passed, _) => badge(passed),
    }
}

/// A linked list of runs, so a page of many seeds can be navigated without scrolling.
fn render_index(out: &mut String, runs: &[ReportRun<'_>]) {
    if runs.is_empty() {
        out.push_str("<p>No runs.</p>\n");
        return;
    }
    out.push_str("<ul class=\"index\">\n");
    for (i, run) in runs.iter().enumerate() {
        let h = run.history;
        w!(
            out,
            "<li>{} <a href=\"#run-{i}\">{} seed {}</a></li>\n",
            badge(run_passed(run)),
            escape(&h.scenario),
            h.seed
        );
    }
    out.push_str("</ul>\n");
}

fn render_run(out: &mut String, index: usize, run: &ReportRun<'_>) {
    let h = run.history;
    w!(out, "<section class=\"run\" id=\"run-{index}\">\n");
    render_header(out, h);
    render_verdicts(out, run.verdicts);
    w!(
        out,
        "<p>Replay:</p>\n<pre><code>{}</code></pre>\n",
        escape(&run.replay)
    );
    render_fault_list(out, &h.faults);
    render_buggify(out, h);
    Timeline::new(h).render(out);
    render_phase_legend(out);
    render_trace(out, &h.trace);
    out.push_str("</section>\n");
}

/// Maps the status to a fixed CSS class (never the raw string, which is data).
fn status_class(status: RunEnd) -> &'static str {
    match status {
        RunEnd::Ended(JobStatus::Finished) => "status-ok",
        RunEnd::Ended(JobStatus::Failed) => "status-bad",
        _ => "status-other",
    }
}

fn render_header(out: &mut String, h: &RunHistory) {
    let status = h.job_status.to_string();
    w!(
        out,
        "<h2>{} <small>seed {}</small></h2>\n<p class=\"meta\">Job <span class=\"{}\">{}</span>",
        escape(&h.scenario),
        h.seed,
        status_class(h.job_status),
        escape(&status)
    );
    if let Some(msg) = &h.job_message {
        w!(out, ": {}", escape(msg));
    }
    w!(
        out,
        " &middot; ended at {} &middot; {} TaskManager(s) &middot; {} output record(s)</p>\n",
        fmt_secs(h.end.as_millis() as u64),
        h.taskmanagers,
        h.outputs.len()
    );
}

fn render_verdicts(out: &mut String, verdicts: &[Verdict]) {
    if verdicts.is_empty() {
        out.push_str("<p>No checkers ran.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"verdicts\">\n<tr><th>Checker</th><th>Result</th><th>Summary</th><th>Evidence</th></tr>\n",
    );
    for v in verdicts {
        w!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"evidence\">{}</td></tr>\n",
            escape(v.checker),
            verdict_badge(v),
            escape(&v.summary),
            escape(v.evidence.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n");
}

/// The faults as text too: the bands in the SVG are hard to read when they overlap.
fn render_fault_list(out: &mut String, faults: &[AppliedFault]) {
    if faults.is_empty() {
        out.push_str("<p>No faults injected.</p>\n");
        return;
    }
    out.push_str("<p>Faults:</p>\n<ul class=\"faults\">\n");
    for f in faults {
        w!(out, "<li>{}</li>\n", escape(&fault_tooltip(f)));
    }
    out.push_str("</ul>\n");
}

/// The live buggify points, how often each fired, and every firing (collapsed: a run fires
/// hundreds).
fn render_buggify(out: &mut String, h: &RunHistory) {
    let Some(summary) = crate::buggify::summary(&h.buggify, &h.buggified) else {
        return;
    };
    w!(out, "<p class=\"buggify\">{}</p>\n", escape(&summary));
    if h.buggified.is_empty() {
        return;
    }
    w!(
        out,
        "<details><summary>Buggify firings ({})</summary>\n<pre>",
        h.buggified.len()
    );
    for b in &h.buggified {
        w!(
            out,
            "{} {} {}\n",
            fmt_secs(b.at.as_millis() as u64),
            escape(&b.node.to_string()),
            escape(&b.to_string())
        );
    }
    out.push_str("</pre></details>\n");
}

fn render_phase_legend(out: &mut String) {
    out.push_str("<p class=\"legend\">");
    w!(
        out,
        "<span class=\"item\"><span class=\"swatch\" style=\"background:{FAULT_FILL};opacity:0.5\"></span>fault</span>"
    );
    for kind in PhaseKind::ALL {
        w!(
            out,
            "<span class=\"item\"><span class=\"swatch\" style=\"background:{}\"></span>{}</span>",
            kind.color(),
            kind.name()
        );
    }
    out.push_str("</p>\n");
}

/// Collapsed because traces run to thousands of lines; the timeline is the summary.
fn render_trace(out: &mut String, trace: &[TraceLine]) {
    w!(
        out,
        "<details>\n<summary>Trace ({} lines)</summary>\n<pre class=\"trace\">",
        trace.len()
    );
    for line in trace {
        w!(out, "{}\n", escape(&line.to_string()));
    }
    out.push_str("</pre>\n</details>\n");
}

/// "crash tm-2": what the band's label shows.
fn fault_label(f: &Fault) -> String {
    let mut label = f.kind_name().to_string();
    for t in f.targets() {
        label.push(' ');
        label.push_str(&t.to_string());
    }
    label
}

/// The full fault with when it ended, for tooltips and the fault list.
fn fault_tooltip(f: &AppliedFault) -> String {
    match f.ended_at {
        Some(end) => format!("{} (ended at {})", f.fault, format_duration(end)),
        None => format!("{} (not ended within the run)", f.fault),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::RecordedEvent;
    use crate::fault::FaultKind;
    use crate::history::{MemorySample, OutputRecord};
    use crate::node::NodeName;
    use rill::events::{ClusterEvent, FailoverCause, LossCause};
    use rill::graph::{JobId, TaskManagerId};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn output(at: u64, tm: &str, sink: u32) -> OutputRecord {
        let tm = NodeName::from(tm).taskmanager().expect("tm-N");
        OutputRecord::new(ms(at), tm, sink, 0, None, None)
    }

    fn trace(at: u64, node: &str, text: &str) -> TraceLine {
        TraceLine {
            at: ms(at),
            node: node.into(),
            text: text.into(),
        }
    }

    fn event(at: u64, event: ClusterEvent) -> RecordedEvent {
        RecordedEvent {
            at: ms(at),
            node: NodeName::JobManager,
            event,
        }
    }

    fn lost() -> ClusterEvent {
        ClusterEvent::TaskManagerLost {
            taskmanager: "tm-2".into(),
            instance: TaskManagerId(2),
            cause: LossCause::ConnectionClosed("connection closed".into()),
        }
    }

    fn failover() -> ClusterEvent {
        ClusterEvent::FailoverStarted {
            job: JobId(1),
            strategy: rill::config::FailoverStrategy::Full,
            cause: FailoverCause::TaskManagerLost {
                taskmanager: "tm-2".into(),
                cause: LossCause::ConnectionClosed("connection closed".into()),
            },
            restart: Vec::new(),
            of: 2,
            backoff: ms(100),
            checkpoint: None,
        }
    }

    fn deployed() -> ClusterEvent {
        ClusterEvent::TasksDeployed {
            job: JobId(1),
            tasks: Vec::new(),
            checkpoint: None,
        }
    }

    fn status(status: JobStatus) -> ClusterEvent {
        ClusterEvent::JobStatusChanged {
            job: JobId(1),
            status,
        }
    }

    fn synthetic() -> RunHistory {
        let mut outputs = Vec::new();
        for i in 0..200 {
            outputs.push(output(
                i * 20,
                if i % 2 == 0 { "tm-1" } else { "tm-2" },
                (i % 2) as u32,
            ));
        }
        let crash = Fault {
            at: ms(1500),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: Some(ms(1000)),
            },
            anchor: None,
        };
        RunHistory {
            scenario: "keyed-count <crash>".into(),
            seed: 7,
            end: ms(4000),
            outputs,
            payloads: Vec::new(),
            commits: Vec::new(),
            stored_checkpoints: None,
            faults: vec![AppliedFault {
                began_at: Some(ms(1500)),
                effective: true,
                ended_at: Some(ms(2500)),
                ..AppliedFault::planned(crash)
            }],
            trace: vec![trace(1600, "jm", "a log line the report only lists")],
            events: vec![
                event(1600, lost()),
                event(1600, failover()),
                event(1700, deployed()),
                event(1700, deployed()),
                event(1800, status(JobStatus::Running)),
                event(4000, status(JobStatus::Finished)),
            ],
            job_status: RunEnd::Ended(JobStatus::Finished),
            job_message: None,
            placements: Vec::new(),
            memory: (0..8)
                .flat_map(|i| {
                    [1, 2].map(|tm| MemorySample {
                        at: ms(i * 500),
                        taskmanager: tm,
                        bytes: 1u64 << (20 + tm + (i % 3) as u32),
                        task_bytes: 0,
                    })
                })
                .collect(),
            memory_limit: Some(64 << 20),
            taskmanagers: 2,
            buggify: vec![rill::buggify::Point::RestoreSlow],
            buggified: vec![crate::buggify::Buggified {
                at: ms(1650),
                node: crate::NodeName::TaskManager(2),
                point: rill::buggify::Point::RestoreSlow,
                delay: ms(420),
            }],
        }
    }

    #[test]
    fn empty_history_renders() {
        let h = RunHistory::default();
        let html = render_html(
            "empty",
            &[ReportRun {
                history: &h,
                verdicts: &[],
                replay: String::new(),
            }],
        );
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(!html.contains("NaN") && !html.contains("inf,") && !html.contains("\"inf"));
        assert!(render_html("none", &[]).contains("No runs."));
    }

    #[test]
    fn synthetic_history_renders_timeline_and_escapes() {
        let h = synthetic();
        let verdicts = [
            Verdict::pass("no-loss", "200 of 200 records"),
            Verdict::fail(
                "exactly-once",
                "1 duplicate",
                "record <b>42</b> twice at 1.7s",
            ),
        ];
        let run = || ReportRun {
            history: &h,
            verdicts: &verdicts,
            replay: crate::replay_command("t::x", 7),
        };
        let html = render_html("report & co", &[run()]);
        assert_eq!(html.matches("<svg").count(), 1);
        assert_eq!(html.matches("class=\"series tm-rate\"").count(), 2);
        assert_eq!(html.matches("class=\"series sink-rate\"").count(), 2);
        assert_eq!(html.matches("class=\"series memory\"").count(), 2);
        assert_eq!(
            html.matches("class=\"fault-band\"").count(),
            3,
            "one band per chart"
        );
        assert!(html.contains("crash tm-2"));
        assert!(html.contains("record &lt;b&gt;42&lt;/b&gt; twice") && !html.contains("<b>42"));
        assert!(html.contains("keyed-count &lt;crash&gt;") && html.contains("report &amp; co"));
        assert!(html.contains("badge fail") && html.contains("class=\"mem-limit\""));
        assert!(
            html.contains("phase-detection")
                && html.contains("phase-running")
                && html.contains("phase-finished")
        );
        assert_eq!(
            html.matches("<g class=\"phase phase-deploying\"").count(),
            3,
            "same-ms lines share a marker"
        );
        assert!(html.contains("<details>") && html.contains("MADSIM_TEST_SEED=7"));
        assert!(html.contains("buggify: live restore-slow; 1 firing: restore-slow x1"));
        assert!(html.contains("tm-2 buggify restore-slow +420ms"));
        assert!(!html.contains("NaN") && !html.contains("<script"));
        assert_eq!(html, render_html("report & co", &[run()]));
    }
}
