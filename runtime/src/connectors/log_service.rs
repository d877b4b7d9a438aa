//! A partitioned log served over the network, as a Kafka cluster serves topics: `rill
//! log-server` (or the harness's `source-log` node) serves the input logs of a job by topic, and
//! sources with `log=rill://HOST:PORT` read them from there.
//!
//! The reading side prefetches: one fetch loop per partition keeps up to `PREFETCH_LIMIT`
//! records ready, so a source's synchronous poll never waits on the network; when a partition
//! has nothing ready the source reports `Pending` and sleeps until a fetch lands. A log server
//! that cannot be reached stalls its sources (the fetch loops retry with back-off) rather than
//! failing them, as a Kafka consumer rides out a broker outage.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::log::{LogRecord, PartitionedLog};
use crate::config::Configuration;
use crate::rpc::service::{serve, Backoff, ClientPool, ServiceClient};
use crate::rpc::PeerRole;
use crate::util::{lock, AbortOnDrop};

const SERVICE: &str = "log server";
/// Records per fetch; also the most a server returns per read.
const FETCH_RECORDS: usize = 1024;
/// Records kept ready per partition before its fetch loop waits for the source.
const PREFETCH_LIMIT: usize = 4 * FETCH_RECORDS;
/// Bound on one fetch: past it the connection is not trusted and the fetch is retried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A fetch: up to `max` records of a topic's partition from `offset` on.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// The most records to return (the server caps it too).
    pub max: u32,
}

/// The records from `offset` on (none: the end of a bounded partition), or why not.
type ReadReply = Result<RecordBatch, String>;

/// Consecutive records of one partition, in columns: how a fetch travels. The payloads share
/// one buffer, so a fetched record's payload is a slice of it rather than an allocation of its
/// own, and the columns encode without a per-record structure.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordBatch {
    keys: Vec<u64>,
    timestamps: Vec<u64>,
    /// Where each record's payload ends in `payloads`.
    payload_ends: Vec<u32>,
    payloads: bytes::Bytes,
}

