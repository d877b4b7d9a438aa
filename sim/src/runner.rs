//! Runs a scenario under one seed: starts the simulated cluster, submits the job, applies the
//! fault plan at its virtual times, runs the memory model, then hands the recorded history to
//! the checkers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::{Handle, Runtime};
use rill::api::OutputChecks;
use rill::jobmanager::client::SubmitError;
use rill::jobs::JobRegistry;
use rill::rpc::JobStatusReport;
use tokio::time::Instant;

use crate::apply::FaultState;
use crate::buggify::{self, Buggifier};
use crate::check::bounds::Timing;
use crate::check::Bounds;
use crate::cluster::{sink_store_url, source_log_url, SimCluster, SimClusterSpec};
use crate::collected;
use crate::events::EventRecorder;
use crate::fault::{format_duration, Fault, FaultKind, OOM_RESTART};
use crate::history::{AppliedFault, MemorySample, RunHistory, Verdict};
use crate::judge::Judge;
use crate::node::NodeName;
use crate::scenario::{harness_job, Scenario};
use crate::timeline::{job_end, Step, Timeline};
use crate::trace::TraceCollector;

/// How often the memory model samples every TaskManager.
const MEMORY_SAMPLE: Duration = Duration::from_millis(100);
/// Virtual time between starting the nodes and submitting the job.
const CLUSTER_STARTUP: Duration = Duration::from_millis(200);

pub use crate::history::RunOutcome;
pub use crate::scenario::fault_plan;

/// Runs scenarios against one job registry: what a user's crate builds over its own jobs
/// (`Harness::new(registry)`); the free functions below run the built-in jobs.
#[derive(Clone)]
pub struct Harness {
    jobs: JobRegistry,
    /// Fault-free runs by scenario and seed, for exactly-once against a reference: a shrink
    /// judges one seed many times, and its reference is the same each time.
    references: Arc<Mutex<ReferenceRuns>>,
}

/// The most recent reference runs, by scenario (without its faults) and seed.
type ReferenceRuns = Vec<((String, u64), Arc<RunHistory>)>;
/// How many reference runs a harness keeps.
const REFERENCES_KEPT: usize = 4;

impl Harness {
    /// A harness whose clusters run `jobs`.
    pub fn new(jobs: JobRegistry) -> Self {
        Harness {
            jobs,
            references: Arc::default(),
        }
    }

    /// A harness over the built-in jobs.
    pub fn builtin() -> Self {
        Harness::new(rill::jobs::builtin())
    }

    /// The jobs its clusters run.
    pub fn jobs(&self) -> &JobRegistry {
        &self.jobs
    }

    /// Runs `scenario` under `seed` with its own fault plan.
    pub fn run(&self, scenario: &Scenario, seed: u64) -> RunOutcome {
        self.run_with_faults(scenario, seed, fault_plan(scenario, seed))
    }

    /// Runs `scenario` under `seed` with `faults` in a fresh simulator.
    pub fn run_with_faults(
        &self,
        scenario: &Scenario,
        seed: u64,
        faults: Vec<Fault>,
    ) -> RunOutcome {
        let history = self.record(scenario, seed, faults);
        let verdicts = self.judge(scenario, &history);
        RunOutcome { history, verdicts }
    }

    /// Runs `scenario` under `seed` with `faults` in a fresh simulator and returns its history,
    /// unjudged: `run_with_faults` without the checkers (the benchmark times the two apart).
    pub fn record(&self, scenario: &Scenario, seed: u64, faults: Vec<Fault>) -> RunHistory {
        let keep = self.compares_with_reference(scenario);
        record(&self.jobs, scenario, seed, faults, keep)
    }

    /// The checkers' verdicts on a run of `scenario`: what `run` returns, for a history at
    /// hand. Exactly-once for a job whose outputs do not name their input runs the scenario's
    /// fault-free reference (once per scenario and seed) to compare with.
    pub fn judge(&self, scenario: &Scenario, history: &RunHistory) -> Vec<Verdict> {
        let judge = Judge::new(&self.jobs);
        let reference = judge
            .compares_with_reference(scenario)
            .then(|| self.reference(scenario, history.seed));
        judge.verdicts(scenario, history, reference.as_deref())
    }

