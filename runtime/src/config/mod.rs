//! Flink-style configuration: typed keys with defaults, validated when set.
//!
//! [`KEYS`] is the single home of every key's name, kind, default and description. Values are
//! validated against it on [`Configuration::set`], so a typo in a scenario file or on the command
//! line fails loudly at start-up (with a "did you mean" hint) instead of silently running with a
//! default. Typed getters read the explicit value or fall back to the table's default.
//!
//! Only explicitly set values are stored, so the configuration the JobManager ships to
//! TaskManagers stays small and `get_raw` can tell "set" from "defaulted".
//!
//! Layout: [`keys`] holds the key names and the [`KEYS`] table; `values` the value syntaxes,
//! validation and choice enums; this module the [`Configuration`] itself and its typed getters.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod keys;
mod values;

pub use keys::{known_keys, KeyDef, KeyKind, KEYS};
pub use values::{
    parse_duration, parse_memory_size, FailoverStrategy, LoadBalanceMode, RestartStrategyKind,
};

use keys::*;
use values::{parse_float, parse_optional_duration, validate};

/// Why a key or value was refused; messages are meant for the person who typed them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A key no entry of [`KEYS`] (nor an alias) names.
    #[error("unknown configuration key '{key}'{}", suggestion_hint(.suggestion))]
    UnknownKey {
        /// The key as given.
        key: String,
        /// The closest known key, if one is close enough to be the one meant.
        suggestion: Option<String>,
    },
    /// A value the key's [`KeyKind`] does not accept.
    #[error("invalid value '{value}' for '{key}': expected {expected}")]
    InvalidValue {
        /// The key as given.
        key: String,
        /// The value as given.
        value: String,
        /// What the key accepts, in words.
        expected: String,
    },
    /// A command-line argument without `=`.
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
    /// An empty configuration: every key at its default.
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

    /// This configuration with every value explicitly set in `other` on top, checked as a whole.
    pub fn merged(&self, other: &Configuration) -> Result<Configuration, ConfigError> {
        let mut merged = self.clone();
        for (key, value) in &other.values {
            merged.set(key, value)?;
        }
        merged.validate()?;
        Ok(merged)
    }

    /// What a job may set: every key but a node's own identity and secrets (`security.*`: the
    /// cluster secret, the TLS files). A client sends only these with a submission, and the
    /// JobManager takes only these from one, so a job can neither learn a node's secret from
    /// a deployment nor swap the credentials its tasks' connections use.
    pub fn job_settings(&self) -> Configuration {
        Configuration {
            values: self
                .values
                .iter()
                .filter(|(k, _)| !k.starts_with("security."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
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

    /// The explicitly set value of `key`, if any (no defaults, no aliases).
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The explicitly set keys and values, sorted by key: what `-c KEY=VALUE` arguments
    /// would rebuild this configuration from.
    pub fn explicit(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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

    /// `heartbeat.interval`.
    pub fn heartbeat_interval(&self) -> Duration {
        self.duration(HEARTBEAT_INTERVAL)
    }
    /// `heartbeat.timeout`.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.duration(HEARTBEAT_TIMEOUT)
    }
    /// `heartbeat.rpc-failure-threshold`.
    pub fn heartbeat_rpc_failure_threshold(&self) -> u32 {
        self.int(HEARTBEAT_RPC_FAILURE_THRESHOLD)
    }
    /// `taskmanager.numberOfTaskSlots`.
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
    /// `taskmanager.network.memory.buffers-per-channel`: the initial credit of each input channel.
    pub fn buffers_per_channel(&self) -> u32 {
        self.int(BUFFERS_PER_CHANNEL)
    }
    /// `taskmanager.network.memory.floating-buffers-per-gate`.
    pub fn floating_buffers_per_gate(&self) -> u32 {
        self.int(FLOATING_BUFFERS_PER_GATE)
    }
    /// `execution.buffer-timeout`: how long a partly filled buffer may wait before it is flushed.
    pub fn buffer_timeout(&self) -> Duration {
        self.duration(BUFFER_TIMEOUT)
    }
    /// `jobmanager.execution.failover-strategy`.
    pub fn failover_strategy(&self) -> FailoverStrategy {
        self.parsed(FAILOVER_STRATEGY, FailoverStrategy::Region)
    }
    /// `jobmanager.execution.failover-strategy.taskmanager.immediate`.
    pub fn taskmanager_failover_immediate(&self) -> bool {
        self.typed(TM_FAILOVER_IMMEDIATE, |s| s.parse().ok(), true)
    }
    /// `taskmanager.load-balance.mode`.
    pub fn load_balance_mode(&self) -> LoadBalanceMode {
        self.parsed(LOAD_BALANCE_MODE, LoadBalanceMode::None)
    }
    /// `restart-strategy.type`, as set; [`crate::jobmanager::restart_backoff::from_config`] decides
    /// what an unset one means.
    pub fn restart_strategy(&self) -> RestartStrategyKind {
        self.parsed(RESTART_STRATEGY, RestartStrategyKind::None)
    }
    /// `None` means checkpointing is disabled.
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        self.typed(CHECKPOINT_INTERVAL, parse_optional_duration, None)
    }
    /// `execution.checkpointing.timeout`.
    pub fn checkpoint_timeout(&self) -> Duration {
        self.duration(CHECKPOINT_TIMEOUT)
    }
    /// `state.checkpoints.num-retained`.
    pub fn checkpoints_retained(&self) -> u32 {
        self.int(CHECKPOINTS_RETAINED)
    }
    /// The raw `state.checkpoints.dir`; `state::store::CheckpointStorage` parses it.
    pub fn checkpoints_dir(&self) -> &str {
        self.value(CHECKPOINTS_DIR)
    }
    /// `security.cluster.secret`.
    pub fn cluster_secret(&self) -> String {
        self.value(CLUSTER_SECRET).to_string()
    }
    /// `security.ssl.internal.enabled`.
    pub fn ssl_enabled(&self) -> bool {
        self.typed(SSL_ENABLED, |s| s.parse().ok(), false)
    }
    /// `security.ssl.internal.cert`: a path.
    pub fn ssl_cert(&self) -> &str {
        self.value(SSL_CERT)
    }
    /// `security.ssl.internal.key`: a path.
    pub fn ssl_key(&self) -> &str {
        self.value(SSL_KEY)
    }
    /// `security.ssl.internal.ca`: a path.
    pub fn ssl_ca(&self) -> &str {
        self.value(SSL_CA)
    }
    /// `security.files.allowed-dirs`: the directories a job's parameters may name here.
    pub fn file_access(&self) -> crate::api::FileAccess {
        // Validated when set (`KeyKind::Directories`), so only the default could fail: it
        // does not.
        crate::api::FileAccess::parse(self.value(ALLOWED_DIRS)).unwrap_or_default()
    }
    /// `cluster.id`.
    pub fn cluster_id(&self) -> String {
        self.value(CLUSTER_ID).to_string()
    }
    /// Bytes.
    pub fn max_frame_size(&self) -> usize {
        self.memory_usize(MAX_FRAME_SIZE)
    }
    /// `taskmanager.registration.timeout`.
    pub fn registration_timeout(&self) -> Duration {
        self.duration(REGISTRATION_TIMEOUT)
    }
    /// Number of key groups.
    pub fn max_parallelism(&self) -> u32 {
        self.int(MAX_PARALLELISM)
    }
    /// `restart-strategy.fixed-delay.attempts`.
    pub fn fixed_delay_attempts(&self) -> u32 {
        self.int(FIXED_DELAY_ATTEMPTS)
    }
    /// `restart-strategy.fixed-delay.delay`.
    pub fn fixed_delay_delay(&self) -> Duration {
        self.duration(FIXED_DELAY_DELAY)
    }
    /// `restart-strategy.exponential-delay.initial-backoff`.
    pub fn exponential_delay_initial_backoff(&self) -> Duration {
        self.duration(EXP_INITIAL_BACKOFF)
    }
    /// `restart-strategy.exponential-delay.max-backoff`.
    pub fn exponential_delay_max_backoff(&self) -> Duration {
        self.duration(EXP_MAX_BACKOFF)
    }
    /// `restart-strategy.exponential-delay.backoff-multiplier`.
    pub fn exponential_delay_backoff_multiplier(&self) -> f64 {
        self.typed(EXP_BACKOFF_MULTIPLIER, |s| parse_float(s).ok(), 1.0)
    }
    /// `restart-strategy.exponential-delay.reset-backoff-threshold`.
    pub fn exponential_delay_reset_backoff_threshold(&self) -> Duration {
        self.duration(EXP_RESET_BACKOFF_THRESHOLD)
    }
    /// `restart-strategy.exponential-delay.jitter-factor`.
    pub fn exponential_delay_jitter_factor(&self) -> f64 {
        self.typed(EXP_JITTER_FACTOR, |s| parse_float(s).ok(), 0.0)
    }
    /// `restart-strategy.exponential-delay.attempts-before-reset-backoff`.
    pub fn exponential_delay_attempts_before_reset_backoff(&self) -> u32 {
        self.int(EXP_ATTEMPTS_BEFORE_RESET)
    }
    /// `restart-strategy.failure-rate.max-failures-per-interval`.
    pub fn failure_rate_max_failures_per_interval(&self) -> u32 {
        self.int(FR_MAX_FAILURES)
    }
    /// `restart-strategy.failure-rate.failure-rate-interval`.
    pub fn failure_rate_interval(&self) -> Duration {
        self.duration(FR_INTERVAL)
    }
    /// `restart-strategy.failure-rate.delay`.
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
