//! The real run's fault timeline: what is due is applied to the processes (or recorded as not
//! applicable for real, with why), anchored faults wait for their event in the processes'
//! events files, and at the end the run's history is put together as the simulator's is.

use std::collections::BTreeMap;
use std::time::Duration;

use rill::jobs::JobRegistry;
use rill::rpc::JobStatusReport;
use tokio::time::Instant;

use super::store::StoreControl;
use super::{Cluster, JobResult, RealError};
use crate::collected;
use crate::events::RecordedEvent;
use crate::fault::{Fault, FaultKind, OOM_RESTART};
use crate::history::{AppliedFault, RunHistory};
use crate::node::NodeName;
use crate::scenario::Scenario;
use crate::timeline::{job_end, Step, Timeline};

pub(super) struct Driver {
    cluster: Cluster,
    /// The checkpoint store's health-control file, if the run has its store.
    store: Option<StoreControl>,
    faults: Vec<AppliedFault>,
    timeline: Timeline,
    events: Vec<RecordedEvent>,
    start_ns: u64,
    /// Active faults holding each process down or paused (faults may overlap).
    down: BTreeMap<NodeName, u32>,
    paused: BTreeMap<NodeName, u32>,
    /// The partitions in force, as the network's rules are computed from them.
    partitions: Vec<FaultKind>,
    /// OOM kills whose TaskManager's cgroup was pressed, waiting for the kernel's kill.
    awaiting_kernel: Vec<AwaitingKernel>,
}

/// A planned OOM kill waiting for the kernel: the TaskManager's memory cgroup limit was
/// squeezed to its usage and a presser allocates in it (see `cgroup`).
struct AwaitingKernel {
    /// The fault's index.
    fault: usize,
    target: NodeName,
    squeezed_at: Duration,
    /// The cgroup's count of OOM kills before the squeeze.
    kills_before: u64,
    /// The limit it was squeezed to, in bytes.
    limit: u64,
    /// The allocator pressing on the limit in the same cgroup.
    presser: std::process::Child,
}

/// How long a pressed TaskManager may go on before it is SIGKILLed instead.
const KERNEL_GRACE: Duration = Duration::from_secs(2);

impl Drop for AwaitingKernel {
    fn drop(&mut self) {
        // A presser is never left behind, unreaped or holding its cgroup.
        if !matches!(self.presser.try_wait(), Ok(Some(_))) {
            let _ = self.presser.kill();
            let _ = self.presser.wait();
        }
    }
}

impl Driver {
    pub(super) fn new(
        mut cluster: Cluster,
        faults: Vec<Fault>,
        start_ns: u64,
    ) -> Result<Driver, RealError> {
        let timeline = Timeline::new(&faults);
        let events = std::mem::take(&mut cluster.early);
        let store = cluster.store.as_ref().map(|f| f.control()).transpose()?;
        Ok(Driver {
            cluster,
            store,
            faults: faults.into_iter().map(AppliedFault::planned).collect(),
            timeline,
            events,
            start_ns,
            down: BTreeMap::new(),
            paused: BTreeMap::new(),
            partitions: Vec::new(),
            awaiting_kernel: Vec::new(),
        })
    }

    /// Reads what the processes wrote since the last call and schedules every anchored fault
    /// whose event came.
    pub(super) fn poll_events(&mut self, now: Duration) {
        let mut fresh = Vec::new();
        for tail in &mut self.cluster.tails {
            fresh.extend(tail.poll(self.start_ns));
        }
        fresh.sort_by_key(|e| e.at);
        for e in &fresh {
            self.timeline.on_event(&self.faults, e, now);
        }
        self.events.extend(fresh);
    }

    /// Records a process that died on its own (the memory limit's kill, exit 137, as an OOM
    /// kill; anything else as a crash) and restarts it after [`OOM_RESTART`], as a supervisor
    /// restarts a pod.
    pub(super) fn reap(&mut self, now: Duration) {
        self.settle_oom_kills(now);
        let mut died = Vec::new();
        for (name, process) in &mut self.cluster.processes {
            if self.down.contains_key(name) {
                continue;
            }
            if let Some(status) = process.exited() {
                died.push((name.clone(), status));
            }
        }
        for (target, status) in died {
            let restart_after = Some(OOM_RESTART);
            let (kind, how) = match status.code() {
                Some(rill::taskmanager::memory_limit::OOM_EXIT_STATUS) => {
                    let kind = FaultKind::OomKill {
                        target: target.clone(),
                        restart_after,
                    };
                    (kind, Some(OWN_LIMIT.to_string()))
                }
                _ => {
                    tracing::warn!(target: "rill_sim::real", "{target} exited on its own: {status}");
                    let kind = FaultKind::Crash {
                        target: target.clone(),
                        restart_after,
                    };
                    (kind, None)
                }
            };
            let mut fault = AppliedFault::planned(Fault::new(now, kind));
            fault.applied_as = how;
            fault.began_at = Some(now);
            fault.effective = true;
            self.faults.push(fault);
            *self.down.entry(target).or_default() += 1;
            self.timeline
                .schedule(now + OOM_RESTART, Step::End(self.faults.len() - 1));
        }
    }

