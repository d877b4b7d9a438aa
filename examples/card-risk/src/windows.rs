//! The `card-windows` job: payments from this crate's own source ([`Payments`]) are counted
//! per card in tumbling event-time windows; a window with too many payments, or too much
//! money, is suspicious, and each window says how many suspicious windows its card had
//! before (keyed state). Suspicious windows go to this crate's own sink ([`AlertDesk`]),
//! unless the `sink` parameter names one of rill's (the harness always does: it collects
//! every window and compares them with a fault-free run of the same seed).

use std::collections::HashMap;

use rill::api::registry::Params;
use rill::api::window::WindowTime;
use rill::api::{ChainEvent, CheckableOutput, Collector, JobError, Origin, StreamEnv, Traceable};
use rill::jobs::io::{add_own_sink, SinkParams};
use serde::{Deserialize, Serialize};

use crate::alerts::AlertDesk;
use crate::payments::{Payment, Payments};

/// One card's payments in one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardWindow {
    pub card: u64,
    /// The window's start (event time, ms).
    pub start_ms: u64,
    pub payments: u64,
    pub cents: u64,
    /// Over `max-payments` payments or `max-cents` cents in the window.
    pub suspicious: bool,
    /// Suspicious windows of this card before this one.
    pub flagged_before: u64,
}

impl Traceable for CardWindow {
    /// A window comes from many payments: it names none.
    fn origin(&self) -> Option<Origin> {
        None
    }
}

/// Windows name their card, and a card's windows leave the job in window order: the
/// harness compares them card by card, in order, with the reference run's.
impl CheckableOutput for CardWindow {
    const ONE_PER_INPUT: bool = false;
    const KEYED: bool = true;

    fn key(&self) -> Option<u64> {
        Some(self.card)
    }
}

/// Builds `card-windows`. Parameters: `parallelism` (2), `payments` over all shards
/// (20000), `cards` (1000), `hot-per-mille` (0), `seed` (1), `rate` (payments per second,
/// 0: unpaced), `window-ms` (10000), `max-payments` (5), `max-cents` (150000), the standard
/// sink ones ([`SinkParams::read`]; default: the alert desk), and `planted-bug`
/// (`unmanaged-state`: counts earlier suspicious windows in a map of the operator's own,
/// which no checkpoint keeps — the bug the tests must catch).
pub fn card_windows(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let shards = parallelism
        .checked_mul(2)
        .filter(|_| parallelism >= 1)
        .ok_or_else(|| JobError::InvalidParam {
            param: "parallelism".into(),
            reason: format!("{parallelism}: must be at least 1 (and fit twice in a u32)"),
        })?;
    let payments = Payments {
        shards,
        per_shard: p.get("payments", 20_000u64)?.div_ceil(u64::from(shards)),
        cards: p.get("cards", 1000u64)?,
        hot_per_mille: p.get("hot-per-mille", 0u64)?.min(1000),
        seed: p.get("seed", 1u64)?,
        step_ms: 10,
        rate: p.get("rate", 0f64)?,
    };
    let window_ms = p.get("window-ms", 10_000u64)?;
    let (max_payments, max_cents) = (
        p.get("max-payments", 5u64)?,
        p.get("max-cents", 150_000u64)?,
    );
    let planted: String = p.get("planted-bug", String::new())?;
    let unmanaged = match planted.as_str() {
        "" => false,
        "unmanaged-state" => true,
        other => {
            return Err(JobError::InvalidParam {
                param: "planted-bug".into(),
                reason: format!("unknown bug '{other}': expected unmanaged-state"),
            })
        }
    };
    let sink = SinkParams::read(p)?;
    let windows = env
        .source("payments", payments)
        .parallelism(parallelism)
        .key_by(|p: &Payment| p.card)
        .tumbling_window(
            "window",
            window_ms,
            WindowTime::event(|p: &Payment| p.at_ms),
            || (0u64, 0u64),
            |acc, p| *acc = (acc.0 + 1, acc.1 + p.amount),
            move |card, w, &(payments, cents)| CardWindow {
                card: *card,
                start_ms: w.start,
                payments,
                cents,
                suspicious: payments > max_payments || cents > max_cents,
                flagged_before: 0,
            },
        )
        .parallelism(parallelism);
    let numbered = match unmanaged {
        false => windows
            .key_by(|w: &CardWindow| w.card)
            .aggregate(
                "number",
                || 0u64,
                |n, w| *n += u64::from(w.suspicious),
                |_, n, w| CardWindow {
                    flagged_before: n - u64::from(w.suspicious),
                    ..w.clone()
                },
            )
            .parallelism(parallelism),
        true => windows.operator("number", |down, _ctx| {
            Ok(Box::new(Unmanaged {
                flagged: HashMap::new(),
                down,
            }) as Box<dyn Collector<CardWindow>>)
        }),
    };
    add_own_sink(numbered, sink, parallelism, AlertDesk);
    Ok(())
}

/// The planted bug: the count of earlier suspicious windows kept in the operator's own map.
/// It works until a failover: the restarted operator starts from an empty map while the
/// windows it restores continue, so cards that were flagged before the checkpoint are counted
/// from zero again.
struct Unmanaged {
    flagged: HashMap<u64, u64>,
    down: Box<dyn Collector<CardWindow>>,
}

impl Collector<CardWindow> for Unmanaged {
    fn collect(&mut self, w: CardWindow) {
        let n = self.flagged.entry(w.card).or_default();
        let before = *n;
        *n += u64::from(w.suspicious);
        self.down.collect(CardWindow {
            flagged_before: before,
            ..w
        });
    }
    fn event(&mut self, event: ChainEvent) {
        self.down.event(event)
    }
}
