//! BUGGIFY in FoundationDB's manner: named points on the runtime's rare paths (a control
//! message the JobManager handles late, an acknowledgement sent late, a store that takes its
//! time, a buffer pool that runs dry, a reconnect that races a redeploy, a heartbeat answered
//! close to its timeout) that do nothing in production and that a test harness turns on.
//!
//! The runtime asks [`delay`] (or [`fires`], or awaits [`sleep`]) at each point. Unless a
//! [`BuggifyHook`] is installed on the calling thread, the answer is "no", at the cost of a
//! thread-local read: nothing is installed in production. A harness installs one per thread
//! ([`install`]): a simulator runs each seed's whole cluster on one thread, and several seeds
//! run at once on different threads of one process, so a process-wide hook would let one
//! seed's draws leak into another's. The hook decides which points are live, whether a live one
//! fires at this evaluation, and for how long; the runtime only says where the points are and
//! what each one's delay may be ([`POINTS`]).
//!
//! Every point must be survivable: it makes a path slower, or takes it in another order a real
//! network or disk could, and never makes the runtime do what it could not do anyway.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;

use crate::config::Configuration;

/// A named point on a rare path of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Point {
    /// The JobManager relays a TaskManager's control message to its actor late (the messages
    /// after it on that connection wait, in order; other TaskManagers' overtake it).
    ControlMessageLate,
    /// A task sends its checkpoint acknowledgement late, as if the asynchronous part of its
    /// snapshot took its time; the task goes on processing meanwhile.
    CheckpointAckLate,
    /// The checkpoint store takes its time with a write.
    CheckpointStoreSlow,
    /// The sink store applies a write at once but acknowledges it late; the sink's next
    /// writes wait behind it.
    SinkStoreAckLate,
    /// A consumer's buffer pool runs dry for a while: the credits it would grant a remote
    /// producer are held back, then granted together.
    BuffersRunDry,
    /// A consumer reconnects to its replaced producer late, racing the producer's redeployment
    /// (and any later one).
    ReconnectLate,
    /// A TaskManager answers a heartbeat late, its session busy meanwhile: between half and
    /// all of `(heartbeat.timeout - heartbeat.interval) / 2`, at most the point's `max`.
    HeartbeatReplyLate,
    /// A task restoring a checkpoint takes its time before it runs (fetching its state).
    RestoreSlow,
}

/// What the runtime says about one point: its name, where it is, how often a live one fires
/// and how long it delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointSpec {
    /// The point.
    pub point: Point,
    /// Its name in scenario files, traces and reports.
    pub name: &'static str,
    /// Where it is and what it does, one line.
    pub what: &'static str,
    /// Percent of a live point's evaluations that fire (FoundationDB's 25 unless the path is
    /// hot enough that 25 would keep it firing all the time).
    pub percent: u32,
    /// The shortest delay a firing adds.
    pub min: Duration,
    /// The longest delay a firing adds: what a checker's bound must allow for it.
    pub max: Duration,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Every point, in [`Point`] order.
pub const POINTS: &[PointSpec] = &[
    PointSpec {
        point: Point::ControlMessageLate,
        name: "control-message-late",
        what: "jobmanager/connection.rs: a TaskManager's message reaches the actor late, in order",
        percent: 25,
        min: ms(1),
        max: ms(250),
    },
    PointSpec {
        point: Point::CheckpointAckLate,
        name: "checkpoint-ack-late",
        what: "taskmanager/checkpoints.rs: a task acknowledges a checkpoint late, still processing",
        percent: 25,
        min: ms(1),
        max: ms(500),
    },
    PointSpec {
        point: Point::CheckpointStoreSlow,
        name: "checkpoint-store-slow",
        what: "state/remote.rs: the checkpoint store takes its time with a write",
        percent: 25,
        min: ms(1),
        max: ms(1000),
    },
    PointSpec {
        point: Point::SinkStoreAckLate,
        name: "sink-store-ack-late",
        what: "connectors/sink_service.rs: the sink store acknowledges an applied write late",
        percent: 25,
        min: ms(1),
        max: ms(200),
    },
    PointSpec {
        point: Point::BuffersRunDry,
        name: "buffers-run-dry",
        what: "network/transport.rs: a consumer holds its credits back for a while",
        percent: 5,
        min: ms(1),
        max: ms(100),
    },
    PointSpec {
        point: Point::ReconnectLate,
        name: "reconnect-late",
        what: "taskmanager/consumer_task.rs: a consumer reconnects to a replaced producer late",
        percent: 50,
        min: ms(1),
        max: ms(1000),
    },
    PointSpec {
        point: Point::HeartbeatReplyLate,
        name: "heartbeat-reply-late",
        what: "taskmanager/mod.rs: a TaskManager answers a heartbeat late, its session busy",
        percent: 10,
        min: ms(1),
        max: ms(3000),
    },
    PointSpec {
        point: Point::RestoreSlow,
        name: "restore-slow",
        what: "taskmanager/task.rs: a task restoring a checkpoint takes its time before it runs",
        percent: 25,
        min: ms(1),
        max: ms(1000),
    },
];

