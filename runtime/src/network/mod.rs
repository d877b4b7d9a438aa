//! The data plane: result partitions with one subpartition per consumer, input gates with one
//! channel per producer, local (in-process) and remote (TCP, multiplexed per TaskManager pair)
//! channels, and credit-based flow control on the remote ones.
//!
//! A producer task serializes records into buffers (`writer`), hands full buffers to bounded
//! subpartition queues (`result_partition`, registered in `partition` for consumers to claim)
//! and blocks when they are full: that is back-pressure. A
//! local consumer reads the queue directly; a remote one is served by the producer's data
//! server (`transport`), which sends a buffer only against a credit the consumer granted, so a
//! slow consumer never blocks the shared connection and memory stays bounded.

pub mod claim;
pub mod decoder;
pub mod gate;
pub mod partition;
pub mod result_partition;
pub mod transport;
pub mod writer;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::CheckpointId;
use crate::memory::BufferGuard;

/// An in-band event on a channel, ordered with the data buffers around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// Every record the producer sends after this has a timestamp >= the watermark.
    Watermark(u64),
    /// The producer finished; nothing follows on this channel.
    EndOfPartition,
    /// Checkpoint barrier: what came before belongs to this checkpoint.
    Barrier(CheckpointId),
}

/// What travels through a subpartition or channel: serialized records, or one event.
#[derive(Debug)]
pub enum NetBuffer {
    /// Serialized records.
    Data(DataBuffer),
    /// An in-band event (watermark, barrier, end of partition).
    Event(StreamEvent),
}

/// Records encoded back to back, with the memory they hold accounted until dropped.
///
/// Records are numbered per subpartition (`seq` is the first one's number), so a consumer
/// that reconnects to a producer replaying from a checkpoint can drop what it already has
/// (see `InputGate`): a restarted source numbers its replay exactly as the first time.
#[derive(Debug)]
pub struct DataBuffer {
    /// The records, encoded back to back.
    pub bytes: Bytes,
    /// Keeps the buffer's bytes accounted to its TaskManager until the buffer is dropped.
    pub guard: BufferGuard,
    /// The number of the first record within its subpartition.
    pub seq: u64,
    /// Records in the buffer.
    pub records: u32,
}

/// How records are routed from producer subtasks to consumer subtasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionerKind {
    /// Not chosen by the user: forward when parallelisms match, rebalance otherwise (Flink's rule).
    Default,
    /// Subtask i to subtask i; requires equal parallelism. Chained when possible.
    Forward,
    /// Round robin over all consumers.
    Rebalance,
    /// By key group of the record's key.
    Hash,
    /// Every record to every consumer.
    Broadcast,
}

impl PartitionerKind {
    /// Pointwise edges connect producer i only to consumer i.
    pub fn is_pointwise(self) -> bool {
        matches!(self, PartitionerKind::Forward)
    }
}

/// Whether the consumer reads while the producer writes, or only a finished partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultType {
    /// The consumer reads while the producer writes (streaming).
    Pipelined,
    /// The consumer starts only once the producer finished (batch exchanges); it splits pipelined
    /// regions.
    Blocking,
}

pub use claim::{ClaimCheck, ClaimGrant, ClaimKey, ClaimKeys};
pub use gate::{GateItem, InputChannel, InputGate};
pub use partition::{PartitionRegistry, SubpartitionKey};
pub use result_partition::{DownstreamGone, ResultPartitions, SubpartitionListener};
pub use transport::{DataClient, DataServer};
