//! `cargo xtask bench recovery --real`: the 4x2 TaskManager crash with real processes on
//! loopback, under each failover strategy: a JobManager and 4 TaskManager processes x 2 slots,
//! keyed-count at parallelism 4 paced at 20,000 records/s into a file sink, SIGKILL of one
//! task-hosting TaskManager after 25 s, heartbeat interval 1 s and timeout 5 s. The sink's
//! output is sampled every 100 ms.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::steps::{Failure, Plan, Step};

const RATE: u64 = 20_000;
const KILL_AFTER: Duration = Duration::from_secs(25);
const RECORDS: u64 = 1_000_000;
const SAMPLE: Duration = Duration::from_millis(100);

/// Kills the process when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run measured.
struct Figures {
    longest_stall: Duration,
    back_at_95: Option<Duration>,
    lost: u64,
    duplicated: u64,
}

pub fn real(root: &Path) -> Result<(), Failure> {
    let mut plan = Plan::new(2);
    plan.run(Step::cargo(
        "build",
        root,
        ["build", "--release", "--bin", "rill"],
    ))?;
    plan.finish();
    let bin = crate::bench::release_binary(root, "rill");
    println!(
        "keyed-count p=4 on 4 TaskManager processes x 2 slots, {RATE} records/s, SIGKILL of tm-2 after {}s; output sampled every {}ms",
        KILL_AFTER.as_secs(),
        SAMPLE.as_millis()
    );
    println!(
        "{:<12} {:>22} {:>16} {:>8} {:>11}",
        "strategy", "longest zero-output", "back at 95%", "lost", "duplicated"
    );
    for strategy in ["full", "region", "taskmanager"] {
        let f = measure(&bin, strategy).map_err(|e| Failure::new(format!("{strategy}: {e}")))?;
        println!(
            "{strategy:<12} {:>22} {:>16} {:>8} {:>11}",
            format!("{:.1}s", f.longest_stall.as_secs_f64()),
            f.back_at_95
                .map_or("never".to_string(), |d| format!("{:.1}s", d.as_secs_f64())),
            f.lost,
            f.duplicated
        );
    }
    println!("Flink 1.20, same setup, region failover (restarts all 8 tasks): 2.5s zero-output, back at 95% after 2.6s");
    Ok(())
}

fn spawn(
    bin: &Path,
    args: &[&str],
) -> std::io::Result<(Proc, BufReader<std::process::ChildStdout>)> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = BufReader::new(child.stdout.take().expect("piped"));
    Ok((Proc(child), out))
}

fn wait_for(
    out: &mut BufReader<std::process::ChildStdout>,
    marker: &str,
) -> Result<String, String> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("process exited before printing '{marker}'"));
        }
        if line.contains(marker) {
            return Ok(line);
        }
    }
}