impl Point {
    /// Every point.
    pub const ALL: [Point; 8] = [
        Point::ControlMessageLate,
        Point::CheckpointAckLate,
        Point::CheckpointStoreSlow,
        Point::SinkStoreAckLate,
        Point::BuffersRunDry,
        Point::ReconnectLate,
        Point::HeartbeatReplyLate,
        Point::RestoreSlow,
    ];

    /// What the runtime says about it.
    pub fn spec(self) -> &'static PointSpec {
        // POINTS is in Point order (a unit test holds it to that).
        &POINTS[self as usize]
    }

    /// Its name in scenario files, traces and reports.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The point of that name.
    pub fn from_name(name: &str) -> Option<Point> {
        POINTS.iter().find(|s| s.name == name).map(|s| s.point)
    }

    /// Every point's name, in order (for error messages).
    pub fn names() -> Vec<&'static str> {
        POINTS.iter().map(|s| s.name).collect()
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A name that is no point's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown buggify point '{name}'; known points: {known}", name = .0, known = Point::names().join(", "))]
pub struct UnknownPoint(pub String);

impl FromStr for Point {
    type Err = UnknownPoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Point::from_name(s).ok_or_else(|| UnknownPoint(s.to_string()))
    }
}

/// What a harness installs: it decides, per evaluation of a point, whether it fires.
pub trait BuggifyHook {
    /// Whether `point` fires at this evaluation and, if it does, the delay it adds: within
    /// `min..=max` (the point's range, or less where the call site caps it).
    fn evaluate(&self, point: Point, min: Duration, max: Duration) -> Option<Duration>;
}

thread_local! {
    static HOOK: RefCell<Option<Rc<dyn BuggifyHook>>> = const { RefCell::new(None) };
}

/// Installs `hook` on this thread until the guard is dropped (the hook it replaced, if any,
/// comes back then).
pub fn install(hook: Box<dyn BuggifyHook>) -> Installed {
    let previous = HOOK.with(|h| h.borrow_mut().replace(Rc::from(hook)));
    Installed {
        previous,
        _not_send: std::marker::PhantomData,
    }
}

/// Uninstalls its hook when dropped. It stays on the thread that installed it.
#[must_use = "the hook is uninstalled when this is dropped"]
pub struct Installed {
    previous: Option<Rc<dyn BuggifyHook>>,
    _not_send: std::marker::PhantomData<Rc<()>>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.previous.take();
        HOOK.with(|h| *h.borrow_mut() = previous);
    }
}

/// Whether a hook is installed on this thread.
pub fn installed() -> bool {
    HOOK.with(|h| h.borrow().is_some())
}

fn evaluate(point: Point, min: Duration, max: Duration) -> Option<Duration> {
    // Cloned out first: a hook that logs or asks again must not find the cell borrowed.
    let hook = HOOK.with(|h| h.borrow().clone())?;
    hook.evaluate(point, min, max)
}

/// Whether `point` fires here (never without a hook).
pub fn fires(point: Point) -> bool {
    let spec = point.spec();
    evaluate(point, spec.min, spec.max).is_some()
}

/// The delay `point` adds here, if it fires (never without a hook): within its range.
pub fn delay(point: Point) -> Option<Duration> {
    let spec = point.spec();
    evaluate(point, spec.min, spec.max)
}

