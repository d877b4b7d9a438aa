//! Exactly-once for tests that run a job themselves (on real tokio too, outside the runner):
//! the sink store's output and the input log are judged by the harness's one delivery checker
//! ([`crate::check::delivery`]), with its evidence.

use std::num::NonZeroU64;

use rill::api::{Origin, OutputChecks};
use rill::connectors::log::PartitionedLog;
use rill::connectors::CollectStore;
use rill::jobs::KeyCount;

use crate::check::{delivery, ExpectedInput};
use crate::history::{OutputRecord, RunHistory};
use crate::node::NodeName;
use crate::scenario::DeliveryMode;

/// Every record of `log` and its key, by partition and offset.
pub fn input_of(log: &dyn PartitionedLog) -> Result<ExpectedInput, String> {
    let mut input = ExpectedInput::default();
    let mut keys = Vec::new();
    for partition in 0..log.partitions() {
        // A hint only: never more than a run could hold, whatever the log claims.
        if let Ok(Some(len)) = log.len(partition) {
            input.reserve(partition, len.min(1 << 26) as usize);
        }
        let mut offset = 0;
        loop {
            keys.clear();
            let n = log
                .read_keys(partition, offset, 4096, &mut keys)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            for key in &keys {
                input.push(Origin { partition, offset }, *key);
                offset += 1;
            }
        }
    }
    Ok(input)
}

/// Checks that `store` holds exactly one output per record of `log` (and, for running
/// counts, that each key's counts run 1..=n); returns the number of inputs checked.
pub fn verify_exactly_once(
    store: &CollectStore,
    log: &dyn PartitionedLog,
    checks: OutputChecks,
) -> Result<u64, String> {
    let input = input_of(log)?;
    let outputs = outputs_of(store, checks)?;
    // The delivery checker skips outputs that name no input (jobs whose outputs never do);
    // here every output must name one, so none can pass unseen.
    if outputs.len() != input.len() {
        return Err(format!(
            "{} outputs for {} inputs",
            outputs.len(),
            input.len()
        ));
    }
    let history = RunHistory {
        outputs,
        ..Default::default()
    };
    let verdict = delivery(&history, DeliveryMode::ExactlyOnce, &input);
    match verdict.passed {
        true => Ok(input.len() as u64),
        false => Err(format!(
            "{}: {} (outputs in arrival order; their times are not recorded here)",
            verdict.summary,
            verdict.evidence.unwrap_or_default()
        )),
    }
}

/// [`verify_exactly_once`] for keyed-count's output.
pub fn verify_keyed_count(store: &CollectStore, log: &dyn PartitionedLog) -> Result<u64, String> {
    verify_exactly_once(store, log, OutputChecks::of::<KeyCount>())
}

/// The store's visible records as the checkers see them, in arrival order (times do not
/// matter for exactly-once). An output that names no input, or whose running count cannot
/// be decoded when the job reports them, is an error: it could not be checked.
fn outputs_of(store: &CollectStore, checks: OutputChecks) -> Result<Vec<OutputRecord>, String> {
    store
        .records()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let origin = r
                .origin
                .ok_or_else(|| format!("output {i} (sink subtask {}) names no input", r.subtask))?;
            let count = match checks.has_running_counts() {
                true => {
                    let (key, count) = checks
                        .running_count(&r.payload)
                        .ok_or_else(|| format!("output {i} for input {origin:?} is undecodable"))?;
                    let count = NonZeroU64::new(count)
                        .ok_or_else(|| format!("output {i} for input {origin:?} counts 0"))?;
                    Some((key, count))
                }
                false => None,
            };
            let tm = NodeName::from(&r.taskmanager[..])
                .taskmanager()
                .unwrap_or(0);
            let at = Default::default();
            Ok(OutputRecord::new(
                at,
                tm,
                r.subtask,
                r.attempt,
                Some(origin),
                count,
            ))
        })
        .collect()
}
