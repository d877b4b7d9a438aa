//! Scenarios and fault plans back to TOML, in the file format
//! [`parse_scenario`](super::parse_scenario) reads: for printing shrunk plans and saving
//! generated scenarios. Output parses back to equal values.

use std::fmt::Write as _;
use std::time::Duration;

use crate::fault::Anchor;
use crate::{DeliveryMode, Direction, Fault, FaultKind, JobOutcome, NodeName, Scenario};
use rill::buggify::Point;
use rill::config::keys::MEMORY_PROCESS_SIZE;
use rill::config::KEYS;

use super::spec::{DELIVERY_MODES, DIRECTIONS, JOB_OUTCOMES, STORE_MODES};

/// Durations are written as the harness prints them (one home for the format).
pub use crate::fault::format_duration as duration_str;

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A bare TOML key if it can be one, else quoted.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        k.to_string()
    } else {
        quote(k)
    }
}

fn name_of<T: PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table.iter().find(|(_, x)| *x == v).map_or("?", |(n, _)| *n)
}

struct Out(String);

impl Out {
    fn str(&mut self, k: &str, v: &str) {
        let _ = writeln!(self.0, "{} = {}", key(k), quote(v));
    }
    fn node(&mut self, k: &str, v: &NodeName) {
        self.str(k, &v.to_string());
    }
    fn raw(&mut self, k: &str, v: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{} = {v}", key(k));
    }
    fn dur(&mut self, k: &str, d: Duration) {
        self.str(k, &duration_str(d));
    }
    fn opt_dur(&mut self, k: &str, d: Option<Duration>) {
        if let Some(d) = d {
            self.dur(k, d);
        }
    }
    fn header(&mut self, h: &str) {
        let _ = writeln!(self.0, "\n{h}");
    }
}

/// `[[faults]]` blocks that parse back to `faults`.
pub fn faults_to_toml(faults: &[Fault]) -> String {
    let mut out = Out(String::new());
    for (i, f) in faults.iter().enumerate() {
        if i > 0 {
            out.0.push('\n');
        }
        write_fault(&mut out, f);
    }
    out.0
}

fn write_fault(out: &mut Out, f: &Fault) {
    out.0.push_str("[[faults]]\n");
    match &f.anchor {
        None => out.dur("at", f.at),
        Some(a) => out.raw("at", anchor_table(a, f.at)),
    }
    out.str("kind", f.kind_name());
    match &f.kind {
        FaultKind::Crash {
            target,
            restart_after,
        }
        | FaultKind::OomKill {
            target,
            restart_after,
        } => {
            out.node("target", target);
            out.opt_dur("restart_after", *restart_after);
        }
        FaultKind::Partition {
            target,
            direction,
            heal_after,
        } => {
            out.node("target", target);
            if *direction != Direction::Both {
                out.str("direction", name_of(DIRECTIONS, *direction));
            }
            out.opt_dur("heal_after", *heal_after);
        }
        FaultKind::LinkPartition {
            from,
            to,
            both_ways,
            heal_after,
        } => {
            out.node("from", from);
            out.node("to", to);
            out.raw("both_ways", both_ways);
            out.opt_dur("heal_after", *heal_after);
        }
        FaultKind::PacketLoss { rate, duration } => {
            out.raw("rate", toml::Value::Float(*rate));
            out.opt_dur("duration", *duration);
        }
        FaultKind::Latency { min, max, duration } => {
            out.dur("min", *min);
            out.dur("max", *max);
            out.opt_dur("duration", *duration);
        }
        FaultKind::Pause { target, duration } => {
            out.node("target", target);
            out.dur("duration", *duration);
        }
        FaultKind::ClockSkew { target, offset_ms } => {
            out.node("target", target);
            let sign = if *offset_ms < 0 { "-" } else { "" };
            out.str(
                "offset",
                &format!(
                    "{sign}{}",
                    duration_str(Duration::from_millis(offset_ms.unsigned_abs()))
                ),
            );
        }
        FaultKind::StoreFailure { mode, duration } => {
            out.str("mode", name_of(STORE_MODES, *mode));
            out.dur("duration", *duration);
        }
    }
}

