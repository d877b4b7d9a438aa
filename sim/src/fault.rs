//! Faults the harness injects, at virtual times, into a simulated cluster.

use std::time::Duration;

use rill::events::ClusterEvent;

use crate::node::NodeName;

/// Which way a node partition cuts its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Nothing reaches the node and nothing leaves it.
    Both,
    /// Nothing reaches the node.
    Inbound,
    /// Nothing leaves the node.
    Outbound,
}

/// How the checkpoint store misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreFailureMode {
    /// Writes fail at once.
    Fail,
    /// Writes hang until the fault ends.
    Stall,
}

/// How long an OOM-killed TaskManager stays down before it restarts (a pod restart), in the
/// simulator's memory model and on real runs alike.
pub const OOM_RESTART: Duration = Duration::from_secs(5);

/// What a fault does, and to which node.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The node's process dies; it starts again after `restart_after`, if given.
    Crash {
        /// The node that crashes.
        target: NodeName,
        /// How long until it starts again; `None`: it stays down.
        restart_after: Option<Duration>,
    },
    /// The node is OOM-killed (as the memory model does when usage passes the limit).
    OomKill {
        /// The node that is killed.
        target: NodeName,
        /// How long until it starts again; `None`: it stays down.
        restart_after: Option<Duration>,
    },
    /// The node is cut off from every other node.
    Partition {
        /// The node cut off.
        target: NodeName,
        /// Which of its traffic is cut.
        direction: Direction,
        /// How long until the partition heals; `None`: never.
        heal_after: Option<Duration>,
    },
    /// One link is cut (`from` -> `to`, and back if `both_ways`).
    LinkPartition {
        /// The link's one end.
        from: NodeName,
        /// Its other end.
        to: NodeName,
        /// Whether `to` -> `from` is cut too.
        both_ways: bool,
        /// How long until the link heals; `None`: never.
        heal_after: Option<Duration>,
    },
    /// Every message is lost with probability `rate`.
    PacketLoss {
        /// The probability that a message is lost, 0..=1.
        rate: f64,
        /// How long the loss lasts; `None`: to the end of the run.
        duration: Option<Duration>,
    },
    /// Every message is delayed by a latency drawn from `min..max`.
    Latency {
        /// The shortest latency.
        min: Duration,
        /// The longest latency (exclusive).
        max: Duration,
        /// How long the latency lasts; `None`: to the end of the run.
        duration: Option<Duration>,
    },
    /// The node stops running (a long GC pause), then resumes.
    Pause {
        /// The node that pauses.
        target: NodeName,
        /// How long it stays paused.
        duration: Duration,
    },
    /// The node's clock runs `offset_ms` ahead (negative: behind) for processing time.
    ClockSkew {
        /// The node whose clock is skewed.
        target: NodeName,
        /// Milliseconds ahead (negative: behind).
        offset_ms: i64,
    },
    /// The checkpoint store's writes fail or stall.
    StoreFailure {
        /// Whether writes fail or stall.
        mode: StoreFailureMode,
        /// How long the store misbehaves.
        duration: Duration,
    },
}

/// A fault kind without its parameters: one variant per [`FaultKind`] variant and per row of
/// [`FAULT_KINDS`], in the same order. Code that turns a kind's name into a fault (the scenario
/// parser, the swarm's draw) looks the name up in the table and matches on the row's tag, so
/// a kind's name is written only in the table and a new kind is a compile error there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultTag {
    /// [`FaultKind::Crash`].
    Crash,
    /// [`FaultKind::OomKill`].
    OomKill,
    /// [`FaultKind::Partition`].
    Partition,
    /// [`FaultKind::LinkPartition`].
    LinkPartition,
    /// [`FaultKind::PacketLoss`].
    PacketLoss,
    /// [`FaultKind::Latency`].
    Latency,
    /// [`FaultKind::Pause`].
    Pause,
    /// [`FaultKind::ClockSkew`].
    ClockSkew,
    /// [`FaultKind::StoreFailure`].
    StoreFailure,
}

