//! What a value of each [`KeyKind`] may look like: validation against a kind, Flink's duration and
//! memory-size syntaxes, and the choice enums ([`FailoverStrategy`], [`LoadBalanceMode`],
//! [`RestartStrategyKind`]) with their config spellings.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::keys::{KeyKind, FAILOVER_VALUES, LOAD_BALANCE_VALUES, RESTART_ALIASES, RESTART_VALUES};

// ---- validation ----------------------------------------------------------------------------

const DURATION_EXAMPLES: &str = "a duration like 500ms, 10s, 1min";
const MEMORY_EXAMPLES: &str = "a memory size like 512kb, 64m, 1g";

/// Checks `value` against `kind`; returns the spelling to store or a description of what was
/// expected (the parse error detail is dropped: "expected X" is what the user needs).
pub(super) fn validate(kind: &KeyKind, value: &str) -> Result<String, String> {
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
        KeyKind::Directories => crate::api::FileAccess::parse(value).is_ok(),
    };
    match (ok, kind) {
        (false, _) => Err(expected(kind)),
        (true, KeyKind::Bool | KeyKind::OptionalDuration { .. }) => Ok(value.to_ascii_lowercase()),
        (true, _) => Ok(value.to_string()),
    }
}

/// Human description of what `kind` accepts, used in
/// [`ConfigError::InvalidValue`](super::ConfigError::InvalidValue).
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
        KeyKind::Directories => {
            "none, * or a comma-separated list of absolute directories".to_string()
        }
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
pub(super) fn parse_optional_duration(s: &str) -> Option<Option<Duration>> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Some(None);
    }
    parse_duration(s).ok().map(Some)
}

pub(super) fn parse_float(s: &str) -> Result<f64, String> {
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
    /// Flink's default: the first free slots, TaskManagers in registration order.
    None,
    /// Evenly spread slots: each group to the TaskManager with the lowest slot utilisation.
    Slots,
    /// Spread tasks (FLIP-370): task-balanced groups, each onto the least loaded TaskManager.
    Tasks,
}
choice_enum!(LoadBalanceMode, LOAD_BALANCE_VALUES, &[], {
    None => "none", Slots => "slots", Tasks => "tasks",
});

/// Which restart strategy governs restarts after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartStrategyKind {
    /// No restarts: the first failure fails the job.
    None,
    /// A fixed number of restarts, each after the same delay.
    FixedDelay,
    /// A back-off that grows with each failure and resets after a long enough healthy run.
    ExponentialDelay,
    /// Restarts as long as the failures per interval stay within a limit.
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
}
