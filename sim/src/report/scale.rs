//! The timeline's numbers: round axis scales, time ticks and bucket widths, compact labels
//! for seconds, rates and bytes, and the natural order of TaskManager names.

/// Formats milliseconds as seconds for axis labels: "2s", "1.25s".
pub(super) fn fmt_secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        return format!("{}s", ms / 1000);
    }
    let frac = format!("{:03}", ms % 1000);
    format!("{}.{}s", ms / 1000, frac.trim_end_matches('0'))
}

/// Compact rate labels ("1.2k") so they fit the left margin.
pub(super) fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", one_decimal(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", one_decimal(v / 1e3))
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        one_decimal(v)
    }
}

/// One decimal, without a trailing ".0", so round ticks read "20" and "1.5k".
fn one_decimal(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0")
        .map_or_else(|| s.clone(), str::to_string)
}

const BINARY_UNITS: [(&str, f64); 3] = [("GiB", 1073741824.0), ("MiB", 1048576.0), ("KiB", 1024.0)];

/// Binary units, as memory limits are configured.
pub(super) fn fmt_bytes(v: f64) -> String {
    for (unit, size) in BINARY_UNITS {
        if v >= size {
            return format!("{}{unit}", one_decimal(v / size));
        }
    }
    format!("{v:.0}B")
}

/// Axis maximum and number of divisions such that every tick is round: the maximum is 1, 2
/// or 5 times a power of ten (of the largest binary unit below it for byte axes, so ticks
/// read "20MiB" rather than "23.8MiB"), split in fifths, or quarters for a 2.
pub(super) fn y_scale(max: f64, binary: bool) -> (f64, u32) {
    let unit = if binary {
        BINARY_UNITS
            .iter()
            .map(|u| u.1)
            .find(|size| max >= *size)
            .unwrap_or(1.0)
    } else {
        1.0
    };
    let nice = nice_ceil(max / unit);
    let mantissa = nice / 10f64.powf(nice.log10().floor());
    (
        nice * unit,
        if (mantissa - 2.0).abs() < 1e-6 { 4 } else { 5 },
    )
}

/// Rounds an axis maximum up to 1, 2 or 5 times a power of ten, so tick labels are round.
fn nice_ceil(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Time-axis tick spacing (1-2-5 steps) giving at most ten ticks.
pub(super) fn tick_step_ms(span_ms: u64) -> u64 {
    let mut decade = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = decade * m;
            if span_ms / step <= 10 {
                return step;
            }
        }
        decade *= 10;
    }
}

/// Output bucket width: 100 ms, coarsened in 100 ms steps so a run has at most 600 buckets
/// (enough resolution for a 1000 px chart without a huge page for long runs).
pub(super) fn bucket_ms(span_ms: u64) -> u64 {
    let raw = span_ms.div_ceil(600).max(100);
    raw.div_ceil(100) * 100
}

/// Orders "tm-2" before "tm-10", so legends and colors follow TaskManager numbers.
pub(super) fn natural_key(s: &str) -> (&str, u64, &str) {
    let prefix = s.trim_end_matches(|c: char| c.is_ascii_digit());
    let number = s[prefix.len()..].parse().unwrap_or(0);
    (prefix, number, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round_and_bounded() {
        assert_eq!(bucket_ms(4000), 100);
        assert_eq!(bucket_ms(600_000), 1000);
        assert!(600_001u64.div_ceil(bucket_ms(600_001)) <= 600);
        assert_eq!(tick_step_ms(4000), 500);
        assert_eq!(fmt_secs(1250), "1.25s");
        assert_eq!(nice_ceil(130.0), 200.0);
        assert_eq!(y_scale(130.0, false), (200.0, 4));
        assert_eq!(y_scale(0.0, false), (1.0, 5));
        assert_eq!(y_scale(64.0 * 1048576.0, true), (100.0 * 1048576.0, 5));
        assert_eq!(
            (fmt_bytes(20.0 * 1048576.0), fmt_num(1500.0), fmt_num(0.0)),
            ("20MiB".into(), "1.5k".into(), "0".into())
        );
        let mut names = vec!["tm-10".to_string(), "tm-2".into(), "tm-1".into()];
        names.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
        assert_eq!(names, ["tm-1", "tm-2", "tm-10"]);
    }
}
