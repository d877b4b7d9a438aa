//! A self-contained HTML report of simulated runs: per run a header, the checkers' verdicts,
//! the replay command, one SVG timeline (output rates, faults, recovery phases, memory) and
//! the trace.
//!
//! The page is a single string with inline CSS and SVG and no scripts, so it can be attached
//! to a CI run or mailed and still open anywhere. Rendering is deterministic (no clocks, only
//! ordered maps, inputs kept in their recorded order) so two renders of one history are
//! byte-identical and reports can be diffed between a failing seed and its shrunk replay.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::fault::{format_duration, Fault};
use rill::events::ClusterEvent;
use rill::graph::{ExecutionState, JobStatus};

use crate::events::RecordedEvent;
use crate::history::{AppliedFault, OutputRecord, RunEnd, RunHistory, TraceLine, Verdict};
use crate::node::NodeName;

/// Writing into a `String` cannot fail, so the `fmt::Result` is dropped here once instead of
/// being unwrapped at every call site.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// One run to show: its history and the checkers' verdicts.
pub struct ReportRun<'a> {
    pub history: &'a RunHistory,
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
.pass{background:#2e7d32}.fail{background:#c62828}\
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
            badge(v.passed),
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
        label.push_str(t);
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

/// Formats milliseconds as seconds for axis labels: "2s", "1.25s".
fn fmt_secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        return format!("{}s", ms / 1000);
    }
    let frac = format!("{:03}", ms % 1000);
    format!("{}.{}s", ms / 1000, frac.trim_end_matches('0'))
}

/// Compact rate labels ("1.2k") so they fit the left margin.
fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", one_decimal(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", one_decimal(v / 1e3))
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        one_decimal(v)
    }
}

/// One decimal, without a trailing ".0", so round ticks read "20" and "1.5k".
fn one_decimal(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0")
        .map_or_else(|| s.clone(), str::to_string)
}

const BINARY_UNITS: [(&str, f64); 3] = [("GiB", 1073741824.0), ("MiB", 1048576.0), ("KiB", 1024.0)];

/// Binary units, as memory limits are configured.
fn fmt_bytes(v: f64) -> String {
    for (unit, size) in BINARY_UNITS {
        if v >= size {
            return format!("{}{unit}", one_decimal(v / size));
        }
    }
    format!("{v:.0}B")
}

/// Axis maximum and number of divisions such that every tick is round: the maximum is 1, 2
/// or 5 times a power of ten (of the largest binary unit below it for byte axes, so ticks
/// read "20MiB" rather than "23.8MiB"), split in fifths, or quarters for a 2.
fn y_scale(max: f64, binary: bool) -> (f64, u32) {
    let unit = if binary {
        BINARY_UNITS
            .iter()
            .map(|u| u.1)
            .find(|size| max >= *size)
            .unwrap_or(1.0)
    } else {
        1.0
    };
    let nice = nice_ceil(max / unit);
    let mantissa = nice / 10f64.powf(nice.log10().floor());
    (
        nice * unit,
        if (mantissa - 2.0).abs() < 1e-6 { 4 } else { 5 },
    )
}

/// Rounds an axis maximum up to 1, 2 or 5 times a power of ten, so tick labels are round.
fn nice_ceil(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Time-axis tick spacing (1-2-5 steps) giving at most ten ticks.
fn tick_step_ms(span_ms: u64) -> u64 {
    let mut decade = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = decade * m;
            if span_ms / step <= 10 {
                return step;
            }
        }
        decade *= 10;
    }
}

/// Output bucket width: 100 ms, coarsened in 100 ms steps so a run has at most 600 buckets
/// (enough resolution for a 1000 px chart without a huge page for long runs).
fn bucket_ms(span_ms: u64) -> u64 {
    let raw = span_ms.div_ceil(600).max(100);
    raw.div_ceil(100) * 100
}