    /// The bounds a run of `scenario` in which `faults` took effect is held to: given, or
    /// derived from them.
    pub fn bounds(&self, scenario: &Scenario, faults: &[&Fault]) -> Bounds {
        Judge::new(&self.jobs).bounds(scenario, faults)
    }

    /// Whether judging `scenario` compares outputs with a fault-free reference run.
    fn compares_with_reference(&self, scenario: &Scenario) -> bool {
        Judge::new(&self.jobs).compares_with_reference(scenario)
    }

    /// The fault-free run of `scenario` under `seed`, with its outputs' encodings.
    pub fn reference(&self, scenario: &Scenario, seed: u64) -> Arc<RunHistory> {
        // Everything but the faults decides the reference: a shrink's trials share one.
        let fault_free = Scenario {
            faults: Vec::new(),
            swarm: None,
            buggify: Vec::new(),
            ..scenario.clone()
        };
        let key = (format!("{fault_free:?}"), seed);
        let cached = self
            .lock_references()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r.clone());
        cached.unwrap_or_else(|| {
            let mut run = record(&self.jobs, &fault_free, seed, Vec::new(), true);
            // Only the outputs, faults and end are compared: the rest would only take room.
            (run.trace, run.events) = (Vec::new(), Vec::new());
            let run = Arc::new(run);
            let mut cache = self.lock_references();
            // A few at most: a test over many seeds must not keep every reference's outputs.
            if cache.len() >= REFERENCES_KEPT {
                cache.remove(0);
            }
            cache.push((key, run.clone()));
            run
        })
    }

    fn lock_references(&self) -> std::sync::MutexGuard<'_, ReferenceRuns> {
        self.references.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `scenario` under `seed` with `faults` in a fresh simulator, on the built-in jobs.
pub fn run_with_faults(scenario: &Scenario, seed: u64, faults: Vec<Fault>) -> RunOutcome {
    Harness::builtin().run_with_faults(scenario, seed, faults)
}

/// Runs `scenario` under `seed` with `faults` in a fresh simulator and records its history;
/// `keep_payloads`: with the encodings of its outputs.
fn record(
    jobs: &JobRegistry,
    scenario: &Scenario,
    seed: u64,
    faults: Vec<Fault>,
    keep_payloads: bool,
) -> RunHistory {
    let collector = TraceCollector::new();
    let recorder = EventRecorder::new();
    // No hook at all unless a point is live: such a run is what it was before buggify.
    let live = buggify::live_points(scenario, seed);
    let buggifier = Buggifier::new(&live, seed);
    let _installed = buggifier.install();
    let subscriber = collector.clone();
    let s = scenario.clone();
    // The runtime lives and dies inside the subscriber's scope: madsim's node spans must belong
    // to this run's subscriber, not to whatever was the default when it was built.
    let mut history = tracing::subscriber::with_default(subscriber, || {
        let mut rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
        rt.set_time_limit(scenario.run_for + Duration::from_secs(300));
        let run = Run {
            jobs: jobs.clone(),
            trace: collector.clone(),
            recorder: recorder.clone(),
            buggify: buggifier.clone(),
            keep_payloads,
        };
        rt.block_on(drive(s, faults, run))
    });
    history.seed = seed;
    history.trace = collector.lines();
    history.events = recorder.events();
    history.buggify = live;
    history.buggified = buggifier.firings();
    history
}

/// The checkers' verdicts on a run of `scenario` of a built-in job.
pub fn judge(scenario: &Scenario, history: &RunHistory) -> Vec<Verdict> {
    Harness::builtin().judge(scenario, history)
}

