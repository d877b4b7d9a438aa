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
