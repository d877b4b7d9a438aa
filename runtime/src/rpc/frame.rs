//! Length-prefixed frames carrying bincode-encoded serde messages.
//!
//! Wire format: a 4-byte big-endian length, then that many payload bytes
//! ([`LengthDelimitedCodec`]). Control-plane payloads are bincode with the options in
//! `bincode_options`; the data plane sends raw frames through [`FrameWriter::send_bytes`].
//!
//! Robustness rules (ARCHITECTURE.md, `rpc/`): a frame above the configured limit is refused
//! before its payload is buffered, decoding arbitrary bytes never panics and never allocates
//! more than the frame it came from, and every write is flushed (ARCHITECTURE.md, determinism rule 6:
//! madsim buffers until flush).

use std::io;

use bincode::Options;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};

use super::handshake::HandshakeError;

/// Default frame-size limit (16 MiB); the configured value should normally come from config.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Errors of the control-plane transport: framing, encoding, handshake, peer behaviour.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The underlying stream failed (also: a truncated frame at EOF).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A frame declared (or, when sending, had) a length above the limit. When receiving,
    /// `len` is the length the peer declared in the frame header.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame arrived intact but its payload did not decode as the expected message
    /// (or a message could not be encoded).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The handshake was refused, by us or by the peer.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer closed the connection while we were waiting for a handshake message or reply.
    #[error("connection closed by peer")]
    Closed,
    /// A bounded wait ran out; the string says what we were waiting for.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// The one bincode configuration of the wire format, shared by [`encode`] and [`decode`] so
/// both sides always agree.
///
/// - fixint, little endian: sizes are predictable and the handshake can read the magic and
///   version from fixed offsets before decoding the rest (see `handshake::check_prefix`).
/// - `limit`: bincode checks every declared string/byte length against it before allocating,
///   so a hostile length prefix cannot trigger a huge allocation.
/// - trailing bytes are rejected: a frame is exactly one message, anything else is malformed.
///
/// Message types must not contain sequences of zero-sized values (e.g. `Vec<()>`): those
/// consume no input, so a hostile length prefix would make decoding loop for a very long time.
fn bincode_options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// Encodes a message in the wire format. Failure means the type cannot be bincode-encoded
/// (a programming error, e.g. a sequence of unknown length); it is reported as `Malformed`.
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, RpcError> {
    bincode_options(u64::MAX)
        .serialize(msg)
        .map_err(|e| RpcError::Malformed(format!("cannot encode message: {e}")))
}

/// Decodes exactly one message from `bytes`, refusing input longer than `max`.
/// Never panics on arbitrary input; decode failures and trailing bytes are `Malformed`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, RpcError> {
    if bytes.len() > max {
        return Err(RpcError::FrameTooLarge {
            len: bytes.len(),
            max,
        });
    }
    bincode_options(max as u64)
        .deserialize(bytes)
        .map_err(|e| RpcError::Malformed(e.to_string()))
}

/// The framing codec: 4-byte big-endian length prefix, frames up to `max_frame` bytes.
fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Splits a duplex stream (TCP, madsim TCP, `tokio::io::duplex`) into a frame reader and
/// writer, so that receiving and sending can live in different tasks.
pub fn framed<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    max_frame: usize,
) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>) {
    let (r, w) = tokio::io::split(stream);
    (
        FrameReader::new(r, max_frame),
        FrameWriter::new(w, max_frame),
    )
}

/// Receiving half: yields whole frames, decoded or raw.
///
/// `recv` and `recv_bytes` are cancel-safe (partial frames stay buffered), so they can be
/// used inside `tokio::select!`.
pub struct FrameReader<R> {
    inner: FramedRead<R, LengthDelimitedCodec>,
    max_frame: usize,
    /// Set after a transport error. The codec then reports end-of-stream, which must not be
    /// mistaken for a clean close, so later calls fail instead.
    failed: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a byte stream; frames whose declared length exceeds `max_frame` are refused.
    pub fn new(r: R, max_frame: usize) -> Self {
        let inner = FramedRead::new(r, codec(max_frame));
        FrameReader {
            inner,
            max_frame,
            failed: false,
        }
    }

