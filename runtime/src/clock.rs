//! Processing time: the wall clock as this TaskManager reads it, for operators that act on
//! time rather than on the data's own timestamps (processing-time windows).
//!
//! Wall clocks are not to be trusted across machines: they are skewed, and NTP steps them
//! forwards and backwards. `ProcessingClock` reads `SystemTime` plus an offset that whoever
//! owns the TaskManager may set (an operator correcting a known skew; a test injecting one),
//! and operators that use it keep their own notion of time monotonic (see
//! `api::window`). Timeouts and heartbeats never use it: they run on `tokio::time`, which is
//! monotonic.
//!
//! Owns [`ProcessingClock`]. It depends on nothing else in the crate, so `api::window` reads it
//! without depending on `taskmanager`, which owns one per TaskManager and re-exports it as
//! `rill::taskmanager::ProcessingClock`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Shared by clones: the TaskManager and every task on it read the same clock.
#[derive(Clone, Debug, Default)]
pub struct ProcessingClock {
    offset_ms: Arc<AtomicI64>,
}

impl ProcessingClock {
    /// Milliseconds since the Unix epoch, offset; 0 for a clock set before 1970.
    ///
    /// The one wall-clock read in the runtime (ARCHITECTURE.md's rule 1 is `tokio::time`, which has no
    /// epoch): processing time is the wall clock by definition. Under the simulator it is still
    /// deterministic, as madsim answers `clock_gettime` with its seeded virtual time.
    pub fn now_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64);
        wall.saturating_add(self.offset()).max(0) as u64
    }

    /// How far this clock runs ahead of the system's (negative: behind).
    pub fn offset(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sets how far this clock runs ahead of the system's, in milliseconds (negative: behind).
    pub fn set_offset(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

/// Sets `clock`'s offset from the file at `path`, read every 100 ms: one signed integer,
/// milliseconds. A missing file leaves the offset; an unreadable value is ignored, so a
/// half-written file never skews the clock.
pub async fn follow_control_file(clock: ProcessingClock, path: std::path::PathBuf) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    // After a pause (SIGSTOP), one read, not a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(offset) = text.trim().parse::<i64>() {
            clock.set_offset(offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset_and_time_moves_with_it() {
        let clock = ProcessingClock::default();
        let seen_by_task = clock.clone();
        let before = seen_by_task.now_ms();
        clock.set_offset(3_600_000);
        let after = seen_by_task.now_ms();
        assert!(after >= before + 3_600_000, "{before} -> {after}");
        clock.set_offset(i64::MIN);
        assert_eq!(seen_by_task.now_ms(), 0);
    }
}
