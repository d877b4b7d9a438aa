//! Input gates: one channel per producer subtask, read fairly, with watermark alignment and
//! aligned checkpoint barriers.
//!
//! Barrier alignment (Flink's aligned checkpoints): once a channel delivers barrier `n` it is
//! blocked, its later buffers wait in its queue (and, through credits, back-pressure its
//! producer), until every other live channel has delivered barrier `n` too. Then the gate
//! yields the barrier once and unblocks them all, so the task snapshots state that reflects
//! exactly the records before barrier `n` on every input.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::mpsc;

use super::transport::CreditReturn;
use super::{DataBuffer, NetBuffer, StreamEvent};
use crate::ids::CheckpointId;

/// One input channel: a local subpartition queue, or the receiving end of a remote channel
/// (which returns a credit to its producer for every buffer taken).
pub struct InputChannel {
    rx: mpsc::Receiver<NetBuffer>,
    credit: Option<CreditReturn>,
    finished: bool,
    watermark: u64,
    /// Delivered the barrier the gate is aligning on; not read until alignment completes.
    blocked: bool,
    /// The producer is gone and its replacement not yet connected (`taskmanager` failover):
    /// not read, and no barrier waits for it.
    paused: bool,
    /// The number of the next record expected (records are numbered per subpartition); a
    /// replacement producer replaying from a checkpoint resends some, which are dropped.
    next_seq: Option<u64>,
}

impl InputChannel {
    /// A channel reading a subpartition of a producer on this TaskManager.
    pub fn local(rx: mpsc::Receiver<NetBuffer>) -> Self {
        InputChannel {
            rx,
            credit: None,
            finished: false,
            watermark: 0,
            blocked: false,
            paused: false,
            next_seq: None,
        }
    }

    /// A channel not connected yet: not read, and no barrier waits for it, until `resume`.
    pub fn paused() -> Self {
        InputChannel {
            paused: true,
            ..InputChannel::local(mpsc::channel(1).1)
        }
    }

    /// A channel reading a remote producer, returning a credit for each buffer taken.
    pub fn remote(rx: mpsc::Receiver<NetBuffer>, credit: CreditReturn) -> Self {
        InputChannel {
            rx,
            credit: Some(credit),
            finished: false,
            watermark: 0,
            blocked: false,
            paused: false,
            next_seq: None,
        }
    }
}

impl InputChannel {
    /// How many of `data`'s first records this channel delivered already; moves the
    /// expectation past the buffer.
    fn sequence(&mut self, data: &DataBuffer) -> u32 {
        // Numbers come off the network: saturate rather than overflow on a garbled one.
        let end = data.seq.saturating_add(data.records as u64);
        let skip = match self.next_seq {
            Some(next) if next > data.seq => (next - data.seq).min(data.records as u64) as u32,
            _ => 0,
        };
        self.next_seq = Some(self.next_seq.map_or(end, |next| next.max(end)));
        skip
    }
}

/// What reading the gate produced.
#[derive(Debug)]
pub enum GateItem {
    /// A data buffer from a channel, and how many of its first records the channel already
    /// delivered (a replayed prefix, to be skipped).
    Data(usize, DataBuffer, u32),
    /// The minimum watermark over all channels advanced.
    Watermark(u64),
    /// Some channel reached its end (others go on).
    ChannelFinished(usize),
    /// Every channel has ended.
    End,
    /// A channel's producer went away without finishing.
    ChannelLost(usize),
    /// Every live channel delivered this checkpoint barrier.
    Barrier(CheckpointId),
}

/// The channels that may have something to read, in the order they became readable: the
/// gate polls only these (Flink's "available channels" queue), so a wake costs the same at
/// parallelism 1,000 as at 2. A channel is in the queue until a poll of it returns Pending,
/// which registers its own waker ([`ChannelWaker`]); a send to it then queues it again. A
/// blocked or paused channel leaves the queue and is queued again when it is unblocked or
/// resumed.
struct ReadyChannels {
    inner: Mutex<ReadyInner>,
}

struct ReadyInner {
    queue: VecDeque<usize>,
    queued: Vec<bool>,
    /// The gate's task, woken when a channel becomes readable.
    task: Option<Waker>,
}

