//! The standard source and sink of a job, with the parameters every job built on them accepts.
//!
//! A job that reads through [`log_source`] and writes through [`add_sink`] runs anywhere
//! unchanged: in place (`rill local`), against a served log and sink store
//! (`log=rill://...`, `sink-store=rill://...`), and under the harness, which points those
//! parameters at its `source-log` and `sink-store` nodes and reads the output from there.

use std::sync::Arc;

use crate::api::registry::Params;
use crate::api::stream::{Data, DataStream, StreamEnv};
use crate::chain::Traceable;
use crate::connectors::log::{GeneratedLog, KeySkew, LogRecord, LogSpec, PartitionedLog};
use crate::connectors::{LogInput, LogSource, Sink, SinkSpec};
use crate::error::JobError;

/// Common source parameters: the log to read, its partitioning, pacing.
pub struct SourceParams {
    /// What the log holds (generated or files).
    log: Arc<dyn PartitionedLog>,
    /// Where a served log is read from instead (`log=rill://HOST:PORT`).
    server: Option<String>,
    parallelism: u32,
    /// Records per second over all subtasks, if paced.
    rate: Option<f64>,
}

impl SourceParams {
    /// Reads the standard source parameters: `source-parallelism` (default
    /// `default_parallelism`), `partitions`, `records`, `keys`, `seed` (offset by
    /// `seed_offset`, so two sources of one job read different logs), `hot-key-per-mille`,
    /// `rate`, `input` (a file log) and `log` (a log server).
    pub fn read(
        p: &mut Params<'_>,
        seed_offset: u64,
        default_parallelism: u32,
    ) -> Result<SourceParams, JobError> {
        read_source(p, seed_offset, default_parallelism)
    }

    /// A source over a log of the job's own (`log` is what it holds: the harness serves it
    /// from its `source-log` node and checks delivery against it), with `parallelism`
    /// subtasks; reads only `rate` (records per second over all subtasks, 0: unpaced) and
    /// `log` (a log server to read it from instead).
    pub fn of_log(
        p: &mut Params<'_>,
        log: Arc<dyn PartitionedLog>,
        parallelism: u32,
    ) -> Result<SourceParams, JobError> {
        let rate = p.get("rate", 0f64)?;
        let server = log_server_param(p)?;
        Ok(SourceParams {
            log,
            server,
            parallelism,
            rate: (rate > 0.0).then_some(rate),
        })
    }

    /// Records per second over all subtasks, if paced.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// A second source beside this one: it reads `log` with `parallelism` subtasks from the
    /// same place (in place, or the same log server), at this one's total rate divided by
    /// `divisor`.
    pub fn beside(&self, log: Arc<dyn PartitionedLog>, parallelism: u32, divisor: u32) -> Self {
        SourceParams {
            log,
            server: self.server.clone(),
            parallelism,
            rate: self.rate.map(|r| r / f64::from(divisor.max(1))),
        }
    }
}

/// The event-time step between a generated partition's records: paced at `rate` records per
/// second over `partitions`, each partition's records come that far apart in processing time,
/// and event time keeps pace with it, as in a live stream (windows then close as often as
/// their size says); unpaced, `unpaced` ms.
pub fn timestamp_step_ms(rate: f64, partitions: u32, unpaced: u64) -> u64 {
    if rate <= 0.0 {
        return unpaced;
    }
    let step = (1000.0 * f64::from(partitions.max(1)) / rate).round();
    // Saturates: a rate below one record a second over many partitions is still a step.
    (step as u64).max(1)
}

/// The most partitions, or source subtasks, a job parameter may ask for: Flink's largest max
/// parallelism (2^15) twice over.
const MAX_COUNT: u32 = 1 << 16;

