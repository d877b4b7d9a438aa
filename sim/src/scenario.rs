//! A scenario: cluster shape, job, configuration, fault plan and expectations. Scenario files
//! (TOML, in `scenarios/`) are parsed into this by `rill-scenarios`.

use std::time::Duration;

use rill::buggify::Point;
use rill::config::Configuration;
use rill::jobs::JobRegistry;
use rill::JobSpec;

use crate::fault::Fault;

/// The checkpoint store's node.
pub const CHECKPOINT_STORE: &str = "checkpoint-store";
/// The node of the log server the job's sources read.
pub const SOURCE_LOG: &str = "source-log";
/// The node of the sink store the job's sinks write to.
pub const SINK_STORE: &str = "sink-store";

/// Nodes of the external systems, besides `jm` and `tm-1..N`.
pub const EXTERNAL_NODES: &[&str] = &[SOURCE_LOG, SINK_STORE, CHECKPOINT_STORE];

/// The simulated cluster a scenario runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterShape {
    /// TaskManagers, `tm-1` to `tm-N`.
    pub taskmanagers: u32,
    /// Slots each TaskManager offers.
    pub slots_per_taskmanager: u32,
    /// `taskmanager.memory.process.size` in MiB; passing it is an OOM kill.
    pub memory_mb: Option<u64>,
}

/// What delivery guarantee the run must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Output equals the fault-free result, record for record: every input record output
    /// once (jobs whose outputs name their input), or the same records as a fault-free
    /// reference run of the same scenario and seed (any job).
    ExactlyOnce,
    /// No duplicates, nothing invented; every missing record attributed to a fault.
    LossyAccounted,
    /// Nothing invented; every missing record and every duplicate attributed to a fault
    /// (`taskmanager` failover with a non-transactional sink: a restarted source replays from
    /// its checkpoint into its restarted consumer, whose sink had already written some of it).
    FaultAccounted,
    /// Every input delivered, possibly more than once (a restart without checkpoints replays
    /// its sources); nothing invented.
    AtLeastOnce,
    /// Delivery is not checked.
    Unchecked,
}

impl DeliveryMode {
    /// Each mode's name in scenario files.
    pub const NAMES: &'static [(&'static str, DeliveryMode)] = &[
        ("exactly-once", DeliveryMode::ExactlyOnce),
        ("lossy-accounted", DeliveryMode::LossyAccounted),
        ("fault-accounted", DeliveryMode::FaultAccounted),
        ("at-least-once", DeliveryMode::AtLeastOnce),
        ("unchecked", DeliveryMode::Unchecked),
    ];

    /// The mode's name in scenario files.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(name, _)| name)
    }
}

/// How the job must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// It must end FINISHED.
    Finished,
    /// It must end FAILED (a scenario whose faults the restart strategy cannot ride out).
    Failed,
    /// The client must be told it lost the JobManager (a JobManager crash: rill keeps no job
    /// across one), and the TaskManagers must cancel the job's tasks.
    Lost,
}

/// What a run must show to pass, beyond what every run is checked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectations {
    /// The delivery guarantee the output must meet.
    pub delivery: DeliveryMode,
    /// How the job must end, if the scenario says.
    pub job: Option<JobOutcome>,
    /// Longest interval without any sink output while the job runs.
    pub max_stall: Option<Duration>,
    /// From a fault to all subtasks running again with output back at its pre-fault rate.
    pub max_recovery: Option<Duration>,
    /// Largest allowed difference in task count between TaskManagers.
    pub max_task_range: Option<u32>,
    /// Largest allowed excess of any TaskManager's accounted memory over the mean, in percent,
    /// at any sample while the job runs.
    pub max_memory_skew_percent: Option<u32>,
    /// After the last fault heals, the job must drain its input within this bound.
    pub drain_within: Option<Duration>,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            delivery: DeliveryMode::Unchecked,
            job: None,
            max_stall: None,
            max_recovery: None,
            max_task_range: None,
            max_memory_skew_percent: None,
            drain_within: None,
        }
    }
}