impl FaultTag {
    /// This kind's row of [`FAULT_KINDS`].
    pub fn spec(self) -> &'static FaultKindSpec {
        &FAULT_KINDS[self as usize]
    }
}

/// One row of the fault-kind table: how scenario files spell a kind, the keys it takes, and
/// what the harness does with it. The one place a kind's name is written: the scenario parser
/// and validator, the swarm's draw and the checkers all read it.
#[derive(Debug, PartialEq, Eq)]
pub struct FaultKindSpec {
    /// The kind this row describes.
    pub tag: FaultTag,
    /// How scenario files spell it (`kind = "crash"`).
    pub name: &'static str,
    /// Keys a `[[faults]]` table of this kind accepts.
    pub keys: &'static [&'static str],
    /// Whether a swarm may draw it (every kind can be drawn now).
    pub swarm: bool,
    /// Whether it can take records or tasks away (not latency, loss of packets TCP resends,
    /// skew or a store's failure): what the delivery and recovery checkers account to.
    pub disruptive: bool,
}

const fn kind(
    tag: FaultTag,
    name: &'static str,
    keys: &'static [&'static str],
    swarm: bool,
    disruptive: bool,
) -> FaultKindSpec {
    FaultKindSpec {
        tag,
        name,
        keys,
        swarm,
        disruptive,
    }
}

/// Every fault kind, in the order of [`FaultKind`]'s and [`FaultTag`]'s variants.
pub const FAULT_KINDS: &[FaultKindSpec] = &[
    kind(
        FaultTag::Crash,
        "crash",
        &["at", "kind", "target", "restart_after"],
        true,
        true,
    ),
    kind(
        FaultTag::OomKill,
        "oom-kill",
        &["at", "kind", "target", "restart_after"],
        true,
        true,
    ),
    kind(
        FaultTag::Partition,
        "partition",
        &["at", "kind", "target", "direction", "heal_after"],
        true,
        true,
    ),
    kind(
        FaultTag::LinkPartition,
        "link-partition",
        &["at", "kind", "from", "to", "both_ways", "heal_after"],
        true,
        true,
    ),
    kind(
        FaultTag::PacketLoss,
        "packet-loss",
        &["at", "kind", "rate", "duration"],
        true,
        false,
    ),
    kind(
        FaultTag::Latency,
        "latency",
        &["at", "kind", "min", "max", "duration"],
        true,
        false,
    ),
    kind(
        FaultTag::Pause,
        "pause",
        &["at", "kind", "target", "duration"],
        true,
        true,
    ),
    kind(
        FaultTag::ClockSkew,
        "clock-skew",
        &["at", "kind", "target", "offset"],
        true,
        false,
    ),
    kind(
        FaultTag::StoreFailure,
        "store-failure",
        &["at", "kind", "mode", "duration"],
        true,
        false,
    ),
];

// Each row sits at its tag's place, so `FaultTag::spec` indexes the table (and every tag has
// a row: `StoreFailure` is the last tag).
const _: () = {
    assert!(FAULT_KINDS.len() == FaultTag::StoreFailure as usize + 1);
    let mut i = 0;
    while i < FAULT_KINDS.len() {
        assert!(
            FAULT_KINDS[i].tag as usize == i,
            "FAULT_KINDS out of FaultTag order"
        );
        i += 1;
    }
};

/// The table's row for a kind as scenario files spell it.
pub fn fault_kind(name: &str) -> Option<&'static FaultKindSpec> {
    FAULT_KINDS.iter().find(|k| k.name == name)
}

/// The kinds' names, for error messages: "crash, oom-kill, ...".
pub fn fault_kind_names(pick: impl Fn(&FaultKindSpec) -> bool) -> String {
    let names: Vec<&str> = FAULT_KINDS
        .iter()
        .filter(|k| pick(k))
        .map(|k| k.name)
        .collect();
    names.join(", ")
}