/// Orders "tm-2" before "tm-10", so legends and colors follow TaskManager numbers.
fn natural_key(s: &str) -> (&str, u64, &str) {
    let prefix = s.trim_end_matches(|c: char| c.is_ascii_digit());
    let number = s[prefix.len()..].parse().unwrap_or(0);
    (prefix, number, s)
}

/// A recovery step, as the cluster's events mark it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhaseKind {
    Detection,
    Failure,
    Restart,
    Deploy,
    Running,
    Finished,
}

impl PhaseKind {
    const ALL: [PhaseKind; 6] = [
        PhaseKind::Detection,
        PhaseKind::Failure,
        PhaseKind::Restart,
        PhaseKind::Deploy,
        PhaseKind::Running,
        PhaseKind::Finished,
    ];

    /// The recovery step an event marks, if any.
    fn of(event: &ClusterEvent) -> Option<PhaseKind> {
        match event {
            ClusterEvent::TaskManagerLost { .. } => Some(PhaseKind::Detection),
            ClusterEvent::FailoverStarted { .. } | ClusterEvent::RestartsExhausted { .. } => {
                Some(PhaseKind::Failure)
            }
            ClusterEvent::SubtaskStateChanged {
                state: ExecutionState::Failed,
                ..
            } => Some(PhaseKind::Failure),
            ClusterEvent::Rebalanced { .. } => Some(PhaseKind::Restart),
            ClusterEvent::TasksDeployed { .. } => Some(PhaseKind::Deploy),
            ClusterEvent::JobStatusChanged { status, .. } => match status {
                JobStatus::Restarting => Some(PhaseKind::Restart),
                JobStatus::Running => Some(PhaseKind::Running),
                JobStatus::Finished => Some(PhaseKind::Finished),
                JobStatus::Failed => Some(PhaseKind::Failure),
                _ => None,
            },
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PhaseKind::Detection => "detection",
            PhaseKind::Failure => "failed",
            PhaseKind::Restart => "restart",
            PhaseKind::Deploy => "deploying",
            PhaseKind::Running => "running",
            PhaseKind::Finished => "finished",
        }
    }

    fn color(self) -> &'static str {
        match self {
            PhaseKind::Detection => "#ef6c00",
            PhaseKind::Failure => "#c62828",
            PhaseKind::Restart => "#6a1b9a",
            PhaseKind::Deploy => "#1565c0",
            PhaseKind::Running => "#2e7d32",
            PhaseKind::Finished => "#455a64",
        }
    }
}

/// One vertical marker: consecutive events of one phase at the same millisecond share a
/// marker and its tooltip.
struct Marker<'h> {
    at_ms: u64,
    kind: PhaseKind,
    lines: Vec<&'h RecordedEvent>,
}

fn phase_markers(events: &[RecordedEvent]) -> Vec<Marker<'_>> {
    let mut markers: Vec<Marker<'_>> = Vec::new();
    for line in events {
        let Some(kind) = PhaseKind::of(&line.event) else {
            continue;
        };
        let at_ms = line.at.as_millis() as u64;
        match markers.last_mut() {
            Some(m) if m.at_ms == at_ms && m.kind == kind => m.lines.push(line),
            _ => markers.push(Marker {
                at_ms,
                kind,
                lines: vec![line],
            }),
        }
    }
    markers
}

/// Distinct, colour-blind-friendly-ish series colours, cycled when there are more series.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const FAULT_FILL: &str = "#e53935";

/// SVG geometry, in user units (the SVG scales down with the page).
const SVG_WIDTH: f64 = 1000.0;
const PLOT_LEFT: f64 = 64.0;
const PLOT_WIDTH: f64 = 770.0;
const LEGEND_X: f64 = PLOT_LEFT + PLOT_WIDTH + 14.0;
const SVG_HEIGHT: f64 = 630.0;
/// (top, height) of the three stacked charts.
const RATE_PANEL: (f64, f64) = (28.0, 200.0);
const SINK_PANEL: (f64, f64) = (292.0, 120.0);
const MEMORY_PANEL: (f64, f64) = (474.0, 120.0);
const LEGEND_ROW: f64 = 14.0;

