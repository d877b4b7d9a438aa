//! Key names, as constants so callers (CLI, scenarios, harness) cannot misspell them, and
//! [`KEYS`], the table of every key's kind, default and description, with the lookups on it
//! (aliases, "did you mean" suggestions).

use std::time::Duration;

/// How often the JobManager sends heartbeats (a duration).
pub const HEARTBEAT_INTERVAL: &str = "heartbeat.interval";
/// Silence after which the JobManager declares a TaskManager lost.
pub const HEARTBEAT_TIMEOUT: &str = "heartbeat.timeout";
/// Heartbeats in a row that could not be sent after which a TaskManager is declared lost.
pub const HEARTBEAT_RPC_FAILURE_THRESHOLD: &str = "heartbeat.rpc-failure-threshold";
/// The task slots each TaskManager offers.
pub const SLOTS_PER_TASKMANAGER: &str = "taskmanager.numberOfTaskSlots";
/// A TaskManager's total memory; accounted memory above it gets the process OOM-killed.
pub const MEMORY_PROCESS_SIZE: &str = "taskmanager.memory.process.size";
/// (rill) Memory accounted for each deployed task on top of its buffers.
pub const TASK_OVERHEAD: &str = "taskmanager.memory.task-overhead";
/// The size of one network buffer.
pub const SEGMENT_SIZE: &str = "taskmanager.memory.segment-size";
/// Exclusive buffers (the initial credit) of each input channel.
pub const BUFFERS_PER_CHANNEL: &str = "taskmanager.network.memory.buffers-per-channel";
/// Floating buffers an input gate's channels share.
pub const FLOATING_BUFFERS_PER_GATE: &str = "taskmanager.network.memory.floating-buffers-per-gate";
/// How long a partly filled output buffer waits before it is flushed.
pub const BUFFER_TIMEOUT: &str = "execution.buffer-timeout";
/// What a failure restarts: `full`, `region` or `taskmanager`.
pub const FAILOVER_STRATEGY: &str = "jobmanager.execution.failover-strategy";
/// Whether `taskmanager` failover redeploys a lost TaskManager's subtasks without waiting for
/// the restart strategy's delay.
pub const TM_FAILOVER_IMMEDIATE: &str =
    "jobmanager.execution.failover-strategy.taskmanager.immediate";
/// How subtasks are spread over TaskManagers: `none`, `slots` or `tasks`.
pub const LOAD_BALANCE_MODE: &str = "taskmanager.load-balance.mode";
/// The restart strategy: `none`, `fixed-delay`, `exponential-delay` or `failure-rate`.
pub const RESTART_STRATEGY: &str = "restart-strategy.type";
/// The interval between checkpoints; `none` disables checkpointing.
pub const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
/// How long a checkpoint may take before it is given up.
pub const CHECKPOINT_TIMEOUT: &str = "execution.checkpointing.timeout";
/// How many completed checkpoints are kept for recovery.
pub const CHECKPOINTS_RETAINED: &str = "state.checkpoints.num-retained";
/// Where completed checkpoints go: `jobmanager`, a directory, or `rill://HOST:PORT`.
pub const CHECKPOINTS_DIR: &str = "state.checkpoints.dir";
/// (rill) The shared secret every node presents in the RPC handshake.
pub const CLUSTER_SECRET: &str = "security.cluster.secret";
/// Whether every connection runs TLS with mutual authentication.
pub const SSL_ENABLED: &str = "security.ssl.internal.enabled";
/// The node's certificate (PEM).
pub const SSL_CERT: &str = "security.ssl.internal.cert";
/// The node's private key (PEM).
pub const SSL_KEY: &str = "security.ssl.internal.key";
/// The cluster CA's certificate (PEM): the only issuer trusted.
pub const SSL_CA: &str = "security.ssl.internal.ca";
/// (rill) The key sink-store write grants are made with; only the JobManager and the sink
/// store hold it.
pub const SINK_WRITE_KEY: &str = "security.sink-store.write-key";
/// (rill) The directories a job's parameters may name on this node (`sink=file:DIR`,
/// `input=DIR`): `none`, `*` (any) or a comma-separated list.
pub const ALLOWED_DIRS: &str = "security.files.allowed-dirs";
/// (rill) The cluster id checked in the RPC handshake, so clusters never cross-connect.
pub const CLUSTER_ID: &str = "cluster.id";
/// (rill) The largest RPC frame accepted.
pub const MAX_FRAME_SIZE: &str = "rpc.max-frame-size";
/// How long a TaskManager tries to register before it gives up.
pub const REGISTRATION_TIMEOUT: &str = "taskmanager.registration.timeout";
/// The number of key groups: the upper bound on a keyed operator's parallelism.
pub const MAX_PARALLELISM: &str = "pipeline.max-parallelism";
/// `fixed-delay`: restarts before the job fails.
pub const FIXED_DELAY_ATTEMPTS: &str = "restart-strategy.fixed-delay.attempts";
/// `fixed-delay`: the pause before each restart.
pub const FIXED_DELAY_DELAY: &str = "restart-strategy.fixed-delay.delay";
/// `exponential-delay`: the first back-off.
pub const EXP_INITIAL_BACKOFF: &str = "restart-strategy.exponential-delay.initial-backoff";
/// `exponential-delay`: the largest back-off.
pub const EXP_MAX_BACKOFF: &str = "restart-strategy.exponential-delay.max-backoff";
/// `exponential-delay`: the factor the back-off grows by after each failure.
pub const EXP_BACKOFF_MULTIPLIER: &str = "restart-strategy.exponential-delay.backoff-multiplier";
/// `exponential-delay`: running this long without a failure resets the back-off.
pub const EXP_RESET_BACKOFF_THRESHOLD: &str =
    "restart-strategy.exponential-delay.reset-backoff-threshold";
