//! Remote channels: one TCP connection per (consumer TaskManager, producer TaskManager) pair,
//! with every remote channel between them multiplexed over it, and credit-based flow control.
//!
//! The consumer opens a channel with a `Request` carrying its initial credit (the buffers it
//! has reserved for that channel). The producer's data server forwards one buffer per credit
//! and then waits; the consumer grants a credit back each time its task takes a buffer. So a
//! slow consumer stalls only its own channels, the shared connection never blocks, and the
//! memory held on both sides is bounded by the credits.
//!
//! A request carries the JobManager's grant for its consumer ([`super::claim`]): the data
//! server serves a subpartition only to the consumer attempt, on the TaskManager, that the
//! JobManager deployed to read it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::claim::{ClaimCheck, ClaimGrant};
use super::{DataBuffer, NetBuffer, PartitionRegistry, StreamEvent, SubpartitionKey};
use crate::buggify::{self, Point};
use crate::ids::ExecutionAttemptId;
use crate::memory::MemoryAccount;
use crate::rpc::admission::{Admission, Ticket};
use crate::rpc::frame::spawn_writer;
use crate::rpc::frame::RpcError;
use crate::rpc::handshake::{clip, Credentials, PeerRole};
use crate::rpc::{admit, connect};
use crate::util::{lock, AbortOnDrop, TaskSet};

/// Messages of the data-plane protocol, both directions.
#[derive(Debug, Serialize, Deserialize)]
pub enum DataMsg {
    /// Consumer -> producer: open `channel` reading `key`, with `credit` buffers granted.
    Request {
        /// The channel's number on this connection, chosen by the consumer.
        channel: u32,
        /// The subpartition to read.
        key: SubpartitionKey,
        /// The consumer attempt: the one the grant names.
        consumer: ExecutionAttemptId,
        /// Buffers the consumer has reserved: the producer may send that many.
        credit: u32,
        /// The JobManager's permission for `consumer`, on the connecting TaskManager, to read
        /// `key` (from the consumer's `InputLocation`).
        grant: ClaimGrant,
    },
    /// Consumer -> producer: `n` more buffers may be sent on `channel`.
    Credit {
        /// The channel.
        channel: u32,
        /// Buffers granted.
        n: u32,
    },
    /// Consumer -> producer: the channel is no longer read.
    Cancel {
        /// The channel.
        channel: u32,
    },
    /// Producer -> consumer: one data buffer of `records` records, the first numbered `seq`.
    Buffer {
        /// The channel.
        channel: u32,
        /// The encoded records.
        data: Bytes,
        /// The sequence number of the buffer's first record within its subpartition.
        seq: u64,
        /// Records in the buffer.
        records: u32,
    },
    /// Producer -> consumer: one in-band event.
    Event {
        /// The channel.
        channel: u32,
        /// The event (a watermark, a barrier, the end of the partition).
        event: StreamEvent,
    },
    /// Producer -> consumer: the channel failed (unknown partition, producer gone).
    ChannelError {
        /// The channel.
        channel: u32,
        /// What went wrong, for the consumer's error.
        reason: String,
    },
}

/// Settings shared by both ends of the data plane.
#[derive(Clone)]
pub struct DataPlaneConfig {
    /// What both ends present in the handshake.
    pub credentials: Arc<Credentials>,
    /// The largest frame either end accepts (`rpc.max-frame-size`).
    pub max_frame: usize,
    /// How long a request may wait for its producer to register the partition.
    pub request_timeout: Duration,
    /// How long a connection's handshake may take.
    pub handshake_timeout: Duration,
    /// The server's check of the grants that requests carry (its TaskManager's claim key).
    pub claims: ClaimCheck,
}

/// The producer side: serves subpartitions of this TaskManager to remote consumers.
pub struct DataServer;

