//! Flink-style configuration: typed keys with defaults, validated when set.
//!
//! [`KEYS`] is the single home of every key's name, kind, default and description. Values are
//! validated against it on [`Configuration::set`], so a typo in a scenario file or on the command
//! line fails loudly at start-up (with a "did you mean" hint) instead of silently running with a
//! default. Typed getters read the explicit value or fall back to the table's default.
//!
//! Only explicitly set values are stored, so the configuration the JobManager ships to
//! TaskManagers stays small and `get_raw` can tell "set" from "defaulted".

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Key names, as constants so callers (CLI, scenarios, harness) cannot misspell them.
pub mod keys {
    pub const HEARTBEAT_INTERVAL: &str = "heartbeat.interval";
    pub const HEARTBEAT_TIMEOUT: &str = "heartbeat.timeout";
    pub const HEARTBEAT_RPC_FAILURE_THRESHOLD: &str = "heartbeat.rpc-failure-threshold";
    pub const SLOTS_PER_TASKMANAGER: &str = "taskmanager.numberOfTaskSlots";
    pub const MEMORY_PROCESS_SIZE: &str = "taskmanager.memory.process.size";
    pub const TASK_OVERHEAD: &str = "taskmanager.memory.task-overhead";
    pub const SEGMENT_SIZE: &str = "taskmanager.memory.segment-size";
    pub const BUFFERS_PER_CHANNEL: &str = "taskmanager.network.memory.buffers-per-channel";
    pub const FLOATING_BUFFERS_PER_GATE: &str =
        "taskmanager.network.memory.floating-buffers-per-gate";
    pub const BUFFER_TIMEOUT: &str = "execution.buffer-timeout";
    pub const FAILOVER_STRATEGY: &str = "jobmanager.execution.failover-strategy";
    pub const LOAD_BALANCE_MODE: &str = "taskmanager.load-balance.mode";
    pub const RESTART_STRATEGY: &str = "restart-strategy.type";
    pub const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
    pub const CHECKPOINT_TIMEOUT: &str = "execution.checkpointing.timeout";
    pub const CHECKPOINTS_RETAINED: &str = "state.checkpoints.num-retained";
    pub const CHECKPOINTS_DIR: &str = "state.checkpoints.dir";
    pub const CLUSTER_SECRET: &str = "security.cluster.secret";
    pub const CLUSTER_ID: &str = "cluster.id";
    pub const MAX_FRAME_SIZE: &str = "rpc.max-frame-size";
    pub const REGISTRATION_TIMEOUT: &str = "taskmanager.registration.timeout";
    pub const MAX_PARALLELISM: &str = "pipeline.max-parallelism";
    pub const FIXED_DELAY_ATTEMPTS: &str = "restart-strategy.fixed-delay.attempts";
    pub const FIXED_DELAY_DELAY: &str = "restart-strategy.fixed-delay.delay";
    pub const EXP_INITIAL_BACKOFF: &str = "restart-strategy.exponential-delay.initial-backoff";
    pub const EXP_MAX_BACKOFF: &str = "restart-strategy.exponential-delay.max-backoff";
    pub const EXP_BACKOFF_MULTIPLIER: &str =
        "restart-strategy.exponential-delay.backoff-multiplier";
    pub const EXP_RESET_BACKOFF_THRESHOLD: &str =
        "restart-strategy.exponential-delay.reset-backoff-threshold";
    pub const EXP_JITTER_FACTOR: &str = "restart-strategy.exponential-delay.jitter-factor";
    pub const EXP_ATTEMPTS_BEFORE_RESET: &str =
        "restart-strategy.exponential-delay.attempts-before-reset-backoff";
    pub const FR_MAX_FAILURES: &str = "restart-strategy.failure-rate.max-failures-per-interval";
    pub const FR_INTERVAL: &str = "restart-strategy.failure-rate.failure-rate-interval";
    pub const FR_DELAY: &str = "restart-strategy.failure-rate.delay";

    /// Flink's old boolean switch for balanced scheduling; stored as `LOAD_BALANCE_MODE`.
    pub const BALANCE_ALIAS: &str = "jobmanager.ng-scheduler.balance-match-between-taskmanagers";
}

use keys::*;

/// What values a key accepts; drives validation on set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyKind {
    /// Flink duration syntax, at least `min` (e.g. a heartbeat interval of 0 would spin).
    Duration { min: Duration },
    /// Flink memory-size syntax, in bytes within `min..=max`.
    MemorySize { min: u64, max: u64 },
    /// Unsigned integer within `min..=max` (max keeps typed getters free of overflow).
    Int { min: u64, max: u64 },
    /// Finite float within `min..=max`.
    Float { min: f64, max: f64 },
    /// `true` / `false`, case-insensitive, stored lowercase.
    Bool,
    /// One of `values` (case-insensitive); `aliases` map alternative spellings to a value.
    Choice {
        values: &'static [&'static str],
        aliases: &'static [(&'static str, &'static str)],
    },
    /// Any non-empty string (an empty secret or cluster id is always a mistake).
    Text,
    /// `none` (unset) or a duration of at least `min`.
    OptionalDuration { min: Duration },
}

/// One known key: the only place its name, accepted values and default are written down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyDef {
    pub name: &'static str,
    pub kind: KeyKind,
    pub default: &'static str,
    pub description: &'static str,
}

const fn key(
    name: &'static str,
    kind: KeyKind,
    default: &'static str,
    description: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        kind,
        default,
        description,
    }
}

const MS: Duration = Duration::from_millis(1);
const ZERO: Duration = Duration::ZERO;
const U32: u64 = u32::MAX as u64;
/// Flink's upper bound on max parallelism (number of key groups), 2^15.
const MAX_KEY_GROUPS: u64 = 1 << 15;

