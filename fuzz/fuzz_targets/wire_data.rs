//! The data plane from arbitrary bytes: the first byte picks what the rest is read as.
//!
//! - 0: one `DataMsg` frame (`rill::network::transport::DataMsg`, what both ends of a remote
//!   channel `recv`), decoded as the receiver does; a `Buffer`'s records then go through the
//!   record decoding below.
//! - 1: a data buffer (records encoded back to back), decoded as records of the type the next
//!   byte picks, the way the consumer's record decoder does.
//! - 2: a byte stream of `DataMsg` frames through a `FrameReader`.
//! - 3: a sequence of buffers and events (drawn with `arbitrary`) through an `InputGate`,
//!   read the way a consumer task reads it, checked for the gate's promises: no record number
//!   delivered twice on a channel, watermarks and aligned barriers only ever advance, and a
//!   readable channel's queue is never left unread (a lost wake-up).
//!
//! The record decoder itself (`network::decoder::TypedDecoder`) is `pub(crate)`, so mode 1
//! runs a copy of its loop (`decode_records`, the same bincode options) over the record types
//! the built-in jobs send; the real one needs a public constructor to be fuzzed directly.
//!
//! Run: `cargo xtask fuzz wire_data --time 60`.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::future::Future;
use std::task::{Context, Poll, Waker};

use arbitrary::{Arbitrary, Unstructured};
use bincode::Options;
use libfuzzer_sys::fuzz_target;
use rill::chain::Origin;
use rill::connectors::log::LogRecord;
use rill::ids::{CheckpointId, EdgeId, ExecutionAttemptId, JobId, VertexId};
use rill::jobs::{AdEvent, AdStats, Event, KeyCount, WordCount};
use rill::memory::MemoryAccount;
use rill::network::transport::DataMsg;
use rill::network::{
    DataBuffer, GateItem, InputChannel, InputGate, NetBuffer, StreamEvent, SubpartitionKey,
};
use rill::rpc::frame::{FrameReader, DEFAULT_MAX_FRAME};
use rill::rpc::RpcError;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use common::wire;

fuzz_target!(init: common::write_seeds(seeds), |data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Some(DataMsg::Buffer { data, .. }) = wire::<DataMsg>(bytes, DEFAULT_MAX_FRAME) {
                for kind in 0..RECORD_TYPES {
                    records_as(kind, &data);
                }
            }
        }
        1 => {
            if let Some((&kind, buf)) = bytes.split_first() {
                records_as(kind, buf);
            }
        }
        2 => frames(bytes),
        _ => gate(bytes),
    }
});