impl DataServer {
    /// Accepts data connections until the returned task is aborted.
    pub fn spawn(
        listener: TcpListener,
        registry: PartitionRegistry,
        config: DataPlaneConfig,
        name: String,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            // Connections die with the server (a crashed TaskManager serves nothing).
            let mut connections = TaskSet::default();
            let admission = Admission::default();
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let Some(place) = admission.try_enter(peer.ip(), "data server") else {
                            continue;
                        };
                        let (registry, config, name) =
                            (registry.clone(), config.clone(), name.clone());
                        connections.spawn(async move {
                            if let Err(e) = serve_connection(stream, place, registry, config).await {
                                tracing::warn!(tm = %name, peer = %peer, error = %e, "data connection closed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(tm = %name, error = %e, "data server accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }
}

async fn serve_connection(
    stream: TcpStream,
    place: Ticket,
    registry: PartitionRegistry,
    config: DataPlaneConfig,
) -> Result<(), RpcError> {
    let (hello, mut reader, writer) = admit(
        stream,
        place,
        &config.credentials,
        &[PeerRole::DataPlane],
        config.max_frame,
        config.handshake_timeout,
    )
    .await?;
    // Bounded: a consumer that grants credit and never reads makes the forwarders wait here
    // instead of piling its buffers up in this process.
    let (out, out_rx) = mpsc::channel::<DataMsg>(OUT_QUEUE);
    let _writer = AbortOnDrop(spawn_writer(writer, out_rx));
    // The TaskManager the connection authenticated as (with TLS, its certificate's name):
    // grants name the consumer's TaskManager, so they admit only from there.
    let peer: Arc<str> = Arc::from(hello.name);
    // Refused claims are logged at warning level once per connection, not once per request.
    let warned = Arc::new(AtomicBool::new(false));
    // Each channel's forwarder and its credits; dropping an entry aborts the forwarder.
    let mut forwarders: BTreeMap<u32, (Arc<Semaphore>, AbortOnDrop<()>)> = BTreeMap::new();
    while let Some(msg) = reader.recv::<DataMsg>().await? {
        match msg {
            DataMsg::Request { channel, .. }
                if forwarders.len() >= MAX_CHANNELS && !forwarders.contains_key(&channel) =>
            {
                let reason = format!("more than {MAX_CHANNELS} channels on one connection");
                tracing::warn!(channel, "{reason}: request refused");
                if out
                    .try_send(DataMsg::ChannelError { channel, reason })
                    .is_err()
                {
                    return Err(RpcError::Malformed(
                        "channel requests while not reading".into(),
                    ));
                }
            }
            DataMsg::Request {
                channel,
                key,
                consumer,
                credit,
                grant,
            } => {
                tracing::debug!(%consumer, producer = %key.producer, sub = key.index, "partition requested");
                let credits = Arc::new(Semaphore::new(credit.min(MAX_CREDIT) as usize));
                let claim = Claim {
                    channel,
                    key,
                    consumer,
                    grant,
                    peer: peer.clone(),
                    warned: warned.clone(),
                };
                let task = tokio::spawn(forward(
                    claim,
                    registry.clone(),
                    config.clone(),
                    credits.clone(),
                    out.clone(),
                ));
                forwarders.insert(channel, (credits, AbortOnDrop(task)));
            }
            DataMsg::Credit { channel, n } => {
                if let Some((credits, _)) = forwarders.get(&channel) {
                    // A channel's credit never exceeds what a consumer may reserve for it.
                    let room = (MAX_CREDIT as usize).saturating_sub(credits.available_permits());
                    credits.add_permits((n as usize).min(room));
                }
            }
            DataMsg::Cancel { channel } => {
                forwarders.remove(&channel);
            }
            other => {
                return Err(RpcError::Malformed(format!(
                    "unexpected message from a consumer: {}",
                    kind_of(&other)
                )))
            }
        }
    }
    Ok(())
}

fn kind_of(msg: &DataMsg) -> &'static str {
    match msg {
        DataMsg::Request { .. } => "Request",
        DataMsg::Credit { .. } => "Credit",
        DataMsg::Cancel { .. } => "Cancel",
        DataMsg::Buffer { .. } => "Buffer",
        DataMsg::Event { .. } => "Event",
        DataMsg::ChannelError { .. } => "ChannelError",
    }
}

/// One channel's request, as the data server received it.
struct Claim {
    channel: u32,
    key: SubpartitionKey,
    consumer: ExecutionAttemptId,
    grant: ClaimGrant,
    /// The TaskManager the connection authenticated as.
    peer: Arc<str>,
    /// Whether a refusal on this connection was logged as a warning already.
    warned: Arc<AtomicBool>,
}

/// Sends one subpartition to a remote consumer, one buffer per credit, if its grant admits it.
async fn forward(
    claim: Claim,
    registry: PartitionRegistry,
    config: DataPlaneConfig,
    credits: Arc<Semaphore>,
    out: mpsc::Sender<DataMsg>,
) {
    let Claim {
        channel,
        key,
        consumer,
        grant,
        peer,
        warned,
    } = claim;
    let admitted = config
        .claims
        .admits(config.request_timeout, &grant, &key, &peer, consumer)
        .await;
    if !admitted {
        // Refused before the registry is asked: a peer without a grant learns nothing of which
        // partitions exist, and leaves no waiter behind.
        let peer = clip(&peer);
        if warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(%peer, %consumer, producer = %key.producer, sub = key.index, "subpartition request without a grant for it: refused");
        } else {
            tracing::warn!(%peer, %consumer, producer = %key.producer, sub = key.index, "subpartition request without a grant for it: refused (further refusals on this connection at debug level)");
        }
        let reason = format!(
            "no grant from the JobManager for {consumer} on {peer} to read partition {} of {}",
            key.index, key.producer
        );
        let _ = out.send(DataMsg::ChannelError { channel, reason }).await;
        return;
    }
    let request_timeout = config.request_timeout;
    let Ok(Some(rx)) =
        tokio::time::timeout(request_timeout, registry.take_for(key, consumer)).await
    else {
        let reason = format!("partition {} of {} not found", key.index, key.producer);
        let _ = out.send(DataMsg::ChannelError { channel, reason }).await;
        return;
    };
    let revoked = registry.watch_claim(key, consumer);
    tokio::select! {
        biased;
        _ = revoked.notified() => {
            tracing::info!(producer = %key.producer, subpartition = key.index, "remote consumer replaced; its channel is closed");
            let reason = "consumer replaced".to_string();
            let _ = out.send(DataMsg::ChannelError { channel, reason }).await;
        }
        _ = serve_channel(channel, key, rx, credits, &out) => {}
    }
    registry.unwatch(&key, &revoked);
}

/// Forwards one claimed subpartition, one buffer per credit, until it ends.
async fn serve_channel(
    channel: u32,
    key: SubpartitionKey,
    mut rx: mpsc::Receiver<NetBuffer>,
    credits: Arc<Semaphore>,
    out: &mpsc::Sender<DataMsg>,
) {
    loop {
        let Ok(permit) = credits.acquire().await else {
            return;
        };
        permit.forget();
        let msg = match rx.recv().await {
            Some(NetBuffer::Data(b)) => DataMsg::Buffer {
                channel,
                data: b.bytes,
                seq: b.seq,
                records: b.records,
            },
            Some(NetBuffer::Event(event)) => DataMsg::Event { channel, event },
            None => DataMsg::ChannelError {
                channel,
                reason: format!("producer {} ended without finishing", key.producer),
            },
        };
        let last = matches!(
            msg,
            DataMsg::ChannelError { .. }
                | DataMsg::Event {
                    event: StreamEvent::EndOfPartition,
                    ..
                }
        );
        if out.send(msg).await.is_err() || last {
            return;
        }
    }
}

/// The connection to one producer TaskManager, once made; its lock is held while connecting
/// so concurrent requests to that peer share one connection.
type ConnSlot = Arc<tokio::sync::Mutex<Option<Arc<ClientConn>>>>;

/// Upper bound on the credit one channel may announce (and the queue it reserves).
const MAX_CREDIT: u32 = 1024;
/// Channels one consumer connection may hold open (each a forwarder task, waiting for its
/// producer until the request timeout): far more than one TaskManager's consumers read from
/// one producer TaskManager (slots x producers x edges), far fewer than exhaust memory.
const MAX_CHANNELS: usize = 1 << 14;
/// Messages queued for one consumer connection's writer.
const OUT_QUEUE: usize = 256;

/// Returns credits for one remote channel; dropping it cancels the channel at the producer and
/// forgets it locally.
pub struct CreditReturn {
    out: mpsc::UnboundedSender<DataMsg>,
    channels: ChannelMap,
    channel: u32,
    /// While the buffer pool is dry (buggify): the credits held back, and the task that
    /// grants them together when it ends.
    dry: Arc<Mutex<Option<u32>>>,
    refill: Mutex<Option<AbortOnDrop<()>>>,
}

impl std::fmt::Debug for CreditReturn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CreditReturn(channel {})", self.channel)
    }
}