const FAILOVER_VALUES: &[&str] = &["full", "region", "taskmanager"];
const LOAD_BALANCE_VALUES: &[&str] = &["none", "slots", "tasks"];
const RESTART_VALUES: &[&str] = &["none", "fixed-delay", "exponential-delay", "failure-rate"];
/// Flink's alternative spellings of restart strategies.
const RESTART_ALIASES: &[(&str, &str)] = &[
    ("off", "none"),
    ("disable", "none"),
    ("fixeddelay", "fixed-delay"),
    ("exponentialdelay", "exponential-delay"),
    ("failurerate", "failure-rate"),
];

/// Every known key, with Flink's defaults (rill-only keys are marked as such).
pub const KEYS: &[KeyDef] = &[
    key(HEARTBEAT_INTERVAL, KeyKind::Duration { min: MS }, "10s",
        "How often the JobManager and TaskManagers send heartbeats."),
    key(HEARTBEAT_TIMEOUT, KeyKind::Duration { min: MS }, "50s",
        "Silence after which a heartbeat target is considered dead."),
    key(HEARTBEAT_RPC_FAILURE_THRESHOLD, KeyKind::Int { min: 1, max: U32 }, "2",
        "Consecutive failed heartbeat RPCs after which the target is considered dead."),
    key(SLOTS_PER_TASKMANAGER, KeyKind::Int { min: 1, max: U32 }, "1",
        "Task slots offered by each TaskManager."),
    key(MEMORY_PROCESS_SIZE, KeyKind::MemorySize { min: 1, max: u64::MAX }, "1728m",
        "Total memory of a TaskManager process; exceeding it gets the process OOM-killed."),
    key(TASK_OVERHEAD, KeyKind::MemorySize { min: 0, max: u64::MAX }, "4m",
        "(rill) Memory accounted for each deployed task on top of its buffers."),
    key(SEGMENT_SIZE, KeyKind::MemorySize { min: 64, max: U32 }, "32kb",
        "Size of one network buffer."),
    key(BUFFERS_PER_CHANNEL, KeyKind::Int { min: 1, max: U32 }, "2",
        "Exclusive buffers (initial credit) per input channel; at least 1 so no channel starves."),
    key(FLOATING_BUFFERS_PER_GATE, KeyKind::Int { min: 0, max: U32 }, "8",
        "Floating buffers shared by all channels of an input gate."),
    key(BUFFER_TIMEOUT, KeyKind::Duration { min: ZERO }, "100ms",
        "Longest a partly filled output buffer waits before it is flushed."),
    key(FAILOVER_STRATEGY, KeyKind::Choice { values: FAILOVER_VALUES, aliases: &[] }, "region",
        "What restarts after a failure: full job, pipelined region, or the dead TaskManager's tasks."),
    key(LOAD_BALANCE_MODE, KeyKind::Choice { values: LOAD_BALANCE_VALUES, aliases: &[] }, "none",
        "How subtasks are spread over TaskManagers: none, by slots, or by task count."),
    key(RESTART_STRATEGY, KeyKind::Choice { values: RESTART_VALUES, aliases: RESTART_ALIASES },
        "none", "Restart strategy after failures."),
    key(CHECKPOINT_INTERVAL, KeyKind::OptionalDuration { min: Duration::from_millis(10) }, "none",
        "Interval between checkpoints; none disables checkpointing."),
    key(CHECKPOINT_TIMEOUT, KeyKind::Duration { min: MS }, "10min",
        "A checkpoint not completed within this time is declined."),
    key(CHECKPOINTS_RETAINED, KeyKind::Int { min: 1, max: U32 }, "1",
        "Completed checkpoints kept for recovery."),
    key(CHECKPOINTS_DIR, KeyKind::Text, "jobmanager",
        "Where completed checkpoints go: jobmanager (its memory), a directory (or file:///DIR), \
         or rill://HOST:PORT (a `rill checkpoint-store`)."),
    key(CLUSTER_SECRET, KeyKind::Text, "rill-dev-secret",
        "(rill) Shared secret every node presents in the RPC handshake."),
    key(CLUSTER_ID, KeyKind::Text, "rill",
        "(rill) Cluster id checked in the RPC handshake, so clusters never cross-connect."),
    key(MAX_FRAME_SIZE, KeyKind::MemorySize { min: 1024, max: U32 }, "16mb",
        "(rill) Largest RPC frame accepted; larger frames close the connection."),
    key(REGISTRATION_TIMEOUT, KeyKind::Duration { min: MS }, "5min",
        "A TaskManager that cannot register within this time gives up."),
    key(MAX_PARALLELISM, KeyKind::Int { min: 1, max: MAX_KEY_GROUPS }, "128",
        "Number of key groups, the upper bound for keyed parallelism."),
    key(FIXED_DELAY_ATTEMPTS, KeyKind::Int { min: 0, max: U32 }, "1",
        "fixed-delay: restarts before the job fails."),
    key(FIXED_DELAY_DELAY, KeyKind::Duration { min: ZERO }, "1s",
        "fixed-delay: pause between restarts."),
    key(EXP_INITIAL_BACKOFF, KeyKind::Duration { min: ZERO }, "1s",
        "exponential-delay: first back-off."),
    key(EXP_MAX_BACKOFF, KeyKind::Duration { min: ZERO }, "1min",
        "exponential-delay: largest back-off."),
    key(EXP_BACKOFF_MULTIPLIER, KeyKind::Float { min: 1.0, max: f64::MAX }, "1.5",
        "exponential-delay: factor applied to the back-off after each failure."),
    key(EXP_RESET_BACKOFF_THRESHOLD, KeyKind::Duration { min: ZERO }, "1h",
        "exponential-delay: running this long without failure resets the back-off."),
    key(EXP_JITTER_FACTOR, KeyKind::Float { min: 0.0, max: 1.0 }, "0.1",
        "exponential-delay: relative random jitter on each back-off."),
    key(EXP_ATTEMPTS_BEFORE_RESET, KeyKind::Int { min: 1, max: U32 }, "2147483647",
        "exponential-delay: restarts allowed before the back-off is reset, then the job fails."),
    key(FR_MAX_FAILURES, KeyKind::Int { min: 1, max: U32 }, "1",
        "failure-rate: failures tolerated per interval before the job fails."),
    key(FR_INTERVAL, KeyKind::Duration { min: MS }, "1min",
        "failure-rate: window over which failures are counted."),
    key(FR_DELAY, KeyKind::Duration { min: ZERO }, "1s",
        "failure-rate: pause between restarts."),
];