/// Faults drawn from the seed instead of (or besides) a fixed plan: swarm testing.
#[derive(Debug, Clone, PartialEq)]
pub struct Swarm {
    /// Fault kinds to draw from (scenario spelling); each seed enables a random subset.
    pub kinds: Vec<String>,
    /// Fewest faults a seed draws.
    pub min_faults: u32,
    /// Most faults a seed draws.
    pub max_faults: u32,
    /// Faults start within this window of virtual time.
    pub from: Duration,
    /// The end of that window.
    pub until: Duration,
    /// The longest a drawn fault lasts (at least 100ms).
    pub max_duration: Duration,
    /// Percent (0..=100) of drawn faults placed in the checkpoint cycle when the scenario
    /// checkpoints: anchored to the first checkpoint triggered (or acknowledged) at or after
    /// their drawn time, a drawn offset into it, instead of at that time.
    pub anchored_percent: u32,
    /// Buggify points each seed may make live (each with probability 1/2, drawn apart from
    /// the faults: `buggify::draw`).
    pub buggify: Vec<Point>,
}

/// The parameters the harness sets on every scenario's job, to run it on its nodes: its
/// sources read the `source-log` node (`log`), its sink collects into the `sink-store` node
/// (`sink`, `sink-store`), so the checkers can read what it wrote. A job takes them when it is
/// built on `rill::jobs::io` (`SourceParams`, `log_source`, `SinkParams`, `add_sink`).
pub const HARNESS_PARAMS: [&str; 3] = ["log", "sink", "sink-store"];

/// The job spec the harness submits for `job`: its sink collecting (in two phases if the
/// scenario asks for `collect-transactional`) into the sink store at `sink_store`, and, if it
/// reads logs (`rill::jobs::io::log_source`), its sources reading the log server at `log`
/// (both `rill://HOST:PORT`). A job whose sources are its own reads them in place.
pub fn harness_job(jobs: &JobRegistry, job: &JobSpec, sink_store: &str, log: &str) -> JobSpec {
    let transactional = job.params.get("sink").map(String::as_str) == Some("collect-transactional");
    let sink = if transactional {
        "collect-transactional"
    } else {
        "collect"
    };
    let spec = job
        .clone()
        .with("sink", sink)
        .with("sink-store", sink_store);
    // A job that does not build says why when the harness builds the spec it submits.
    let reads_logs = jobs.inputs(job).map_or(true, |inputs| !inputs.is_empty());
    match reads_logs {
        true => spec.with("log", log),
        false => spec,
    }
}

/// One named scenario: a cluster, a job, its configuration, a fault plan and what the run
/// must show.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The scenario's name (its file's stem).
    pub name: String,
    /// One line on what it exercises.
    pub description: String,
    /// The cluster it runs on.
    pub cluster: ClusterShape,
    /// The job it runs (the harness adds its own `log`, `sink` and `sink-store` parameters).
    pub job: JobSpec,
    /// Configuration on top of the defaults, for every node.
    pub config: Configuration,
    /// Virtual time the run may take at most (it ends earlier when a bounded job ends).
    pub run_for: Duration,
    /// The fixed fault plan.
    pub faults: Vec<Fault>,
    /// Faults drawn from the seed, on top of the plan.
    pub swarm: Option<Swarm>,
    /// Buggify points live in every seed (sorted, each once); a swarm may draw more.
    pub buggify: Vec<Point>,
    /// What the run must show.
    pub expect: Expectations,
}

/// The fault plan a seed runs: the scenario's fixed faults plus those the seed draws.
pub fn fault_plan(s: &Scenario, seed: u64) -> Vec<Fault> {
    let mut faults = s.faults.clone();
    if let Some(sw) = &s.swarm {
        let checkpoints = s.config.checkpoint_interval().is_some();
        faults.extend(crate::swarm::draw(sw, &s.cluster, checkpoints, seed));
    }
    faults.sort_by_key(|f| f.at);
    faults
}
