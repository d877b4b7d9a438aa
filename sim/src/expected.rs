//! Expected results of fault-free runs, computed from the input alone, and exact comparisons
//! that report the first difference.

use std::collections::BTreeMap;

use rill::api::registry::KeyCount;
use rill::api::Origin;
use rill::connectors::log::PartitionedLog;
use rill::connectors::CollectStore;

/// Checks a keyed-count output against its input: every input record produced exactly one
/// output, for the right key, and each key's running counts are exactly 1..=n.
pub fn verify_keyed_count(store: &CollectStore, log: &dyn PartitionedLog) -> Result<u64, String> {
    let records = store
        .decoded::<KeyCount>()
        .map_err(|e| format!("undecodable output: {e}"))?;
    let mut seen: BTreeMap<Origin, u64> = BTreeMap::new();
    let mut counts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (_, out) in &records {
        if let Some(prev) = seen.insert(out.origin, out.key) {
            return Err(format!(
                "input {:?} (key {prev}) produced output twice",
                out.origin
            ));
        }
        counts.entry(out.key).or_default().push(out.count);
    }
    let mut expected_total = 0u64;
    let mut batch = Vec::new();
    for partition in 0..log.partitions() {
        let mut offset = 0;
        loop {
            batch.clear();
            let n = log
                .read(partition, offset, 4096, &mut batch)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            for r in &batch {
                match seen.get(&r.origin()) {
                    None => {
                        return Err(format!(
                            "input {:?} (key {}) produced no output",
                            r.origin(),
                            r.key
                        ))
                    }
                    Some(&key) if key != r.key => {
                        return Err(format!(
                            "input {:?} has key {} but its output says {key}",
                            r.origin(),
                            r.key
                        ))
                    }
                    Some(_) => {}
                }
            }
            offset += n as u64;
            expected_total += n as u64;
        }
    }
    if records.len() as u64 != expected_total {
        return Err(format!(
            "{} outputs for {expected_total} inputs",
            records.len()
        ));
    }
    for (key, mut c) in counts {
        c.sort_unstable();
        if let Some((i, got)) = c.iter().enumerate().find(|(i, got)| **got != *i as u64 + 1) {
            return Err(format!(
                "key {key}: running counts are not 1..={}; position {i} has {got}",
                c.len()
            ));
        }
    }
    Ok(expected_total)
}
