//! A simulated rill cluster: `jm`, `tm-1..N`, the external systems `source-log`, `sink-store`
//! and `checkpoint-store`, and a `client` node, each with a stable name and address, each
//! running production code. Restarting a node re-runs its init future, as a fresh process
//! would start.
//!
//! The external systems are nodes of their own, reached over the simulated network, so they can
//! crash, pause or sit behind a partition like any other machine. What they hold survives their
//! restarts (they stand for systems with disks): the log serves the job's inputs, which are a
//! pure function of its parameters, and the two stores keep their contents outside the node,
//! where the harness reads the output from.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use madsim::runtime::{Handle, NodeHandle};
use rill::config::keys::{CHECKPOINTS_DIR, SINK_WRITE_KEY};
use rill::config::Configuration;
use rill::connectors::log_service::{serve_log, Topics};
use rill::connectors::sink_service::serve_sink_store;
use rill::connectors::CollectStore;
use rill::jobmanager::client::{submit_job, SubmitError};
use rill::jobmanager::{run_jobmanager_with, JobManagerServices};
use rill::rpc::JobStatusReport;
use rill::state::serve_checkpoint_store;
use rill::taskmanager::{MemoryAccount, ProcessingClock, TaskManager, TaskManagerOptions};
use rill::JobSpec;

use rill::jobs::JobRegistry;

use crate::events::EventRecorder;
use crate::node::NodeName;
use crate::scenario::{CHECKPOINT_STORE, SINK_STORE, SOURCE_LOG};
use crate::store::SimCheckpointStore;

/// The port the JobManager's control endpoint listens on, at [`jm_ip`].
pub const JOBMANAGER_PORT: u16 = 6123;
/// The port every TaskManager's data server listens on, at its [`tm_ip`].
pub const DATA_PORT: u16 = 6121;
/// The port of the `checkpoint-store` node's service.
pub const CHECKPOINT_STORE_PORT: u16 = 6130;
/// The port of the `source-log` node's log server.
pub const SOURCE_LOG_PORT: u16 = 6131;
/// The port of the `sink-store` node's sink store.
pub const SINK_STORE_PORT: u16 = 6132;

/// Shape of a simulated cluster.
#[derive(Clone)]
pub struct SimClusterSpec {
    /// TaskManagers, `tm-1` to `tm-N`.
    pub taskmanagers: u32,
    /// Slots per TaskManager.
    pub slots: u32,
    /// The configuration every node runs with (the harness adds the slots and, unless the
    /// scenario keeps checkpoints in the JobManager, the checkpoint store's address).
    pub config: Configuration,
    /// What the `source-log` node serves: the job's inputs by source name.
    pub inputs: Topics,
    /// Where the JobManager's and TaskManagers' cluster events are recorded.
    pub events: EventRecorder,
    /// The jobs the JobManager and every TaskManager can run.
    pub jobs: JobRegistry,
}

/// What a TaskManager node is built from.
struct TmNode<'a> {
    index: u32,
    config: &'a Configuration,
    collect: &'a CollectStore,
    memory: &'a MemoryAccounts,
    clock: &'a ProcessingClock,
    events: rill::events::Events,
    jobs: &'a JobRegistry,
}

/// The memory account of each TaskManager's current incarnation, by name.
pub type MemoryAccounts = Arc<Mutex<BTreeMap<String, MemoryAccount>>>;

/// A running simulated cluster: its nodes, and what the harness reads and steers them by.
pub struct SimCluster {
    /// The simulation's runtime handle, which the nodes were created on.
    pub handle: Handle,
    /// Every node by name: `jm`, `tm-1`.., `source-log`, `sink-store`, `checkpoint-store`,
    /// `client`.
    pub nodes: BTreeMap<NodeName, NodeHandle>,
    /// What the sinks wrote: the `sink-store` node's store, read by the harness directly.
    pub collect: CollectStore,
    /// What the `checkpoint-store` node serves (`store-failure` faults switch its health).
    pub checkpoint_store: SimCheckpointStore,
    /// Each TaskManager's current memory account (the OOM model watches them).
    pub memory: MemoryAccounts,
    /// Each TaskManager's processing-time clock, by name (`clock-skew` faults set them).
    pub clocks: BTreeMap<NodeName, ProcessingClock>,
    config: Configuration,
}

/// The JobManager node's address.
pub fn jm_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
}

/// TaskManager `tm-i`'s address.
pub fn tm_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8))
}

/// The `checkpoint-store` node's address.
pub fn checkpoint_store_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 3, 1))
}

