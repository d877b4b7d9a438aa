//! Sinks in the shape of Flink's two-phase committing sinks (FLIP-143): a [`SinkWriter`]
//! writes records, *pre-commits* what it wrote at each checkpoint barrier into committables
//! that go into the checkpoint, and *commits* them when the checkpoint completes. A restored
//! attempt re-commits the committables of the checkpoint it restores (the checkpoint may have
//! completed without its commit reaching the external system), so commits must be
//! idempotent, and aborts whatever earlier attempts pre-committed after it.
//!
//! The runtime's side ([`SinkOperator`]) keeps the committables in the checkpoint, commits them
//! in order, and refuses a checkpoint whose output the writer lost. A user's sink implements
//! [`Sink`] and [`SinkWriter`] and is added with [`crate::DataStream::sink`]; the built-in
//! sinks (discard, collect, collect-transactional, `file:`) are sinks of the same kind,
//! chosen by the `sink` job parameter ([`SinkSpec`], [`StandardSink`]).
//!
//! A sink that is not transactional (at-least-once: it makes writes visible as they go)
//! returns no committables and makes its output durable in `prepare_commit` instead.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ConnectorContext;
use crate::chain::Traceable;
use crate::error::JobError;
use crate::ids::CheckpointId;

mod collect;
mod file;
pub(crate) mod operator;

pub use collect::CollectSink;
pub use file::{FileCommittable, FileSink};
pub use operator::SinkOperator;

/// A sink of records of type `T`: one value describes it for every subtask, and each subtask
/// opens its own writer.
pub trait Sink<T>: Send + Sync + 'static {
    /// What a pre-commit hands to the checkpoint, and a commit makes visible: a transaction
    /// id, a staged file's name. Serialized into every checkpoint (bincode), so keep it small.
    type Committable: Clone + std::fmt::Debug + Send + Serialize + DeserializeOwned + 'static;

    /// The writer of one subtask (`ctx` says which, its attempt and what it restores).
    fn writer(
        &self,
        ctx: &dyn ConnectorContext,
    ) -> Result<Box<dyn SinkWriter<T, Self::Committable>>, JobError>;
}

/// Writes one sink subtask's records in two phases.
///
/// The runtime calls, in order: [`recover`](SinkWriter::recover) once, then any number of
/// `write`s and `flush`es, with a [`prepare_commit`](SinkWriter::prepare_commit) at every
/// checkpoint barrier; [`commit`](SinkWriter::commit) when a checkpoint completes, with the
/// committables of every checkpoint up to it not committed yet; and at the end of the input
/// one last `prepare_commit` with [`CheckpointId::END_OF_INPUT`], the commit of everything, and
/// [`finish`](SinkWriter::finish). An error fails the checkpoint that would cover the lost
/// output, so it never completes.
pub trait SinkWriter<T, C>: Send {
    /// Before the first write: commits `restored`, the committables of the checkpoint this
    /// attempt restores from (empty on a fresh start), which may have completed without being
    /// committed, and aborts what earlier attempts of this subtask pre-committed or wrote
    /// beyond them. The default only commits.
    fn recover(&mut self, restored: Vec<C>) -> Result<(), JobError> {
        self.commit(restored)
    }

    /// Writes one record (it is visible only once committed, for a transactional sink).
    fn write(&mut self, record: T) -> Result<(), JobError>;

    /// The buffer timeout passed: hand buffered records on to the external system.
    fn flush(&mut self) -> Result<(), JobError> {
        Ok(())
    }

    /// A checkpoint barrier: everything written since the last one becomes committables of
    /// `checkpoint`, which the checkpoint keeps. A sink without transactions makes its
    /// output durable here and returns none.
    fn prepare_commit(&mut self, checkpoint: CheckpointId) -> Result<Vec<C>, JobError>;

    /// Makes the committables' output visible. Idempotent: a restored attempt commits again
    /// what may have been committed already.
    fn commit(&mut self, committables: Vec<C>) -> Result<(), JobError>;

    /// The input has ended and everything is committed: make it durable before the task
    /// reports FINISHED.
    fn finish(&mut self) -> Result<(), JobError> {
        Ok(())
    }
}

/// Which built-in sink a job writes to (job parameter `sink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkSpec {
    /// Count and drop (benchmarks).
    Discard,
    /// Keep every record with its provenance in the TaskManager's `CollectStore`, visible as
    /// soon as a batch is flushed (at-least-once across restarts).
    Collect,
    /// The same store written in two phases: records are staged per checkpoint and become
    /// visible when the checkpoint completes (exactly-once with checkpoints).
    CollectTransactional,
    /// Exactly-once text files under this directory, one per sink subtask and checkpoint,
    /// published when the checkpoint completes ([`FileSink`]).
    File(PathBuf),
}