/// The delay `point` adds here, if it fires, within `min..=max` capped by the point's own
/// range (a call site that knows how much its path can take, such as a heartbeat's timeout).
/// Nothing fires when the cap leaves no room.
pub fn delay_within(point: Point, min: Duration, max: Duration) -> Option<Duration> {
    let spec = point.spec();
    let max = max.min(spec.max);
    let min = min.max(spec.min).min(max);
    if max.is_zero() {
        return None;
    }
    evaluate(point, min, max)
}

/// Sleeps for the delay `point` adds here, if it fires.
pub async fn sleep(point: Point) {
    if let Some(d) = delay(point) {
        tokio::time::sleep(d).await;
    }
}

/// How late [`Point::HeartbeatReplyLate`] may make a heartbeat's reply under `config`: half of
/// what `heartbeat.timeout` leaves after an interval, at most the point's `max`. The
/// JobManager hears from the TaskManager at most an interval plus this apart, well inside its
/// timeout even when its own relay is late too ([`Point::ControlMessageLate`]).
pub fn heartbeat_reply_cap(config: &Configuration) -> Duration {
    let room = config
        .heartbeat_timeout()
        .saturating_sub(config.heartbeat_interval());
    (room / 2).min(Point::HeartbeatReplyLate.spec().max)
}

/// Sleeps before a TaskManager answers a heartbeat, if [`Point::HeartbeatReplyLate`] fires:
/// between half and all of [`heartbeat_reply_cap`], close to what the timeout allows.
pub async fn heartbeat_reply(config: &Configuration) {
    let cap = heartbeat_reply_cap(config);
    if let Some(d) = delay_within(Point::HeartbeatReplyLate, cap / 2, cap) {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Fires every point it is asked about, with the longest delay, and counts the calls.
    struct Always(Rc<Cell<u32>>);

    impl BuggifyHook for Always {
        fn evaluate(&self, _: Point, _: Duration, max: Duration) -> Option<Duration> {
            self.0.set(self.0.get() + 1);
            Some(max)
        }
    }

    #[test]
    fn the_table_is_in_point_order_and_names_are_unique() {
        assert_eq!(POINTS.len(), Point::ALL.len());
        for (i, p) in Point::ALL.iter().enumerate() {
            assert_eq!(POINTS[i].point, *p);
            assert_eq!(p.name().parse::<Point>(), Ok(*p));
            assert!(POINTS[i].min <= POINTS[i].max && POINTS[i].percent <= 100);
        }
        let names: std::collections::BTreeSet<_> = Point::names().into_iter().collect();
        assert_eq!(names.len(), POINTS.len());
        let err = "no-such-point".parse::<Point>().unwrap_err().to_string();
        assert!(
            err.contains("no-such-point") && err.contains("restore-slow"),
            "{err}"
        );
    }

    #[test]
    fn nothing_fires_without_a_hook() {
        assert!(!installed());
        for p in Point::ALL {
            assert!(!fires(p));
            assert_eq!(delay(p), None);
            assert_eq!(delay_within(p, ms(1), ms(10)), None);
        }
    }

    #[test]
    fn an_installed_hook_decides_until_its_guard_is_dropped_on_its_thread_only() {
        let calls = Rc::new(Cell::new(0));
        {
            let _guard = install(Box::new(Always(calls.clone())));
            assert!(installed());
            assert_eq!(delay(Point::RestoreSlow), Some(ms(1000)));
            // A cap below the point's own range is the range.
            assert_eq!(
                delay_within(Point::HeartbeatReplyLate, ms(500), ms(1000)),
                Some(ms(1000))
            );
            // A cap that leaves no room evaluates nothing.
            assert_eq!(delay_within(Point::HeartbeatReplyLate, ms(0), ms(0)), None);
            // Another thread has no hook.
            std::thread::spawn(|| assert!(!fires(Point::ControlMessageLate)))
                .join()
                .unwrap();
        }
        assert_eq!(calls.get(), 2);
        assert!(!installed());
        assert!(!fires(Point::ControlMessageLate));
        assert_eq!(calls.get(), 2);
    }
}
