//! Scheduling and deployment: placing a job's slot-sharing groups on slots, sending its tasks
//! to their TaskManagers with the state to restore and where their inputs are, and telling the
//! tasks that keep running where restarted peers run now (Flink's UpdatePartitionInfo).

use std::sync::Arc;

use super::checkpoint_coordinator::CompletedCheckpoint;
use super::job::Job;
use super::scheduler::{placement_for, slot_sharing_groups, TaskManagerSlots};
use super::JobManager;
use crate::config::FailoverStrategy;
use crate::connectors::write_grant::{WriteGrant, WriteTarget};
use crate::events::{ClusterEvent, Deployment};
use crate::graph::{
    ExecutionAttemptId, ExecutionSlotSharingGroup, ExecutionState, ExecutionVertex,
    InputChannelSpec, JobId, JobStatus, SubtaskId, TaskManagerId,
};
use crate::network::SubpartitionKey;
use crate::rpc::JmToTm;
use crate::state::TaskRestore;
use crate::taskmanager::InputLocation;

/// The pool's view of TaskManagers, with what `job` already runs on each, so a partial
/// restart in `tasks` mode evens out the whole job, not just the restarted groups.
fn with_placed_load(mut tms: Vec<TaskManagerSlots>, job: &Job) -> Vec<TaskManagerSlots> {
    let placement = &job.placement;
    for (group, slot) in placement.groups.iter().zip(&placement.group_slots) {
        if let Some(t) = slot.and_then(|o| tms.iter_mut().find(|t| t.tm == o.tm)) {
            t.placed.add(group);
        }
    }
    tms
}

