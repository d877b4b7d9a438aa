//! The SVG timeline of one run: three stacked charts (output rate per TaskManager, per sink
//! subtask, memory per TaskManager) on one time axis, with fault bands, recovery-phase
//! markers and legends.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::phases::{phase_markers, Marker};
use super::scale::{bucket_ms, fmt_bytes, fmt_num, fmt_secs, natural_key, tick_step_ms, y_scale};
use super::{escape, fault_label, fault_tooltip};
use crate::history::{OutputRecord, RunHistory};
use crate::node::NodeName;

/// Distinct, colour-blind-friendly-ish series colours, cycled when there are more series.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
pub(super) const FAULT_FILL: &str = "#e53935";

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
pub(super) struct Timeline<'h> {
    history: &'h RunHistory,
    span_ms: u64,
    bucket_ms: u64,
    /// TaskManager names in natural order; a name's index picks its colour in every chart.
    taskmanagers: Vec<String>,
    markers: Vec<Marker<'h>>,
}

impl<'h> Timeline<'h> {
    pub(super) fn new(history: &'h RunHistory) -> Self {
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

    pub(super) fn render(&self, out: &mut String) {
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
            // An anchored fault's planned time is only where its anchor was looked for.
            let began = f.began_at.unwrap_or(f.fault.at);
            let start = self.x(began.as_millis() as u64);
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
                let name = NodeName::TaskManager(tm).to_string();
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
        .flat_map(|f| std::iter::once(f.began_at.unwrap_or(f.fault.at)).chain(f.ended_at));
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