impl std::str::FromStr for SinkSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "discard" => Ok(SinkSpec::Discard),
            "collect" => Ok(SinkSpec::Collect),
            "collect-transactional" => Ok(SinkSpec::CollectTransactional),
            _ => match s.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(SinkSpec::File(PathBuf::from(path))),
                _ => Err(format!(
                    "unknown sink '{s}': expected discard, collect, collect-transactional or file:DIR"
                )),
            },
        }
    }
}

impl SinkSpec {
    /// Whether the sink writes to a sink store (and so can be pointed at a served one).
    pub fn collects(&self) -> bool {
        matches!(self, SinkSpec::Collect | SinkSpec::CollectTransactional)
    }

    /// The sink, for a record type that knows its provenance. Collecting sinks write to the
    /// sink store at `store` (HOST:PORT), or else to the TaskManager's in-process one.
    pub fn with_store(self, store: Option<String>) -> StandardSink {
        StandardSink { spec: self, store }
    }
}

/// A built-in sink as the `sink` parameter names it, with where a collecting one writes.
#[derive(Debug, Clone)]
pub struct StandardSink {
    spec: SinkSpec,
    store: Option<String>,
}

/// The committables of the built-in sinks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StandardCommittable {
    /// The sink store's transaction of this checkpoint.
    Collect(CheckpointId),
    /// A staged file.
    File(FileCommittable),
}

impl<T> Sink<T> for StandardSink
where
    T: Serialize + Traceable + std::fmt::Debug + Send + 'static,
{
    type Committable = StandardCommittable;

    fn writer(
        &self,
        ctx: &dyn ConnectorContext,
    ) -> Result<Box<dyn SinkWriter<T, StandardCommittable>>, JobError> {
        Ok(match &self.spec {
            SinkSpec::Discard => Box::new(DiscardSink),
            SinkSpec::Collect | SinkSpec::CollectTransactional => {
                let transactional = self.spec == SinkSpec::CollectTransactional;
                let sink = CollectSink::open(ctx, self.store.as_deref(), transactional)?;
                Box::new(Committing::new(
                    sink,
                    StandardCommittable::Collect,
                    |c| match c {
                        StandardCommittable::Collect(id) => Some(id),
                        StandardCommittable::File(_) => None,
                    },
                ))
            }
            SinkSpec::File(dir) => {
                let sink = FileSink::open(dir, ctx)?;
                Box::new(Committing::new(
                    sink,
                    StandardCommittable::File,
                    |c| match c {
                        StandardCommittable::File(f) => Some(f),
                        StandardCommittable::Collect(_) => None,
                    },
                ))
            }
        })
    }
}

/// Counts nothing, keeps nothing.
struct DiscardSink;

impl<T, C> SinkWriter<T, C> for DiscardSink {
    fn write(&mut self, _record: T) -> Result<(), JobError> {
        Ok(())
    }
    fn prepare_commit(&mut self, _checkpoint: CheckpointId) -> Result<Vec<C>, JobError> {
        Ok(Vec::new())
    }
    fn commit(&mut self, _committables: Vec<C>) -> Result<(), JobError> {
        Ok(())
    }
}

/// A writer with its own committable type seen through [`StandardCommittable`].
struct Committing<W, C> {
    inner: W,
    wrap: fn(C) -> StandardCommittable,
    unwrap: fn(StandardCommittable) -> Option<C>,
}

impl<W, C> Committing<W, C> {
    fn new(
        inner: W,
        wrap: fn(C) -> StandardCommittable,
        unwrap: fn(StandardCommittable) -> Option<C>,
    ) -> Self {
        Committing {
            inner,
            wrap,
            unwrap,
        }
    }

    fn unwrap_all(&self, cs: Vec<StandardCommittable>) -> Result<Vec<C>, JobError> {
        cs.into_iter()
            .map(|c| {
                let what = format!("{c:?}");
                (self.unwrap)(c).ok_or_else(|| {
                    JobError::Sink(format!(
                        "the checkpoint holds {what}, a committable of another kind of sink"
                    ))
                })
            })
            .collect()
    }
}

impl<T, W: SinkWriter<T, C>, C: Send> SinkWriter<T, StandardCommittable> for Committing<W, C> {
    fn recover(&mut self, restored: Vec<StandardCommittable>) -> Result<(), JobError> {
        let restored = self.unwrap_all(restored)?;
        self.inner.recover(restored)
    }
    fn write(&mut self, record: T) -> Result<(), JobError> {
        self.inner.write(record)
    }
    fn flush(&mut self) -> Result<(), JobError> {
        self.inner.flush()
    }
    fn prepare_commit(
        &mut self,
        checkpoint: CheckpointId,
    ) -> Result<Vec<StandardCommittable>, JobError> {
        let cs = self.inner.prepare_commit(checkpoint)?;
        Ok(cs.into_iter().map(self.wrap).collect())
    }
    fn commit(&mut self, committables: Vec<StandardCommittable>) -> Result<(), JobError> {
        let cs = self.unwrap_all(committables)?;
        self.inner.commit(cs)
    }
    fn finish(&mut self) -> Result<(), JobError> {
        self.inner.finish()
    }
}
