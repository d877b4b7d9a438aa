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
    let history = RunHistory {
        outputs: outputs_of(store, checks),
        ..Default::default()
    };
    let verdict = delivery(&history, DeliveryMode::ExactlyOnce, &input);
    match verdict.passed {
        true => Ok(input.len() as u64),
        false => Err(format!(
            "{}: {}",
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
/// matter for exactly-once).
fn outputs_of(store: &CollectStore, checks: OutputChecks) -> Vec<OutputRecord> {
    store
        .records()
        .into_iter()
        .map(|r| {
            let count = checks
                .running_count(&r.payload)
                .and_then(|(key, count)| Some((key, NonZeroU64::new(count)?)));
            let tm = NodeName::from(&r.taskmanager[..])
                .taskmanager()
                .unwrap_or(0);
            OutputRecord::new(
                Default::default(),
                tm,
                r.subtask,
                r.attempt,
                r.origin,
                count,
            )
        })
        .collect()
}
