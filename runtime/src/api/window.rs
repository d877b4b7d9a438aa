//! Tumbling windows, on event time or on processing time.
//!
//! Event time: a window `[start, start + size)` fires when the watermark passes its end.
//! Watermarks come from the sources and advance at a task as the minimum over its input
//! channels, so firing is a deterministic function of the input, never of wall-clock time.
//!
//! Processing time: a record belongs to the window of the TaskManager's clock when it arrives,
//! and windows fire as that clock passes their end (checked at every record and every buffer
//! timeout). Wall clocks jump; the operator's time never goes back (it holds at the furthest
//! time reached, and says so), so no window fires twice for a key, not even after a restore on
//! a machine whose clock is behind.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::operator::{AddFn, ChainEvent, Collector, KeyFn, OperatorContext, Out, StateSlot};
use crate::clock::ProcessingClock;
use crate::state::snapshot::{decode, encode};
use crate::state::{key_group, key_hash, OperatorState};

/// Produces a window's output from key, window and accumulator.
type WindowEmitFn<K, A, U> = Arc<dyn Fn(&K, Window, &A) -> U + Send + Sync>;
use crate::error::JobError;

/// A time window, start inclusive, end exclusive, in milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    /// Its first millisecond.
    pub start: u64,
    /// The millisecond after its last.
    pub end: u64,
}

/// The time windows are on.
pub enum WindowTime<T> {
    /// Each record's own timestamp, in milliseconds.
    Event(Arc<dyn Fn(&T) -> u64 + Send + Sync>),
    /// The TaskManager's clock when the record arrives.
    Processing,
}

impl<T> WindowTime<T> {
    /// Event time, with `timestamp` giving each record's time in milliseconds.
    pub fn event(timestamp: impl Fn(&T) -> u64 + Send + Sync + 'static) -> Self {
        WindowTime::Event(Arc::new(timestamp))
    }
}

impl<T> Clone for WindowTime<T> {
    fn clone(&self) -> Self {
        match self {
            WindowTime::Event(f) => WindowTime::Event(f.clone()),
            WindowTime::Processing => WindowTime::Processing,
        }
    }
}

/// The typed definition of a tumbling-window aggregation, instantiated once per subtask.
pub(crate) struct TumblingSpec<T, K, A, U> {
    key: KeyFn<T, K>,
    size_ms: u64,
    time: WindowTime<T>,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    add: AddFn<T, A>,
    emit: WindowEmitFn<K, A, U>,
}

impl<T, K, A, U> TumblingSpec<T, K, A, U>
where
    T: Send + 'static,
    K: Hash + Eq + Ord + Clone + Send + Serialize + DeserializeOwned + 'static,
    A: Send + Serialize + DeserializeOwned + 'static,
    U: Send + 'static,
{
    pub fn new(
        key: KeyFn<T, K>,
        size_ms: u64,
        time: WindowTime<T>,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&mut A, &T) + Send + Sync + 'static,
        emit: impl Fn(&K, Window, &A) -> U + Send + Sync + 'static,
    ) -> Self {
        TumblingSpec {
            key,
            size_ms: size_ms.max(1),
            time,
            init: Arc::new(init),
            add: Arc::new(add),
            emit: Arc::new(emit),
        }
    }

    pub fn instantiate(&self, down: Out<U>, ctx: &OperatorContext) -> Result<Out<T>, JobError> {
        let (mut windows, mut watermark) = (BTreeMap::new(), 0);
        if let Some(restored) = ctx.restored() {
            for bytes in restored.keyed.values() {
                let entries: Vec<((u64, K), A)> = decode(bytes).map_err(JobError::State)?;
                windows.extend(entries);
            }
            if let Some(wm) = &restored.operator {
                watermark = decode(wm).map_err(JobError::State)?;
            }
        }
        let clock = match &self.time {
            WindowTime::Event(_) => None,
            WindowTime::Processing => Some(ctx.services.clock.clone()),
        };
        Ok(Box::new(TumblingWindowOp {
            key: self.key.clone(),
            size_ms: self.size_ms,
            time: self.time.clone(),
            clock,
            held_back: false,
            task: format!("{}[{}]", ctx.operator_name, ctx.subtask()),
            init: self.init.clone(),
            add: self.add.clone(),
            emit: self.emit.clone(),
            windows,
            watermark,
            dropped_late: 0,
            slot: ctx.state_slot(),
            down,
        }))
    }
}

