//! The callers of one service connection that wait for their replies, and the one timer that
//! gives up on those whose time is up.
//!
//! Every call is bounded by its client's timeout, yet nearly every call is answered long
//! before it. A timer per call costs a timer entry per call, and a runtime whose timers live
//! in a heap (as madsim's do) keeps each entry until it is due and then wakes the task that
//! set it, long after the call ended. One timer per connection, armed for the earliest
//! deadline among the callers still waiting, bounds them all: under load it fires about once
//! per timeout, not once per call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::util::lock;

/// A caller's reply did not come by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Late;

/// What a waiting caller is told: the reply, or that its time is up.
pub(super) type Answer<Rep> = Result<Rep, Late>;

/// The callers waiting on one connection; closed once the connection is gone.
pub(super) struct Pending<Rep> {
    /// `None` once closed: every sender dropped tells its caller the connection is gone.
    callers: Mutex<Option<Callers<Rep>>>,
    /// Wakes the timer when a caller needs it sooner than it is armed for.
    sooner: Notify,
}

struct Callers<Rep> {
    by_id: BTreeMap<u64, Caller<Rep>>,
    /// The deadline the timer sleeps until, if it sleeps.
    armed: Option<Instant>,
}

struct Caller<Rep> {
    reply: oneshot::Sender<Answer<Rep>>,
    deadline: Instant,
}

impl<Rep> Pending<Rep> {
    /// No caller waiting yet.
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Pending {
            callers: Mutex::new(Some(Callers {
                by_id: BTreeMap::new(),
                armed: None,
            })),
            sooner: Notify::new(),
        })
    }

    /// Whether the connection is still there to wait on.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.callers).is_some()
    }

    /// Caller `id` waits for its reply until `deadline`; `None` once the connection is gone.
    pub(super) fn wait(
        &self,
        id: u64,
        deadline: Instant,
    ) -> Option<oneshot::Receiver<Answer<Rep>>> {
        let (reply, rx) = oneshot::channel();
        let mut guard = lock(&self.callers);
        let callers = guard.as_mut()?;
        callers.by_id.insert(id, Caller { reply, deadline });
        if callers.armed.is_none_or(|armed| deadline < armed) {
            // notify_one keeps the wake-up for a timer that is not listening yet.
            self.sooner.notify_one();
        }
        Some(rx)
    }

    /// The reply to caller `id`, if it still waits (one that gave up has stopped listening).
    pub(super) fn answer(&self, id: u64, reply: Rep) {
        let caller = lock(&self.callers)
            .as_mut()
            .and_then(|c| c.by_id.remove(&id));
        if let Some(caller) = caller {
            let _ = caller.reply.send(Ok(reply));
        }
    }

    /// The connection is gone: every caller still waiting is told so.
    pub(super) fn close(&self) {
        lock(&self.callers).take();
        self.sooner.notify_one();
    }

    /// Tells each caller whose deadline passed that it is late, until the connection closes:
    /// the connection's one timer.
    pub(super) async fn expire_late(self: Arc<Self>) {
        while let Some(next) = self.expire_due(Instant::now()) {
            match next {
                Some(at) => {
                    tokio::select! {
                        biased;
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.sooner.notified() => {}
                    }
                }
                None => self.sooner.notified().await,
            }
        }
    }

    /// Tells the callers due by `now` that they are late and arms the timer for the earliest
    /// deadline left (`Some(None)`: none is waiting); `None` once closed.
    fn expire_due(&self, now: Instant) -> Option<Option<Instant>> {
        let mut guard = lock(&self.callers);
        let callers = guard.as_mut()?;
        let due: Vec<u64> = callers
            .by_id
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            if let Some(caller) = callers.by_id.remove(&id) {
                let _ = caller.reply.send(Err(Late));
            }
        }
        callers.armed = callers.by_id.values().map(|c| c.deadline).min();
        Some(callers.armed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The timer never lets a caller go early; in virtual time (the simulated build) it lets
    /// it go at its deadline (the simulator adds microseconds of its own per poll).
    fn at_deadline(start: Instant, deadline: Duration) {
        let waited = Instant::now() - start;
        assert!(
            waited >= deadline,
            "let go after {waited:?}, before {deadline:?}"
        );
        if cfg!(madsim) {
            let late = waited - deadline;
            assert!(late < Duration::from_millis(1), "let go {late:?} late");
        }
    }

    #[tokio::test]
    async fn a_caller_is_answered_or_told_it_is_late_at_its_deadline() {
        let pending = Pending::<u32>::new();
        let _timer = crate::util::AbortOnDrop(tokio::spawn(pending.clone().expire_late()));
        let (start, ms) = (Instant::now(), Duration::from_millis);
        let answered = pending.wait(1, start + ms(300)).unwrap();
        let late = pending.wait(2, start + ms(300)).unwrap();
        // A caller with an earlier deadline than the one armed is still let go on time.
        let sooner = pending.wait(3, start + ms(100)).unwrap();
        pending.answer(1, 7);
        assert_eq!(answered.await.unwrap(), Ok(7));
        assert_eq!(sooner.await.unwrap(), Err(Late));
        at_deadline(start, ms(100));
        assert_eq!(late.await.unwrap(), Err(Late));
        at_deadline(start, ms(300));
        // A reply after the deadline finds nobody listening.
        pending.answer(2, 9);
    }

    #[tokio::test]
    async fn closing_tells_every_caller_and_ends_the_timer() {
        let pending = Pending::<u32>::new();
        let timer = tokio::spawn(pending.clone().expire_late());
        let waiting = pending
            .wait(1, Instant::now() + Duration::from_secs(5))
            .unwrap();
        pending.close();
        assert!(
            waiting.await.is_err(),
            "the sender is dropped: connection gone"
        );
        assert!(pending.wait(2, Instant::now()).is_none());
        assert!(!pending.is_open());
        timer.await.unwrap();
    }
}
