//! The built-in jobs: the `wordcount`, `keyed-count`, `etl` and `ad-stats` builders, the
//! record types they emit (`Event`, `KeyCount`, `WordCount`, `AdEvent`, `AdStats`), the shared
//! source and sink parameters they accept, and the [`JOBS`] table that names them. They are
//! registered the way a user's jobs are: [`builtin`] is a [`JobRegistry`] like any other.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{JobDef, JobRegistry};
use crate::api::checkable::{CheckableOutput, OutputChecks};
use crate::api::operator::{Origin, Traceable};
use crate::api::registry::Params;
use crate::api::stream::{Data, DataStream, StreamEnv};
use crate::api::window::WindowTime;
use crate::connectors::log::{GeneratedLog, KeySkew, LogRecord, LogSpec, PartitionedLog};
use crate::connectors::{LogInput, LogSource, SinkSpec};
use crate::error::JobError;

/// The built-in jobs.
pub const JOBS: &[JobDef] = &[
    JobDef {
        name: "wordcount",
        description: "generated lines -> split words -> key_by word -> running count -> sink",
        build: wordcount,
        output: OutputChecks::of::<WordCount>(),
    },
    JobDef {
        name: "keyed-count",
        description: "partitioned log -> map -> key_by key -> keyed count -> sink",
        build: keyed_count,
        output: OutputChecks::of::<KeyCount>(),
    },
    JobDef {
        name: "etl",
        description:
            "partitioned log -> map -> sink, forward only: one pipelined region per subtask",
        build: etl,
        output: OutputChecks::of::<Event>(),
    },
    JobDef {
        name: "ad-stats",
        description:
            "impressions + clicks logs -> map -> union -> key_by ad -> tumbling 1 s window -> sink",
        build: ad_stats,
        output: OutputChecks::of::<AdStats>(),
    },
];

/// The built-in jobs as a registry: what the `rill` binary runs, and what a user's registry
/// can start from ([`JobRegistry::with_all`]).
pub fn builtin() -> JobRegistry {
    JOBS.iter()
        .try_fold(JobRegistry::new(), |r, def| r.with(*def))
        .expect("the built-in jobs have distinct names")
}

/// Common source parameters: the log to read, its partitioning, pacing.
struct SourceParams {
    /// What the log holds (generated or files).
    log: Arc<dyn PartitionedLog>,
    /// Where a served log is read from instead (`log=rill://HOST:PORT`).
    server: Option<String>,
    parallelism: u32,
    rate: Option<f64>,
}

fn source_params(
    p: &mut Params<'_>,
    seed_offset: u64,
    default_parallelism: u32,
) -> Result<SourceParams, JobError> {
    let parallelism = p.get("source-parallelism", default_parallelism)?;
    let partitions = p.get("partitions", parallelism.max(1))?;
    let records: u64 = p.get("records", 10_000u64)?;
    let keys = p.get("keys", 1024u64)?.max(1);
    let seed = p.get("seed", 1u64)?;
    let hot = p.get("hot-key-per-mille", 0u32)?;
    let rate = p.get("rate", 0f64)?;
    let input: String = p.get("input", String::new())?;
    let server = log_server_param(p)?;
    if server.is_some() && !input.is_empty() {
        return Err(JobError::InvalidParam {
            param: "log".into(),
            reason: "give either input (files read in place) or log (a log server), not both"
                .into(),
        });
    }
    let spec = if input.is_empty() {
        LogSpec::Generated(GeneratedLog {
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
            timestamp_step_ms: 1,
        })
    } else {
        LogSpec::File(input.into())
    };
    let log = spec.open().map_err(|e| JobError::Source(e.to_string()))?;
    let rate = (rate > 0.0).then(|| rate / parallelism.max(1) as f64);
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

fn log_source(
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
    env.source(name, move |ctx| {
        Ok(Box::new(LogSource::open(&input, ctx, rate)?) as _)
    })
    .parallelism(parallelism)
}

/// The job's sink: what it is, where a collecting one writes, and how many records per second
/// it takes in total.
struct SinkParams {
    spec: SinkSpec,
    /// `sink-store=rill://HOST:PORT`: the served sink store (default: the in-process one).
    store: Option<String>,
    /// `sink-rate` (0 = unlimited): a slow sink makes the job show back-pressure.
    rate: f64,
}

fn sink_param(p: &mut Params<'_>) -> Result<SinkParams, JobError> {
    let spec = p.get("sink", SinkSpec::Discard)?;
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
        _ if !spec.collects() => {
            return Err(invalid(
                "only collecting sinks write to a sink store".into(),
            ))
        }
        _ => Some(crate::rpc::service::parse_url(&url).map_err(invalid)?),
    };
    Ok(SinkParams { spec, store, rate })
}

