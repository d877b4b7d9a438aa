//! Faults the harness injects, at virtual times, into a simulated cluster.

use std::time::Duration;

/// Which way a node partition cuts its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
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

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The node's process dies; it starts again after `restart_after`, if given.
    Crash {
        target: String,
        restart_after: Option<Duration>,
    },
    /// The node is OOM-killed (as the memory model does when usage passes the limit).
    OomKill {
        target: String,
        restart_after: Option<Duration>,
    },
    /// The node is cut off from every other node.
    Partition {
        target: String,
        direction: Direction,
        heal_after: Option<Duration>,
    },
    /// One link is cut (`from` -> `to`, and back if `both_ways`).
    LinkPartition {
        from: String,
        to: String,
        both_ways: bool,
        heal_after: Option<Duration>,
    },
    /// Every message is lost with probability `rate`.
    PacketLoss {
        rate: f64,
        duration: Option<Duration>,
    },
    /// Every message is delayed by a latency drawn from `min..max`.
    Latency {
        min: Duration,
        max: Duration,
        duration: Option<Duration>,
    },
    /// The node stops running (a long GC pause), then resumes.
    Pause { target: String, duration: Duration },
    /// The node's clock runs `offset_ms` ahead (negative: behind) for processing time.
    ClockSkew { target: String, offset_ms: i64 },
    /// The checkpoint store's writes fail or stall.
    StoreFailure {
        mode: StoreFailureMode,
        duration: Duration,
    },
}

/// One row of the fault-kind table: how scenario files spell a kind, the keys it takes, and
/// what the harness does with it. The one place a kind's name is written: the scenario parser
/// and validator, the swarm's draw and the checkers all read it.
#[derive(Debug, PartialEq, Eq)]
pub struct FaultKindSpec {
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
    name: &'static str,
    keys: &'static [&'static str],
    swarm: bool,
    disruptive: bool,
) -> FaultKindSpec {
    FaultKindSpec {
        name,
        keys,
        swarm,
        disruptive,
    }
}

/// Every fault kind, in the order of [`FaultKind`]'s variants.
pub const FAULT_KINDS: &[FaultKindSpec] = &[
    kind(
        "crash",
        &["at", "kind", "target", "restart_after"],
        true,
        true,
    ),
    kind(
        "oom-kill",
        &["at", "kind", "target", "restart_after"],
        true,
        true,
    ),
    kind(
        "partition",
        &["at", "kind", "target", "direction", "heal_after"],
        true,
        true,
    ),
    kind(
        "link-partition",
        &["at", "kind", "from", "to", "both_ways", "heal_after"],
        true,
        true,
    ),
    kind(
        "packet-loss",
        &["at", "kind", "rate", "duration"],
        true,
        false,
    ),
    kind(
        "latency",
        &["at", "kind", "min", "max", "duration"],
        true,
        false,
    ),
    kind("pause", &["at", "kind", "target", "duration"], true, true),
    kind(
        "clock-skew",
        &["at", "kind", "target", "offset"],
        false,
        false,
    ),
    kind(
        "store-failure",
        &["at", "kind", "mode", "duration"],
        false,
        false,
    ),
];

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
    /// This kind's row of [`FAULT_KINDS`].
    pub fn spec(&self) -> &'static FaultKindSpec {
        let row = match self {
            FaultKind::Crash { .. } => 0,
            FaultKind::OomKill { .. } => 1,
            FaultKind::Partition { .. } => 2,
            FaultKind::LinkPartition { .. } => 3,
            FaultKind::PacketLoss { .. } => 4,
            FaultKind::Latency { .. } => 5,
            FaultKind::Pause { .. } => 6,
            FaultKind::ClockSkew { .. } => 7,
            FaultKind::StoreFailure { .. } => 8,
        };
        &FAULT_KINDS[row]
    }
}

/// One fault of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Virtual time after the job was submitted.
    pub at: Duration,
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
    pub fn targets(&self) -> Vec<&str> {
        match &self.kind {
            FaultKind::Crash { target, .. }
            | FaultKind::OomKill { target, .. }
            | FaultKind::Partition { target, .. }
            | FaultKind::Pause { target, .. }
            | FaultKind::ClockSkew { target, .. } => vec![target.as_str()],
            FaultKind::LinkPartition { from, to, .. } => vec![from.as_str(), to.as_str()],
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
