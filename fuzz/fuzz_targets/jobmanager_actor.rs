//! Sequences of messages to a live JobManager, structure-aware (`arbitrary`).
//!
//! The actor's inbox (`ActorMessage`) is `pub(super)`, so it cannot be driven message by
//! message from outside the crate; what is public is the whole JobManager,
//! `rill::jobmanager::run_jobmanager_with`, on a TCP listener. Each input starts one on
//! 127.0.0.1 inside a one-thread tokio runtime with a paused clock (time moves only when every
//! task waits: heartbeats, timeouts, restarts and checkpoints cost no real time), and plays a
//! sequence of operations against it through the real handshake and framing: TaskManagers
//! connect, register, disconnect and re-register; clients submit built-in jobs; TaskManagers
//! send `TmToJm` messages, either about what the JobManager really deployed to them (task
//! state changes of deployed attempts, acknowledgements of triggered checkpoints, heartbeat
//! replies with the seq asked for) or with arbitrary ids; the clock advances.
//!
//! Oracles: no panic anywhere in the process (libFuzzer aborts on one, in any task), and
//! afterwards the JobManager still admits a new TaskManager (its actor is alive and not
//! stuck). A hang inside the actor shows as a libFuzzer timeout.
//!
//! Run: `cargo xtask fuzz jobmanager_actor --time 60`.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rill::api::JobSpec;
use rill::config::Configuration;
use rill::events::{ClusterEvent, EventSink, Events};
use rill::graph::ExecutionState;
use rill::ids::{CheckpointId, ExecutionAttemptId, JobId, VertexId};
use rill::jobmanager::{run_jobmanager_with, JobManagerServices};
use rill::memory::MemoryReport;
use rill::rpc::frame::spawn_writer;
use rill::rpc::{
    connect, credentials, ClientToJm, Credentials, JmToClient, JmToTm, PeerRole, TaskReport,
    TmReport, TmToJm,
};
use rill::state::{MemoryCheckpointStore, OperatorState, TaskSnapshot};
use rill::util::AbortOnDrop;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// TaskManagers by name `tm-0` .. `tm-3`.
const TMS: usize = 4;
const MAX_OPS: usize = 64;
const MAX_CLIENTS: usize = 6;

