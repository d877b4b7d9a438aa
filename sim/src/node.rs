//! The names of a simulated cluster's nodes: one type, one spelling (`jm`, `tm-N`,
//! `source-log`, `sink-store`, `checkpoint-store`, `client`, and `harness` for what the harness
//! itself does). Scenario files, fault targets, events and reports all go through it.

use std::fmt;
use std::str::FromStr;

use crate::scenario::{CHECKPOINT_STORE, SINK_STORE, SOURCE_LOG};

/// A node of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeName {
    /// `jm`: the JobManager.
    JobManager,
    /// `tm-N`, numbered from 1.
    TaskManager(u32),
    /// `source-log`: the log server the job's sources read.
    SourceLog,
    /// `sink-store`: the sink store the job's sinks write to.
    SinkStore,
    /// `checkpoint-store`: where the JobManager keeps completed checkpoints.
    CheckpointStore,
    /// `client`: the node that submits the job and follows its status.
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

    /// Every string is some node name; `Other` holds those of no known form. Only the one
    /// spelling of a name is that name (`tm-01` or `tm-+1` is no `tm-1`), so a parsed name
    /// always displays as the string it came from.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(NodeName::known(s).unwrap_or_else(|| NodeName::Other(s.to_string())))
    }
}

impl NodeName {
    /// The name `s` spells, if it has a form other than `Other`.
    fn known(s: &str) -> Option<NodeName> {
        Some(match s {
            "jm" => NodeName::JobManager,
            SOURCE_LOG => NodeName::SourceLog,
            SINK_STORE => NodeName::SinkStore,
            CHECKPOINT_STORE => NodeName::CheckpointStore,
            "client" => NodeName::Client,
            "harness" => NodeName::Harness,
            _ => {
                let digits = s.strip_prefix("tm-")?;
                let n: u32 = digits.parse().ok()?;
                if n == 0 || n.to_string() != digits {
                    return None;
                }
                NodeName::TaskManager(n)
            }
        })
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        s.parse().unwrap_or_else(|never| match never {})
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> Self {
        NodeName::known(&s).unwrap_or(NodeName::Other(s))
    }
}

/// A name equals the string that parses to it (`NodeName::TaskManager(2) == "tm-2"`).
impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        match NodeName::known(other) {
            Some(known) => *self == known,
            None => matches!(self, NodeName::Other(name) if name == other),
        }
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
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

    #[test]
    fn only_the_canonical_spelling_is_a_taskmanager() {
        for name in ["tm-01", "tm-+1", "tm- 1", "tm-", "tm-4294967296"] {
            assert_eq!(NodeName::from(name), NodeName::Other(name.into()), "{name}");
            assert_eq!(NodeName::from(name.to_string()).to_string(), name);
        }
        assert_eq!(
            NodeName::from("tm-4294967295".to_string()).taskmanager(),
            Some(u32::MAX)
        );
    }

    #[test]
    fn names_equal_their_spelling() {
        assert_eq!(NodeName::TaskManager(2), "tm-2");
        assert!(NodeName::TaskManager(2) != "tm-02");
        assert_eq!(NodeName::JobManager, "jm");
        assert_eq!(NodeName::from("db"), "db");
        assert!(NodeName::Other("db".into()) != "jm");
    }
}
