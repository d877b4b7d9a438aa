//! Memory cgroups for a real run's TaskManagers (the cgroup v1 `memory` controller), so that a
//! planned OOM kill is the kernel's own. The fault squeezes the TaskManager's cgroup limit to
//! what the cgroup already uses and makes the TaskManager the OOM killer's first choice in it
//! (`oom_score_adj` 1000, as a container's main process); then a small allocator started in
//! the same cgroup presses on the limit, and the kernel's OOM killer kills the TaskManager
//! (`memory.oom_control` counts the kill, which is how the harness knows it was the kernel).
//! The presser is needed because a TaskManager in its steady state allocates no new pages (its
//! allocator reuses its heap): squeezed alone, it would never pass the limit. It is the memory
//! pressure a sidecar, or a burst of the process's own, puts on a pod near its limit.
//!
//! The limit is not set from the scenario's `memory_mb` at start: that size is the memory
//! model's (the state and buffers the TaskManager accounts, 2 MiB in `oom-skew`), not the
//! resident size of a `rill` binary. The model's limit is enforced by the TaskManager itself
//! on its accounted memory (`rill::taskmanager::memory_limit`), which fails it the way the
//! kernel would.
//!
//! Needs root and the v1 memory controller mounted at [`MEMORY_ROOT`]; where either is missing
//! [`MemoryCgroups::create`] says why, and a planned OOM kill is a SIGKILL, saying so.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::node::NodeName;

/// Where the v1 memory controller is mounted.
pub const MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";
/// What the presser allocates, then ends: 2 MiB, in 64 KiB steps. Less than any TaskManager
/// frees when it is killed, so the presser always gets it and ends; and the driver lifts the
/// limit as soon as it sees the kill.
const PRESSER: &str = r#"echo 0 > "$1" || exit 1
x=$(head -c 65536 /dev/zero | tr '\0' a)
y=; i=0; while [ $i -lt 32 ]; do y=$y$x; i=$((i+1)); done"#;

/// One run's memory cgroups: a parent named after the run and one child per TaskManager.
pub struct MemoryCgroups {
    parent: PathBuf,
    nodes: BTreeMap<NodeName, PathBuf>,
}

impl MemoryCgroups {
    /// Creates a cgroup for each of `nodes` under a parent tagged with this process's id and
    /// run; an error says why it cannot (no root, no v1 memory controller).
    pub fn create(nodes: &[NodeName]) -> Result<MemoryCgroups, String> {
        Self::create_under(Path::new(MEMORY_ROOT), nodes)
    }

    fn create_under(root: &Path, nodes: &[NodeName]) -> Result<MemoryCgroups, String> {
        if !root.join("memory.limit_in_bytes").exists() {
            return Err(format!(
                "no cgroup v1 memory controller at {}",
                root.display()
            ));
        }
        // One parent per run, even for two runs in one process (tests).
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let parent = root.join(format!("rill-sim-{}-{run}", std::process::id()));
        // What harnesses that were killed left behind goes first (a cgroup still holding a
        // process cannot be removed, and stays).
        remove_orphans(root);
        let made = |dir: &Path| {
            fs::create_dir_all(dir).map_err(|e| format!("cgroup {}: {e}", dir.display()))
        };
        made(&parent)?;
        let mut cgroups = MemoryCgroups {
            parent,
            nodes: BTreeMap::new(),
        };
        for node in nodes {
            let dir = cgroups.parent.join(node.to_string());
            made(&dir)?;
            cgroups.nodes.insert(node.clone(), dir);
        }
        Ok(cgroups)
    }

    /// The `cgroup.procs` file a process of `node` joins by writing `0` to it.
    pub fn procs(&self, node: &NodeName) -> Option<PathBuf> {
        Some(self.nodes.get(node)?.join("cgroup.procs"))
    }

    /// Brings the kernel's OOM killer onto `node`'s process `pid`: the cgroup's limit is
    /// squeezed to its usage, `pid` made the first choice of the OOM killer, and a presser
    /// started in the cgroup. Returns the limit set and the presser (which ends on its own).
    pub fn press(&self, node: &NodeName, pid: u32) -> Result<(u64, Child), String> {
        let dir = self.dir(node)?;
        // Raising a process's score needs no privilege beyond owning it (lowering one would).
        write(Path::new(&format!("/proc/{pid}/oom_score_adj")), "1000")?;
        let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
        write(&dir.join("memory.limit_in_bytes"), &usage.to_string())?;
        let procs = dir.join("cgroup.procs");
        let presser = Command::new("sh")
            .args(["-c", PRESSER, "presser"])
            .arg(&procs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("the presser (sh): {e}"))?;
        Ok((usage, presser))
    }

