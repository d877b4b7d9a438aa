//! Scenario files (TOML) -> [`crate::Scenario`], one file or a directory of them.
//!
//! The file is read into a `toml::Table` and walked by hand, so that every section can reject
//! keys it does not know (and every fault the keys its kind does not take) with the key's path
//! and the accepted keys. Defaults: `run_for` 120s, `description` empty, `delivery` unchecked;
//! in `[swarm]` `min_faults` 1, `max_faults` 3, `from` 0s, `until` = `run_for`,
//! `max_duration` 10s, `anchored_percent` 50; `buggify` (top level and in `[swarm]`) none;
//! in a fault's anchor (`at = { after = .. }`)
//! `from` and `offset` 0s. `memory_mb` is mirrored into the configuration as
//! `taskmanager.memory.process.size` (so `[config]` may not set it). After parsing,
//! [`validate`](super::validate()) checks ranges, node names, the job (through the registry) and
//! consistency.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fault::{anchor_event, fault_kind, fault_kind_names, Anchor, FaultTag, ANCHOR_EVENTS};
use crate::{
    ClusterShape, DeliveryMode, Direction, Expectations, Fault, FaultKind, JobOutcome, NodeName,
    Scenario, StoreFailureMode, Swarm,
};
use rill::buggify::Point;
use rill::config::{parse_duration, Configuration};
use rill::jobs::JobRegistry;
use rill::JobSpec;
use toml::{Table, Value};

use super::error::ScenarioError;
use super::validate::{apply_memory, config_leaves_cluster_keys, validate_in, MAX_MEMORY_MB};

type Result<T> = std::result::Result<T, ScenarioError>;

/// The share of a swarm's faults placed in the checkpoint cycle when its file does not say
/// (`[swarm] anchored_percent`).
pub const DEFAULT_ANCHORED_PERCENT: u32 = 50;

/// How long a scenario runs when its file does not set `run_for`.
pub const DEFAULT_RUN_FOR: Duration = Duration::from_secs(120);

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "run_for",
    "cluster",
    "job",
    "config",
    "faults",
    "swarm",
    "expect",
    "buggify",
];
const CLUSTER_KEYS: &[&str] = &["taskmanagers", "slots_per_taskmanager", "memory_mb"];
const SWARM_KEYS: &[&str] = &[
    "kinds",
    "min_faults",
    "max_faults",
    "from",
    "until",
    "max_duration",
    "anchored_percent",
    "buggify",
];
/// Keys of a fault's `at` when it is an anchor table.
const ANCHOR_KEYS: &[&str] = &["after", "checkpoint", "from", "offset"];
const EXPECT_KEYS: &[&str] = &[
    "delivery",
    "job",
    "max_stall",
    "max_recovery",
    "max_task_range",
    "max_memory_skew_percent",
    "drain_within",
];

/// One table of the file, with its path for error messages.
struct Sec<'a> {
    file: &'a str,
    path: String,
    table: &'a Table,
}

impl<'a> Sec<'a> {
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn check_keys(&self, allowed: &[&'static str]) -> Result<()> {
        match self.table.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(ScenarioError::UnknownKey {
                file: self.file.to_string(),
                path: self.path.clone(),
                key: key.clone(),
                expected: allowed.to_vec(),
            }),
        }
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_string(),
            path: self.key_path(key),
            reason: reason.into(),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, v: &Value) -> ScenarioError {
        self.invalid(
            key,
            format!("expected {expected}, found {} {v}", v.type_str()),
        )
    }

    fn missing(&self, key: &str) -> ScenarioError {
        ScenarioError::MissingKey {
            file: self.file.to_string(),
            path: self.key_path(key),
        }
    }