    pub(super) fn apply_due(&mut self, now: Duration) {
        while let Some(step) = self.timeline.pop_due(now) {
            match step {
                Step::Begin(i) => self.begin(i, now),
                Step::End(i) => self.end(i, now),
            }
        }
    }

    fn begin(&mut self, i: usize, now: Duration) {
        let fault = self.faults[i].fault.clone();
        match self.apply(i, &fault, now) {
            Ok(()) => {
                self.faults[i].effective = true;
                // An OOM kill left to the kernel is dated once the kernel has killed.
                if !self.awaiting_kernel.iter().any(|a| a.fault == i) {
                    self.started(i, now);
                }
            }
            Err(why) => self.faults[i].not_applied = Some(format!("not applied: {why}")),
        }
    }

    /// Fault `i` began at `now`: its end is due after its duration.
    fn started(&mut self, i: usize, now: Duration) {
        self.faults[i].began_at = Some(now);
        if let Some(d) = self.faults[i].fault.duration() {
            self.timeline.schedule(now + d, Step::End(i));
        }
    }

    /// An OOM kill: by the kernel's OOM killer, its TaskManager's memory cgroup pressed (the
    /// kill is awaited in [`Self::settle_oom_kills`]); SIGKILL where it has no cgroup, saying
    /// why.
    fn oom_kill(&mut self, i: usize, target: &NodeName, now: Duration) -> Result<(), String> {
        match self.process(target)?.pid() {
            None => self.faults[i].applied_as = Some("on a process that was already down".into()),
            Some(pid) => {
                let pressed = match &self.cluster.cgroups {
                    Ok(c) => {
                        let kills_before = c.oom_kills(target);
                        c.press(target, pid)
                            .map(|(limit, p)| (kills_before, limit, p))
                    }
                    Err(why) => Err(why.clone()),
                };
                match pressed {
                    Ok((kills_before, limit, presser)) => {
                        self.awaiting_kernel.push(AwaitingKernel {
                            fault: i,
                            target: target.clone(),
                            squeezed_at: now,
                            kills_before,
                            limit,
                            presser,
                        })
                    }
                    Err(why) => {
                        self.process(target)?.kill();
                        self.faults[i].applied_as = Some(format!("by SIGKILL ({why})"));
                    }
                }
            }
        }
        *self.down.entry(target.clone()).or_default() += 1;
        Ok(())
    }

    /// Settles the OOM kills left to the kernel: each whose process died is dated from its
    /// squeeze, restarts after its delay from now, and says whether the kernel's OOM killer
    /// killed it; one the kernel has not killed within
    /// [`KERNEL_GRACE`] is SIGKILLed, saying so.
    fn settle_oom_kills(&mut self, now: Duration) {
        let mut i = 0;
        while i < self.awaiting_kernel.len() {
            let a = &self.awaiting_kernel[i];
            let Some(process) = self.cluster.processes.get_mut(&a.target) else {
                i += 1;
                continue;
            };
            let after = now.saturating_sub(a.squeezed_at);
            // When it died, as far as this tick can tell: the squeeze for the kernel's kill
            // (which comes after it, and the JobManager can see the connection close before
            // this tick does); now for a kill of ours.
            let (how, died) = match process.exited() {
                Some(status) => {
                    let kills = self
                        .cluster
                        .cgroups
                        .as_ref()
                        .map_or(0, |c| c.oom_kills(&a.target));
                    let how = match kills > a.kills_before {
                        true => format!(
                            "by the kernel's OOM killer, {} ms after its memory cgroup's limit was squeezed to its usage ({} KiB) and pressed",
                            after.as_millis(),
                            a.limit / 1024
                        ),
                        false => format!("by its own death ({status}) after its memory cgroup was pressed, not by the OOM killer"),
                    };
                    (how, a.squeezed_at)
                }
                // Another fault (a crash of the same node) killed it first.
                None if !process.is_up() => (
                    "by another fault's kill, before the kernel's OOM killer".to_string(),
                    a.squeezed_at,
                ),
                None if after > KERNEL_GRACE => {
                    process.kill();
                    let how = format!("by SIGKILL: the kernel had not OOM-killed it {} s after its memory cgroup was pressed", KERNEL_GRACE.as_secs());
                    (how, now)
                }
                None => {
                    i += 1;
                    continue;
                }
            };
            let a = self.awaiting_kernel.remove(i);
            self.release_press(&a);
            self.faults[a.fault].applied_as = Some(how);
            self.faults[a.fault].began_at = Some(died);
            if let Some(d) = self.faults[a.fault].fault.duration() {
                // Its supervisor restarts it that long after it died.
                self.timeline.schedule(now + d, Step::End(a.fault));
            }
        }
    }

