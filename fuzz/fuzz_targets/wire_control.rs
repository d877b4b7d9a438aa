//! The control plane's wire messages from arbitrary bytes: the first byte picks what the rest
//! is read as, the way each receiver reads it (`rill::rpc::frame::decode` with the receiver's
//! limit). Decoding must never panic and must fail only as `Malformed`; whatever decodes must
//! round-trip (see `common::wire`). A decoded `Submit` or `DeployTask` goes on through what its
//! receiver does next with it before changing any state: the JobManager merges the job's
//! configuration and builds its graph, a TaskManager builds the graph of a deployment.
//!
//! Selectors 6 and 7 read the rest as a byte stream instead: frames (4-byte big-endian length,
//! payload) through a `FrameReader`, and the accepting side of the handshake.
//!
//! Run: `cargo xtask fuzz wire_control --time 60`.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rill::api::JobSpec;
use rill::config::Configuration;
use rill::graph::{ExecutionState, JobStatus};
use rill::ids::{CheckpointId, EdgeId, ExecutionAttemptId, JobId, VertexId};
use rill::memory::MemoryReport;
use rill::rpc::frame::{FrameReader, FrameWriter, DEFAULT_MAX_FRAME};
use rill::rpc::handshake::{accept_handshake, Credentials, Hello, HelloReply, PeerRole};
use rill::rpc::{
    ClientToJm, InputLocation, JmToClient, JmToTm, JobStatusReport, RpcError, TaskReport, TmReport,
    TmToJm,
};
use rill::state::{OperatorState, TaskRestore, TaskSnapshot};

use common::wire;

/// Frames above this are not worth the time: libFuzzer's inputs are far smaller anyway.
const MAX: usize = DEFAULT_MAX_FRAME;

fuzz_target!(init: common::write_seeds(seeds), |data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 8 {
        0 => {
            let _ = wire::<TmToJm>(bytes, MAX);
        }
        1 => {
            if let Some(JmToTm::DeployTask { spec, config, .. }) = wire::<JmToTm>(bytes, MAX) {
                // The TaskManager builds the task's chain from the job graph of the spec.
                let _ = rill::jobs::build_job(&spec, config.max_parallelism());
                let _ = config.validate();
            }
        }
        2 => {
            if let Some(ClientToJm::Submit { spec, config }) = wire::<ClientToJm>(bytes, MAX) {
                submit(&spec, &config);
            }
        }
        3 => {
            let _ = wire::<JmToClient>(bytes, MAX);
        }
        // The handshake decodes its frames with their own length as the limit.
        4 => {
            let _ = wire::<Hello>(bytes, bytes.len());
        }
        5 => {
            let _ = wire::<HelloReply>(bytes, bytes.len());
        }
        6 => frames(bytes),
        _ => handshake(bytes),
    }
});