    fn required<T>(&self, key: &str, v: Option<T>) -> Result<T> {
        v.ok_or_else(|| self.missing(key))
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    fn req_str(&self, key: &str) -> Result<&'a str> {
        self.required(key, self.str(key)?)
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) if (min..=max).contains(i) => Ok(Some(*i)),
            Some(Value::Integer(i)) => {
                Err(self.invalid(key, format!("{i} is not within {min}..={max}")))
            }
            Some(v) => Err(self.wrong_type(key, "an integer", v)),
        }
    }

    fn u32(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.int(key, 0, u32::MAX.into())?.map(|i| i as u32))
    }

    fn float(&self, key: &str) -> Result<Option<f64>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::Float(f)) => Ok(Some(*f)),
            Some(Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(v) => Err(self.wrong_type(key, "a number", v)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "true or false", v)),
        }
    }

    fn bad_duration(&self, key: &str, value: String, reason: String) -> ScenarioError {
        ScenarioError::BadDuration {
            file: self.file.to_string(),
            path: self.key_path(key),
            value,
            reason,
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_duration(s)
                .map(Some)
                .map_err(|reason| self.bad_duration(key, format!("\"{s}\""), reason)),
            Some(v) => Err(self.bad_duration(
                key,
                v.to_string(),
                "durations are strings with a unit, e.g. \"5s\" or \"250ms\"".into(),
            )),
        }
    }

    fn req_duration(&self, key: &str) -> Result<Duration> {
        self.required(key, self.duration(key)?)
    }

    /// A signed duration ("-250ms") in whole milliseconds.
    fn signed_ms(&self, key: &str) -> Result<Option<i64>> {
        let Some(s) = self.str(key)? else {
            return Ok(None);
        };
        let (negative, magnitude) = match s.trim().strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let d = parse_duration(magnitude)
            .map_err(|reason| self.bad_duration(key, format!("\"{s}\""), reason))?;
        if d.subsec_nanos() % 1_000_000 != 0 {
            return Err(self.invalid(key, format!("'{s}' is not a whole number of milliseconds")));
        }
        let ms = i64::try_from(d.as_millis())
            .map_err(|_| self.invalid(key, format!("'{s}' is too large")))?;
        Ok(Some(if negative { -ms } else { ms }))
    }

    fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>> {
        let Some(s) = self.str(key)? else {
            return Ok(None);
        };
        match choices.iter().find(|(name, _)| *name == s) {
            Some((_, v)) => Ok(Some(*v)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                Err(self.invalid(
                    key,
                    format!("unknown value '{s}'; expected one of: {}", names.join(", ")),
                ))
            }
        }
    }

    /// Buggify points: `"all"` or an array of their names, each once; sorted.
    fn points(&self, key: &str) -> Result<Vec<Point>> {
        let expected = "\"all\" or an array of buggify point names";
        let names = match self.table.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) if s == "all" => return Ok(Point::ALL.to_vec()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| self.wrong_type(key, expected, v)))
                .collect::<Result<Vec<&str>>>()?,
            Some(v) => return Err(self.wrong_type(key, expected, v)),
        };
        let mut points = Vec::with_capacity(names.len());
        for name in names {
            let point: Point = name
                .parse()
                .map_err(|e| self.invalid(key, format!("{e}")))?;
            if points.contains(&point) {
                return Err(self.invalid(key, format!("'{name}' is named twice")));
            }
            points.push(point);
        }
        points.sort();
        Ok(points)
    }

    fn sub(&self, key: &str) -> Result<Option<Sec<'a>>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(Sec {
                file: self.file,
                path: self.key_path(key),
                table: t,
            })),
            Some(v) => Err(self.wrong_type(key, "a table", v)),
        }
    }

    fn req_sub(&self, key: &str) -> Result<Sec<'a>> {
        let sub = self.sub(key)?;
        self.required(key, sub)
    }
}

/// A scalar as the string a job parameter or configuration value takes.
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses and validates a scenario file of a built-in job. `file` names it in errors; its
/// stem must equal `name`.
pub fn parse_scenario(file: &str, text: &str) -> Result<Scenario> {
    parse_scenario_with(file, text, &rill::jobs::builtin())
}