/// Deprecated Flink names accepted as plain renames of a current key.
const KEY_ALIASES: &[(&str, &str)] = &[
    ("restart-strategy", RESTART_STRATEGY),
    ("execution.checkpointing.num-retained", CHECKPOINTS_RETAINED),
];

/// Every known key as (name, default, description), in table order, for the CLI to print.
pub fn known_keys() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    KEYS.iter().map(|k| (k.name, k.default, k.description))
}

fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

/// Why a key or value was refused; messages are meant for the person who typed them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown configuration key '{key}'{}", suggestion_hint(.suggestion))]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    #[error("invalid value '{value}' for '{key}': expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("malformed argument '{0}': expected key=value")]
    MalformedPair(String),
    /// Values that are valid alone but not together.
    #[error("inconsistent configuration: {0}")]
    Inconsistent(String),
}

fn suggestion_hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(known) => format!(" (did you mean '{known}'?)"),
        None => String::new(),
    }
}

/// Raw validated key/value configuration, serializable so the JobManager can ship it to
/// TaskManagers. Holds only explicitly set values; defaults come from [`KEYS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    values: BTreeMap<String, String>,
}

impl Configuration {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates `key` and `value` against [`KEYS`] and stores the value (choices and booleans
    /// in canonical lowercase spelling). Accepts deprecated key aliases.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        if key == BALANCE_ALIAS {
            let enabled = validate(&KeyKind::Bool, value).map_err(|e| invalid(key, value, e))?;
            let mode = if enabled == "true" { "tasks" } else { "none" };
            return self.set(LOAD_BALANCE_MODE, mode);
        }
        let name = KEY_ALIASES
            .iter()
            .find(|(a, _)| *a == key)
            .map_or(key, |(_, k)| *k);
        let def = key_def(name).ok_or_else(|| unknown_key(key))?;
        let normalized = validate(&def.kind, value).map_err(|e| invalid(key, value, e))?;
        self.values.insert(def.name.to_string(), normalized);
        Ok(())
    }

    /// Builder form of [`Configuration::set`].
    pub fn with(mut self, key: &str, value: &str) -> Result<Self, ConfigError> {
        self.set(key, value)?;
        Ok(self)
    }

    /// Builds a configuration from pairs; later pairs override earlier ones.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        pairs
            .into_iter()
            .try_fold(Self::new(), |conf, (k, v)| conf.with(k, v))
    }

    /// Splits a `key=value` command-line argument at the first `=`, trimming spaces.
    pub fn parse_pair(arg: &str) -> Result<(String, String), ConfigError> {
        match arg.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(ConfigError::MalformedPair(arg.to_string())),
        }
    }

    /// The explicitly set value of `key`, if any (no defaults, no aliases).
    /// This configuration with every value explicitly set in `other` on top, checked as a whole.
    pub fn merged(&self, other: &Configuration) -> Result<Configuration, ConfigError> {
        let mut merged = self.clone();
        for (key, value) in &other.values {
            merged.set(key, value)?;
        }
        merged.validate()?;
        Ok(merged)
    }

    /// Checks what single keys cannot: the heartbeat timeout must exceed the interval (or every
    /// TaskManager would be declared lost on every tick), and a network buffer must fit in a
    /// frame (or a full buffer could never be sent).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_timeout() <= self.heartbeat_interval() {
            return Err(ConfigError::Inconsistent(format!(
                "heartbeat.timeout ({:?}) must be greater than heartbeat.interval ({:?})",
                self.heartbeat_timeout(),
                self.heartbeat_interval()
            )));
        }
        // A buffer of segment-size plus one record and the frame header must fit.
        if self.buffer_size() + 64 * 1024 > self.max_frame_size() {
            return Err(ConfigError::Inconsistent(format!(
                "rpc.max-frame-size ({}) must exceed taskmanager.memory.segment-size ({}) by at least 64kb",
                self.max_frame_size(),
                self.buffer_size()
            )));
        }
        Ok(())
    }

    pub fn get_raw(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Every known key with its effective value, sorted by key name.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let mut all: Vec<_> = KEYS
            .iter()
            .map(|k| (k.name, self.value(k.name).to_string()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    // ---- typed getters ---------------------------------------------------------------------

    pub fn heartbeat_interval(&self) -> Duration {
        self.duration(HEARTBEAT_INTERVAL)
    }
    pub fn heartbeat_timeout(&self) -> Duration {
        self.duration(HEARTBEAT_TIMEOUT)
    }
    pub fn heartbeat_rpc_failure_threshold(&self) -> u32 {
        self.int(HEARTBEAT_RPC_FAILURE_THRESHOLD)
    }
    pub fn slots_per_taskmanager(&self) -> u32 {
        self.int(SLOTS_PER_TASKMANAGER)
    }
    /// Bytes.
    pub fn memory_process_size(&self) -> u64 {
        self.memory(MEMORY_PROCESS_SIZE)
    }
    /// Bytes accounted per deployed task.
    pub fn task_overhead_bytes(&self) -> u64 {
        self.memory(TASK_OVERHEAD)
    }
    /// Bytes per network buffer.
    pub fn buffer_size(&self) -> usize {
        self.memory_usize(SEGMENT_SIZE)
    }
    pub fn buffers_per_channel(&self) -> u32 {
        self.int(BUFFERS_PER_CHANNEL)
    }
    pub fn floating_buffers_per_gate(&self) -> u32 {
        self.int(FLOATING_BUFFERS_PER_GATE)
    }
    pub fn buffer_timeout(&self) -> Duration {
        self.duration(BUFFER_TIMEOUT)
    }
    pub fn failover_strategy(&self) -> FailoverStrategy {
        self.parsed(FAILOVER_STRATEGY, FailoverStrategy::Region)
    }
    pub fn load_balance_mode(&self) -> LoadBalanceMode {
        self.parsed(LOAD_BALANCE_MODE, LoadBalanceMode::None)
    }
    pub fn restart_strategy(&self) -> RestartStrategyKind {
        self.parsed(RESTART_STRATEGY, RestartStrategyKind::None)
    }
    /// `None` means checkpointing is disabled.
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        self.typed(CHECKPOINT_INTERVAL, parse_optional_duration, None)
    }
    pub fn checkpoint_timeout(&self) -> Duration {
        self.duration(CHECKPOINT_TIMEOUT)
    }
    pub fn checkpoints_retained(&self) -> u32 {
        self.int(CHECKPOINTS_RETAINED)
    }
    /// The raw `state.checkpoints.dir`; `state::store::CheckpointStorage` parses it.
    pub fn checkpoints_dir(&self) -> &str {
        self.value(CHECKPOINTS_DIR)
    }
    pub fn cluster_secret(&self) -> String {
        self.value(CLUSTER_SECRET).to_string()
    }
    pub fn cluster_id(&self) -> String {
        self.value(CLUSTER_ID).to_string()
    }
    /// Bytes.
    pub fn max_frame_size(&self) -> usize {
        self.memory_usize(MAX_FRAME_SIZE)
    }
    pub fn registration_timeout(&self) -> Duration {
        self.duration(REGISTRATION_TIMEOUT)
    }
    /// Number of key groups.
    pub fn max_parallelism(&self) -> u32 {
        self.int(MAX_PARALLELISM)
    }
    pub fn fixed_delay_attempts(&self) -> u32 {
        self.int(FIXED_DELAY_ATTEMPTS)
    }
    pub fn fixed_delay_delay(&self) -> Duration {
        self.duration(FIXED_DELAY_DELAY)
    }
    pub fn exponential_delay_initial_backoff(&self) -> Duration {
        self.duration(EXP_INITIAL_BACKOFF)
    }
    pub fn exponential_delay_max_backoff(&self) -> Duration {
        self.duration(EXP_MAX_BACKOFF)
    }
    pub fn exponential_delay_backoff_multiplier(&self) -> f64 {
        self.typed(EXP_BACKOFF_MULTIPLIER, |s| parse_float(s).ok(), 1.0)
    }
    pub fn exponential_delay_reset_backoff_threshold(&self) -> Duration {
        self.duration(EXP_RESET_BACKOFF_THRESHOLD)
    }
    pub fn exponential_delay_jitter_factor(&self) -> f64 {
        self.typed(EXP_JITTER_FACTOR, |s| parse_float(s).ok(), 0.0)
    }
    pub fn exponential_delay_attempts_before_reset_backoff(&self) -> u32 {
        self.int(EXP_ATTEMPTS_BEFORE_RESET)
    }
    pub fn failure_rate_max_failures_per_interval(&self) -> u32 {
        self.int(FR_MAX_FAILURES)
    }
    pub fn failure_rate_interval(&self) -> Duration {
        self.duration(FR_INTERVAL)
    }
    pub fn failure_rate_delay(&self) -> Duration {
        self.duration(FR_DELAY)
    }

    // ---- getter plumbing -------------------------------------------------------------------

    /// Explicit value, else the table default ("" only for a key missing from the table).
    fn value(&self, key: &str) -> &str {
        self.get_raw(key)
            .unwrap_or_else(|| key_def(key).map_or("", |k| k.default))
    }

    /// Parses the effective value; a deserialized configuration is not re-validated, so an
    /// unparsable value falls back to the default, then to `last_resort`, rather than panic.
    fn typed<T>(&self, key: &str, parse: impl Fn(&str) -> Option<T>, last_resort: T) -> T {
        let default = key_def(key).map_or("", |k| k.default);
        parse(self.value(key))
            .or_else(|| parse(default))
            .unwrap_or(last_resort)
    }

    fn duration(&self, key: &str) -> Duration {
        self.typed(key, |s| parse_duration(s).ok(), Duration::ZERO)
    }

    fn memory(&self, key: &str) -> u64 {
        self.typed(key, |s| parse_memory_size(s).ok(), 0)
    }

    fn memory_usize(&self, key: &str) -> usize {
        self.typed(
            key,
            |s| {
                parse_memory_size(s)
                    .ok()
                    .and_then(|b| usize::try_from(b).ok())
            },
            0,
        )
    }

    fn int(&self, key: &str) -> u32 {
        self.typed(key, |s| s.trim().parse::<u32>().ok(), 0)
    }

    fn parsed<T: FromStr>(&self, key: &str, last_resort: T) -> T {
        self.typed(key, |s| s.parse().ok(), last_resort)
    }
}

fn invalid(key: &str, value: &str, expected: String) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn unknown_key(key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_string(),
        suggestion: closest_key(key),
    }
}