/// Runs `scenario` of a built-in job under `seed` with its own fault plan.
pub fn run(scenario: &Scenario, seed: u64) -> RunOutcome {
    Harness::builtin().run(scenario, seed)
}

/// What one simulated run records into, and the jobs its cluster runs.
struct Run {
    jobs: JobRegistry,
    trace: TraceCollector,
    recorder: EventRecorder,
    /// The buggify hook installed for the run (it learns the nodes and the start here).
    buggify: Buggifier,
    /// Keep the outputs' encodings (for a comparison with a reference run).
    keep_payloads: bool,
}

struct Driver {
    handle: Handle,
    cluster: SimCluster,
    start: Instant,
    faults: Vec<AppliedFault>,
    timeline: Timeline,
    /// Where anchors are looked for.
    recorder: EventRecorder,
    /// How many of the recorder's events the anchors have been matched against.
    seen: usize,
    memory_limit: Option<u64>,
    memory: Vec<MemorySample>,
    state: FaultState,
    /// What the job's output lets the checkers read of each record.
    checks: OutputChecks,
    keep_payloads: bool,
}

/// What the client's task returns: the job's final status, or why it has none.
type JobResult = Result<Result<JobStatusReport, SubmitError>, madsim::task::JoinError>;

async fn drive(s: Scenario, faults: Vec<Fault>, run: Run) -> RunHistory {
    let Run {
        jobs,
        trace,
        recorder,
        buggify,
        keep_payloads,
    } = run;
    let handle = Handle::current();
    let config = s.config.clone();
    let memory_limit = s.cluster.memory_mb.map(|mb| mb * 1024 * 1024);
    // The sources read the job's inputs from the source-log node. A scenario's job was
    // validated when it was loaded, so its inputs are known.
    let inputs = jobs
        .inputs(&s.job)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let cluster = SimCluster::start(SimClusterSpec {
        taskmanagers: s.cluster.taskmanagers,
        slots: s.cluster.slots_per_taskmanager,
        config,
        inputs,
        events: recorder.clone(),
        jobs: jobs.clone(),
    });
    buggify.set_locator(cluster.locator());
    // Jobs are submitted once the cluster is up, as an operator would: every TaskManager has
    // registered by then, so placement sees all of them.
    tokio::time::sleep(CLUSTER_STARTUP).await;
    let start = Instant::now();
    trace.set_start(start);
    recorder.set_start(start);
    buggify.set_start(start);
    let statuses: Arc<Mutex<Vec<(Duration, JobStatusReport)>>> = Arc::default();
    let sink = statuses.clone();
    // The harness checks what sinks received, so sinks always collect: directly, or in two
    // phases if the scenario asks for the transactional sink.
    let spec = harness_job(&jobs, &s.job, &sink_store_url(), &source_log_url());
    let mut job = cluster.submit(&spec, move |r| {
        sink.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((start.elapsed(), r.clone()))
    });
    // Faults at a fixed time go on the timeline now; anchored ones when their event comes.
    let timeline = Timeline::new(&faults);
    let state = FaultState::new(cluster.checkpoint_store.clone(), &cluster.clocks);
    let mut driver = Driver {
        handle,
        cluster,
        start,
        faults: faults.into_iter().map(AppliedFault::planned).collect(),
        timeline,
        recorder: recorder.clone(),
        seen: 0,
        memory_limit,
        memory: Vec::new(),
        state,
        checks: jobs.output_checks(&s.job).unwrap_or(OutputChecks::OPAQUE),
        keep_payloads,
    };
    let mut next_sample = Duration::ZERO;
    // A client that lost the JobManager ends nothing in the cluster: the run goes on for as
    // long as TaskManagers may take to give up on it, so the checkers see what they did.
    let linger = Timing::of(&s.config).detection + Duration::from_secs(1);
    let mut lost: Option<(Duration, JobResult)> = None;
    let result = loop {
        let now = start.elapsed();
        driver.resolve_anchors(now);
        driver.apply_due(now);
        if now >= next_sample {
            driver.sample_memory(now);
            next_sample = now + MEMORY_SAMPLE;
        }
        let until = lost
            .as_ref()
            .map_or(s.run_for, |(at, _)| (*at + linger).min(s.run_for));
        if now >= until {
            break lost.map(|(_, r)| r);
        }
        let wake = driver
            .timeline
            .next_at()
            .unwrap_or(until)
            .min(next_sample)
            .min(until);
        // Only a run with anchors still to come listens for events: one without is scheduled
        // exactly as before anchors existed.
        let listen = driver.timeline.waits_for_anchors();
        tokio::select! {
            biased;
            r = &mut job, if lost.is_none() => match r {
                Ok(Err(SubmitError::Rejected(_))) | Ok(Ok(_)) => break Some(r),
                r => lost = Some((now, r)),
            },
            _ = tokio::time::sleep_until(start + wake) => {}
            _ = recorder.anchor_event(), if listen => {}
        }
    };
    let (handle, nodes): (Handle, Vec<_>) = (
        driver.handle.clone(),
        driver.cluster.nodes.values().map(|n| n.id()).collect(),
    );
    let history = driver.finish(&s, result, &statuses);
    tear_down(&handle, nodes).await;
    history
}

