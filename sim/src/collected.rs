//! What a run's sink store collected, as the run history's outputs and commits: one home for
//! the conversion, shared by the simulated runner and the runner of real processes.

use std::num::NonZeroU64;
use std::time::Duration;

use bytes::Bytes;
use rill::api::OutputChecks;
use rill::connectors::CollectStore;
use rill::rpc::JobStatusReport;
use tokio::time::Instant;

use crate::history::{CommitRecord, OutputRecord, Placement};
use crate::node::NodeName;

/// Every collected record as an output, sorted by time since `start` (checkers rely on it),
/// and, with `keep_payloads`, their encodings in the same order. Takes them from the store.
pub fn outputs(
    collect: &CollectStore,
    start: Instant,
    checks: OutputChecks,
    keep_payloads: bool,
) -> (Vec<OutputRecord>, Vec<Bytes>) {
    let keyed = checks.has_running_counts();
    let batches = collect.take_batches();
    let total = batches.iter().map(|b| b.len()).sum();
    let mut outputs = Vec::with_capacity(total);
    let mut payloads = Vec::with_capacity(if keep_payloads { total } else { 0 });
    for batch in batches.iter() {
        let at = batch.at.saturating_duration_since(start);
        let tm = NodeName::from(&batch.taskmanager[..])
            .taskmanager()
            .unwrap_or(0);
        if keep_payloads {
            payloads.extend(batch.iter_shared().map(|(_, payload)| payload));
        }
        for (origin, payload) in batch.iter() {
            let count = keyed
                .then(|| checks.running_count(payload))
                .flatten()
                .and_then(|(key, count)| Some((key, NonZeroU64::new(count)?)));
            outputs.push(OutputRecord::new(
                at,
                tm,
                batch.subtask,
                batch.attempt,
                origin,
                count,
            ));
        }
    }
    // Batches become visible in time order, so this only checks (in linear time). The sort is
    // stable, so encodings keep their records' places.
    if keep_payloads {
        let mut both: Vec<(OutputRecord, Bytes)> = outputs.into_iter().zip(payloads).collect();
        both.sort_by_key(|(o, _)| o.at);
        return both.into_iter().unzip();
    }
    outputs.sort_by_key(|o| o.at);
    (outputs, payloads)
}

/// Every transaction the store made visible, in order, timed since `start`. Takes them from
/// the store.
pub fn commits(collect: &CollectStore, start: Instant) -> Vec<CommitRecord> {
    collect
        .take_commits()
        .into_iter()
        .map(|c| CommitRecord {
            at: c.at.saturating_duration_since(start),
            sink: c.sink.to_string(),
            subtask: c.subtask,
            attempt: c.attempt,
            staged: c.staged,
            by: c.by,
            records: c.records,
        })
        .collect()
}

/// Tasks per TaskManager whenever they changed.
pub fn placements(statuses: &[(Duration, JobStatusReport)]) -> Vec<Placement> {
    let mut out: Vec<Placement> = Vec::new();
    for (at, report) in statuses {
        if report.tasks_per_taskmanager.is_empty()
            || out
                .last()
                .is_some_and(|p| p.tasks == report.tasks_per_taskmanager)
        {
            continue;
        }
        out.push(Placement {
            at: *at,
            tasks: report.tasks_per_taskmanager.clone(),
        });
    }
    out
}