// ---- validation ----------------------------------------------------------------------------

const DURATION_EXAMPLES: &str = "a duration like 500ms, 10s, 1min";
const MEMORY_EXAMPLES: &str = "a memory size like 512kb, 64m, 1g";

/// Checks `value` against `kind`; returns the spelling to store or a description of what was
/// expected (the parse error detail is dropped: "expected X" is what the user needs).
fn validate(kind: &KeyKind, value: &str) -> Result<String, String> {
    let ok = match *kind {
        KeyKind::Duration { min } => parse_duration(value).is_ok_and(|d| d >= min),
        KeyKind::OptionalDuration { min } => {
            parse_optional_duration(value).is_some_and(|d| d.is_none_or(|d| d >= min))
        }
        KeyKind::MemorySize { min, max } => {
            parse_memory_size(value).is_ok_and(|b| (min..=max).contains(&b))
        }
        KeyKind::Int { min, max } => value.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n)),
        KeyKind::Float { min, max } => parse_float(value).is_ok_and(|f| f >= min && f <= max),
        KeyKind::Bool => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
        KeyKind::Choice { values, aliases } => {
            return canonical_choice(value, values, aliases).ok_or_else(|| expected(kind));
        }
        KeyKind::Text => !value.is_empty(),
    };
    match (ok, kind) {
        (false, _) => Err(expected(kind)),
        (true, KeyKind::Bool | KeyKind::OptionalDuration { .. }) => Ok(value.to_ascii_lowercase()),
        (true, _) => Ok(value.to_string()),
    }
}

