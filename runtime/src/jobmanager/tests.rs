//! The JobManager actor driven message by message, without a network: what it decides is
//! read from its cluster events and the messages it sends.

use tokio::sync::{mpsc, oneshot};

use super::connection::{outbox, ActorMessage, Outbox, Overflowed, OUTBOX_CAPACITY};
use super::submission::Submission;
use super::{JobManager, JobManagerServices};
use crate::api::JobSpec;
use crate::config::Configuration;
use crate::events::{ClusterEvent, EventLog, Events, FailoverCause, LossCause};
use crate::graph::{ExecutionState, JobStatus, SubtaskId, TaskManagerId};
use crate::rpc::{JmToClient, JmToTm, TmToJm};

struct FakeTm {
    id: TaskManagerId,
    rx: mpsc::Receiver<JmToTm>,
    overflowed: Overflowed,
    _closed: oneshot::Receiver<()>,
}

fn jobmanager(config: &[(&str, &str)]) -> (JobManager, EventLog) {
    let mut c = Configuration::new();
    for (k, v) in config {
        c = c.with(k, v).expect("valid key");
    }
    let keep = EventLog::default();
    let services = JobManagerServices {
        events: Events::new(keep.clone()),
        ..JobManagerServices::default()
    };
    let (inbox, _) = super::connection::inbox();
    (JobManager::new(c, services, inbox), keep)
}

async fn register(jm: &mut JobManager, name: &str, slots: u32) -> FakeTm {
    let (out, rx, overflowed) = outbox();
    let (close, closed) = oneshot::channel();
    let (reply, id) = oneshot::channel();
    jm.handle(ActorMessage::TmRegistered {
        name: name.into(),
        slots,
        data_addr: format!("{name}:6121"),
        out,
        close,
        reply,
    });
    FakeTm {
        id: id.await.expect("registered"),
        rx,
        overflowed,
        _closed: closed,
    }
}

/// Answers every deployment a fake TaskManager received with RUNNING.
fn run_deployed(jm: &mut JobManager, tm: &mut FakeTm) -> usize {
    let mut deployed = 0;
    while let Ok(msg) = tm.rx.try_recv() {
        if let JmToTm::DeployTask { job, attempt, .. } = msg {
            deployed += 1;
            let msg = TmToJm::TaskStateChanged {
                job,
                attempt,
                state: ExecutionState::Running,
                records_in: 0,
                error: None,
            };
            jm.handle(ActorMessage::TmMessage { tm: tm.id, msg });
        }
    }
    deployed
}

#[tokio::test]
async fn a_lost_taskmanager_fails_over_exactly_the_subtasks_deployed_on_it() {
    let (mut jm, events) = jobmanager(&[
        ("jobmanager.execution.failover-strategy", "taskmanager"),
        ("taskmanager.load-balance.mode", "tasks"),
        ("restart-strategy.type", "fixed-delay"),
    ]);
    let mut tms = Vec::new();
    for name in ["tm-1", "tm-2", "tm-3"] {
        tms.push(register(&mut jm, name, 2).await);
    }
    let (client, _client_rx, _) = outbox();
    let spec = JobSpec::new("keyed-count").with("parallelism", 3);
    submit(&mut jm, spec, client).await;
    let deployed: usize = tms.iter_mut().map(|tm| run_deployed(&mut jm, tm)).sum();
    assert_eq!(deployed, 6);
    let on_tm2: Vec<SubtaskId> = events
        .take()
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::TasksDeployed { tasks, .. } => Some(tasks.clone()),
            _ => None,
        })
        .flatten()
        .filter(|d| d.taskmanager == "tm-2")
        .map(|d| d.attempt.subtask_id())
        .collect();
    assert_eq!(on_tm2.len(), 2, "tasks mode spreads 6 tasks 2 by 2");

    jm.handle(ActorMessage::TmDisconnected {
        tm: tms[1].id,
        reason: "connection closed".into(),
    });
    let after = events.take();
    let lost = after.iter().find_map(|e| match e {
        ClusterEvent::TaskManagerLost {
            taskmanager, cause, ..
        } => Some((taskmanager.clone(), cause.clone())),
        _ => None,
    });
    assert_eq!(
        lost,
        Some((
            "tm-2".to_string(),
            LossCause::ConnectionClosed("connection closed".into())
        ))
    );
    let failover = after.iter().find_map(|e| match e {
        ClusterEvent::FailoverStarted { restart, cause, .. } => Some((restart.clone(), cause)),
        _ => None,
    });
    let (restart, cause) = failover.expect("a failover");
    assert_eq!(restart, on_tm2, "exactly what ran on tm-2");
    assert!(
        matches!(cause, FailoverCause::TaskManagerLost { taskmanager, .. } if taskmanager == "tm-2")
    );
    // A partial failover keeps the job RUNNING.
    assert!(!after.iter().any(|e| matches!(
        e,
        ClusterEvent::JobStatusChanged {
            status: JobStatus::Restarting,
            ..
        }
    )));
}

