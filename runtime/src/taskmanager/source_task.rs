//! The loop of a source task: it polls its reader in batches, paced to the reader's rate,
//! answers control messages between two batches (so a checkpoint barrier never falls inside
//! one), emits watermarks and flushes every buffer timeout, and drains its result partitions
//! after each step.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::checkpoints::Checkpoints;
use super::task::Pacer;
use super::{TaskControl, TaskError, TaskMetrics};
use crate::chain::ChainEvent;
use crate::connectors::source::{SourceDriver, SourceStatus};
use crate::error::JobError;
use crate::network::ResultPartitions;
use crate::state::OperatorState;

/// Records per source poll: small when paced, so pacing stays smooth.
fn batch_size(rate: Option<f64>) -> usize {
    match rate {
        Some(r) if r.is_finite() => ((r / 50.0) as usize).clamp(1, 1024),
        _ => 1024,
    }
}

/// The loop of a source task.
pub(super) struct SourceTask<'a> {
    pub(super) outputs: ResultPartitions,
    pub(super) metrics: &'a TaskMetrics,
    pub(super) buffer_timeout: Duration,
    pub(super) checkpoints: Checkpoints,
    /// The source operator's node: its reader's offsets are checkpointed under it.
    pub(super) source_node: u32,
    /// How far behind its stream a restored source starts ([`crate::state::TaskRestore::input_age`]).
    pub(super) behind: Duration,
}

impl SourceTask<'_> {
    /// A reader with nothing ready: sleep until it signals, a control message comes (a
    /// checkpoint trigger is answered at once, not after the wait), or a buffer timeout
    /// passes, so buffered output is still flushed.
    async fn wait_for_input(
        &mut self,
        wakeup: Option<Arc<tokio::sync::Notify>>,
    ) -> Option<TaskControl> {
        let ready = async {
            match wakeup {
                Some(ready) => ready.notified().await,
                // A reader that cannot signal: poll again soon (never spin without time
                // passing).
                None => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        tokio::select! {
            biased;
            // A closed control channel disables this branch rather than ending the wait.
            Some(control) = self.checkpoints.control.recv() => Some(control),
            _ = ready => None,
            _ = tokio::time::sleep(self.buffer_timeout) => None,
        }
    }

    pub(super) async fn run(mut self, mut driver: Box<dyn SourceDriver>) -> Result<(), TaskError> {
        let mut pacer = Pacer::with_backlog(driver.rate(), self.behind);
        let (mut last_flush, mut watermark) = (Instant::now(), 0u64);
        loop {
            // Control first: a barrier goes out between two batches, never inside one.
            while let Ok(control) = self.checkpoints.control.try_recv() {
                self.handle(&mut *driver, control).await?;
            }
            match driver.poll(batch_size(driver.rate()))? {
                SourceStatus::Finished => break,
                SourceStatus::Pending => {
                    if let Some(control) = self.wait_for_input(driver.wakeup()).await {
                        self.handle(&mut *driver, control).await?;
                    }
                }
                SourceStatus::Emitted(n) => {
                    self.metrics
                        .records_in
                        .fetch_add(n as u64, Ordering::Relaxed);
                    pacer.pass(n as u64).await;
                }
            }
            if last_flush.elapsed() >= self.buffer_timeout {
                last_flush = Instant::now();
                emit_watermark(&mut *driver, &mut watermark);
                driver.event(ChainEvent::Flush);
            }
            self.outputs.drain().await?;
            self.checkpoints.settle().await?;
            // Sources never wait on input: yield so other tasks on this thread (and, under the
            // simulator, every other node) get to run.
            tokio::task::yield_now().await;
        }
        emit_watermark(&mut *driver, &mut watermark);
        driver.event(ChainEvent::Finish);
        self.outputs.drain().await?;
        self.outputs.finish();
        // What the sinks wrote at the end must be stored before the task reports FINISHED.
        self.checkpoints.settle().await?;
        Ok(())
    }

    /// A control message, and the output it caused (a barrier) sent on.
    async fn handle(
        &mut self,
        driver: &mut dyn SourceDriver,
        control: TaskControl,
    ) -> Result<(), TaskError> {
        self.control(driver, control)?;
        self.outputs.drain().await?;
        self.checkpoints.settle().await?;
        Ok(())
    }

    fn control(
        &mut self,
        driver: &mut dyn SourceDriver,
        control: TaskControl,
    ) -> Result<(), TaskError> {
        match control {
            TaskControl::TriggerCheckpoint(id) => {
                // The reader's position first: every record it emitted so far is before the
                // barrier, so a restore reads on from exactly here.
                let offsets = driver.snapshot().map_err(JobError::State)?;
                let state = &self.checkpoints.state;
                state.put(
                    self.source_node,
                    OperatorState {
                        keyed: Default::default(),
                        operator: offsets,
                    },
                );
                driver.event(ChainEvent::Barrier(id));
                self.checkpoints.acknowledge(id);
            }
            TaskControl::CheckpointComplete(id) => driver.event(ChainEvent::CheckpointComplete(id)),
            TaskControl::UpdateInput { .. } => {} // sources have no inputs
        }
        Ok(())
    }
}

fn emit_watermark(driver: &mut dyn SourceDriver, current: &mut u64) {
    if let Some(wm) = driver.watermark().filter(|wm| *wm > *current) {
        *current = wm;
        driver.event(ChainEvent::Watermark(wm));
    }
}
