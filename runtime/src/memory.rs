//! Memory accounting of a TaskManager: network buffers in use, keyed-state bytes, and a fixed
//! overhead per deployed task. Reported in heartbeats; the harness's OOM model compares the
//! total with `taskmanager.memory.process.size`.
//!
//! Owns [`MemoryAccount`] (the shared counters), [`BufferGuard`] (a buffer's bytes, held until
//! it drops), [`MemoryReport`] (the snapshot a heartbeat carries) and [`MemoryWatermark`]. It
//! depends on nothing else in the crate, so the modules that charge memory (`network` for
//! buffers, `state` for keyed state) and `rpc` (which carries reports) sit above it rather than
//! above `taskmanager`; `taskmanager` re-exports it as `rill::taskmanager::MemoryAccount` etc.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
struct Counters {
    buffers: AtomicU64,
    state: AtomicU64,
    tasks: AtomicU64,
    peak: AtomicU64,
}

/// A snapshot of a TaskManager's accounted memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Bytes in network buffers (output buffers and input queues).
    pub buffer_bytes: u64,
    /// Bytes of keyed state.
    pub state_bytes: u64,
    /// The fixed overhead of the deployed tasks (`taskmanager.memory.task-overhead` each).
    pub task_overhead_bytes: u64,
    /// The highest total so far.
    pub peak_bytes: u64,
}

impl MemoryReport {
    /// The sum; saturating, since a report may come from the network.
    pub fn total(&self) -> u64 {
        self.buffer_bytes
            .saturating_add(self.state_bytes)
            .saturating_add(self.task_overhead_bytes)
    }
}

/// Shared counters; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct MemoryAccount {
    counters: Arc<Counters>,
}

impl MemoryAccount {
    /// Accounts a buffer of `bytes` until the returned guard is dropped.
    pub fn buffer(&self, bytes: u64) -> BufferGuard {
        self.counters.buffers.fetch_add(bytes, Ordering::Relaxed);
        self.update_peak();
        BufferGuard {
            account: self.clone(),
            bytes,
        }
    }

    /// Accounts `bytes` more of keyed state.
    pub fn add_state(&self, bytes: u64) {
        self.counters.state.fetch_add(bytes, Ordering::Relaxed);
        self.update_peak();
    }

    /// Releases `bytes` of keyed state.
    pub fn sub_state(&self, bytes: u64) {
        self.counters.state.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Accounts a deployed task's overhead.
    pub fn add_task(&self, bytes: u64) {
        self.counters.tasks.fetch_add(bytes, Ordering::Relaxed);
        self.update_peak();
    }

    /// Releases a task's overhead when it ends.
    pub fn sub_task(&self, bytes: u64) {
        self.counters.tasks.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn update_peak(&self) {
        let c = &self.counters;
        let total = c.buffers.load(Ordering::Relaxed)
            + c.state.load(Ordering::Relaxed)
            + c.tasks.load(Ordering::Relaxed);
        c.peak.fetch_max(total, Ordering::Relaxed);
    }

    /// The counters as of now.
    pub fn report(&self) -> MemoryReport {
        let c = &self.counters;
        MemoryReport {
            buffer_bytes: c.buffers.load(Ordering::Relaxed),
            state_bytes: c.state.load(Ordering::Relaxed),
            task_overhead_bytes: c.tasks.load(Ordering::Relaxed),
            peak_bytes: c.peak.load(Ordering::Relaxed),
        }
    }
}

/// Holds a buffer's bytes in the account while the buffer lives.
#[derive(Debug)]
pub struct BufferGuard {
    account: MemoryAccount,
    bytes: u64,
}

impl Drop for BufferGuard {
    fn drop(&mut self) {
        self.account
            .counters
            .buffers
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Watches accounted memory against the process size at each heartbeat and names each new
/// level it climbs past (50, 75, 90 % of the limit), so the trace shows a TaskManager heading
/// for an OOM kill. Falling back below half re-arms it.
#[derive(Debug, Default)]
pub struct MemoryWatermark {
    level: u8,
}

impl MemoryWatermark {
    const LEVELS: [u8; 3] = [50, 75, 90];

    /// The highest level newly passed, if any.
    pub fn observe(&mut self, used: u64, limit: u64) -> Option<u8> {
        let percent = (used as u128 * 100 / limit.max(1) as u128).min(u8::MAX as u128) as u8;
        if percent < Self::LEVELS[0] {
            self.level = 0;
            return None;
        }
        let reached = Self::LEVELS
            .iter()
            .copied()
            .filter(|l| percent >= *l)
            .max()?;
        (reached > self.level).then(|| {
            self.level = reached;
            reached
        })
    }
}

#[cfg(test)]
mod watermark_tests {
    use super::*;

    #[test]
    fn names_each_level_once_until_usage_falls_below_half() {
        let mut w = MemoryWatermark::default();
        assert_eq!(w.observe(40, 100), None);
        assert_eq!(w.observe(60, 100), Some(50));
        assert_eq!(w.observe(70, 100), None);
        assert_eq!(w.observe(95, 100), Some(90));
        assert_eq!(w.observe(80, 100), None);
        assert_eq!(w.observe(10, 100), None);
        assert_eq!(w.observe(76, 100), Some(75));
    }
}
