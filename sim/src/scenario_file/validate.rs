//! Checks a [`Scenario`] is runnable, whether it came from a file or a generator: ranges,
//! node names, fault parameters, the job (through `rill::api::build_job`) and that the cluster
//! has the slots the job needs.

use std::time::Duration;

use crate::fault::Anchor;
use crate::{ClusterShape, Expectations, Fault, FaultKind, NodeName, Scenario, Swarm};
use rill::api::JobError;
use rill::buggify::Point;
use rill::config::keys::{
    CHECKPOINTS_DIR, CHECKPOINT_INTERVAL, MEMORY_PROCESS_SIZE, SLOTS_PER_TASKMANAGER,
};
use rill::config::Configuration;
use rill::graph::default_slot_sharing_groups;
use rill::jobs::JobRegistry;
use rill::state::CheckpointStorage;

use super::error::ScenarioError;
use crate::fault::{fault_kind, fault_kind_names};
use crate::scenario::{harness_job, HARNESS_PARAMS};

type Result<T> = std::result::Result<T, ScenarioError>;

/// Largest TaskManager count: the simulated network addresses `tm-N` as 10.0.1.N.
pub const MAX_TASKMANAGERS: u32 = 250;

/// Largest `memory_mb` (its bytes must fit in a u64).
pub const MAX_MEMORY_MB: u64 = (1 << 44) - 1;

/// The longest duration a scenario may state (run time, fault time or length).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The most faults a swarm may draw per seed.
pub const MAX_SWARM_FAULTS: u32 = 100;

use crate::EXTERNAL_NODES;

/// Every node a fault may name in a cluster of `taskmanagers`: `jm`, `tm-1..N`, then the
/// external systems' nodes in the order of [`EXTERNAL_NODES`].
pub fn known_nodes(taskmanagers: u32) -> Vec<NodeName> {
    let tms = (1..=taskmanagers).map(NodeName::TaskManager);
    std::iter::once(NodeName::JobManager)
        .chain(tms)
        .chain(EXTERNAL_NODES.iter().map(|n| NodeName::from(*n)))
        .collect()
}

/// Configuration keys that [cluster] owns, with the [cluster] key that sets them.
const CLUSTER_OWNED: [(&str, &str); 2] = [
    (SLOTS_PER_TASKMANAGER, "slots_per_taskmanager"),
    (MEMORY_PROCESS_SIZE, "memory_mb"),
];

/// A file's [config] must not set what [cluster] owns.
pub(crate) fn config_leaves_cluster_keys(file: &str, config: &Configuration) -> Result<()> {
    let jobs = JobRegistry::new(); // no job is looked at here
    Check { file, jobs: &jobs }.unset(config, &CLUSTER_OWNED)
}

/// Mirrors `memory_mb` into the configuration as `taskmanager.memory.process.size`, as every
/// scenario with a memory limit must (TaskManagers and the runner's OOM model read it there).
/// `memory_mb` must be within 1..=[`MAX_MEMORY_MB`] (validated values are).
pub fn apply_memory(config: &mut Configuration, memory_mb: Option<u64>) {
    if let Some(mb) = memory_mb {
        config
            .set(MEMORY_PROCESS_SIZE, &format!("{mb}m"))
            .expect("memory_mb within range");
    }
}

/// Validates a scenario of a built-in job; errors name the scenario in place of a file.
pub fn validate(scenario: &Scenario) -> Result<()> {
    validate_with(scenario, &rill::jobs::builtin())
}

/// Validates a scenario whose job is one of `jobs`.
pub fn validate_with(scenario: &Scenario, jobs: &JobRegistry) -> Result<()> {
    validate_in(&scenario.name, scenario, jobs)
}