    /// Lifts a press: the limit goes, and the presser, which then gets its memory, ends (it is
    /// killed and reaped when `a` drops).
    fn release_press(&self, a: &AwaitingKernel) {
        if let Ok(cgroups) = &self.cluster.cgroups {
            if let Err(e) = cgroups.relax(&a.target) {
                tracing::warn!(target: "rill_sim::real", "{}'s memory limit: {e}", a.target);
            }
        }
    }

    /// The OOM kills the kernel had not made when the run ended: not applied (their
    /// TaskManagers ran on to the end), their presses lifted.
    fn abandon_oom_kills(&mut self, end: Duration) {
        for a in std::mem::take(&mut self.awaiting_kernel) {
            self.release_press(&a);
            let f = &mut self.faults[a.fault];
            f.effective = false;
            f.not_applied = Some(format!(
                "not applied: the run ended {} ms after its memory cgroup was pressed, before the kernel's OOM killer killed it",
                end.saturating_sub(a.squeezed_at).as_millis()
            ));
        }
    }

    /// Applies `fault` by real means, or says why it cannot be applied on this runner.
    fn apply(&mut self, i: usize, fault: &Fault, now: Duration) -> Result<(), String> {
        match &fault.kind {
            FaultKind::OomKill { target, .. } => self.oom_kill(i, target, now),
            FaultKind::Crash { target, .. } => {
                let process = self.process(target)?;
                process.kill();
                *self.down.entry(target.clone()).or_default() += 1;
                Ok(())
            }
            FaultKind::Pause { target, .. } => {
                // A pause of a process that is down holds it paused when it comes back, as
                // the simulator composes the two.
                let down = self.down.contains_key(target);
                let process = self.process(target)?;
                if !down && !process.pause() {
                    return Err(format!("{target} is not running"));
                }
                *self.paused.entry(target.clone()).or_default() += 1;
                Ok(())
            }
            FaultKind::StoreFailure { mode, .. } => match &mut self.store {
                Some(store) => store.set(*mode, true),
                None => Err("the scenario keeps its checkpoints in a state.checkpoints.dir of its own, not in the run's store".into()),
            },
            FaultKind::Partition { target, .. } => self.cut(&fault.kind, target, target),
            FaultKind::LinkPartition { from, to, .. } => self.cut(&fault.kind, from, to),
            FaultKind::PacketLoss { .. } => self.add_rules(&fault.kind),
            FaultKind::Latency { .. } => {
                Err("latency needs netem, which this machine's kernel does not provide".into())
            }
            FaultKind::ClockSkew { target, offset_ms } => {
                if target.taskmanager().is_none() {
                    return Err("only TaskManagers read processing time".into());
                }
                self.process(target)?;
                self.cluster.set_clock(target, *offset_ms)
            }
        }
    }

    /// Adds a partition to the active ones and installs the rules for all of them.
    fn cut(&mut self, kind: &FaultKind, from: &NodeName, to: &NodeName) -> Result<(), String> {
        let net = self.cluster.network.as_ref().map_err(Clone::clone)?;
        let cuttable = match from == to {
            true => net.address(from).is_some(),
            false => net.can_cut(from, to),
        };
        if !cuttable {
            return Err(format!(
                "no cut between {from} and {to} can be made (the external systems share the harness's network namespace)"
            ));
        }
        self.add_rules(kind)
    }

    /// Adds a fault the network's rules express to the active ones and installs them all; if
    /// they cannot be installed, the fault is taken out again (it is then not applied).
    fn add_rules(&mut self, kind: &FaultKind) -> Result<(), String> {
        let net = self.cluster.network.as_ref().map_err(Clone::clone)?;
        self.partitions.push(kind.clone());
        let active: Vec<&FaultKind> = self.partitions.iter().collect();
        let applied = net.apply(&active);
        if applied.is_err() {
            self.partitions.pop();
            let active: Vec<&FaultKind> = self.partitions.iter().collect();
            let _ = net.apply(&active);
        }
        applied
    }

    /// Takes a healed partition away and installs the rules for those still active.
    fn heal(&mut self, kind: &FaultKind) {
        if let Some(i) = self.partitions.iter().position(|k| k == kind) {
            self.partitions.remove(i);
        }
        if let Ok(net) = &self.cluster.network {
            let active: Vec<&FaultKind> = self.partitions.iter().collect();
            if let Err(e) = net.apply(&active) {
                tracing::warn!(target: "rill_sim::real", "partition did not heal: {e}");
            }
        }
    }

