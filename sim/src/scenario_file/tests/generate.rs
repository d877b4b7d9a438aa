//! Generated scenarios: valid by construction, reproducible from the seed, and round-tripping
//! through the file format.

use rill::api::build_job;

use crate::scenario_file::*;

#[test]
fn generated_scenarios_are_valid_and_reproducible() {
    let mut faults = 0;
    let mut jobs = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let s = generate(seed);
        validate(&s).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        build_job(&s.job, s.config.max_parallelism()).unwrap();
        assert_eq!(generate(seed), s, "seed {seed}");
        let text = scenario_to_toml(&s);
        let back = parse_scenario(&format!("{}.toml", s.name), &text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        assert_eq!(back, s, "seed {seed}");
        assert!(s.faults.iter().all(|f| f.at < s.run_for));
        faults += s.faults.len();
        jobs.insert(s.job.name.clone());
    }
    assert!(faults > 100, "{faults} faults over 200 seeds");
    assert_eq!(jobs.len(), rill::api::registry::JOBS.len());
    assert_ne!(generate(1), generate(2));
}

#[test]
fn validate_refuses_a_bad_generated_shape() {
    let mut s = generate(7);
    s.cluster.taskmanagers = 1;
    s.cluster.slots_per_taskmanager = 1;
    s.job.params.insert("parallelism".into(), "2".into());
    let e = validate(&s).unwrap_err();
    assert_eq!(
        e.to_string(),
        "generated-7: `job.parallelism`: the job needs 2 slots but the cluster offers 1 (1 taskmanagers x 1 slots)"
    );
}

#[test]
fn generated_plans_use_milliseconds_anchors_and_every_expectation() {
    use crate::{DeliveryMode, JobOutcome};
    let (mut off_grid, mut anchored) = (0, 0);
    let mut outcomes = std::collections::BTreeMap::new();
    let mut modes = std::collections::BTreeSet::new();
    for seed in 0..300 {
        let s = generate(seed);
        off_grid += s
            .faults
            .iter()
            .filter(|f| f.anchor.is_none() && f.at.subsec_millis() % 100 != 0)
            .count();
        anchored += s.faults.iter().filter(|f| f.anchor.is_some()).count();
        assert_eq!(derive_expectations(&s).expect, s.expect, "seed {seed}");
        assert!(
            s.description
                .contains(&derive_expectations(&s).why.join("; ")),
            "seed {seed}: the description says why"
        );
        *outcomes.entry(format!("{:?}", s.expect.job)).or_insert(0) += 1;
        modes.insert(s.expect.delivery.name());
        // A liveness bound exactly when the job must finish after faults.
        assert_eq!(
            s.expect.drain_within.is_some(),
            s.expect.job == Some(JobOutcome::Finished) && !s.faults.is_empty(),
            "seed {seed}"
        );
        if s.expect.job != Some(JobOutcome::Finished) {
            assert_eq!(s.expect.delivery, DeliveryMode::Unchecked, "seed {seed}");
        }
        // Nothing left that never ends and may keep the job waiting forever.
        assert_eq!(stopping_for_good(&s), Vec::<usize>::new(), "seed {seed}");
        // The run lasts past every fixed fault's end and the drain after it.
        if let Some(drain) = s.expect.drain_within {
            let last = s.faults.iter().filter_map(|f| f.end()).max();
            assert!(last.unwrap_or_default() + drain < s.run_for, "seed {seed}");
        }
    }
    assert!(
        off_grid > 100 && anchored > 50,
        "{off_grid} off the 100 ms grid, {anchored} anchored"
    );
    // A certain failure needs a fault that certainly takes a busy TaskManager while the job
    // runs without restarts: rare, but there.
    for (outcome, least) in [("Some(Finished)", 150), ("Some(Failed)", 2), ("None", 30)] {
        assert!(
            outcomes.get(outcome).is_some_and(|n| *n >= least),
            "{outcomes:?}"
        );
    }
    for mode in [
        "exactly-once",
        "at-least-once",
        "fault-accounted",
        "unchecked",
    ] {
        assert!(modes.contains(mode), "{mode} never expected: {modes:?}");
    }
}

#[test]
fn any_bytes_give_a_valid_short_scenario_and_a_seed() {
    use rand::{RngCore, SeedableRng};
    let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), vec![0xff; 3], vec![0; 4096]];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for len in [8, 16, 40, 100, 300, 1000] {
        for _ in 0..20 {
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            inputs.push(bytes);
        }
    }
    let mut seeds = std::collections::BTreeSet::new();
    for bytes in &inputs {
        let g = generate_from_bytes(bytes, &Profile::FUZZ);
        validate(&g.scenario).unwrap_or_else(|e| panic!("{bytes:?}: {e}"));
        assert_eq!(generate_from_bytes(bytes, &Profile::FUZZ), g);
        assert!(g.scenario.name.starts_with("fuzz-"));
        assert!(g.scenario.cluster.taskmanagers <= Profile::FUZZ.taskmanagers.1);
        let records: u32 = g.scenario.job.params["records"].parse().unwrap();
        assert!(records <= Profile::FUZZ.records.1);
        let text = scenario_to_toml(&g.scenario);
        let back = parse_scenario(&format!("{}.toml", g.scenario.name), &text).unwrap();
        assert_eq!(back, g.scenario);
        seeds.insert(g.seed);
    }
    assert!(
        seeds.len() > inputs.len() / 2,
        "the seed comes from the input"
    );
}
