//! The canonical trace: the runtime's structured tracing events as text lines with virtual
//! timestamps and the node that emitted them, with nothing that varies between runs of a seed
//! for unrelated reasons (ephemeral ports). Recovery windows of named scenarios are insta
//! snapshots of this text, and a seed run twice must give the same trace hash.

use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};

use crate::history::TraceLine;

/// Fields left out of the canonical form: they name connections, not behaviour.
const VOLATILE_FIELDS: &[&str] = &["peer", "addr", "data_addr", "local_addr"];

/// Collects trace lines; clones share the buffer.
#[derive(Clone)]
pub struct TraceCollector {
    lines: Arc<Mutex<Vec<TraceLine>>>,
    start: Arc<Mutex<Option<Instant>>>,
    spans: Arc<Mutex<Spans>>,
}

impl Default for TraceCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceCollector {
    /// An empty collector; lines are stamped 0 until `set_start`.
    pub fn new() -> Self {
        TraceCollector {
            lines: Arc::default(),
            start: Arc::default(),
            spans: Arc::default(),
        }
    }

    /// Timestamps count from here (the job's submission).
    pub fn set_start(&self, start: Instant) {
        *self.start.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
    }

    /// The lines collected so far.
    pub fn lines(&self) -> Vec<TraceLine> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds one line.
    pub fn push(&self, line: TraceLine) {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    fn elapsed(&self) -> std::time::Duration {
        let start = *self.start.lock().unwrap_or_else(|p| p.into_inner());
        start
            .map(|s| Instant::now().saturating_duration_since(s))
            .unwrap_or_default()
    }
}

/// Renders lines as the text that snapshots store.
pub fn render(lines: &[TraceLine]) -> String {
    lines.iter().fold(String::new(), |mut out, l| {
        let _ = writeln!(out, "{l}");
        out
    })
}

/// A stable hash of the trace (SipHash with fixed keys).
pub fn trace_hash(lines: &[TraceLine]) -> u64 {
    let mut h = DefaultHasher::new();
    for l in lines {
        l.at.hash(&mut h);
        l.node.hash(&mut h);
        l.text.hash(&mut h);
    }
    h.finish()
}

/// A line with its exact time: lines print milliseconds, a divergence may be finer.
fn exact(l: &TraceLine) -> String {
    format!("[{}ns] {l}", l.at.as_nanos())
}

/// The first line where two traces differ, for determinism failures.
pub fn first_difference(
    a: &[TraceLine],
    b: &[TraceLine],
) -> Option<(usize, Option<String>, Option<String>)> {
    let n = a.len().max(b.len());
    (0..n)
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| (i, a.get(i).map(exact), b.get(i).map(exact)))
}

impl TraceCollector {
    fn wanted(meta: &tracing::Metadata<'_>) -> bool {
        if meta.is_span() {
            return meta.target().starts_with("madsim")
                && matches!(meta.name(), NODE_SPAN | TASK_SPAN);
        }
        *meta.level() <= Level::INFO && meta.target().starts_with("rill")
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, Spans> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The span madsim opens for each node it creates (and again for each restart).
const NODE_SPAN: &str = "node";
/// The span madsim opens for each task, a child of its node's, and enters on every poll.
const TASK_SPAN: &str = "task";

/// Which node each span stands for, and the spans entered now.
///
/// This is the whole of what the trace needs from spans: the node an event came from. A
/// span id is the node's number (from 1, in order of creation): a task's span gets its
/// node's id, so entering it, on every poll, is a push onto a stack and leaving it a pop.
/// `tracing_subscriber`'s registry, used before, kept a slab entry per task span and
/// reference-counted it on every poll, a tenth of the simulator's time on a large cluster.
#[derive(Default)]
struct Spans {
    /// Node names by span id - 1.
    nodes: Vec<String>,
    /// Entered span ids, innermost last (madsim enters and leaves them in order).
    entered: Vec<u64>,
}

impl Spans {
    fn node_of(&self, id: u64) -> Option<&str> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        self.nodes.get(i).map(String::as_str)
    }

    /// The node of the innermost entered span, as the trace names it.
    fn current_node(&self) -> String {
        match self.entered.last().and_then(|&id| self.node_of(id)) {
            None | Some("madsim-main") => "harness".to_string(),
            Some(name) => name.to_string(),
        }
    }
}

impl Subscriber for TraceCollector {
    /// Only rill's events up to INFO become trace lines, and only madsim's node and task
    /// spans are kept (they name the node). Saying so per callsite lets tracing skip the rest
    /// where they are written, instead of building each one to drop it: the simulator and the
    /// runtime emit many at DEBUG and TRACE.
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if Self::wanted(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        Self::wanted(meta)
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut spans = self.spans();
        if attrs.metadata().name() == TASK_SPAN {
            // A task belongs to its parent node; one without (not expected) to the harness.
            let parent = attrs.parent().map(Id::into_u64);
            let known = parent.filter(|&id| spans.node_of(id).is_some());
            return Id::from_u64(known.unwrap_or(u64::MAX));
        }
        let mut visitor = Fields::default();
        attrs.record(&mut visitor);
        let name = visitor.get("name").unwrap_or("harness");
        spans.nodes.push(name.trim_matches('"').to_string());
        Id::from_u64(spans.nodes.len() as u64)
    }

