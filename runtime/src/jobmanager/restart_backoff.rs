//! Restart back-off: whether and when a failed job may restart (`restart-strategy.type`).
//!
//! Ports of Flink's `RestartBackoffTimeStrategy` implementations (1.19/1.20, package
//! `org.apache.flink.runtime.executiongraph.failover`): [`NoRestart`], [`FixedDelay`],
//! [`FailureRate`] and [`ExponentialDelay`], chosen by [`from_config`] the way Flink's
//! `RestartBackoffTimeStrategyFactoryLoader` chooses.
//!
//! Deterministic by construction (ARCHITECTURE.md, "Determinism rules"): no clock is read — the caller
//! passes the time of each failure as a [`Duration`] since an arbitrary monotonic origin (e.g.
//! `tokio::time::Instant::now() - job_start`) — and the exponential strategy's jitter comes from
//! a [`ChaCha8Rng`] seeded by the caller, never from OS entropy.
//!
//! Like Flink, all times and delays are handled in whole milliseconds: `now` and every configured
//! duration are truncated to milliseconds (Flink's clock and `Duration::toMillis`), which is what
//! makes the exponential formula's integer truncation match Flink's tests exactly.
//!
//! Differences from Flink, all forced by the trait or deliberate:
//! - [`RestartBackoff::can_restart`] and [`RestartBackoff::backoff`] take no `now`; where Flink
//!   reads its clock there (failure-rate's window check, exponential-delay's remaining wait) the
//!   time of the latest [`RestartBackoff::notify_failure`] is used. Flink's
//!   `ExecutionFailureHandler` calls them right after `notifyFailure`, so this is the same
//!   instant.
//! - `notify_failure` returns nothing; Flink's boolean "is this a new attempt" (false for
//!   failures the exponential strategy merges into the pending restart) is not reported.
//! - Flink rejects out-of-range parameters with an exception; [`from_config`] cannot fail, so it
//!   clamps them to the nearest value Flink accepts (see [`ExponentialDelayParams::sanitized`]).
//! - `backoff()` before any failure returns zero instead of throwing.

use std::collections::VecDeque;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{keys, Configuration, FailoverStrategy, RestartStrategyKind};
use crate::events::FailoverCause;

/// Whether a failover redeploys at once, announcing no back-off (the JobManager's rule, which a
/// harness checking the back-off it announced applies too). Under `taskmanager` failover a lost
/// TaskManager's subtasks go to free slots of the TaskManagers that are still there. The
/// restart delay is for failures that may clear if given time (an external system that is
/// down, a task that fails on its input); waiting for a dead machine changes nothing and only
/// lengthens the gap in the output, so unless configured otherwise it is skipped. The failure still counts against the
/// restart strategy (attempts, failure rate, the growing exponential delay).
pub fn skips_delay(
    config: &Configuration,
    strategy: FailoverStrategy,
    cause: &FailoverCause,
) -> bool {
    strategy == FailoverStrategy::TaskManager
        && matches!(cause, FailoverCause::TaskManagerLost { .. })
        && config.taskmanager_failover_immediate()
}

/// Decides whether and when a failed job may restart (Flink's RestartBackoffTimeStrategy).
pub trait RestartBackoff: Send {
    /// Records a failure at `now` (monotonic time since an arbitrary origin, as Duration).
    fn notify_failure(&mut self, now: Duration);
    /// Whether the job may restart after the failures seen so far.
    fn can_restart(&self) -> bool;
    /// How long to wait before restarting (valid after notify_failure).
    fn backoff(&self) -> Duration;
    /// For logs/traces: e.g. "fixed-delay (attempt 2 of 3, 1s)".
    fn describe(&self) -> String;
    /// The longest back-off it can ever wait (with jitter): what a bound on recovery allows.
    fn longest_backoff(&self) -> Duration;
}

/// The restart back-off for a job whose effective configuration is `config` (the cluster
/// configuration with the job's own settings on top), with jitter seeded by `rng_seed`.
///
/// Mirrors Flink's `RestartBackoffTimeStrategyFactoryLoader`: an explicitly set
/// `restart-strategy.type` (or its deprecated alias `restart-strategy`) wins; when it is not set,
/// a job with checkpointing enabled (`execution.checkpointing.interval`) gets `exponential-delay`
/// with Flink's *default* parameters — explicitly set `exponential-delay.*` keys are ignored in
/// that case, as in Flink — and a job without checkpointing gets `none`.
pub fn from_config(config: &Configuration, rng_seed: u64) -> Box<dyn RestartBackoff> {
    if config.get_raw(keys::RESTART_STRATEGY).is_none() {
        return match config.checkpoint_interval() {
            Some(_) => Box::new(ExponentialDelay::new(
                ExponentialDelayParams::default(),
                rng_seed,
            )),
            None => Box::new(NoRestart),
        };
    }
    match config.restart_strategy() {
        RestartStrategyKind::None => Box::new(NoRestart),
        RestartStrategyKind::FixedDelay => Box::new(FixedDelay::new(
            config.fixed_delay_attempts(),
            config.fixed_delay_delay(),
        )),
        RestartStrategyKind::FailureRate => Box::new(FailureRate::new(
            config.failure_rate_max_failures_per_interval(),
            config.failure_rate_interval(),
            config.failure_rate_delay(),
        )),
        RestartStrategyKind::ExponentialDelay => Box::new(ExponentialDelay::new(
            ExponentialDelayParams::from_config(config),
            rng_seed,
        )),
    }
}

