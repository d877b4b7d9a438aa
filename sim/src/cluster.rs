//! A simulated rill cluster: `jm`, `tm-1..N` and a `client` node, each with a stable name and
//! address, each running production code.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use madsim::runtime::{Handle, NodeHandle};
use rill::config::Configuration;
use rill::connectors::CollectStore;
use rill::jobmanager::client::{submit_job, SubmitError};
use rill::jobmanager::run_jobmanager;
use rill::rpc::JobStatusReport;
use rill::taskmanager::{TaskManager, TaskManagerOptions};
use rill::JobSpec;

pub const JOBMANAGER_PORT: u16 = 6123;
pub const DATA_PORT: u16 = 6121;

/// Shape of a simulated cluster.
#[derive(Clone)]
pub struct SimClusterSpec {
    pub taskmanagers: u32,
    pub slots: u32,
    pub config: Configuration,
}

pub struct SimCluster {
    pub handle: Handle,
    pub jm: NodeHandle,
    pub taskmanagers: Vec<NodeHandle>,
    pub client: NodeHandle,
    pub collect: CollectStore,
    config: Configuration,
}

pub fn jm_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
}

pub fn tm_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8))
}

impl SimCluster {
    /// Creates the nodes; their init futures start the JobManager and TaskManagers.
    pub fn start(spec: SimClusterSpec) -> SimCluster {
        let handle = Handle::current();
        let config = spec
            .config
            .with("taskmanager.numberOfTaskSlots", &spec.slots.to_string())
            .expect("slots > 0");
        let jm_config = config.clone();
        let jm = handle
            .create_node()
            .name("jm")
            .ip(jm_ip())
            .init(move || {
                let config = jm_config.clone();
                async move {
                    let listener = tokio::net::TcpListener::bind((jm_ip(), JOBMANAGER_PORT))
                        .await
                        .expect("bind jm");
                    run_jobmanager(listener, config).await
                }
            })
            .build();
        let collect = CollectStore::new();
        let taskmanagers = (1..=spec.taskmanagers)
            .map(|i| Self::tm_node(&handle, i, &config, &collect))
            .collect();
        let client = handle
            .create_node()
            .name("client")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)))
            .build();
        SimCluster {
            handle,
            jm,
            taskmanagers,
            client,
            collect,
            config,
        }
    }

    fn tm_node(
        handle: &Handle,
        i: u32,
        config: &Configuration,
        collect: &CollectStore,
    ) -> NodeHandle {
        let opts = Arc::new(TaskManagerOptions {
            name: format!("tm-{i}"),
            jobmanager: format!("{}:{JOBMANAGER_PORT}", jm_ip()),
            data_bind: format!("{}:{DATA_PORT}", tm_ip(i)),
            config: config.clone(),
            collect: Some(collect.clone()),
        });
        handle
            .create_node()
            .name(format!("tm-{i}"))
            .ip(tm_ip(i))
            .init(move || {
                let opts = (*opts).clone();
                async move {
                    let tm = TaskManager::start(opts).await.expect("taskmanager start");
                    tm.run().await
                }
            })
            .build()
    }

    /// Submits a job from the client node and waits for its end.
    pub async fn run_job(&self, spec: &JobSpec) -> Result<JobStatusReport, SubmitError> {
        let (spec, config) = (spec.clone(), self.config.clone());
        let addr = format!("{}:{JOBMANAGER_PORT}", jm_ip());
        self.client
            .spawn(async move { submit_job(&addr, &spec, &config, |_| {}, |_| {}).await })
            .await
            .expect("client task")
    }
}