impl JobManager {
    /// Schedules every created job whose slots are now available, and redeploys the pending
    /// subtasks of partial restarts whose back-off is over.
    pub(super) fn schedule_waiting(&mut self) {
        let waiting: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status() == JobStatus::Created)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.try_schedule(id);
        }
        let partial: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| {
                j.status() == JobStatus::Running
                    && j.recovery.restart_at.is_none()
                    && !j.recovery.pending.is_empty()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in partial {
            self.redeploy_pending(id);
        }
    }

    /// Places and deploys the whole job, once the pool has a slot for every group.
    fn try_schedule(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // `taskmanager.load-balance.mode` decides both how subtasks are grouped into slots and
        // how the groups are spread over TaskManagers (the whole job is placed again after a
        // failover, so the balance holds then too).
        let mode = job.config.load_balance_mode();
        let groups = slot_sharing_groups(&job.eg.job, mode);
        let Some(offers) = placement_for(mode, None).place_on(&groups, &self.pool.taskmanagers())
        else {
            return self.waiting_for_slots(id, groups.len());
        };
        for (group, offer) in groups.iter().zip(&offers) {
            self.pool.allocate(*offer, id);
            for &(vertex, subtask) in &group.members {
                let Some(ev) = job.eg.get_mut(vertex, subtask) else {
                    continue;
                };
                ev.state = ExecutionState::Scheduled;
                ev.location = self.tms.get(&offer.tm).map(|t| t.name.clone());
                job.placement.attempts.insert(ev.attempt_id(), offer.tm);
            }
        }
        job.placement.group_slots = offers.iter().copied().map(Some).collect();
        job.placement.groups = groups;
        job.set_status(JobStatus::Running, &self.services.events);
        job.checkpoints.start(tokio::time::Instant::now());
        let all: Vec<SubtaskId> = job
            .eg
            .all()
            .map(|ev| SubtaskId::new(ev.vertex, ev.subtask))
            .collect();
        if let Err(reason) = self.deploy(id, &all) {
            self.fail_job(id, reason);
        }
        self.broadcast_status(id);
    }

    fn waiting_for_slots(&self, job: JobId, needed: usize) {
        self.events().emit(ClusterEvent::WaitingForSlots {
            job,
            needed: needed as u32,
            free: self.pool.free().len() as u32,
        });
    }

    /// Redeploys the subtasks of a partial restart, once every group they belong to has a slot.
    fn redeploy_pending(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // A group needs a slot if it has none, or its TaskManager was lost since. Not one whose
        // subtasks all finished (its TaskManager lost while holding only finished tasks, which
        // no failover restarted): a slot for it would run nothing, yet count as load where it
        // went. A later failover that restarts them finds it homeless and places it then.
        job.placement.forget_lost(|tm| self.tms.contains_key(&tm));
        let eg = &job.eg;
        let finished = |g: &ExecutionSlotSharingGroup| {
            g.members.iter().all(|&(v, s)| {
                eg.get(v, s)
                    .is_some_and(|ev| ev.state == ExecutionState::Finished)
            })
        };
        let homeless: Vec<usize> = (0..job.placement.groups.len())
            .filter(|g| job.placement.group_slots[*g].is_none())
            .filter(|g| !finished(&job.placement.groups[*g]))
            .collect();
        if !homeless.is_empty() {
            let groups: Vec<ExecutionSlotSharingGroup> = homeless
                .iter()
                .map(|g| job.placement.groups[*g].clone())
                .collect();
            let mode = job.config.load_balance_mode();
            let tms = with_placed_load(self.pool.taskmanagers(), job);
            let Some(offers) = placement_for(mode, None).place_on(&groups, &tms) else {
                return self.waiting_for_slots(id, groups.len());
            };
            for (g, offer) in homeless.iter().zip(offers) {
                self.pool.allocate(offer, id);
                job.placement.group_slots[*g] = Some(offer);
            }
        }
        let subtasks: Vec<SubtaskId> = std::mem::take(&mut job.recovery.pending)
            .into_iter()
            .collect();
        let placement = &mut job.placement;
        for (group, slot) in placement.groups.iter().zip(&placement.group_slots) {
            let Some(offer) = slot else {
                continue;
            };
            for member in &group.members {
                if !subtasks.contains(&SubtaskId::new(member.0, member.1)) {
                    continue;
                }
                if let Some(ev) = job.eg.get_mut(member.0, member.1) {
                    ev.state = ExecutionState::Scheduled;
                    ev.location = self.tms.get(&offer.tm).map(|t| t.name.clone());
                    placement.attempts.insert(ev.attempt_id(), offer.tm);
                }
            }
        }
        if let Err(reason) = self.deploy(id, &subtasks) {
            return self.fail_job(id, reason);
        }
        self.update_partition_infos(id, &subtasks);
        self.broadcast_status(id);
    }

    /// Deploys the current attempts of `subtasks`, each with the state of the latest completed
    /// checkpoint and the locations of its producers' current attempts. What was sent is one
    /// [`ClusterEvent::TasksDeployed`], even when a later task could not be sent.
    fn deploy(&mut self, id: JobId, subtasks: &[SubtaskId]) -> Result<(), String> {
        let job = self.jobs.get_mut(&id).ok_or("unknown job")?;
        for s in subtasks {
            if let Some(ev) = job.eg.get_mut(s.vertex, s.subtask) {
                ev.state = ExecutionState::Deploying;
            }
        }
        let job = &self.jobs[&id];
        let latest = job.checkpoints.latest().cloned();
        let mut deployed = Vec::new();
        let result = subtasks
            .iter()
            .try_for_each(|s| self.deploy_one(job, *s, latest.as_ref(), &mut deployed));
        if !deployed.is_empty() {
            self.events().emit(ClusterEvent::TasksDeployed {
                job: id,
                tasks: deployed,
                checkpoint: latest.map(|c| c.id),
            });
        }
        result
    }

    fn deploy_one(
        &self,
        job: &Job,
        s: SubtaskId,
        latest: Option<&Arc<CompletedCheckpoint>>,
        deployed: &mut Vec<Deployment>,
    ) -> Result<(), String> {
        let graph = &job.eg.job;
        let ev = job.eg.get(s.vertex, s.subtask).ok_or("unknown subtask")?;
        let attempt = ev.attempt_id();
        let tm = job
            .placement
            .of(&attempt)
            .ok_or_else(|| format!("{attempt} has no slot"))?;
        let inputs = graph
            .input_channels(ev.vertex, ev.subtask)
            .iter()
            .map(|ch| self.input_location(job, ch, (tm, attempt)))
            .collect::<Result<Vec<_>, &str>>()?;
        let input_age = job.checkpoints.latest_age(tokio::time::Instant::now());
        let restore = latest.map(|c| TaskRestore {
            input_age,
            ..c.restore_for(graph, ev.vertex, ev.subtask)
        });
        let msg = JmToTm::DeployTask {
            job: job.id,
            spec: job.spec.clone(),
            // Not the JobManager's own secret or TLS files: each TaskManager has its own.
            config: job.config.job_settings(),
            attempt,
            inputs,
            restore,
            finished_consumers: job.finished_consumers(ev.vertex, ev.subtask),
            sink_grants: self.sink_grants(job, attempt, tm),
        };
        let entry = self.tms.get(&tm).ok_or("taskmanager is gone")?;
        if entry.out.send(msg).is_err() {
            // Its connection is gone, and its loss is already on its way to this actor: the
            // loss fails over what was placed there, this attempt with it. (Failing the job
            // here would turn one lost TaskManager into a lost job.)
            tracing::info!(%attempt, tm = %entry.name, "taskmanager unreachable; its loss will restart this task");
            return Ok(());
        }
        let slot = job
            .placement
            .groups
            .iter()
            .zip(&job.placement.group_slots)
            .find(|(g, _)| g.members.contains(&(s.vertex, s.subtask)))
            .and_then(|(_, slot)| *slot)
            .map(|o| o.slot);
        deployed.push(Deployment {
            attempt,
            taskmanager: entry.name.clone(),
            slot,
        });
        Ok(())
    }

    /// The write grant of each sink chained into `attempt`, deployed on `tm`: the only writes a
    /// sink store that shares this JobManager's write key applies.
    fn sink_grants(
        &self,
        job: &Job,
        attempt: ExecutionAttemptId,
        tm: TaskManagerId,
    ) -> Vec<(String, WriteGrant)> {
        let (Some(key), Some(entry)) = (&self.write_key, self.tms.get(&tm)) else {
            return Vec::new();
        };
        job.eg
            .job
            .sink_names(attempt.vertex)
            .map(|sink| {
                let target = WriteTarget {
                    job: job.id,
                    sink,
                    subtask: attempt.subtask,
                    attempt: attempt.attempt,
                    taskmanager: &entry.name,
                };
                (sink.to_owned(), key.grant(&target))
            })
            .collect()
    }

    /// Where `consumer`, on TaskManager `consumer_tm`, reads input channel `ch` from: the
    /// producer's current attempt, locally or at its TaskManager's data address, with the
    /// grant the producer's data server asks of it.
    fn input_location(
        &self,
        job: &Job,
        ch: &InputChannelSpec,
        (consumer_tm, consumer): (TaskManagerId, ExecutionAttemptId),
    ) -> Result<InputLocation, &'static str> {
        let producer_vertex = job.eg.job.edge(ch.edge).source;
        let producer = job
            .eg
            .get(producer_vertex, ch.producer_subtask)
            .ok_or("missing producer")?
            .attempt_id();
        let producer_tm = job.placement.of(&producer).ok_or("producer has no slot")?;
        let entry = self
            .tms
            .get(&producer_tm)
            .ok_or("producer's taskmanager is gone")?;
        let data_addr = (producer_tm != consumer_tm).then(|| entry.data_addr.clone());
        let consumer_name = &self
            .tms
            .get(&consumer_tm)
            .ok_or("consumer's taskmanager is gone")?
            .name;
        let key = SubpartitionKey {
            job: job.id,
            producer,
            edge: ch.edge,
            index: ch.subpartition,
        };
        Ok(InputLocation {
            producer,
            edge: ch.edge,
            subpartition: ch.subpartition,
            data_addr,
            taskmanager: entry.name.clone(),
            grant: entry.claim_key.grant(&key, consumer_name, consumer),
        })
    }

    /// `taskmanager` failover: tells every consumer that kept running where its restarted
    /// producers run now, so its paused channels reconnect (Flink's UpdatePartitionInfo).
    fn update_partition_infos(&self, id: JobId, restarted: &[SubtaskId]) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let graph = &job.eg.job;
        // The restarted producers send the barriers of checkpoints triggered from now on only.
        let stale_through = job.checkpoints.last_triggered();
        for p in restarted {
            for &edge in &graph.vertex(p.vertex).outputs {
                let cv = graph.edge(edge).target;
                for cs in 0..graph.vertex(cv).parallelism {
                    if restarted.contains(&SubtaskId::new(cv, cs)) {
                        continue; // deployed with the new location already
                    }
                    let Some(consumer) = job.eg.get(cv, cs).map(|ev| ev.attempt_id()) else {
                        continue;
                    };
                    let Some(tm) = job.placement.of(&consumer) else {
                        continue;
                    };
                    let channels = graph.input_channels(cv, cs);
                    for (index, ch) in channels.iter().enumerate() {
                        if ch.edge != edge || ch.producer_subtask != p.subtask {
                            continue;
                        }
                        let (Ok(location), Some(entry)) = (
                            self.input_location(job, ch, (tm, consumer)),
                            self.tms.get(&tm),
                        ) else {
                            continue;
                        };
                        let _ = entry.out.send(JmToTm::UpdatePartitionInfo {
                            job: id,
                            consumer,
                            index: index as u32,
                            location,
                            stale_through,
                        });
                    }
                }
            }
        }
    }

    /// A consumer finished while producers of its inputs still run: under `taskmanager`
    /// failover, a producer restarted from a checkpoint replays what the consumer already had,
    /// into a subpartition nobody will read again. Its TaskManager drops that queue, so the
    /// producer discards instead of filling it and blocking (found by a swarm seed where a
    /// consumer finished while a replaying producer was being moved). Only unclaimed queues
    /// go: a finished producer's end of partition, waiting for a restarted consumer, stays.
    pub(super) fn release_finished_consumer(&self, id: JobId, consumer: ExecutionAttemptId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        if job.config.failover_strategy() != FailoverStrategy::TaskManager {
            return;
        }
        // Replayed producers only: a finished one has no queue left to fill.
        self.tell_producers(
            id,
            consumer.subtask_id(),
            |p| !p.state.is_terminal(),
            |key| JmToTm::DropSubpartition { key },
        );
    }

    /// Tells every producer that keeps running to close its channels to the `restarted`
    /// consumers: a partitioned consumer's connection may never break by itself, and the
    /// producer must stop waiting for its credit and keep a fresh queue for the replacement.
    pub(super) fn revoke_old_consumers(
        &self,
        id: JobId,
        restarted: &std::collections::BTreeSet<SubtaskId>,
    ) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        for &consumer in restarted {
            let kept =
                |p: &ExecutionVertex| !restarted.contains(&SubtaskId::new(p.vertex, p.subtask));
            // Its new attempt: only claims by earlier ones are revoked.
            let Some(replacement) = job.eg.get(consumer.vertex, consumer.subtask) else {
                continue;
            };
            let replacement = replacement.attempt_id();
            self.tell_producers(id, consumer, kept, |key| JmToTm::RevokeSubpartition {
                key,
                consumer: replacement,
            });
        }
    }

    /// Sends `message` about the subpartition that feeds `consumer` to the TaskManager of each
    /// of its producers that `select` picks.
    fn tell_producers(
        &self,
        id: JobId,
        consumer: SubtaskId,
        select: impl Fn(&ExecutionVertex) -> bool,
        message: impl Fn(SubpartitionKey) -> JmToTm,
    ) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let graph = &job.eg.job;
        for ch in graph.input_channels(consumer.vertex, consumer.subtask) {
            let pv = graph.edge(ch.edge).source;
            let Some(producer) = job.eg.get(pv, ch.producer_subtask) else {
                continue;
            };
            if !select(producer) {
                continue;
            }
            let producer = producer.attempt_id();
            let key = SubpartitionKey {
                job: id,
                producer,
                edge: ch.edge,
                index: ch.subpartition,
            };
            if let Some(tm) = job.placement.of(&producer).and_then(|t| self.tms.get(&t)) {
                let _ = tm.out.send(message(key));
            }
        }
    }

    /// Cancels every attempt of the job that has not ended.
    pub(super) fn cancel_tasks(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        for ev in job.eg.all_mut() {
            if !ev.state.is_terminal() {
                ev.state = ExecutionState::Canceled;
                let attempt = ev.attempt_id();
                if let Some(tm) = job.placement.of(&attempt).and_then(|tm| self.tms.get(&tm)) {
                    let _ = tm.out.send(JmToTm::CancelTask { job: id, attempt });
                }
            }
        }
    }
}
