//! The cluster's processes on a real run: how each node's `rill` process is started, and the
//! signals faults send it (SIGKILL for a crash, SIGSTOP and SIGCONT for a pause; an OOM kill
//! is the kernel's, in the process's memory cgroup: see `cgroup`).

use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::RealError;
use crate::node::NodeName;

/// How long an external system's process may take to listen.
const LISTEN_LIMIT: Duration = Duration::from_secs(10);

/// Waits until `node`'s process accepts connections at `addr` (an external system, started
/// before anything that needs it).
pub async fn wait_until_listening(node: &NodeName, addr: SocketAddr) -> Result<(), RealError> {
    let begun = Instant::now();
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(source) if begun.elapsed() >= LISTEN_LIMIT => {
                return Err(RealError::Start {
                    what: format!("{node} (not listening at {addr} after {LISTEN_LIMIT:?})"),
                    source,
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One node's process, and what starts it again.
pub struct NodeProcess {
    /// The node it is.
    pub name: NodeName,
    program: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    env: Vec<(String, String)>,
    /// The `cgroup.procs` of the memory cgroup it runs in, if it has one.
    cgroup: Option<PathBuf>,
    child: Option<Child>,
    paused: bool,
}

impl NodeProcess {
    /// A process of `program` with `args`, its stdout and stderr appended to `log`; not started.
    pub fn new(name: NodeName, program: &Path, args: Vec<OsString>, log: PathBuf) -> Self {
        NodeProcess {
            name,
            program: program.to_path_buf(),
            args,
            log,
            env: Vec::new(),
            cgroup: None,
            child: None,
            paused: false,
        }
    }

    /// The same, with `key=value` in its environment.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The same, run in the memory cgroup whose `cgroup.procs` is `procs` (every start joins
    /// it before the program runs).
    pub fn in_cgroup(mut self, procs: PathBuf) -> Self {
        self.cgroup = Some(procs);
        self
    }

    /// Starts it (again): a fresh process with the same arguments, as a supervisor restarts a
    /// pod.
    pub fn start(&mut self) -> std::io::Result<()> {
        self.kill();
        let log = File::options().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl(2) is async-signal-safe, as a pre_exec closure must be. A harness that
        // dies (a CI timeout's SIGKILL) takes its cluster with it instead of leaving processes
        // that keep their namespaces alive; `ip netns exec` is not setuid, so it survives the
        // exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let joining = match &self.cgroup {
            Some(procs) => Some(super::cgroup::join_on_spawn(&mut command, procs)?),
            None => None,
        };
        let child = command.spawn()?;
        drop(joining);
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Whether a process of it is running (or paused), as far as this harness knows.
    pub fn is_up(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The running (or paused) process's id.
    pub fn pid(&mut self) -> Option<u32> {
        match self.is_up() {
            true => self.child.as_ref().map(Child::id),
            false => None,
        }
    }

    /// How the process ended, if it ended without this harness killing it (reaped here).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.paused = false;
        Some(status)
    }

    /// SIGKILL, and reaps it: the crash a power cut or the kernel's OOM killer causes.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP: the process stops running (a long GC pause, a frozen VM); false if none runs.
    pub fn pause(&mut self) -> bool {
        let sent = self.signal(libc::SIGSTOP);
        self.paused |= sent;
        sent
    }

    /// SIGCONT: a paused process runs again.
    pub fn resume(&mut self) -> bool {
        let sent = self.paused && self.signal(libc::SIGCONT);
        self.paused = false;
        sent
    }

    fn signal(&mut self, signal: libc::c_int) -> bool {
        if !self.is_up() {
            return false;
        }
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return false;
        };
        // SAFETY: kill(2) on a child this process spawned and has not reaped (is_up checked
        // it is still running), so the pid cannot have been reused.
        unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