/// How long a torn-down cluster's tasks get to wake up once more (and be dropped): longer than
/// any period of theirs (heartbeats, retries, back-offs, ticks).
const TEARDOWN: Duration = Duration::from_secs(120);

/// Kills every node and lets virtual time run on, so that each of their tasks is woken once
/// more and dropped. Without this the runtime could never be freed: a pending task holds the
/// simulator's handle, whose timers hold the task (madsim breaks no such cycle when a runtime
/// is dropped), and every run of a process leaked its whole cluster (~1 MB a small run, and the
/// run's tracing subscriber with it), which a fuzzer's or a sweep's thousands of runs in one
/// process cannot afford. Nothing runs on a killed node, so the run's record is unchanged.
async fn tear_down(handle: &Handle, nodes: Vec<madsim::task::NodeId>) {
    for node in nodes {
        handle.kill(node);
    }
    tokio::time::sleep(TEARDOWN).await;
}

impl Driver {
    /// Matches the events recorded since the last call against the anchors still to come; a
    /// fault whose anchor came is scheduled at the event's time plus its offset. The driver
    /// is woken the instant such an event is recorded, so `now` is the event's time.
    fn resolve_anchors(&mut self, now: Duration) {
        if !self.timeline.waits_for_anchors() {
            return;
        }
        let events = self.recorder.events_since(self.seen);
        self.seen += events.len();
        for e in events {
            for (i, at) in self.timeline.on_event(&self.faults, &e, now) {
                let fault = &self.faults[i].fault;
                tracing::info!(target: "rill_sim::fault", "anchor came: {fault} begins at {}", format_duration(at));
            }
        }
    }

    fn apply_due(&mut self, now: Duration) {
        while let Some(step) = self.timeline.pop_due(now) {
            match step {
                Step::Begin(i) => self.begin(i, now),
                Step::End(i) => self.end(i, now),
            }
        }
    }

    fn begin(&mut self, i: usize, now: Duration) {
        let fault = self.faults[i].fault.clone();
        tracing::info!(target: "rill_sim::fault", "fault {}", fault);
        let ids = |name: &NodeName| self.cluster.node(name).map(|n| n.id());
        let effective = self.state.begin(&fault, &ids, &self.handle);
        if !effective {
            tracing::info!(target: "rill_sim::fault", "no effect: {} ({})", fault, no_effect_reason(&fault));
        }
        self.faults[i].began_at = Some(now);
        self.faults[i].effective = effective;
        if let Some(d) = fault.duration() {
            self.timeline.schedule(now + d, Step::End(i));
        }
        self.update_network(now);
    }

