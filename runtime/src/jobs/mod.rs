//! Jobs by name: a [`JobRegistry`] holds the jobs a process can run, each a [`JobDef`] (name,
//! description, builder, and what its output lets checkers verify).
//!
//! A registry is a value its owner builds, as a Flink user ships a jar: the JobManager
//! ([`crate::jobmanager::JobManagerServices::jobs`]) and every TaskManager
//! ([`crate::taskmanager::TaskManagerOptions::jobs`]) built from one binary hold the same
//! registry, so a submitted job name resolves to the same graph everywhere. The built-in jobs
//! are one such registry ([`builtin`]); a user's crate starts from [`JobRegistry::new`] (or
//! from the built-ins) and adds its own with [`JobRegistry::with`]:
//!
//! ```
//! use rill::api::registry::Params;
//! use rill::api::{FileAccess, JobError, OutputChecks, StreamEnv};
//! use rill::connectors::log::LogRecord;
//! use rill::jobs::io::{add_sink, log_source, SinkParams, SourceParams};
//! use rill::jobs::{Event, JobDef, JobRegistry};
//! use rill::JobSpec;
//!
//! /// The records of the log whose key is even, written to the job's sink.
//! fn evens(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
//!     let parallelism = p.get("parallelism", 2u32)?;
//!     let source = SourceParams::read(p, 0, parallelism)?;
//!     let sink = SinkParams::read(p)?;
//!     let evens = log_source(p, env, "numbers", source)
//!         .filter("evens", |r: &LogRecord| r.key % 2 == 0)
//!         .map("event", |r: LogRecord| Event { key: r.key, payload: 0, origin: r.origin() });
//!     add_sink(evens, sink, parallelism);
//!     Ok(())
//! }
//!
//! let jobs = JobRegistry::new().with(JobDef {
//!     name: "evens",
//!     description: "log -> filter even keys -> sink",
//!     build: evens,
//!     output: OutputChecks::OPAQUE,
//! })?;
//! let spec = JobSpec::new("evens").with("records", 1000).with("sink", "collect");
//! assert!(jobs.build(&spec, 128, &FileAccess::Anywhere).is_ok());
//! // The same job under the harness: it takes the parameters the harness sets.
//! let served = spec.with("log", "rill://10.0.3.2:6131").with("sink-store", "rill://10.0.3.3:6132");
//! assert!(jobs.build(&served, 128, &FileAccess::Anywhere).is_ok());
//! assert!(jobs.build(&JobSpec::new("keyed-count"), 128, &FileAccess::Anywhere).is_err(), "not in this registry");
//! # Ok::<(), JobError>(())
//! ```

mod builtin;
pub mod io;

use std::sync::Arc;

pub use builtin::{builtin, words_of, AdEvent, AdStats, Event, KeyCount, WordCount, JOBS};

use crate::api::checkable::OutputChecks;
use crate::api::file_access::FileAccess;
use crate::api::registry::{JobBuilder, JobSpec, NamedLog, Params};
use crate::api::stream::StreamEnv;
use crate::connectors::log::PartitionedLog;
use crate::error::JobError;
use crate::graph::JobGraph;

/// One job a registry holds.
#[derive(Clone, Copy)]
pub struct JobDef {
    /// The name clients submit it by (`rill run --job NAME`, a scenario's `job.name`).
    pub name: &'static str,
    /// One line for `rill jobs`.
    pub description: &'static str,
    /// Builds its operators from its parameters. Every job also takes `parallelism` (default
    /// 2): the default parallelism of its operators.
    pub build: JobBuilder,
    /// What checkers can verify of its output, said by its output record type
    /// ([`crate::api::CheckableOutput`]; [`OutputChecks::OPAQUE`] when nothing).
    pub output: OutputChecks,
}

/// The jobs a process can run, by name, in registration order. Cheap to clone.
#[derive(Clone, Default)]
pub struct JobRegistry {
    jobs: Arc<Vec<JobDef>>,
}

impl JobRegistry {
    /// A registry with no jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// This registry with `def` added; a name already taken is an error.
    pub fn with(self, def: JobDef) -> Result<Self, JobError> {
        if self.jobs.iter().any(|d| d.name == def.name) {
            return Err(JobError::DuplicateJob {
                name: def.name.to_string(),
            });
        }
        let mut jobs = Vec::clone(&self.jobs);
        jobs.push(def);
        Ok(JobRegistry {
            jobs: Arc::new(jobs),
        })
    }

