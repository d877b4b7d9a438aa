//! Recovery phases: which cluster events mark a recovery step, how each step is named and
//! coloured, and the timeline's vertical markers built from them.

use rill::events::ClusterEvent;
use rill::graph::{ExecutionState, JobStatus};

use crate::events::RecordedEvent;

/// A recovery step, as the cluster's events mark it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PhaseKind {
    Detection,
    Failure,
    Restart,
    Deploy,
    Running,
    Finished,
}

impl PhaseKind {
    pub(super) const ALL: [PhaseKind; 6] = [
        PhaseKind::Detection,
        PhaseKind::Failure,
        PhaseKind::Restart,
        PhaseKind::Deploy,
        PhaseKind::Running,
        PhaseKind::Finished,
    ];

    /// The recovery step an event marks, if any.
    fn of(event: &ClusterEvent) -> Option<PhaseKind> {
        match event {
            ClusterEvent::TaskManagerLost { .. } => Some(PhaseKind::Detection),
            ClusterEvent::FailoverStarted { .. } | ClusterEvent::RestartsExhausted { .. } => {
                Some(PhaseKind::Failure)
            }
            ClusterEvent::SubtaskStateChanged {
                state: ExecutionState::Failed,
                ..
            } => Some(PhaseKind::Failure),
            ClusterEvent::Rebalanced { .. } => Some(PhaseKind::Restart),
            ClusterEvent::TasksDeployed { .. } => Some(PhaseKind::Deploy),
            ClusterEvent::JobStatusChanged { status, .. } => match status {
                JobStatus::Restarting => Some(PhaseKind::Restart),
                JobStatus::Running => Some(PhaseKind::Running),
                JobStatus::Finished => Some(PhaseKind::Finished),
                JobStatus::Failed => Some(PhaseKind::Failure),
                _ => None,
            },
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            PhaseKind::Detection => "detection",
            PhaseKind::Failure => "failed",
            PhaseKind::Restart => "restart",
            PhaseKind::Deploy => "deploying",
            PhaseKind::Running => "running",
            PhaseKind::Finished => "finished",
        }
    }

    pub(super) fn color(self) -> &'static str {
        match self {
            PhaseKind::Detection => "#ef6c00",
            PhaseKind::Failure => "#c62828",
            PhaseKind::Restart => "#6a1b9a",
            PhaseKind::Deploy => "#1565c0",
            PhaseKind::Running => "#2e7d32",
            PhaseKind::Finished => "#455a64",
        }
    }
}

/// One vertical marker: consecutive events of one phase at the same millisecond share a
/// marker and its tooltip.
pub(super) struct Marker<'h> {
    pub(super) at_ms: u64,
    pub(super) kind: PhaseKind,
    pub(super) lines: Vec<&'h RecordedEvent>,
}

pub(super) fn phase_markers(events: &[RecordedEvent]) -> Vec<Marker<'_>> {
    let mut markers: Vec<Marker<'_>> = Vec::new();
    for line in events {
        let Some(kind) = PhaseKind::of(&line.event) else {
            continue;
        };
        let at_ms = line.at.as_millis() as u64;
        match markers.last_mut() {
            Some(m) if m.at_ms == at_ms && m.kind == kind => m.lines.push(line),
            _ => markers.push(Marker {
                at_ms,
                kind,
                lines: vec![line],
            }),
        }
    }
    markers
}
