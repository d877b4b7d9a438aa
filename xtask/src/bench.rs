//! `cargo xtask bench runtime`: builds the release `rill` binary, runs `rill bench` and compares
//! what it reports against the targets.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::steps::{Failure, Plan, Step};

/// Throughput target for keyed-count, records per second.
const TARGET_RECORDS_PER_SEC: f64 = 6.5e6;
/// Peak resident memory target, MiB (strictly below).
const TARGET_PEAK_RSS_MIB: f64 = 100.0;

#[derive(Args)]
pub struct RuntimeArgs {
    /// Records the keyed-count source produces.
    #[arg(long, default_value_t = 20_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Parallelism of the job.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    parallelism: u32,
}

/// Builds, runs and compares. Missing a target is reported, not an error: only a failing
/// build or run makes the command exit non-zero.
pub fn runtime(root: &Path, args: &RuntimeArgs) -> Result<(), Failure> {
    let mut plan = Plan::new(4);
    plan.run(Step::cargo(
        "build",
        root,
        ["build", "--release", "--bin", "rill"],
    ))?;
    let records = args.records.to_string();
    let parallelism = args.parallelism.to_string();
    let bench = Step::new("bench", root, release_binary(root, "rill"))
        .args([
            "bench",
            "--records",
            &records,
            "--parallelism",
            &parallelism,
        ])
        .capture_stdout();
    let output = plan.run(bench)?;
    // What TLS costs where records cross TaskManagers: the same job on two, each way.
    let mut across = Vec::new();
    for tls in [false, true] {
        let mut step = Step::new("bench: 2 taskmanagers", root, release_binary(root, "rill"))
            .args(["bench", "--records", &records, "--parallelism", "4"])
            .args(["--taskmanagers", "2"]);
        if tls {
            step = step.args(["--tls"]);
        }
        across.push(plan.run(step.capture_stdout())?);
    }
    plan.finish();
    compare(&output);
    println!("==> TLS, keyed-count p=4 over 2 TaskManagers (records cross the data plane)");
    for (name, out) in ["plaintext", "TLS"].iter().zip(&across) {
        let rate = metric(out, "records_per_sec")
            .map_or("?".into(), |r| format!("{:.2} M records/s", r / 1e6));
        let rss = metric(out, "peak_rss_mib").map_or("?".into(), |m| format!("{m:.1} MiB"));
        println!("    {name:<12}{rate:<20}peak RSS {rss}");
    }
    Ok(())
}

/// `cargo xtask bench balance`: task-count range and memory per TaskManager under each
/// load-balance mode (`rill bench-balance`).
pub fn balance(root: &Path) -> Result<(), Failure> {
    let mut plan = Plan::new(2);
    plan.run(Step::cargo(
        "build",
        root,
        ["build", "--release", "--bin", "rill"],
    ))?;
    plan.run(Step::new("bench", root, release_binary(root, "rill")).args(["bench-balance"]))?;
    plan.finish();
    Ok(())
}

/// `target/release/<name>`, honouring CARGO_TARGET_DIR as cargo does.
pub fn release_binary(root: &Path, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    target
        .join("release")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Prints one line per target: measured value, target, verdict.
fn compare(output: &str) {
    println!("==> targets");
    let target = format!(">= {:.1} M records/s", TARGET_RECORDS_PER_SEC / 1e6);
    match metric(output, "records_per_sec") {
        Some(rate) => row(
            "throughput",
            format!("{:.2} M records/s", rate / 1e6),
            &target,
            rate >= TARGET_RECORDS_PER_SEC,
        ),
        None => missing("throughput", "records_per_sec"),
    }
    let target = format!("<  {TARGET_PEAK_RSS_MIB:.0} MiB");
    match metric(output, "peak_rss_mib") {
        Some(mib) => row(
            "peak RSS",
            format!("{mib:.1} MiB"),
            &target,
            mib < TARGET_PEAK_RSS_MIB,
        ),
        None => missing("peak RSS", "peak_rss_mib"),
    }
}

fn row(name: &str, measured: String, target: &str, met: bool) {
    let verdict = if met { "met" } else { "MISSED" };
    println!("    {name:<12}{measured:<20}target {target:<22}{verdict}");
}

fn missing(name: &str, key: &str) {
    println!("    {name:<12}not reported: no `{key}: <float>` line in rill's output");
}

/// The value of the last `<key>: <float>` line (anything after the number is ignored).
fn metric(output: &str, key: &str) -> Option<f64> {
    output
        .lines()
        .rev()
        .filter_map(|line| {
            line.trim()
                .strip_prefix(key)?
                .trim_start()
                .strip_prefix(':')
        })
        .find_map(|value| value.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn parses_last_metric_line() {
        let out = "warmup\nrecords_per_sec: 1.5\nrecords_per_sec: 7012345.6 (keyed-count)\npeak_rss_mib:84.25\n";
        assert_eq!(metric(out, "records_per_sec"), Some(7012345.6));
        assert_eq!(metric(out, "peak_rss_mib"), Some(84.25));
        assert_eq!(metric(out, "records_per_second"), None);
        assert_eq!(metric("records_per_sec: fast", "records_per_sec"), None);
    }
}