/// The `source-log` node's address.
pub fn source_log_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 3, 2))
}

/// The `sink-store` node's address.
pub fn sink_store_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 3, 3))
}

/// The job parameter `sink-store` that reaches the `sink-store` node.
pub fn sink_store_url() -> String {
    format!("rill://{}:{SINK_STORE_PORT}", sink_store_ip())
}

/// The job parameter `log` that reaches the `source-log` node.
pub fn source_log_url() -> String {
    format!("rill://{}:{SOURCE_LOG_PORT}", source_log_ip())
}

/// The `state.checkpoints.dir` that reaches the `checkpoint-store` node.
pub fn checkpoint_store_url() -> String {
    format!("rill://{}:{CHECKPOINT_STORE_PORT}", checkpoint_store_ip())
}

impl SimCluster {
    /// Creates the nodes; their init futures start the JobManager and TaskManagers.
    pub fn start(spec: SimClusterSpec) -> SimCluster {
        let handle = Handle::current();
        let mut config = spec
            .config
            .with("taskmanager.numberOfTaskSlots", &spec.slots.to_string())
            .expect("slots > 0");
        // Checkpoints go to the store node unless the scenario keeps them in the JobManager.
        if config.get_raw(CHECKPOINTS_DIR).is_none() {
            config
                .set(CHECKPOINTS_DIR, &checkpoint_store_url())
                .expect("a valid address");
        }
        // The JobManager and the sink store share a write key, the TaskManagers do not: every
        // sink write must carry the grant its attempt was deployed with.
        let mut key_holders = config.clone();
        if key_holders.get_raw(SINK_WRITE_KEY).is_none() {
            key_holders
                .set(SINK_WRITE_KEY, "rill-sim-sink-write-key")
                .expect("a non-empty key");
        }
        let mut nodes = BTreeMap::new();
        let checkpoint_store = SimCheckpointStore::default();
        nodes.insert(
            NodeName::CheckpointStore,
            Self::checkpoint_store_node(&handle, &config, &checkpoint_store),
        );
        nodes.insert(
            NodeName::SourceLog,
            Self::source_log_node(&handle, &config, spec.inputs),
        );
        nodes.insert(
            NodeName::JobManager,
            Self::jm_node(&handle, &key_holders, &spec.events, &spec.jobs),
        );
        let collect = CollectStore::new();
        nodes.insert(
            NodeName::SinkStore,
            Self::sink_store_node(&handle, &key_holders, &collect),
        );
        let memory = MemoryAccounts::default();
        let mut clocks = BTreeMap::new();
        for i in 1..=spec.taskmanagers {
            let clock = ProcessingClock::default();
            let name = NodeName::TaskManager(i);
            let events = spec.events.for_node(name.clone());
            let tm = TmNode {
                index: i,
                config: &config,
                collect: &collect,
                memory: &memory,
                clock: &clock,
                events,
                jobs: &spec.jobs,
            };
            nodes.insert(name.clone(), Self::tm_node(&handle, tm));
            clocks.insert(name.clone(), clock);
        }
        let client = handle
            .create_node()
            .name("client")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)))
            .build();
        nodes.insert(NodeName::Client, client);
        SimCluster {
            handle,
            nodes,
            collect,
            checkpoint_store,
            memory,
            clocks,
            config,
        }
    }

    /// Whether the job's checkpoints go to the `checkpoint-store` node, whose writes the
    /// harness reads back (a scenario may keep them in the JobManager).
    pub fn stores_checkpoints(&self) -> bool {
        self.config.get_raw(CHECKPOINTS_DIR) == Some(checkpoint_store_url().as_str())
    }

    fn checkpoint_store_node(
        handle: &Handle,
        config: &Configuration,
        store: &SimCheckpointStore,
    ) -> NodeHandle {
        let (config, store) = (config.clone(), store.clone());
        handle
            .create_node()
            .name(CHECKPOINT_STORE)
            .ip(checkpoint_store_ip())
            .init(move || {
                let (config, store) = (config.clone(), store.clone());
                async move {
                    let addr = (checkpoint_store_ip(), CHECKPOINT_STORE_PORT);
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .expect("bind checkpoint store");
                    serve_checkpoint_store(listener, Arc::new(store), config).await
                }
            })
            .build()
    }

    fn source_log_node(handle: &Handle, config: &Configuration, topics: Topics) -> NodeHandle {
        let config = config.clone();
        handle
            .create_node()
            .name(SOURCE_LOG)
            .ip(source_log_ip())
            .init(move || {
                let (config, topics) = (config.clone(), topics.clone());
                async move {
                    let addr = (source_log_ip(), SOURCE_LOG_PORT);
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .expect("bind source log");
                    serve_log(listener, topics, config).await
                }
            })
            .build()
    }

    fn sink_store_node(
        handle: &Handle,
        config: &Configuration,
        store: &CollectStore,
    ) -> NodeHandle {
        let (config, store) = (config.clone(), store.clone());
        handle
            .create_node()
            .name(SINK_STORE)
            .ip(sink_store_ip())
            .init(move || {
                let (config, store) = (config.clone(), store.clone());
                async move {
                    let addr = (sink_store_ip(), SINK_STORE_PORT);
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .expect("bind sink store");
                    serve_sink_store(listener, store, config, None).await
                }
            })
            .build()
    }

    fn jm_node(
        handle: &Handle,
        config: &Configuration,
        events: &EventRecorder,
        jobs: &JobRegistry,
    ) -> NodeHandle {
        let (config, jobs) = (config.clone(), jobs.clone());
        let events = events.for_node(NodeName::JobManager);
        handle
            .create_node()
            .name("jm")
            .ip(jm_ip())
            .init(move || {
                let config = config.clone();
                // The scenario's configuration was validated when it was loaded.
                let services = JobManagerServices {
                    events: events.clone(),
                    jobs: jobs.clone(),
                    ..JobManagerServices::from_config(&config)
                        .expect("a validated checkpoint storage")
                };
                async move {
                    let listener = tokio::net::TcpListener::bind((jm_ip(), JOBMANAGER_PORT))
                        .await
                        .expect("bind jm");
                    run_jobmanager_with(listener, config, services).await
                }
            })
            .build()
    }

    fn tm_node(handle: &Handle, tm: TmNode<'_>) -> NodeHandle {
        let TmNode {
            index: i,
            config,
            collect,
            memory,
            clock,
            events,
            jobs,
        } = tm;
        let name = NodeName::TaskManager(i).to_string();
        // The machine's clock: its skew outlives a restart of the process.
        let opts = TaskManagerOptions {
            name: name.clone(),
            jobmanager: format!("{}:{JOBMANAGER_PORT}", jm_ip()),
            data_bind: format!("{}:{DATA_PORT}", tm_ip(i)),
            config: config.clone(),
            collect: Some(collect.clone()),
            memory: MemoryAccount::default(),
            clock: clock.clone(),
            events,
            jobs: jobs.clone(),
        };
        let memory = memory.clone();
        handle
            .create_node()
            .name(name.clone())
            .ip(tm_ip(i))
            .init(move || {
                // A fresh process: fresh memory, published for the harness's OOM model.
                let opts = TaskManagerOptions {
                    memory: MemoryAccount::default(),
                    ..opts.clone()
                };
                memory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone(), opts.memory.clone());
                async move {
                    let tm = TaskManager::start(opts).await.expect("taskmanager start");
                    tm.run().await
                }
            })
            .build()
    }

    /// Names the node of the task that calls it (`harness` outside the cluster's nodes): how
    /// a buggify firing learns where it fired.
    pub fn locator(&self) -> crate::buggify::Locator {
        let names: BTreeMap<madsim::task::NodeId, NodeName> = self
            .nodes
            .iter()
            .map(|(name, node)| (node.id(), name.clone()))
            .collect();
        Box::new(move || {
            names
                .get(&madsim::plugin::node())
                .cloned()
                .unwrap_or(NodeName::Harness)
        })
    }

    /// The node `name`, if the cluster has it.
    pub fn node(&self, name: &NodeName) -> Option<&NodeHandle> {
        self.nodes.get(name)
    }

    /// Submits a job from the client node; `on_status` sees every status report.
    pub fn submit(
        &self,
        spec: &JobSpec,
        on_status: impl FnMut(&JobStatusReport) + Send + 'static,
    ) -> madsim::task::JoinHandle<Result<JobStatusReport, SubmitError>> {
        let (spec, config) = (spec.clone(), self.config.clone());
        let addr = format!("{}:{JOBMANAGER_PORT}", jm_ip());
        self.nodes[&NodeName::Client]
            .spawn(async move { submit_job(&addr, &spec, &config, |_| {}, on_status).await })
    }

    /// Submits a job from the client node and waits for its end.
    pub async fn run_job(&self, spec: &JobSpec) -> Result<JobStatusReport, SubmitError> {
        self.submit(spec, |_| {}).await.expect("client task")
    }
}