    fn record(&self, _span: &Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if !Self::wanted(meta) {
            return;
        }
        let node = self.spans().current_node();
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        self.push(TraceLine {
            at: self.elapsed(),
            node,
            text: visitor.canonical(*meta.level()),
        });
    }

    fn enter(&self, span: &Id) {
        self.spans().entered.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut spans = self.spans();
        // Innermost first, as madsim leaves them; otherwise the last entry of that span.
        if let Some(i) = spans.entered.iter().rposition(|&id| id == span.into_u64()) {
            spans.entered.remove(i);
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `LEVEL message key=value ...` with keys sorted and volatile ones dropped.
    fn canonical(mut self, level: Level) -> String {
        self.fields
            .retain(|(k, _)| !VOLATILE_FIELDS.contains(&k.as_str()));
        self.fields.sort();
        let mut out = if level == Level::INFO {
            String::new()
        } else {
            format!("{level} ")
        };
        out.push_str(&self.message);
        for (k, v) in &self.fields {
            let _ = write!(out, " {k}={}", scrub_ports(v));
        }
        out
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name().to_string(), text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }
}

/// Replaces ephemeral port numbers (`ip:port` with a port other than rill's fixed 6121/6123)
/// by `*`, so unrelated connection churn does not change the trace.
pub fn scrub_ports(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(':') {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        let digits: String = tail[1..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let after_ip = head.chars().last().is_some_and(|c| c.is_ascii_digit());
        if after_ip && !digits.is_empty() && digits != "6121" && digits != "6123" {
            out.push_str(":*");
        } else {
            out.push(':');
            out.push_str(&digits);
        }
        rest = &tail[1 + digits.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_are_scrubbed_but_fixed_ports_kept() {
        assert_eq!(
            scrub_ports("10.0.1.2:40123 -> 10.0.0.1:6123"),
            "10.0.1.2:* -> 10.0.0.1:6123"
        );
        assert_eq!(
            scrub_ports("error: timeout after 5s"),
            "error: timeout after 5s"
        );
        assert_eq!(scrub_ports("at 12:30"), "at 12:*");
    }

    #[test]
    fn first_difference_points_at_the_line() {
        let l = |t: &str| TraceLine {
            at: std::time::Duration::ZERO,
            node: "jm".into(),
            text: t.into(),
        };
        let (a, b) = (vec![l("x"), l("y")], vec![l("x"), l("z")]);
        let (i, left, right) = first_difference(&a, &b).expect("differs");
        assert_eq!(i, 1);
        assert!(left.unwrap().ends_with("y") && right.unwrap().ends_with("z"));
        assert!(first_difference(&a, &a).is_none());
        assert_ne!(trace_hash(&a), trace_hash(&b));
    }
}