    /// The current frame-size limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Changes the frame-size limit for frames whose header has not been read yet. The
    /// handshake lowers it while the peer is unauthenticated.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.inner.decoder_mut().set_max_frame_length(max_frame);
        self.max_frame = max_frame;
    }

    /// Receives and decodes one message. `Ok(None)` means the peer closed cleanly between
    /// frames. A `Malformed` error leaves the stream in sync; any other error makes this
    /// reader unusable (the connection should be closed).
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, RpcError> {
        match self.recv_bytes().await? {
            Some(frame) => decode(&frame, self.max_frame).map(Some),
            None => Ok(None),
        }
    }

    /// Receives one raw frame (payload without the length prefix), for the data plane.
    /// `Ok(None)` on clean EOF between frames; a frame cut short by EOF is an `Io` error.
    pub async fn recv_bytes(&mut self) -> Result<Option<BytesMut>, RpcError> {
        if self.failed {
            return Err(
                io::Error::new(io::ErrorKind::NotConnected, "frame stream failed earlier").into(),
            );
        }
        match self.inner.next().await {
            None => Ok(None),
            Some(Ok(frame)) => Ok(Some(frame)),
            // TLS reports a peer that closed without close_notify (killed, or a plain close
            // as every rill node does) as an unexpected end: for a framed stream that is the
            // peer gone, as with TCP. A frame cut short by it is still an error of the codec.
            Some(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Some(Err(e)) => {
                self.failed = true;
                Err(self.classify(e))
            }
        }
    }

    /// Turns the codec's "frame size too big" error into `FrameTooLarge`, reading the declared
    /// length from the header still at the front of the read buffer (the codec rejects the
    /// header without consuming it). Other errors stay `Io`.
    fn classify(&self, e: io::Error) -> RpcError {
        let too_big = e.kind() == io::ErrorKind::InvalidData
            && e.get_ref()
                .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
        if !too_big {
            return RpcError::Io(e);
        }
        let declared = self
            .inner
            .read_buffer()
            .first_chunk::<4>()
            .map(|h| u32::from_be_bytes(*h) as usize);
        // Fallback (not expected): report the smallest length that would have been refused.
        let len = declared.unwrap_or(self.max_frame.saturating_add(1));
        RpcError::FrameTooLarge {
            len,
            max: self.max_frame,
        }
    }
}

/// Sending half: every send writes one whole frame and flushes.
///
/// A send cancelled midway leaves the rest of its frame buffered in the writer; it goes out
/// with the next send, so the stream never carries a torn frame while the writer is in use.
pub struct FrameWriter<W> {
    inner: FramedWrite<W, LengthDelimitedCodec>,
    max_frame: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a byte stream; frames above `max_frame` bytes are refused before anything is written.
    pub fn new(w: W, max_frame: usize) -> Self {
        FrameWriter {
            inner: FramedWrite::new(w, codec(max_frame)),
            max_frame,
        }
    }

    /// The frame-size limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Encodes `msg` and sends it as one frame, flushed.
    pub async fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), RpcError> {
        let payload = encode(msg)?;
        self.send_bytes(Bytes::from(payload)).await
    }

    /// Sends one raw frame, flushed (madsim delivers nothing until flush).
    pub async fn send_bytes(&mut self, frame: Bytes) -> Result<(), RpcError> {
        self.check_size(&frame)?;
        // `SinkExt::send` = feed + flush.
        self.inner.send(frame).await.map_err(RpcError::from)
    }

    /// Encodes `msg` and buffers it as one frame, not flushed: `flush` sends what was fed.
    pub async fn feed<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), RpcError> {
        let frame = Bytes::from(encode(msg)?);
        self.check_size(&frame)?;
        self.inner.feed(frame).await.map_err(RpcError::from)
    }

    /// Sends every frame fed so far.
    pub async fn flush(&mut self) -> Result<(), RpcError> {
        SinkExt::<Bytes>::flush(&mut self.inner)
            .await
            .map_err(RpcError::from)
    }

    fn check_size(&self, frame: &Bytes) -> Result<(), RpcError> {
        if frame.len() > self.max_frame {
            return Err(RpcError::FrameTooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        Ok(())
    }
}

/// At most this many queued messages go out in one flush: enough to batch a producer's burst
/// of buffers to one peer, few enough that the first is not held back long.
const WRITE_BATCH: usize = 64;

/// Spawns the task that owns a connection's write half: it sends every queued message, in
/// order, until the queue's senders are gone or a write fails. What is queued when it wakes
/// goes out in one flush (up to `WRITE_BATCH` = 64 messages): one write, one TCP segment train,
/// instead of one per message, as Netty's flush consolidation does for Flink. With an
/// unbounded queue, senders never wait on the network and what bounds the queue is the
/// protocol above (heartbeats); where a peer decides how much is queued (replies to its
/// requests, buffers it granted credit for), the queue is a bounded `mpsc::Receiver` and its
/// senders wait while the peer does not read.
pub fn spawn_writer<W, T, Q>(
    mut writer: FrameWriter<W>,
    mut queue: Q,
) -> tokio::task::JoinHandle<()>
where
    W: AsyncWrite + Unpin + Send + 'static,
    FrameWriter<W>: Send,
    T: Serialize + Send + Sync + 'static,
    Q: WriteQueue<T>,
{
    tokio::spawn(async move {
        while let Some(msg) = queue.next().await {
            if let Err(e) = write_batch(&mut writer, &mut queue, msg).await {
                tracing::debug!(error = %e, "connection writer stopped");
                break;
            }
        }
    })
}

/// The queue a connection's writer task drains: tokio's unbounded or bounded receiver.
pub trait WriteQueue<T>: Send + 'static {
    /// The next message, waiting for one; `None` once every sender is gone.
    fn next(&mut self) -> impl std::future::Future<Output = Option<T>> + Send;
    /// A message already queued, without waiting.
    fn ready(&mut self) -> Option<T>;
}