impl RecordBatch {
    fn from_records(records: &[LogRecord]) -> Self {
        let mut payloads =
            bytes::BytesMut::with_capacity(records.iter().map(|r| r.payload.len()).sum());
        let mut payload_ends = Vec::with_capacity(records.len());
        for r in records {
            payloads.extend_from_slice(&r.payload);
            payload_ends.push(u32::try_from(payloads.len()).unwrap_or(u32::MAX));
        }
        RecordBatch {
            keys: records.iter().map(|r| r.key).collect(),
            timestamps: records.iter().map(|r| r.timestamp_ms).collect(),
            payload_ends,
            payloads: payloads.freeze(),
        }
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The records, numbered from `offset` of `partition`. Columns of unequal length (a
    /// malformed reply) yield the records all columns cover; payload bounds are clamped.
    fn into_records(self, partition: u32, offset: u64) -> impl Iterator<Item = LogRecord> {
        let RecordBatch {
            keys,
            timestamps,
            payload_ends,
            payloads,
        } = self;
        let mut start = 0usize;
        keys.into_iter()
            .zip(timestamps)
            .zip(payload_ends)
            .enumerate()
            .map(move |(i, ((key, timestamp_ms), end))| {
                let end = (end as usize).clamp(start, payloads.len().max(start));
                let payload = payloads.slice(start..end);
                start = end;
                LogRecord {
                    partition,
                    offset: offset.saturating_add(i as u64),
                    key,
                    timestamp_ms,
                    payload,
                }
            })
    }
}

/// The topics a log server serves, by name (a job's source operator names).
pub type Topics = BTreeMap<String, Arc<dyn PartitionedLog>>;

/// Serves `topics` to TaskManagers on `listener` until the task is dropped.
pub async fn serve_log(listener: TcpListener, topics: Topics, config: Configuration) {
    let topics = Arc::new(topics);
    let handler = move |request: ReadRequest| {
        let reply = read(&topics, &request);
        async move { reply }
    };
    serve(listener, config, SERVICE, PeerRole::TaskManager, handler).await
}

fn read(topics: &Topics, r: &ReadRequest) -> ReadReply {
    let log = topics.get(&r.topic).ok_or_else(|| {
        let known: Vec<&str> = topics.keys().map(String::as_str).collect();
        format!("no topic '{}' (serving: {})", r.topic, known.join(", "))
    })?;
    let mut out = Vec::new();
    let max = (r.max as usize).min(FETCH_RECORDS);
    log.read(r.partition, r.offset, max, &mut out)
        .map_err(|e| format!("topic '{}': {e}", r.topic))?;
    Ok(RecordBatch::from_records(&out))
}

/// A TaskManager's connection to one log server, shared by the sources it runs.
pub type LogClient = ServiceClient<ReadRequest, ReadReply>;

/// The TaskManager's log clients by server address: one connection per server.
pub type LogClients = ClientPool<ReadRequest, ReadReply>;

/// A TaskManager's pool of log clients.
pub fn log_clients(config: Configuration, name: String) -> LogClients {
    ClientPool::new(SERVICE, PeerRole::TaskManager, name, config, FETCH_TIMEOUT)
}

/// What a prefetching read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// This many records were appended to the caller's batch.
    Records(usize),
    /// The partition is bounded and read to its end.
    End,
    /// Nothing ready yet.
    Pending,
}

#[derive(Default)]
struct Prefetched {
    records: VecDeque<LogRecord>,
    end: bool,
    error: Option<String>,
}

struct PartitionFeed {
    ready: Arc<Mutex<Prefetched>>,
    /// Signalled when the source took records: the fetch loop may have room again.
    space: Arc<Notify>,
}

/// The served partitions one source subtask reads, fetched ahead of it.
pub struct LogPrefetcher {
    feeds: BTreeMap<u32, PartitionFeed>,
    /// Signalled when any fetch landed (or failed for good).
    wakeup: Arc<Notify>,
    _loops: Vec<AbortOnDrop<()>>,
}

impl LogPrefetcher {
    /// Starts one fetch loop per `(partition, first offset)` of `topic`.
    pub fn start(client: &LogClient, topic: &str, starts: &[(u32, u64)]) -> Self {
        let wakeup = Arc::new(Notify::new());
        let mut feeds = BTreeMap::new();
        let mut loops = Vec::new();
        for &(partition, offset) in starts {
            let feed = PartitionFeed {
                ready: Arc::default(),
                space: Arc::new(Notify::new()),
            };
            let fetch = FetchLoop {
                client: client.clone(),
                topic: topic.to_string(),
                partition,
                offset,
                ready: feed.ready.clone(),
                space: feed.space.clone(),
                wakeup: wakeup.clone(),
            };
            loops.push(AbortOnDrop(tokio::spawn(fetch.run())));
            feeds.insert(partition, feed);
        }
        LogPrefetcher {
            feeds,
            wakeup,
            _loops: loops,
        }
    }

    /// Moves `max` records of `partition` into `out`, in offset order: `max` exactly (at most
    /// the prefetch limit), or what is left of an ended partition, else nothing yet
    /// (`Pending`). Never fewer because fewer have arrived: how many records one read
    /// returns must not depend on timing, or a restored source would interleave its
    /// partitions differently from the first reading, and number its replay differently
    /// (consumers that kept running drop replayed records by their numbers).
    pub fn read(
        &self,
        partition: u32,
        max: usize,
        out: &mut Vec<LogRecord>,
    ) -> Result<Fetched, String> {
        let feed = self
            .feeds
            .get(&partition)
            .ok_or_else(|| format!("partition {partition} is not fetched by this reader"))?;
        let mut ready = lock(&feed.ready);
        let want = max.clamp(1, PREFETCH_LIMIT);
        if ready.records.len() < want && !ready.end {
            if let Some(e) = &ready.error {
                return Err(e.clone());
            }
            return Ok(Fetched::Pending);
        }
        if ready.records.is_empty() {
            return Ok(Fetched::End);
        }
        let n = want.min(ready.records.len());
        out.extend(ready.records.drain(..n));
        drop(ready);
        feed.space.notify_one();
        Ok(Fetched::Records(n))
    }