/// A named line on a chart: (virtual ms, value) points.
struct Series {
    name: String,
    color: &'static str,
    points: Vec<(u64, f64)>,
}

/// What one chart of the timeline shows.
struct ChartSpec<'s> {
    panel: (f64, f64),
    title: &'static str,
    /// CSS class of the chart's polylines ("tm-rate", "sink-rate", "memory").
    class: &'static str,
    series: &'s [Series],
    fmt: fn(f64) -> String,
    /// Byte values: ticks are rounded in binary units.
    binary: bool,
    limit: Option<u64>,
}

/// Vertical scale of one chart.
struct Panel {
    top: f64,
    height: f64,
    y_max: f64,
    /// Horizontal grid lines split the height into this many parts.
    divisions: u32,
}

impl Panel {
    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    fn y(&self, v: f64) -> f64 {
        self.bottom() - (v / self.y_max).clamp(0.0, 1.0) * self.height
    }
}

/// The SVG timeline of one run; all charts share the time axis.
struct Timeline<'h> {
    history: &'h RunHistory,
    span_ms: u64,
    bucket_ms: u64,
    /// TaskManager names in natural order; a name's index picks its colour in every chart.
    taskmanagers: Vec<String>,
    markers: Vec<Marker<'h>>,
}

impl<'h> Timeline<'h> {
    fn new(history: &'h RunHistory) -> Self {
        let span_ms = span_ms(history);
        Timeline {
            history,
            span_ms,
            bucket_ms: bucket_ms(span_ms),
            taskmanagers: taskmanager_names(history),
            markers: phase_markers(&history.events),
        }
    }

    fn x(&self, ms: u64) -> f64 {
        PLOT_LEFT + (ms.min(self.span_ms) as f64 / self.span_ms as f64) * PLOT_WIDTH
    }

    fn buckets(&self) -> usize {
        self.span_ms.div_ceil(self.bucket_ms).max(1) as usize
    }

