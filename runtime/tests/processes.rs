//! The cluster as separate OS processes: `rill jobmanager`, two `rill taskmanager`s and
//! `rill run`, talking over loopback TCP; the job's file-sink output is checked.
#![cfg(not(madsim))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RILL: &str = env!("CARGO_BIN_EXE_rill");

/// Kills the process when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Proc, BufReader<std::process::ChildStdout>) {
    spawn_with_env(args, &[])
}

/// [`spawn`] with these environment variables set (the cluster secret comes from
/// `RILL_CLUSTER_SECRET`: the command line refuses it).
fn spawn_with_env(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Proc, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(RILL)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rill");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    (Proc(child), out)
}

/// Reads lines until one contains `marker`; returns it.
fn wait_for(out: &mut BufReader<std::process::ChildStdout>, marker: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "process exited before printing '{marker}'"
        );
        if line.contains(marker) {
            return line;
        }
    }
}

/// `-c security.files.allowed-dirs=<temp dir>`: the JobManager and TaskManagers let jobs name
/// paths there (the file sink's directory) and nowhere else.
fn temp_files_allowed() -> String {
    format!(
        "security.files.allowed-dirs={}",
        std::env::temp_dir().display()
    )
}

#[test]
fn jobmanager_taskmanagers_and_client_as_processes() {
    let files = temp_files_allowed();
    let (_jm, mut jm_out) = spawn(&["jobmanager", "--bind", "127.0.0.1:0", "-c", &files]);
    let line = wait_for(&mut jm_out, "listening on");
    let addr = line.trim().rsplit(' ').next().expect("address").to_string();
    let _tms: Vec<_> = (1..=2)
        .map(|i| {
            let name = format!("tm-{i}");
            let (p, mut out) = spawn(&[
                "taskmanager",
                "--jobmanager",
                &addr,
                "--slots",
                "2",
                "--name",
                &name,
                "-c",
                &files,
            ]);
            wait_for(&mut out, "serving data");
            p
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("rill-processes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink = format!("sink=file:{}", dir.display());
    let start = Instant::now();
    let run = Command::new(RILL)
        .args([
            "run",
            "--job",
            "keyed-count",
            "--jobmanager",
            &addr,
            "-p",
            "records=10000",
            "-p",
            "keys=10",
            "-p",
            &sink,
        ])
        .output()
        .expect("rill run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "rill run failed: {stdout}");
    assert!(stdout.contains("Finished"), "{stdout}");
    assert!(stdout.contains("records out: 10000"), "{stdout}");
    assert!(start.elapsed() < Duration::from_secs(120));
    // Two sink subtasks published one line per record (the files in the directory; staged
    // ones wait under .staging/); the last count of each key is 1000.
    let mut lines = 0;
    let mut finals = std::collections::BTreeMap::new();
    let published = std::fs::read_dir(&dir)
        .expect("output dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"));
    for path in published {
        let text = std::fs::read_to_string(path).expect("read output");
        for l in text.lines() {
            lines += 1;
            let key: u64 = field(l, "key: ");
            let count: u64 = field(l, "count: ");
            let best = finals.entry(key).or_insert(0);
            *best = count.max(*best);
        }
    }
    assert_eq!(lines, 10_000);
    assert_eq!(finals.len(), 10);
    assert!(finals.values().all(|&c| c == 1000), "{finals:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn field(line: &str, name: &str) -> u64 {
    let rest = &line[line
        .find(name)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .expect("number")
}

#[test]
fn wrong_secret_is_refused_and_the_jobmanager_keeps_serving() {
    let (_jm, mut jm_out) = spawn_with_env(
        &["jobmanager", "--bind", "127.0.0.1:0"],
        &[("RILL_CLUSTER_SECRET", "right")],
    );
    let line = wait_for(&mut jm_out, "listening on");
    let addr = line.trim().rsplit(' ').next().expect("address").to_string();
    let bad = Command::new(RILL)
        .args(["run", "--job", "keyed-count", "--jobmanager", &addr])
        .env("RILL_CLUSTER_SECRET", "wrong")
        .output()
        .expect("rill run");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("secret") && !err.contains("right"), "{err}");
    // Garbage on the port: the connection is closed, the process stays up.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        let _ = s.write_all(&[0xff; 64]);
    }
    let (_tm, mut tm_out) = spawn_with_env(
        &["taskmanager", "--jobmanager", &addr, "--slots", "2"],
        &[("RILL_CLUSTER_SECRET", "right")],
    );
    wait_for(&mut tm_out, "serving data");
    let good = Command::new(RILL)
        .args([
            "run",
            "--job",
            "keyed-count",
            "--jobmanager",
            &addr,
            "-p",
            "records=1000",
        ])
        .env("RILL_CLUSTER_SECRET", "right")
        .output()
        .expect("rill run");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
}

/// Lines written so far by every sink file under `dir`.
fn lines_in(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .sum()
}

/// `taskmanager` failover with real processes: a TaskManager hosting tasks is SIGKILLed mid-run;
/// only its subtasks restart, the sink output keeps growing throughout, and the job finishes.
#[test]
fn sigkill_of_a_taskmanager_under_taskmanager_failover_never_stops_the_output() {
    let files = temp_files_allowed();
    let heartbeat = [
        "-c",
        "heartbeat.interval=1s",
        "-c",
        "heartbeat.timeout=5s",
        "-c",
        &files,
    ];
    let mut jm_args = vec!["jobmanager", "--bind", "127.0.0.1:0"];
    jm_args.extend(heartbeat);
    let (_jm, mut jm_out) = spawn(&jm_args);
    let line = wait_for(&mut jm_out, "listening on");
    let addr = line.trim().rsplit(' ').next().expect("address").to_string();
    let mut tms: Vec<Proc> = (1..=4)
        .map(|i| {
            let name = format!("tm-{i}");
            let mut args = vec!["taskmanager", "--jobmanager", &addr, "--slots", "2"];
            args.extend(["--name", &name]);
            args.extend(heartbeat);
            let (p, mut out) = spawn(&args);
            wait_for(&mut out, "serving data");
            p
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("rill-sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink = format!("sink=file:{}", dir.display());
    let mut run = Command::new(RILL)
        .args(["run", "--job", "keyed-count", "--jobmanager", &addr])
        .args([
            "-p",
            "parallelism=4",
            "-p",
            "rate=20000",
            "-p",
            "records=240000",
        ])
        .args(["-p", &sink])
        .args(["-c", "jobmanager.execution.failover-strategy=taskmanager"])
        .args(["-c", "taskmanager.load-balance.mode=tasks"])
        .args(["-c", "execution.checkpointing.interval=1s"])
        .args(["-c", "restart-strategy.type=fixed-delay"])
        .args(["-c", "restart-strategy.fixed-delay.delay=100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rill run");
    // Sample the output every 100 ms; kill tm-2 (balanced placement gives every TaskManager
    // one source and one count subtask) once output has flowed for 4 s.
    let start = Instant::now();
    let (mut killed_at, mut last_growth, mut longest_stall) =
        (None, Instant::now(), Duration::ZERO);
    let mut last = 0;
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "job did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
        let now = lines_in(&dir);
        if now > last {
            if killed_at.is_some() {
                longest_stall = longest_stall.max(last_growth.elapsed());
            }
            (last, last_growth) = (now, Instant::now());
        }
        if killed_at.is_none() && start.elapsed() > Duration::from_secs(4) && last > 0 {
            tms[1].0.kill().expect("SIGKILL tm-2");
            killed_at = Some(Instant::now());
            last_growth = Instant::now();
        }
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(run.stdout.as_mut().expect("stdout"), &mut stdout).unwrap();
    assert!(status.success() && stdout.contains("Finished"), "{stdout}");
    assert!(killed_at.is_some(), "the job ended before the kill");
    // Detection is the lost connection, restart after 100 ms: output from the other
    // TaskManagers never pauses for anything like the heartbeat timeout.
    assert!(
        longest_stall < Duration::from_secs(2),
        "output stalled for {longest_stall:?} after the kill"
    );
    // Everything but what was in flight around the dead TaskManager arrived.
    let lines = lines_in(&dir);
    eprintln!("longest stall after the kill {longest_stall:?}; {lines} of 240000 records output");
    assert!(lines >= 200_000, "only {lines} of 240000 records output");
    let _ = std::fs::remove_dir_all(&dir);
}
