//! The built-in jobs: the `wordcount`, `keyed-count`, `etl` and `ad-stats` builders, the
//! record types they emit (`Event`, `KeyCount`, `WordCount`, `AdEvent`, `AdStats`), the shared
//! source and sink parameters they accept, and the [`JOBS`] table that names them. They are
//! registered the way a user's jobs are: [`builtin`] is a [`JobRegistry`] like any other.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::io::{add_sink, log_source, timestamp_step_ms, SinkParams, SourceParams};
use super::{JobDef, JobRegistry};
use crate::api::checkable::{CheckableOutput, OutputChecks};
use crate::api::operator::{Origin, Traceable};
use crate::api::registry::Params;
use crate::api::stream::StreamEnv;
use crate::api::window::WindowTime;
use crate::connectors::log::{GeneratedLog, KeySkew, LogRecord};
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

/// One record of the benchmark shape: sequence number, key, 8-byte payload, provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The input record's key.
    pub key: u64,
    /// The first 8 bytes of its payload, little-endian (0 if shorter).
    pub payload: u64,
    /// The input record it came from.
    pub origin: Origin,
}

/// The running count of a key after one of its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    /// The key.
    pub key: u64,
    /// Records of the key so far, this one included.
    pub count: u64,
    /// The input record counted last.
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
    let source = SourceParams::read(p, 0, parallelism)?;
    let sink = SinkParams::read(p)?;
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
    let source = SourceParams::read(p, 0, parallelism)?;
    let sink = SinkParams::read(p)?;
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
    /// The word.
    pub word: String,
    /// Its occurrences so far, this one included.
    pub count: u64,
    /// The input line it was read from.
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
    let source = SourceParams::read(p, 0, parallelism)?;
    let sink = SinkParams::read(p)?;
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
    /// The ad (the input record's key).
    pub ad: u64,
    /// Whether it is a click (from the clicks log) or an impression.
    pub click: bool,
    /// Its event time, in milliseconds.
    pub ts: u64,
    /// The input record it came from.
    pub origin: Origin,
}

/// Impressions and clicks of one ad in one tumbling window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdStats {
    /// The ad.
    pub ad: u64,
    /// The window's first millisecond.
    pub window_start: u64,
    /// Impressions of the ad in the window.
    pub impressions: u64,
    /// Clicks on the ad in the window.
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
    let impressions = SourceParams::read(p, 0, parallelism)?;
    // Clicks: a second log from another seed, a tenth of the volume, read by one subtask at a
    // tenth of the impressions' rate, so both logs end together and their event times keep
    // the same pace.
    let clicks_rate = impressions.rate().map_or(0.0, |r| r / 10.0);
    let clicks_log = GeneratedLog {
        seed: p.get("seed", 1u64)?.wrapping_add(7919),
        partitions: 1,
        records_per_partition: Some(p.get("records", 10_000u64)?.div_ceil(10).max(1)),
        keys: p.get("keys", 1024u64)?.max(1),
        key_skew: KeySkew::Sequential,
        payload_bytes: 8,
        timestamp_step_ms: timestamp_step_ms(clicks_rate, 1, 10),
    };
    let clicks = impressions.beside(Arc::new(clicks_log), 1, 10);
    let sink = SinkParams::read(p)?;
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
