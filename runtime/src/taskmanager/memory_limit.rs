//! A TaskManager process's memory limit, enforced as the kernel's OOM killer enforces a
//! container's: when the accounted memory passes `taskmanager.memory.process.size`, the process
//! dies at once (exit status 137, as after SIGKILL) and its supervisor restarts it. The
//! simulator models this itself from the same accounts, so only the `rill taskmanager` process
//! runs this watch; both then fail skewed jobs the same way.
//!
//! The watch also writes what it samples to a file when asked (`--memory-samples PATH`): one
//! line per sample, `UNIX_NANOS TOTAL_BYTES TASK_OVERHEAD_BYTES`, which a harness running real
//! processes reads as the simulator reads its accounts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::memory::MemoryAccount;

/// How often the account is sampled: as often as the simulator's memory model samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// The exit status of a process the limit killed: what a shell reports after SIGKILL.
pub const OOM_EXIT_STATUS: i32 = 137;

/// Samples `account` every [`SAMPLE_INTERVAL`]; returns the total that passed `limit`, if one
/// did (the caller exits). Without a limit it only samples, for as long as it runs.
pub async fn watch(account: MemoryAccount, limit: Option<u64>, samples: Option<&Path>) -> u64 {
    let mut file = samples.and_then(open);
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    // After a pause (SIGSTOP), one sample, not a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let report = account.report();
        let total = report.total();
        if let Some(f) = &mut file {
            let nanos = crate::events::unix_nanos();
            let line = format!("{nanos} {total} {}\n", report.task_overhead_bytes);
            if f.write_all(line.as_bytes()).is_err() {
                file = None;
            }
        }
        if limit.is_some_and(|limit| total > limit) {
            return total;
        }
    }
}

fn open(path: &Path) -> Option<File> {
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("memory samples file {}: {e}", path.display());
            None
        }
    }
}

/// One line of a samples file: (Unix nanoseconds, total bytes, task overhead bytes).
pub fn parse_sample(line: &str) -> Option<(u64, u64, u64)> {
    let mut fields = line.split_whitespace().map(str::parse::<u64>);
    let sample = (
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    );
    fields.next().is_none().then_some(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_back_and_junk_is_refused() {
        assert_eq!(parse_sample("12 3400 200"), Some((12, 3400, 200)));
        assert_eq!(parse_sample("12 3400"), None);
        assert_eq!(parse_sample("12 3400 200 9"), None);
        assert_eq!(parse_sample("12 x 200"), None);
    }

    #[tokio::test]
    async fn the_watch_returns_once_the_account_passes_the_limit() {
        let account = MemoryAccount::default();
        account.add_state(5_000);
        let dir = std::env::temp_dir().join(format!("rill-memwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("samples");
        let over = watch(account, Some(4_000), Some(&path)).await;
        assert_eq!(over, 5_000);
        let text = std::fs::read_to_string(&path).unwrap();
        let (_, total, _) = parse_sample(text.lines().next().unwrap()).unwrap();
        assert_eq!(total, 5_000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