    fn tm_color(&self, name: &str) -> &'static str {
        let i = self
            .taskmanagers
            .iter()
            .position(|t| t == name)
            .unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }

    fn render(&self, out: &mut String) {
        w!(
            out,
            "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_WIDTH}\" \
             height=\"{SVG_HEIGHT}\" viewBox=\"0 0 {SVG_WIDTH} {SVG_HEIGHT}\" \
             font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\n<title>Timeline of {} seed {}</title>\n",
            escape(&self.history.scenario),
            self.history.seed
        );
        let (tm, sink, memory) = (self.tm_rates(), self.sink_rates(), self.memory_series());
        self.chart(
            out,
            &ChartSpec {
                panel: RATE_PANEL,
                title: "Output rate per TaskManager (records/s)",
                class: "tm-rate",
                series: &tm,
                fmt: fmt_num,
                binary: false,
                limit: None,
            },
        );
        self.chart(
            out,
            &ChartSpec {
                panel: SINK_PANEL,
                title: "Output rate per sink subtask (records/s)",
                class: "sink-rate",
                series: &sink,
                fmt: fmt_num,
                binary: false,
                limit: None,
            },
        );
        self.chart(
            out,
            &ChartSpec {
                panel: MEMORY_PANEL,
                title: "Memory per TaskManager",
                class: "memory",
                series: &memory,
                fmt: fmt_bytes,
                binary: true,
                limit: self.history.memory_limit,
            },
        );
        out.push_str("</svg>\n");
    }

    /// Draws in layers: faults under the grid, series over it, markers on top so their
    /// tooltips stay reachable.
    fn chart(&self, out: &mut String, spec: &ChartSpec<'_>) {
        let data_max = spec
            .series
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.1)
            .fold(0.0, f64::max);
        let limit = spec.limit.map_or(0.0, |l| l as f64);
        let (y_max, divisions) = y_scale(data_max.max(limit), spec.binary);
        let panel = Panel {
            top: spec.panel.0,
            height: spec.panel.1,
            y_max,
            divisions,
        };
        w!(out, "<g class=\"chart chart-{}\">\n", spec.class);
        w!(
            out,
            "<text x=\"{PLOT_LEFT}\" y=\"{:.1}\" font-size=\"12\" font-weight=\"bold\">{}</text>\n",
            panel.top - 8.0,
            spec.title
        );
        self.fault_bands(out, &panel);
        self.axes(out, &panel, spec.fmt);
        if let Some(l) = spec.limit {
            limit_line(out, &panel, l);
        }
        for s in spec.series {
            self.polyline(out, &panel, spec.class, s);
        }
        self.phase_lines(out, &panel);
        legend(out, &panel, spec.series);
        out.push_str("</g>\n");
    }

    fn fault_bands(&self, out: &mut String, panel: &Panel) {
        for (i, f) in self.history.faults.iter().enumerate() {
            let start = self.x(f.fault.at.as_millis() as u64);
            let end_ms = f.ended_at.map_or(self.span_ms, |e| e.as_millis() as u64);
            let width = (self.x(end_ms) - start).max(2.0);
            w!(
                out,
                "<rect class=\"fault-band\" x=\"{start:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\" \
                 fill=\"{FAULT_FILL}\" fill-opacity=\"0.15\"><title>{}</title></rect>\n",
                panel.top,
                panel.height,
                escape(&fault_tooltip(f))
            );
            // Staggered so labels of overlapping faults do not print over each other.
            w!(
                out,
                "<text class=\"fault-label\" x=\"{:.1}\" y=\"{:.1}\" fill=\"#b71c1c\" font-size=\"10\">{}</text>\n",
                start + 3.0,
                panel.top + 11.0 + (i % 3) as f64 * 11.0,
                escape(&fault_label(&f.fault))
            );
        }
    }

    fn axes(&self, out: &mut String, panel: &Panel, fmt: fn(f64) -> String) {
        let (bottom, right) = (panel.bottom(), PLOT_LEFT + PLOT_WIDTH);
        for k in 0..=panel.divisions {
            let v = panel.y_max * f64::from(k) / f64::from(panel.divisions);
            let y = panel.y(v);
            w!(
                out,
                "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#e0e0e0\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n",
                PLOT_LEFT - 6.0,
                y + 4.0,
                fmt(v)
            );
        }
        let step = tick_step_ms(self.span_ms);
        for ms in (0..=self.span_ms).step_by(step as usize) {
            let x = self.x(ms);
            w!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#555\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n",
                bottom + 4.0,
                bottom + 15.0,
                fmt_secs(ms)
            );
        }
        w!(
            out,
            "<path d=\"M{PLOT_LEFT},{:.1} V{bottom:.1} H{right}\" fill=\"none\" stroke=\"#555\"/>\n",
            panel.top
        );
    }

    fn polyline(&self, out: &mut String, panel: &Panel, class: &str, s: &Series) {
        let mut points = String::with_capacity(s.points.len() * 12);
        for (i, &(ms, v)) in s.points.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            w!(points, "{sep}{:.1},{:.1}", self.x(ms), panel.y(v));
        }
        w!(
            out,
            "<polyline class=\"series {class}\" points=\"{points}\" fill=\"none\" stroke=\"{}\" \
             stroke-width=\"1.5\"><title>{}</title></polyline>\n",
            s.color,
            escape(&s.name)
        );
    }

    /// A wide transparent line under each marker makes the 1 px line hoverable.
    fn phase_lines(&self, out: &mut String, panel: &Panel) {
        for m in &self.markers {
            let x = self.x(m.at_ms);
            let tip: Vec<String> = m.lines.iter().map(|l| escape(&l.to_string())).collect();
            w!(
                out,
                "<g class=\"phase phase-{}\"><title>{}</title>\
                 <line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"transparent\" stroke-width=\"6\"/>\
                 <line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"1\"/></g>\n",
                m.kind.name(),
                tip.join("\n"),
                panel.top,
                panel.bottom(),
                panel.top,
                panel.bottom(),
                m.kind.color()
            );
        }
    }

    /// Records per second per TaskManager; every known TaskManager gets a line, an idle one
    /// (crashed, never scheduled) shows as flat zero rather than missing from the legend.
    fn tm_rates(&self) -> Vec<Series> {
        let mut counts = self.bucket_counts(|o| o.taskmanager_name());
        self.taskmanagers
            .iter()
            .map(|name| {
                let c = counts
                    .remove(name.as_str())
                    .unwrap_or_else(|| vec![0; self.buckets()]);
                Series {
                    name: name.clone(),
                    color: self.tm_color(name),
                    points: self.rates(&c),
                }
            })
            .collect()
    }

    fn sink_rates(&self) -> Vec<Series> {
        let counts = self.bucket_counts(|o| o.sink_subtask);
        counts
            .into_iter()
            .enumerate()
            .map(|(i, (subtask, c))| Series {
                name: format!("sink #{subtask}"),
                color: PALETTE[i % PALETTE.len()],
                points: self.rates(&c),
            })
            .collect()
    }

    fn memory_series(&self) -> Vec<Series> {
        let mut by_tm: BTreeMap<u32, Vec<(u64, f64)>> = BTreeMap::new();
        for m in &self.history.memory {
            by_tm
                .entry(m.taskmanager)
                .or_default()
                .push((m.at.as_millis() as u64, m.bytes as f64));
        }
        by_tm
            .into_iter()
            .map(|(tm, mut points)| {
                points.sort_by_key(|p| p.0); // stable: equal times keep recorded order
                let name = format!("tm-{tm}");
                Series {
                    color: self.tm_color(&name),
                    name,
                    points,
                }
            })
            .collect()
    }

    /// Output counts per bucket, grouped by `key`, in key order.
    fn bucket_counts<K: Ord>(&self, key: impl Fn(&OutputRecord) -> K) -> BTreeMap<K, Vec<u64>> {
        let n = self.buckets();
        let mut counts: BTreeMap<K, Vec<u64>> = BTreeMap::new();
        for o in &self.history.outputs {
            let b = ((o.at.as_millis() as u64 / self.bucket_ms) as usize).min(n - 1);
            counts.entry(key(o)).or_insert_with(|| vec![0; n])[b] += 1;
        }
        counts
    }

    /// Rate at each bucket's middle; the last bucket may be cut short by the run's end, so
    /// its own width is used rather than the nominal one.
    fn rates(&self, counts: &[u64]) -> Vec<(u64, f64)> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let start = i as u64 * self.bucket_ms;
                let end = (start + self.bucket_ms).min(self.span_ms).max(start + 1);
                ((start + end) / 2, c as f64 * 1000.0 / (end - start) as f64)
            })
            .collect()
    }
}

