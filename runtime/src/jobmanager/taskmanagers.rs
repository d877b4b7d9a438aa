//! The registered TaskManagers: registration (a new instance per registration) and loss (every
//! job with live tasks there fails over).

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::connection::Outbox;
use super::failover::FailureScope;
use super::JobManager;
use crate::events::{ClusterEvent, FailoverCause, LossCause};
use crate::graph::{ExecutionAttemptId, JobId, TaskManagerId};
use crate::network::ClaimKey;
use crate::rpc::JmToTm;

/// More slots than any real TaskManager offers: a registration claiming more is refused.
const MAX_SLOTS_PER_TASKMANAGER: u32 = 4096;

/// One registered TaskManager instance.
pub(super) struct TmEntry {
    pub name: String,
    pub data_addr: String,
    pub out: Outbox<JmToTm>,
    /// Dropping it closes the connection (the instance is lost).
    pub _close: oneshot::Sender<()>,
    pub last_reply: Instant,
    pub rpc_failures: u32,
    /// Accounted memory as of the last heartbeat.
    pub memory: u64,
    /// Its data server's claim key: grants for its subpartitions are made with it.
    pub claim_key: ClaimKey,
}

impl JobManager {
    pub(super) fn register(
        &mut self,
        name: String,
        slots: u32,
        data_addr: String,
        out: Outbox<JmToTm>,
        close: oneshot::Sender<()>,
        reply: oneshot::Sender<TaskManagerId>,
    ) {
        if slots == 0 || slots > MAX_SLOTS_PER_TASKMANAGER {
            self.events().emit(ClusterEvent::RegistrationRefused {
                taskmanager: name,
                slots,
            });
            return; // dropping `close` and `reply` closes the connection
        }
        // A TaskManager that registers again (it lost us, or restarted) replaces its old
        // instance, whose connection may not have been noticed dead yet.
        let stale: Vec<(TaskManagerId, LossCause)> = self
            .tms
            .iter()
            .filter(|(_, t)| t.name == name)
            .map(|(id, _)| (*id, LossCause::RegisteredAgain))
            .collect();
        self.lose_taskmanagers(stale);
        let tm = TaskManagerId(self.next_tm);
        self.next_tm += 1;
        self.events().emit(ClusterEvent::TaskManagerRegistered {
            taskmanager: name.clone(),
            instance: tm,
            slots,
        });
        let claim_key = self.claim_keys.key_for(&name);
        let _ = out.send(JmToTm::Registered {
            instance: tm,
            claim_key: claim_key.clone(),
        });
        // Before any deployment can point them at it: the others drop what they cached.
        for other in self.tms.values() {
            let _ = other.out.send(JmToTm::PeerRegistered {
                data_addr: data_addr.clone(),
            });
        }
        let entry = TmEntry {
            name,
            data_addr,
            out,
            _close: close,
            last_reply: Instant::now(),
            rpc_failures: 0,
            memory: 0,
            claim_key,
        };
        self.tms.insert(tm, entry);
        self.pool.add_taskmanager(tm, slots);
        let _ = reply.send(tm);
        self.schedule_waiting();
        self.rebalance_jobs();
    }

    /// Drops TaskManagers (closing their connections), then fails over the jobs that had live
    /// tasks on any of them. All are removed before anything is rescheduled, so no job is
    /// placed on a TaskManager that is being declared lost in the same step.
    pub(super) fn lose_taskmanagers(&mut self, lost: Vec<(TaskManagerId, LossCause)>) {
        let mut causes = Vec::new();
        for (tm, cause) in lost {
            let Some(entry) = self.tms.remove(&tm) else {
                continue;
            };
            self.events().emit(ClusterEvent::TaskManagerLost {
                taskmanager: entry.name.clone(),
                instance: tm,
                cause: cause.clone(),
            });
            self.pool.remove_taskmanager(tm);
            let cause = FailoverCause::TaskManagerLost {
                taskmanager: entry.name,
                cause,
            };
            causes.push((tm, cause));
        }
        for (tm, cause) in causes {
            let affected: Vec<(JobId, Vec<ExecutionAttemptId>)> = self
                .jobs
                .iter()
                .filter(|(_, j)| !j.status().is_terminal())
                .map(|(id, j)| (*id, j.attempts_lost_with(tm)))
                .filter(|(_, lost)| !lost.is_empty())
                .collect();
            for (id, lost) in affected {
                self.fail_over(id, cause.clone(), &lost, FailureScope::TaskManagerLost);
            }
        }
    }
}
