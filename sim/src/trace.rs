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
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::history::TraceLine;

/// Fields left out of the canonical form: they name connections, not behaviour.
const VOLATILE_FIELDS: &[&str] = &["peer", "addr", "data_addr", "local_addr"];

/// Collects trace lines; clones share the buffer.
#[derive(Clone)]
pub struct TraceCollector {
    lines: Arc<Mutex<Vec<TraceLine>>>,
    start: Arc<Mutex<Option<Instant>>>,
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
        meta.is_span() || (*meta.level() <= Level::INFO && meta.target().starts_with("rill"))
    }
}

/// The node name a span records (madsim wraps each node's tasks in a `node` span).
struct NodeName(String);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for TraceCollector {
    /// Only rill's events up to INFO become trace lines; every span is kept (madsim's `node`
    /// spans name the node). Saying so per callsite lets tracing skip the other events where
    /// they are written, instead of building each one for `on_event` to drop: the simulator
    /// and the runtime emit many at DEBUG and TRACE.
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

    fn enabled(&self, meta: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        Self::wanted(meta)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut visitor = Fields::default();
        attrs.record(&mut visitor);
        if let (Some(span), Some(name)) = (ctx.span(id), visitor.get("name")) {
            span.extensions_mut()
                .insert(NodeName(name.trim_matches('"').to_string()));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !Self::wanted(meta) {
            return;
        }
        let node = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope
                    .from_root()
                    .find_map(|s| s.extensions().get::<NodeName>().map(|n| n.0.clone()))
            })
            .unwrap_or_else(|| "harness".to_string());
        let node = if node == "madsim-main" {
            "harness".to_string()
        } else {
            node
        };
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        self.push(TraceLine {
            at: self.elapsed(),
            node,
            text: visitor.canonical(*meta.level()),
        });
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
