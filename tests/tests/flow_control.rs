//! Credit-based flow control over a real loopback connection: a consumer that stops reading
//! stops its producer, with bounded memory on both sides, and nothing is lost or reordered.
#![cfg(not(madsim))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill::graph::{EdgeId, ExecutionAttemptId, VertexId};
use rill::network::transport::DataPlaneConfig;
use rill::network::{
    ClaimCheck, ClaimKey, ClaimKeys, DataBuffer, DataClient, DataServer, NetBuffer,
    PartitionRegistry, StreamEvent, SubpartitionKey,
};
use rill::rpc::Credentials;
use rill::taskmanager::MemoryAccount;

const BUFFER: usize = 32 * 1024;
const QUEUE: usize = 3;
const CREDIT: u32 = 2;

fn attempt(vertex: u32) -> ExecutionAttemptId {
    ExecutionAttemptId {
        vertex: VertexId(vertex),
        subtask: 0,
        attempt: 0,
    }
}

/// The producer TaskManager's claim key, as a JobManager would give it.
fn claim_key() -> ClaimKey {
    ClaimKeys::from_master([3; 32]).key_for("producer")
}

#[tokio::test]
async fn a_consumer_that_stops_reading_stops_its_producer_with_bounded_memory() {
    let config = DataPlaneConfig {
        credentials: Arc::new(Credentials::new("rill", "s3cret")),
        max_frame: 1 << 20,
        request_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(5),
        claims: ClaimCheck::with_key(claim_key()),
    };
    let (producer_mem, consumer_mem) = (MemoryAccount::default(), MemoryAccount::default());
    let registry = PartitionRegistry::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let _server = DataServer::spawn(
        listener,
        registry.clone(),
        config.clone(),
        "producer".into(),
    );

    let key = SubpartitionKey {
        job: rill::graph::JobId(1),
        producer: attempt(0),
        edge: EdgeId(0),
        index: 0,
    };
    let grant = claim_key().grant(&key, "consumer", attempt(1));
    let queue = registry.create(key, QUEUE);
    let sent = Arc::new(AtomicU64::new(0));
    let (mem, counter) = (producer_mem.clone(), sent.clone());
    let producer = tokio::spawn(async move {
        for i in 0..100u8 {
            let bytes = Bytes::from(vec![i; BUFFER]);
            let guard = mem.buffer(bytes.len() as u64);
            let data = DataBuffer {
                bytes,
                guard,
                seq: i as u64,
                records: 1,
            };
            queue
                .send(NetBuffer::Data(data))
                .await
                .expect("consumer alive");
            counter.fetch_add(1, Ordering::SeqCst);
        }
        queue
            .send(NetBuffer::Event(StreamEvent::EndOfPartition))
            .await
            .expect("consumer alive");
    });

    let client = DataClient::new(config, consumer_mem.clone(), "consumer".into());
    let (mut rx, credit) = client
        .request((&addr, ""), key, (attempt(1), grant), CREDIT)
        .await
        .expect("request");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Stalled: the producer filled its queue, the forwarder holds one buffer, the consumer
    // holds its credit's worth; nothing more moves.
    let stalled_at = sent.load(Ordering::SeqCst);
    assert!(
        stalled_at <= (QUEUE + 1) as u64 + CREDIT as u64 + 1,
        "producer ran ahead: {stalled_at} buffers sent"
    );
    assert!(!producer.is_finished());
    assert!(consumer_mem.report().buffer_bytes <= CREDIT as u64 * BUFFER as u64);
    assert!(producer_mem.report().peak_bytes <= (QUEUE as u64 + 2) * BUFFER as u64);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sent.load(Ordering::SeqCst),
        stalled_at,
        "the producer kept going without credit"
    );

    // Reading again resumes the flow: every buffer arrives, in order.
    for i in 0..100u8 {
        match rx.recv().await.expect("channel open") {
            NetBuffer::Data(data) => assert!(
                data.bytes.len() == BUFFER && data.bytes[0] == i && data.seq == i as u64,
                "buffer {i} out of order"
            ),
            other => panic!("expected data, got {other:?}"),
        }
        credit.give(1);
    }
    assert!(matches!(
        rx.recv().await,
        Some(NetBuffer::Event(StreamEvent::EndOfPartition))
    ));
    producer.await.expect("producer done");
    assert!(consumer_mem.report().peak_bytes <= CREDIT as u64 * BUFFER as u64);
}
