//! The slot pool and placement of execution slot-sharing groups onto slots.

use std::collections::BTreeMap;

use crate::graph::ExecutionSlotSharingGroup;

/// One free slot a TaskManager offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotOffer {
    pub tm: u64,
    pub slot: u32,
}

/// Chooses a slot for every execution slot-sharing group. Pluggable: the balanced modes of
/// `taskmanager.load-balance.mode` are further implementations.
pub trait PlacementStrategy: Send {
    /// Returns one offer per group (same order), or None if the offers do not suffice.
    fn place(
        &mut self,
        groups: &[ExecutionSlotSharingGroup],
        free: &[SlotOffer],
    ) -> Option<Vec<SlotOffer>>;
}

/// Flink's default: the first free slot, TaskManagers in registration order.
pub struct FirstFit;

impl PlacementStrategy for FirstFit {
    fn place(
        &mut self,
        groups: &[ExecutionSlotSharingGroup],
        free: &[SlotOffer],
    ) -> Option<Vec<SlotOffer>> {
        (groups.len() <= free.len()).then(|| free[..groups.len()].to_vec())
    }
}

/// Slots of every registered TaskManager and which job holds each.
#[derive(Debug, Default)]
pub struct SlotPool {
    /// (tm, slot) -> job holding it
    slots: BTreeMap<(u64, u32), Option<u64>>,
}

impl SlotPool {
    pub fn add_taskmanager(&mut self, tm: u64, slots: u32) {
        for slot in 0..slots {
            self.slots.insert((tm, slot), None);
        }
    }

    pub fn remove_taskmanager(&mut self, tm: u64) {
        self.slots.retain(|(t, _), _| *t != tm);
    }

    /// Free slots in (TaskManager registration, slot index) order.
    pub fn free(&self) -> Vec<SlotOffer> {
        self.slots
            .iter()
            .filter(|(_, job)| job.is_none())
            .map(|(&(tm, slot), _)| SlotOffer { tm, slot })
            .collect()
    }

    pub fn total(&self) -> usize {
        self.slots.len()
    }

    pub fn allocate(&mut self, offer: SlotOffer, job: u64) {
        self.slots.insert((offer.tm, offer.slot), Some(job));
    }

    pub fn release_job(&mut self, job: u64) {
        for holder in self.slots.values_mut() {
            if *holder == Some(job) {
                *holder = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::VertexId;

    fn groups(n: u32) -> Vec<ExecutionSlotSharingGroup> {
        (0..n)
            .map(|i| ExecutionSlotSharingGroup {
                group: "default".into(),
                members: vec![(VertexId(0), i)],
            })
            .collect()
    }

    #[test]
    fn first_fit_fills_taskmanagers_in_order() {
        let mut pool = SlotPool::default();
        pool.add_taskmanager(1, 2);
        pool.add_taskmanager(2, 2);
        let placed = FirstFit
            .place(&groups(3), &pool.free())
            .expect("enough slots");
        assert_eq!(
            placed,
            vec![
                SlotOffer { tm: 1, slot: 0 },
                SlotOffer { tm: 1, slot: 1 },
                SlotOffer { tm: 2, slot: 0 }
            ]
        );
        assert!(FirstFit.place(&groups(5), &pool.free()).is_none());
    }

    #[test]
    fn released_slots_are_free_again() {
        let mut pool = SlotPool::default();
        pool.add_taskmanager(1, 2);
        pool.allocate(SlotOffer { tm: 1, slot: 0 }, 7);
        assert_eq!(pool.free().len(), 1);
        pool.release_job(7);
        assert_eq!(pool.free().len(), 2);
        pool.remove_taskmanager(1);
        assert_eq!(pool.total(), 0);
    }
}