/// Parses and validates a scenario file whose job is one of `jobs` (a user's registry).
pub fn parse_scenario_with(file: &str, text: &str, jobs: &JobRegistry) -> Result<Scenario> {
    let table: Table = toml::from_str(text).map_err(|e| ScenarioError::Toml {
        file: file.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let top = Sec {
        file,
        path: String::new(),
        table: &table,
    };
    top.check_keys(TOP_KEYS)?;
    let name = top.req_str("name")?.to_string();
    check_stem(file, &name)?;
    let run_for = top.duration("run_for")?.unwrap_or(DEFAULT_RUN_FOR);
    let cluster = parse_cluster(&top.req_sub("cluster")?)?;
    let mut config = parse_config(top.sub("config")?)?;
    config_leaves_cluster_keys(file, &config)?;
    apply_memory(&mut config, cluster.memory_mb);
    let scenario = Scenario {
        description: top.str("description")?.unwrap_or_default().to_string(),
        job: parse_job(&top.req_sub("job")?)?,
        cluster,
        config,
        faults: parse_faults(&top)?,
        swarm: top
            .sub("swarm")?
            .map(|s| parse_swarm(&s, run_for))
            .transpose()?,
        expect: top
            .sub("expect")?
            .map(|s| parse_expect(&s))
            .transpose()?
            .unwrap_or_default(),
        buggify: top.points("buggify")?,
        name,
        run_for,
    };
    validate_in(file, &scenario, jobs)?;
    Ok(scenario)
}

fn check_stem(file: &str, name: &str) -> Result<()> {
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file);
    if stem == name {
        return Ok(());
    }
    Err(ScenarioError::NameMismatch {
        file: file.to_string(),
        name: name.to_string(),
        stem: stem.to_string(),
    })
}

fn parse_cluster(s: &Sec) -> Result<ClusterShape> {
    s.check_keys(CLUSTER_KEYS)?;
    Ok(ClusterShape {
        taskmanagers: s.required("taskmanagers", s.u32("taskmanagers")?)?,
        slots_per_taskmanager: s
            .required("slots_per_taskmanager", s.u32("slots_per_taskmanager")?)?,
        memory_mb: s
            .int("memory_mb", 1, MAX_MEMORY_MB as i64)?
            .map(|m| m as u64),
    })
}

/// `name` plus parameters: every other key, its value stringified.
fn parse_job(s: &Sec) -> Result<JobSpec> {
    let mut job = JobSpec::new(s.req_str("name")?);
    for (key, value) in s.table.iter().filter(|(k, _)| *k != "name") {
        let v = scalar_string(value)
            .ok_or_else(|| s.wrong_type(key, "a string, number or boolean", value))?;
        job.params.insert(key.clone(), v);
    }
    Ok(job)
}

/// Flink keys, quoted (`"heartbeat.timeout" = "5s"`) or as dotted TOML keys.
fn parse_config(s: Option<Sec>) -> Result<Configuration> {
    let mut config = Configuration::new();
    if let Some(s) = s {
        set_config(&s, "", s.table, &mut config)?;
    }
    Ok(config)
}

fn set_config(s: &Sec, prefix: &str, table: &Table, config: &mut Configuration) -> Result<()> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Value::Table(t) = value {
            set_config(s, &full, t, config)?;
            continue;
        }
        let v = scalar_string(value)
            .ok_or_else(|| s.wrong_type(&format!("\"{full}\""), "a scalar", value))?;
        config
            .set(&full, &v)
            .map_err(|error| ScenarioError::Config {
                file: s.file.to_string(),
                error,
            })?;
    }
    Ok(())
}

fn parse_faults(top: &Sec) -> Result<Vec<Fault>> {
    let items = match top.table.get("faults") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(v) => return Err(top.wrong_type("faults", "an array of tables ([[faults]])", v)),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Table(t) => parse_fault(&Sec {
                file: top.file,
                path: format!("faults[{i}]"),
                table: t,
            }),
            v => Err(top.wrong_type(&format!("faults[{i}]"), "a table", v)),
        })
        .collect()
}

