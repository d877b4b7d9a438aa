//! Faults the harness injects, at virtual times, into a simulated cluster.

use std::time::Duration;

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
    /// Whether a swarm may draw it. Not clock skew (the swarm jobs run on event time, where
    /// it changes nothing) nor store failures (a plan's `store-failure` and the swarm's
    /// crashes, pauses and partitions of the checkpoint-store node cover the store).
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
        false,
        false,
    ),
    kind(
        FaultTag::StoreFailure,
        "store-failure",
        &["at", "kind", "mode", "duration"],
        false,
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
}

/// One fault of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Virtual time after the job was submitted.
    pub at: Duration,
    /// What it does, and to which node.
    pub kind: FaultKind,
}

impl Fault {
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

    /// When the fault ends, if it does.
    pub fn end(&self) -> Option<Duration> {
        self.duration().map(|d| self.at + d)
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
        write!(f, "{} {}", format_duration(self.at), self.kind_name())?;
        for t in self.targets() {
            write!(f, " {t}")?;
        }
        if let Some(d) = self.duration() {
            write!(f, " for {}", format_duration(d))?;
        }
        if let FaultKind::ClockSkew { offset_ms, .. } = self.kind {
            write!(f, " by {offset_ms:+}ms")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let f = Fault {
            at: Duration::from_millis(1_500),
            kind: FaultKind::LinkPartition {
                from: NodeName::JobManager,
                to: NodeName::TaskManager(3),
                both_ways: true,
                heal_after: Some(Duration::from_secs(2)),
            },
        };
        assert_eq!(f.kind.tag(), FaultTag::LinkPartition);
        assert_eq!(
            f.targets(),
            [&NodeName::JobManager, &NodeName::TaskManager(3)]
        );
        assert_eq!(f.to_string(), "1500ms link-partition jm tm-3 for 2s");
    }
}
