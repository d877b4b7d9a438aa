//! What placement means for memory: the task load and the memory the memory model charges each
//! TaskManager for a placement, and the smallest `taskmanager.memory.process.size` that avoids
//! an OOM kill. Used by `rill bench-balance` to compare the load-balance modes.

use std::collections::BTreeMap;

use super::scheduler::{placement_for, TaskManagerSlots};
use crate::config::{Configuration, LoadBalanceMode};
use crate::graph::{ExecutionSlotSharingGroup, JobVertex, TaskManagerId, VertexId};

/// A job shape: a chain of vertices, each reading all-to-all from the one before.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The shape's name, for the report.
    pub name: String,
    /// (name, parallelism, weight) in topological order.
    pub vertices: Vec<(String, u32, u32)>,
    /// TaskManagers in the cluster.
    pub taskmanagers: u32,
    /// Slots per TaskManager.
    pub slots: u32,
}

/// A placement's figures under one mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// The load-balance mode placed under.
    pub mode: LoadBalanceMode,
    /// Max minus min tasks per TaskManager.
    pub task_range: u32,
    /// Accounted memory of the fullest TaskManager: the smallest process size without OOM.
    pub max_memory: u64,
    /// Mean accounted memory over the TaskManagers.
    pub mean_memory: u64,
}

impl Shape {
    fn job_vertices(&self) -> Vec<JobVertex> {
        self.vertices
            .iter()
            .enumerate()
            .map(|(i, (name, parallelism, weight))| JobVertex {
                id: VertexId(i as u32),
                name: name.clone(),
                parallelism: *parallelism,
                nodes: Vec::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                slot_sharing_group: "default".into(),
                weight: *weight,
                rate_limit: None,
                output_hold: std::time::Duration::ZERO,
                is_source: i == 0,
                is_sink: i + 1 == self.vertices.len(),
            })
            .collect()
    }

    /// Bytes the memory model charges one subtask of vertex `i`: its overhead, its input
    /// gate's credit (exclusive buffers per channel plus the floating ones) and its output
    /// queues (one per consumer subtask), at their bound, as under back-pressure.
    fn subtask_bytes(&self, i: usize, config: &Configuration) -> u64 {
        let segment = config.buffer_size() as u64;
        let per_channel = u64::from(config.buffers_per_channel());
        let inputs = match i {
            0 => 0,
            _ => {
                u64::from(self.vertices[i - 1].1) * per_channel
                    + u64::from(config.floating_buffers_per_gate())
            }
        };
        let outputs = self
            .vertices
            .get(i + 1)
            .map_or(0, |next| u64::from(next.1) * (per_channel + 1));
        config.task_overhead_bytes() + (inputs + outputs) * segment
    }
}

/// Places `shape` under `mode` and measures it; None if the cluster lacks slots.
pub fn evaluate(shape: &Shape, mode: LoadBalanceMode, config: &Configuration) -> Option<Figures> {
    let vertices = shape.job_vertices();
    let groups = ExecutionSlotSharingGroup::for_vertices(&vertices, mode);
    let tms: Vec<TaskManagerSlots> = (1..=u64::from(shape.taskmanagers))
        .map(|tm| TaskManagerSlots {
            tm: TaskManagerId(tm),
            total: shape.slots,
            free: (0..shape.slots).collect(),
            placed: Default::default(),
        })
        .collect();
    let offers = placement_for(mode, None).place_on(&groups, &tms)?;
    let mut tasks: BTreeMap<TaskManagerId, u32> = tms.iter().map(|t| (t.tm, 0)).collect();
    let mut memory: BTreeMap<TaskManagerId, u64> = tms.iter().map(|t| (t.tm, 0)).collect();
    for (group, offer) in groups.iter().zip(&offers) {
        *tasks.entry(offer.tm).or_default() += group.tasks() as u32;
        let bytes: u64 = group
            .members
            .iter()
            .map(|(v, _)| shape.subtask_bytes(v.0 as usize, config))
            .sum();
        *memory.entry(offer.tm).or_default() += bytes;
    }
    let range = tasks.values().max().unwrap_or(&0) - tasks.values().min().unwrap_or(&0);
    let max_memory = memory.values().copied().max().unwrap_or(0);
    let mean_memory = memory.values().sum::<u64>() / memory.len().max(1) as u64;
    Some(Figures {
        mode,
        task_range: range,
        max_memory,
        mean_memory,
    })
}

/// The shape from the WeChat write-up: 16 TaskManagers x 32 slots, a 64-partition source (4
/// per TaskManager is ideal) and downstream operators of other parallelisms.
pub fn wechat_shape() -> Shape {
    Shape {
        name: "wechat 16x32".into(),
        vertices: vec![
            ("source".into(), 64, 1),
            ("parse".into(), 256, 1),
            ("enrich".into(), 256, 1),
            ("sink".into(), 512, 1),
        ],
        taskmanagers: 16,
        slots: 32,
    }
}

/// Job shapes drawn from a seed (deterministic): 2 to 5 chained vertices, parallelisms up to
/// the cluster's slots, 4 to 16 TaskManagers with 2 to 8 slots.
pub fn generated_shapes(count: u32, seed: u64) -> Vec<Shape> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let (taskmanagers, slots) = (rng.gen_range(4..=16), rng.gen_range(2..=8));
            let vertices = (0..rng.gen_range(2..=5))
                .map(|v| (format!("v{v}"), rng.gen_range(1..=taskmanagers * slots), 1))
                .collect();
            Shape {
                name: format!("generated-{i}"),
                vertices,
                taskmanagers,
                slots,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_mode_needs_less_memory_than_first_fit_on_the_wechat_shape() {
        let config = Configuration::new();
        let none = evaluate(&wechat_shape(), LoadBalanceMode::None, &config).expect("fits");
        let tasks = evaluate(&wechat_shape(), LoadBalanceMode::Tasks, &config).expect("fits");
        assert!(tasks.task_range <= 1, "{tasks:?}");
        assert!(tasks.max_memory < none.max_memory, "{tasks:?} vs {none:?}");
        // Every TaskManager is charged the same when the load is even.
        assert_eq!(tasks.max_memory, tasks.mean_memory);
    }

    #[test]
    fn a_shape_that_does_not_fit_has_no_figures() {
        let shape = Shape {
            name: "big".into(),
            vertices: vec![("a".into(), 100, 1)],
            taskmanagers: 2,
            slots: 2,
        };
        assert!(evaluate(&shape, LoadBalanceMode::Tasks, &Configuration::new()).is_none());
    }

    #[test]
    fn generated_shapes_are_deterministic() {
        let a: Vec<_> = generated_shapes(5, 7)
            .into_iter()
            .map(|s| s.vertices)
            .collect();
        let b: Vec<_> = generated_shapes(5, 7)
            .into_iter()
            .map(|s| s.vertices)
            .collect();
        assert_eq!(a, b);
    }
}