struct TumblingWindowOp<T, K, A, U> {
    key: KeyFn<T, K>,
    size_ms: u64,
    time: WindowTime<T>,
    /// The TaskManager's clock, on processing time.
    clock: Option<ProcessingClock>,
    /// Whether processing time is held because the clock went back (warned once per jump).
    held_back: bool,
    /// Operator and subtask, for the warning.
    task: String,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    add: AddFn<T, A>,
    emit: WindowEmitFn<K, A, U>,
    /// Open windows by end time, then key: firing walks them in a deterministic order.
    windows: BTreeMap<(u64, K), A>,
    /// How far time has advanced: the watermark on event time, the furthest clock reading on
    /// processing time.
    watermark: u64,
    dropped_late: u64,
    slot: StateSlot,
    down: Out<U>,
}

impl<T, K, A, U> TumblingWindowOp<T, K, A, U>
where
    K: Ord + Clone,
{
    /// Processing time now, never behind the furthest time already reached: a clock stepped
    /// back would otherwise reopen windows that have fired.
    fn processing_time(&mut self, clock: &ProcessingClock) -> u64 {
        let now = clock.now_ms();
        if now < self.watermark {
            if !self.held_back {
                self.held_back = true;
                let behind_ms = self.watermark - now;
                tracing::warn!(task = %self.task, behind_ms, "processing time went back; holding windows until the clock catches up");
            }
        } else {
            self.held_back = false;
            self.watermark = now;
        }
        self.watermark
    }

    /// On processing time, fires the windows the clock has passed.
    fn fire_due(&mut self) {
        if let Some(clock) = self.clock.clone() {
            let now = self.processing_time(&clock);
            self.fire_until(now);
        }
    }

    fn fire_until(&mut self, watermark: u64) {
        while let Some(entry) = self.windows.first_entry() {
            let (end, _) = *entry.key();
            if end > watermark {
                break;
            }
            let ((end, key), acc) = entry.remove_entry();
            let window = Window {
                start: end - self.size_ms,
                end,
            };
            self.down.collect((self.emit)(&key, window, &acc));
        }
    }
}

impl<T, K, A, U> TumblingWindowOp<T, K, A, U>
where
    K: Hash + Ord + Clone + Serialize,
    A: Serialize,
{
    /// Open windows as keyed state by the key group of their key; the watermark as the
    /// subtask's own state.
    fn checkpoint(&self) -> Result<OperatorState, String> {
        // Each window entry, (end, key) -> accumulator, by the key group of its key.
        type Entry<'a, K, A> = (&'a (u64, K), &'a A);
        let mut groups: BTreeMap<u32, Vec<Entry<K, A>>> = BTreeMap::new();
        for entry in &self.windows {
            let group = key_group(key_hash(&entry.0 .1), self.slot.max_parallelism);
            groups.entry(group).or_default().push(entry);
        }
        Ok(OperatorState {
            keyed: groups
                .into_iter()
                .map(|(g, entries)| Ok((g, encode(&entries)?)))
                .collect::<Result<_, String>>()?,
            operator: Some(encode(&self.watermark)?),
        })
    }
}

impl<T, K, A, U> Collector<T> for TumblingWindowOp<T, K, A, U>
where
    T: Send,
    K: Hash + Eq + Ord + Clone + Send + Serialize,
    A: Send + Serialize,
    U: Send,
{
    fn collect(&mut self, item: T) {
        let ts = match &self.time {
            WindowTime::Event(timestamp) => timestamp(&item),
            WindowTime::Processing => {
                self.fire_due();
                self.watermark
            }
        };
        let start = ts - ts % self.size_ms;
        let end = start.saturating_add(self.size_ms);
        if end <= self.watermark && self.watermark > 0 {
            // Late record: its window already fired (Flink's default allowed lateness of 0).
            self.dropped_late += 1;
            return;
        }
        let key = (self.key)(&item);
        let acc = self
            .windows
            .entry((end, key))
            .or_insert_with(|| (self.init)());
        (self.add)(acc, &item);
    }

    fn event(&mut self, event: ChainEvent) {
        match event {
            // On processing time the clock, not the watermark, fires windows.
            ChainEvent::Watermark(_) | ChainEvent::Flush if self.clock.is_some() => self.fire_due(),
            ChainEvent::Watermark(wm) if wm > self.watermark => {
                self.watermark = wm;
                self.fire_until(wm);
            }
            ChainEvent::Finish => self.fire_until(u64::MAX),
            ChainEvent::Barrier(_) => match self.checkpoint() {
                Ok(state) => self.slot.put(state),
                Err(e) => self.slot.fail(e),
            },
            _ => {}
        }
        self.down.event(event)
    }
}
