//! What a run recorded: every sink output with its virtual time, the faults as applied, the
//! canonical trace, job status and memory samples. Checkers and reports read only this.

use std::time::Duration;

use rill::api::Origin;
use rill::events::ClusterEvent;
use rill::graph::JobStatus;

use crate::events::RecordedEvent;
use crate::fault::Fault;
use crate::node::NodeName;

/// One record a collecting sink received. A run keeps a million of them, so it is kept small
/// (56 bytes): what a first touch of its memory costs is a large part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// Virtual time since the job was submitted, when the sink store received it: outputs in
    /// time order are in the order they reached the store (a zombie's buffered records land
    /// late, whatever it buffered them at).
    pub at: Duration,
    /// Key and running count of keyed outputs (keyed-count), when known; counts start at 1.
    pub keyed: Option<(u64, std::num::NonZeroU64)>,
    origin_offset: u64,
    /// `NO_ORIGIN` when the output names no input.
    origin_partition: u32,
    /// The sink subtask that wrote it.
    pub sink_subtask: u32,
    /// Attempt of the sink subtask that wrote it.
    pub attempt: u32,
    /// The TaskManager the sink subtask ran on: N of `tm-N` (0 for a name of another form).
    pub taskmanager: u32,
}

impl OutputRecord {
    const NO_ORIGIN: u32 = u32::MAX;

    /// A record received at `at` from attempt `attempt` of sink subtask `sink_subtask` on `tm-N`
    /// (`taskmanager`), with its provenance and, for keyed counts, its key and count.
    pub fn new(
        at: Duration,
        taskmanager: u32,
        sink_subtask: u32,
        attempt: u32,
        origin: Option<Origin>,
        keyed: Option<(u64, std::num::NonZeroU64)>,
    ) -> Self {
        let (origin_partition, origin_offset) =
            origin.map_or((Self::NO_ORIGIN, 0), |o| (o.partition, o.offset));
        OutputRecord {
            at,
            keyed,
            origin_offset,
            origin_partition,
            sink_subtask,
            attempt,
            taskmanager,
        }
    }

    /// The input record it came from, for jobs whose outputs carry provenance.
    pub fn origin(&self) -> Option<Origin> {
        (self.origin_partition != Self::NO_ORIGIN).then_some(Origin {
            partition: self.origin_partition,
            offset: self.origin_offset,
        })
    }

    /// The key of a keyed output.
    pub fn key(&self) -> Option<u64> {
        self.keyed.map(|(k, _)| k)
    }

    /// The running count of a keyed output.
    pub fn value(&self) -> Option<u64> {
        self.keyed.map(|(_, v)| v.get())
    }

    /// The TaskManager's node name, `tm-N`.
    pub fn taskmanager_name(&self) -> String {
        NodeName::TaskManager(self.taskmanager).to_string()
    }
}

/// A fault as the harness applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedFault {
    /// The fault as planned.
    pub fault: Fault,
    /// When it began; `None` if the run ended first.
    pub began_at: Option<Duration>,
    /// Whether it acted on the cluster (a fault on a node that does not exist, or of a kind
    /// the runtime cannot feel yet, is recorded but has no effect).
    pub effective: bool,
    /// When it ended (healed, restarted, resumed), if it did within the run.
    pub ended_at: Option<Duration>,
    /// Why it never began, when it did not: the run ended first, or the cluster event it was
    /// anchored to never came.
    pub not_applied: Option<String>,
    /// How it was applied, where the runner had more than one means (a real run's OOM kill:
    /// by the kernel's OOM killer, or by SIGKILL where no memory cgroup could be used).
    pub applied_as: Option<String>,
}

impl AppliedFault {
    /// A fault of the plan, not yet begun.
    pub fn planned(fault: Fault) -> Self {
        AppliedFault {
            fault,
            began_at: None,
            effective: false,
            ended_at: None,
            not_applied: None,
            applied_as: None,
        }
    }

    /// Began and acted on the cluster.
    pub fn took_effect(&self) -> bool {
        self.began_at.is_some() && self.effective
    }

    /// The interval it was active: from its start to its end, or to `run_end`.
    pub fn window(&self, run_end: Duration) -> Option<(Duration, Duration)> {
        self.began_at.map(|b| (b, self.ended_at.unwrap_or(run_end)))
    }
}

/// One line of the canonical trace: virtual time, node, event text (no ports, no addresses
/// that vary between runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// Virtual time since the job was submitted.
    pub at: Duration,
    /// The node that logged it.
    pub node: String,
    /// The log line, with what varies between runs (ports, addresses) left out.
    pub text: String,
}

impl std::fmt::Display for TraceLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.at.as_millis();
        write!(
            f,
            "{:>6}.{:03}s {:<7} {}",
            ms / 1000,
            ms % 1000,
            self.node,
            self.text
        )
    }
}

/// A TaskManager's accounted memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySample {
    /// Virtual time since the job was submitted.
    pub at: Duration,
    /// Index of the TaskManager (1-based, as in `tm-N`).
    pub taskmanager: u32,
    /// Its accounted memory, in bytes.
    pub bytes: u64,
    /// Of which the deployed tasks' fixed overhead (`taskmanager.memory.task-overhead` each).
    pub task_bytes: u64,
}

/// Tasks per TaskManager at one moment (after scheduling, after each failover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Virtual time since the job was submitted.
    pub at: Duration,
    /// (TaskManager name, task count), sorted by name.
    pub tasks: Vec<(String, u32)>,
}