/// Adds the job's sink after `stream`, with the per-subtask share of `sink-rate`.
fn add_sink<T>(stream: DataStream<T>, sink: SinkParams, parallelism: u32)
where
    T: Data + Traceable,
{
    let SinkParams { spec, store, rate } = sink;
    stream
        .sink("sink", move |ctx| spec.instantiate(ctx, store.as_deref()))
        .rate_limit(rate / parallelism.max(1) as f64);
}

/// One record of the benchmark shape: sequence number, key, 8-byte payload, provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub key: u64,
    pub payload: u64,
    pub origin: Origin,
}

/// The running count of a key after one of its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub key: u64,
    pub count: u64,
    pub origin: Origin,
}

impl Traceable for KeyCount {
    fn origin(&self) -> Option<Origin> {
        Some(self.origin)
    }
}

/// One count per input record, each its key's running count.
impl CheckableOutput for KeyCount {
    const ONE_PER_INPUT: bool = true;
    const RUNNING_COUNTS: bool = true;

    fn running_count(&self) -> Option<(u64, u64)> {
        Some((self.key, self.count))
    }
}

fn keyed_count(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let source = source_params(p, 0, parallelism)?;
    let sink = sink_param(p)?;
    // A planted bug for testing the harness (FoundationDB calls this buggify): every n-th
    // record is emitted twice, as a sink that writes twice after a restart would.
    let duplicate_every = p.get("buggify-duplicate-every", 0u64)?;
    let out = log_source(p, env, "source", source)
        .flat_map("map", move |r: LogRecord| {
            let event = Event {
                key: r.key,
                payload: u64::from_le_bytes(
                    r.payload
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 8]),
                ),
                origin: r.origin(),
            };
            let copies = if duplicate_every > 0 && r.offset % duplicate_every == duplicate_every - 1
            {
                2
            } else {
                1
            };
            std::iter::repeat_n(event, copies)
        })
        .key_by(|e: &Event| e.key)
        .aggregate(
            "count",
            || 0u64,
            |n, _e| *n += 1,
            |k, n, e| KeyCount {
                key: *k,
                count: *n,
                origin: e.origin,
            },
        )
        .parallelism(parallelism);
    add_sink(out, sink, parallelism);
    Ok(())
}

impl Traceable for Event {
    fn origin(&self) -> Option<Origin> {
        Some(self.origin)
    }
}

/// etl maps each input record to one event.
impl CheckableOutput for Event {
    const ONE_PER_INPUT: bool = true;
}

/// A stateless per-record transformation, every edge forward: each subtask's chain is a
/// pipelined region of its own, so `region` failover restarts only what a failure touched.
fn etl(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let source = source_params(p, 0, parallelism)?;
    let sink = sink_param(p)?;
    let out = log_source(p, env, "source", source).map("map", |r: LogRecord| Event {
        key: r.key,
        payload: u64::from_le_bytes(
            r.payload
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 8]),
        ),
        origin: r.origin(),
    });
    add_sink(out.forward(), sink, parallelism);
    Ok(())
}

/// A word's running count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordCount {
    pub word: String,
    pub count: u64,
    pub origin: Origin,
}

impl Traceable for WordCount {
    fn origin(&self) -> Option<Origin> {
        Some(self.origin)
    }
}

/// A line yields a count per word: several outputs name the same input.
impl CheckableOutput for WordCount {
    const ONE_PER_INPUT: bool = false;
}