fn measure(bin: &Path, strategy: &str) -> Result<Figures, String> {
    let io = |e: std::io::Error| e.to_string();
    let heartbeat = ["-c", "heartbeat.interval=1s", "-c", "heartbeat.timeout=5s"];
    let mut args = vec!["jobmanager", "--bind", "127.0.0.1:0"];
    args.extend(heartbeat);
    let (_jm, mut jm_out) = spawn(bin, &args).map_err(io)?;
    let line = wait_for(&mut jm_out, "listening on")?;
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut tms = Vec::new();
    for i in 1..=4 {
        let name = format!("tm-{i}");
        let mut args = vec![
            "taskmanager",
            "--jobmanager",
            &addr,
            "--slots",
            "2",
            "--name",
            &name,
        ];
        args.extend(heartbeat);
        let (p, mut out) = spawn(bin, &args).map_err(io)?;
        wait_for(&mut out, "serving data")?;
        tms.push(p);
    }
    let dir = std::env::temp_dir().join(format!("rill-recovery-{strategy}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink = format!("sink=file:{}", dir.display());
    let (records, rate) = (format!("records={RECORDS}"), format!("rate={RATE}"));
    let failover = format!("jobmanager.execution.failover-strategy={strategy}");
    let mut run = Command::new(bin)
        .args(["run", "--job", "keyed-count", "--jobmanager", &addr])
        .args([
            "-p",
            "parallelism=4",
            "-p",
            &rate,
            "-p",
            &records,
            "-p",
            &sink,
        ])
        .args(["-c", &failover, "-c", "taskmanager.load-balance.mode=tasks"])
        .args(["-c", "execution.checkpointing.interval=1s"])
        .args(["-c", "restart-strategy.type=fixed-delay"])
        .args(["-c", "restart-strategy.fixed-delay.attempts=3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io)?;
    let mut counter = LineCounter::new(&dir);
    let start = Instant::now();
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut killed_at = None;
    let status = loop {
        if let Some(status) = run.try_wait().map_err(io)? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = run.kill();
            return Err("the job did not finish within 180 s".into());
        }
        std::thread::sleep(SAMPLE);
        let lines = counter.count();
        samples.push((start.elapsed(), lines));
        if killed_at.is_none() && start.elapsed() >= KILL_AFTER {
            tms[1].0.kill().map_err(io)?;
            killed_at = Some(start.elapsed());
        }
    };
    if !status.success() {
        return Err(format!("rill run exited with {status}"));
    }
    let kill = killed_at.ok_or("the job ended before the kill")?;
    if let Some(path) = std::env::var_os("RILL_RECOVERY_SAMPLES") {
        let text: String = samples
            .iter()
            .map(|(t, n)| format!("{strategy} {:.3} {n}\n", t.as_secs_f64()))
            .collect();
        let text = format!("{strategy} kill {:.3}\n{text}", kill.as_secs_f64());
        let _ = std::fs::write(Path::new(&path).join(format!("{strategy}.txt")), text);
    }
    let (lost, duplicated) = delivery(&dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures {
        longest_stall: longest_stall(&samples, kill),
        back_at_95: back_at_95(&samples, kill),
        lost,
        duplicated,
    })
}

/// The longest run of samples after `kill` without new output.
fn longest_stall(samples: &[(Duration, u64)], kill: Duration) -> Duration {
    let (mut longest, mut since) = (Duration::ZERO, kill);
    let mut last = samples.iter().rfind(|(t, _)| *t <= kill).map_or(0, |s| s.1);
    for &(t, n) in samples.iter().filter(|(t, _)| *t > kill) {
        if n > last {
            since = t;
            last = n;
        } else {
            longest = longest.max(t - since);
        }
    }
    longest
}

/// From `kill` until output over a 1 s window runs at 95% of its mean rate over the 5 s
/// before the kill. Rates use the samples' own times (sampling drifts past 100 ms).
fn back_at_95(samples: &[(Duration, u64)], kill: Duration) -> Option<Duration> {
    // Lines per second between the last sample at or before `from` and the first at or after
    // `to`.
    let rate = |from: Duration, to: Duration| -> Option<f64> {
        let a = samples.iter().rfind(|(t, _)| *t <= from)?;
        let b = samples.iter().find(|(t, _)| *t >= to)?;
        Some((b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64().max(1e-3))
    };
    let before = rate(kill.saturating_sub(Duration::from_secs(5)), kill)?;
    samples
        .iter()
        .filter(|(t, _)| *t >= kill)
        .find(|(t, _)| rate(*t, *t + Duration::from_secs(1)).is_some_and(|r| r >= 0.95 * before))
        .map(|(t, _)| *t - kill)
}

/// Records lost and duplicated, from the provenance every output line carries.
fn delivery(dir: &Path) -> Result<(u64, u64), String> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut lines = 0u64;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| e.to_string())?;
            lines += 1;
            if let (Some(p), Some(o)) = (
                number_after(&line, "partition: "),
                number_after(&line, "offset: "),
            ) {
                seen.insert((p, o));
            }
        }
    }
    let distinct = seen.len() as u64;
    Ok((RECORDS.saturating_sub(distinct), lines - distinct))
}

fn number_after(line: &str, name: &str) -> Option<u64> {
    let rest = &line[line.find(name)? + name.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Counts the lines of every file in a directory incrementally: only new bytes are read.
struct LineCounter {
    dir: PathBuf,
    files: BTreeMap<PathBuf, (u64, u64)>,
}

impl LineCounter {
    fn new(dir: &Path) -> Self {
        LineCounter {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
        }
    }

    fn count(&mut self) -> u64 {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for path in entries.filter_map(|e| Some(e.ok()?.path())) {
                let (pos, lines) = self.files.entry(path.clone()).or_default();
                let Ok(mut file) = std::fs::File::open(&path) else {
                    continue;
                };
                if file.seek(SeekFrom::Start(*pos)).is_err() {
                    continue;
                }
                let mut buf = Vec::new();
                if file.read_to_end(&mut buf).is_ok() {
                    // Count complete lines only; a partial last line waits for its newline.
                    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    *lines += buf[..end].iter().filter(|b| **b == b'\n').count() as u64;
                    *pos += end as u64;
                }
            }
        }
        self.files.values().map(|(_, l)| l).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// 2000 lines per 101 ms, a 1.1 s gap after a kill at 2 s, then the same rate again.
    fn samples() -> Vec<(Duration, u64)> {
        let mut out = Vec::new();
        let (mut t, mut n) = (0, 0);
        while t < 6000 {
            if !(2000..3100).contains(&t) {
                n += 2000;
            }
            out.push((ms(t), n));
            t += 101;
        }
        out
    }

    #[test]
    fn the_stall_and_the_time_back_at_rate_are_read_off_the_samples() {
        let s = samples();
        let kill = ms(2020);
        let stall = longest_stall(&s, kill);
        assert!(stall >= ms(1000) && stall <= ms(1200), "{stall:?}");
        let back = back_at_95(&s, kill).unwrap();
        assert!(back >= ms(1000) && back <= ms(1200), "{back:?}");
    }

    #[test]
    fn provenance_is_parsed_from_a_debug_line() {
        let line = "KeyCount { key: 3, count: 9, origin: Origin { partition: 2, offset: 41 } }";
        assert_eq!(number_after(line, "partition: "), Some(2));
        assert_eq!(number_after(line, "offset: "), Some(41));
    }
}