    /// This registry with every job of `other` added.
    pub fn with_all(self, other: &JobRegistry) -> Result<Self, JobError> {
        other.jobs.iter().try_fold(self, |r, def| r.with(*def))
    }

    /// Every job, in registration order.
    pub fn jobs(&self) -> impl Iterator<Item = &JobDef> {
        self.jobs.iter()
    }

    /// The names of the jobs, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|d| d.name).collect()
    }

    /// The job `name`; an unknown name is an error that lists the jobs this registry has.
    pub fn get(&self, name: &str) -> Result<&JobDef, JobError> {
        self.jobs
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| JobError::UnknownJob {
                name: name.to_string(),
                known: match self.names() {
                    names if names.is_empty() => "(none)".to_string(),
                    names => names.join(", "),
                },
            })
    }

    /// Builds the job graph for `spec`: the one place JobManager and TaskManagers get a graph
    /// from. Parameters the job never reads are an error, and so is a path parameter outside
    /// what `files` allows (a node passes its own `security.files.allowed-dirs`).
    pub fn build(
        &self,
        spec: &JobSpec,
        max_parallelism: u32,
        files: &FileAccess,
    ) -> Result<JobGraph, JobError> {
        let builder = self.get(&spec.name)?.build;
        let mut params = Params::new(spec, files);
        let parallelism = params.get("parallelism", 2u32)?;
        let env = StreamEnv::new(parallelism);
        builder(&mut params, &env)?;
        params.finish()?;
        JobGraph::compile(&spec.name, env.into_logical(), max_parallelism)
    }

    /// What checkers can verify of `spec`'s job's output.
    pub fn output_checks(&self, spec: &JobSpec) -> Result<OutputChecks, JobError> {
        Ok(self.get(&spec.name)?.output)
    }

    /// Every log the job's sources read, by source name: the topics a log server serves to
    /// it (`log=rill://HOST:PORT`), whatever `log` says. For whoever runs the job's inputs
    /// (the harness, `rill log-server` given a job on its own command line): paths are not
    /// confined.
    pub fn inputs(&self, spec: &JobSpec) -> Result<Vec<NamedLog>, JobError> {
        let builder = self.get(&spec.name)?.build;
        let mut params = Params::new(spec, &FileAccess::Anywhere);
        let parallelism = params.get("parallelism", 2u32)?;
        builder(&mut params, &StreamEnv::new(parallelism))?;
        let inputs = std::mem::take(&mut params.inputs);
        params.finish()?;
        Ok(inputs)
    }

    /// The partitioned log the job's (first) source reads, as the job itself derives it from
    /// its parameters: what the harness compares delivered output against.
    pub fn primary_input(&self, spec: &JobSpec) -> Result<Arc<dyn PartitionedLog>, JobError> {
        self.inputs(spec)?
            .into_iter()
            .next()
            .map(|(_, log)| log)
            .ok_or_else(|| JobError::Internal(format!("job {} reads no log", spec.name)))
    }
}

/// [`JobRegistry::build`] on the built-in jobs, with paths unconfined: for tests and tools
/// that build a graph in their own process (a node confines them).
pub fn build_job(spec: &JobSpec, max_parallelism: u32) -> Result<JobGraph, JobError> {
    builtin().build(spec, max_parallelism, &FileAccess::Anywhere)
}

/// [`JobRegistry::inputs`] on the built-in jobs.
pub fn job_inputs(spec: &JobSpec) -> Result<Vec<NamedLog>, JobError> {
    builtin().inputs(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_resolves_its_own_jobs_and_lists_them_for_an_unknown_one() {
        let only_etl = JobRegistry::new()
            .with(*builtin().get("etl").unwrap())
            .unwrap();
        assert_eq!(only_etl.names(), vec!["etl"]);
        assert!(only_etl
            .build(&JobSpec::new("etl"), 128, &FileAccess::Anywhere)
            .is_ok());
        let err = only_etl
            .build(&JobSpec::new("keyed-count"), 128, &FileAccess::Anywhere)
            .unwrap_err();
        assert!(err.to_string().contains("keyed-count"), "{err}");
        assert!(matches!(err, JobError::UnknownJob { ref known, .. } if known == "etl"));
    }

    #[test]
    fn a_name_can_be_registered_once() {
        let twice = builtin().with_all(&builtin());
        assert!(matches!(twice, Err(JobError::DuplicateJob { .. })));
        assert_eq!(builtin().names().len(), JOBS.len());
    }
}