/// Human description of what `kind` accepts, used in [`ConfigError::InvalidValue`].
fn expected(kind: &KeyKind) -> String {
    match *kind {
        KeyKind::Duration { min } if min.is_zero() => DURATION_EXAMPLES.to_string(),
        KeyKind::Duration { min } => format!("{DURATION_EXAMPLES}, at least {}ms", min.as_millis()),
        KeyKind::OptionalDuration { min } => {
            format!(
                "'none' or {DURATION_EXAMPLES}, at least {}ms",
                min.as_millis()
            )
        }
        KeyKind::MemorySize { min, max } => format!("{MEMORY_EXAMPLES}{}", byte_bounds(min, max)),
        KeyKind::Int { min, max: u64::MAX } => format!("an integer >= {min}"),
        KeyKind::Int { min, max } => format!("an integer between {min} and {max}"),
        KeyKind::Float { min, max } if max == f64::MAX => format!("a number >= {min}"),
        KeyKind::Float { min, max } => format!("a number between {min} and {max}"),
        KeyKind::Bool => "true or false".to_string(),
        KeyKind::Choice { values, .. } => format!("one of {}", values.join(", ")),
        KeyKind::Text => "a non-empty string".to_string(),
    }
}

fn byte_bounds(min: u64, max: u64) -> String {
    match (min, max) {
        (0, u64::MAX) => String::new(),
        (min, u64::MAX) => format!(", at least {min} bytes"),
        (min, max) => format!(", between {min} and {max} bytes"),
    }
}

/// Maps `value` (case-insensitive, aliases resolved) to its canonical spelling in `values`.
fn canonical_choice(
    value: &str,
    values: &'static [&'static str],
    aliases: &[(&str, &'static str)],
) -> Option<String> {
    let lower = value.trim().to_ascii_lowercase();
    let resolved = aliases
        .iter()
        .find(|(a, _)| *a == lower)
        .map_or(lower.as_str(), |(_, c)| *c);
    values
        .iter()
        .find(|v| **v == resolved)
        .map(|v| v.to_string())
}

/// Closest known key by edit distance, if close enough to be a plausible typo. Ties go to the
/// first key in table order, so the hint is deterministic.
fn closest_key(key: &str) -> Option<String> {
    let wanted = key.to_ascii_lowercase();
    let limit = (key.len() / 4).max(2);
    KEYS.iter()
        .map(|k| (edit_distance(&wanted, &k.name.to_ascii_lowercase()), k.name))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name.to_string())
}

/// Damerau-style edit distance (insert, delete, substitute, swap adjacent): a swapped pair of
/// letters, the most common typo, counts as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

// ---- value syntaxes ------------------------------------------------------------------------

/// Splits "123 unit" into its digits and its (trimmed, lowercased) unit.
fn split_number(s: &str) -> Result<(u64, String), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty value".to_string());
    }
    if s.starts_with('-') {
        return Err(format!("negative value '{s}'"));
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("'{s}' does not start with a number"));
    }
    let number = digits
        .parse::<u64>()
        .map_err(|_| format!("number too large in '{s}'"))?;
    Ok((number, unit.trim().to_lowercase()))
}

/// Nanoseconds per duration unit, with Flink's unit spellings.
const DURATION_UNITS: &[(&[&str], u128)] = &[
    (&["ns", "nano", "nanos", "nanosecond", "nanoseconds"], 1),
    (
        &["us", "µs", "micro", "micros", "microsecond", "microseconds"],
        1_000,
    ),
    (
        &["", "ms", "milli", "millis", "millisecond", "milliseconds"],
        1_000_000,
    ),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000_000_000),
    (&["h", "hour", "hours"], 3_600_000_000_000),
    (&["d", "day", "days"], 86_400_000_000_000),
];

