//! The services' wire messages and checkpoint state from arbitrary bytes: the first byte picks
//! what the rest is read as.
//!
//! Requests and replies travel as `rpc::service`'s `Tagged { id: u64, body }`, a private type;
//! bincode encodes a struct as the tuple of its fields, so `(u64, T)` is the same frame and is
//! what is decoded here (`frame::decode`, as `serve_connection` and `ServiceClient` do).
//!
//! - 0, 1: the sink store's `SinkBatch` of `SinkRequest`s (server side) and its reply
//!   (`BatchReply`: a `Result<(), SinkRefusal>` per write, or why none was taken).
//! - 2, 3: the log server's `ReadRequest` and its reply (`Result<RecordBatch, String>`).
//! - 4: the checkpoint store's reply (`Result<Option<Bytes>, StoreError>`). Its request type,
//!   `state::remote::StoreRequest`, is private: not reachable from outside the crate.
//! - 5, 6: checkpoint state through `state::snapshot::decode`: a `CompletedCheckpoint` (what
//!   the JobManager writes to the store), and a subtask's `TaskSnapshot`, `TaskRestore`,
//!   `OperatorState` (what acknowledgements and deployments carry).
//! - 7: a key group's bytes restored into `KeyedState` (the built-in jobs' key and value
//!   types), whose memory accounting must come back to zero when the state is dropped.
//!
//! Run: `cargo xtask fuzz wire_services --time 60`.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rill::chain::Origin;
use rill::connectors::log_service::{ReadRequest, RecordBatch};
use rill::connectors::sink_service::{SinkBatch, SinkRefusal, SinkRequest};
use rill::connectors::write_grant::WriteGrant;
use rill::connectors::{BatchEntry, Fenced};
use rill::ids::{CheckpointId, JobId};
use rill::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rill::memory::MemoryAccount;
use rill::rpc::frame::DEFAULT_MAX_FRAME;
use rill::state::snapshot;
use rill::state::{KeyedState, OperatorState, StoreError, TaskRestore, TaskSnapshot};
use serde::{de::DeserializeOwned, Serialize};

use common::wire;

const MAX: usize = DEFAULT_MAX_FRAME;

fuzz_target!(init: common::write_seeds(seeds), |data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 8 {
        0 => {
            let _ = wire::<(u64, SinkBatch)>(bytes, MAX);
            let _ = wire::<SinkRequest>(bytes, MAX);
        }
        1 => {
            let _ = wire::<(u64, Result<Vec<Result<(), SinkRefusal>>, String>)>(bytes, MAX);
        }
        2 => {
            if let Some((_, request)) = wire::<(u64, ReadRequest)>(bytes, MAX) {
                // The server caps what it reads by its own limit, whatever `max` says.
                let _ = (request.topic.len(), request.partition, request.offset, request.max);
            }
        }
        3 => {
            if let Some((_, Ok(batch))) = wire::<(u64, Result<RecordBatch, String>)>(bytes, MAX) {
                let _ = (batch.len(), batch.is_empty());
            }
        }
        4 => {
            let _ = wire::<(u64, Result<Option<Bytes>, StoreError>)>(bytes, MAX);
        }
        5 => {
            if let Some(checkpoint) = state::<CompletedCheckpoint>(bytes) {
                let _ = checkpoint.bytes();
            }
        }
        6 => {
            if let Some(snapshot) = state::<TaskSnapshot>(bytes) {
                let _ = snapshot.bytes();
            }
            let _ = state::<TaskRestore>(bytes);
            if let Some(op) = state::<OperatorState>(bytes) {
                let _ = op.bytes();
            }
        }
        _ => {
            if let Some((&which, group)) = bytes.split_first() {
                match which % 3 {
                    0 => keyed::<u64, u64>(group),
                    1 => keyed::<String, u64>(group),
                    _ => keyed::<(u64, u64), u64>(group),
                }
            }
        }
    }
});

// Seeds only: the layouts of the private `SinkRequest` fields and `RecordBatch` columns (a
// seed that no longer matches them only starts the fuzzer off worse).
#[derive(Serialize)]
struct SinkRequestSeed {
    job: JobId,
    sink: String,
    subtask: u32,
    attempt: u32,
    seq: u64,
    grant: WriteGrant,
    op: WireOpSeed,
}

#[derive(Serialize)]
#[allow(dead_code)]
enum WireOpSeed {
    Open {
        restored: Option<CheckpointId>,
    },
    Append(WireBatchSeed),
    Stage {
        checkpoint: CheckpointId,
        batch: WireBatchSeed,
    },
    Commit {
        checkpoint: CheckpointId,
    },
}

#[derive(Serialize)]
struct WireBatchSeed {
    payloads: Bytes,
    entries: Vec<BatchEntry>,
}

#[derive(Serialize)]
struct RecordBatchSeed {
    keys: Vec<u64>,
    timestamps: Vec<u64>,
    payload_ends: Vec<u32>,
    payloads: Bytes,
}