fn read_source(
    p: &mut Params<'_>,
    seed_offset: u64,
    default_parallelism: u32,
) -> Result<SourceParams, JobError> {
    // 0 is left to the graph's check, which says why (a vertex with no subtasks).
    let parallelism = p.get_within("source-parallelism", default_parallelism, 0..=MAX_COUNT)?;
    let partitions = p.get_within("partitions", parallelism.max(1), 1..=MAX_COUNT)?;
    let records: u64 = p.get("records", 10_000u64)?;
    let keys = p.get_within("keys", 1024u64, 1..=u64::from(u32::MAX))?;
    let seed = p.get("seed", 1u64)?;
    let hot = p.get_within("hot-key-per-mille", 0u32, 0..=1000)?;
    let rate = p.get_within("rate", 0f64, 0.0..=1e9)?;
    let input = p.path("input")?;
    let server = log_server_param(p)?;
    if server.is_some() && input.is_some() {
        return Err(JobError::InvalidParam {
            param: "log".into(),
            reason: "give either input (files read in place) or log (a log server), not both"
                .into(),
        });
    }
    let spec = match input {
        Some(dir) => LogSpec::File(dir),
        None => LogSpec::Generated(GeneratedLog {
            seed: seed.wrapping_add(seed_offset),
            partitions,
            records_per_partition: (records > 0)
                .then_some(records.div_ceil(partitions.max(1) as u64)),
            keys,
            key_skew: if hot > 0 {
                KeySkew::HotKey { per_mille: hot }
            } else {
                KeySkew::Sequential
            },
            payload_bytes: 8,
            timestamp_step_ms: timestamp_step_ms(rate, partitions, 1),
        }),
    };
    let log = spec.open().map_err(|e| JobError::Source(e.to_string()))?;
    let rate = (rate > 0.0).then_some(rate);
    Ok(SourceParams {
        log,
        server,
        parallelism,
        rate,
    })
}

/// `log=rill://HOST:PORT`: the log server the sources read from (default: read in place).
fn log_server_param(p: &mut Params<'_>) -> Result<Option<String>, JobError> {
    let url: String = p.get("log", String::new())?;
    if url.is_empty() {
        return Ok(None);
    }
    crate::rpc::service::parse_url(&url)
        .map(Some)
        .map_err(|reason| JobError::InvalidParam {
            param: "log".into(),
            reason,
        })
}

/// A source named `name` over the log `s` describes, read in place or from the log server
/// `log` names; the job reports the log as one of its inputs (what a log server, and the
/// harness's `source-log` node, serve to it).
pub fn log_source(
    p: &mut Params<'_>,
    env: &StreamEnv,
    name: &str,
    s: SourceParams,
) -> DataStream<LogRecord> {
    let SourceParams {
        log,
        server,
        parallelism,
        rate,
    } = s;
    p.inputs.push((name.to_string(), log.clone()));
    let input = match server {
        Some(addr) => LogInput::Served {
            addr,
            topic: name.to_string(),
            partitions: log.partitions(),
        },
        None => LogInput::Local(log),
    };
    env.source(name, LogSource::new(input).paced(rate.unwrap_or(0.0)))
        .parallelism(parallelism)
}

/// The job's sink: what it is, where a collecting one writes, and how many records per second
/// it takes in total.
pub struct SinkParams {
    /// The built-in sink the `sink` parameter names; none: the job's own (`sink=own`, or no
    /// `sink` at all for a job that has one, see [`add_own_sink`]).
    spec: Option<SinkSpec>,
    /// `sink-store=rill://HOST:PORT`: the served sink store (default: the in-process one).
    store: Option<String>,
    /// `sink-rate` (0 = unlimited): a slow sink makes the job show back-pressure.
    rate: f64,
}

impl SinkParams {
    /// Reads the standard sink parameters: `sink` (`discard`, `collect`,
    /// `collect-transactional`, `file:DIR`, or `own`: the job's own sink), `sink-rate` and
    /// `sink-store` (a served sink store).
    pub fn read(p: &mut Params<'_>) -> Result<SinkParams, JobError> {
        read_sink(p)
    }
}

fn read_sink(p: &mut Params<'_>) -> Result<SinkParams, JobError> {
    let named: String = p.get("sink", String::new())?;
    let spec = match named.as_str() {
        "" | "own" => None,
        other => match other.parse().map_err(|reason| JobError::InvalidParam {
            param: "sink".into(),
            reason,
        })? {
            SinkSpec::File(dir) => Some(SinkSpec::File(p.allowed_path("sink", &dir)?)),
            spec => Some(spec),
        },
    };
    let rate = p.get("sink-rate", 0f64)?;
    if rate < 0.0 {
        return Err(JobError::InvalidParam {
            param: "sink-rate".into(),
            reason: "must be >= 0".into(),
        });
    }
    let url: String = p.get("sink-store", String::new())?;
    let invalid = |reason: String| JobError::InvalidParam {
        param: "sink-store".into(),
        reason,
    };
    let store = match url.as_str() {
        "" => None,
        _ if !spec.as_ref().is_some_and(SinkSpec::collects) => {
            return Err(invalid(
                "only collecting sinks write to a sink store".into(),
            ))
        }
        _ => Some(crate::rpc::service::parse_url(&url).map_err(invalid)?),
    };
    Ok(SinkParams { spec, store, rate })
}