/// Parses Flink's duration syntax: "500" (milliseconds), "500ms", "10 s", "1min", "2m", "1h",
/// "1d" (units case-insensitive). Negative, empty, fractional and overflowing values are errors.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(s)?;
    let nanos_per_unit = DURATION_UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit.as_str()))
        .map(|(_, n)| *n)
        .ok_or_else(|| format!("unknown duration unit '{unit}' in '{}'", s.trim()))?;
    let nanos = u128::from(number) * nanos_per_unit; // < 2^64 * 2^47: cannot overflow u128
    let secs = u64::try_from(nanos / 1_000_000_000)
        .map_err(|_| format!("duration '{}' is too large", s.trim()))?;
    // The remainder is < 10^9, so the cast is lossless.
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Bytes per memory unit, with Flink's unit spellings (binary multiples).
const MEMORY_UNITS: &[(&[&str], u64)] = &[
    (&["", "b", "bytes"], 1),
    (&["k", "kb", "kibibytes"], 1 << 10),
    (&["m", "mb", "mebibytes"], 1 << 20),
    (&["g", "gb", "gibibytes"], 1 << 30),
    (&["t", "tb", "tebibytes"], 1 << 40),
];

/// Parses Flink's memory-size syntax into bytes: "1024" (bytes), "512 kb", "1728m", "1728mb",
/// "1g", "1tb" (case-insensitive). Negative, empty and overflowing values are errors.
pub fn parse_memory_size(s: &str) -> Result<u64, String> {
    let (number, unit) = split_number(s)?;
    let bytes_per_unit = MEMORY_UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit.as_str()))
        .map(|(_, n)| *n)
        .ok_or_else(|| format!("unknown memory unit '{unit}' in '{}'", s.trim()))?;
    number
        .checked_mul(bytes_per_unit)
        .ok_or_else(|| format!("memory size '{}' is too large", s.trim()))
}

/// `none` (case-insensitive) means unset; anything else must be a duration. Outer `None` means
/// the value is invalid.
fn parse_optional_duration(s: &str) -> Option<Option<Duration>> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Some(None);
    }
    parse_duration(s).ok().map(Some)
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        _ => Err(format!("'{s}' is not a finite number")),
    }
}

// ---- choice enums --------------------------------------------------------------------------

/// Implements `FromStr`/`Display` for a choice enum with the config spellings, so the table,
/// the parser and the printer cannot disagree.
macro_rules! choice_enum {
    ($ty:ident, $values:ident, $aliases:expr, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match canonical_choice(s, $values, $aliases).as_deref() {
                    $(Some($name) => Ok(Self::$variant),)+
                    _ => Err(format!("'{}' is not one of {}", s.trim(), $values.join(", "))),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$variant => $name,)+ })
            }
        }
    };
}

/// What is restarted when a task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailoverStrategy {
    /// Restart every task of the job.
    Full,
    /// Restart the pipelined region(s) of the failed task (Flink FLIP-1).
    Region,
    /// Restart only the subtasks of the failed TaskManager (Gemini-2.0 partial failover).
    TaskManager,
}
choice_enum!(FailoverStrategy, FAILOVER_VALUES, &[], {
    Full => "full", Region => "region", TaskManager => "taskmanager",
});

/// How the scheduler spreads subtasks over TaskManagers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadBalanceMode {
    None,
    Slots,
    Tasks,
}
choice_enum!(LoadBalanceMode, LOAD_BALANCE_VALUES, &[], {
    None => "none", Slots => "slots", Tasks => "tasks",
});

