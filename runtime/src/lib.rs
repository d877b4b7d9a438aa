//! rill: a Flink-style stream-processing runtime.
//!
//! The same code runs on real tokio and, compiled with `--cfg madsim`, inside madsim's seeded
//! simulator: the crate depends on `tokio` = madsim-tokio and knows nothing of the simulator.
//! Module layout mirrors the concepts a Flink engineer knows (see ARCHITECTURE.md).

#![warn(missing_docs)]

pub mod api;
pub mod buggify;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connectors;
pub mod error;
pub mod events;
pub mod graph;
pub mod ids;
pub mod jobmanager;
pub mod jobs;
pub mod memory;
pub mod messages;
pub mod network;
pub mod rpc;
pub mod state;
pub mod taskmanager;
pub mod util;

pub use api::{DataStream, JobSpec, KeyedStream, StreamEnv};
pub use config::Configuration;