#[tokio::test]
async fn a_second_registration_under_the_same_name_replaces_the_first_instance() {
    let (mut jm, events) = jobmanager(&[]);
    let first = register(&mut jm, "tm-1", 2).await;
    let second = register(&mut jm, "tm-1", 2).await;
    assert_ne!(first.id, second.id);
    let got = events.take();
    assert!(got.iter().any(|e| matches!(
        e,
        ClusterEvent::TaskManagerLost { instance, cause: LossCause::RegisteredAgain, .. } if *instance == first.id
    )));
    // A registration with an absurd slot count is refused, not an allocation.
    let (out, _rx, _) = outbox();
    let (close, _closed) = oneshot::channel();
    let (reply, id) = oneshot::channel();
    jm.handle(ActorMessage::TmRegistered {
        name: "tm-9".into(),
        slots: u32::MAX,
        data_addr: "tm-9:6121".into(),
        out,
        close,
        reply,
    });
    assert!(id.await.is_err(), "refused");
}

/// The back-off the failover after losing tm-2 announced, under `taskmanager` failover with a
/// fixed delay of 1 s and `extra` configuration.
async fn backoff_after_losing_a_taskmanager(extra: &[(&str, &str)]) -> std::time::Duration {
    let mut config = vec![
        ("jobmanager.execution.failover-strategy", "taskmanager"),
        ("taskmanager.load-balance.mode", "tasks"),
        ("restart-strategy.type", "fixed-delay"),
    ];
    config.extend_from_slice(extra);
    let (mut jm, events) = jobmanager(&config);
    let mut tms = Vec::new();
    for name in ["tm-1", "tm-2", "tm-3"] {
        tms.push(register(&mut jm, name, 2).await);
    }
    let (client, _client_rx, _) = outbox();
    let spec = JobSpec::new("keyed-count").with("parallelism", 2);
    submit(&mut jm, spec, client).await;
    for tm in &mut tms {
        run_deployed(&mut jm, tm);
    }
    jm.handle(ActorMessage::TmDisconnected {
        tm: tms[1].id,
        reason: "connection closed".into(),
    });
    events
        .take()
        .iter()
        .find_map(|e| match e {
            ClusterEvent::FailoverStarted { backoff, .. } => Some(*backoff),
            _ => None,
        })
        .expect("a failover")
}

#[tokio::test]
async fn taskmanager_failover_redeploys_a_lost_taskmanagers_subtasks_without_the_restart_delay() {
    assert_eq!(
        backoff_after_losing_a_taskmanager(&[]).await,
        std::time::Duration::ZERO
    );
    let waits = [(
        "jobmanager.execution.failover-strategy.taskmanager.immediate",
        "false",
    )];
    assert_eq!(
        backoff_after_losing_a_taskmanager(&waits).await,
        std::time::Duration::from_secs(1),
        "configured to wait, it waits the fixed delay"
    );
}

/// Submits `spec` as a client's connection would: prepared (built) first, then handed to
/// the actor.
async fn submit(jm: &mut JobManager, spec: JobSpec, client: Outbox<JmToClient>) {
    let submission = Submission::prepare(&jm.config, &jm.services.jobs, spec, Configuration::new())
        .await
        .expect("the job builds");
    jm.handle(ActorMessage::Submit {
        submission,
        out: client,
    });
}

/// Whether `overflowed` has fired, without waiting.
async fn has_overflowed(overflowed: &Overflowed) -> bool {
    tokio::time::timeout(std::time::Duration::ZERO, overflowed.wait())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_taskmanager_that_reads_nothing_is_cut_off_when_its_outbox_is_full() {
    let (mut jm, _events) = jobmanager(&[]);
    let mut tm = register(&mut jm, "tm-1", 2).await;
    // Registered is already queued: fill the rest with heartbeats, read by nobody.
    for _ in 1..OUTBOX_CAPACITY {
        jm.heartbeat();
    }
    assert!(
        !has_overflowed(&tm.overflowed).await,
        "a full queue is not yet an overflow"
    );
    jm.heartbeat();
    assert!(
        has_overflowed(&tm.overflowed).await,
        "one message more than the queue holds tells the connection to close"
    );
    // What was queued is intact and in order; nothing beyond the bound was kept, nor, once
    // the queue has room again, anything after it (no gap in the middle of the stream).
    assert!(matches!(tm.rx.try_recv(), Ok(JmToTm::Registered { .. })));
    jm.heartbeat();
    let mut queued = 1;
    while let Ok(msg) = tm.rx.try_recv() {
        assert!(matches!(msg, JmToTm::Heartbeat { .. }));
        queued += 1;
    }
    assert_eq!(queued, OUTBOX_CAPACITY);
}

#[tokio::test]
async fn a_client_that_reads_nothing_is_dropped_and_the_job_runs_on() {
    let (mut jm, _events) = jobmanager(&[]);
    let mut tm = register(&mut jm, "tm-1", 2).await;
    let (client, _unread, overflowed) = outbox();
    submit(
        &mut jm,
        JobSpec::new("keyed-count").with("parallelism", 1),
        client,
    )
    .await;
    run_deployed(&mut jm, &mut tm);
    // Each heartbeat sends running jobs' clients a status; the TaskManager here reads its own.
    for _ in 0..=OUTBOX_CAPACITY {
        jm.heartbeat();
        while tm.rx.try_recv().is_ok() {}
    }
    assert!(has_overflowed(&overflowed).await);
    let job = jm.jobs.values().next().expect("the job");
    assert!(job.clients.is_empty(), "the client is forgotten");
    assert_eq!(job.status(), JobStatus::Running, "the job runs on");
}