/// Whole milliseconds of `d`, truncated like Java's `Duration::toMillis`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Never restarts (`none`; Flink's NoRestartBackoffTimeStrategy).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRestart;

impl RestartBackoff for NoRestart {
    fn notify_failure(&mut self, _now: Duration) {}

    fn can_restart(&self) -> bool {
        false
    }

    fn backoff(&self) -> Duration {
        Duration::ZERO
    }

    fn describe(&self) -> String {
        "none (restarts disabled)".to_string()
    }

    fn longest_backoff(&self) -> Duration {
        Duration::ZERO
    }
}

/// At most `attempts` restarts, each after `delay` (`fixed-delay`; Flink's
/// FixedDelayRestartBackoffTimeStrategy). Every notified failure counts, however close together.
#[derive(Debug, Clone)]
pub struct FixedDelay {
    max_attempts: u64,
    delay: Duration,
    /// Failures seen so far: the number of the restart attempt they ask for.
    attempt: u64,
}

impl FixedDelay {
    /// At most `attempts` restarts, each after `delay`.
    pub fn new(attempts: u32, delay: Duration) -> Self {
        Self {
            max_attempts: u64::from(attempts),
            delay: Duration::from_millis(millis(delay)),
            attempt: 0,
        }
    }
}

impl RestartBackoff for FixedDelay {
    fn notify_failure(&mut self, _now: Duration) {
        self.attempt = self.attempt.saturating_add(1);
    }

    fn can_restart(&self) -> bool {
        self.attempt <= self.max_attempts
    }

    fn backoff(&self) -> Duration {
        self.delay
    }

    fn describe(&self) -> String {
        if self.can_restart() {
            format!(
                "fixed-delay (attempt {} of {}, {:?})",
                self.attempt, self.max_attempts, self.delay
            )
        } else {
            format!(
                "fixed-delay (attempts exhausted: {} failures, {} restarts allowed)",
                self.attempt, self.max_attempts
            )
        }
    }

    fn longest_backoff(&self) -> Duration {
        self.delay
    }
}

/// Restarts after `delay` unless more than `max_failures` failures happened within a sliding
/// window of `interval` (`failure-rate`; Flink's FailureRateRestartBackoffTimeStrategy).
///
/// Keeps the timestamps of the last `max_failures + 1` failures; restarting is refused when
/// there are that many and the oldest is no more than `interval` before the newest (failures
/// exactly `interval` apart are still inside the window, as in Flink).
#[derive(Debug, Clone)]
pub struct FailureRate {
    max_failures: usize,
    interval_ms: u64,
    delay: Duration,
    /// Failure times in ms, oldest first; at most `max_failures + 1`.
    failures: VecDeque<u64>,
}

impl FailureRate {
    /// `max_failures` and `interval` below Flink's minimum (1, 1ms) are raised to it.
    pub fn new(max_failures: u32, interval: Duration, delay: Duration) -> Self {
        let max_failures = usize::try_from(max_failures.max(1)).unwrap_or(usize::MAX);
        Self {
            max_failures,
            interval_ms: millis(interval).max(1),
            delay: Duration::from_millis(millis(delay)),
            failures: VecDeque::new(),
        }
    }

    fn window_full(&self) -> bool {
        self.failures.len() > self.max_failures
    }

    /// Failures within `interval` of the latest one (the latest included).
    fn failures_in_window(&self) -> usize {
        let Some(&last) = self.failures.back() else {
            return 0;
        };
        self.failures
            .iter()
            .filter(|&&t| last.saturating_sub(t) <= self.interval_ms)
            .count()
    }
}

impl RestartBackoff for FailureRate {
    fn notify_failure(&mut self, now: Duration) {
        if self.window_full() {
            self.failures.pop_front();
        }
        self.failures.push_back(millis(now));
    }

    fn can_restart(&self) -> bool {
        match (
            self.window_full(),
            self.failures.front(),
            self.failures.back(),
        ) {
            (true, Some(&earliest), Some(&now)) => now.saturating_sub(earliest) > self.interval_ms,
            _ => true,
        }
    }

    fn backoff(&self) -> Duration {
        self.delay
    }

    fn describe(&self) -> String {
        let interval = Duration::from_millis(self.interval_ms);
        if self.can_restart() {
            format!(
                "failure-rate ({} of at most {} failures within {:?}, {:?})",
                self.failures_in_window(),
                self.max_failures,
                interval,
                self.delay
            )
        } else {
            format!(
                "failure-rate (more than {} failures within {:?})",
                self.max_failures, interval
            )
        }
    }

