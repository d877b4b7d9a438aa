//! A flood of idle, unauthenticated connections from one address against a served endpoint
//! (the same accept path as the JobManager's control port and a TaskManager's data port): at
//! most `MAX_UNAUTHENTICATED_PER_PEER` of them are held, the rest are closed at once, and a
//! node from another address is still served. Bounded: a few hundred connections, seconds.
#![cfg(not(madsim))]

use std::time::Duration;

use rill::config::Configuration;
use rill::rpc::admission::MAX_UNAUTHENTICATED_PER_PEER;
use rill::rpc::service::{serve, ServiceClient};
use rill::rpc::PeerRole;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const FLOOD: usize = 300;

async fn idle_connection_from(source: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("address"))
        .expect("bind the flood's own loopback address");
    socket.connect(to).await.expect("connect")
}

/// Whether the server closed `stream` within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn idle_strangers_cannot_lock_out_the_cluster() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let config = Configuration::new();
    let server = tokio::spawn(serve(
        listener,
        config.clone(),
        "echo",
        PeerRole::JobManager,
        |n: u64| async move { n + 1 },
    ));
    // The flood comes from 127.0.0.2 and sends nothing.
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(idle_connection_from("127.0.0.2", addr).await);
    }
    let mut closed = 0;
    for stream in &mut flood {
        if closed_within(stream, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= FLOOD - MAX_UNAUTHENTICATED_PER_PEER,
        "only {closed} of {FLOOD} idle connections from one address were closed at once"
    );
    // A node at another address gets through while the flood holds its places.
    let client: ServiceClient<u64, u64> = ServiceClient::new(
        "echo",
        addr.to_string(),
        PeerRole::JobManager,
        "node",
        &config,
        Duration::from_secs(5),
    );
    assert_eq!(client.call(&41).await.expect("served"), 42);
    server.abort();
}