/// Every `DataMsg`, buffers of every record type, a frame stream.
fn seeds() -> Vec<(u8, Vec<u8>)> {
    use common::{enc, framed};
    let attempt = ExecutionAttemptId {
        vertex: VertexId(2),
        subtask: 1,
        attempt: 0,
    };
    let origin = Origin {
        partition: 1,
        offset: 42,
    };
    let mut buffers: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut push = |kind: u8, write: &dyn Fn(&mut Vec<u8>)| {
        let mut buf = Vec::new();
        write(&mut buf);
        buffers.push((kind, buf));
    };
    fn put<T: Serialize>(buf: &mut Vec<u8>, item: &T) {
        bincode::serialize_into(buf, item).expect("a record encodes");
    }
    push(0, &|b| {
        (0..3).for_each(|i| put(b, &(format!("word{i}"), i as u64)))
    });
    push(1, &|b| put(b, &"a line of words".to_string()));
    push(2, &|b| (0..4u64).for_each(|i| put(b, &i)));
    push(3, &|b| {
        put(
            b,
            &Event {
                key: 7,
                payload: 9,
                origin,
            },
        )
    });
    push(4, &|b| {
        put(
            b,
            &KeyCount {
                key: 7,
                count: 2,
                origin,
            },
        )
    });
    push(5, &|b| {
        put(
            b,
            &WordCount {
                word: "fox".into(),
                count: 3,
                origin,
            },
        )
    });
    push(6, &|b| {
        put(
            b,
            &AdEvent {
                ad: 1,
                click: true,
                ts: 1000,
                origin,
            },
        )
    });
    push(7, &|b| {
        put(
            b,
            &AdStats {
                ad: 1,
                window_start: 0,
                impressions: 5,
                clicks: 1,
            },
        )
    });
    push(8, &|b| {
        let record = LogRecord {
            partition: 0,
            offset: 3,
            key: 4,
            timestamp_ms: 5,
            payload: bytes::Bytes::from_static(b"payload!"),
        };
        put(b, &record)
    });
    let key = SubpartitionKey {
        job: JobId(1),
        producer: attempt,
        edge: EdgeId(0),
        index: 1,
    };
    let msgs = [
        DataMsg::Request {
            channel: 1,
            key,
            consumer: attempt,
            credit: 2,
            grant: rill::network::ClaimGrant([7; 32]),
        },
        DataMsg::Credit { channel: 1, n: 1 },
        DataMsg::Cancel { channel: 1 },
        DataMsg::Buffer {
            channel: 1,
            data: bytes::Bytes::from(buffers[0].1.clone()),
            seq: 10,
            records: 3,
        },
        DataMsg::Event {
            channel: 1,
            event: StreamEvent::Watermark(100),
        },
        DataMsg::Event {
            channel: 1,
            event: StreamEvent::Barrier(CheckpointId(2)),
        },
        DataMsg::Event {
            channel: 1,
            event: StreamEvent::EndOfPartition,
        },
        DataMsg::ChannelError {
            channel: 1,
            reason: "gone".into(),
        },
    ];
    let mut seeds: Vec<(u8, Vec<u8>)> = msgs.iter().map(|m| (0, enc(m))).collect();
    for (kind, buf) in buffers {
        let mut bytes = vec![kind];
        bytes.extend(buf);
        seeds.push((1, bytes));
    }
    let stream = msgs.iter().flat_map(|m| framed(&enc(m))).collect();
    seeds.push((2, stream));
    seeds
}

// ---- records ------------------------------------------------------------------------------

const RECORD_TYPES: u8 = 9;

/// The records of `buf` as the `kind`th record type.
fn records_as(kind: u8, buf: &[u8]) {
    match kind % RECORD_TYPES {
        0 => records::<(String, u64)>(buf),
        1 => records::<String>(buf),
        2 => records::<u64>(buf),
        3 => records::<Event>(buf),
        4 => records::<KeyCount>(buf),
        5 => records::<WordCount>(buf),
        6 => records::<AdEvent>(buf),
        7 => records::<AdStats>(buf),
        _ => records::<LogRecord>(buf),
    }
}

/// A copy of `TypedDecoder::decode` (network/decoder.rs): the writer's encoding (bincode,
/// fixed-int), the bytes left as the size limit, records until the buffer is empty.
fn decode_records<T: DeserializeOwned>(mut buf: &[u8]) -> (Vec<T>, Result<(), String>) {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let options = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .allow_trailing_bytes()
            .with_limit(buf.len() as u64);
        match options.deserialize_from(&mut buf) {
            Ok(item) => out.push(item),
            Err(e) => return (out, Err(e.to_string())),
        }
    }
    (out, Ok(()))
}

/// Decodes `buf`; the records decoded (all of a good buffer, those before the bad one of a
/// malformed buffer) must encode as the writer encodes them (`bincode::serialize_into`,
/// network/writer.rs) into a buffer that decodes to as many records and encodes the same.
fn records<T: DeserializeOwned + Serialize>(buf: &[u8]) {
    let (decoded, result) = decode_records::<T>(buf);
    let encode = |items: &[T]| {
        let mut out = Vec::new();
        for item in items {
            bincode::serialize_into(&mut out, item).expect("a decoded record encodes");
        }
        out
    };
    let first = encode(&decoded);
    if result.is_ok() {
        assert!(first.len() <= buf.len(), "records grew on re-encoding");
    }
    let (again, result) = decode_records::<T>(&first);
    assert!(
        result.is_ok(),
        "re-encoded records do not decode: {result:?}"
    );
    assert_eq!(
        again.len(),
        decoded.len(),
        "re-encoded records decode to another count"
    );
    assert_eq!(encode(&again), first, "records do not re-encode the same");
}

// ---- frames -------------------------------------------------------------------------------