impl ReadyChannels {
    /// Every one of `n` channels queued: each is polled once before anything is known.
    fn all(n: usize) -> Arc<Self> {
        Arc::new(ReadyChannels {
            inner: Mutex::new(ReadyInner {
                queue: (0..n).collect(),
                queued: vec![true; n],
                task: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `idx` (once) and wakes the gate's task.
    fn push(&self, idx: usize) {
        self.requeue(idx);
        let task = self.lock().task.take();
        if let Some(task) = task {
            task.wake();
        }
    }

    /// Queues `idx` (once) behind the others without waking anyone: the gate's task is the
    /// one running.
    fn requeue(&self, idx: usize) {
        let mut inner = self.lock();
        if !inner.queued[idx] {
            inner.queued[idx] = true;
            inner.queue.push_back(idx);
        }
    }

    /// Queues every channel (after an alignment unblocks them all).
    fn push_all(&self) {
        let task = {
            let mut inner = self.lock();
            for idx in 0..inner.queued.len() {
                if !inner.queued[idx] {
                    inner.queued[idx] = true;
                    inner.queue.push_back(idx);
                }
            }
            inner.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }

    /// The oldest readable channel; with none, `task` is woken by the next `push`.
    fn pop(&self, task: &Waker) -> Option<usize> {
        let mut inner = self.lock();
        let idx = inner.queue.pop_front();
        match idx {
            Some(idx) => inner.queued[idx] = false,
            None => {
                if !inner.task.as_ref().is_some_and(|t| t.will_wake(task)) {
                    inner.task = Some(task.clone());
                }
            }
        }
        idx
    }
}

/// The waker a channel's queue holds while the channel is empty: it queues the channel.
struct ChannelWaker {
    idx: usize,
    ready: Arc<ReadyChannels>,
}

impl Wake for ChannelWaker {
    fn wake(self: Arc<Self>) {
        self.ready.push(self.idx);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.idx);
    }
}

/// A task's input: its channels, read fairly, with the minimum watermark over them and
/// aligned checkpoint barriers (see the module).
pub struct InputGate {
    channels: Vec<InputChannel>,
    ready: Arc<ReadyChannels>,
    /// One per channel: the waker its queue is polled with.
    wakers: Vec<Waker>,
    watermark: u64,
    /// The checkpoint whose barrier some channels delivered and others not yet.
    aligning: Option<CheckpointId>,
    /// The newest barrier id seen: anything older is stale.
    newest: CheckpointId,
}

impl InputGate {
    /// A gate over `channels`, in the order of the task's input channels.
    pub fn new(channels: Vec<InputChannel>) -> Self {
        let ready = ReadyChannels::all(channels.len());
        let wakers = (0..channels.len())
            .map(|idx| {
                let ready = ready.clone();
                Waker::from(Arc::new(ChannelWaker { idx, ready }))
            })
            .collect();
        InputGate {
            channels,
            ready,
            wakers,
            watermark: 0,
            aligning: None,
            newest: CheckpointId(0),
        }
    }

    /// How many channels the gate has.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The next item, taking channels in the order they became readable and queueing a served
    /// channel behind the others, so no busy channel starves the rest.
    pub async fn next(&mut self) -> GateItem {
        loop {
            let (idx, buf) = poll_fn(|cx| self.poll_channels(cx)).await;
            let Some(idx) = idx else { return GateItem::End };
            match buf {
                None => return GateItem::ChannelLost(idx),
                Some(NetBuffer::Data(data)) => {
                    let skip = self.channels[idx].sequence(&data);
                    // A buffer that is all replay is dropped (its credit was returned).
                    if skip == 0 || skip < data.records {
                        return GateItem::Data(idx, data, skip);
                    }
                }
                Some(NetBuffer::Event(StreamEvent::EndOfPartition)) => {
                    self.channels[idx].finished = true;
                    self.channels[idx].watermark = u64::MAX;
                    return GateItem::ChannelFinished(idx);
                }
                Some(NetBuffer::Event(StreamEvent::Barrier(id))) => {
                    if let Some(aligned) = self.on_barrier(idx, id) {
                        return GateItem::Barrier(aligned);
                    }
                }
                Some(NetBuffer::Event(StreamEvent::Watermark(wm))) => {
                    let ch = &mut self.channels[idx];
                    ch.watermark = ch.watermark.max(wm);
                    if let Some(advanced) = self.advance_watermark() {
                        return GateItem::Watermark(advanced);
                    }
                }
            }
        }
    }

    /// The new gate watermark if the minimum over channels moved forward.
    pub fn advance_watermark(&mut self) -> Option<u64> {
        let min = self
            .channels
            .iter()
            .map(|c| c.watermark)
            .min()
            .unwrap_or(u64::MAX);
        (min > self.watermark).then(|| {
            self.watermark = min;
            min
        })
    }

    /// Blocks `channel` on barrier `id`; returns the checkpoint once every live channel has
    /// delivered its barrier. A newer barrier abandons an older alignment (that checkpoint can
    /// no longer complete: a producer started over); an older one is stale and ignored.
    fn on_barrier(&mut self, channel: usize, id: CheckpointId) -> Option<CheckpointId> {
        if self.aligning != Some(id) {
            if id <= self.newest {
                return None; // aligned already, or abandoned for a newer one
            }
            self.unblock_all();
            self.newest = id;
            self.aligning = Some(id);
        }
        self.channels[channel].blocked = true;
        self.alignment_done()
    }

    /// The aligned checkpoint, if every channel is blocked on it or finished.
    pub fn alignment_done(&mut self) -> Option<CheckpointId> {
        let id = self.aligning?;
        if self
            .channels
            .iter()
            .all(|c| c.blocked || c.finished || c.paused)
        {
            self.unblock_all();
            self.aligning = None;
            return Some(id);
        }
        None
    }

    /// The channel's producer is gone and will be replaced: stop reading it (dropping what it
    /// queued) until `resume`. An alignment in progress is abandoned: the failover aborted
    /// that checkpoint, and channels blocked on it must not wait for a barrier that will not
    /// come.
    pub fn pause(&mut self, channel: usize) {
        let ch = &mut self.channels[channel];
        ch.paused = true;
        ch.rx = mpsc::channel(1).1;
        ch.credit = None;
        self.unblock_all();
        self.aligning = None;
    }

    /// Reads `channel` from a new connection, keeping what the old one delivered: its
    /// watermark and record numbering. If the connection is to a replaced producer that never
    /// sends the barriers of checkpoints up to `stale_through` (those triggered before it was
    /// deployed: the failover aborted them), an alignment on one of them is abandoned, as on
    /// `pause`: the old channel may never have reported its loss (a partitioned producer's
    /// connection does not break). An alignment on a later checkpoint goes on: the replacement
    /// sends that barrier (its other barriers may have come before the reconnect did). A first
    /// connection (`None`) keeps it: its producer's barriers are all still to come.
    pub fn resume(
        &mut self,
        channel: usize,
        mut replacement: InputChannel,
        stale_through: Option<CheckpointId>,
    ) {
        let old = &self.channels[channel];
        replacement.watermark = old.watermark;
        replacement.next_seq = old.next_seq;
        self.channels[channel] = replacement;
        self.ready.push(channel);
        if self
            .aligning
            .is_some_and(|a| stale_through.is_some_and(|s| a <= s))
        {
            self.unblock_all();
            self.aligning = None;
        }
    }

    fn unblock_all(&mut self) {
        let mut any = false;
        for c in &mut self.channels {
            any |= std::mem::take(&mut c.blocked);
        }
        if any {
            self.ready.push_all();
        }
    }

    /// Whether every channel has reached its end.
    pub fn all_finished(&self) -> bool {
        self.channels.iter().all(|c| c.finished)
    }

    #[allow(clippy::type_complexity)]
    fn poll_channels(&mut self, cx: &mut Context<'_>) -> Poll<(Option<usize>, Option<NetBuffer>)> {
        while let Some(idx) = self.ready.pop(cx.waker()) {
            let ch = &mut self.channels[idx];
            // Finished for good; blocked and paused ones are queued again by `unblock_all`
            // and `resume`.
            if ch.finished || ch.blocked || ch.paused {
                continue;
            }
            let mut channel_cx = Context::from_waker(&self.wakers[idx]);
            if let Poll::Ready(buf) = ch.rx.poll_recv(&mut channel_cx) {
                if let (Some(credit), Some(_)) = (&ch.credit, &buf) {
                    credit.give(1);
                }
                // It may hold more: behind the others, as its queue will not wake it again.
                self.ready.requeue(idx);
                return Poll::Ready((Some(idx), buf));
            }
        }
        if self.all_finished() {
            return Poll::Ready((None, None));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(n: usize) -> (Vec<mpsc::Sender<NetBuffer>>, InputGate) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(16)).unzip();
        (
            txs,
            InputGate::new(rxs.into_iter().map(InputChannel::local).collect()),
        )
    }

    fn data(n: u8) -> NetBuffer {
        numbered(n, 0, 0)
    }

    /// A buffer whose payload is `n`, holding `records` records numbered from `seq`.
    fn numbered(n: u8, seq: u64, records: u32) -> NetBuffer {
        NetBuffer::Data(DataBuffer {
            bytes: bytes::Bytes::from(vec![n]),
            guard: crate::memory::MemoryAccount::default().buffer(1),
            seq,
            records,
        })
    }

    fn barrier(id: u64) -> NetBuffer {
        NetBuffer::Event(StreamEvent::Barrier(CheckpointId(id)))
    }

    async fn next_data(gate: &mut InputGate) -> (usize, u8) {
        match gate.next().await {
            GateItem::Data(ch, data, _) => (ch, data.bytes[0]),
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_blocked_channel_is_not_read_until_every_channel_delivered_the_barrier() {
        let (txs, mut gate) = gate(2);
        txs[0].send(barrier(1)).await.unwrap();
        txs[0].send(data(10)).await.unwrap();
        txs[1].send(data(20)).await.unwrap();
        txs[1].send(barrier(1)).await.unwrap();
        txs[1].send(data(21)).await.unwrap();
        // Channel 0's record after the barrier must wait; channel 1's record before it not.
        assert_eq!(next_data(&mut gate).await, (1, 20));
        assert!(matches!(
            gate.next().await,
            GateItem::Barrier(CheckpointId(1))
        ));
        let mut after = vec![next_data(&mut gate).await, next_data(&mut gate).await];
        after.sort();
        assert_eq!(after, vec![(0, 10), (1, 21)]);
    }

    #[tokio::test]
    async fn a_busy_channel_does_not_starve_the_others() {
        let (txs, mut gate) = gate(3);
        for n in [10, 11, 12] {
            txs[0].send(data(n)).await.unwrap();
        }
        txs[2].send(data(30)).await.unwrap();
        let mut read = Vec::new();
        for _ in 0..4 {
            read.push(next_data(&mut gate).await);
        }
        assert_eq!(read, [(0, 10), (2, 30), (0, 11), (0, 12)]);
    }

    #[tokio::test]
    async fn a_send_to_an_idle_channel_wakes_the_gate() {
        let (txs, mut gate) = gate(64);
        let reader = tokio::spawn(async move {
            let first = next_data(&mut gate).await;
            (first, next_data(&mut gate).await)
        });
        // Let the reader find every channel empty and wait.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        txs[41].send(data(41)).await.unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        txs[7].send(data(7)).await.unwrap();
        // A lost wake would leave the reader waiting for ever: bound it.
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), reader).await;
        assert_eq!(
            read.expect("the gate was never woken").unwrap(),
            ((41, 41), (7, 7))
        );
    }

    #[tokio::test]
    async fn a_finished_channel_does_not_hold_the_barrier_back() {
        let (txs, mut gate) = gate(2);
        txs[0].send(barrier(3)).await.unwrap();
        txs[1]
            .send(NetBuffer::Event(StreamEvent::EndOfPartition))
            .await
            .unwrap();
        assert!(matches!(gate.next().await, GateItem::ChannelFinished(1)));
        assert_eq!(gate.alignment_done(), Some(CheckpointId(3)));
    }

    #[tokio::test]
    async fn a_newer_barrier_abandons_the_old_alignment_and_stale_ones_are_ignored() {
        let (txs, mut gate) = gate(2);
        txs[0].send(barrier(1)).await.unwrap();
        txs[1].send(barrier(2)).await.unwrap();
        txs[1].send(barrier(1)).await.unwrap();
        txs[1].send(data(7)).await.unwrap();
        // 2 replaces 1 (channel 0 unblocked, now reads nothing), stale 1 on channel 1 would
        // only come after 2, which blocks channel 1; so only a barrier 2 on channel 0 aligns.
        txs[0].send(barrier(2)).await.unwrap();
        assert!(matches!(
            gate.next().await,
            GateItem::Barrier(CheckpointId(2))
        ));
        assert_eq!(next_data(&mut gate).await, (1, 7));
    }

    #[tokio::test]
    async fn a_paused_channel_resumes_on_a_replacement_and_drops_the_replayed_prefix() {
        let (txs, mut gate) = gate(2);
        txs[0].send(numbered(1, 0, 10)).await.unwrap();
        match gate.next().await {
            GateItem::Data(0, _, 0) => {}
            other => panic!("{other:?}"),
        }
        // Channel 0's producer dies; channel 1 aligns alone while 0 is paused.
        gate.pause(0);
        txs[1].send(barrier(1)).await.unwrap();
        assert!(matches!(
            gate.next().await,
            GateItem::Barrier(CheckpointId(1))
        ));
        // The replacement replays from record 4: 4..10 are dropped, 10..12 delivered.
        let (tx, rx) = mpsc::channel(16);
        gate.resume(0, InputChannel::local(rx), Some(CheckpointId(1)));
        tx.send(numbered(2, 4, 6)).await.unwrap();
        tx.send(numbered(3, 8, 4)).await.unwrap();
        match gate.next().await {
            GateItem::Data(0, data, skip) => assert_eq!((data.bytes[0], skip), (3, 2)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn replacing_a_silent_channel_abandons_the_alignment_that_waited_for_it() {
        // Channel 0's producer is partitioned away: it never reports its loss and never sends
        // barrier 5, which channel 1 delivered and now blocks on.
        let (txs, mut gate) = gate(2);
        txs[1].send(barrier(5)).await.unwrap();
        txs[1].send(data(9)).await.unwrap();
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), gate.next()).await;
        assert!(blocked.is_err(), "channel 1 is blocked on barrier 5");
        let (tx, rx) = mpsc::channel(16);
        // Checkpoint 5 was triggered before the replacement was deployed.
        gate.resume(0, InputChannel::local(rx), Some(CheckpointId(5)));
        tx.send(data(1)).await.unwrap();
        let mut got = vec![next_data(&mut gate).await, next_data(&mut gate).await];
        got.sort();
        assert_eq!(got, vec![(0, 1), (1, 9)]);
    }

    #[tokio::test]
    async fn a_reconnect_that_comes_after_a_newer_checkpoint_began_keeps_its_alignment() {
        // Channel 0's producer was replaced before checkpoint 6 was triggered, but the news
        // reaches the consumer only after channel 1 delivered barrier 6: the replacement sends
        // barrier 6 too, and the checkpoint must complete, not be abandoned.
        let (txs, mut gate) = gate(2);
        txs[1].send(barrier(6)).await.unwrap();
        txs[1].send(data(9)).await.unwrap();
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), gate.next()).await;
        assert!(blocked.is_err(), "channel 1 is blocked on barrier 6");
        let (tx, rx) = mpsc::channel(16);
        gate.resume(0, InputChannel::local(rx), Some(CheckpointId(5)));
        tx.send(data(1)).await.unwrap();
        tx.send(barrier(6)).await.unwrap();
        assert_eq!(next_data(&mut gate).await, (0, 1));
        assert!(matches!(
            gate.next().await,
            GateItem::Barrier(CheckpointId(6))
        ));
        assert_eq!(next_data(&mut gate).await, (1, 9));
    }

    #[tokio::test]
    async fn a_garbled_record_number_does_not_overflow() {
        let (txs, mut gate) = gate(1);
        txs[0].send(numbered(1, u64::MAX - 1, 10)).await.unwrap();
        txs[0].send(numbered(2, 3, 1)).await.unwrap();
        assert!(matches!(gate.next().await, GateItem::Data(0, _, 0)));
        // Everything numbered below the saturated expectation counts as already delivered.
        let next = tokio::time::timeout(std::time::Duration::from_millis(50), gate.next()).await;
        assert!(next.is_err(), "the second buffer is dropped as a replay");
    }
}
