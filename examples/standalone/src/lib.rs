//! page-views: views per page, counted exactly once, written as a user of rill writes a job.
//!
//! The job reads view events from a log through rill's standard source, maps them to its
//! own record type, counts views per page in keyed state and writes each page's running count
//! through rill's standard sink. Its output says nothing of where it came from, so the
//! harness checks exactly-once by comparing it with a fault-free run of the same seed.

use rill::api::registry::Params;
use rill::api::{JobError, Origin, OutputChecks, StreamEnv, Traceable};
use rill::connectors::log::LogRecord;
use rill::jobs::io::{add_sink, log_source, SinkParams, SourceParams};
use rill::jobs::{JobDef, JobRegistry};
use serde::{Deserialize, Serialize};

/// One page view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct View {
    pub user: u64,
    pub page: u64,
}

/// A page's views so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCount {
    pub page: u64,
    pub views: u64,
}

impl Traceable for PageCount {
    fn origin(&self) -> Option<Origin> {
        None
    }
}

/// The pages views are spread over.
pub const PAGES: u64 = 50;

/// Parameters: the standard source and sink ones, and `parallelism` (default 2).
fn page_views(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let source = SourceParams::read(p, 0, parallelism)?;
    let sink = SinkParams::read(p)?;
    let counts = log_source(p, env, "views", source)
        .map("view", |r: LogRecord| View {
            user: r.key,
            page: r.key % PAGES,
        })
        .key_by(|v: &View| v.page)
        .aggregate(
            "count",
            || 0u64,
            |n, _| *n += 1,
            |page, n, _| PageCount {
                page: *page,
                views: *n,
            },
        )
        .parallelism(parallelism);
    add_sink(counts, sink, parallelism);
    Ok(())
}

/// This crate's jobs.
pub fn registry() -> JobRegistry {
    JobRegistry::new()
        .with(JobDef {
            name: "page-views",
            description: "views -> key_by page -> running count -> sink",
            build: page_views,
            output: OutputChecks::opaque::<PageCount>(),
        })
        .expect("one job")
}