fn parse_fault(s: &Sec) -> Result<Fault> {
    let kind = s.req_str("kind")?;
    let spec = fault_kind(kind).ok_or_else(|| {
        s.invalid(
            "kind",
            format!(
                "unknown fault kind '{kind}'; expected one of: {}",
                fault_kind_names(|_| true)
            ),
        )
    })?;
    s.check_keys(spec.keys)?;
    let (at, anchor) = parse_at(s)?;
    // Any string names a node here; the validator refuses those the cluster does not have.
    let node = |key: &str| s.req_str(key).map(NodeName::from);
    let target = || node("target");
    let kind = match spec.tag {
        FaultTag::Crash => FaultKind::Crash {
            target: target()?,
            restart_after: s.duration("restart_after")?,
        },
        FaultTag::OomKill => FaultKind::OomKill {
            target: target()?,
            restart_after: s.duration("restart_after")?,
        },
        FaultTag::Partition => FaultKind::Partition {
            target: target()?,
            direction: s
                .choice("direction", DIRECTIONS)?
                .unwrap_or(Direction::Both),
            heal_after: s.duration("heal_after")?,
        },
        FaultTag::LinkPartition => FaultKind::LinkPartition {
            from: node("from")?,
            to: node("to")?,
            both_ways: s.bool("both_ways")?.unwrap_or(true),
            heal_after: s.duration("heal_after")?,
        },
        FaultTag::PacketLoss => FaultKind::PacketLoss {
            rate: s.required("rate", s.float("rate")?)?,
            duration: s.duration("duration")?,
        },
        FaultTag::Latency => FaultKind::Latency {
            min: s.req_duration("min")?,
            max: s.req_duration("max")?,
            duration: s.duration("duration")?,
        },
        FaultTag::Pause => FaultKind::Pause {
            target: target()?,
            duration: s.req_duration("duration")?,
        },
        FaultTag::ClockSkew => FaultKind::ClockSkew {
            target: target()?,
            offset_ms: s.required("offset", s.signed_ms("offset")?)?,
        },
        FaultTag::StoreFailure => FaultKind::StoreFailure {
            mode: s.required("mode", s.choice("mode", STORE_MODES)?)?,
            duration: s.req_duration("duration")?,
        },
    };
    Ok(Fault { at, kind, anchor })
}

/// A fault's `at`: a duration (`at = "5s"`: that long after submission), or an anchor table
/// placing it in the job's cycle: `at = { after = "checkpoint-triggered", checkpoint = 3,
/// offset = "20ms" }` begins it 20 ms after chk-3 is triggered. `after` names the event
/// ([`ANCHOR_EVENTS`]); `checkpoint` (checkpoint anchors only, from 1) the checkpoint, else
/// the first event at or after `from` (default 0s) counts; `offset` defaults to 0s. Returns
/// the fault's `at` (the anchor's `from`) and its anchor.
fn parse_at(s: &Sec) -> Result<(Duration, Option<Anchor>)> {
    let a = match s.table.get("at") {
        None => return Err(s.missing("at")),
        Some(Value::Table(_)) => s.req_sub("at")?,
        Some(Value::String(_)) => return Ok((s.req_duration("at")?, None)),
        Some(v) => {
            return Err(s.invalid(
                "at",
                format!(
                    "expected a duration (\"5s\") or an anchor ({{ after = \"checkpoint-triggered\", checkpoint = 3, offset = \"20ms\" }}), found {} {v}",
                    v.type_str()
                ),
            ))
        }
    };
    a.check_keys(ANCHOR_KEYS)?;
    let name = a.req_str("after")?;
    let event = anchor_event(name).ok_or_else(|| {
        let names: Vec<&str> = ANCHOR_EVENTS.iter().map(|(n, _)| *n).collect();
        a.invalid(
            "after",
            format!(
                "unknown anchor '{name}'; expected one of: {}",
                names.join(", ")
            ),
        )
    })?;
    let checkpoint = match a.table.get("checkpoint") {
        Some(Value::Integer(n)) if *n < 1 => {
            return Err(a.invalid(
                "checkpoint",
                format!("{n}: checkpoints are numbered from 1 (chk-1 is the job's first)"),
            ))
        }
        _ => a.int("checkpoint", 1, i64::MAX)?.map(|n| n as u64),
    };
    if checkpoint.is_some() && !event.is_checkpoint() {
        return Err(a.invalid(
            "checkpoint",
            format!("only checkpoint anchors name a checkpoint; '{name}' waits for the first such event at or after `from`"),
        ));
    }
    let anchor = Anchor {
        event,
        checkpoint,
        offset: a.duration("offset")?.unwrap_or(Duration::ZERO),
    };
    Ok((a.duration("from")?.unwrap_or(Duration::ZERO), Some(anchor)))
}