/// An anchored fault's `at` as an inline table: `{ after = "checkpoint-triggered",
/// checkpoint = 3, offset = "20ms" }`, with `from` and `offset` only when not 0.
fn anchor_table(a: &Anchor, from: Duration) -> String {
    let mut keys = vec![format!("after = {}", quote(a.event.name()))];
    if let Some(n) = a.checkpoint {
        keys.push(format!("checkpoint = {n}"));
    }
    if !from.is_zero() {
        keys.push(format!("from = {}", quote(&duration_str(from))));
    }
    if !a.offset.is_zero() {
        keys.push(format!("offset = {}", quote(&duration_str(a.offset))));
    }
    format!("{{ {} }}", keys.join(", "))
}

/// The whole scenario as a file that parses back to it (as `<name>.toml`).
pub fn scenario_to_toml(s: &Scenario) -> String {
    let mut out = Out(String::new());
    out.str("name", &s.name);
    if !s.description.is_empty() {
        out.str("description", &s.description);
    }
    out.dur("run_for", s.run_for);
    write_points(&mut out, &s.buggify);
    out.header("[cluster]");
    out.raw("taskmanagers", s.cluster.taskmanagers);
    out.raw("slots_per_taskmanager", s.cluster.slots_per_taskmanager);
    if let Some(m) = s.cluster.memory_mb {
        out.raw("memory_mb", m);
    }
    out.header("[job]");
    out.str("name", &s.job.name);
    for (k, v) in &s.job.params {
        out.str(k, v);
    }
    write_config(&mut out, s);
    write_swarm(&mut out, s);
    write_expect(&mut out, s);
    if !s.faults.is_empty() {
        out.0.push('\n');
        out.0.push_str(&faults_to_toml(&s.faults));
    }
    out.0
}

fn write_config(out: &mut Out, s: &Scenario) {
    // The memory size is written as [cluster] memory_mb.
    let set: Vec<_> = KEYS
        .iter()
        .filter(|k| k.name != MEMORY_PROCESS_SIZE)
        .filter_map(|k| Some((k.name, s.config.get_raw(k.name)?)))
        .collect();
    if !set.is_empty() {
        out.header("[config]");
        for (k, v) in set {
            out.str(k, v);
        }
    }
}

fn write_swarm(out: &mut Out, s: &Scenario) {
    let Some(w) = &s.swarm else { return };
    out.header("[swarm]");
    let kinds: Vec<String> = w.kinds.iter().map(|k| quote(k)).collect();
    out.raw("kinds", format!("[{}]", kinds.join(", ")));
    out.raw("min_faults", w.min_faults);
    out.raw("max_faults", w.max_faults);
    out.dur("from", w.from);
    out.dur("until", w.until);
    out.dur("max_duration", w.max_duration);
    out.raw("anchored_percent", w.anchored_percent);
    write_points(out, &w.buggify);
}

/// `buggify = "all"` or the list of points, if any.
fn write_points(out: &mut Out, points: &[Point]) {
    let mut sorted = points.to_vec();
    sorted.sort();
    match () {
        _ if points.is_empty() => {}
        _ if sorted == Point::ALL => out.str("buggify", "all"),
        _ => {
            let names: Vec<String> = points.iter().map(|p| quote(p.name())).collect();
            out.raw("buggify", format!("[{}]", names.join(", ")));
        }
    }
}

fn write_expect(out: &mut Out, s: &Scenario) {
    let e = &s.expect;
    out.header("[expect]");
    out.str(
        "delivery",
        name_of::<DeliveryMode>(DELIVERY_MODES, e.delivery),
    );
    if let Some(job) = e.job {
        out.str("job", name_of::<JobOutcome>(JOB_OUTCOMES, job));
    }
    out.opt_dur("max_stall", e.max_stall);
    out.opt_dur("max_recovery", e.max_recovery);
    if let Some(r) = e.max_task_range {
        out.raw("max_task_range", r);
    }
    if let Some(p) = e.max_memory_skew_percent {
        out.raw("max_memory_skew_percent", p);
    }
    out.opt_dur("drain_within", e.drain_within);
}