impl FaultKind {
    /// This kind without its parameters.
    pub fn tag(&self) -> FaultTag {
        match self {
            FaultKind::Crash { .. } => FaultTag::Crash,
            FaultKind::OomKill { .. } => FaultTag::OomKill,
            FaultKind::Partition { .. } => FaultTag::Partition,
            FaultKind::LinkPartition { .. } => FaultTag::LinkPartition,
            FaultKind::PacketLoss { .. } => FaultTag::PacketLoss,
            FaultKind::Latency { .. } => FaultTag::Latency,
            FaultKind::Pause { .. } => FaultTag::Pause,
            FaultKind::ClockSkew { .. } => FaultTag::ClockSkew,
            FaultKind::StoreFailure { .. } => FaultTag::StoreFailure,
        }
    }

    /// This kind's row of [`FAULT_KINDS`].
    pub fn spec(&self) -> &'static FaultKindSpec {
        self.tag().spec()
    }

    /// Whether it kills `node`'s process (crash, OOM kill).
    pub fn kills(&self, node: &NodeName) -> bool {
        matches!(self, FaultKind::Crash { target, .. } | FaultKind::OomKill { target, .. } if target == node)
    }

    /// Whether it silences `node` as a whole: kills or pauses it, or partitions it from every
    /// other node (in either direction).
    pub fn isolates(&self, node: &NodeName) -> bool {
        match self {
            FaultKind::Pause { target, .. } | FaultKind::Partition { target, .. } => target == node,
            _ => self.kills(node),
        }
    }

    /// Whether it cuts `node` off from anyone: [`isolates`](Self::isolates) it, or cuts a link
    /// with `node` at one end.
    pub fn touches(&self, node: &NodeName) -> bool {
        match self {
            FaultKind::LinkPartition { from, to, .. } => from == node || to == node,
            _ => self.isolates(node),
        }
    }
}

/// A cluster event a fault can wait for: a point of the job's own cycle rather than a fixed
/// time. Scenario files name them in `at = { after = "...", ... }` (see [`ANCHOR_EVENTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnchorEvent {
    /// `checkpoint-triggered`: the JobManager triggered a checkpoint at the sources. Barriers
    /// travel and align from here until the checkpoint completes or is aborted.
    CheckpointTriggered,
    /// `checkpoint-acknowledged`: every task acknowledged the checkpoint and the JobManager
    /// is writing it to the store: it is not yet complete, and not restorable.
    CheckpointAcknowledged,
    /// `checkpoint-completed`: the store holds the checkpoint; sinks are told to commit.
    CheckpointCompleted,
    /// `failover-started`: the JobManager began a failover (its back-off runs from here).
    FailoverStarted,
    /// `tasks-redeployed`: tasks deployed after a failover or a rebalancing (not the job's
    /// first deployment): they are restoring their state.
    TasksRedeployed,
}

/// Each anchor as scenario files spell it (`after = "checkpoint-triggered"`), in the order of
/// [`AnchorEvent`]'s variants.
pub const ANCHOR_EVENTS: &[(&str, AnchorEvent)] = &[
    ("checkpoint-triggered", AnchorEvent::CheckpointTriggered),
    (
        "checkpoint-acknowledged",
        AnchorEvent::CheckpointAcknowledged,
    ),
    ("checkpoint-completed", AnchorEvent::CheckpointCompleted),
    ("failover-started", AnchorEvent::FailoverStarted),
    ("tasks-redeployed", AnchorEvent::TasksRedeployed),
];

