//! What a hostile data-plane peer (one that holds the secret) can make a producer's data
//! server hold: subpartition requests for queues that never come, more channels than a
//! connection may have, credit beyond any consumer's reservation, and replies it never reads.
//! Each is bounded while the connection lasts, and nothing stays behind once it closes (before
//! the fix, 20,000 bogus requests left 20,000 waiters in the registry for good).
#![cfg(not(madsim))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rill::graph::{EdgeId, ExecutionAttemptId, JobId, VertexId};
use rill::network::transport::{DataMsg, DataPlaneConfig};
use rill::network::{ClaimCheck, ClaimKeys, DataServer, PartitionRegistry, SubpartitionKey};
use rill::rpc::{connect, Credentials, PeerRole};

const REQUESTS: u32 = 20_000;

fn bogus(index: u32) -> SubpartitionKey {
    SubpartitionKey {
        job: JobId(7),
        producer: ExecutionAttemptId {
            vertex: VertexId(0),
            subtask: 0,
            attempt: 0,
        },
        edge: EdgeId(0),
        index,
    }
}

/// Polls `done` until it holds, for up to 10 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bogus_requests_are_bounded_and_leave_nothing_behind() {
    let creds = Arc::new(Credentials::new("rill", "s3cret"));
    // The worst case: requests the JobManager did grant (for partitions that never come), so
    // they get past the claim check and wait in the registry.
    let key = ClaimKeys::from_master([9; 32]).key_for("producer");
    let config = DataPlaneConfig {
        credentials: creds.clone(),
        max_frame: 1 << 20,
        // Long: what is left behind must go with the connection, not with the timeout.
        request_timeout: Duration::from_secs(600),
        handshake_timeout: Duration::from_secs(5),
        claims: ClaimCheck::with_key(key.clone()),
    };
    let registry = PartitionRegistry::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let _server = DataServer::spawn(listener, registry.clone(), config, "producer".into());

    let (reader, mut writer) = connect(
        &addr,
        "",
        &creds,
        (PeerRole::DataPlane, "attacker"),
        1 << 20,
        Duration::from_secs(5),
    )
    .await
    .expect("connect");
    let consumer = ExecutionAttemptId {
        vertex: VertexId(1),
        subtask: 0,
        attempt: 0,
    };
    // Requests for subpartitions no producer will ever register, and credit floods; replies
    // (the refusals beyond the channel cap) are never read.
    let (mut sent, mut peak) = (0, 0);
    for channel in 0..REQUESTS {
        if channel % 500 == 0 {
            tokio::task::yield_now().await;
            peak = peak.max(registry.waiting());
        }
        let request = DataMsg::Request {
            channel,
            key: bogus(channel),
            consumer,
            credit: u32::MAX,
            grant: key.grant(&bogus(channel), "attacker", consumer),
        };
        if writer.send(&request).await.is_err() {
            break;
        }
        let _ = writer
            .send(&DataMsg::Credit {
                channel,
                n: u32::MAX,
            })
            .await;
        sent += 1;
    }
    assert!(
        sent > 16_384,
        "the server stopped reading early, after {sent}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    peak = peak.max(registry.waiting());
    assert!(peak > 0, "no request was ever served");
    assert!(peak <= 16_384, "{peak} requests waited on one connection");
    drop((reader, writer));
    eventually("the waiters go with the connection", || {
        registry.waiting() == 0
    })
    .await;
}