fn seeds() -> Vec<(u8, Vec<u8>)> {
    use common::enc;
    let batch = || WireBatchSeed {
        payloads: Bytes::from_static(b"abcdef"),
        entries: vec![
            BatchEntry::new(
                Some(Origin {
                    partition: 0,
                    offset: 1,
                }),
                3,
            ),
            BatchEntry::new(None, 6),
        ],
    };
    let ops = [
        WireOpSeed::Open {
            restored: Some(CheckpointId(2)),
        },
        WireOpSeed::Append(batch()),
        WireOpSeed::Stage {
            checkpoint: CheckpointId(3),
            batch: batch(),
        },
        WireOpSeed::Commit {
            checkpoint: CheckpointId(3),
        },
    ];
    let mut seeds = Vec::new();
    let mut batch_of_all = Vec::new();
    for (seq, op) in ops.into_iter().enumerate() {
        let request = SinkRequestSeed {
            job: JobId(1),
            sink: "sink".into(),
            subtask: 0,
            attempt: 1,
            seq: seq as u64 + 1,
            grant: WriteGrant([seq as u8; 32]),
            op,
        };
        seeds.push((0, enc(&(seq as u64, vec![&request]))));
        batch_of_all.push(request);
    }
    // A `SinkBatch` is its writes (a struct of one field encodes as that field).
    seeds.push((0, enc(&(9u64, batch_of_all))));
    seeds.push((1, enc(&(1u64, Ok::<_, String>(vec![Ok::<(), SinkRefusal>(())])))));
    seeds.push((1, enc(&(4u64, Err::<Vec<Result<(), SinkRefusal>>, _>("journal".to_string())))));
    seeds.push((
        1,
        enc(&(
            2u64,
            Ok::<_, String>(vec![
                Ok(()),
                Err::<(), _>(SinkRefusal::Ungranted),
                Err(SinkRefusal::Fenced(Fenced {
                    attempt: 1,
                    current: 2,
                })),
            ]),
        )),
    ));
    let read = ReadRequest {
        topic: "source".into(),
        partition: 1,
        offset: 100,
        max: 1024,
    };
    seeds.push((2, enc(&(3u64, read))));
    let columns = RecordBatchSeed {
        keys: vec![1, 2, 3],
        timestamps: vec![10, 20, 30],
        payload_ends: vec![2, 4, 9],
        payloads: Bytes::from_static(b"aabbccccc"),
    };
    seeds.push((3, enc(&(4u64, Ok::<_, String>(columns)))));
    seeds.push((
        3,
        enc(&(5u64, Err::<RecordBatchSeed, _>("no topic".to_string()))),
    ));
    let got: Result<Option<Bytes>, StoreError> = Ok(Some(Bytes::from_static(b"checkpoint")));
    seeds.push((4, enc(&(6u64, got))));
    let missing: Result<Option<Bytes>, StoreError> = Err(StoreError::NotFound {
        job: JobId(1),
        checkpoint: CheckpointId(9),
    });
    seeds.push((4, enc(&(7u64, missing))));
    let op = OperatorState {
        keyed: BTreeMap::from([(1, vec![1, 2]), (64, vec![3])]),
        operator: Some(vec![4, 5, 6]),
    };
    let task = TaskSnapshot {
        operators: BTreeMap::from([(0, op.clone()), (3, OperatorState::default())]),
        outputs: BTreeMap::from([(0, vec![5, 6, 7])]),
    };
    let checkpoint = CompletedCheckpoint {
        id: CheckpointId(4),
        tasks: BTreeMap::from([((0, 0), task.clone()), ((1, 1), TaskSnapshot::default())]),
    };
    let encode = |v: &dyn Fn() -> Result<Vec<u8>, String>| v().expect("a seed encodes");
    seeds.push((5, encode(&|| snapshot::encode(&checkpoint))));
    seeds.push((6, encode(&|| snapshot::encode(&task))));
    seeds.push((6, encode(&|| snapshot::encode(&op))));
    let restore = TaskRestore {
        checkpoint: CheckpointId(4),
        snapshot: task.clone(),
        input_age: std::time::Duration::from_millis(250),
    };
    seeds.push((6, encode(&|| snapshot::encode(&restore))));
    let mut group = vec![0u8];
    group.extend(encode(&|| snapshot::encode(&vec![(1u64, 2u64), (3, 4)])));
    seeds.push((7, group));
    let mut group = vec![1u8];
    group.extend(encode(&|| {
        snapshot::encode(&vec![("fox".to_string(), 2u64)])
    }));
    seeds.push((7, group));
    let mut group = vec![2u8];
    group.extend(encode(&|| snapshot::encode(&vec![((1u64, 1000u64), 5u64)])));
    seeds.push((7, group));
    seeds
}

/// `snapshot::decode` of arbitrary bytes never panics; what decodes survives a round trip
/// through `snapshot::encode`.
fn state<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = snapshot::decode(bytes).ok()?;
    let first = snapshot::encode(&value).expect("decoded state encodes");
    let again: T = snapshot::decode(&first).unwrap_or_else(|e| {
        panic!(
            "{} re-encoded does not decode: {e}",
            std::any::type_name::<T>()
        )
    });
    let second = snapshot::encode(&again).expect("decoded state encodes");
    assert_eq!(
        first,
        second,
        "{}: state does not re-encode the same",
        std::any::type_name::<T>()
    );
    Some(value)
}

/// Restores one key group from `group` (as a restored subtask does, state/mod.rs); on success
/// the state snapshots and restores again to as many entries. Either way, dropping the state
/// releases exactly the memory it accounted.
fn keyed<K, V>(group: &[u8])
where
    K: std::hash::Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    let memory = MemoryAccount::default();
    {
        let mut state = KeyedState::<K, V>::new(memory.clone());
        let groups = BTreeMap::from([(0u32, group.to_vec())]);
        if state.restore(&groups).is_ok() {
            let snapshot = state.snapshot(128).expect("restored state snapshots");
            let mut again = KeyedState::<K, V>::new(memory.clone());
            again
                .restore(&snapshot)
                .expect("a snapshot of restored state restores");
            assert_eq!(
                again.len(),
                state.len(),
                "entries lost in a snapshot round trip"
            );
        }
    }
    assert_eq!(
        memory.report().state_bytes,
        0,
        "dropped keyed state left memory accounted"
    );
}