fn limit_line(out: &mut String, panel: &Panel, limit: u64) {
    let y = panel.y(limit as f64);
    let label = fmt_bytes(limit as f64);
    w!(
        out,
        "<line class=\"mem-limit\" x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#c62828\" \
         stroke-dasharray=\"6 4\"><title>memory limit {label}</title></line>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#c62828\" font-size=\"10\">limit {label}</text>\n",
        PLOT_LEFT + PLOT_WIDTH,
        PLOT_LEFT + PLOT_WIDTH - 4.0,
        y - 3.0
    );
}

/// Legend to the right of the chart; rows that do not fit the chart's height collapse into
/// "+N more" (the polylines' tooltips still name every series).
fn legend(out: &mut String, panel: &Panel, series: &[Series]) {
    let rows = ((panel.height / LEGEND_ROW) as usize).max(1);
    let shown = if series.len() > rows {
        rows - 1
    } else {
        series.len()
    };
    for (i, s) in series.iter().take(shown).enumerate() {
        let y = panel.top + 8.0 + i as f64 * LEGEND_ROW;
        w!(
            out,
            "<line x1=\"{LEGEND_X}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            LEGEND_X + 16.0,
            s.color,
            LEGEND_X + 20.0,
            y + 4.0,
            escape(&s.name)
        );
    }
    if shown < series.len() {
        w!(
            out,
            "<text x=\"{LEGEND_X}\" y=\"{:.1}\" fill=\"#555\">+{} more</text>\n",
            panel.top + 12.0 + shown as f64 * LEGEND_ROW,
            series.len() - shown
        );
    }
}