/// A data connection's byte stream, read as `DataClient` and `DataServer` read it.
fn frames(bytes: &[u8]) {
    common::runtime().block_on(async {
        let mut reader = FrameReader::new(bytes, 64 * 1024);
        for _ in 0..64 {
            match reader.recv::<DataMsg>().await {
                Ok(Some(msg)) => common::round_trip(&msg),
                Ok(None) => break,
                Err(RpcError::Malformed(_)) => continue,
                Err(e) => {
                    if let RpcError::FrameTooLarge { len, max } = e {
                        assert!(len > max, "FrameTooLarge for {len} bytes under {max}");
                    }
                    assert!(
                        reader.recv_bytes().await.is_err(),
                        "a failed reader read on"
                    );
                    break;
                }
            }
        }
    });
}

// ---- the input gate -----------------------------------------------------------------------

const CHANNELS: usize = 4;
const QUEUE: usize = 64;

#[derive(Arbitrary, Debug)]
enum GateOp {
    /// A buffer of `records` records numbered from `seq` (a replayed prefix when `seq` is
    /// behind what the channel delivered).
    Buffer {
        ch: u8,
        seq: u16,
        records: u16,
    },
    /// The same with any numbers, up to the end of the range (saturation).
    FarBuffer {
        ch: u8,
        seq: u64,
        records: u32,
    },
    Watermark {
        ch: u8,
        wm: u16,
    },
    Barrier {
        ch: u8,
        id: u8,
    },
    End {
        ch: u8,
    },
    /// The producer goes without finishing: its sender is dropped.
    Lose {
        ch: u8,
    },
    /// The channel's producer is being replaced (`InputGate::pause`).
    Pause {
        ch: u8,
    },
    /// A new connection for the channel (`InputGate::resume`).
    Resume {
        ch: u8,
        stale_through: Option<u8>,
    },
    /// Read the gate until it has nothing to give.
    Drain,
}

/// What the driver knows of a channel: its sender (none once lost), and whether the gate may
/// legitimately leave items in its queue (paused, blocked on a barrier, finished).
struct Channel {
    tx: Option<mpsc::Sender<NetBuffer>>,
    paused: bool,
    sent_barrier: bool,
    sent_end: bool,
    /// The end of the record numbers delivered so far: the next delivered must start there or later.
    delivered: Option<u64>,
    finished: bool,
}

struct Oracle {
    watermark: u64,
    barrier: u64,
}

fn gate(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let n = u.int_in_range(1..=CHANNELS).unwrap_or(1);
    let Ok(ops) = Vec::<GateOp>::arbitrary_take_rest(u) else {
        return;
    };
    let account = MemoryAccount::default();
    let mut channels = Vec::new();
    let mut inputs = Vec::new();
    for _ in 0..n {
        let (tx, rx) = mpsc::channel(QUEUE);
        channels.push(Channel::new(tx));
        inputs.push(InputChannel::local(rx));
    }
    let mut gate = InputGate::new(inputs);
    let mut oracle = Oracle {
        watermark: 0,
        barrier: 0,
    };
    for op in ops.into_iter().take(256) {
        match op {
            GateOp::Buffer { ch, seq, records } => send(
                &mut channels,
                ch,
                data(&account, seq.into(), records.into()),
            ),
            GateOp::FarBuffer { ch, seq, records } => {
                send(&mut channels, ch, data(&account, seq, records))
            }
            GateOp::Watermark { ch, wm } => send(
                &mut channels,
                ch,
                NetBuffer::Event(StreamEvent::Watermark(wm.into())),
            ),
            GateOp::Barrier { ch, id } => {
                let idx = ch as usize % channels.len();
                channels[idx].sent_barrier = true;
                let event = NetBuffer::Event(StreamEvent::Barrier(CheckpointId(id.into())));
                send(&mut channels, ch, event)
            }
            GateOp::End { ch } => {
                let idx = ch as usize % channels.len();
                channels[idx].sent_end = true;
                let event = NetBuffer::Event(StreamEvent::EndOfPartition);
                send(&mut channels, ch, event)
            }
            GateOp::Lose { ch } => channels[ch as usize % n].tx = None,
            GateOp::Pause { ch } => {
                let idx = ch as usize % n;
                gate.pause(idx);
                channels[idx].paused = true;
            }
            GateOp::Resume { ch, stale_through } => {
                let idx = ch as usize % n;
                let (tx, rx) = mpsc::channel(QUEUE);
                gate.resume(
                    idx,
                    InputChannel::local(rx),
                    stale_through.map(|s| CheckpointId(s.into())),
                );
                // The record numbering carries over; the rest is a new connection's.
                let delivered = channels[idx].delivered;
                channels[idx] = Channel {
                    delivered,
                    ..Channel::new(tx)
                };
            }
            GateOp::Drain => drain(&mut gate, &mut channels, &mut oracle),
        }
    }
    drain(&mut gate, &mut channels, &mut oracle);
}