impl CreditReturn {
    fn new(out: mpsc::UnboundedSender<DataMsg>, channels: ChannelMap, channel: u32) -> Self {
        CreditReturn {
            out,
            channels,
            channel,
            dry: Arc::default(),
            refill: Mutex::new(None),
        }
    }

    /// Grants the producer `n` more buffers on this channel (or, while the pool is dry, once
    /// it is not).
    pub fn give(&self, n: u32) {
        let mut dry = lock(&self.dry);
        if let Some(held) = dry.as_mut() {
            *held += n;
            return;
        }
        // Buggify: the pool runs dry for a while; what is given meanwhile is held back.
        if let Some(spell) = buggify::delay(Point::BuffersRunDry) {
            *dry = Some(n);
            let (held, out, channel) = (self.dry.clone(), self.out.clone(), self.channel);
            *lock(&self.refill) = Some(AbortOnDrop(tokio::spawn(async move {
                tokio::time::sleep(spell).await;
                if let Some(n) = lock(&held).take() {
                    let _ = out.send(DataMsg::Credit { channel, n });
                }
            })));
            return;
        }
        let _ = self.out.send(DataMsg::Credit {
            channel: self.channel,
            n,
        });
    }
}

impl Drop for CreditReturn {
    fn drop(&mut self) {
        if let Some(map) = lock(&self.channels).as_mut() {
            map.remove(&self.channel);
        }
        let _ = self.out.send(DataMsg::Cancel {
            channel: self.channel,
        });
    }
}