/// Valid messages of every kind, and streams of them.
fn seeds() -> Vec<(u8, Vec<u8>)> {
    use common::{enc, framed};
    let attempt = ExecutionAttemptId {
        vertex: VertexId(1),
        subtask: 1,
        attempt: 2,
    };
    let mut snapshot = TaskSnapshot::default();
    snapshot.operators.insert(
        2,
        OperatorState {
            keyed: BTreeMap::from([(5, vec![1, 2, 3]), (90, vec![4])]),
            operator: Some(vec![7, 7]),
        },
    );
    snapshot.outputs.insert(0, vec![10, 20]);
    let config = Configuration::from_pairs([
        ("execution.checkpointing.interval", "1s"),
        ("pipeline.max-parallelism", "64"),
        ("jobmanager.execution.failover-strategy", "region"),
    ])
    .expect("a valid configuration");
    let specs: Vec<JobSpec> = rill::jobs::JOBS
        .iter()
        .map(|def| JobSpec::new(def.name).with("parallelism", 3))
        .collect();
    let tm = [
        TmToJm::Register {
            name: "tm-1".into(),
            slots: 4,
            memory_bytes: 1 << 30,
            data_addr: "127.0.0.1:7001".into(),
        },
        TmToJm::HeartbeatReply {
            seq: 3,
            report: TmReport {
                memory: MemoryReport::default(),
                tasks: vec![TaskReport {
                    job: JobId(1),
                    attempt,
                    records_in: 10,
                    records_dropped: 0,
                }],
            },
        },
        TmToJm::TaskStateChanged {
            job: JobId(1),
            attempt,
            state: ExecutionState::Failed,
            records_in: 5,
            error: Some("boom".into()),
        },
        TmToJm::AcknowledgeCheckpoint {
            job: JobId(1),
            checkpoint: CheckpointId(4),
            attempt,
            snapshot: snapshot.clone(),
        },
    ];
    let mut seeds: Vec<(u8, Vec<u8>)> = tm.iter().map(|m| (0, enc(m))).collect();
    for spec in &specs {
        seeds.push((
            1,
            enc(&JmToTm::DeployTask {
                job: JobId(1),
                spec: spec.clone(),
                config: config.clone(),
                attempt,
                inputs: vec![InputLocation {
                    producer: attempt,
                    edge: EdgeId(0),
                    subpartition: 1,
                    data_addr: Some("127.0.0.1:7002".into()),
                    taskmanager: "tm-2".into(),
                    grant: rill::network::ClaimGrant([7; 32]),
                }],
                restore: Some(TaskRestore {
                    checkpoint: CheckpointId(3),
                    snapshot: snapshot.clone(),
                    input_age: Duration::from_millis(1500),
                }),
                finished_consumers: vec![(EdgeId(1), 0)],
                sink_grants: vec![(
                    "sink".into(),
                    rill::connectors::write_grant::WriteGrant([9; 32]),
                )],
            }),
        ));
        seeds.push((
            2,
            enc(&ClientToJm::Submit {
                spec: spec.clone(),
                config: config.clone(),
            }),
        ));
    }
    seeds.push((
        1,
        enc(&JmToTm::UpdatePartitionInfo {
            job: JobId(1),
            consumer: attempt,
            index: 0,
            location: InputLocation {
                producer: attempt,
                edge: EdgeId(0),
                subpartition: 0,
                data_addr: None,
                taskmanager: String::new(),
                grant: rill::network::ClaimGrant::default(),
            },
            stale_through: CheckpointId(2),
        }),
    ));
    seeds.push((
        3,
        enc(&JmToClient::Accepted {
            job: JobId(1),
            vertices: vec!["source (x2)".into()],
            subtasks: 2,
        }),
    ));
    seeds.push((
        3,
        enc(&JmToClient::Status(JobStatusReport {
            job: JobId(1),
            status: JobStatus::Running,
            records_in: 1,
            records_out: 2,
            elapsed_ms: 3,
            tasks_per_taskmanager: vec![("tm-1".into(), 2)],
            memory_per_taskmanager: vec![("tm-1".into(), 1 << 20)],
            records_dropped: 0,
            message: None,
        })),
    ));
    let ours = Credentials::new("rill", "fuzz-secret");
    let hello = enc(&Hello::new(&ours, PeerRole::TaskManager, "tm-1"));
    seeds.push((4, hello.clone()));
    seeds.push((
        5,
        enc(&HelloReply::Rejected {
            reason: "no".into(),
        }),
    ));
    let mut stream = Vec::new();
    for m in &tm {
        stream.extend(framed(&enc(m)));
    }
    seeds.push((6, stream));
    let mut handshake = framed(&hello);
    handshake.extend(framed(&enc(&tm[0])));
    seeds.push((7, handshake));
    seeds.push((
        7,
        framed(&enc(&Hello::new(&ours, PeerRole::DataPlane, "tm-2"))),
    ));
    seeds
}

/// What the JobManager does with a submission before it changes any state
/// (`Submission::prepare` in jobmanager/submission.rs): the job's settings over its own
/// configuration, then the job graph, with paths confined as a node's default confines them
/// (to none, so a fuzzed `input=` never makes the target read files).
fn submit(spec: &JobSpec, config: &Configuration) {
    let ours = Configuration::new();
    if let Ok(merged) = ours.merged(&config.job_settings()) {
        let files = merged.file_access();
        let _ = rill::jobs::builtin().build(spec, merged.max_parallelism(), &files);
        let _ = merged.effective();
    }
}

/// A byte stream of frames, read as a JobManager reads a TaskManager's connection: until the
/// stream ends or an error that is not a malformed frame (after which a reader is unusable).
fn frames(bytes: &[u8]) {
    common::runtime().block_on(async {
        let mut reader = FrameReader::new(bytes, 64 * 1024);
        for _ in 0..64 {
            match reader.recv::<TmToJm>().await {
                Ok(Some(msg)) => common::round_trip(&msg),
                Ok(None) => break,
                // A malformed payload leaves the stream in sync: the next frame follows.
                Err(RpcError::Malformed(_)) => continue,
                Err(e) => {
                    if let RpcError::FrameTooLarge { len, max } = e {
                        assert!(len > max, "FrameTooLarge for {len} bytes under {max}");
                    }
                    // Any other error leaves the reader unusable, not at a clean end.
                    assert!(
                        reader.recv_bytes().await.is_err(),
                        "a failed reader read on"
                    );
                    break;
                }
            }
        }
    });
}

/// The accepting side of the handshake, the peer's bytes from the input: it must refuse (or
/// accept) without panicking; it may accept only a hello with our cluster id and secret.
fn handshake(bytes: &[u8]) {
    common::runtime().block_on(async {
        let creds = Credentials::new("rill", "fuzz-secret");
        let mut reader = FrameReader::new(bytes, MAX);
        let mut writer = FrameWriter::new(tokio::io::sink(), MAX);
        let roles = [PeerRole::TaskManager, PeerRole::Client];
        let accepted = accept_handshake(
            &mut reader,
            &mut writer,
            &creds,
            &roles,
            None,
            Duration::from_secs(10),
        )
        .await;
        if let Ok(hello) = accepted {
            assert_eq!(hello.cluster_id, "rill");
            assert_eq!(hello.secret, "fuzz-secret");
            assert!(
                roles.contains(&hello.role),
                "accepted role {:?}",
                hello.role
            );
            // The limit is back to the connection's own after the handshake.
            assert_eq!(reader.max_frame(), MAX);
        }
    });
}