/// Which restart strategy governs restarts after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartStrategyKind {
    None,
    FixedDelay,
    ExponentialDelay,
    FailureRate,
}
choice_enum!(RestartStrategyKind, RESTART_VALUES, RESTART_ALIASES, {
    None => "none", FixedDelay => "fixed-delay",
    ExponentialDelay => "exponential-delay", FailureRate => "failure-rate",
});

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults_match_flink() {
        let c = Configuration::new();
        assert_eq!(c.heartbeat_interval(), ms(10_000));
        assert_eq!(c.heartbeat_timeout(), ms(50_000));
        assert_eq!(c.heartbeat_rpc_failure_threshold(), 2);
        assert_eq!(c.slots_per_taskmanager(), 1);
        assert_eq!(c.memory_process_size(), 1728 << 20);
        assert_eq!(c.task_overhead_bytes(), 4 << 20);
        assert_eq!(c.buffer_size(), 32 << 10);
        assert_eq!(c.buffers_per_channel(), 2);
        assert_eq!(c.floating_buffers_per_gate(), 8);
        assert_eq!(c.buffer_timeout(), ms(100));
        assert_eq!(c.failover_strategy(), FailoverStrategy::Region);
        assert_eq!(c.load_balance_mode(), LoadBalanceMode::None);
        assert_eq!(c.restart_strategy(), RestartStrategyKind::None);
        assert_eq!(c.checkpoint_interval(), None);
        assert_eq!(c.checkpoint_timeout(), ms(600_000));
        assert_eq!(c.checkpoints_retained(), 1);
        assert_eq!(c.cluster_secret(), "rill-dev-secret");
        assert_eq!(c.cluster_id(), "rill");
        assert_eq!(c.max_frame_size(), 16 << 20);
        assert_eq!(c.registration_timeout(), ms(300_000));
        assert_eq!(c.max_parallelism(), 128);
    }

    #[test]
    fn restart_strategy_defaults_match_flink() {
        let c = Configuration::new();
        assert_eq!(c.fixed_delay_attempts(), 1);
        assert_eq!(c.fixed_delay_delay(), ms(1_000));
        assert_eq!(c.exponential_delay_initial_backoff(), ms(1_000));
        assert_eq!(c.exponential_delay_max_backoff(), ms(60_000));
        assert_eq!(c.exponential_delay_backoff_multiplier(), 1.5);
        assert_eq!(c.exponential_delay_reset_backoff_threshold(), ms(3_600_000));
        assert_eq!(c.exponential_delay_jitter_factor(), 0.1);
        assert_eq!(
            c.exponential_delay_attempts_before_reset_backoff(),
            i32::MAX as u32
        );
        assert_eq!(c.failure_rate_max_failures_per_interval(), 1);
        assert_eq!(c.failure_rate_interval(), ms(60_000));
        assert_eq!(c.failure_rate_delay(), ms(1_000));
    }

    #[test]
    fn every_table_default_is_valid_and_names_are_unique() {
        for def in KEYS {
            assert!(
                validate(&def.kind, def.default).is_ok(),
                "bad default for {}",
                def.name
            );
        }
        let mut names: Vec<_> = known_keys().map(|(n, _, _)| n).collect();
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
    }

    #[test]
    fn durations_in_all_syntaxes() {
        assert_eq!(parse_duration("500"), Ok(ms(500)));
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("500 ms"), Ok(ms(500)));
        assert_eq!(parse_duration(" 10s "), Ok(ms(10_000)));
        assert_eq!(parse_duration("10 s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("1min"), Ok(ms(60_000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("3 Seconds"), Ok(ms(3_000)));
        assert_eq!(parse_duration("7us"), Ok(Duration::from_micros(7)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_rejected() {
        for bad in ["", "  ", "-1s", "1.5s", "ten s", "10 parsecs", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("99999999999999999999ms").is_err());
        assert!(parse_duration(&format!("{}d", u64::MAX)).is_err());
        assert_eq!(
            parse_duration(&format!("{}s", u64::MAX)),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn memory_sizes_in_all_syntaxes() {
        assert_eq!(parse_memory_size("1024"), Ok(1024));
        assert_eq!(parse_memory_size("1024b"), Ok(1024));
        assert_eq!(parse_memory_size("512 kb"), Ok(512 << 10));
        assert_eq!(parse_memory_size("32k"), Ok(32 << 10));
        assert_eq!(parse_memory_size("1728m"), Ok(1728 << 20));
        assert_eq!(parse_memory_size("1728mb"), Ok(1728 << 20));
        assert_eq!(parse_memory_size("1728MB"), Ok(1728 << 20));
        assert_eq!(parse_memory_size("1g"), Ok(1 << 30));
        assert_eq!(parse_memory_size("1 GB"), Ok(1 << 30));
        assert_eq!(parse_memory_size("1tb"), Ok(1 << 40));
        assert_eq!(parse_memory_size("2 mebibytes"), Ok(2 << 20));
    }

    #[test]
    fn bad_memory_sizes_are_rejected() {
        for bad in ["", "-1m", "1.5g", "lots", "12 parsecs", "mb"] {
            assert!(parse_memory_size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_memory_size("16777216tb").is_err()); // 2^24 * 2^40 = 2^64
        assert!(parse_memory_size("99999999999999999999").is_err());
    }

    #[test]
    fn set_values_are_read_back_typed() {
        let c = Configuration::from_pairs([
            (HEARTBEAT_TIMEOUT, "5s"),
            (SLOTS_PER_TASKMANAGER, "4"),
            (MEMORY_PROCESS_SIZE, "512m"),
            (FAILOVER_STRATEGY, "TaskManager"),
            (CHECKPOINT_INTERVAL, "1s"),
            (EXP_JITTER_FACTOR, "0.25"),
            (CLUSTER_ID, "prod"),
        ])
        .unwrap();
        assert_eq!(c.heartbeat_timeout(), ms(5_000));
        assert_eq!(c.slots_per_taskmanager(), 4);
        assert_eq!(c.memory_process_size(), 512 << 20);
        assert_eq!(c.failover_strategy(), FailoverStrategy::TaskManager);
        assert_eq!(c.get_raw(FAILOVER_STRATEGY), Some("taskmanager"));
        assert_eq!(c.checkpoint_interval(), Some(ms(1_000)));
        assert_eq!(c.exponential_delay_jitter_factor(), 0.25);
        assert_eq!(c.cluster_id(), "prod");
        assert_eq!(c.get_raw(HEARTBEAT_INTERVAL), None);
    }

    #[test]
    fn unknown_key_suggests_closest() {
        let err = Configuration::new()
            .set("heartbeat.intreval", "1s")
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "heartbeat.intreval".into(),
                suggestion: Some("heartbeat.interval".into()),
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown configuration key 'heartbeat.intreval' (did you mean 'heartbeat.interval'?)"
        );
        let err = Configuration::new()
            .set("taskmanager.numberoftaskslots", "2")
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("did you mean 'taskmanager.numberOfTaskSlots'?"));
    }

    #[test]
    fn unknown_key_without_close_match_has_no_suggestion() {
        let err = Configuration::new()
            .set("completely.unrelated", "1")
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "completely.unrelated".into(),
                suggestion: None
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown configuration key 'completely.unrelated'"
        );
    }

    #[test]
    fn invalid_value_names_key_value_and_expectation() {
        let err = Configuration::new()
            .set(HEARTBEAT_INTERVAL, "soon")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'soon' for 'heartbeat.interval': \
             expected a duration like 500ms, 10s, 1min, at least 1ms"
        );
        let err = Configuration::new()
            .set(BUFFER_TIMEOUT, "-5ms")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value '-5ms' for 'execution.buffer-timeout': \
             expected a duration like 500ms, 10s, 1min"
        );
        let err = Configuration::new()
            .set(FAILOVER_STRATEGY, "partial")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'partial' for 'jobmanager.execution.failover-strategy': \
             expected one of full, region, taskmanager"
        );
        let err = Configuration::new()
            .set(MEMORY_PROCESS_SIZE, "1.5g")
            .unwrap_err();
        assert!(err
            .to_string()
            .ends_with("expected a memory size like 512kb, 64m, 1g, at least 1 bytes"));
        let err = Configuration::new()
            .set(EXP_JITTER_FACTOR, "2")
            .unwrap_err();
        assert!(err
            .to_string()
            .ends_with("expected a number between 0 and 1"));
        let err = Configuration::new().set(CLUSTER_SECRET, " ").unwrap_err();
        assert!(err.to_string().ends_with("expected a non-empty string"));
    }

    #[test]
    fn zero_task_slots_rejected() {
        let err = Configuration::new()
            .set(SLOTS_PER_TASKMANAGER, "0")
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidValue {
                key: SLOTS_PER_TASKMANAGER.into(),
                value: "0".into(),
                expected: "an integer between 1 and 4294967295".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid value '0' for 'taskmanager.numberOfTaskSlots': \
             expected an integer between 1 and 4294967295"
        );
        assert!(Configuration::new()
            .set(SLOTS_PER_TASKMANAGER, "4294967296")
            .is_err());
        assert!(Configuration::new().set(MAX_PARALLELISM, "32769").is_err());
    }

    #[test]
    fn malformed_pair() {
        let err = Configuration::parse_pair("heartbeat.interval").unwrap_err();
        assert_eq!(err, ConfigError::MalformedPair("heartbeat.interval".into()));
        assert_eq!(
            err.to_string(),
            "malformed argument 'heartbeat.interval': expected key=value"
        );
        assert!(Configuration::parse_pair(" =5s").is_err());
        assert_eq!(
            Configuration::parse_pair(" cluster.id = a=b "),
            Ok(("cluster.id".to_string(), "a=b".to_string()))
        );
    }

    #[test]
    fn balance_alias_maps_to_load_balance_mode() {
        let on = Configuration::new().with(BALANCE_ALIAS, "true").unwrap();
        assert_eq!(on.load_balance_mode(), LoadBalanceMode::Tasks);
        assert_eq!(on.get_raw(LOAD_BALANCE_MODE), Some("tasks"));
        assert_eq!(on.get_raw(BALANCE_ALIAS), None);
        let off = on.with(BALANCE_ALIAS, "FALSE").unwrap();
        assert_eq!(off.load_balance_mode(), LoadBalanceMode::None);
        let err = Configuration::new().set(BALANCE_ALIAS, "yes").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'yes' for 'jobmanager.ng-scheduler.balance-match-between-taskmanagers': \
             expected true or false"
        );
    }

    #[test]
    fn restart_strategy_aliases() {
        for (spelling, kind) in [
            ("off", RestartStrategyKind::None),
            ("disable", RestartStrategyKind::None),
            ("fixeddelay", RestartStrategyKind::FixedDelay),
            ("Fixed-Delay", RestartStrategyKind::FixedDelay),
            ("exponentialdelay", RestartStrategyKind::ExponentialDelay),
            ("failurerate", RestartStrategyKind::FailureRate),
        ] {
            let c = Configuration::new()
                .with(RESTART_STRATEGY, spelling)
                .unwrap();
            assert_eq!(c.restart_strategy(), kind, "{spelling}");
            assert_eq!(c.get_raw(RESTART_STRATEGY), Some(kind.to_string().as_str()));
            assert_eq!(spelling.parse::<RestartStrategyKind>(), Ok(kind));
        }
        let c = Configuration::new()
            .with("restart-strategy", "failure-rate")
            .unwrap();
        assert_eq!(c.restart_strategy(), RestartStrategyKind::FailureRate);
    }

    #[test]
    fn enums_round_trip_through_display() {
        for s in FAILOVER_VALUES {
            assert_eq!(s.parse::<FailoverStrategy>().unwrap().to_string(), *s);
        }
        for s in LOAD_BALANCE_VALUES {
            assert_eq!(s.parse::<LoadBalanceMode>().unwrap().to_string(), *s);
        }
        for s in RESTART_VALUES {
            assert_eq!(s.parse::<RestartStrategyKind>().unwrap().to_string(), *s);
        }
        assert!("sometimes".parse::<LoadBalanceMode>().is_err());
    }

    #[test]
    fn checkpoint_interval_can_be_disabled_explicitly() {
        let c = Configuration::new()
            .with(CHECKPOINT_INTERVAL, "None")
            .unwrap();
        assert_eq!(c.checkpoint_interval(), None);
        assert!(Configuration::new()
            .set(CHECKPOINT_INTERVAL, "5ms")
            .is_err());
    }

    #[test]
    fn effective_lists_every_key_sorted_with_overrides() {
        let c = Configuration::new().with(HEARTBEAT_TIMEOUT, "5s").unwrap();
        let eff = c.effective();
        assert_eq!(eff.len(), KEYS.len());
        assert!(eff.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(eff.contains(&(HEARTBEAT_TIMEOUT, "5s".to_string())));
        assert!(eff.contains(&(HEARTBEAT_INTERVAL, "10s".to_string())));
        // The effective listing is itself valid input.
        let again = Configuration::from_pairs(eff.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(again.heartbeat_timeout(), ms(5_000));
    }

    #[test]
    fn unparsable_deserialized_value_falls_back_to_default() {
        let mut c = Configuration::new();
        c.values
            .insert(HEARTBEAT_INTERVAL.to_string(), "garbage".to_string());
        assert_eq!(c.heartbeat_interval(), ms(10_000));
    }
}