/// The open channels of one connection; `None` once the connection is gone, so nothing is
/// ever registered on a dead connection and left waiting.
type ChannelMap = Arc<Mutex<Option<BTreeMap<u32, mpsc::Sender<NetBuffer>>>>>;

struct ClientConn {
    out: mpsc::UnboundedSender<DataMsg>,
    channels: ChannelMap,
    next_channel: AtomicU32,
    _tasks: (AbortOnDrop<()>, AbortOnDrop<()>),
}

impl ClientConn {
    fn is_open(&self) -> bool {
        !self.out.is_closed() && lock(&self.channels).is_some()
    }
}

/// The consumer side: opens remote channels, one connection per producer TaskManager.
#[derive(Clone)]
pub struct DataClient {
    /// One slot per producer address: a connection being made to one peer (which may hang
    /// until a partition heals) holds only that peer's slot, never the others'.
    conns: Arc<Mutex<BTreeMap<String, ConnSlot>>>,
    config: DataPlaneConfig,
    memory: MemoryAccount,
    name: String,
}

impl DataClient {
    /// A client that reserves its channels' buffers from `memory`; `name` is this TaskManager's,
    /// for the handshake and logs.
    pub fn new(config: DataPlaneConfig, memory: MemoryAccount, name: String) -> Self {
        DataClient {
            conns: Default::default(),
            config,
            memory,
            name,
        }
    }

    /// Opens a channel to subpartition `key` at the producer TaskManager `name` at `addr`
    /// (an empty name: any TaskManager of the cluster).
    pub async fn request(
        &self,
        (addr, name): (&str, &str),
        key: SubpartitionKey,
        (consumer, grant): (ExecutionAttemptId, ClaimGrant),
        credit: u32,
    ) -> Result<(mpsc::Receiver<NetBuffer>, CreditReturn), RpcError> {
        let conn = self.connection(addr, name).await?;
        let channel = conn.next_channel.fetch_add(1, Ordering::Relaxed);
        let credit = credit.clamp(1, MAX_CREDIT);
        let (tx, rx) = mpsc::channel(credit as usize);
        lock(&conn.channels)
            .as_mut()
            .ok_or(RpcError::Closed)?
            .insert(channel, tx);
        let credits = CreditReturn::new(conn.out.clone(), conn.channels.clone(), channel);
        conn.out
            .send(DataMsg::Request {
                channel,
                key,
                consumer,
                credit,
                grant,
            })
            .map_err(|_| RpcError::Closed)?;
        Ok((rx, credits))
    }