/// `exponential-delay`: the relative random jitter on each back-off.
pub const EXP_JITTER_FACTOR: &str = "restart-strategy.exponential-delay.jitter-factor";
/// `exponential-delay`: restarts allowed before the back-off is reset; then the job fails.
pub const EXP_ATTEMPTS_BEFORE_RESET: &str =
    "restart-strategy.exponential-delay.attempts-before-reset-backoff";
/// `failure-rate`: failures tolerated per interval before the job fails.
pub const FR_MAX_FAILURES: &str = "restart-strategy.failure-rate.max-failures-per-interval";
/// `failure-rate`: the window failures are counted over.
pub const FR_INTERVAL: &str = "restart-strategy.failure-rate.failure-rate-interval";
/// `failure-rate`: the pause before each restart.
pub const FR_DELAY: &str = "restart-strategy.failure-rate.delay";

/// Flink's old boolean switch for balanced scheduling; stored as `LOAD_BALANCE_MODE`.
pub const BALANCE_ALIAS: &str = "jobmanager.ng-scheduler.balance-match-between-taskmanagers";

/// What values a key accepts; drives validation on set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyKind {
    /// Flink duration syntax, at least `min` (e.g. a heartbeat interval of 0 would spin).
    Duration {
        /// The shortest accepted.
        min: Duration,
    },
    /// Flink memory-size syntax, in bytes within `min..=max`.
    MemorySize {
        /// The smallest accepted.
        min: u64,
        /// The largest accepted.
        max: u64,
    },
    /// Unsigned integer within `min..=max` (max keeps typed getters free of overflow).
    Int {
        /// The smallest accepted.
        min: u64,
        /// The largest accepted.
        max: u64,
    },
    /// Finite float within `min..=max`.
    Float {
        /// The smallest accepted.
        min: f64,
        /// The largest accepted.
        max: f64,
    },
    /// `true` / `false`, case-insensitive, stored lowercase.
    Bool,
    /// One of `values` (case-insensitive); `aliases` map alternative spellings to a value.
    Choice {
        /// The accepted values, in their stored spelling.
        values: &'static [&'static str],
        /// (alternative spelling, value) pairs.
        aliases: &'static [(&'static str, &'static str)],
    },
    /// Any non-empty string (an empty secret or cluster id is always a mistake).
    Text,
    /// `none` (unset) or a duration of at least `min`.
    OptionalDuration {
        /// The shortest duration accepted.
        min: Duration,
    },
    /// `none`, `*`, or a comma-separated list of absolute directories.
    Directories,
}

/// One known key: the only place its name, accepted values and default are written down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyDef {
    /// The key, as users write it.
    pub name: &'static str,
    /// The values it accepts.
    pub kind: KeyKind,
    /// Its value when unset, in the syntax of a set value (Flink's default where Flink has the
    /// key).
    pub default: &'static str,
    /// One line for `rill config`'s listing; `(rill)` marks keys Flink does not have.
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

pub(super) const FAILOVER_VALUES: &[&str] = &["full", "region", "taskmanager"];
pub(super) const LOAD_BALANCE_VALUES: &[&str] = &["none", "slots", "tasks"];
pub(super) const RESTART_VALUES: &[&str] =
    &["none", "fixed-delay", "exponential-delay", "failure-rate"];
/// Flink's alternative spellings of restart strategies.
pub(super) const RESTART_ALIASES: &[(&str, &str)] = &[
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
    key(TM_FAILOVER_IMMEDIATE, KeyKind::Bool, "true",
        "(rill) taskmanager failover: redeploy a lost TaskManager's subtasks on free slots at once \
         instead of after the restart strategy's delay (the failure still counts against it)."),
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
    key(SSL_ENABLED, KeyKind::Bool, "false",
        "TLS with mutual authentication on every connection (control, data, services); \
         `rill certs` makes a CA and node certificates."),
    key(SSL_CERT, KeyKind::Text, "tls/node.pem",
        "(rill) This node's certificate, PEM, issued by the cluster CA."),
    key(SSL_KEY, KeyKind::Text, "tls/node.key",
        "(rill) This node's private key, PEM."),
    key(SSL_CA, KeyKind::Text, "tls/ca.pem",
        "(rill) The cluster CA's certificate, PEM: the only issuer trusted."),
    key(SINK_WRITE_KEY, KeyKind::Text, "(none)",
        "(rill) Key of sink-store write grants, held by the JobManager and the sink store only \
         (--write-key-file or RILL_SINK_WRITE_KEY): the JobManager grants each sink attempt its \
         writes, and a store that has it applies no other. Unset: writers are not bound."),
    key(ALLOWED_DIRS, KeyKind::Directories, "none",
        "(rill) Directories a job may name on this node (sink=file:DIR, input=DIR): none, * (any: \
         for a cluster in one's own process, where `rill local` sets it), or a comma-separated \
         list of absolute directories. Each node enforces its own; a job never sets it."),
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
pub(super) const KEY_ALIASES: &[(&str, &str)] = &[
    ("restart-strategy", RESTART_STRATEGY),
    ("execution.checkpointing.num-retained", CHECKPOINTS_RETAINED),
];

/// Every known key as (name, default, description), in table order, for the CLI to print.
pub fn known_keys() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    KEYS.iter().map(|k| (k.name, k.default, k.description))
}

pub(super) fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

// ---- lookup -------------------------------------------------------------------------------

/// Closest known key by edit distance, if close enough to be a plausible typo. Ties go to the
/// first key in table order, so the hint is deterministic.
pub(super) fn closest_key(key: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::validate;

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
}