/// Everything one run of a scenario with one seed recorded: what checkers, reports, shrinking
/// and snapshots read, never the cluster itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunHistory {
    /// The scenario's name.
    pub scenario: String,
    /// The seed it ran with.
    pub seed: u64,
    /// Virtual time the run ended, since submission.
    pub end: Duration,
    /// Every record the sinks received, in time order (checkers rely on the order).
    pub outputs: Vec<OutputRecord>,
    /// Every transaction the sink store made visible, in order (transactional sinks only).
    pub commits: Vec<CommitRecord>,
    /// Every checkpoint write the harness's checkpoint store accepted, read back, in order;
    /// `None` when the job's checkpoints went elsewhere (`state.checkpoints.dir`), so the
    /// harness could not see them.
    pub stored_checkpoints: Option<Vec<crate::store::StoredCheckpoint>>,
    /// The records' encodings, index for index with `outputs`: kept only when a checker
    /// compares them (exactly-once against a reference run), empty otherwise.
    pub payloads: Vec<bytes::Bytes>,
    /// The plan's faults, as applied.
    pub faults: Vec<AppliedFault>,
    /// The cluster's typed events, in the order they were emitted: what checkers read.
    pub events: Vec<RecordedEvent>,
    /// The runtime's log lines (for people: `--trace`, the report, determinism checks).
    /// Nothing judges the run from their text.
    pub trace: Vec<TraceLine>,
    /// How the job ended, and why.
    pub job_status: RunEnd,
    /// Why it ended so: the job's failure, the rejection, or how long it ran before it was cut off.
    pub job_message: Option<String>,
    /// Tasks per TaskManager after scheduling and after each failover.
    pub placements: Vec<Placement>,
    /// Every TaskManager's accounted memory, sampled through the run.
    pub memory: Vec<MemorySample>,
    /// `taskmanager.memory.process.size`, in bytes, when the scenario sets one.
    pub memory_limit: Option<u64>,
    /// The cluster's TaskManager count.
    pub taskmanagers: u32,
    /// The buggify points live in the run, sorted.
    pub buggify: Vec<rill::buggify::Point>,
    /// Every firing of a live point, in order: which point, where, when, for how long.
    pub buggified: Vec<crate::buggify::Buggified>,
}

impl RunHistory {
    /// The job's status whenever the JobManager changed it, from its events.
    pub fn status_changes(&self) -> impl Iterator<Item = (Duration, JobStatus)> + '_ {
        self.events.iter().filter_map(|e| match e.event {
            ClusterEvent::JobStatusChanged { status, .. } => Some((e.at, status)),
            _ => None,
        })
    }

    /// Whether the job ended FINISHED.
    pub fn finished(&self) -> bool {
        self.job_status == RunEnd::Ended(JobStatus::Finished)
    }
}

/// How a run's job ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunEnd {
    /// It reached a terminal status.
    Ended(JobStatus),
    /// Still running when the scenario's `run_for` was up.
    #[default]
    CutOff,
    /// The JobManager refused it.
    Rejected,
    /// The client lost the JobManager.
    Lost,
}

impl std::fmt::Display for RunEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunEnd::Ended(status) => status.fmt(f),
            RunEnd::CutOff => f.pad("RUNNING"),
            RunEnd::Rejected => f.pad("REJECTED"),
            RunEnd::Lost => f.pad("LOST"),
        }
    }
}

/// One transaction the sink store made visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    /// Virtual time since the job was submitted.
    pub at: Duration,
    /// The sink and its subtask.
    pub sink: String,
    /// The sink subtask.
    pub subtask: u32,
    /// The attempt that committed it.
    pub attempt: u32,
    /// The checkpoint it was staged under.
    pub staged: rill::ids::CheckpointId,
    /// The checkpoint whose completion (or restore) committed it.
    pub by: rill::ids::CheckpointId,
    /// How many records it held.
    pub records: usize,
}

/// A checker's result, with the first piece of evidence against the run when it failed.
///
/// A checker that had nothing to hold the run to (no bound given and none derivable, nothing
/// to measure) says so: its verdict is *not checked*, with why, and it does not count as a
/// pass in tables and reports, though it fails no run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The checker's name.
    pub checker: &'static str,
    /// Whether the run passed it (true for a check that was not made).
    pub passed: bool,
    /// Whether the run was held to anything: false for a verdict that only reports.
    pub checked: bool,
    /// One line: what was measured.
    pub summary: String,
    /// The first offending record or interval, with virtual time.
    pub evidence: Option<String>,
}

impl Verdict {
    /// A passed check, with what was measured.
    pub fn pass(checker: &'static str, summary: impl Into<String>) -> Self {
        Verdict {
            checker,
            passed: true,
            checked: true,
            summary: summary.into(),
            evidence: None,
        }
    }

    /// A check that was not made, and why (what was measured, if anything, goes in `why`).
    pub fn not_checked(checker: &'static str, why: impl Into<String>) -> Self {
        Verdict {
            checker,
            passed: true,
            checked: false,
            summary: format!("not checked: {}", why.into()),
            evidence: None,
        }
    }

    /// How a table shows it: `ok`, `FAIL` or `n/a`.
    pub fn label(&self) -> &'static str {
        match (self.passed, self.checked) {
            (false, _) => "FAIL",
            (true, true) => "ok",
            (true, false) => "n/a",
        }
    }

    /// A failed check, with what was measured and the first evidence against the run.
    pub fn fail(
        checker: &'static str,
        summary: impl Into<String>,
        evidence: impl Into<String>,
    ) -> Self {
        Verdict {
            checker,
            passed: false,
            checked: true,
            summary: summary.into(),
            evidence: Some(evidence.into()),
        }
    }
}

/// A run's history and the checkers' verdicts.
pub struct RunOutcome {
    /// What the run recorded.
    pub history: RunHistory,
    /// Every checker's verdict on it.
    pub verdicts: Vec<Verdict>,
}

impl RunOutcome {
    /// Whether every checker passed it.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}
