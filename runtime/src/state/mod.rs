//! Keyed state and key groups.
//!
//! Keys are hashed with a fixed, unseeded hasher (FxHash; never `RandomState`) into key groups, Flink's unit of
//! state redistribution: `pipeline.max-parallelism` groups, assigned to subtasks in contiguous
//! ranges. The same hash routes a record over the network and finds its state, in every process.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxBuildHasher, FxHasher};

use crate::taskmanager::MemoryAccount;

/// A deterministic hash of a key. FxHash is unseeded and, unlike std's `DefaultHasher`, fixed
/// across Rust releases, so key groups (and with them keyed state in checkpoints) stay where
/// they were when rill is rebuilt; `key_group` mixes its bits before they pick a group.
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// The key group of a key hash (Flink: murmur(hash) % maxParallelism).
pub fn key_group(hash: u64, max_parallelism: u32) -> u32 {
    // Fold the high bits in so that sequential hashes spread over groups.
    let mixed = (hash ^ (hash >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (mixed % max_parallelism.max(1) as u64) as u32
}

/// The subtask owning a key group (Flink's KeyGroupRangeAssignment).
pub fn subtask_for_key_group(group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    (group as u64 * parallelism as u64 / max_parallelism.max(1) as u64) as u32
}

/// Per-key values of one operator instance, with their memory accounted to the TaskManager.
pub struct KeyedState<K, V> {
    values: HashMap<K, V, FxBuildHasher>,
    memory: MemoryAccount,
    accounted: u64,
}

impl<K: Hash + Eq + Clone, V> KeyedState<K, V> {
    /// Estimated bytes per entry: key, value and the hash table's own overhead.
    const ENTRY_BYTES: u64 = (std::mem::size_of::<K>() + std::mem::size_of::<V>() + 16) as u64;

    pub fn new(memory: MemoryAccount) -> Self {
        KeyedState {
            values: HashMap::default(),
            memory,
            accounted: 0,
        }
    }

    pub fn get_or_insert_with(&mut self, key: &K, init: &dyn Fn() -> V) -> &mut V {
        if !self.values.contains_key(key) {
            self.memory.add_state(Self::ENTRY_BYTES);
            self.accounted += Self::ENTRY_BYTES;
            self.values.insert(key.clone(), init());
        }
        self.values.get_mut(key).expect("inserted above")
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.values.get(key)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<K, V> Drop for KeyedState<K, V> {
    fn drop(&mut self) {
        self.memory.sub_state(self.accounted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_cover_all_subtasks_evenly() {
        let (max, p) = (128, 4);
        let mut per_subtask = [0u32; 4];
        for key in 0..1024u64 {
            let g = key_group(key_hash(&key), max);
            assert!(g < max);
            per_subtask[subtask_for_key_group(g, max, p) as usize] += 1;
        }
        assert!(
            per_subtask.iter().all(|&n| (180..=340).contains(&n)),
            "{per_subtask:?}"
        );
    }

    #[test]
    fn state_memory_is_accounted_and_released() {
        let memory = MemoryAccount::default();
        let mut state: KeyedState<u64, u64> = KeyedState::new(memory.clone());
        for k in 0..10 {
            *state.get_or_insert_with(&k, &|| 0) += 1;
            *state.get_or_insert_with(&k, &|| 0) += 1;
        }
        assert_eq!(state.len(), 10);
        assert_eq!(state.get(&3), Some(&2));
        assert_eq!(memory.report().state_bytes, 10 * (8 + 8 + 16));
        drop(state);
        assert_eq!(memory.report().state_bytes, 0);
    }
}
