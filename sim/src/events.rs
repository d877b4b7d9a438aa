//! Recording the cluster's typed events ([`rill::events::ClusterEvent`]) with virtual time and
//! the node that emitted them: the harness's only source of truth about what the JobManager
//! and TaskManagers decided. Checkers, reports, snapshots and CLI summaries read these, never
//! log text (ARCHITECTURE.md, "Cluster events").

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill::events::{ClusterEvent, EventSink, Events, TracingEvents};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::fault::may_anchor;
use crate::node::NodeName;

/// One event as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Virtual time since the job's submission (0 for what came before it).
    pub at: Duration,
    /// The node that emitted it.
    pub node: NodeName,
    /// The event.
    pub event: ClusterEvent,
}

impl fmt::Display for RecordedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&line(self.at, &self.node.to_string(), &self.event))
    }
}

/// One timeline line: `  5.000s tm-1    text`, as traces print theirs.
fn line(at: Duration, node: &str, text: &dyn fmt::Display) -> String {
    let ms = at.as_millis();
    format!("{:>6}.{:03}s {node:<7} {text}", ms / 1000, ms % 1000)
}

/// Collects the events of every node of a run; clones share the log.
#[derive(Clone, Default)]
pub struct EventRecorder {
    log: Arc<Mutex<Vec<RecordedEvent>>>,
    start: Arc<Mutex<Option<Instant>>>,
    /// Woken for every event an anchored fault may wait for ([`may_anchor`]).
    anchors: Arc<Notify>,
}

impl EventRecorder {
    /// An empty recorder; times count from 0 until [`EventRecorder::set_start`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Times count from here (the job's submission).
    pub fn set_start(&self, start: Instant) {
        *self.start.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
    }

    /// The `Events` handle a node's processes emit through: recorded under `node`, and
    /// written to `tracing` as in production (so `--trace` still shows them).
    pub fn for_node(&self, node: NodeName) -> Events {
        Events::new(NodeSink {
            node,
            recorder: self.clone(),
        })
    }

    /// Everything recorded so far, in emission order.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events recorded after the first `seen`, in emission order: what a reader that has
    /// seen `seen` of them has not.
    pub fn events_since(&self, seen: usize) -> Vec<RecordedEvent> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.get(seen..).unwrap_or_default().to_vec()
    }

    /// Completes when the next event an anchored fault may wait for ([`may_anchor`]) is
    /// recorded, at the virtual instant it is. Only waiters present then are woken (nothing is
    /// stored for later ones), so a run nobody waits in is scheduled as if there were no
    /// recorder: read [`EventRecorder::events_since`] before waiting, in the same poll.
    pub fn anchor_event(&self) -> Notified<'_> {
        self.anchors.notified()
    }

    fn record(&self, node: &NodeName, event: ClusterEvent) {
        let wake = may_anchor(&event);
        let start = *self.start.lock().unwrap_or_else(|p| p.into_inner());
        let at = start
            .map(|s| Instant::now().saturating_duration_since(s))
            .unwrap_or_default();
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RecordedEvent {
                at,
                node: node.clone(),
                event,
            });
        if wake {
            self.anchors.notify_waiters();
        }
    }
}

struct NodeSink {
    node: NodeName,
    recorder: EventRecorder,
}

impl EventSink for NodeSink {
    fn emit(&self, event: ClusterEvent) {
        self.recorder.record(&self.node, event.clone());
        TracingEvents.emit(event);
    }
}

/// A run's timeline as text lines: the faults the harness applied (when they began and
/// ended, an anchored one at the time its anchor resolved to), every buggify firing (on the
/// node it fired on) and every cluster event, in time order, the harness's lines first at
/// equal times. A fault whose anchor never came is a
/// line at the run's end saying why. What snapshots store and `--events` prints.
///
/// `CheckpointAcknowledged` is left out: it falls between every checkpoint's trigger and its
/// completion, and the completion follows it within milliseconds unless the store is slow;
/// a fault anchored to it names it in its own line.
pub fn timeline(h: &crate::history::RunHistory) -> Vec<(Duration, String)> {
    timeline_of(h, true)
}

/// [`timeline`], with the buggify firings or without them.
pub fn timeline_of(h: &crate::history::RunHistory, buggify: bool) -> Vec<(Duration, String)> {
    let harness = NodeName::Harness.to_string();
    let mut lines: Vec<(Duration, String)> = Vec::new();
    for f in &h.faults {
        let Some(began) = f.began_at else {
            if let (Some(_), Some(why)) = (&f.fault.anchor, &f.not_applied) {
                let text = format!("fault not applied: {}: {why}", f.fault);
                lines.push((h.end, line(h.end, &harness, &text)));
            }
            continue;
        };
        let effect = if f.effective { "" } else { " (no effect)" };
        let text = format!("fault {}{effect}", f.fault);
        lines.push((began, line(began, &harness, &text)));
        if let Some(ended) = f.ended_at {
            let text = format!("fault ended: {}", f.fault);
            lines.push((ended, line(ended, &harness, &text)));
        }
    }
    for b in h.buggified.iter().filter(|_| buggify) {
        lines.push((b.at, line(b.at, &b.node.to_string(), b)));
    }
    // Stable: faults that began at the same time keep their plan order, firings theirs.
    lines.sort_by_key(|(at, _)| *at);
    let events = h
        .events
        .iter()
        .filter(|e| !matches!(e.event, ClusterEvent::CheckpointAcknowledged { .. }))
        .map(|e| (e.at, e.to_string()));
    merge_by_time(lines, events.collect())
}

/// Merges two time-sorted line lists, `first`'s lines before `second`'s at equal times.
fn merge_by_time(
    first: Vec<(Duration, String)>,
    second: Vec<(Duration, String)>,
) -> Vec<(Duration, String)> {
    let mut out = Vec::with_capacity(first.len() + second.len());
    let (mut a, mut b) = (first.into_iter().peekable(), second.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.0 <= y.0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
}
