//! The alert desk: where `card-windows` files its suspicious windows as cases for review,
//! written on rill's two-phase sink interface ([`rill::connectors::sink`]).
//!
//! A real desk would be a case-management service behind an API; this one is a table in the
//! process (all TaskManagers of `rill local` share it), which is enough to show the shape:
//! the cases of a checkpoint travel in its committable (so the checkpoint keeps them), and a
//! commit files them under their (sink subtask, checkpoint): filing the same batch twice, as a
//! restored job does when it commits its checkpoint again, files it once.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use rill::api::JobError;
use rill::connectors::sink::{Sink, SinkWriter};
use rill::connectors::ConnectorContext;
use rill::ids::{CheckpointId, JobId};
use serde::{Deserialize, Serialize};

use crate::windows::CardWindow;

/// The sink: files suspicious windows at the process's desk.
#[derive(Debug, Clone, Copy)]
pub struct AlertDesk;

/// The cases one sink subtask pre-committed at one checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseBatch {
    pub job: JobId,
    pub subtask: u32,
    pub checkpoint: CheckpointId,
    pub cases: Vec<CardWindow>,
}

type Filed = BTreeMap<(JobId, u32, CheckpointId), Vec<CardWindow>>;

fn desk() -> &'static Mutex<Filed> {
    static DESK: OnceLock<Mutex<Filed>> = OnceLock::new();
    DESK.get_or_init(Mutex::default)
}

impl AlertDesk {
    /// Every case filed so far in this process, by card and window.
    pub fn cases() -> Vec<CardWindow> {
        let filed = desk().lock().unwrap_or_else(|p| p.into_inner());
        let mut cases: Vec<CardWindow> = filed.values().flatten().cloned().collect();
        cases.sort_by_key(|c| (c.card, c.start_ms));
        cases
    }

    fn file(batch: CaseBatch) {
        let mut filed = desk().lock().unwrap_or_else(|p| p.into_inner());
        let key = (batch.job, batch.subtask, batch.checkpoint);
        // Filed already; or the subtask's last batch (end of input) is, and this one comes
        // from an attempt restarted after it, replaying what it filed.
        let complete = (batch.job, batch.subtask, CheckpointId::END_OF_INPUT);
        if filed.contains_key(&key) || filed.contains_key(&complete) {
            return;
        }
        for case in &batch.cases {
            tracing::warn!(target: "card_risk::alerts", card = case.card, window = case.start_ms, payments = case.payments, cents = case.cents, "suspicious card");
        }
        filed.insert(key, batch.cases);
    }
}

impl Sink<CardWindow> for AlertDesk {
    type Committable = CaseBatch;

    fn writer(
        &self,
        ctx: &dyn ConnectorContext,
    ) -> Result<Box<dyn SinkWriter<CardWindow, CaseBatch>>, JobError> {
        Ok(Box::new(DeskWriter {
            job: ctx.job(),
            subtask: ctx.subtask(),
            cases: Vec::new(),
        }))
    }
}

/// One sink subtask's cases since the last checkpoint barrier.
struct DeskWriter {
    job: JobId,
    subtask: u32,
    cases: Vec<CardWindow>,
}

impl SinkWriter<CardWindow, CaseBatch> for DeskWriter {
    fn write(&mut self, window: CardWindow) -> Result<(), JobError> {
        if window.suspicious {
            self.cases.push(window);
        }
        Ok(())
    }

    fn prepare_commit(&mut self, checkpoint: CheckpointId) -> Result<Vec<CaseBatch>, JobError> {
        // The end of the input is filed even when empty: it marks the subtask complete.
        if self.cases.is_empty() && checkpoint != CheckpointId::END_OF_INPUT {
            return Ok(Vec::new());
        }
        Ok(vec![CaseBatch {
            job: self.job,
            subtask: self.subtask,
            checkpoint,
            cases: std::mem::take(&mut self.cases),
        }])
    }

    fn commit(&mut self, batches: Vec<CaseBatch>) -> Result<(), JobError> {
        batches.into_iter().for_each(AlertDesk::file);
        Ok(())
    }
}
