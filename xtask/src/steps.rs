//! Running child processes as numbered steps: a header before each, fail fast naming the step,
//! and a summary line with the wall time of every step.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why xtask stops: a message for stderr and the exit code.
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn report(self) -> ExitCode {
        eprintln!("xtask: {}", self.message);
        ExitCode::from(self.code)
    }
}

/// One child process, labelled for headers and the summary. Runs in the workspace root.
pub struct Step {
    label: &'static str,
    root: PathBuf,
    command: Command,
    /// Echo stdout line by line and also hand it back to the caller.
    capture_stdout: bool,
}

impl Step {
    pub fn new(label: &'static str, root: &Path, program: impl AsRef<OsStr>) -> Step {
        let mut command = Command::new(program);
        command.current_dir(root);
        Step {
            label,
            root: root.to_path_buf(),
            command,
            capture_stdout: false,
        }
    }

    /// A cargo invocation, using the cargo that runs xtask (same toolchain).
    pub fn cargo<I, S>(label: &'static str, root: &Path, args: I) -> Step
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Step::new(label, root, cargo).args(args)
    }

    pub fn args<I, S>(mut self, args: I) -> Step
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Step {
        self.command.env(key, value);
        self
    }

    /// Runs the child without `key` in its environment.
    pub fn env_remove(mut self, key: &str) -> Step {
        self.command.env_remove(key);
        self
    }

    pub fn capture_stdout(mut self) -> Step {
        self.capture_stdout = true;
        self
    }

    /// The command as a shell line: env assignments, program name, arguments.
    fn display(&self) -> String {
        let envs = self
            .command
            .get_envs()
            .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), quote(v?))));
        let program = Path::new(self.command.get_program());
        let program = match program.strip_prefix(&self.root) {
            Ok(relative) => relative.display().to_string(),
            Err(_) => program
                .file_name()
                .unwrap_or(program.as_os_str())
                .to_string_lossy()
                .into_owned(),
        };
        let args = self.command.get_args().map(quote);
        envs.chain(std::iter::once(program))
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs to completion; returns the exit status and, if captured, stdout.
    fn execute(&mut self) -> io::Result<(ExitStatus, String)> {
        if !self.capture_stdout {
            return Ok((self.command.status()?, String::new()));
        }
        let mut child = self.command.stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let captured = tee(stdout);
        let status = child.wait()?;
        Ok((status, captured?))
    }
}

/// Copies a child's stdout to ours line by line as it arrives, and returns it.
fn tee(pipe: impl io::Read) -> io::Result<String> {
    let mut reader = BufReader::new(pipe);
    let mut out = io::stdout().lock();
    let (mut line, mut all) = (Vec::new(), Vec::new());
    while reader.read_until(b'\n', &mut line)? > 0 {
        out.write_all(&line)?;
        out.flush()?;
        all.append(&mut line);
    }
    Ok(String::from_utf8_lossy(&all).into_owned())
}

/// Quotes a value for display when it holds anything beyond plain shell-safe characters.
fn quote(value: &OsStr) -> String {
    let s = value.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("\"{}\"", s.escape_debug())
    }
}

/// A fixed number of steps run in order; remembers how long each took.
pub struct Plan {
    total: usize,
    done: Vec<(&'static str, Duration)>,
}

impl Plan {
    pub fn new(total: usize) -> Plan {
        Plan {
            total,
            done: Vec::new(),
        }
    }

    /// Runs the next step with a header; on failure prints the summary so far and names the step.
    pub fn run(&mut self, mut step: Step) -> Result<String, Failure> {
        let position = format!("[{}/{}] {}", self.done.len() + 1, self.total, step.label);
        println!("==> {position}: {}", step.display());
        let start = Instant::now();
        let outcome = step.execute();
        self.done.push((step.label, start.elapsed()));
        let why = match outcome {
            Ok((status, stdout)) if status.success() => return Ok(stdout),
            Ok((status, _)) => status.to_string(),
            Err(e) => format!("could not run {:?}: {e}", step.command.get_program()),
        };
        println!("==> failed: {}", self.summary());
        Err(Failure::new(format!("FAILED at step {position}: {why}")))
    }

    /// Prints the final summary line.
    pub fn finish(self) {
        println!("==> ok: {}", self.summary());
    }

    fn summary(&self) -> String {
        let times = self
            .done
            .iter()
            .map(|(label, d)| format!("{label} {}", elapsed(*d)));
        let total: Duration = self.done.iter().map(|(_, d)| *d).sum();
        format!(
            "{} (total {})",
            times.collect::<Vec<_>>().join(", "),
            elapsed(total)
        )
    }
}

/// Wall time as `12.3s` or `4m 05.6s`.
pub fn elapsed(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m {:04.1}s", (secs / 60.0).floor(), secs % 60.0)
    }
}