pub(crate) const DIRECTIONS: &[(&str, Direction)] = &[
    ("both", Direction::Both),
    ("inbound", Direction::Inbound),
    ("outbound", Direction::Outbound),
];
pub(crate) const STORE_MODES: &[(&str, StoreFailureMode)] = &[
    ("fail", StoreFailureMode::Fail),
    ("stall", StoreFailureMode::Stall),
];
pub(crate) const DELIVERY_MODES: &[(&str, DeliveryMode)] = DeliveryMode::NAMES;
pub(crate) const JOB_OUTCOMES: &[(&str, JobOutcome)] = &[
    ("finished", JobOutcome::Finished),
    ("failed", JobOutcome::Failed),
    ("lost", JobOutcome::Lost),
];

fn parse_swarm(s: &Sec, run_for: Duration) -> Result<Swarm> {
    s.check_keys(SWARM_KEYS)?;
    let kinds = match s.table.get("kinds") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| s.wrong_type("kinds", "an array of strings", v))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(v) => return Err(s.wrong_type("kinds", "an array of strings", v)),
        None => return Err(s.missing("kinds")),
    };
    Ok(Swarm {
        kinds,
        min_faults: s.u32("min_faults")?.unwrap_or(1),
        max_faults: s.u32("max_faults")?.unwrap_or(3),
        from: s.duration("from")?.unwrap_or(Duration::ZERO),
        until: s.duration("until")?.unwrap_or(run_for),
        max_duration: s
            .duration("max_duration")?
            .unwrap_or(Duration::from_secs(10)),
        anchored_percent: s
            .int("anchored_percent", 0, 100)?
            .map_or(DEFAULT_ANCHORED_PERCENT, |p| p as u32),
        buggify: s.points("buggify")?,
    })
}

fn parse_expect(s: &Sec) -> Result<Expectations> {
    s.check_keys(EXPECT_KEYS)?;
    Ok(Expectations {
        delivery: s
            .choice("delivery", DELIVERY_MODES)?
            .unwrap_or(DeliveryMode::Unchecked),
        job: s.choice("job", JOB_OUTCOMES)?,
        max_stall: s.duration("max_stall")?,
        max_recovery: s.duration("max_recovery")?,
        max_task_range: s.u32("max_task_range")?,
        max_memory_skew_percent: s.u32("max_memory_skew_percent")?,
        drain_within: s.duration("drain_within")?,
    })
}

fn io_error(path: &Path, e: std::io::Error) -> ScenarioError {
    ScenarioError::Io {
        file: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Parses one scenario file of a built-in job.
pub fn load_file(path: &Path) -> Result<Scenario> {
    load_file_with(path, &rill::jobs::builtin())
}

/// Parses one scenario file whose job is one of `jobs` (a user's own scenario directory).
pub fn load_file_with(path: &Path, jobs: &JobRegistry) -> Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    parse_scenario_with(&path.display().to_string(), &text, jobs)
}

/// The `*.toml` files of `dir`, sorted by path.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses every `*.toml` file of `dir`, sorted by scenario name; the first error stops it.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>> {
    load_dir_with(dir, &rill::jobs::builtin())
}

/// [`load_dir`] for scenarios whose jobs are in `jobs`.
pub fn load_dir_with(dir: &Path, jobs: &JobRegistry) -> Result<Vec<Scenario>> {
    let mut scenarios = toml_files(dir)?
        .iter()
        .map(|p| load_file_with(p, jobs))
        .collect::<Result<Vec<_>>>()?;
    scenarios.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scenarios)
}

/// Names of the scenarios in `dir` (the stems of its `*.toml` files), sorted: what a binary
/// lists and a sweep may name, without parsing every file.
pub fn names_in(dir: &Path) -> Result<Vec<String>> {
    Ok(toml_files(dir)?
        .iter()
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect())
}

/// Loads the scenario `name` (the file `<dir>/<name>.toml`) whose job is one of `jobs`; an
/// unknown name is an error listing the names `dir` has, so a typo is one look away.
pub fn load_named(dir: &Path, name: &str, jobs: &JobRegistry) -> Result<Scenario> {
    let path = dir.join(format!("{name}.toml"));
    if !path.is_file() {
        return Err(ScenarioError::UnknownScenario {
            name: name.to_string(),
            dir: dir.display().to_string(),
            known: names_in(dir)?,
        });
    }
    load_file_with(&path, jobs)
}
