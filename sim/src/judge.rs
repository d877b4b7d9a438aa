//! Judging a recorded run: which basis delivery is checked against, the bounds the run is held
//! to, and every checker's verdict. It needs no simulator, so a run of real processes
//! ([`crate::real`]) is judged by exactly the code that judges a simulated one.

use rill::api::{FileAccess, OutputChecks};
use rill::jobs::JobRegistry;

use crate::buggify;
use crate::check::bounds::{Bound, JobShape};
use crate::check::{check_all, Bounds, DeliveryBasis, ExpectedInput, Reader};
use crate::fault::Fault;
use crate::history::{RunHistory, Verdict};
use crate::scenario::{DeliveryMode, Scenario};

/// Judges runs of one job registry's jobs.
pub struct Judge<'a> {
    jobs: &'a JobRegistry,
}

impl<'a> Judge<'a> {
    /// A judge for runs of `jobs`.
    pub fn new(jobs: &'a JobRegistry) -> Self {
        Judge { jobs }
    }

    /// The checkers' verdicts on `history`, a run of `scenario`. `reference` is the scenario's
    /// fault-free run, which exactly-once is compared with when the job's outputs do not name
    /// their input ([`Judge::compares_with_reference`]); without one, that comparison is not
    /// made.
    pub fn verdicts(
        &self,
        scenario: &Scenario,
        history: &RunHistory,
        reference: Option<&RunHistory>,
    ) -> Vec<Verdict> {
        let checks = self.output_checks(scenario);
        let input;
        let basis = match scenario.expect.delivery {
            DeliveryMode::Unchecked => DeliveryBasis::None,
            // The strongest check there is: outputs traced to the input records of a log the
            // harness serves.
            _ if checks.one_per_input() && self.reads_logs(scenario) => {
                match self.expected_input(scenario) {
                    Some(i) => {
                        input = i;
                        DeliveryBasis::Input(&input)
                    }
                    None => DeliveryBasis::None,
                }
            }
            DeliveryMode::ExactlyOnce => match reference {
                Some(reference) => DeliveryBasis::Reference(reference, checks),
                None => DeliveryBasis::None,
            },
            _ => DeliveryBasis::None,
        };
        // At the times they began: an anchored fault's planned time is only where its anchor
        // was looked for from.
        let began: Vec<Fault> = history
            .faults
            .iter()
            .filter_map(|f| {
                let at = f.began_at.filter(|_| f.took_effect())?;
                Some(Fault {
                    at,
                    ..f.fault.clone()
                })
            })
            .collect();
        let faults: Vec<&Fault> = began.iter().collect();
        let mut bounds = self.bounds(scenario, &faults);
        buggify::widen(&mut bounds, &history.buggified);
        check_all(history, scenario, &bounds, basis)
    }

    /// The bounds a run of `scenario` in which `faults` took effect is held to: given, or
    /// derived from them.
    pub fn bounds(&self, scenario: &Scenario, faults: &[&Fault]) -> Bounds {
        let shape = self
            .jobs
            .build(
                &scenario.job,
                scenario.config.max_parallelism(),
                &FileAccess::Anywhere,
            )
            .map(|graph| JobShape {
                tasks_per_slot: rill::graph::default_slot_sharing_groups(&graph)
                    .iter()
                    .map(|g| g.members.len() as u32)
                    .max()
                    .unwrap_or(1),
                output_hold: graph.output_hold(),
            })
            .unwrap_or(JobShape {
                tasks_per_slot: 1,
                output_hold: std::time::Duration::ZERO,
            });
        let mut bounds = Bounds::of(scenario, shape, faults);
        // A job expected to finish has a liveness bound even when the scenario sets none, if
        // its input time is known: the generator's, from the configuration.
        let input = crate::scenario_file::input_time(scenario);
        let finishes = scenario.expect.job == Some(crate::scenario::JobOutcome::Finished);
        if bounds.drain.is_none() && finishes && !faults.is_empty() && !input.is_zero() {
            bounds.drain = Some(Bound {
                value: crate::scenario_file::drain_bound(&scenario.config, input),
                source: "derived: detection, back-off, redeployment, stale connections, a registration, two commits and the whole input again".into(),
            });
        }
        bounds
    }

    /// What the job's outputs let the checkers read of each record.
    pub fn output_checks(&self, scenario: &Scenario) -> OutputChecks {
        self.jobs
            .output_checks(&scenario.job)
            .unwrap_or(OutputChecks::OPAQUE)
    }

    /// Whether judging `scenario` compares outputs with a fault-free reference run.
    pub fn compares_with_reference(&self, scenario: &Scenario) -> bool {
        scenario.expect.delivery == DeliveryMode::ExactlyOnce
            && !(self.output_checks(scenario).one_per_input() && self.reads_logs(scenario))
    }

    /// Whether the job reads logs the harness serves (and so knows every input record).
    fn reads_logs(&self, scenario: &Scenario) -> bool {
        self.jobs
            .inputs(&scenario.job)
            .is_ok_and(|inputs| !inputs.is_empty())
    }

    /// For jobs whose output type says it is one output per input record (`CheckableOutput`):
    /// every input record and its key.
    fn expected_input(&self, s: &Scenario) -> Option<ExpectedInput> {
        if !self.jobs.output_checks(&s.job).ok()?.one_per_input() {
            return None;
        }
        let input = crate::expected::input_of(&*self.jobs.primary_input(&s.job).ok()?).ok()?;
        Some(match self.single_source(s) {
            Some(reader) => input.with_reader(reader),
            None => input,
        })
    }

    /// The job's source vertex, if it has exactly one: it reads the primary input.
    fn single_source(&self, s: &Scenario) -> Option<Reader> {
        let graph = self
            .jobs
            .build(&s.job, s.config.max_parallelism(), &FileAccess::Anywhere)
            .ok()?;
        let mut sources = graph.vertices.iter().filter(|v| v.inputs.is_empty());
        let source = sources.next()?;
        sources.next().is_none().then_some(Reader {
            vertex: source.id,
            parallelism: source.parallelism,
        })
    }
}