    /// Signalled whenever a fetch lands: what a `Pending` source waits on.
    pub fn wakeup(&self) -> Arc<Notify> {
        self.wakeup.clone()
    }
}

struct FetchLoop {
    client: LogClient,
    topic: String,
    partition: u32,
    offset: u64,
    ready: Arc<Mutex<Prefetched>>,
    space: Arc<Notify>,
    wakeup: Arc<Notify>,
}

impl FetchLoop {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            while lock(&self.ready).records.len() >= PREFETCH_LIMIT {
                self.space.notified().await;
            }
            let request = ReadRequest {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: self.offset,
                max: FETCH_RECORDS as u32,
            };
            match self.client.call(&request).await {
                Ok(Ok(records)) => {
                    if let Some(failures) = backoff.succeeded() {
                        tracing::info!(topic = %self.topic, partition = self.partition, failures, "log fetch recovered");
                    }
                    if self.deliver(records) {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    lock(&self.ready).error = Some(e);
                    self.wakeup.notify_one();
                    return;
                }
                Err(e) => {
                    // The server is down or cut off: the source stalls until it is back. The
                    // first failure is worth a warning; the retries are not.
                    let (wait, first) = backoff.failed();
                    if first {
                        tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "log fetch failed; retrying");
                    } else {
                        tracing::debug!(topic = %self.topic, partition = self.partition, error = %e, retry_in = ?wait, "log fetch failed");
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Hands fetched records to the source; true at the end of the partition.
    fn deliver(&mut self, batch: RecordBatch) -> bool {
        let mut ready = lock(&self.ready);
        ready.end = batch.is_empty();
        let n = batch.len() as u64;
        ready
            .records
            .extend(batch.into_records(self.partition, self.offset));
        self.offset = self.offset.saturating_add(n);
        let end = ready.end;
        drop(ready);
        self.wakeup.notify_one();
        end
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::connectors::log::GeneratedLog;

    async fn served(topics: Topics) -> (String, AbortOnDrop<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = serve_log(listener, topics, Configuration::default());
        (addr, AbortOnDrop(tokio::spawn(server)))
    }

    async fn drain(p: &LogPrefetcher, partition: u32) -> Result<Vec<LogRecord>, String> {
        let mut out = Vec::new();
        loop {
            match p.read(partition, 100, &mut out)? {
                Fetched::Records(_) => {}
                Fetched::End => return Ok(out),
                Fetched::Pending => p.wakeup().notified().await,
            }
        }
    }

    #[test]
    fn a_record_batch_carries_its_records_and_survives_malformed_columns() {
        let log = GeneratedLog::new(3, 1, Some(50));
        let mut records = Vec::new();
        log.read(0, 10, 20, &mut records).unwrap();
        let batch = RecordBatch::from_records(&records);
        assert_eq!(
            batch.clone().into_records(0, 10).collect::<Vec<_>>(),
            records
        );
        let broken = RecordBatch {
            payload_ends: vec![u32::MAX, 3],
            timestamps: vec![1],
            ..batch
        };
        assert_eq!(broken.into_records(0, 0).count(), 1);
    }

    #[tokio::test]
    async fn a_prefetched_partition_reads_like_the_log_itself_from_any_offset() {
        let log = GeneratedLog::new(1, 2, Some(5000));
        let topics: Topics = [("source".to_string(), Arc::new(log.clone()) as _)].into();
        let (addr, _server) = served(topics).await;
        let clients = log_clients(Configuration::default(), "tm-1".into());
        let p = LogPrefetcher::start(&clients.client(&addr), "source", &[(0, 0), (1, 4321)]);
        let mut expected = Vec::new();
        log.read(1, 4321, 10_000, &mut expected).unwrap();
        assert_eq!(drain(&p, 1).await.unwrap(), expected);
        assert_eq!(drain(&p, 0).await.unwrap().len(), 5000);
    }

    #[tokio::test]
    async fn an_unknown_topic_or_partition_is_an_error_naming_it() {
        let log = GeneratedLog::new(1, 1, Some(10));
        let (addr, _server) = served([("source".to_string(), Arc::new(log) as _)].into()).await;
        let client = log_clients(Configuration::default(), "tm-1".into()).client(&addr);
        let p = LogPrefetcher::start(&client, "clicks", &[(0, 0)]);
        assert!(drain(&p, 0)
            .await
            .unwrap_err()
            .contains("no topic 'clicks'"));
        let p = LogPrefetcher::start(&client, "source", &[(3, 0)]);
        assert!(drain(&p, 3)
            .await
            .unwrap_err()
            .contains("no such partition 3"));
    }
}