/// The time axis covers [0, end], stretched if any record lies beyond `end` so nothing is
/// silently dropped; at least 1 ms so scales never divide by zero.
fn span_ms(h: &RunHistory) -> u64 {
    let outputs = h.outputs.iter().map(|o| o.at);
    let trace = h.trace.iter().map(|t| t.at);
    let memory = h.memory.iter().map(|m| m.at);
    let faults = h
        .faults
        .iter()
        .flat_map(|f| std::iter::once(f.fault.at).chain(f.ended_at));
    let last = outputs
        .chain(trace)
        .chain(memory)
        .chain(faults)
        .max()
        .unwrap_or_default();
    (h.end.max(last).as_millis() as u64).max(1)
}

/// Every TaskManager the run knew of: `tm-1..=tm-N` plus any name seen in outputs or memory.
fn taskmanager_names(h: &RunHistory) -> Vec<String> {
    let name = |n| NodeName::TaskManager(n).to_string();
    let mut names: BTreeSet<String> = (1..=h.taskmanagers).map(name).collect();
    let numbers: BTreeSet<u32> = h.outputs.iter().map(|o| o.taskmanager).collect();
    names.extend(numbers.into_iter().map(name));
    names.extend(h.memory.iter().map(|m| name(m.taskmanager)));
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
    names
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fault::FaultKind;
    use crate::history::MemorySample;
    use rill::events::{FailoverCause, LossCause};
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
        };
        RunHistory {
            scenario: "keyed-count <crash>".into(),
            seed: 7,
            end: ms(4000),
            outputs,
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
                    })
                })
                .collect(),
            memory_limit: Some(64 << 20),
            taskmanagers: 2,
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
        assert!(!html.contains("NaN") && !html.contains("<script"));
        assert_eq!(html, render_html("report & co", &[run()]));
    }

    #[test]
    fn scales_are_round_and_bounded() {
        assert_eq!(bucket_ms(4000), 100);
        assert_eq!(bucket_ms(600_000), 1000);
        assert!(600_001u64.div_ceil(bucket_ms(600_001)) <= 600);
        assert_eq!(tick_step_ms(4000), 500);
        assert_eq!(fmt_secs(1250), "1.25s");
        assert_eq!(nice_ceil(130.0), 200.0);
        assert_eq!(y_scale(130.0, false), (200.0, 4));
        assert_eq!(y_scale(0.0, false), (1.0, 5));
        assert_eq!(y_scale(64.0 * 1048576.0, true), (100.0 * 1048576.0, 5));
        assert_eq!(
            (fmt_bytes(20.0 * 1048576.0), fmt_num(1500.0), fmt_num(0.0)),
            ("20MiB".into(), "1.5k".into(), "0".into())
        );
        let mut names = vec!["tm-10".to_string(), "tm-2".into(), "tm-1".into()];
        names.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
        assert_eq!(names, ["tm-1", "tm-2", "tm-10"]);
    }
}
