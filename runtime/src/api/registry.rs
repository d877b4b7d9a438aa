//! The job registry's machinery: a job is named by a [`JobSpec`] (name plus parameters) and
//! built by a [`JobBuilder`], a function compiled into the binary, so the JobManager and every
//! TaskManager derive the same graph from a name and parameters. [`Params`] hands a builder
//! its parameters and records which it read (and which logs its sources read).
//!
//! The built-in jobs themselves, their record types and the `JOBS` table live in
//! [`crate::jobs`]; they are re-exported here so `rill::api::registry::{JOBS, job_inputs,
//! KeyCount, ..}` keep working.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::file_access::FileAccess;
use super::stream::StreamEnv;
use crate::connectors::log::PartitionedLog;
pub use crate::error::JobError;
// The built-in jobs, re-exported at their old paths.
pub use crate::jobs::{
    build_job, job_inputs, words_of, AdEvent, AdStats, Event, KeyCount, WordCount, JOBS,
};

/// A job to run: a registered name plus its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's name in the registry.
    pub name: String,
    /// Its parameters, by name, as given (the builder parses them).
    pub params: BTreeMap<String, String>,
}

impl JobSpec {
    /// The job `name` with no parameters.
    pub fn new(name: &str) -> Self {
        JobSpec {
            name: name.to_string(),
            params: BTreeMap::new(),
        }
    }

    /// Sets parameter `key` to `value`.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.params.insert(key.to_string(), value.to_string());
        self
    }

    /// Parses `key=value` arguments.
    pub fn with_args<'a>(
        mut self,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, JobError> {
        for arg in args {
            let (k, v) = arg.split_once('=').ok_or_else(|| JobError::InvalidParam {
                param: arg.to_string(),
                reason: "expected key=value".into(),
            })?;
            self.params
                .insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(self)
    }
}

/// Job parameters with typed accessors; every parameter a job reads is recorded so that
/// anything left over is reported as unknown rather than silently ignored.
pub struct Params<'a> {
    job: &'a str,
    raw: &'a BTreeMap<String, String>,
    accepted: BTreeSet<&'static str>,
    /// The logs the job's sources read, by source name, as the job builds them.
    pub(crate) inputs: Vec<NamedLog>,
    /// The directories the building node lets path parameters name.
    files: &'a FileAccess,
}

impl<'a> Params<'a> {
    pub(crate) fn new(spec: &'a JobSpec, files: &'a FileAccess) -> Self {
        Params {
            job: &spec.name,
            raw: &spec.params,
            accepted: BTreeSet::new(),
            inputs: Vec::new(),
            files,
        }
    }

    /// Path parameter `key`, if given and inside the directories the building node allows
    /// (`security.files.allowed-dirs`); records that the job reads `key`. A job's own path
    /// parameters go through here, so they are confined as the built-in ones are.
    pub fn path(&mut self, key: &'static str) -> Result<Option<PathBuf>, JobError> {
        let raw: String = self.get(key, String::new())?;
        if raw.is_empty() {
            return Ok(None);
        }
        self.allowed_path(key, Path::new(&raw)).map(Some)
    }

    /// `path`, named by parameter `param`, if the building node allows it (see
    /// [`Params::path`]), for a path found inside another parameter's value.
    pub fn allowed_path(&self, param: &str, path: &Path) -> Result<PathBuf, JobError> {
        self.files.check(param, path)
    }

    /// Parameter `key` parsed as a `T`, or `default` when it is not given; records that the job
    /// reads `key`.
    pub fn get<T: std::str::FromStr>(
        &mut self,
        key: &'static str,
        default: T,
    ) -> Result<T, JobError>
    where
        T::Err: std::fmt::Display,
    {
        self.accepted.insert(key);
        match self.raw.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| JobError::InvalidParam {
                param: key.into(),
                reason: format!("'{v}': {e}"),
            }),
        }
    }

    /// [`Params::get`] for a number that must lie within `range`: parameters arrive from any
    /// client, and a count such as `partitions=4000000000` would otherwise become one
    /// allocation per partition on every TaskManager.
    pub fn get_within<T>(
        &mut self,
        key: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, JobError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let value = self.get(key, default)?;
        if !range.contains(&value) {
            return Err(JobError::InvalidParam {
                param: key.into(),
                reason: format!("{value} is outside {}..={}", range.start(), range.end()),
            });
        }
        Ok(value)
    }

    /// Fails if the spec has a parameter the builder never read.
    pub(crate) fn finish(self) -> Result<(), JobError> {
        match self
            .raw
            .keys()
            .find(|k| !self.accepted.contains(k.as_str()))
        {
            None => Ok(()),
            Some(k) => Err(JobError::UnknownParam {
                job: self.job.to_string(),
                param: k.clone(),
                accepted: self.accepted.iter().copied().collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// Builds a job's operators into a [`StreamEnv`], reading its parameters from [`Params`].
pub type JobBuilder = fn(&mut Params<'_>, &StreamEnv) -> Result<(), JobError>;

/// A log with the name of the source that reads it.
pub type NamedLog = (String, Arc<dyn PartitionedLog>);