impl Channel {
    fn new(tx: mpsc::Sender<NetBuffer>) -> Self {
        Channel {
            tx: Some(tx),
            paused: false,
            sent_barrier: false,
            sent_end: false,
            delivered: None,
            finished: false,
        }
    }
}

fn data(account: &MemoryAccount, seq: u64, records: u32) -> NetBuffer {
    NetBuffer::Data(DataBuffer {
        bytes: bytes::Bytes::new(),
        guard: account.buffer(1),
        seq,
        records,
    })
}

/// Queues `buf` on channel `ch`, if it is connected and has room (a producer sends only
/// against credit: a full queue is one it would not send to).
fn send(channels: &mut [Channel], ch: u8, buf: NetBuffer) {
    let idx = ch as usize % channels.len();
    if let Some(tx) = &channels[idx].tx {
        let _ = tx.try_send(buf);
    }
}

/// Reads the gate until it is pending (or ends), checking every item, then checks that no
/// channel the gate should be reading was left with a queue.
fn drain(gate: &mut InputGate, channels: &mut [Channel], oracle: &mut Oracle) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut pending = false;
    for _ in 0..4096 {
        let item = {
            let mut next = std::pin::pin!(gate.next());
            match next.as_mut().poll(&mut cx) {
                Poll::Ready(item) => item,
                Poll::Pending => {
                    pending = true;
                    break;
                }
            }
        };
        match item {
            GateItem::Data(idx, buf, skip) => {
                assert!(
                    skip == 0 || skip < buf.records,
                    "a buffer all replay was delivered"
                );
                let start = buf.seq.saturating_add(skip.into());
                let end = buf.seq.saturating_add(buf.records.into());
                let ch = &mut channels[idx];
                if skip < buf.records {
                    if let Some(delivered) = ch.delivered {
                        assert!(
                            start >= delivered,
                            "channel {idx} delivers records from {start} after delivering up to {delivered}"
                        );
                    }
                    ch.delivered = Some(ch.delivered.map_or(end, |d| d.max(end)));
                }
            }
            GateItem::Watermark(wm) => {
                assert!(
                    wm > oracle.watermark,
                    "watermark {wm} after {}",
                    oracle.watermark
                );
                oracle.watermark = wm;
            }
            GateItem::Barrier(id) => {
                assert!(
                    id.0 > oracle.barrier,
                    "barrier {} after {}",
                    id.0,
                    oracle.barrier
                );
                oracle.barrier = id.0;
            }
            GateItem::ChannelFinished(idx) => {
                assert!(!channels[idx].finished, "channel {idx} finished twice");
                channels[idx].finished = true;
            }
            GateItem::ChannelLost(idx) => {
                // What a consumer that survives producer loss does (consumer_task.rs).
                gate.pause(idx);
                channels[idx].paused = true;
            }
            GateItem::End => {
                assert!(
                    channels.iter().all(|c| c.finished),
                    "End before every channel finished"
                );
                return;
            }
        }
    }
    if !pending {
        return;
    }
    // Pending: every channel the gate must read has an empty queue.
    for (idx, ch) in channels.iter().enumerate() {
        let Some(tx) = &ch.tx else { continue };
        if ch.paused || ch.sent_barrier || ch.sent_end {
            continue;
        }
        assert_eq!(
            tx.capacity(),
            tx.max_capacity(),
            "channel {idx} has {} unread buffers but the gate is pending",
            tx.max_capacity() - tx.capacity()
        );
    }
}