    fn end(&mut self, i: usize, now: Duration) {
        self.faults[i].ended_at = Some(now);
        let fault = self.faults[i].fault.clone();
        if self.faults[i].effective {
            let ids = |name: &NodeName| self.cluster.node(name).map(|n| n.id());
            let what = self.state.end(&fault, &ids, &self.handle);
            let after = format_duration(fault.duration().unwrap_or_default());
            tracing::info!(target: "rill_sim::fault", "{what} after {after}: {fault}");
        }
        self.update_network(now);
    }

    fn update_network(&self, now: Duration) {
        let active: Vec<&Fault> = self
            .faults
            .iter()
            .filter(|f| f.began_at.is_some_and(|b| b <= now) && f.ended_at.is_none())
            .map(|f| &f.fault)
            .collect();
        self.state.apply_network(&active);
    }

    /// Samples every TaskManager's accounted memory; one past the limit is OOM-killed, as the
    /// kernel or Kubernetes would, and restarts a while later.
    fn sample_memory(&mut self, now: Duration) {
        let accounts: Vec<(String, rill::memory::MemoryReport)> = {
            let map = self
                .cluster
                .memory
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            map.iter()
                .map(|(name, m)| (name.clone(), m.report()))
                .collect()
        };
        for (account, report) in accounts {
            let name = NodeName::from(account);
            let index = name.taskmanager().unwrap_or(0);
            let bytes = report.total();
            self.memory.push(MemorySample {
                at: now,
                taskmanager: index,
                bytes,
                task_bytes: report.task_overhead_bytes,
            });
            let over = self.memory_limit.is_some_and(|limit| bytes > limit);
            let already_down = self.state.is_down(&name);
            if over && !already_down {
                tracing::warn!(target: "rill_sim::oom", "oom-kill {name}: accounted {bytes} bytes > limit {}", self.memory_limit.unwrap_or(0));
                let fault = Fault::new(
                    now,
                    FaultKind::OomKill {
                        target: name,
                        restart_after: Some(OOM_RESTART),
                    },
                );
                self.faults.push(AppliedFault::planned(fault));
                let i = self.faults.len() - 1;
                let ids = |name: &NodeName| self.cluster.node(name).map(|n| n.id());
                self.faults[i].effective =
                    self.state.begin(&self.faults[i].fault, &ids, &self.handle);
                self.faults[i].began_at = Some(now);
                self.timeline.schedule(now + OOM_RESTART, Step::End(i));
            }
        }
    }

    fn finish(
        mut self,
        s: &Scenario,
        result: Option<JobResult>,
        statuses: &Mutex<Vec<(Duration, JobStatusReport)>>,
    ) -> RunHistory {
        let end = self.start.elapsed();
        let events = self.recorder.events();
        self.timeline
            .explain_never_begun(&mut self.faults, end, &events);
        // One lock for both views: a second lock in the same expression would deadlock.
        let statuses = statuses.lock().unwrap_or_else(|p| p.into_inner());
        let (job_status, job_message) = job_end(s.run_for, result);
        let (outputs, payloads) = collected::outputs(
            &self.cluster.collect,
            self.start,
            self.checks,
            self.keep_payloads,
        );
        let commits = collected::commits(&self.cluster.collect, self.start);
        let stored_checkpoints = self
            .cluster
            .stores_checkpoints()
            .then(|| self.cluster.checkpoint_store.take_stored(self.start));
        RunHistory {
            scenario: s.name.clone(),
            seed: 0,
            end,
            outputs,
            payloads,
            commits,
            stored_checkpoints,
            faults: self.faults,
            events: Vec::new(),
            trace: Vec::new(),
            job_status,
            job_message,
            placements: collected::placements(&statuses),
            memory: self.memory,
            memory_limit: self.memory_limit,
            taskmanagers: s.cluster.taskmanagers,
            buggify: Vec::new(),
            buggified: Vec::new(),
        }
    }
}

fn no_effect_reason(fault: &Fault) -> &'static str {
    match fault.kind {
        FaultKind::ClockSkew { .. } => "only TaskManagers read processing time",
        _ => "not a simulated node",
    }
}
