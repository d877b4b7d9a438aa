//! Heartbeats: the JobManager asks every TaskManager for a report each `heartbeat.interval`
//! and declares it lost after `heartbeat.timeout` without a reply, or after
//! `heartbeat.rpc-failure-threshold` heartbeats in a row that could not be sent.

use tokio::time::Instant;

use super::JobManager;
use crate::events::LossCause;
use crate::graph::JobStatus;
use crate::graph::{JobId, TaskManagerId};
use crate::rpc::{JmToTm, TmReport};

impl JobManager {
    /// Sends heartbeats, declares silent TaskManagers lost, and sends running jobs' clients
    /// a fresh status.
    pub(super) fn heartbeat(&mut self) {
        self.heartbeat_seq += 1;
        let timeout = self.config.heartbeat_timeout();
        let threshold = self.config.heartbeat_rpc_failure_threshold();
        let mut lost = Vec::new();
        for (&id, tm) in &mut self.tms {
            if tm.last_reply.elapsed() > timeout {
                lost.push((id, LossCause::HeartbeatTimeout(timeout)));
            } else if tm
                .out
                .send(JmToTm::Heartbeat {
                    seq: self.heartbeat_seq,
                })
                .is_err()
            {
                tm.rpc_failures += 1;
                if tm.rpc_failures >= threshold {
                    lost.push((id, LossCause::HeartbeatRpcFailures(tm.rpc_failures)));
                }
            }
        }
        self.lose_taskmanagers(lost);
        let running: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status() == JobStatus::Running)
            .map(|(id, _)| *id)
            .collect();
        for id in running {
            self.broadcast_status(id);
        }
    }

    /// A TaskManager answered: it is alive; its memory and its tasks' counters are current.
    /// Counters count only for attempts it runs.
    pub(super) fn on_heartbeat_reply(&mut self, tm: TaskManagerId, report: TmReport) {
        let Some(entry) = self.tms.get_mut(&tm) else {
            return;
        };
        entry.last_reply = Instant::now();
        entry.rpc_failures = 0;
        entry.memory = report.memory.total();
        for t in report.tasks {
            let Some(job) = self
                .jobs
                .get_mut(&t.job)
                .filter(|j| j.placement.of(&t.attempt) == Some(tm))
            else {
                continue;
            };
            job.metrics.records.insert(t.attempt, t.records_in);
            if t.records_dropped > 0 {
                job.metrics.dropped.insert(t.attempt, t.records_dropped);
            }
        }
    }
}