impl AnchorEvent {
    /// How scenario files spell it.
    pub fn name(self) -> &'static str {
        ANCHOR_EVENTS[self as usize].0
    }

    /// Whether it is one checkpoint's event, so an anchor on it may name the checkpoint.
    pub fn is_checkpoint(self) -> bool {
        matches!(
            self,
            AnchorEvent::CheckpointTriggered
                | AnchorEvent::CheckpointAcknowledged
                | AnchorEvent::CheckpointCompleted
        )
    }

    /// The checkpoint an event of this anchor's kind is about, or `Some(None)` for a matching
    /// event that is about no checkpoint; `None` if `event` is not of this kind.
    /// [`AnchorEvent::TasksRedeployed`] matches every `TasksDeployed`: whether it is a
    /// redeployment is for the caller to tell (see [`Anchor::matches`]).
    fn of(self, event: &ClusterEvent) -> Option<Option<u64>> {
        match (self, event) {
            (
                AnchorEvent::CheckpointTriggered,
                ClusterEvent::CheckpointTriggered { checkpoint, .. },
            )
            | (
                AnchorEvent::CheckpointAcknowledged,
                ClusterEvent::CheckpointAcknowledged { checkpoint, .. },
            )
            | (
                AnchorEvent::CheckpointCompleted,
                ClusterEvent::CheckpointCompleted { checkpoint, .. },
            ) => Some(Some(checkpoint.0)),
            (AnchorEvent::FailoverStarted, ClusterEvent::FailoverStarted { .. })
            | (AnchorEvent::TasksRedeployed, ClusterEvent::TasksDeployed { .. }) => Some(None),
            _ => None,
        }
    }
}

// The table is in the enum's order, so `name` indexes it.
const _: () = {
    let mut i = 0;
    while i < ANCHOR_EVENTS.len() {
        assert!(
            ANCHOR_EVENTS[i].1 as usize == i,
            "ANCHOR_EVENTS out of order"
        );
        i += 1;
    }
};

/// The anchor named `name` in scenario files.
pub fn anchor_event(name: &str) -> Option<AnchorEvent> {
    ANCHOR_EVENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
}

/// Whether a fault anchored to some [`AnchorEvent`] could wait for `event` (or for what it
/// implies: an abort ends a checkpoint, a rebalancing makes the next deployment a restore).
/// The event recorder wakes the harness's driver for these only.
pub fn may_anchor(event: &ClusterEvent) -> bool {
    matches!(
        event,
        ClusterEvent::CheckpointTriggered { .. }
            | ClusterEvent::CheckpointAcknowledged { .. }
            | ClusterEvent::CheckpointCompleted { .. }
            | ClusterEvent::CheckpointAborted { .. }
            | ClusterEvent::FailoverStarted { .. }
            | ClusterEvent::Rebalanced { .. }
            | ClusterEvent::TasksDeployed { .. }
    )
}

/// Where in the job's cycle a fault begins: `offset` after the first `event` at or after the
/// fault's `at` (of checkpoint `checkpoint`, if given). The runner resolves it when the event
/// is recorded; a fault whose anchor never comes is recorded as not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor {
    /// The event it waits for.
    pub event: AnchorEvent,
    /// For checkpoint events: that checkpoint's (N of `chk-N`, counting from 1); `None`: the
    /// first checkpoint whose event comes at or after the fault's `at`.
    pub checkpoint: Option<u64>,
    /// How long after the event the fault begins.
    pub offset: Duration,
}

impl Anchor {
    /// Whether `event`, recorded at `at`, is the one a fault with this anchor and `from` (its
    /// `at`) waits for; `restoring`: a failover or rebalancing came before it (what makes a
    /// deployment a redeployment).
    pub fn matches(
        &self,
        from: Duration,
        event: &ClusterEvent,
        at: Duration,
        restoring: bool,
    ) -> bool {
        if at < from {
            return false;
        }
        match self.event.of(event) {
            None => false,
            Some(_) if self.event == AnchorEvent::TasksRedeployed => restoring,
            Some(checkpoint) => self.checkpoint.is_none() || checkpoint == self.checkpoint,
        }
    }

