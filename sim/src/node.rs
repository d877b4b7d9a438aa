//! The names of a simulated cluster's nodes: one type, one spelling (`jm`, `tm-N`,
//! `source-log`, `sink-store`, `checkpoint-store`, `client`, and `harness` for what the harness
//! itself does). Scenario files, fault targets, events and reports all go through it.

use std::fmt;
use std::str::FromStr;

use crate::scenario::{CHECKPOINT_STORE, SINK_STORE, SOURCE_LOG};

/// A node of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeName {
    JobManager,
    /// `tm-N`, numbered from 1.
    TaskManager(u32),
    SourceLog,
    SinkStore,
    CheckpointStore,
    Client,
    /// Not a node: the harness's own doings (faults applied, OOM kills).
    Harness,
    /// A name of no other form (a node another tool named).
    Other(String),
}

impl NodeName {
    /// The TaskManager's number, if this is one.
    pub fn taskmanager(&self) -> Option<u32> {
        match self {
            NodeName::TaskManager(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeName::JobManager => f.write_str("jm"),
            NodeName::TaskManager(n) => write!(f, "tm-{n}"),
            NodeName::SourceLog => f.write_str(SOURCE_LOG),
            NodeName::SinkStore => f.write_str(SINK_STORE),
            NodeName::CheckpointStore => f.write_str(CHECKPOINT_STORE),
            NodeName::Client => f.write_str("client"),
            NodeName::Harness => f.write_str("harness"),
            NodeName::Other(name) => f.write_str(name),
        }
    }
}

impl FromStr for NodeName {
    type Err = std::convert::Infallible;

    /// Every string is some node name; `Other` holds those of no known form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "jm" => NodeName::JobManager,
            SOURCE_LOG => NodeName::SourceLog,
            SINK_STORE => NodeName::SinkStore,
            CHECKPOINT_STORE => NodeName::CheckpointStore,
            "client" => NodeName::Client,
            "harness" => NodeName::Harness,
            _ => match s.strip_prefix("tm-").and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => NodeName::TaskManager(n),
                _ => NodeName::Other(s.to_string()),
            },
        })
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        s.parse().unwrap_or_else(|never| match never {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "jm",
            "tm-1",
            "tm-12",
            "source-log",
            "sink-store",
            "checkpoint-store",
            "client",
            "harness",
            "db",
        ] {
            assert_eq!(NodeName::from(name).to_string(), name);
        }
        assert_eq!(NodeName::from("tm-3").taskmanager(), Some(3));
        assert_eq!(NodeName::from("tm-0"), NodeName::Other("tm-0".into()));
        assert_eq!(NodeName::from("tm-x").taskmanager(), None);
    }
}
