//! Runs a scenario on real processes: the same scenario files, fault plans, run histories and
//! checkers as the simulator, against a cluster of real `rill` processes on this machine.
//!
//! The JobManager and every TaskManager are processes of the binary given (`rill`, or a user's
//! binary built on [`rill::cli::main`] with the same jobs as the harness's registry); each
//! appends its typed cluster events to a file ([`rill::events::FileEvents`]) that the harness
//! follows. The checkpoint store is a process too (`rill checkpoint-store`, see `store`): it
//! keeps checkpoints as files, reads its health from a file the harness writes, and journals
//! what it stored. So is the source log (`rill log-server`, stateless: its logs are generated
//! from the job's parameters). So is the sink store (`rill sink-store`, see `sink`): it
//! journals every write it applies, replays the journal when it restarts, and the harness
//! replays it after the run to learn what the sinks wrote and when. Faults are applied by real
//! means: a crash is SIGKILL (and a restart of the process), an OOM kill the kernel's OOM
//! killer in the TaskManager's memory cgroup (SIGKILL where there are no cgroups, saying so), a
//! pause SIGSTOP and SIGCONT, a store failure the words `fail` or `stall` in the store's
//! health-control file. A fault this runner cannot apply for real is recorded
//! "not applied (why)" and judged as a fault that never came: never skipped silently, never
//! pretended.

mod certs;
mod cgroup;
pub mod cli;
mod driver;
mod netns;
mod process;
mod sink;
mod store;
mod tail;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill::config::keys::CHECKPOINTS_DIR;
use rill::config::Configuration;
use rill::events::ClusterEvent;
use rill::jobmanager::client::{submit_job, SubmitError};
use rill::jobs::JobRegistry;
use rill::rpc::JobStatusReport;
use rill::taskmanager::memory_limit::parse_sample;
use tokio::time::Instant;

use certs::RunCerts;
use cgroup::MemoryCgroups;
use sink::SinkFiles;

pub use netns::Network;
pub use process::NodeProcess;
pub use tail::EventTail;

use crate::check::bounds::Timing;
use crate::events::RecordedEvent;
use crate::fault::{Fault, FaultKind};
use crate::history::{MemorySample, RunHistory, RunOutcome};
use crate::judge::Judge;
use crate::node::NodeName;
use crate::scenario::{fault_plan, harness_job, Scenario};
use driver::Driver;
use store::StoreFiles;

/// How long the cluster may take to come up (every TaskManager registered) before the run is
/// given up as not started.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// How often the harness reads the processes' events and applies what is due.
const TICK: Duration = Duration::from_millis(5);

/// Where a real run's processes come from and where its files go.
#[derive(Debug, Clone)]
pub struct RealOptions {
    /// The binary every JobManager and TaskManager process runs (its `jobmanager` and
    /// `taskmanager` commands): `rill`, or a user's binary over the same jobs.
    pub program: PathBuf,
    /// A directory for the run's events files and process logs (one subdirectory per run).
    pub workdir: PathBuf,
    /// Run every process on loopback, without namespaces of their own, even where they could
    /// have them (partition faults are then not applied).
    pub loopback: bool,
    /// Run the cluster without TLS, in the authenticated plaintext mode the simulator runs
    /// (every process with `--insecure`), to measure what TLS costs. Identity is then only
    /// claimed: never for a check of it.
    pub plaintext: bool,
}

/// Why a real run could not be made (as opposed to a run whose checkers failed).
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// A process or a listener could not be started.
    #[error("could not start {what}: {source}")]
    Start {
        /// What was being started.
        what: String,
        /// Why not.
        source: std::io::Error,
    },
    /// The cluster did not come up in time.
    #[error("the cluster did not come up within {limit:?}: {registered} of {expected} TaskManagers registered (process logs in {logs})")]
    NotUp {
        /// How long it was given.
        limit: Duration,
        /// TaskManagers that registered.
        registered: usize,
        /// TaskManagers in the scenario.
        expected: u32,
        /// Where the processes' logs are.
        logs: String,
    },
    /// The scenario's job could not be given to the cluster.
    #[error("the scenario's job: {0}")]
    Job(String),
}

/// Runs scenarios of one job registry on real processes.
pub struct RealHarness {
    jobs: JobRegistry,
    options: RealOptions,
}