    /// Lifts `node`'s limit again (before its process restarts); a node without a cgroup has
    /// none to lift.
    pub fn relax(&self, node: &NodeName) -> Result<(), String> {
        match self.nodes.get(node) {
            Some(dir) => write(&dir.join("memory.limit_in_bytes"), "-1"),
            None => Ok(()),
        }
    }

    /// How many processes the kernel's OOM killer has killed in `node`'s cgroup.
    pub fn oom_kills(&self, node: &NodeName) -> u64 {
        let Ok(dir) = self.dir(node) else {
            return 0;
        };
        fs::read_to_string(dir.join("memory.oom_control"))
            .ok()
            .and_then(|text| oom_kill_count(&text))
            .unwrap_or(0)
    }

    fn dir(&self, node: &NodeName) -> Result<&Path, String> {
        self.nodes
            .get(node)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("{node} has no memory cgroup"))
    }
}

impl Drop for MemoryCgroups {
    fn drop(&mut self) {
        // The processes are gone by now (the cluster kills them first); a cgroup with a
        // process in it cannot be removed, and then stays for the next run to clear.
        remove_tree(&self.parent);
    }
}

/// Makes the process `command` spawns join the cgroup whose `cgroup.procs` is `procs` before it
/// runs its program, so that all it allocates is charged there from its first page. The file
/// returned must be kept open until the spawn has returned.
pub fn join_on_spawn(command: &mut Command, procs: &Path) -> io::Result<File> {
    let file = File::options().write(true).open(procs)?;
    let fd = file.as_raw_fd();
    // SAFETY: write(2) is async-signal-safe, as a pre_exec closure must be, and `fd` stays
    // open in the child until its exec (the parent holds the file until the spawn returns).
    // Writing `0` moves the writing process, the child, into the cgroup.
    unsafe {
        command.pre_exec(move || match libc::write(fd, b"0".as_ptr().cast(), 1) {
            1 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        });
    }
    Ok(file)
}

/// Removes the run cgroups (`rill-sim-PID-RUN`) of harness processes that are gone.
fn remove_orphans(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("rill-sim-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 sends nothing; it only asks whether `pid` exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            remove_tree(&entry.path());
        }
    }
}

/// The `oom_kill N` line of a `memory.oom_control` file.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
}

/// Removes a cgroup and its children (cgroups are removed with rmdir, children first).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_kill_count_is_read_from_oom_control() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(oom_kill_count(text), Some(3));
        assert_eq!(oom_kill_count("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    #[test]
    fn without_a_memory_controller_creation_says_why() {
        let dir = std::env::temp_dir().join(format!("rill-no-cgroup-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let err = MemoryCgroups::create_under(&dir, &[NodeName::TaskManager(1)])
            .err()
            .expect("no controller there");
        assert!(err.contains("no cgroup v1 memory controller"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// The kernel, not a signal of ours, kills a process whose cgroup was pressed, though it
    /// allocates nothing itself. Needs root and the v1 memory controller, which this machine
    /// and CI have; elsewhere (not root) there is nothing to check and the test says so.
    #[test]
    fn a_pressed_cgroups_process_is_oom_killed_by_the_kernel() {
        use std::os::unix::process::ExitStatusExt;
        use std::time::{Duration, Instant};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: memory cgroups cannot be made here");
            return;
        }
        let node = NodeName::TaskManager(1);
        let cgroups =
            MemoryCgroups::create(std::slice::from_ref(&node)).expect("root has memory cgroups");
        // Takes 4 MB, then allocates nothing, as a TaskManager in its steady state.
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "x=$(head -c 65536 /dev/zero | tr '\\0' a); y=; i=0; while [ $i -lt 64 ]; do y=$y$x; i=$((i+1)); done; exec sleep 30",
        ]);
        let guard = join_on_spawn(&mut command, &cgroups.procs(&node).unwrap()).unwrap();
        let mut victim = command.spawn().expect("sh");
        drop(guard);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(cgroups.oom_kills(&node), 0);
        let (_, mut presser) = cgroups.press(&node, victim.id()).expect("pressed");
        let begun = Instant::now();
        let status = loop {
            if let Some(status) = victim.try_wait().unwrap() {
                break status;
            }
            if begun.elapsed() > Duration::from_secs(10) {
                let _ = victim.kill();
                let _ = presser.kill();
                panic!("not OOM-killed within 10 s of the press");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        // The victim at least; the presser too, when it asks again before the victim's memory
        // is given back (the kernel frees a victim's pages asynchronously).
        assert!(cgroups.oom_kills(&node) >= 1);
        cgroups.relax(&node).unwrap();
        // It ends either way: with its memory once the limit is lifted, or killed.
        presser.wait().unwrap();
    }
}