impl<T: Send + 'static> WriteQueue<T> for tokio::sync::mpsc::UnboundedReceiver<T> {
    fn next(&mut self) -> impl std::future::Future<Output = Option<T>> + Send {
        self.recv()
    }
    fn ready(&mut self) -> Option<T> {
        self.try_recv().ok()
    }
}

impl<T: Send + 'static> WriteQueue<T> for tokio::sync::mpsc::Receiver<T> {
    fn next(&mut self) -> impl std::future::Future<Output = Option<T>> + Send {
        self.recv()
    }
    fn ready(&mut self) -> Option<T> {
        self.try_recv().ok()
    }
}

/// Feeds `first` and whatever else is queued (up to [`WRITE_BATCH`]), then flushes.
async fn write_batch<W, T, Q>(
    writer: &mut FrameWriter<W>,
    queue: &mut Q,
    first: T,
) -> Result<(), RpcError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
    Q: WriteQueue<T>,
{
    writer.feed(&first).await?;
    for _ in 1..WRITE_BATCH {
        let Some(msg) = queue.ready() else { break };
        writer.feed(&msg).await?;
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::handshake::HelloReply;
    use serde::Deserialize;
    use tokio::io::{duplex, AsyncWriteExt};

    const MAX: usize = 1024;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Msg {
        id: u64,
        name: String,
        data: Vec<u8>,
    }

    fn msg(id: u64) -> Msg {
        Msg {
            id,
            name: format!("m{id}"),
            data: vec![id as u8; 3],
        }
    }

    /// Length prefix + payload, as the codec would write it.
    fn raw_frame(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// Deterministic pseudo-random bytes (xorshift), no RNG dependency needed.
    fn garbage(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[tokio::test]
    async fn the_writer_task_sends_queued_messages_in_order_across_batches() {
        let (a, b) = duplex(1024 * 1024);
        let mut r = FrameReader::new(b, MAX);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // More than one batch is queued before the writer first runs.
        let n = WRITE_BATCH as u64 * 2 + 5;
        for id in 0..n {
            tx.send(msg(id)).unwrap();
        }
        let writer = spawn_writer(FrameWriter::new(a, MAX), rx);
        for id in 0..n {
            assert_eq!(r.recv::<Msg>().await.unwrap(), Some(msg(id)));
        }
        tx.send(msg(n)).unwrap();
        assert_eq!(r.recv::<Msg>().await.unwrap(), Some(msg(n)));
        drop(tx);
        writer.await.unwrap();
        assert!(r.recv::<Msg>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn round_trip_then_clean_eof() {
        let (a, b) = duplex(64 * 1024);
        let mut w = FrameWriter::new(a, MAX);
        let mut r = FrameReader::new(b, MAX);
        w.send(&msg(7)).await.unwrap();
        drop(w);
        assert_eq!(r.recv::<Msg>().await.unwrap(), Some(msg(7)));
        assert!(r.recv::<Msg>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn framed_split_round_trip() {
        let (a, b) = duplex(64 * 1024);
        let (_ra, mut wa) = framed(a, MAX);
        let (mut rb, _wb) = framed(b, MAX);
        wa.send_bytes(Bytes::from_static(b"raw")).await.unwrap();
        wa.send(&msg(1)).await.unwrap();
        assert_eq!(&rb.recv_bytes().await.unwrap().unwrap()[..], b"raw");
        assert_eq!(rb.recv::<Msg>().await.unwrap(), Some(msg(1)));
    }

    #[tokio::test]
    async fn several_frames_in_one_write() {
        let (mut a, b) = duplex(64 * 1024);
        let mut all = Vec::new();
        for id in 0..3 {
            all.extend(raw_frame(&encode(&msg(id)).unwrap()));
        }
        a.write_all(&all).await.unwrap();
        a.flush().await.unwrap();
        drop(a);
        let mut r = FrameReader::new(b, MAX);
        for id in 0..3 {
            assert_eq!(r.recv::<Msg>().await.unwrap(), Some(msg(id)));
        }
        assert!(r.recv::<Msg>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversize_declared_length_is_frame_too_large() {
        let (mut a, b) = duplex(64 * 1024);
        a.write_all(&((MAX as u32 + 1).to_be_bytes()))
            .await
            .unwrap();
        a.write_all(b"abc").await.unwrap();
        let mut r = FrameReader::new(b, MAX);
        match r.recv_bytes().await {
            Err(RpcError::FrameTooLarge { len, max }) => assert_eq!((len, max), (MAX + 1, MAX)),
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        // The codec now reports end-of-stream; that must not look like a clean close.
        assert!(r.recv_bytes().await.is_err());
        let shown = RpcError::FrameTooLarge {
            len: MAX + 1,
            max: MAX,
        }
        .to_string();
        assert!(shown.contains("1025") && shown.contains("1024"), "{shown}");
    }

    #[tokio::test]
    async fn oversize_send_is_refused_before_writing() {
        let (a, b) = duplex(64 * 1024);
        let mut w = FrameWriter::new(a, MAX);
        let err = w
            .send_bytes(Bytes::from(vec![0u8; MAX + 1]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RpcError::FrameTooLarge { len, max } if len == MAX + 1 && max == MAX)
        );
        w.send(&msg(2)).await.unwrap(); // the stream is still usable
        drop(w);
        let mut r = FrameReader::new(b, MAX);
        assert_eq!(r.recv::<Msg>().await.unwrap(), Some(msg(2)));
    }

    #[tokio::test]
    async fn garbage_frame_is_malformed_and_stream_stays_in_sync() {
        let (mut a, b) = duplex(64 * 1024);
        // An enum variant index no HelloReply has: guaranteed undecodable.
        a.write_all(&raw_frame(&[0xff; 16])).await.unwrap();
        a.write_all(&raw_frame(&encode(&HelloReply::Accepted).unwrap()))
            .await
            .unwrap();
        let mut r = FrameReader::new(b, MAX);
        assert!(matches!(
            r.recv::<HelloReply>().await,
            Err(RpcError::Malformed(_))
        ));
        assert!(matches!(
            r.recv::<HelloReply>().await,
            Ok(Some(HelloReply::Accepted))
        ));
    }

    #[test]
    fn decode_never_panics_on_garbage() {
        for seed in 0..2000u64 {
            let bytes = garbage(seed, (seed % 97) as usize);
            match decode::<Msg>(&bytes, MAX) {
                Ok(_) | Err(RpcError::Malformed(_)) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
            let _ = decode::<HelloReply>(&bytes, MAX);
            let _ = decode::<crate::rpc::handshake::Hello>(&bytes, MAX);
        }
    }

    #[test]
    fn decode_rejects_trailing_bytes_and_oversize_input() {
        let mut bytes = encode(&msg(3)).unwrap();
        assert_eq!(decode::<Msg>(&bytes, MAX).unwrap(), msg(3));
        bytes.push(0);
        assert!(matches!(
            decode::<Msg>(&bytes, MAX),
            Err(RpcError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Msg>(&bytes, 4),
            Err(RpcError::FrameTooLarge { max: 4, .. })
        ));
    }

    #[test]
    fn hostile_length_prefix_does_not_allocate() {
        // id, then a string claiming u64::MAX bytes: must fail on the limit, not allocate.
        let mut bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend(u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Msg>(&bytes, MAX),
            Err(RpcError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn truncated_frame_then_eof_is_an_error() {
        let (mut a, b) = duplex(64 * 1024);
        a.write_all(&100u32.to_be_bytes()).await.unwrap();
        a.write_all(&[1u8; 10]).await.unwrap();
        drop(a);
        let mut r = FrameReader::new(b, MAX);
        assert!(r.recv::<Msg>().await.is_err());
    }

    #[tokio::test]
    async fn truncated_header_then_eof_is_an_error() {
        let (mut a, b) = duplex(64 * 1024);
        a.write_all(&[0u8, 0]).await.unwrap();
        drop(a);
        let mut r = FrameReader::new(b, MAX);
        assert!(r.recv_bytes().await.is_err());
    }
}