    /// Drops the connection to `addr`, if any: the process there is new (it registered with
    /// the JobManager), so the connection reached its predecessor, which may have died or been
    /// cut off without the connection ever breaking here. Channels on it see it gone.
    pub fn forget(&self, addr: &str) {
        let Some(slot) = lock(&self.conns).remove(addr) else {
            return;
        };
        // Out of the map at once, so nothing new uses it; its channels are closed once whoever
        // holds the slot (a request on it, at worst a connect) lets go.
        tokio::spawn(async move {
            if let Some(conn) = slot.lock().await.take() {
                // Dropping the senders tells every channel on it that its producer is gone.
                lock(&conn.channels).take();
            }
        });
    }

    /// Closes every connection: the TaskManager lost the JobManager and cancelled all its
    /// tasks, so nothing reads them, and a connection that lived through a partition may hold
    /// a backlog that would delay the requests of its next tasks.
    pub async fn reset(&self) {
        lock(&self.conns).clear();
    }

    /// The open connection to `addr`, or a new one. The peer's slot is locked while connecting
    /// so concurrent requests to it share one connection; connect and handshake are bounded by
    /// the handshake timeout. An unreachable peer delays only requests to itself.
    async fn connection(&self, addr: &str, name: &str) -> Result<Arc<ClientConn>, RpcError> {
        let slot = lock(&self.conns)
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(conn.clone());
        }
        *slot = None;
        let conn = tokio::time::timeout(self.config.handshake_timeout, self.connect(addr, name))
            .await
            .map_err(|_| RpcError::Timeout("data connection"))??;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self, addr: &str, name: &str) -> Result<Arc<ClientConn>, RpcError> {
        let server = match name {
            "" => "taskmanager".to_owned(),
            name => format!("{name}.taskmanager"),
        };
        let (mut reader, writer) = connect(
            addr,
            &server,
            &self.config.credentials,
            (PeerRole::DataPlane, &self.name),
            self.config.max_frame,
            self.config.handshake_timeout,
        )
        .await?;
        let (out, out_rx) = mpsc::unbounded_channel::<DataMsg>();
        let channels: ChannelMap = Arc::new(Mutex::new(Some(BTreeMap::new())));
        let writer_task = AbortOnDrop(spawn_writer(writer, out_rx));
        let (chans, memory) = (channels.clone(), self.memory.clone());
        let (name, peer) = (self.name.clone(), addr.to_string());
        let reader_task = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = read_channels(&mut reader, &chans, &memory).await {
                tracing::warn!(tm = %name, peer = %peer, error = %e, "data connection lost");
            }
            // Dropping the senders tells every channel on this connection that it is gone.
            lock(&chans).take();
        }));
        let next_channel = AtomicU32::new(0);
        Ok(Arc::new(ClientConn {
            out,
            channels,
            next_channel,
            _tasks: (writer_task, reader_task),
        }))
    }
}

/// Routes buffers and events from a producer to the channels they belong to.
async fn read_channels<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut crate::rpc::frame::FrameReader<R>,
    channels: &ChannelMap,
    memory: &MemoryAccount,
) -> Result<(), RpcError> {
    while let Some(msg) = reader.recv::<DataMsg>().await? {
        let (channel, item) = match msg {
            DataMsg::Buffer {
                channel,
                data,
                seq,
                records,
            } => {
                let guard = memory.buffer(data.len() as u64);
                let buffer = DataBuffer {
                    bytes: data,
                    guard,
                    seq,
                    records,
                };
                (channel, NetBuffer::Data(buffer))
            }
            DataMsg::Event { channel, event } => (channel, NetBuffer::Event(event)),
            DataMsg::ChannelError { channel, reason } => {
                tracing::warn!(channel, %reason, "remote channel failed");
                if let Some(map) = lock(channels).as_mut() {
                    map.remove(&channel);
                }
                continue;
            }
            other => {
                let kind = kind_of(&other);
                return Err(RpcError::Malformed(format!(
                    "unexpected message from a producer: {kind}"
                )));
            }
        };
        let mut guard = lock(channels);
        let Some(map) = guard.as_mut() else {
            return Err(RpcError::Closed);
        };
        let Some(tx) = map.get(&channel) else {
            continue;
        };
        match tx.try_send(item) {
            Ok(()) => {}
            // The consumer stopped reading: forget the channel.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                map.remove(&channel);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(RpcError::Malformed(format!(
                    "producer sent beyond its credit on channel {channel}"
                )));
            }
        }
    }
    Ok(())
}