    /// The anchor as a timeline shows it, with the fault's `at` as `from`:
    /// `chk-3 triggered +20ms`, `checkpoint triggered from 4s +20ms`, `tasks redeployed from 5s`.
    fn describe(&self, from: Duration) -> String {
        let what = match self.event {
            AnchorEvent::CheckpointTriggered => "triggered",
            AnchorEvent::CheckpointAcknowledged => "acknowledged",
            AnchorEvent::CheckpointCompleted => "completed",
            AnchorEvent::FailoverStarted => "failover started",
            AnchorEvent::TasksRedeployed => "tasks redeployed",
        };
        let mut text = match (self.event.is_checkpoint(), self.checkpoint) {
            (true, Some(n)) => format!("chk-{n} {what}"),
            (true, None) => format!("checkpoint {what}"),
            (false, _) => what.to_string(),
        };
        if !from.is_zero() {
            text += &format!(" from {}", format_duration(from));
        }
        if !self.offset.is_zero() {
            text += &format!(" +{}", format_duration(self.offset));
        }
        text
    }
}

/// One fault of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Virtual time after the job was submitted: when the fault begins or, for an anchored
    /// fault, from when its anchor's event counts (it begins no earlier).
    pub at: Duration,
    /// What it does, and to which node.
    pub kind: FaultKind,
    /// The cluster event it waits for, if it is placed in the job's cycle rather than at `at`.
    pub anchor: Option<Anchor>,
}

impl Fault {
    /// A fault at a fixed time.
    pub fn new(at: Duration, kind: FaultKind) -> Self {
        Fault {
            at,
            kind,
            anchor: None,
        }
    }

    /// A fault `anchor.offset` after the first event `anchor` waits for at or after `from`.
    pub fn anchored(anchor: Anchor, from: Duration, kind: FaultKind) -> Self {
        Fault {
            at: from,
            kind,
            anchor: Some(anchor),
        }
    }

    /// The kind's name as scenario files spell it.
    pub fn kind_name(&self) -> &'static str {
        self.kind.spec().name
    }

    /// How long the fault lasts, if it ends by itself (heal, restart, resume).
    pub fn duration(&self) -> Option<Duration> {
        match &self.kind {
            FaultKind::Crash {
                restart_after: d, ..
            }
            | FaultKind::OomKill {
                restart_after: d, ..
            } => *d,
            FaultKind::Partition { heal_after: d, .. }
            | FaultKind::LinkPartition { heal_after: d, .. } => *d,
            FaultKind::PacketLoss { duration: d, .. } | FaultKind::Latency { duration: d, .. } => {
                *d
            }
            FaultKind::Pause { duration, .. } | FaultKind::StoreFailure { duration, .. } => {
                Some(*duration)
            }
            FaultKind::ClockSkew { .. } => None,
        }
    }

    /// When the fault ends, if it does and is not anchored (an anchored fault's begin is known
    /// only once the run resolves it).
    pub fn end(&self) -> Option<Duration> {
        match self.anchor {
            None => self.duration().map(|d| self.at + d),
            Some(_) => None,
        }
    }

    /// The nodes the fault acts on (empty for network-wide faults).
    pub fn targets(&self) -> Vec<&NodeName> {
        match &self.kind {
            FaultKind::Crash { target, .. }
            | FaultKind::OomKill { target, .. }
            | FaultKind::Partition { target, .. }
            | FaultKind::Pause { target, .. }
            | FaultKind::ClockSkew { target, .. } => vec![target],
            FaultKind::LinkPartition { from, to, .. } => vec![from, to],
            FaultKind::PacketLoss { .. }
            | FaultKind::Latency { .. }
            | FaultKind::StoreFailure { .. } => Vec::new(),
        }
    }

    /// A mutable handle on the fault's duration, for shrinking.
    pub fn duration_mut(&mut self) -> Option<&mut Duration> {
        match &mut self.kind {
            FaultKind::Crash {
                restart_after: d, ..
            }
            | FaultKind::OomKill {
                restart_after: d, ..
            } => d.as_mut(),
            FaultKind::Partition { heal_after: d, .. }
            | FaultKind::LinkPartition { heal_after: d, .. } => d.as_mut(),
            FaultKind::PacketLoss { duration: d, .. } | FaultKind::Latency { duration: d, .. } => {
                d.as_mut()
            }
            FaultKind::Pause { duration, .. } | FaultKind::StoreFailure { duration, .. } => {
                Some(duration)
            }
            FaultKind::ClockSkew { .. } => None,
        }
    }
}