pub(crate) fn validate_in(file: &str, s: &Scenario, jobs: &JobRegistry) -> Result<()> {
    let v = Check { file, jobs };
    v.name(&s.name)?;
    v.positive("run_for", Some(s.run_for))?;
    v.cluster(&s.cluster)?;
    v.config(s)?;
    v.job(s)?;
    for (i, fault) in s.faults.iter().enumerate() {
        v.fault(i, fault, s)?;
    }
    if let Some(swarm) = &s.swarm {
        v.swarm(swarm, s.run_for)?;
        v.points("swarm.buggify", &swarm.buggify)?;
    }
    v.points("buggify", &s.buggify)?;
    v.expect(&s.expect)
}

struct Check<'a> {
    file: &'a str,
    /// The jobs a scenario may name.
    jobs: &'a JobRegistry,
}

impl Check<'_> {
    fn invalid(&self, path: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_string(),
            path: path.into(),
            reason: reason.into(),
        }
    }

    fn ensure(
        &self,
        ok: bool,
        path: impl Into<String>,
        reason: impl FnOnce() -> String,
    ) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(self.invalid(path, reason()))
        }
    }

    /// A duration that must be above zero and at most a day of virtual time (longer runs are
    /// not what the simulator is for, and sums of such durations must not overflow).
    fn positive(&self, path: &str, d: Option<Duration>) -> Result<()> {
        self.ensure(d != Some(Duration::ZERO), path, || {
            "must be greater than 0".into()
        })?;
        self.ensure(d.is_none_or(|d| d <= MAX_DURATION), path, || {
            format!("must be at most {}", fmt(MAX_DURATION))
        })
    }

    fn name(&self, name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        self.ensure(ok, "name", || {
            format!("'{name}' must be non-empty and use only letters, digits, '-', '_', '.'")
        })
    }

    fn cluster(&self, c: &ClusterShape) -> Result<()> {
        self.ensure(
            (1..=MAX_TASKMANAGERS).contains(&c.taskmanagers),
            "cluster.taskmanagers",
            || format!("{} is not within 1..={MAX_TASKMANAGERS}", c.taskmanagers),
        )?;
        self.ensure(
            c.slots_per_taskmanager >= 1,
            "cluster.slots_per_taskmanager",
            || "must be at least 1".into(),
        )?;
        let mem_ok = c.memory_mb.is_none_or(|m| (1..=MAX_MEMORY_MB).contains(&m));
        self.ensure(mem_ok, "cluster.memory_mb", || {
            format!(
                "{} is not within 1..={MAX_MEMORY_MB}",
                c.memory_mb.unwrap_or_default()
            )
        })
    }

    fn unset(&self, config: &Configuration, keys: &[(&str, &str)]) -> Result<()> {
        for (key, owner) in keys {
            self.ensure(
                config.get_raw(key).is_none(),
                format!("config.\"{key}\""),
                || format!("set by [cluster] {owner}, not in [config]"),
            )?;
        }
        Ok(())
    }

    /// Slots come from [cluster] alone; the memory limit from `memory_mb`, mirrored into the
    /// configuration (where TaskManagers and the runner's OOM model read it).
    fn config(&self, s: &Scenario) -> Result<()> {
        self.unset(&s.config, &CLUSTER_OWNED[..1])?;
        self.checkpoint_storage(&s.config)?;
        let Some(mb) = s.cluster.memory_mb else {
            return self.unset(&s.config, &CLUSTER_OWNED[1..]);
        };
        let bytes = s.config.memory_process_size();
        self.ensure(bytes == mb << 20, "cluster.memory_mb", || {
            format!("{mb} MiB, but the configuration's {MEMORY_PROCESS_SIZE} is {bytes} bytes (use apply_memory)")
        })
    }

    /// Checkpoints go to the `checkpoint-store` node by default; a scenario may keep them in
    /// the JobManager or name a store address, but never a directory (no files in simulation).
    fn checkpoint_storage(&self, config: &Configuration) -> Result<()> {
        let Some(dir) = config.get_raw(CHECKPOINTS_DIR) else {
            return Ok(());
        };
        let path = format!("config.\"{CHECKPOINTS_DIR}\"");
        match dir.parse::<CheckpointStorage>() {
            Err(reason) => Err(self.invalid(path, reason)),
            Ok(CheckpointStorage::Filesystem(_)) => Err(self.invalid(
                path,
                "a directory needs real file I/O; use jobmanager or the checkpoint-store node \
                 (the default)",
            )),
            Ok(_) => Ok(()),
        }
    }

    fn job(&self, s: &Scenario) -> Result<()> {
        self.ensure(!s.job.params.contains_key("log"), "job.log", || {
            "the harness points the sources at the source-log node; leave log unset".into()
        })?;
        self.ensure(
            !s.job.params.contains_key("sink-store"),
            "job.sink-store",
            || "the harness points the sinks at the sink-store node; leave sink-store unset".into(),
        )?;
        // What the harness will submit, so a job that cannot run under it is refused here,
        // when the scenario is loaded, not when it runs.
        let spec = harness_job(
            self.jobs,
            &s.job,
            "rill://sink-store:6132",
            "rill://source-log:6131",
        );
        // With the cluster's own file access: a path the nodes would refuse is refused here.
        let files = s.config.file_access();
        let built = self.jobs.build(&spec, s.config.max_parallelism(), &files);
        let graph = built.map_err(|error| match error {
            JobError::UnknownJob { name, .. } => ScenarioError::UnknownJob {
                file: self.file.to_string(),
                name,
                known: self.jobs.names(),
            },
            JobError::UnknownParam { param, .. } if HARNESS_PARAMS.contains(&param.as_str()) => {
                self.invalid(
                    "job.name",
                    format!(
                        "job '{}' does not take the '{param}' parameter the harness sets to run it on its source-log and sink-store nodes: build its source and sink on rill::jobs::io (log_source, add_sink)",
                        s.job.name
                    ),
                )
            }
            error => ScenarioError::InvalidJob {
                file: self.file.to_string(),
                error,
            },
        })?;
        let needed = default_slot_sharing_groups(&graph).len() as u64;
        let (tms, slots) = (s.cluster.taskmanagers, s.cluster.slots_per_taskmanager);
        let offered = u64::from(tms) * u64::from(slots);
        self.ensure(needed <= offered, "job.parallelism", || {
            format!("the job needs {needed} slots but the cluster offers {offered} ({tms} taskmanagers x {slots} slots)")
        })
    }

    fn fault(&self, i: usize, f: &Fault, s: &Scenario) -> Result<()> {
        let path = |key: &str| format!("faults[{i}].{key}");
        // An anchored fault's `at` is its anchor's `from`.
        let at = path(if f.anchor.is_some() { "at.from" } else { "at" });
        self.positive(&at, Some(f.at).filter(|at| !at.is_zero()))?;
        self.ensure(f.at < s.run_for, at, || {
            format!("{} is not before run_for ({})", fmt(f.at), fmt(s.run_for))
        })?;
        if let Some(anchor) = &f.anchor {
            self.anchor(i, anchor, s)?;
        }
        let known = known_nodes(s.cluster.taskmanagers);
        if let Some(node) = f.targets().into_iter().find(|t| !known.contains(t)) {
            return Err(ScenarioError::UnknownNode {
                file: self.file.to_string(),
                fault: i,
                node: node.to_string(),
                known: known.iter().map(NodeName::to_string).collect(),
            });
        }
        self.positive(&path(duration_key(&f.kind)), f.duration())?;
        match &f.kind {
            FaultKind::LinkPartition { from, to, .. } => {
                self.ensure(from != to, path("to"), || {
                    format!("a link needs two different nodes, both are '{to}'")
                })
            }
            FaultKind::PacketLoss { rate, .. } => {
                self.ensure(*rate > 0.0 && *rate <= 1.0, path("rate"), || {
                    format!("{rate} is not within (0, 1]")
                })
            }
            FaultKind::Latency { min, max, .. } => self.ensure(max >= min, path("max"), || {
                format!("max ({}) is below min ({})", fmt(*max), fmt(*min))
            }),
            _ => Ok(()),
        }
    }

    /// An anchor names a checkpoint only for checkpoint events, counting from 1; waits for
    /// checkpoints only in a scenario that takes them; and offsets by at most a day.
    fn anchor(&self, i: usize, a: &Anchor, s: &Scenario) -> Result<()> {
        let path = |key: &str| format!("faults[{i}].at.{key}");
        let name = a.event.name();
        self.ensure(
            a.checkpoint.is_none() || a.event.is_checkpoint(),
            path("checkpoint"),
            || format!("only checkpoint anchors name a checkpoint; '{name}' waits for the first such event at or after `from`"),
        )?;
        self.ensure(a.checkpoint != Some(0), path("checkpoint"), || {
            "0: checkpoints are numbered from 1 (chk-1 is the job's first)".into()
        })?;
        self.ensure(
            !a.event.is_checkpoint() || s.config.checkpoint_interval().is_some(),
            path("after"),
            || format!("'{name}' waits for a checkpoint, but the scenario takes none ({CHECKPOINT_INTERVAL} is not set)"),
        )?;
        self.ensure(a.offset <= MAX_DURATION, path("offset"), || {
            format!("must be at most {}", fmt(MAX_DURATION))
        })
    }

    fn swarm(&self, w: &Swarm, run_for: Duration) -> Result<()> {
        self.ensure(!w.kinds.is_empty(), "swarm.kinds", || {
            "must name at least one fault kind".into()
        })?;
        for (i, kind) in w.kinds.iter().enumerate() {
            let spec = fault_kind(kind);
            self.ensure(spec.is_some(), "swarm.kinds", || {
                format!(
                    "unknown fault kind '{kind}'; expected one of: {}",
                    fault_kind_names(|_| true)
                )
            })?;
            self.ensure(spec.is_some_and(|k| k.swarm), "swarm.kinds", || {
                format!(
                    "a swarm cannot draw '{kind}' yet; it can draw: {}",
                    fault_kind_names(|k| k.swarm)
                )
            })?;
            self.ensure(!w.kinds[..i].contains(kind), "swarm.kinds", || {
                format!("'{kind}' is listed twice")
            })?;
        }
        let (min, max) = (w.min_faults, w.max_faults);
        self.ensure(max >= 1, "swarm.max_faults", || "must be at least 1".into())?;
        self.ensure(max <= MAX_SWARM_FAULTS, "swarm.max_faults", || {
            format!("must be at most {MAX_SWARM_FAULTS}")
        })?;
        self.ensure(min <= max, "swarm.min_faults", || {
            format!("{min} is above max_faults ({max})")
        })?;
        self.ensure(w.from < w.until, "swarm.until", || {
            format!("{} is not after from ({})", fmt(w.until), fmt(w.from))
        })?;
        self.ensure(w.until <= run_for, "swarm.until", || {
            format!("{} is past run_for ({})", fmt(w.until), fmt(run_for))
        })?;
        self.ensure(w.anchored_percent <= 100, "swarm.anchored_percent", || {
            format!("{} is not within 0..=100", w.anchored_percent)
        })?;
        self.positive("swarm.max_duration", Some(w.max_duration))
    }

    /// Buggify points are named once each (a file's names were checked when it was read).
    fn points(&self, path: &str, points: &[Point]) -> Result<()> {
        for (i, p) in points.iter().enumerate() {
            self.ensure(!points[..i].contains(p), path, || {
                format!("'{p}' is named twice")
            })?;
        }
        Ok(())
    }

    fn expect(&self, e: &Expectations) -> Result<()> {
        self.positive("expect.max_stall", e.max_stall)?;
        self.positive("expect.max_recovery", e.max_recovery)?;
        self.positive("expect.drain_within", e.drain_within)
    }
}

/// The scenario-file key holding a fault kind's duration.
pub(crate) fn duration_key(kind: &FaultKind) -> &'static str {
    match kind {
        FaultKind::Crash { .. } | FaultKind::OomKill { .. } => "restart_after",
        FaultKind::Partition { .. } | FaultKind::LinkPartition { .. } => "heal_after",
        _ => "duration",
    }
}

fn fmt(d: Duration) -> String {
    super::write::duration_str(d)
}