    fn longest_backoff(&self) -> Duration {
        self.delay
    }
}

/// Parameters of [`ExponentialDelay`]; `Default` is Flink's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialDelayParams {
    /// The first back-off.
    pub initial_backoff: Duration,
    /// The largest back-off.
    pub max_backoff: Duration,
    /// What the back-off is multiplied by after each failure.
    pub backoff_multiplier: f64,
    /// A run this long without a failure resets the back-off to the initial one.
    pub reset_backoff_threshold: Duration,
    /// The relative jitter on each back-off, 0..=1.
    pub jitter_factor: f64,
    /// Restarts allowed since the last reset; the next failure fails the job.
    pub attempts_before_reset_backoff: u32,
}

impl Default for ExponentialDelayParams {
    /// Flink's defaults: 1s, 1min, 1.5, 1h, 0.1, `Integer.MAX_VALUE` (the key table's defaults).
    fn default() -> Self {
        Self::from_config(&Configuration::new())
    }
}

impl ExponentialDelayParams {
    /// The `restart-strategy.exponential-delay.*` values of `config` (defaults where unset).
    pub fn from_config(config: &Configuration) -> Self {
        Self {
            initial_backoff: config.exponential_delay_initial_backoff(),
            max_backoff: config.exponential_delay_max_backoff(),
            backoff_multiplier: config.exponential_delay_backoff_multiplier(),
            reset_backoff_threshold: config.exponential_delay_reset_backoff_threshold(),
            jitter_factor: config.exponential_delay_jitter_factor(),
            attempts_before_reset_backoff: config.exponential_delay_attempts_before_reset_backoff(),
        }
    }

    /// The nearest parameters Flink's constructor accepts (Flink throws instead): initial
    /// back-off and reset threshold at least 1ms, max back-off at least the initial one, jitter
    /// within 0..=1, at least 1 attempt. A multiplier of exactly 1 (allowed by the key table,
    /// rejected by Flink, which wants > 1) is kept and simply gives a constant back-off; below 1
    /// or not finite it becomes 1.
    pub fn sanitized(self) -> Self {
        let initial = Duration::from_millis(millis(self.initial_backoff).max(1));
        let max = Duration::from_millis(millis(self.max_backoff)).max(initial);
        let multiplier = match self.backoff_multiplier {
            m if m.is_finite() && m >= 1.0 => m,
            _ => 1.0,
        };
        let jitter = match self.jitter_factor {
            j if j.is_nan() => 0.0,
            j => j.clamp(0.0, 1.0),
        };
        Self {
            initial_backoff: initial,
            max_backoff: max,
            backoff_multiplier: multiplier,
            reset_backoff_threshold: Duration::from_millis(
                millis(self.reset_backoff_threshold).max(1),
            ),
            jitter_factor: jitter,
            attempts_before_reset_backoff: self.attempts_before_reset_backoff.max(1),
        }
    }
}

/// Flink's `restart-strategy.exponential-delay.attempts-before-reset-backoff` default
/// (`Integer.MAX_VALUE`): effectively unbounded.
const UNBOUNDED_ATTEMPTS: u64 = i32::MAX as u64;

/// Exponentially growing back-off (`exponential-delay`; Flink 1.19+'s
/// ExponentialDelayRestartBackoffTimeStrategy), precisely:
///
/// - A failure at or before the pending restart time (`now <= next_restart`) is merged into the
///   pending attempt: it changes nothing but `backoff()`, which becomes the remaining wait.
/// - Otherwise, if `now - next_restart >= reset_backoff_threshold` the attempt counter resets to
///   0; then the back-off is `initial * multiplier^attempt` (truncated to ms) plus a jitter drawn
///   uniformly from `[-offset, offset]`, `offset = trunc(backoff * jitter_factor)`, capped at
///   `max_backoff` and floored at `initial_backoff`; `next_restart = now + back-off` and the
///   counter is incremented. (The quiet period is measured from the last restart time, so a job
///   that runs `threshold` without failure after restarting starts over at the initial back-off.)
/// - `can_restart()` is `attempt <= attempts_before_reset_backoff`: that many restarts since
///   the last reset are allowed, the next failure fails the job.
///
/// Deliberate deviation: Flink adds the jitter in `long` arithmetic, which overflows once the
/// uncapped back-off saturates (after ~90 attempts at the defaults), occasionally dropping the
/// back-off to `initial`; this port saturates instead and stays at `max_backoff`.
#[derive(Debug, Clone)]
pub struct ExponentialDelay {
    initial_ms: i64,
    max_ms: i64,
    multiplier: f64,
    reset_threshold_ms: u64,
    jitter_factor: f64,
    max_attempts: u64,
    rng: ChaCha8Rng,
    /// Restart attempts since the last reset.
    attempt: u64,
    /// When the pending (or last) restart happens, in ms; None before the first failure.
    next_restart_ms: Option<u64>,
    /// Time of the latest notified failure (merged or not), in ms.
    last_failure_ms: u64,
}

