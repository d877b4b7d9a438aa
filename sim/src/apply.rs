//! Applying faults to madsim, with overlapping faults composed correctly.
//!
//! madsim's controls are not reference-counted: clogs are sets, loss and latency are single
//! global values, restarting a live node leaves its old sockets bound, and a restart clears a
//! pause. So the harness counts, per node and per direction, how many active faults hold each
//! control, and only touches madsim when a count moves between 0 and 1; loss and latency are
//! recomputed from the set of active faults after every step.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rill::taskmanager::ProcessingClock;

use crate::fault::{Direction, Fault, FaultKind};
use crate::node::NodeName;
use crate::store::SimCheckpointStore;

/// madsim's default per-message latency, restored when no latency fault is active.
pub const DEFAULT_LATENCY: Range<Duration> = Duration::from_millis(1)..Duration::from_millis(10);

/// What the active faults hold, by node.
#[derive(Default)]
pub struct FaultState {
    down: BTreeMap<NodeName, u32>,
    paused: BTreeMap<NodeName, u32>,
    clog_in: BTreeMap<NodeName, u32>,
    clog_out: BTreeMap<NodeName, u32>,
    clog_link: BTreeMap<(NodeName, NodeName), u32>,
    /// The checkpoint store `store-failure` faults act on.
    store: SimCheckpointStore,
    /// The TaskManagers' processing-time clocks `clock-skew` faults set.
    clocks: BTreeMap<NodeName, ProcessingClock>,
}

/// Adds one holder; true when the control must now be switched on.
fn hold<K: Ord>(map: &mut BTreeMap<K, u32>, key: K) -> bool {
    let n = map.entry(key).or_default();
    *n += 1;
    *n == 1
}

/// Removes one holder; true when the control must now be switched off.
fn release<K: Ord>(map: &mut BTreeMap<K, u32>, key: K) -> bool {
    match map.get_mut(&key) {
        Some(n) if *n > 0 => {
            *n -= 1;
            *n == 0
        }
        _ => false,
    }
}

impl FaultState {
    /// `clocks` are the TaskManagers' processing-time clocks by node name (as
    /// [`SimCluster::clocks`](crate::cluster::SimCluster::clocks) holds them).
    pub fn new(store: SimCheckpointStore, clocks: &BTreeMap<NodeName, ProcessingClock>) -> Self {
        FaultState {
            store,
            clocks: clocks.clone(),
            ..FaultState::default()
        }
    }

    /// Whether a crash or OOM kill holds `node` down now.
    pub fn is_down(&self, node: &NodeName) -> bool {
        self.down.get(node).is_some_and(|n| *n > 0)
    }

    /// Starts `fault`; `ids` resolves node names. Returns false if it has no effect here.
    pub fn begin(
        &mut self,
        fault: &Fault,
        ids: &dyn Fn(&NodeName) -> Option<NodeId>,
        handle: &Handle,
    ) -> bool {
        let Some(targets) = fault
            .targets()
            .iter()
            .map(|t| ids(t))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        let net = NetSim::current();
        match &fault.kind {
            FaultKind::Crash { target, .. } | FaultKind::OomKill { target, .. } => {
                if hold(&mut self.down, target.clone()) {
                    handle.kill(targets[0]);
                }
            }
            FaultKind::Partition {
                target, direction, ..
            } => {
                if *direction != Direction::Outbound && hold(&mut self.clog_in, target.clone()) {
                    net.clog_node_in(targets[0]);
                }
                if *direction != Direction::Inbound && hold(&mut self.clog_out, target.clone()) {
                    net.clog_node_out(targets[0]);
                }
            }
            FaultKind::LinkPartition {
                from,
                to,
                both_ways,
                ..
            } => {
                if hold(&mut self.clog_link, (from.clone(), to.clone())) {
                    net.clog_link(targets[0], targets[1]);
                }
                if *both_ways && hold(&mut self.clog_link, (to.clone(), from.clone())) {
                    net.clog_link(targets[1], targets[0]);
                }
            }
            FaultKind::Pause { target, .. } => {
                if hold(&mut self.paused, target.clone()) && !self.is_down(target) {
                    handle.pause(targets[0]);
                }
            }
            FaultKind::PacketLoss { .. } | FaultKind::Latency { .. } => {}
            FaultKind::StoreFailure { mode, .. } => self.store.set(*mode, true),
            // A skew sets the node's clock from now on (the latest one wins, as when an operator
            // or NTP steps it); only TaskManagers read processing time.
            FaultKind::ClockSkew { target, offset_ms } => match self.clocks.get(target) {
                Some(clock) => clock.set_offset(*offset_ms),
                None => return false,
            },
        }
        true
    }

    /// Ends `fault` (which began); returns what happened, for the trace.
    pub fn end(
        &mut self,
        fault: &Fault,
        ids: &dyn Fn(&NodeName) -> Option<NodeId>,
        handle: &Handle,
    ) -> &'static str {
        let Some(targets) = fault
            .targets()
            .iter()
            .map(|t| ids(t))
            .collect::<Option<Vec<_>>>()
        else {
            return "end";
        };
        let net = NetSim::current();
        match &fault.kind {
            FaultKind::Crash { target, .. } | FaultKind::OomKill { target, .. } => {
                if !release(&mut self.down, target.clone()) {
                    return "still down (another fault holds it)";
                }
                handle.restart(targets[0]);
                // A restart starts the node unpaused; a pause still active holds it again.
                if self.paused.get(target).is_some_and(|n| *n > 0) {
                    handle.pause(targets[0]);
                }
                "restart"
            }
            FaultKind::Partition {
                target, direction, ..
            } => {
                if *direction != Direction::Outbound && release(&mut self.clog_in, target.clone()) {
                    net.unclog_node_in(targets[0]);
                }
                if *direction != Direction::Inbound && release(&mut self.clog_out, target.clone()) {
                    net.unclog_node_out(targets[0]);
                }
                "heal"
            }
            FaultKind::LinkPartition {
                from,
                to,
                both_ways,
                ..
            } => {
                if release(&mut self.clog_link, (from.clone(), to.clone())) {
                    net.unclog_link(targets[0], targets[1]);
                }
                if *both_ways && release(&mut self.clog_link, (to.clone(), from.clone())) {
                    net.unclog_link(targets[1], targets[0]);
                }
                "heal"
            }
            FaultKind::Pause { target, .. } => {
                if release(&mut self.paused, target.clone()) && !self.is_down(target) {
                    handle.resume(targets[0]);
                }
                "resume"
            }
            FaultKind::StoreFailure { mode, .. } => {
                self.store.set(*mode, false);
                "store healthy"
            }
            _ => "end",
        }
    }

    /// Sets loss and latency from the faults active now: the highest loss rate, the widest
    /// latency range; madsim's defaults when none is active.
    pub fn apply_network(&self, active: &[&Fault]) {
        let mut loss = 0.0f64;
        let mut latency: Option<Range<Duration>> = None;
        for f in active {
            match &f.kind {
                FaultKind::PacketLoss { rate, .. } => loss = loss.max(*rate),
                FaultKind::Latency { min, max, .. } => {
                    let max = (*max).max(*min + Duration::from_nanos(1));
                    latency = Some(match latency {
                        None => *min..max,
                        Some(r) => r.start.min(*min)..r.end.max(max),
                    });
                }
                _ => {}
            }
        }
        let latency = latency.unwrap_or(DEFAULT_LATENCY);
        NetSim::current().update_config(|c| {
            c.packet_loss_rate = loss;
            c.send_latency = latency;
        });
    }
}