const VOCABULARY: &[&str] = &[
    "stream",
    "state",
    "barrier",
    "window",
    "key",
    "slot",
    "task",
    "shuffle",
    "credit",
    "buffer",
    "region",
    "failover",
    "checkpoint",
    "watermark",
    "source",
    "sink",
];

/// The words of a generated line: a pure function of the record, so replays agree.
pub fn words_of(record: &LogRecord) -> Vec<&'static str> {
    let mut x = record.key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ record.offset;
    (0..4 + (record.key % 4))
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            VOCABULARY[(x >> 33) as usize % VOCABULARY.len()]
        })
        .collect()
}

fn wordcount(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let source = source_params(p, 0, parallelism)?;
    let sink = sink_param(p)?;
    let out = log_source(p, env, "lines", source)
        .flat_map("split", |r: LogRecord| {
            let origin = r.origin();
            words_of(&r)
                .into_iter()
                .map(move |w| (w.to_string(), origin))
        })
        .key_by(|(w, _): &(String, Origin)| w.clone())
        .aggregate(
            "count",
            || 0u64,
            |n, _| *n += 1,
            |w, n, (_, o)| WordCount {
                word: w.clone(),
                count: *n,
                origin: *o,
            },
        )
        .parallelism(parallelism);
    add_sink(out, sink, parallelism);
    Ok(())
}

/// One ad event after normalisation: which ad, whether it is a click, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdEvent {
    pub ad: u64,
    pub click: bool,
    pub ts: u64,
    pub origin: Origin,
}

/// Impressions and clicks of one ad in one tumbling window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdStats {
    pub ad: u64,
    pub window_start: u64,
    pub impressions: u64,
    pub clicks: u64,
}

impl Traceable for AdStats {
    fn origin(&self) -> Option<Origin> {
        None
    }
}

/// Window aggregates name no input record.
impl CheckableOutput for AdStats {
    const ONE_PER_INPUT: bool = false;
}

fn ad_stats(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let window_ms = p.get("window-ms", 1000u64)?;
    let time = match p.get("time", String::from("event"))?.as_str() {
        "event" => WindowTime::event(|e: &AdEvent| e.ts),
        "processing" => WindowTime::Processing,
        other => {
            return Err(JobError::InvalidParam {
                param: "time".into(),
                reason: format!("'{other}': expected event or processing"),
            })
        }
    };
    let impressions = source_params(p, 0, parallelism)?;
    // Clicks: a second log from another seed, a tenth of the volume.
    let clicks_log = GeneratedLog {
        seed: p.get("seed", 1u64)?.wrapping_add(7919),
        partitions: 1,
        records_per_partition: Some(p.get("records", 10_000u64)?.div_ceil(10).max(1)),
        keys: p.get("keys", 1024u64)?.max(1),
        key_skew: KeySkew::Sequential,
        payload_bytes: 8,
        timestamp_step_ms: 10,
    };
    let clicks = SourceParams {
        log: Arc::new(clicks_log),
        server: impressions.server.clone(),
        parallelism: 1,
        // A tenth of the impressions' total rate, on its one subtask (`rate` is per subtask),
        // so both logs end together.
        rate: impressions
            .rate
            .map(|r| r * f64::from(impressions.parallelism) / 10.0),
    };
    let sink = sink_param(p)?;
    let to_event = |click: bool| {
        move |r: LogRecord| AdEvent {
            ad: r.key,
            click,
            ts: r.timestamp_ms,
            origin: r.origin(),
        }
    };
    let imps =
        log_source(p, env, "impressions", impressions).map("parse-impression", to_event(false));
    let clks = log_source(p, env, "clicks", clicks).map("parse-click", to_event(true));
    let out = imps
        .union(clks)
        .key_by(|e: &AdEvent| e.ad)
        .tumbling_window(
            "window",
            window_ms,
            time,
            || (0u64, 0u64),
            |acc, e| if e.click { acc.1 += 1 } else { acc.0 += 1 },
            |ad, w, acc| AdStats {
                ad: *ad,
                window_start: w.start,
                impressions: acc.0,
                clicks: acc.1,
            },
        )
        .parallelism(parallelism);
    add_sink(out, sink, parallelism);
    Ok(())
}