    /// The process of a node (every node is one; the source log only when the job reads logs).
    fn process(&mut self, target: &NodeName) -> Result<&mut super::NodeProcess, String> {
        self.cluster
            .processes
            .get_mut(target)
            .ok_or_else(|| format!("{target} has no process on this run (the job does not use it)"))
    }

    fn end(&mut self, i: usize, now: Duration) {
        self.faults[i].ended_at = Some(now);
        let fault = self.faults[i].fault.clone();
        match &fault.kind {
            FaultKind::Crash { target, .. } | FaultKind::OomKill { target, .. }
                if release(&mut self.down, target) =>
            {
                let paused = self.paused.contains_key(target);
                // A restart runs with its memory unsqueezed.
                if let Ok(cgroups) = &self.cluster.cgroups {
                    if let Err(e) = cgroups.relax(target) {
                        tracing::warn!(target: "rill_sim::real", "{target}'s memory limit: {e}");
                    }
                }
                if let Some(p) = self.cluster.processes.get_mut(target) {
                    if let Err(e) = p.start() {
                        tracing::warn!(target: "rill_sim::real", "{target} did not restart: {e}");
                    } else if paused {
                        // A pause still in force holds the fresh process too.
                        p.pause();
                    }
                }
            }
            FaultKind::Pause { target, .. } if release(&mut self.paused, target) => {
                if let Some(p) = self.cluster.processes.get_mut(target) {
                    p.resume();
                }
            }
            FaultKind::StoreFailure { mode, .. } => {
                let healed = self.store.as_mut().map(|s| s.set(*mode, false));
                if let Some(Err(e)) = healed {
                    tracing::warn!(target: "rill_sim::real", "store failure not ended: {e}");
                }
            }
            FaultKind::Partition { .. }
            | FaultKind::LinkPartition { .. }
            | FaultKind::PacketLoss { .. } => self.heal(&fault.kind),
            _ => {}
        }
    }

    /// Stops every process, reads the rest of their events and puts the history together.
    pub(super) fn finish(
        mut self,
        s: &Scenario,
        start: Instant,
        end: Duration,
        result: Option<JobResult>,
        statuses: &[(Duration, JobStatusReport)],
        jobs: &JobRegistry,
    ) -> RunHistory {
        // A process that died just before the end (the kill that failed the job) is a fault
        // of the run too.
        self.reap(end);
        self.abandon_oom_kills(end);
        // What the processes said up to the end; what they say while being torn down (a
        // TaskManager losing the killed JobManager) is not the run's.
        self.poll_events(end);
        for process in self.cluster.processes.values_mut() {
            process.kill();
        }
        for tail in &self.cluster.tails {
            if let Some(why) = tail.damaged() {
                tracing::warn!(target: "rill_sim::real", "events file damaged: {why}");
            }
        }
        self.timeline
            .explain_never_begun(&mut self.faults, end, &self.events);
        let (job_status, job_message) = job_end(s.run_for, result);
        let checks = jobs
            .output_checks(&s.job)
            .unwrap_or(rill::api::OutputChecks::OPAQUE);
        // Everything stopped: the sink store's journal holds all it applied.
        let collect = self.cluster.sink.collected(start, self.start_ns);
        let (outputs, payloads) = collected::outputs(&collect, start, checks, false);
        let mut events = self.events;
        events.sort_by_key(|e| e.at);
        RunHistory {
            scenario: s.name.clone(),
            seed: 0,
            end,
            outputs,
            payloads,
            commits: collected::commits(&collect, start),
            stored_checkpoints: self
                .cluster
                .store
                .as_ref()
                .map(|files| files.stored(self.start_ns)),
            faults: self.faults,
            events,
            trace: Vec::new(),
            job_status,
            job_message,
            placements: collected::placements(statuses),
            memory: self.cluster.memory_samples(self.start_ns),
            memory_limit: s.cluster.memory_mb.map(|mb| mb * 1024 * 1024),
            taskmanagers: s.cluster.taskmanagers,
            buggify: Vec::new(),
            buggified: Vec::new(),
        }
    }
}

/// How a TaskManager that exits with the OOM killer's status by itself was killed.
const OWN_LIMIT: &str = "by the TaskManager's own memory limit (its accounted memory passed taskmanager.memory.process.size)";

/// Takes one holder away; true when none is left (the process may start or run again).
fn release(map: &mut BTreeMap<NodeName, u32>, node: &NodeName) -> bool {
    match map.get_mut(node) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            map.remove(node);
            true
        }
        None => false,
    }
}