impl ExponentialDelay {
    /// Parameters are [`ExponentialDelayParams::sanitized`] first; jitter draws come from a
    /// ChaCha8 stream seeded with `rng_seed`.
    pub fn new(params: ExponentialDelayParams, rng_seed: u64) -> Self {
        let p = params.sanitized();
        let ms_i64 = |d: Duration| i64::try_from(millis(d)).unwrap_or(i64::MAX);
        Self {
            initial_ms: ms_i64(p.initial_backoff),
            max_ms: ms_i64(p.max_backoff),
            multiplier: p.backoff_multiplier,
            reset_threshold_ms: millis(p.reset_backoff_threshold),
            jitter_factor: p.jitter_factor,
            max_attempts: u64::from(p.attempts_before_reset_backoff),
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            attempt: 0,
            next_restart_ms: None,
            last_failure_ms: 0,
        }
    }

    /// The back-off for the current attempt counter, jitter drawn (Flink's
    /// `calculateActualBackoffTime`).
    fn next_backoff_ms(&mut self) -> i64 {
        // `as i64` saturates (like Java's `(long)` cast) once the power overflows.
        let current = (self.initial_ms as f64 * self.multiplier.powf(self.attempt as f64)) as i64;
        let jitter = self.jitter_ms(current);
        current
            .saturating_add(jitter)
            .min(self.max_ms)
            .max(self.initial_ms)
    }

    /// Uniform in `[-offset, offset]`, `offset = trunc(current * jitter_factor)`.
    fn jitter_ms(&mut self, current: i64) -> i64 {
        let offset = (current as f64 * self.jitter_factor) as i64;
        if offset <= 0 {
            return 0;
        }
        self.rng.gen_range(-offset..=offset)
    }
}

impl RestartBackoff for ExponentialDelay {
    fn notify_failure(&mut self, now: Duration) {
        let now = millis(now);
        self.last_failure_ms = now;
        match self.next_restart_ms {
            // A restart is pending: this failure joins that attempt.
            Some(next) if now <= next => return,
            Some(next) if now - next >= self.reset_threshold_ms => self.attempt = 0,
            Some(_) => {}
            None => self.attempt = 0,
        }
        // Non-negative: floored at initial_ms >= 1.
        let backoff = u64::try_from(self.next_backoff_ms()).unwrap_or(0);
        self.next_restart_ms = Some(now.saturating_add(backoff));
        self.attempt = self.attempt.saturating_add(1);
    }

    fn can_restart(&self) -> bool {
        self.attempt <= self.max_attempts
    }

    fn backoff(&self) -> Duration {
        self.next_restart_ms.map_or(Duration::ZERO, |next| {
            Duration::from_millis(next.saturating_sub(self.last_failure_ms))
        })
    }

    fn describe(&self) -> String {
        if self.next_restart_ms.is_none() {
            return format!(
                "exponential-delay (no failure yet, initial {:?})",
                Duration::from_millis(self.initial_ms.unsigned_abs())
            );
        }
        if !self.can_restart() {
            return format!(
                "exponential-delay (attempts exhausted: {} restarts without a reset)",
                self.max_attempts
            );
        }
        if self.max_attempts >= UNBOUNDED_ATTEMPTS {
            format!(
                "exponential-delay (attempt {}, {:?})",
                self.attempt,
                self.backoff()
            )
        } else {
            format!(
                "exponential-delay (attempt {} of {}, {:?})",
                self.attempt,
                self.max_attempts,
                self.backoff()
            )
        }
    }