impl RealHarness {
    /// A harness whose processes run `options.program`, which must know the jobs of `jobs`.
    pub fn new(jobs: JobRegistry, options: RealOptions) -> Self {
        RealHarness { jobs, options }
    }

    /// Runs `scenario` with the fault plan of `seed` and judges it.
    pub fn run(&self, scenario: &Scenario, seed: u64) -> Result<RunOutcome, RealError> {
        let history = self.record(scenario, seed, fault_plan(scenario, seed))?;
        let verdicts = Judge::new(&self.jobs).verdicts(scenario, &history, None);
        Ok(RunOutcome { history, verdicts })
    }

    /// Runs `scenario` with `faults` on a fresh cluster of real processes and returns what it
    /// recorded, unjudged. Blocks for as long as the run takes (the scenario's `run_for` at
    /// most, plus start-up).
    pub fn record(
        &self,
        scenario: &Scenario,
        seed: u64,
        faults: Vec<Fault>,
    ) -> Result<RunHistory, RealError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| RealError::Start {
                what: "the harness's runtime".into(),
                source,
            })?;
        let mut history = runtime.block_on(self.drive(scenario, seed, faults))?;
        history.seed = seed;
        runtime.shutdown_timeout(Duration::from_secs(1));
        Ok(history)
    }

    /// The run's own network, or why it runs on loopback.
    fn network(&self, s: &Scenario) -> Result<Network, String> {
        if self.options.loopback {
            return Err("the run was asked to stay on loopback (--loopback)".into());
        }
        let mut nodes = vec![NodeName::JobManager];
        nodes.extend((1..=s.cluster.taskmanagers).map(NodeName::TaskManager));
        Network::create(&nodes)
    }

    async fn drive(
        &self,
        s: &Scenario,
        seed: u64,
        faults: Vec<Fault>,
    ) -> Result<RunHistory, RealError> {
        let dir = self.options.workdir.join(format!("{}-{seed}", s.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| RealError::Start {
            what: format!("the run directory {}", dir.display()),
            source,
        })?;
        let network = self.network(s);
        let certs = RunCerts::issue(&dir, s.cluster.taskmanagers, !self.options.plaintext)?;
        let client_config = certs.config_for(&s.config, "client")?;
        let mut cluster = Cluster::start(&self.options, &self.jobs, s, dir, network, certs).await?;
        cluster.wait_until_up(s.cluster.taskmanagers).await?;
        let start = Instant::now();
        let start_ns = tail::unix_nanos();
        let statuses: Arc<Mutex<Vec<(Duration, JobStatusReport)>>> = Arc::default();
        let sink = statuses.clone();
        // A job that reads no logs is given none (harness_job leaves the parameter out).
        let log_url = cluster.log_url.clone().unwrap_or_default();
        let spec = harness_job(&self.jobs, &s.job, &cluster.sink_url, &log_url);
        let (addr, config) = (cluster.jm_addr.to_string(), client_config);
        let mut job = tokio::spawn(async move {
            submit_job(
                &addr,
                &spec,
                &config,
                |_| {},
                move |r| {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((start.elapsed(), r.clone()))
                },
            )
            .await
        });
        let mut driver = Driver::new(cluster, faults, start_ns)?;
        let linger = Timing::of(&s.config).detection + Duration::from_secs(1);
        let mut lost: Option<(Duration, JobResult)> = None;
        let result = loop {
            let now = start.elapsed();
            driver.poll_events(now);
            driver.reap(now);
            driver.apply_due(now);
            let until = lost
                .as_ref()
                .map_or(s.run_for, |(at, _)| (*at + linger).min(s.run_for));
            if now >= until {
                break lost.map(|(_, r)| r);
            }
            tokio::select! {
                r = &mut job, if lost.is_none() => match r {
                    Ok(Err(SubmitError::Rejected(_))) | Ok(Ok(_)) => break Some(r),
                    r => lost = Some((now, r)),
                },
                _ = tokio::time::sleep(TICK) => {}
            }
        };
        // A process that died just before the end (the kill that failed the job: its sockets
        // close before it can be reaped) is given a moment to be seen.
        driver.reap(start.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
        driver.reap(start.elapsed());
        let end = start.elapsed();
        let statuses = statuses.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(driver.finish(s, start, end, result, &statuses, &self.jobs))
    }
}

/// What the client's task returns: the job's final status, or why it has none.
type JobResult = Result<Result<JobStatusReport, SubmitError>, tokio::task::JoinError>;

/// The cluster's processes (JobManager, TaskManagers, checkpoint store, source log, sink
/// store), and the JobManager's and TaskManagers' events.
struct Cluster {
    processes: BTreeMap<NodeName, NodeProcess>,
    tails: Vec<EventTail>,
    jm_addr: SocketAddr,
    /// The source log's URL (`rill log-server`), if the job reads logs.
    log_url: Option<String>,
    /// The sink store's URL (`rill sink-store`), and its journal.
    sink_url: String,
    sink: SinkFiles,
    config: Configuration,
    /// The files of the run's checkpoint store, if the scenario's checkpoints go to it (not
    /// to a `state.checkpoints.dir` of its own).
    store: Option<StoreFiles>,
    dir: PathBuf,
    /// What the processes reported before the submission (registrations), at 0.
    early: Vec<RecordedEvent>,
    /// The processes' own network, or why they share loopback.
    network: Result<Network, String>,
    /// Each process's certificate, and the secret they share.
    certs: RunCerts,
    /// The TaskManagers' memory cgroups (a planned OOM kill is the kernel's), or why there
    /// are none. After `processes`, so that the processes are gone when they are removed.
    cgroups: Result<MemoryCgroups, String>,
}

impl Cluster {
    /// Starts the checkpoint store, the source log and the sink store (each listening before
    /// anything needs it) and the JobManager, and sets up the TaskManagers (started by `wait_until_up`).
    async fn start(
        options: &RealOptions,
        jobs: &JobRegistry,
        s: &Scenario,
        dir: PathBuf,
        network: Result<Network, String>,
        certs: RunCerts,
    ) -> Result<Cluster, RealError> {
        let mut config = s
            .config
            .clone()
            .with(
                "taskmanager.numberOfTaskSlots",
                &s.cluster.slots_per_taskmanager.to_string(),
            )
            .map_err(|e| RealError::Job(e.to_string()))?;
        // In namespaces of their own, processes keep the simulator's fixed ports; on loopback
        // each needs a free one.
        let address = |node: &NodeName, port: u16| match &network {
            Ok(net) => Ok(SocketAddr::from((
                net.address(node).expect("a process node"),
                port,
            ))),
            Err(_) => free_port(),
        };
        let jm_addr = address(&NodeName::JobManager, 6123)?;
        // The checkpoint store listens on the bridge, in the harness's own namespace.
        let store_addr = match config.get_raw(CHECKPOINTS_DIR) {
            None => Some(address(&NodeName::CheckpointStore, 6130)?),
            Some(_) => None,
        };
        if let Some(addr) = store_addr {
            config
                .set(CHECKPOINTS_DIR, &format!("rill://{addr}"))
                .map_err(|e| RealError::Job(e.to_string()))?;
        }
        let reads_logs = !jobs
            .inputs(&s.job)
            .map_err(|e| RealError::Job(e.to_string()))?
            .is_empty();
        let log_addr = match reads_logs {
            true => Some(address(&NodeName::SourceLog, 6131)?),
            false => None,
        };
        let sink_addr = address(&NodeName::SinkStore, 6132)?;
        let mut data_addrs = Vec::new();
        for i in 1..=s.cluster.taskmanagers {
            data_addrs.push(address(&NodeName::TaskManager(i), 6121)?);
        }
        let taskmanagers: Vec<NodeName> = (1..=s.cluster.taskmanagers)
            .map(NodeName::TaskManager)
            .collect();
        let cgroups = MemoryCgroups::create(&taskmanagers);
        let mut cluster = Cluster {
            processes: BTreeMap::new(),
            tails: Vec::new(),
            jm_addr,
            log_url: log_addr.map(|a| format!("rill://{a}")),
            sink_url: format!("rill://{sink_addr}"),
            sink: SinkFiles::in_run(&dir),
            config,
            store: store_addr.map(|_| StoreFiles::in_run(&dir)),
            dir,
            early: Vec::new(),
            network,
            certs,
            cgroups,
        };
        if let (Some(addr), Some(files)) = (store_addr, cluster.store.clone()) {
            cluster.add(options, NodeName::CheckpointStore, files.args(addr))?;
            cluster.start_node(&NodeName::CheckpointStore)?;
            process::wait_until_listening(&NodeName::CheckpointStore, addr).await?;
        }
        if let Some(addr) = log_addr {
            // Stateless (a generated log is a function of the job's parameters), so a restart
            // serves what the crashed process served.
            let mut args = vec![
                "log-server".to_string(),
                "--bind".into(),
                addr.to_string(),
                "--job".into(),
                s.job.name.clone(),
            ];
            for (key, value) in &s.job.params {
                args.extend(["-p".to_string(), format!("{key}={value}")]);
            }
            cluster.add(options, NodeName::SourceLog, args)?;
            cluster.start_node(&NodeName::SourceLog)?;
            process::wait_until_listening(&NodeName::SourceLog, addr).await?;
        }
        let sink = cluster.sink.args(sink_addr);
        cluster.add(options, NodeName::SinkStore, sink)?;
        cluster.start_node(&NodeName::SinkStore)?;
        process::wait_until_listening(&NodeName::SinkStore, sink_addr).await?;
        let jm = vec!["jobmanager".into(), "--bind".into(), jm_addr.to_string()];
        cluster.add(options, NodeName::JobManager, jm)?;
        cluster.start_node(&NodeName::JobManager)?;
        for i in 1..=s.cluster.taskmanagers {
            let name = NodeName::TaskManager(i);
            let args = vec![
                "taskmanager".to_string(),
                "--jobmanager".into(),
                jm_addr.to_string(),
                "--name".into(),
                name.to_string(),
                "--data-bind".into(),
                data_addrs[i as usize - 1].to_string(),
                "--memory-samples".into(),
                cluster
                    .dir
                    .join(format!("{name}.memory"))
                    .display()
                    .to_string(),
                "--clock-control".into(),
                cluster
                    .dir
                    .join(format!("{name}.clock"))
                    .display()
                    .to_string(),
            ];
            cluster.add(options, name, args)?;
        }
        Ok(cluster)
    }

    /// Sets up the process of node `name` with `args`, its events file and the configuration
    /// (not started yet).
    fn add(
        &mut self,
        options: &RealOptions,
        name: NodeName,
        args: Vec<String>,
    ) -> Result<(), RealError> {
        let events = self.dir.join(format!("{name}.events"));
        let mut argv: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        if options.plaintext {
            argv.push("--insecure".into());
        }
        // The external systems emit no cluster events (what the checkpoint store stored is in
        // its journal).
        let emits_events = matches!(name, NodeName::JobManager | NodeName::TaskManager(_));
        if emits_events {
            argv.push("--events".into());
            argv.push(events.clone().into());
        }
        // The name on its certificate.
        let stem = match &name {
            NodeName::JobManager => "jobmanager".to_string(),
            NodeName::SourceLog => "log-server".to_string(),
            other => other.to_string(),
        };
        let config = self.certs.config_for(&self.config, &stem)?;
        // Secrets go through the environment: on a command line `ps` would show them.
        let (secret_key, write_key) = (
            rill::config::keys::CLUSTER_SECRET,
            rill::config::keys::SINK_WRITE_KEY,
        );
        for (key, value) in config.explicit() {
            if key != secret_key && key != write_key {
                argv.push("-c".into());
                argv.push(format!("{key}={value}").into());
            }
        }
        let log = self.dir.join(format!("{name}.log"));
        let (program, argv) = match &self.network {
            Ok(net) => net.wrap(&name, &options.program, argv),
            Err(_) => (options.program.clone(), argv),
        };
        let mut process = NodeProcess::new(name.clone(), &program, argv, log)
            .with_env(rill::cli::SECRET_ENV, self.certs.secret());
        if let Some(key) = config.get_raw(write_key) {
            process = process.with_env(rill::cli::WRITE_KEY_ENV, key);
        }
        if let Some(procs) = self.cgroups.as_ref().ok().and_then(|c| c.procs(&name)) {
            process = process.in_cgroup(procs);
        }
        self.processes.insert(name.clone(), process);
        if emits_events {
            self.tails.push(EventTail::new(name, events));
        }
        Ok(())
    }

    fn start_node(&mut self, name: &NodeName) -> Result<(), RealError> {
        let process = self.processes.get_mut(name).expect("a node set up");
        process.start().map_err(|source| RealError::Start {
            what: name.to_string(),
            source,
        })
    }

    /// Starts the TaskManagers one by one, each once the one before has registered, and waits
    /// for the last, as the simulated run waits before it submits: placement sees all of them,
    /// in the simulator's registration order (`tm-1` first), so that first-fit placement puts
    /// tasks where it puts them in the simulator.
    async fn wait_until_up(&mut self, taskmanagers: u32) -> Result<(), RealError> {
        let begun = Instant::now();
        let mut registered = std::collections::BTreeSet::new();
        let mut early = Vec::new();
        for i in 1..=taskmanagers {
            let name = NodeName::TaskManager(i);
            self.start_node(&name)?;
            while !registered.contains(&name.to_string()) {
                if begun.elapsed() > STARTUP_LIMIT {
                    return Err(RealError::NotUp {
                        limit: STARTUP_LIMIT,
                        registered: registered.len(),
                        expected: taskmanagers,
                        logs: self.dir.display().to_string(),
                    });
                }
                // Before the submission every event is at 0, as the simulator's recorder has
                // it.
                for tail in &mut self.tails {
                    for e in tail.poll(u64::MAX) {
                        if let ClusterEvent::TaskManagerRegistered { taskmanager, .. } = &e.event {
                            registered.insert(taskmanager.clone());
                        }
                        early.push(e);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.early = early;
        Ok(())
    }
}

impl Cluster {
    /// Sets `node`'s processing-clock offset through its control file (`--clock-control`),
    /// which the TaskManager reads every 100 ms; the file outlives a restart, as a machine's
    /// skewed clock does.
    fn set_clock(&self, node: &NodeName, offset_ms: i64) -> Result<(), String> {
        let path = self.dir.join(format!("{node}.clock"));
        std::fs::write(&path, format!("{offset_ms}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every TaskManager's memory samples (`--memory-samples`), timed since `start_ns` and
    /// sorted by time; samples before the submission are left out, as the simulator starts
    /// sampling there.
    fn memory_samples(&self, start_ns: u64) -> Vec<MemorySample> {
        let mut samples = Vec::new();
        for name in self.processes.keys() {
            let Some(index) = name.taskmanager() else {
                continue;
            };
            let path = self.dir.join(format!("{name}.memory"));
            let text = std::fs::read_to_string(path).unwrap_or_default();
            for (nanos, bytes, task_bytes) in text.lines().filter_map(parse_sample) {
                let Some(since) = nanos.checked_sub(start_ns) else {
                    continue;
                };
                samples.push(MemorySample {
                    at: Duration::from_nanos(since),
                    taskmanager: index,
                    bytes,
                    task_bytes,
                });
            }
        }
        samples.sort_by_key(|s| (s.at, s.taskmanager));
        samples
    }
}

/// Whether this runner applies a fault of `kind` by real means (partitions only where the
/// machine allows network namespaces, which the run itself finds out).
pub fn applies_for_real(kind: &FaultKind) -> bool {
    let process = |n: &NodeName| {
        matches!(
            n,
            NodeName::JobManager
                | NodeName::TaskManager(_)
                | NodeName::CheckpointStore
                | NodeName::SourceLog
                | NodeName::SinkStore
        )
    };
    match kind {
        FaultKind::Crash { target, .. }
        | FaultKind::OomKill { target, .. }
        | FaultKind::Pause { target, .. } => process(target),
        FaultKind::Partition { .. }
        | FaultKind::StoreFailure { .. }
        | FaultKind::PacketLoss { .. } => true,
        // A cut is made inside a JobManager's or TaskManager's namespace (`Network::can_cut`).
        FaultKind::LinkPartition { from, to, .. } => {
            let namespaced =
                |n: &NodeName| matches!(n, NodeName::JobManager | NodeName::TaskManager(_));
            namespaced(from) || namespaced(to)
        }
        FaultKind::ClockSkew { target, .. } => matches!(target, NodeName::TaskManager(_)),
        FaultKind::Latency { .. } => false,
    }
}

/// A free loopback port: bound and let go, for a process that must keep its address across
/// restarts (the JobManager's endpoint, a TaskManager's data server).
fn free_port() -> Result<SocketAddr, RealError> {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|source| RealError::Start {
            what: "a free port".into(),
            source,
        })
}
