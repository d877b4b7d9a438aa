//! Keyed state and key groups.
//!
//! Keys are hashed with a fixed, unseeded hasher (FxHash; never `RandomState`) into key groups, Flink's unit of
//! state redistribution: `pipeline.max-parallelism` groups, assigned to subtasks in contiguous
//! ranges. The same hash routes a record over the network and finds its state, in every process.

pub mod health;
pub mod journal;
pub mod remote;
pub mod snapshot;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use rustc_hash::{FxBuildHasher, FxHasher};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::memory::MemoryAccount;
pub use health::{follow_health_file, GatedStore, StoreHealth};
pub use journal::{read_journal, JournaledStore, StoredPut};
pub use remote::{serve_checkpoint_store, RemoteCheckpointStore};
pub use snapshot::{OperatorState, StateSlot, TaskRestore, TaskSnapshot, TaskStateHandle};
pub use store::{CheckpointStorage, CheckpointStore, MemoryCheckpointStore, StoreError};

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

    /// Empty state whose entries are charged to `memory`.
    pub fn new(memory: MemoryAccount) -> Self {
        KeyedState {
            values: HashMap::default(),
            memory,
            accounted: 0,
        }
    }

    /// The value of `key`, inserted from `init` if it has none.
    pub fn get_or_insert_with(&mut self, key: &K, init: &dyn Fn() -> V) -> &mut V {
        if !self.values.contains_key(key) {
            self.memory.add_state(Self::ENTRY_BYTES);
            self.accounted += Self::ENTRY_BYTES;
            self.values.insert(key.clone(), init());
        }
        self.values.get_mut(key).expect("inserted above")
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.values.get(key)
    }

    /// Keys with a value.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<K, V> KeyedState<K, V>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The entries split by key group, each group encoded on its own, so a restore can hand
    /// every group to the subtask that owns it then.
    pub fn snapshot(&self, max_parallelism: u32) -> Result<BTreeMap<u32, Vec<u8>>, String> {
        let mut groups: BTreeMap<u32, Vec<(&K, &V)>> = BTreeMap::new();
        for (k, v) in &self.values {
            groups
                .entry(key_group(key_hash(k), max_parallelism))
                .or_default()
                .push((k, v));
        }
        groups
            .into_iter()
            .map(|(g, entries)| Ok((g, snapshot::encode(&entries)?)))
            .collect()
    }

    /// Adds the entries of restored key groups (those this subtask owns).
    pub fn restore<'a>(
        &mut self,
        groups: impl IntoIterator<Item = (&'a u32, &'a Vec<u8>)>,
    ) -> Result<(), String> {
        for (_, bytes) in groups {
            let entries: Vec<(K, V)> = snapshot::decode(bytes)?;
            for (k, v) in entries {
                if self.values.insert(k, v).is_none() {
                    self.memory.add_state(Self::ENTRY_BYTES);
                    self.accounted += Self::ENTRY_BYTES;
                }
            }
        }
        Ok(())
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

    #[test]
    fn snapshot_by_key_group_restores_into_the_owners_of_the_groups() {
        let max = 16;
        let mut state: KeyedState<u64, u64> = KeyedState::new(MemoryAccount::default());
        for k in 0..100 {
            *state.get_or_insert_with(&k, &|| 0) += k;
        }
        let groups = state.snapshot(max).unwrap();
        assert!(groups.keys().all(|g| *g < max));
        // Two subtasks now: each takes the groups of its range and finds exactly its keys.
        let mut restored = 0;
        for subtask in 0..2 {
            let memory = MemoryAccount::default();
            let mut owner: KeyedState<u64, u64> = KeyedState::new(memory.clone());
            owner
                .restore(
                    groups
                        .iter()
                        .filter(|(g, _)| subtask_for_key_group(**g, max, 2) == subtask),
                )
                .unwrap();
            for k in 0..100u64 {
                let owned = subtask_for_key_group(key_group(key_hash(&k), max), max, 2) == subtask;
                assert_eq!(owner.get(&k).copied(), owned.then_some(k));
            }
            assert_eq!(
                memory.report().state_bytes,
                owner.len() as u64 * (8 + 8 + 16)
            );
            restored += owner.len();
        }
        assert_eq!(restored, 100);
    }

    #[test]
    fn corrupt_restored_state_is_an_error() {
        let mut state: KeyedState<u64, u64> = KeyedState::new(MemoryAccount::default());
        let bad = vec![0xff; 3];
        assert!(state.restore([(&0, &bad)]).is_err());
    }
}