    fn longest_backoff(&self) -> Duration {
        Duration::from_millis((self.max_ms.max(0) as f64 * (1.0 + self.jitter_factor)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn exp(
        initial_ms: u64,
        max_ms: u64,
        multiplier: f64,
        reset_ms: u64,
        jitter: f64,
        attempts: u32,
    ) -> ExponentialDelay {
        exp_seeded(
            initial_ms, max_ms, multiplier, reset_ms, jitter, attempts, 0,
        )
    }

    fn exp_seeded(
        initial_ms: u64,
        max_ms: u64,
        multiplier: f64,
        reset_ms: u64,
        jitter: f64,
        attempts: u32,
        seed: u64,
    ) -> ExponentialDelay {
        ExponentialDelay::new(
            ExponentialDelayParams {
                initial_backoff: ms(initial_ms),
                max_backoff: ms(max_ms),
                backoff_multiplier: multiplier,
                reset_backoff_threshold: ms(reset_ms),
                jitter_factor: jitter,
                attempts_before_reset_backoff: attempts,
            },
            seed,
        )
    }

    /// Flink's `Integer.MAX_VALUE`, used by its tests for "no limit".
    const INT_MAX: u32 = i32::MAX as u32;

    // ---- none ----------------------------------------------------------------------------------

    #[test]
    fn none_never_restarts() {
        let mut s = NoRestart;
        assert!(!s.can_restart());
        s.notify_failure(ms(0));
        assert!(!s.can_restart());
        assert_eq!(s.backoff(), Duration::ZERO);
        assert_eq!(s.describe(), "none (restarts disabled)");
    }

    // ---- fixed-delay ---------------------------------------------------------------------------

    #[test]
    fn fixed_delay_number_of_restarts() {
        let mut s = FixedDelay::new(3, Duration::ZERO);
        for _ in 0..3 {
            s.notify_failure(ms(0));
            // Twice, so can_restart cannot be what maintains the counter.
            assert!(s.can_restart());
            assert!(s.can_restart());
        }
        s.notify_failure(ms(0));
        assert!(!s.can_restart());
    }

    #[test]
    fn fixed_delay_backoff_time() {
        let mut s = FixedDelay::new(1, ms(10_000));
        assert_eq!(s.backoff(), ms(10_000));
        s.notify_failure(ms(5));
        assert_eq!(s.backoff(), ms(10_000));
    }

    #[test]
    fn fixed_delay_zero_attempts_fails_on_first_failure() {
        let mut s = FixedDelay::new(0, ms(1));
        assert!(s.can_restart());
        s.notify_failure(ms(0));
        assert!(!s.can_restart());
    }

    #[test]
    fn fixed_delay_describe() {
        let mut s = FixedDelay::new(3, ms(1_000));
        s.notify_failure(ms(0));
        s.notify_failure(ms(10));
        assert_eq!(s.describe(), "fixed-delay (attempt 2 of 3, 1s)");
        s.notify_failure(ms(20));
        s.notify_failure(ms(30));
        assert_eq!(
            s.describe(),
            "fixed-delay (attempts exhausted: 4 failures, 3 restarts allowed)"
        );
    }

    // ---- failure-rate --------------------------------------------------------------------------

    #[test]
    fn failure_rate_many_failures_within_rate() {
        // One failure per 1ms allowed; failures 2ms apart never exceed it.
        let mut s = FailureRate::new(1, ms(1), Duration::ZERO);
        let mut now = 0;
        for _ in 0..3 {
            s.notify_failure(ms(now));
            assert!(s.can_restart());
            now += 2;
        }
        assert!(s.can_restart());
    }

    #[test]
    fn failure_rate_failures_exceeding_rate() {
        let mut s = FailureRate::new(3, ms(10_000), Duration::ZERO);
        for _ in 0..3 {
            s.notify_failure(ms(0));
            assert!(s.can_restart());
        }
        s.notify_failure(ms(0));
        assert!(!s.can_restart());
    }

    #[test]
    fn failure_rate_backoff_time() {
        let s = FailureRate::new(1, ms(1), ms(10_000));
        assert_eq!(s.backoff(), ms(10_000));
    }

    #[test]
    fn failure_rate_window_boundary_is_inclusive() {
        // Two failures exactly `interval` apart are both inside the window (Flink: `>`).
        let mut s = FailureRate::new(1, ms(60_000), ms(1_000));
        s.notify_failure(ms(0));
        assert!(s.can_restart());
        s.notify_failure(ms(60_000));
        assert!(!s.can_restart());

        let mut s = FailureRate::new(1, ms(60_000), ms(1_000));
        s.notify_failure(ms(0));
        s.notify_failure(ms(60_001));
        assert!(s.can_restart());
    }

    #[test]
    fn failure_rate_window_slides() {
        let mut s = FailureRate::new(2, ms(60_000), ms(1_000));
        s.notify_failure(ms(0));
        s.notify_failure(ms(10_000));
        assert!(s.can_restart());
        // Third failure 61s after the first: the first has left the window.
        s.notify_failure(ms(61_000));
        assert!(s.can_restart());
        assert_eq!(
            s.describe(),
            "failure-rate (2 of at most 2 failures within 60s, 1s)"
        );
        // Fourth: 10s, 61s, 65s are within 60s of each other.
        s.notify_failure(ms(65_000));
        assert!(!s.can_restart());
        assert_eq!(
            s.describe(),
            "failure-rate (more than 2 failures within 60s)"
        );
    }

    #[test]
    fn failure_rate_failures_inside_interval_fail_the_job() {
        let mut s = FailureRate::new(2, ms(60_000), ms(1_000));
        for t in [0, 10_000, 20_000] {
            s.notify_failure(ms(t));
        }
        assert!(!s.can_restart());
    }

    // ---- exponential-delay ---------------------------------------------------------------------

    #[test]
    fn exponential_max_attempts() {
        let max_attempts = 13;
        let max_backoff = 3;
        let mut s = exp(1, max_backoff, 1.2, 10, 0.25, max_attempts);
        let mut now = 0;
        for _ in 0..=max_attempts {
            assert!(s.can_restart());
            s.notify_failure(ms(now));
            now += max_backoff + 1;
        }
        assert!(!s.can_restart());
    }

    #[test]
    fn exponential_backoff_before_any_failure_is_zero() {
        let s = exp(42, 45, 2.0, 8, 0.0, 10);
        assert_eq!(s.backoff(), Duration::ZERO);
        assert!(s.can_restart());
    }

    #[test]
    fn exponential_initial_backoff() {
        let mut s = exp(42, 45, 2.0, 8, 0.0, INT_MAX);
        s.notify_failure(ms(0));
        assert_eq!(s.backoff(), ms(42));
    }

    #[test]
    fn exponential_growth_is_capped_at_max() {
        let max = 6;
        let mut s = exp(1, max, 2.0, 1_000_000, 0.25, INT_MAX);
        let mut now = 0;
        let mut seen = Vec::new();
        for _ in 0..10 {
            s.notify_failure(ms(now));
            assert!(s.backoff() <= ms(max));
            seen.push(s.backoff());
            now += max + 1;
        }
        // 1, 2, 4 (jitter ±1), then 8 ±2 and beyond are all capped.
        assert_eq!(seen[0], ms(1));
        assert_eq!(seen[1], ms(2));
        assert!((ms(3)..=ms(5)).contains(&seen[2]));
        assert!(seen[3..].iter().all(|&b| b == ms(max)));
    }

    #[test]
    fn exponential_backoff_multiplier() {
        let max = 300;
        let mut s = exp(4, max, 2.3, u64::from(INT_MAX), 0.0, 10);
        let mut now = 0;
        for expected in [4, 9, 21] {
            // 4, trunc(4 * 2.3), trunc(4 * 2.3 * 2.3)
            s.notify_failure(ms(now));
            assert_eq!(s.backoff(), ms(expected));
            now += max + 1;
        }
    }

    #[test]
    fn exponential_reset_backoff() {
        let initial = 1;
        let reset = 8;
        let mut s = exp(initial, 5, 2.0, reset, 0.25, INT_MAX);
        s.notify_failure(ms(0));
        assert_eq!(s.backoff(), ms(1));

        // One ms short of the quiet period after the restart (at 1ms): the back-off grows.
        let now = reset;
        s.notify_failure(ms(now));
        assert_eq!(s.backoff(), ms(2), "backoff should be increased");

        // A full quiet period after the restart: back to the initial back-off.
        let now = now + reset + 2;
        s.notify_failure(ms(now));
        assert_eq!(s.backoff(), ms(initial), "backoff should be reset");
    }

    #[test]
    fn exponential_multiple_settings() {
        let (initial, max, reset) = (1, 9, 80);
        let mut s = exp(initial, max, 2.0, reset, 0.25, INT_MAX);
        let mut now = 0;

        s.notify_failure(ms(now));
        assert!(s.can_restart());
        assert_eq!(s.backoff(), ms(initial));

        // Initial again after a quiet period.
        now += reset + 1;
        s.notify_failure(ms(now));
        assert!(s.can_restart());
        assert_eq!(s.backoff(), ms(initial));

        // Grows while failures keep coming.
        now += 4;
        s.notify_failure(ms(now));
        assert!(s.can_restart());
        assert_eq!(s.backoff(), ms(2));

        // Reset after the threshold.
        now += reset + 9 + 1;
        s.notify_failure(ms(now));
        assert!(s.can_restart());
        assert_eq!(s.backoff(), ms(1));
        now += max + 1;

        // And grows again.
        s.notify_failure(ms(now));
        assert!(s.can_restart());
        assert_eq!(s.backoff(), ms(2));
    }

    /// Failures at `now` and during the following `expected` ms all join one attempt, and
    /// `backoff()` counts down the remaining wait. Returns the time after the window.
    fn check_failures_merged(s: &mut ExponentialDelay, mut now: u64, expected: u64) -> u64 {
        // No restart pending: the first failure starts a new attempt.
        assert!(s.next_restart_ms.is_none_or(|next| next < now));
        let start = now;
        let mut attempt = None;
        for elapsed in 0..expected {
            for _ in 0..10 {
                s.notify_failure(ms(now));
                let first = *attempt.get_or_insert(s.attempt);
                assert_eq!(s.attempt, first, "only the first failure counts");
                assert_eq!(s.next_restart_ms, Some(start + expected));
                assert!(s.can_restart());
                assert_eq!(s.backoff(), ms(expected - elapsed));
            }
            now += 1;
        }
        now
    }

    #[test]
    fn exponential_merges_failures_into_one_attempt() {
        let (initial, max, reset) = (2, 6, 80);
        let mut s = exp(initial, max, 2.0, reset, 0.0, 3);
        let now = check_failures_merged(&mut s, 0, initial);
        let now = check_failures_merged(&mut s, now + 1, initial * 2);
        let now = check_failures_merged(&mut s, now + 1, max);
        // A new round after the third restart exceeds the 3 attempts.
        s.notify_failure(ms(now + 1));
        assert!(!s.can_restart());
    }

    #[test]
    fn exponential_merging_works_with_resetting() {
        let (initial, max, reset) = (2, 6, 80);
        let mut s = exp(initial, max, 2.0, reset, 0.0, 3);
        let mut now = 0;
        for _ in 0..10 {
            now = check_failures_merged(&mut s, now, initial);
            now = check_failures_merged(&mut s, now + 1, initial * 2);
            now = check_failures_merged(&mut s, now + 1, max);
            now += reset;
        }
    }

    /// Backoff after `failures` failures, `advance` ms apart, over many seeds.
    fn jitter_range(
        initial: u64,
        max: u64,
        jitter: f64,
        advance: u64,
        failures: u32,
    ) -> BTreeSet<u64> {
        (0..300)
            .map(|seed| {
                let mut s =
                    exp_seeded(initial, max, 2.0, u64::from(INT_MAX), jitter, INT_MAX, seed);
                for i in 1..=u64::from(failures) {
                    s.notify_failure(ms(i * advance));
                }
                millis(s.backoff())
            })
            .collect()
    }

    #[test]
    fn exponential_jitter_range() {
        let (initial, max) = (2, 7);
        assert_eq!(
            jitter_range(initial, max, 0.25, max + 1, 2),
            BTreeSet::from([3, 4, 5])
        );
        assert_eq!(
            jitter_range(initial, max, 0.25, max + 1, 3),
            BTreeSet::from([6, 7])
        );
        assert_eq!(
            jitter_range(initial, max, 0.25, max + 1, 4),
            BTreeSet::from([7])
        );
    }

    #[test]
    fn exponential_jitter_never_above_max_nor_below_initial() {
        let max = 7;
        assert_eq!(
            jitter_range(1, max, 1.0, max + 1, 1),
            BTreeSet::from([1, 2])
        );
        assert_eq!(
            jitter_range(1, max, 1.0, max + 1, 2),
            (1..=4).collect::<BTreeSet<u64>>()
        );
        assert_eq!(
            jitter_range(1, max, 1.0, max + 1, 3),
            (1..=7).collect::<BTreeSet<u64>>()
        );
    }

    #[test]
    fn exponential_jitter_is_deterministic_per_seed() {
        let run = |seed| {
            let mut s = ExponentialDelay::new(ExponentialDelayParams::default(), seed);
            (0..30u64)
                .map(|i| {
                    s.notify_failure(ms(i * 120_000));
                    s.backoff()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // Defaults: 1s ± 100ms floored at 1s, 1.5s ± 150ms, ..., capped at 1min.
        let backoffs = run(7);
        assert!((ms(1_000)..=ms(1_100)).contains(&backoffs[0]));
        assert!((ms(1_350)..=ms(1_650)).contains(&backoffs[1]));
        assert!(backoffs.iter().all(|&b| b <= ms(60_000)));
        assert_eq!(*backoffs.last().unwrap(), ms(60_000));
    }

    #[test]
    fn exponential_huge_attempt_counts_stay_at_max() {
        // Past ~90 attempts the uncapped back-off overflows i64; it must stay capped.
        let mut s = exp(1_000, 60_000, 1.5, 3_600_000, 0.1, INT_MAX);
        for i in 0..500u64 {
            s.notify_failure(ms(i * 61_000));
            if i >= 20 {
                assert_eq!(s.backoff(), ms(60_000), "failure {i}");
            }
        }
        assert!(s.can_restart());
    }

    #[test]
    fn exponential_describe() {
        let mut s = exp(1_000, 60_000, 2.0, 3_600_000, 0.0, 3);
        assert_eq!(
            s.describe(),
            "exponential-delay (no failure yet, initial 1s)"
        );
        s.notify_failure(ms(0));
        s.notify_failure(ms(5_000));
        assert_eq!(s.describe(), "exponential-delay (attempt 2 of 3, 2s)");
        s.notify_failure(ms(20_000));
        s.notify_failure(ms(40_000));
        assert_eq!(
            s.describe(),
            "exponential-delay (attempts exhausted: 3 restarts without a reset)"
        );
        let mut s = exp(1_000, 60_000, 2.0, 3_600_000, 0.0, INT_MAX);
        s.notify_failure(ms(0));
        assert_eq!(s.describe(), "exponential-delay (attempt 1, 1s)");
    }

    #[test]
    fn exponential_out_of_range_parameters_are_clamped() {
        // Initial 0 -> 1ms; max below initial -> initial; attempts 0 -> 1; multiplier 1 ->
        // constant.
        let mut s = exp(0, 0, 1.0, 1_000_000, 0.0, 0);
        s.notify_failure(ms(0));
        assert_eq!(s.backoff(), ms(1));
        assert!(s.can_restart());
        s.notify_failure(ms(5));
        assert!(!s.can_restart(), "at least one attempt, and only one");
        let mut s = exp(5_000, 1_000, 1.0, 10, 0.0, 5);
        s.notify_failure(ms(0));
        assert_eq!(s.backoff(), ms(5_000));
        s.notify_failure(ms(5_001));
        assert_eq!(s.backoff(), ms(5_000));
    }

    // ---- from_config ---------------------------------------------------------------------------

    fn conf(pairs: &[(&str, &str)]) -> Configuration {
        Configuration::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn from_config_unset_without_checkpointing_is_none() {
        let mut s = from_config(&Configuration::new(), 1);
        s.notify_failure(ms(0));
        assert!(!s.can_restart());
        assert!(s.describe().starts_with("none"));
    }

    #[test]
    fn from_config_unset_with_checkpointing_is_exponential_with_flink_defaults() {
        // Flink ignores exponential-delay.* keys unless the type is set explicitly.
        let c = conf(&[
            (keys::CHECKPOINT_INTERVAL, "10s"),
            (keys::EXP_INITIAL_BACKOFF, "5s"),
        ]);
        let mut s = from_config(&c, 1);
        assert!(s.describe().starts_with("exponential-delay"));
        s.notify_failure(ms(0));
        assert!(s.can_restart());
        assert!(
            (ms(1_000)..=ms(1_100)).contains(&s.backoff()),
            "{:?}",
            s.backoff()
        );
    }

    #[test]
    fn from_config_explicit_none_wins_over_checkpointing() {
        let c = conf(&[
            (keys::CHECKPOINT_INTERVAL, "10s"),
            (keys::RESTART_STRATEGY, "none"),
        ]);
        let mut s = from_config(&c, 1);
        s.notify_failure(ms(0));
        assert!(!s.can_restart());
    }

    #[test]
    fn from_config_fixed_delay_defaults() {
        let mut s = from_config(&conf(&[(keys::RESTART_STRATEGY, "fixed-delay")]), 1);
        s.notify_failure(ms(0));
        assert!(s.can_restart());
        assert_eq!(s.backoff(), ms(1_000));
        assert_eq!(s.describe(), "fixed-delay (attempt 1 of 1, 1s)");
        s.notify_failure(ms(2_000));
        assert!(!s.can_restart());
    }

    #[test]
    fn from_config_fixed_delay_configured_and_alias() {
        let c = conf(&[
            ("restart-strategy", "fixeddelay"),
            (keys::FIXED_DELAY_ATTEMPTS, "3"),
            (keys::FIXED_DELAY_DELAY, "10s"),
        ]);
        let mut s = from_config(&c, 1);
        for i in 0..3 {
            s.notify_failure(ms(i * 20_000));
            assert!(s.can_restart());
            assert_eq!(s.backoff(), ms(10_000));
        }
        s.notify_failure(ms(60_000));
        assert!(!s.can_restart());
    }

    #[test]
    fn from_config_failure_rate_defaults() {
        let mut s = from_config(&conf(&[(keys::RESTART_STRATEGY, "failure-rate")]), 1);
        s.notify_failure(ms(0));
        assert!(s.can_restart());
        assert_eq!(s.backoff(), ms(1_000));
        // Second failure within the default 1min interval: more than 1 failure per interval.
        s.notify_failure(ms(30_000));
        assert!(!s.can_restart());

        let mut s = from_config(&conf(&[(keys::RESTART_STRATEGY, "failure-rate")]), 1);
        s.notify_failure(ms(0));
        s.notify_failure(ms(60_001));
        assert!(s.can_restart());
    }

    #[test]
    fn from_config_exponential_defaults_and_configured() {
        let mut s = from_config(&conf(&[(keys::RESTART_STRATEGY, "exponential-delay")]), 3);
        s.notify_failure(ms(0));
        assert!((ms(1_000)..=ms(1_100)).contains(&s.backoff()));
        s.notify_failure(ms(10_000));
        assert!((ms(1_350)..=ms(1_650)).contains(&s.backoff()));
        assert!(s.can_restart());

        let c = conf(&[
            (keys::RESTART_STRATEGY, "exponential-delay"),
            (keys::EXP_INITIAL_BACKOFF, "100ms"),
            (keys::EXP_MAX_BACKOFF, "300ms"),
            (keys::EXP_BACKOFF_MULTIPLIER, "2"),
            (keys::EXP_JITTER_FACTOR, "0"),
            (keys::EXP_ATTEMPTS_BEFORE_RESET, "3"),
        ]);
        let mut s = from_config(&c, 3);
        let mut now = 0;
        for expected in [100, 200, 300] {
            s.notify_failure(ms(now));
            assert!(s.can_restart());
            assert_eq!(s.backoff(), ms(expected));
            now += 1_000;
        }
        s.notify_failure(ms(now));
        assert!(!s.can_restart());
    }

    #[test]
    fn from_config_same_seed_same_backoffs() {
        let c = conf(&[(keys::RESTART_STRATEGY, "exponential-delay")]);
        let run = |seed| {
            let mut s = from_config(&c, seed);
            (0..10u64)
                .map(|i| {
                    s.notify_failure(ms(i * 120_000));
                    s.backoff()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
    }

    #[test]
    fn params_default_is_flink_default() {
        assert_eq!(
            ExponentialDelayParams::default(),
            ExponentialDelayParams {
                initial_backoff: ms(1_000),
                max_backoff: ms(60_000),
                backoff_multiplier: 1.5,
                reset_backoff_threshold: ms(3_600_000),
                jitter_factor: 0.1,
                attempts_before_reset_backoff: INT_MAX,
            }
        );
    }
}