/// Adds the job's sink after `stream`: the built-in one the `sink` parameter names (default
/// `discard`), with the per-subtask share of `sink-rate`.
pub fn add_sink<T>(stream: DataStream<T>, sink: SinkParams, parallelism: u32)
where
    T: Data + Traceable,
{
    add_own_sink(
        stream,
        sink,
        parallelism,
        SinkSpec::Discard.with_store(None),
    );
}

/// Adds the job's sink after `stream`: `own`, the job's own sink, unless the `sink` parameter
/// names a built-in one. The harness always names one (it collects what the job writes), so a
/// job with a sink of its own still runs, and is checked, under it.
pub fn add_own_sink<T, S>(stream: DataStream<T>, sink: SinkParams, parallelism: u32, own: S)
where
    T: Data + Traceable,
    S: Sink<T>,
{
    let SinkParams { spec, store, rate } = sink;
    let per_subtask = rate / parallelism.max(1) as f64;
    match spec {
        Some(spec) => stream.sink("sink", spec.with_store(store)),
        None => stream.sink("sink", own),
    }
    .rate_limit(per_subtask);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::checkable::OutputChecks;
    use crate::api::FileAccess;
    use crate::jobs::{JobDef, JobRegistry};
    use crate::JobSpec;

    fn the_log() -> Arc<dyn PartitionedLog> {
        Arc::new(GeneratedLog::new(42, 3, Some(5)))
    }

    fn own_log(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
        let source = SourceParams::of_log(p, the_log(), 3)?;
        let sink = SinkParams::read(p)?;
        let keys =
            log_source(p, env, "mine", source).map("key", |r: LogRecord| crate::jobs::Event {
                key: r.key,
                payload: 0,
                origin: r.origin(),
            });
        add_sink(keys, sink, 3);
        Ok(())
    }

    #[test]
    fn a_job_with_a_log_of_its_own_reports_it_as_its_input() {
        let jobs = JobRegistry::new()
            .with(JobDef {
                name: "own-log",
                description: "",
                build: own_log,
                output: OutputChecks::OPAQUE,
            })
            .unwrap();
        let spec = JobSpec::new("own-log")
            .with("rate", 100)
            .with("sink", "collect");
        let inputs = jobs.inputs(&spec).expect("builds");
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].0, "mine");
        assert_eq!(inputs[0].1.partitions(), 3);
        let served = spec.with("log", "rill://10.0.3.2:6131");
        assert!(
            jobs.build(&served, 128, &FileAccess::Anywhere).is_ok(),
            "it takes the harness's parameters"
        );
    }

    #[test]
    fn paced_event_time_keeps_pace_with_processing_time() {
        // 2,000 records/s over 12 partitions: each partition's records 6 ms apart.
        assert_eq!(timestamp_step_ms(2000.0, 12, 1), 6);
        assert_eq!(timestamp_step_ms(0.0, 12, 7), 7, "unpaced: the given step");
        assert_eq!(timestamp_step_ms(1e9, 1, 1), 1, "never below a millisecond");
        assert_eq!(timestamp_step_ms(1e-300, 1, 1), u64::MAX, "saturates");
    }

    /// Found by the scenario fuzzer (fuzz-a23ffcff17fd5e52): the impressions' event time ran
    /// at a sixth of processing time, so a 250 ms window closed every 1.5 s and the output
    /// paused that long with no fault. Both logs of ad-stats now keep pace with their rate.
    #[test]
    fn ad_stats_event_time_keeps_pace_with_its_rate() {
        let spec = JobSpec::new("ad-stats")
            .with("parallelism", 12)
            .with("rate", 2000)
            .with("records", 8146)
            .with("sink", "collect");
        let inputs = crate::jobs::builtin().inputs(&spec).expect("builds");
        let step = |name: &str| {
            let (_, log) = inputs.iter().find(|(n, _)| n == name).expect(name);
            let mut out = Vec::new();
            log.read(0, 0, 2, &mut out).expect("reads");
            out[1].timestamp_ms - out[0].timestamp_ms
        };
        // Impressions: 2,000/s over 12 partitions; clicks: 200/s on one.
        assert_eq!(step("impressions"), 6);
        assert_eq!(step("clicks"), 5);
    }
}