#[derive(Arbitrary, Debug)]
struct Input {
    /// A cluster with a job running to start from, so that short inputs reach deployments,
    /// checkpoints and failovers.
    start: Option<Start>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
struct Start {
    taskmanagers: u8,
    slots: u8,
    job: u8,
    parallelism: u8,
    failover: u8,
    restart: u8,
    checkpoints: bool,
    /// Every deployed task reports `Running`.
    running: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// TaskManager `tm` connects and registers (again, if it is connected: a restart).
    Register {
        tm: u8,
        slots: u8,
        answers_heartbeats: bool,
    },
    /// Its connection closes.
    Disconnect { tm: u8 },
    /// A client submits a built-in job.
    Submit {
        job: u8,
        parallelism: u8,
        failover: u8,
        restart: u8,
        checkpoints: bool,
    },
    /// `tm` reports a state change of the `task`th attempt deployed so far (on any TaskManager).
    TaskState {
        tm: u8,
        task: u16,
        state: u8,
        records_in: u16,
        error: Option<String>,
    },
    /// Every attempt deployed so far reports `Running` (`Finished` if `finish`), each from the
    /// TaskManager it was deployed to: one step to a running job, whose checkpoints start.
    AllTasks { finish: bool },
    /// `tm` acknowledges the `trigger`th checkpoint triggered so far, for the attempt it was
    /// triggered on.
    Acknowledge {
        tm: u8,
        trigger: u16,
        snapshot: Snapshot,
    },
    /// `tm` answers the last heartbeat it got (or `seq_offset` before it).
    HeartbeatReply {
        tm: u8,
        seq_offset: u8,
        tasks: Vec<(u16, u32, u32)>,
        memory: [u32; 4],
    },
    /// Anything, with ids that may name nothing.
    Raw { tm: u8, msg: RawMsg },
    /// The clock moves on.
    Sleep { ms: u16 },
}

#[derive(Arbitrary, Debug)]
enum RawMsg {
    Register {
        name: String,
        slots: u32,
        memory_bytes: u64,
        data_addr: String,
    },
    TaskState {
        job: u8,
        attempt: RawAttempt,
        state: u8,
        records_in: u64,
        error: Option<String>,
    },
    Acknowledge {
        job: u8,
        checkpoint: u64,
        attempt: RawAttempt,
        snapshot: Snapshot,
    },
    HeartbeatReply {
        seq: u64,
        tasks: Vec<(u8, RawAttempt, u64, u64)>,
        memory: [u64; 4],
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct RawAttempt {
    vertex: u8,
    subtask: u16,
    attempt: u8,
}

/// One operator's state: node, keyed state by key group, operator state.
type OperatorSeed = (u8, Vec<(u16, Vec<u8>)>, Option<Vec<u8>>);

#[derive(Arbitrary, Debug)]
struct Snapshot {
    operators: Vec<OperatorSeed>,
    outputs: Vec<(u8, Vec<u16>)>,
}

impl Snapshot {
    fn build(self) -> TaskSnapshot {
        let mut snapshot = TaskSnapshot::default();
        for (node, keyed, operator) in self.operators.into_iter().take(4) {
            let state = OperatorState {
                keyed: keyed
                    .into_iter()
                    .take(8)
                    .map(|(g, b)| (g.into(), b))
                    .collect(),
                operator,
            };
            snapshot.operators.insert(node.into(), state);
        }
        for (output, seqs) in self.outputs.into_iter().take(4) {
            snapshot.outputs.insert(
                output.into(),
                seqs.into_iter().take(16).map(u64::from).collect(),
            );
        }
        snapshot
    }
}

impl RawAttempt {
    fn id(self) -> ExecutionAttemptId {
        ExecutionAttemptId {
            vertex: VertexId(self.vertex.into()),
            subtask: self.subtask.into(),
            attempt: self.attempt.into(),
        }
    }
}

fn state(n: u8) -> ExecutionState {
    use ExecutionState::*;
    [
        Created, Scheduled, Deploying, Running, Finished, Canceling, Canceled, Failed,
    ][n as usize % 8]
}

/// What the JobManager told the fake TaskManagers and clients, for later operations to refer to.
#[derive(Default)]
struct World {
    /// Every attempt deployed, in order, with the TaskManager it was deployed to.
    deployed: Vec<(JobId, ExecutionAttemptId, usize)>,
    /// Every checkpoint triggered, with the source attempt it was triggered on.
    triggered: Vec<(JobId, CheckpointId, ExecutionAttemptId)>,
    /// The last heartbeat seq each TaskManager got.
    heartbeat: [u64; TMS],
}

/// One fake TaskManager's connection: what it sends goes through `out` to its writer task;
/// its reader task records what the JobManager sends and, if asked to, answers heartbeats.
struct Tm {
    out: mpsc::UnboundedSender<TmToJm>,
    _reader: AbortOnDrop<()>,
    _writer: AbortOnDrop<()>,
}

/// Events are formatted, as the tracing sink would (their `Display` takes peer strings).
struct FormatEvents;

impl EventSink for FormatEvents {
    fn emit(&self, event: ClusterEvent) {
        let _ = (event.to_string(), event.is_warning(), event.job());
    }
}

/// Inputs that are only a `Start` (`arbitrary` reads an `Option` as a byte whose low bit says
/// `Some`, then `Start`'s fields as bytes, then no operations): every job, with checkpoints
/// and its tasks running, on 1 to 4 TaskManagers; the fuzzer appends operations to these.
fn seeds() -> Vec<(u8, Vec<u8>)> {
    let mut seeds = Vec::new();
    for job in 0..4u8 {
        for (taskmanagers, parallelism, failover) in [(0, 0, 0), (1, 1, 1), (3, 3, 2)] {
            // taskmanagers, slots, job, parallelism, failover, restart, checkpoints, running
            let start = vec![taskmanagers, 3, job, parallelism, failover, 1, 1, 1];
            seeds.push((1, start));
        }
    }
    seeds
}

fuzz_target!(init: common::write_seeds(seeds), |input: Input| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    rt.block_on(run(input));
});

fn config() -> Configuration {
    Configuration::from_pairs([
        ("heartbeat.interval", "1s"),
        ("heartbeat.timeout", "5s"),
        ("cluster.id", "fuzz"),
        ("security.cluster.secret", "fuzz-secret"),
    ])
    .expect("a valid configuration")
}

async fn run(input: Input) {
    let config = config();
    let creds = credentials(&config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let services = JobManagerServices {
        checkpoint_store: Arc::new(MemoryCheckpointStore::default()),
        events: Events::new(FormatEvents),
        jobs: rill::jobs::builtin(),
    };
    let _jm = AbortOnDrop(tokio::spawn(run_jobmanager_with(
        listener,
        config.clone(),
        services,
    )));
    let world = Arc::new(Mutex::new(World::default()));
    let mut tms: Vec<Option<Tm>> = (0..TMS).map(|_| None).collect();
    let mut clients = Vec::new();
    if let Some(start) = input.start {
        let ops = (0..1 + start.taskmanagers % TMS as u8)
            .map(|tm| Op::Register {
                tm,
                slots: 1 + start.slots % 8,
                answers_heartbeats: true,
            })
            .chain([Op::Submit {
                job: start.job,
                parallelism: start.parallelism,
                failover: start.failover,
                restart: start.restart,
                checkpoints: start.checkpoints,
            }])
            .chain(start.running.then_some(Op::AllTasks { finish: false }))
            .chain([Op::Sleep { ms: 500 }]);
        for op in ops {
            apply(op, &addr, &creds, &world, &mut tms, &mut clients).await;
        }
    }
    for op in input.ops.into_iter().take(MAX_OPS) {
        apply(op, &addr, &creds, &world, &mut tms, &mut clients).await;
    }
    finish(&addr, &creds, &config, &world, &tms, &clients).await;
    drop((tms, clients));
}

/// Plays one operation, then lets everything it set off happen (loopback delivers at once;
/// the paused clock moves 1 ms only once every task waits).
async fn apply(
    op: Op,
    addr: &str,
    creds: &Credentials,
    world: &Arc<Mutex<World>>,
    tms: &mut [Option<Tm>],
    clients: &mut Vec<AbortOnDrop<()>>,
) {
    match op {
        Op::Register {
            tm,
            slots,
            answers_heartbeats,
        } => {
            let i = tm as usize % TMS;
            let slots = u32::from(slots % 9); // 0 is refused
            let new = register(addr, creds, i, slots, answers_heartbeats, world).await;
            tms[i] = new;
        }
        Op::Disconnect { tm } => tms[tm as usize % TMS] = None,
        Op::Submit {
            job,
            parallelism,
            failover,
            restart,
            checkpoints,
        } => {
            if clients.len() < MAX_CLIENTS {
                let spec = spec(job, parallelism);
                let job_config = job_config(failover, restart, checkpoints);
                if let Some(c) = submit(addr, creds, spec, job_config).await {
                    clients.push(c);
                }
            }
        }
        Op::TaskState {
            tm,
            task,
            state: s,
            records_in,
            error,
        } => {
            let picked = pick(&world.lock().unwrap().deployed, task);
            if let Some((job, attempt, _)) = picked {
                send(
                    tms,
                    tm,
                    TmToJm::TaskStateChanged {
                        job,
                        attempt,
                        state: state(s),
                        records_in: records_in.into(),
                        error,
                    },
                );
            }
        }
        Op::AllTasks { finish } => {
            let deployed = world.lock().unwrap().deployed.clone();
            let state = if finish {
                ExecutionState::Finished
            } else {
                ExecutionState::Running
            };
            for (job, attempt, i) in deployed {
                send(
                    tms,
                    i as u8,
                    TmToJm::TaskStateChanged {
                        job,
                        attempt,
                        state,
                        records_in: 0,
                        error: None,
                    },
                );
            }
        }
        Op::Acknowledge {
            tm,
            trigger,
            snapshot,
        } => {
            let picked = pick(&world.lock().unwrap().triggered, trigger);
            if let Some((job, checkpoint, attempt)) = picked {
                send(
                    tms,
                    tm,
                    TmToJm::AcknowledgeCheckpoint {
                        job,
                        checkpoint,
                        attempt,
                        snapshot: snapshot.build(),
                    },
                );
            }
        }
        Op::HeartbeatReply {
            tm,
            seq_offset,
            tasks,
            memory,
        } => {
            let (seq, tasks) = {
                let w = world.lock().unwrap();
                let seq = w.heartbeat[tm as usize % TMS].saturating_sub(seq_offset.into());
                let tasks = tasks
                    .into_iter()
                    .take(16)
                    .filter_map(|(t, records_in, dropped)| {
                        pick(&w.deployed, t).map(|(job, attempt, _)| TaskReport {
                            job,
                            attempt,
                            records_in: records_in.into(),
                            records_dropped: dropped.into(),
                        })
                    })
                    .collect();
                (seq, tasks)
            };
            let report = TmReport {
                memory: memory_report(memory.map(u64::from)),
                tasks,
            };
            send(tms, tm, TmToJm::HeartbeatReply { seq, report });
        }
        Op::Raw { tm, msg } => send(tms, tm, raw(msg)),
        Op::Sleep { ms } => tokio::time::sleep(Duration::from_millis(ms.into())).await,
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Lets the timers run out their consequences (heartbeats, losses, restarts, checkpoints),
/// then checks that the actor still serves: a new TaskManager is admitted.
async fn finish(
    addr: &str,
    creds: &Credentials,
    config: &Configuration,
    world: &Arc<Mutex<World>>,
    tms: &[Option<Tm>],
    clients: &[AbortOnDrop<()>],
) {
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The actor still serves: a new TaskManager is admitted.
    let live = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut reader, mut writer) = connect(
            addr,
            "jobmanager",
            creds,
            (PeerRole::TaskManager, "tm-live"),
            config.max_frame_size(),
            Duration::from_secs(10),
        )
        .await
        .expect("connect after the sequence");
        writer
            .send(&TmToJm::Register {
                name: "tm-live".into(),
                slots: 1,
                memory_bytes: 1 << 30,
                data_addr: "127.0.0.1:9".into(),
            })
            .await
            .expect("send Register");
        loop {
            match reader.recv::<JmToTm>().await {
                Ok(Some(JmToTm::Registered { .. })) => break,
                Ok(Some(_)) => continue,
                other => panic!("the JobManager closed a fresh registration: {other:?}"),
            }
        }
    })
    .await;
    assert!(live.is_ok(), "the JobManager no longer admits TaskManagers");
    if std::env::var_os("RILL_FUZZ_DEBUG").is_some() {
        let w = world.lock().unwrap();
        eprintln!(
            "input: {} TaskManager(s) connected, {} client(s), {} deployment(s), {} trigger(s), heartbeats {:?}",
            tms.iter().filter(|t| t.is_some()).count(),
            clients.len(),
            w.deployed.len(),
            w.triggered.len(),
            w.heartbeat
        );
    }
}

fn pick<T: Copy>(items: &[T], n: u16) -> Option<T> {
    (!items.is_empty()).then(|| items[n as usize % items.len()])
}

fn send(tms: &[Option<Tm>], tm: u8, msg: TmToJm) {
    if let Some(t) = &tms[tm as usize % TMS] {
        let _ = t.out.send(msg);
    }
}

fn memory_report([buffer, state, tasks, peak]: [u64; 4]) -> MemoryReport {
    MemoryReport {
        buffer_bytes: buffer,
        state_bytes: state,
        task_overhead_bytes: tasks,
        peak_bytes: peak,
    }
}

fn raw(msg: RawMsg) -> TmToJm {
    match msg {
        RawMsg::Register {
            name,
            slots,
            memory_bytes,
            data_addr,
        } => TmToJm::Register {
            name,
            slots,
            memory_bytes,
            data_addr,
        },
        RawMsg::TaskState {
            job,
            attempt,
            state: s,
            records_in,
            error,
        } => TmToJm::TaskStateChanged {
            job: JobId(job.into()),
            attempt: attempt.id(),
            state: state(s),
            records_in,
            error,
        },
        RawMsg::Acknowledge {
            job,
            checkpoint,
            attempt,
            snapshot,
        } => TmToJm::AcknowledgeCheckpoint {
            job: JobId(job.into()),
            checkpoint: CheckpointId(checkpoint),
            attempt: attempt.id(),
            snapshot: snapshot.build(),
        },
        RawMsg::HeartbeatReply { seq, tasks, memory } => TmToJm::HeartbeatReply {
            seq,
            report: TmReport {
                memory: memory_report(memory),
                tasks: tasks
                    .into_iter()
                    .take(16)
                    .map(|(job, attempt, records_in, records_dropped)| TaskReport {
                        job: JobId(job.into()),
                        attempt: attempt.id(),
                        records_in,
                        records_dropped,
                    })
                    .collect(),
            },
        },
    }
}

fn spec(job: u8, parallelism: u8) -> JobSpec {
    let name = ["wordcount", "keyed-count", "etl", "ad-stats"][job as usize % 4];
    JobSpec::new(name).with("parallelism", 1 + parallelism % 4)
}

fn job_config(failover: u8, restart: u8, checkpoints: bool) -> Configuration {
    let failover = ["full", "region", "taskmanager"][failover as usize % 3];
    let restart =
        ["none", "fixed-delay", "exponential-delay", "failure-rate"][restart as usize % 4];
    let interval = if checkpoints { "200ms" } else { "none" };
    Configuration::from_pairs([
        ("jobmanager.execution.failover-strategy", failover),
        ("restart-strategy.type", restart),
        ("execution.checkpointing.interval", interval),
    ])
    .expect("a valid job configuration")
}

/// Connects TaskManager `i` and registers it; `None` if the JobManager refused (0 slots) or
/// the connection failed.
async fn register(
    addr: &str,
    creds: &Credentials,
    i: usize,
    slots: u32,
    answers_heartbeats: bool,
    world: &Arc<Mutex<World>>,
) -> Option<Tm> {
    let name = format!("tm-{i}");
    let (mut reader, mut writer) = connect(
        addr,
        "jobmanager",
        creds,
        (PeerRole::TaskManager, &name),
        16 * 1024 * 1024,
        Duration::from_secs(10),
    )
    .await
    .ok()?;
    writer
        .send(&TmToJm::Register {
            name: name.clone(),
            slots,
            memory_bytes: 1 << 30,
            data_addr: format!("127.0.0.1:{}", 9000 + i),
        })
        .await
        .ok()?;
    let (out, queue) = mpsc::unbounded_channel();
    let writer = AbortOnDrop(spawn_writer(writer, queue));
    let answer = out.clone();
    let world = world.clone();
    let reader = AbortOnDrop(tokio::spawn(async move {
        while let Ok(Some(msg)) = reader.recv::<JmToTm>().await {
            let mut w = world.lock().unwrap();
            match msg {
                JmToTm::DeployTask { job, attempt, .. } => w.deployed.push((job, attempt, i)),
                JmToTm::TriggerCheckpoint {
                    job,
                    checkpoint,
                    attempt,
                } => w.triggered.push((job, checkpoint, attempt)),
                JmToTm::Heartbeat { seq } => {
                    w.heartbeat[i] = seq;
                    if answers_heartbeats {
                        let _ = answer.send(TmToJm::HeartbeatReply {
                            seq,
                            report: TmReport::default(),
                        });
                    }
                }
                _ => {}
            }
        }
    }));
    Some(Tm {
        out,
        _reader: reader,
        _writer: writer,
    })
}

/// A client connection that submitted `spec` and reads the JobManager's answers until it closes.
async fn submit(
    addr: &str,
    creds: &Credentials,
    spec: JobSpec,
    config: Configuration,
) -> Option<AbortOnDrop<()>> {
    let (mut reader, mut writer) = connect(
        addr,
        "jobmanager",
        creds,
        (PeerRole::Client, "client"),
        16 * 1024 * 1024,
        Duration::from_secs(10),
    )
    .await
    .ok()?;
    writer
        .send(&ClientToJm::Submit { spec, config })
        .await
        .ok()?;
    Some(AbortOnDrop(tokio::spawn(async move {
        let _writer = writer;
        while let Ok(Some(msg)) = reader.recv::<JmToClient>().await {
            let _ = matches!(msg, JmToClient::Status(_));
        }
    })))
}