/// Formats a duration the way scenario files write them, in the largest unit that keeps it
/// exact: "5s", "250ms", "1500us", "7ns" (so a written plan parses back to the same plan).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    match () {
        _ if ns.is_multiple_of(1_000_000_000) => format!("{}s", ns / 1_000_000_000),
        _ if ns.is_multiple_of(1_000_000) => format!("{}ms", ns / 1_000_000),
        _ if ns.is_multiple_of(1_000) => format!("{}us", ns / 1_000),
        _ => format!("{ns}ns"),
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.anchor {
            None => write!(f, "{} {}", format_duration(self.at), self.kind_name())?,
            Some(_) => f.write_str(self.kind_name())?,
        }
        for t in self.targets() {
            write!(f, " {t}")?;
        }
        if let Some(d) = self.duration() {
            write!(f, " for {}", format_duration(d))?;
        }
        if let FaultKind::ClockSkew { offset_ms, .. } = self.kind {
            write!(f, " by {offset_ms:+}ms")?;
        }
        if let Some(anchor) = &self.anchor {
            write!(f, " at {}", anchor.describe(self.at))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_isolates_and_touches_name_what_a_fault_does_to_a_node() {
        let (jm, tm1, tm2) = (
            NodeName::JobManager,
            NodeName::TaskManager(1),
            NodeName::TaskManager(2),
        );
        let crash = FaultKind::Crash {
            target: tm1.clone(),
            restart_after: None,
        };
        let pause = FaultKind::Pause {
            target: tm1.clone(),
            duration: Duration::from_secs(1),
        };
        let cut = FaultKind::Partition {
            target: jm.clone(),
            direction: Direction::Inbound,
            heal_after: None,
        };
        let link = FaultKind::LinkPartition {
            from: tm1.clone(),
            to: tm2.clone(),
            both_ways: false,
            heal_after: None,
        };
        let loss = FaultKind::PacketLoss {
            rate: 0.5,
            duration: None,
        };
        // (fault, node): kills, isolates, touches.
        let cases = [
            (&crash, &tm1, [true, true, true]),
            (&crash, &tm2, [false, false, false]),
            (&pause, &tm1, [false, true, true]),
            (&cut, &jm, [false, true, true]),
            (&cut, &tm1, [false, false, false]),
            (&link, &tm1, [false, false, true]),
            (&link, &tm2, [false, false, true]),
            (&link, &jm, [false, false, false]),
            (&loss, &tm1, [false, false, false]),
        ];
        for (fault, node, want) in cases {
            let got = [fault.kills(node), fault.isolates(node), fault.touches(node)];
            assert_eq!(got, want, "{fault:?} on {node}");
        }
    }

    #[test]
    fn every_name_finds_its_own_row() {
        for row in FAULT_KINDS {
            assert_eq!(fault_kind(row.name), Some(row));
            assert_eq!(row.tag.spec(), row);
        }
        assert_eq!(fault_kind("crash").map(|k| k.tag), Some(FaultTag::Crash));
        assert_eq!(fault_kind("Crash"), None);
    }

    #[test]
    fn a_fault_shows_its_targets_by_name() {
        let f = Fault::new(
            Duration::from_millis(1_500),
            FaultKind::LinkPartition {
                from: NodeName::JobManager,
                to: NodeName::TaskManager(3),
                both_ways: true,
                heal_after: Some(Duration::from_secs(2)),
            },
        );
        assert_eq!(f.kind.tag(), FaultTag::LinkPartition);
        assert_eq!(
            f.targets(),
            [&NodeName::JobManager, &NodeName::TaskManager(3)]
        );
        assert_eq!(f.to_string(), "1500ms link-partition jm tm-3 for 2s");
    }

    fn crash() -> FaultKind {
        FaultKind::Crash {
            target: NodeName::TaskManager(2),
            restart_after: Some(Duration::from_secs(10)),
        }
    }

    #[test]
    fn an_anchored_fault_shows_its_anchor_and_has_no_fixed_end() {
        let ms = Duration::from_millis;
        let anchor = |event, checkpoint, offset| Anchor {
            event,
            checkpoint,
            offset,
        };
        let f = Fault::anchored(
            anchor(AnchorEvent::CheckpointTriggered, Some(3), ms(20)),
            Duration::ZERO,
            crash(),
        );
        assert_eq!(f.to_string(), "crash tm-2 for 10s at chk-3 triggered +20ms");
        assert_eq!(f.end(), None);
        let f = Fault::anchored(
            anchor(AnchorEvent::CheckpointAcknowledged, None, ms(2)),
            ms(4_500),
            crash(),
        );
        assert_eq!(
            f.to_string(),
            "crash tm-2 for 10s at checkpoint acknowledged from 4500ms +2ms"
        );
        let f = Fault::anchored(
            anchor(AnchorEvent::TasksRedeployed, None, Duration::ZERO),
            ms(5_000),
            crash(),
        );
        assert_eq!(
            f.to_string(),
            "crash tm-2 for 10s at tasks redeployed from 5s"
        );
        assert_eq!(Fault::new(ms(5_000), crash()).end(), Some(ms(15_000)));
        for (name, event) in ANCHOR_EVENTS {
            assert_eq!(anchor_event(name), Some(*event));
            assert_eq!(event.name(), *name);
        }
    }

    #[test]
    fn an_anchor_matches_its_event_from_its_time_on() {
        use rill::graph::{CheckpointId, JobId};
        let ms = Duration::from_millis;
        let triggered = |n| ClusterEvent::CheckpointTriggered {
            job: JobId(1),
            checkpoint: CheckpointId(n),
        };
        let third = Anchor {
            event: AnchorEvent::CheckpointTriggered,
            checkpoint: Some(3),
            offset: ms(20),
        };
        assert!(third.matches(Duration::ZERO, &triggered(3), ms(3_016), false));
        assert!(!third.matches(Duration::ZERO, &triggered(4), ms(4_016), false));
        // Not before the fault's `at`.
        assert!(!third.matches(ms(5_000), &triggered(3), ms(3_016), false));
        let next = Anchor {
            checkpoint: None,
            ..third
        };
        assert!(next.matches(ms(3_500), &triggered(4), ms(4_016), false));
        assert!(!next.matches(ms(3_500), &triggered(3), ms(3_016), false));
        let acknowledged = ClusterEvent::CheckpointAcknowledged {
            job: JobId(1),
            checkpoint: CheckpointId(3),
        };
        assert!(!third.matches(Duration::ZERO, &acknowledged, ms(3_100), false));
        // A deployment is a restore only after a failover or rebalancing.
        let deployed = ClusterEvent::TasksDeployed {
            job: JobId(1),
            tasks: Vec::new(),
            checkpoint: None,
        };
        let restore = Anchor {
            event: AnchorEvent::TasksRedeployed,
            checkpoint: None,
            offset: Duration::ZERO,
        };
        assert!(!restore.matches(Duration::ZERO, &deployed, ms(10), false));
        assert!(restore.matches(Duration::ZERO, &deployed, ms(6_000), true));
        assert!(may_anchor(&deployed) && may_anchor(&acknowledged));
    }
}
