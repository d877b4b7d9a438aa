//! The status reports a job's clients receive: status, record counts, placement and memory.

use std::collections::BTreeMap;

use super::JobManager;
use crate::graph::{JobId, JobVertex};
use crate::rpc::{JmToClient, JobStatusReport};

impl JobManager {
    pub(super) fn status_of(&self, id: JobId) -> Option<JobStatusReport> {
        let job = self.jobs.get(&id)?;
        let graph = &job.eg.job;
        let sum = |pick: fn(&JobVertex) -> bool| -> u64 {
            job.eg
                .all()
                .filter(|ev| pick(graph.vertex(ev.vertex)))
                .map(|ev| {
                    job.metrics
                        .records
                        .get(&ev.attempt_id())
                        .copied()
                        .unwrap_or(0)
                })
                .fold(0u64, u64::saturating_add)
        };
        // Every registered TaskManager, idle ones with 0, so balance is judged over all of them.
        let mut per_tm: BTreeMap<String, u32> =
            self.tms.values().map(|t| (t.name.clone(), 0)).collect();
        for ev in job.eg.all() {
            if let Some(loc) = &ev.location {
                *per_tm.entry(loc.clone()).or_default() += 1;
            }
        }
        let dropped = job.metrics.dropped.values();
        Some(JobStatusReport {
            job: id,
            status: job.status(),
            records_in: sum(|v| v.is_source),
            records_out: sum(|v| v.is_sink),
            elapsed_ms: job.submitted.elapsed().as_millis() as u64,
            tasks_per_taskmanager: per_tm.into_iter().collect(),
            memory_per_taskmanager: self
                .tms
                .values()
                .map(|t| (t.name.clone(), t.memory))
                .collect(),
            records_dropped: dropped.fold(0u64, |a, b| a.saturating_add(*b)),
            message: job.message.clone(),
        })
    }

    pub(super) fn broadcast_status(&mut self, id: JobId) {
        let Some(report) = self.status_of(id) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(&id) {
            job.clients
                .retain(|c| c.send(JmToClient::Status(report.clone())).is_ok());
        }
    }
}
