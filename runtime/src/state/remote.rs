//! A checkpoint store served over TCP: another process keeps the JobManager's checkpoints (the
//! part HDFS or S3 plays for Flink), so they outlive the JobManager's machine and the store can
//! fail on its own: crash, restart, or sit behind a partition.
//!
//! `serve_checkpoint_store` serves any `CheckpointStore` (files in production, `rill
//! checkpoint-store`); `RemoteCheckpointStore` is the JobManager's side, selected by
//! `state.checkpoints.dir=rill://HOST:PORT`. It is an `rpc::service`: the control plane's
//! framing and handshake (only JobManagers are accepted), requests served concurrently.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::{CheckpointStore, StoreError};
use crate::config::Configuration;
use crate::ids::{CheckpointId, JobId};
use crate::rpc::service::{serve, ServiceClient};
use crate::rpc::PeerRole;

const SERVICE: &str = "checkpoint store";

#[derive(Debug, Serialize, Deserialize)]
enum StoreRequest {
    Put {
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    },
    Get {
        job: JobId,
        checkpoint: CheckpointId,
    },
    Delete {
        job: JobId,
        checkpoint: CheckpointId,
    },
}

/// The data of a `Get`; nothing for a `Put` or `Delete`.
type StoreReply = Result<Option<Bytes>, StoreError>;

/// Serves `store` to JobManagers on `listener` until the task is dropped.
pub async fn serve_checkpoint_store(
    listener: TcpListener,
    store: Arc<dyn CheckpointStore>,
    config: Configuration,
) {
    let handler = move |request: StoreRequest| match request {
        StoreRequest::Put {
            job,
            checkpoint,
            data,
        } => {
            let put = store.put(job, checkpoint, data);
            // Buggify: the store takes its time with the write.
            let slow = crate::buggify::delay(crate::buggify::Point::CheckpointStoreSlow);
            none(Box::pin(async move {
                if let Some(slow) = slow {
                    tokio::time::sleep(slow).await;
                }
                put.await
            }))
        }
        StoreRequest::Get { job, checkpoint } => {
            let get = store.get(job, checkpoint);
            Box::pin(async move { get.await.map(Some) }) as BoxFuture<'static, StoreReply>
        }
        StoreRequest::Delete { job, checkpoint } => none(store.delete(job, checkpoint)),
    };
    serve(listener, config, SERVICE, PeerRole::JobManager, handler).await
}

fn none(op: BoxFuture<'static, Result<(), StoreError>>) -> BoxFuture<'static, StoreReply> {
    Box::pin(async move { op.await.map(|()| None) })
}

/// The JobManager's handle on a served store; every operation is bounded by the timeout it was
/// made with (the checkpoint timeout: a slower write is of no use to its checkpoint).
#[derive(Clone)]
pub struct RemoteCheckpointStore {
    client: ServiceClient<StoreRequest, StoreReply>,
}

impl RemoteCheckpointStore {
    /// A store at `addr` (HOST:PORT), reached with the cluster's credentials.
    pub fn new(addr: impl Into<String>, config: &Configuration, timeout: Duration) -> Self {
        let role = PeerRole::JobManager;
        RemoteCheckpointStore {
            client: ServiceClient::new(SERVICE, addr, role, "jobmanager", config, timeout),
        }
    }

    fn call(&self, request: StoreRequest) -> BoxFuture<'static, StoreReply> {
        let client = self.client.clone();
        Box::pin(async move {
            match client.call(&request).await {
                Ok(reply) => reply,
                Err(e) => Err(StoreError::Unavailable(e.to_string())),
            }
        })
    }
}

impl CheckpointStore for RemoteCheckpointStore {
    fn put(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
        data: Bytes,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let call = self.call(StoreRequest::Put {
            job,
            checkpoint,
            data,
        });
        Box::pin(async move { call.await.map(drop) })
    }

    fn get(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<Bytes, StoreError>> {
        let call = self.call(StoreRequest::Get { job, checkpoint });
        Box::pin(async move {
            // A server that answers a Get without data is broken; that must not pass as empty.
            call.await?
                .ok_or_else(|| StoreError::Io("checkpoint store sent no data".into()))
        })
    }

    fn delete(
        &self,
        job: JobId,
        checkpoint: CheckpointId,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let call = self.call(StoreRequest::Delete { job, checkpoint });
        Box::pin(async move { call.await.map(drop) })
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::state::MemoryCheckpointStore;
    use crate::util::AbortOnDrop;

    async fn served(config: &Configuration) -> (String, MemoryCheckpointStore, AbortOnDrop<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let store = MemoryCheckpointStore::default();
        let server = serve_checkpoint_store(listener, Arc::new(store.clone()), config.clone());
        (addr, store, AbortOnDrop(tokio::spawn(server)))
    }

    #[tokio::test]
    async fn a_served_store_round_trips_and_reports_missing_checkpoints() {
        let config = Configuration::default();
        let (addr, held, _server) = served(&config).await;
        let remote = RemoteCheckpointStore::new(addr, &config, Duration::from_secs(5));
        remote
            .put(JobId(1), CheckpointId(5), Bytes::from_static(b"state"))
            .await
            .unwrap();
        assert_eq!(held.held(), vec![(JobId(1), CheckpointId(5))]);
        assert_eq!(
            remote.get(JobId(1), CheckpointId(5)).await.unwrap(),
            Bytes::from_static(b"state")
        );
        let missing = StoreError::NotFound {
            job: JobId(1),
            checkpoint: CheckpointId(6),
        };
        assert_eq!(
            remote.get(JobId(1), CheckpointId(6)).await.unwrap_err(),
            missing
        );
        remote.delete(JobId(1), CheckpointId(5)).await.unwrap();
        assert!(held.held().is_empty());
    }

    #[tokio::test]
    async fn a_store_refuses_a_jobmanager_of_another_cluster() {
        let (addr, held, _server) = served(&Configuration::default()).await;
        let stranger = Configuration::default()
            .with("security.cluster.secret", "not-the-secret")
            .unwrap();
        let remote = RemoteCheckpointStore::new(addr, &stranger, Duration::from_secs(5));
        let err = remote
            .put(JobId(1), CheckpointId(1), Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(held.held().is_empty());
    }
}
