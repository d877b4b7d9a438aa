//! Input gates: one channel per producer subtask, read fairly, with watermark alignment.

use std::future::poll_fn;
use std::task::Poll;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::transport::CreditReturn;
use super::{NetBuffer, StreamEvent};
use crate::taskmanager::BufferGuard;

/// One input channel: a local subpartition queue, or the receiving end of a remote channel
/// (which returns a credit to its producer for every buffer taken).
pub struct InputChannel {
    rx: mpsc::Receiver<NetBuffer>,
    credit: Option<CreditReturn>,
    finished: bool,
    watermark: u64,
}

impl InputChannel {
    pub fn local(rx: mpsc::Receiver<NetBuffer>) -> Self {
        InputChannel {
            rx,
            credit: None,
            finished: false,
            watermark: 0,
        }
    }

    pub fn remote(rx: mpsc::Receiver<NetBuffer>, credit: CreditReturn) -> Self {
        InputChannel {
            rx,
            credit: Some(credit),
            finished: false,
            watermark: 0,
        }
    }
}

/// What reading the gate produced.
#[derive(Debug)]
pub enum GateItem {
    /// A data buffer from a channel.
    Data(usize, Bytes, BufferGuard),
    /// The minimum watermark over all channels advanced.
    Watermark(u64),
    /// Some channel reached its end (others go on).
    ChannelFinished(usize),
    /// Every channel has ended.
    End,
    /// A channel's producer went away without finishing.
    ChannelLost(usize),
}

pub struct InputGate {
    channels: Vec<InputChannel>,
    next: usize,
    watermark: u64,
}

impl InputGate {
    pub fn new(channels: Vec<InputChannel>) -> Self {
        InputGate {
            channels,
            next: 0,
            watermark: 0,
        }
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The next item, polling channels round robin from the one after the last served, so no
    /// busy channel starves the others.
    pub async fn next(&mut self) -> GateItem {
        loop {
            let (idx, buf) = poll_fn(|cx| self.poll_channels(cx)).await;
            let Some(idx) = idx else { return GateItem::End };
            match buf {
                None => return GateItem::ChannelLost(idx),
                Some(NetBuffer::Data(bytes, guard)) => return GateItem::Data(idx, bytes, guard),
                Some(NetBuffer::Event(StreamEvent::EndOfPartition)) => {
                    self.channels[idx].finished = true;
                    self.channels[idx].watermark = u64::MAX;
                    return GateItem::ChannelFinished(idx);
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

    pub fn all_finished(&self) -> bool {
        self.channels.iter().all(|c| c.finished)
    }

    #[allow(clippy::type_complexity)]
    fn poll_channels(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<(Option<usize>, Option<NetBuffer>)> {
        let n = self.channels.len();
        if self.all_finished() {
            return Poll::Ready((None, None));
        }
        for k in 0..n {
            let idx = (self.next + k) % n;
            let ch = &mut self.channels[idx];
            if ch.finished {
                continue;
            }
            if let Poll::Ready(buf) = ch.rx.poll_recv(cx) {
                if let (Some(credit), Some(_)) = (&ch.credit, &buf) {
                    credit.give(1);
                }
                self.next = idx + 1;
                return Poll::Ready((Some(idx), buf));
            }
        }
        Poll::Pending
    }
}
