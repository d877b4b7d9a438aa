use std::time::Duration;

use rill::api::{build_job, JobError};
use rill::config::ConfigError;
use rill_sim::{DeliveryMode, Direction, Fault, FaultKind, JobOutcome, StoreFailureMode};

use crate::*;

const BASE: &str = r#"
name = "t"
run_for = "60s"
[cluster]
taskmanagers = 4
slots_per_taskmanager = 2
[job]
name = "keyed-count"
parallelism = 4
records = 1000
"#;

fn parse(text: &str) -> Result<rill_sim::Scenario, ScenarioError> {
    parse_scenario("t.toml", text)
}

/// BASE with `extra` appended (sections after [job]).
fn with(extra: &str) -> Result<rill_sim::Scenario, ScenarioError> {
    parse(&format!("{BASE}{extra}"))
}

fn err(extra: &str) -> ScenarioError {
    with(extra).expect_err("should be refused")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- named scenarios -------------------------------------------------------------------------

#[test]
fn every_spec_parses_and_is_named_after_its_file() {
    let all = load_dir(&specs_dir()).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bench-crash-4x2",
            "checkpoint-store-down",
            "clock-skew",
            "crash-during-checkpoint-full",
            "etl-crash-region",
            "jm-tm-partition",
            "jm-tm-partition-full",
            "jm-tm-partition-region",
            "jm-tm-partition-taskmanager",
            "long-pause",
            "loss-and-latency",
            "oom-kill-4x2-full",
            "oom-kill-4x2-region",
            "oom-kill-4x2-taskmanager",
            "oom-skew",
            "oom-skew-balanced",
            "partition-heals-in-time",
            "partition-heals-in-time-taskmanager",
            "replacement-crash-taskmanager",
            "sink-store-down",
            "source-log-down",
            "steady-4x2",
            "store-failure",
            "swarm",
            "swarm-full",
            "swarm-region",
            "swarm-taskmanager",
            "tm-crash-4x2",
            "tm-crash-4x2-full",
            "tm-crash-4x2-region",
            "tm-crash-4x2-taskmanager"
        ]
    );
    for s in &all {
        assert!(
            !s.description.is_empty() && !s.description.contains('\n'),
            "{}",
            s.name
        );
        assert_eq!(load(&s.name).unwrap(), *s);
    }
}

#[test]
fn tm_crash_spec_reads_as_written() {
    let s = load("tm-crash-4x2").unwrap();
    assert_eq!(
        (s.cluster.taskmanagers, s.cluster.slots_per_taskmanager),
        (4, 2)
    );
    assert_eq!(s.job.params["parallelism"], "8");
    assert_eq!(s.config.heartbeat_timeout(), Duration::from_secs(5));
    assert_eq!(
        s.faults,
        [Fault {
            at: Duration::from_secs(5),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: Some(Duration::from_secs(10))
            }
        }]
    );
    assert_eq!(s.expect.job, Some(JobOutcome::Failed));
    assert_eq!(s.expect.delivery, DeliveryMode::Unchecked);
    let swarm = load("swarm").unwrap().swarm.unwrap();
    assert_eq!(
        (swarm.min_faults, swarm.max_faults, swarm.until),
        (1, 3, Duration::from_secs(20))
    );
}

#[test]
fn every_spec_writes_back_to_itself() {
    for s in load_dir(&specs_dir()).unwrap() {
        let text = scenario_to_toml(&s);
        assert_eq!(
            parse_scenario(&format!("{}.toml", s.name), &text).unwrap(),
            s,
            "{text}"
        );
    }
}

#[test]
fn load_of_an_unknown_name_lists_the_known_ones() {
    let e = load("no-such-scenario").unwrap_err();
    assert!(
        matches!(&e, ScenarioError::UnknownScenario { known, .. } if known.iter().any(|k| k == "steady-4x2"))
    );
    assert!(
        e.to_string()
            .starts_with("no scenario named 'no-such-scenario' in "),
        "{e}"
    );
}

// ---- defaults --------------------------------------------------------------------------------

#[test]
fn defaults_apply() {
    let s = parse(&BASE.replace("run_for = \"60s\"\n", "")).unwrap();
    assert_eq!(s.run_for, Duration::from_secs(120));
    assert_eq!(s.description, "");
    assert!(s.faults.is_empty() && s.swarm.is_none());
    assert_eq!(s.expect, rill_sim::Expectations::default());
    assert_eq!(s.cluster.memory_mb, None);
}

#[test]
fn job_params_are_stringified() {
    let s = parse(&BASE.replace(
        "records = 1000",
        "records = 1000\nrate = 2.5\nsink = \"discard\"",
    ))
    .unwrap();
    assert_eq!(s.job.params["records"], "1000");
    assert_eq!(s.job.params["rate"], "2.5");
    assert_eq!(s.job.params["sink"], "discard");
    assert!(!s.job.params.contains_key("name"));
}

#[test]
fn config_accepts_quoted_and_dotted_keys() {
    let s =
        with("[config]\n\"heartbeat.timeout\" = \"5s\"\nheartbeat.interval = \"1s\"\n").unwrap();
    assert_eq!(s.config.heartbeat_timeout(), Duration::from_secs(5));
    assert_eq!(s.config.heartbeat_interval(), Duration::from_secs(1));
}

#[test]
fn memory_mb_is_mirrored_into_the_configuration() {
    let s = parse(&BASE.replace(
        "slots_per_taskmanager = 2",
        "slots_per_taskmanager = 2\nmemory_mb = 64",
    ))
    .unwrap();
    assert_eq!(s.cluster.memory_mb, Some(64));
    assert_eq!(s.config.memory_process_size(), 64 << 20);
    assert_eq!(
        load("oom-skew").unwrap().config.memory_process_size(),
        2 << 20
    );
    let mut bad = s.clone();
    bad.config = rill::config::Configuration::new();
    assert_eq!(
        validate(&bad).unwrap_err().to_string(),
        "t: `cluster.memory_mb`: 64 MiB, but the configuration's taskmanager.memory.process.size is 1811939328 bytes (use apply_memory)"
    );
    apply_memory(&mut bad.config, bad.cluster.memory_mb);
    validate(&bad).unwrap();
    let e = parse(&BASE.replace(
        "slots_per_taskmanager = 2",
        "slots_per_taskmanager = 2\nmemory_mb = 0",
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: `cluster.memory_mb`: 0 is not within 1..=17592186044415"
    );
}

// ---- one test per error variant --------------------------------------------------------------

#[test]
fn toml_syntax_error_keeps_line_and_column() {
    let e = parse("name = \"t\"\n[cluster\n").unwrap_err();
    assert!(matches!(e, ScenarioError::Toml { .. }));
    let msg = e.to_string();
    assert!(msg.starts_with("t.toml: "), "{msg}");
    assert!(msg.contains("line 2, column"), "{msg}");
}

#[test]
fn io_error_names_the_path() {
    let e = load_file(std::path::Path::new("/nonexistent/x.toml")).unwrap_err();
    assert!(matches!(e, ScenarioError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/x.toml: cannot read: "),
        "{e}"
    );
}

#[test]
fn unknown_top_level_key() {
    let e = parse(&BASE.replace("[cluster]", "nme = 1\n[cluster]")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: unknown key `nme`; accepted keys: name, description, run_for, cluster, job, config, faults, swarm, expect"
    );
}

#[test]
fn unknown_cluster_key() {
    let e = parse(&BASE.replace("slots_per_taskmanager", "slots")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: unknown key `cluster.slots`; accepted keys: taskmanagers, slots_per_taskmanager, memory_mb"
    );
}

const CRASH: &str = "[[faults]]\nat = \"1s\"\nkind = \"crash\"\ntarget = \"tm-1\"\n";

#[test]
fn misspelled_fault_key_names_its_path() {
    let e = err(&format!("{CRASH}{CRASH}{CRASH}restart_afer = \"10s\"\n"));
    assert_eq!(
        e,
        ScenarioError::UnknownKey {
            file: "t.toml".into(),
            path: "faults[2]".into(),
            key: "restart_afer".into(),
            expected: vec!["at", "kind", "target", "restart_after"],
        }
    );
    assert_eq!(
        e.to_string(),
        "t.toml: unknown key `faults[2].restart_afer`; accepted keys: at, kind, target, restart_after"
    );
}

#[test]
fn fault_key_of_another_kind_is_refused() {
    let e = err(&format!("{CRASH}rate = 0.5\n"));
    assert_eq!(
        e.to_string(),
        "t.toml: unknown key `faults[0].rate`; accepted keys: at, kind, target, restart_after"
    );
}

#[test]
fn unknown_swarm_and_expect_keys() {
    let e = err("[swarm]\nkinds = [\"crash\"]\nmax = 3\n");
    assert!(
        e.to_string()
            .starts_with("t.toml: unknown key `swarm.max`; accepted keys: kinds, "),
        "{e}"
    );
    let e = err("[expect]\ndelivery = \"exactly-once\"\nmax_stal = \"1s\"\n");
    assert!(
        e.to_string()
            .starts_with("t.toml: unknown key `expect.max_stal`; accepted keys: delivery, "),
        "{e}"
    );
}

#[test]
fn missing_keys() {
    let e = parse("name = \"t\"\n[job]\nname = \"keyed-count\"\n").unwrap_err();
    assert_eq!(e.to_string(), "t.toml: missing required key `cluster`");
    let e = err("[[faults]]\nat = \"1s\"\nkind = \"pause\"\ntarget = \"tm-1\"\n");
    assert_eq!(
        e,
        ScenarioError::MissingKey {
            file: "t.toml".into(),
            path: "faults[0].duration".into()
        }
    );
    let e = err("[swarm]\nmin_faults = 1\n");
    assert_eq!(e.to_string(), "t.toml: missing required key `swarm.kinds`");
}

#[test]
fn bad_durations() {
    let e = err(&format!("{CRASH}restart_after = \"10 parsecs\"\n"));
    assert_eq!(
        e.to_string(),
        "t.toml: `faults[0].restart_after`: bad duration \"10 parsecs\": unknown duration unit 'parsecs' in '10 parsecs'"
    );
    let e = parse(&BASE.replace("\"60s\"", "60")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: `run_for`: bad duration 60: durations are strings with a unit, e.g. \"5s\" or \"250ms\""
    );
    let e = err(
        "[[faults]]\nat = \"1s\"\nkind = \"clock-skew\"\ntarget = \"jm\"\noffset = \"--5ms\"\n",
    );
    assert!(
        matches!(e, ScenarioError::BadDuration { ref path, .. } if path == "faults[0].offset"),
        "{e}"
    );
}

#[test]
fn unknown_node() {
    let e =
        err("[[faults]]\nat = \"1s\"\nkind = \"pause\"\ntarget = \"tm-5\"\nduration = \"1s\"\n");
    assert_eq!(
        e.to_string(),
        "t.toml: faults[0]: unknown node 'tm-5'; known nodes: jm, tm-1, tm-2, tm-3, tm-4, source-log, sink-store, checkpoint-store"
    );
    let e =
        err("[[faults]]\nat = \"1s\"\nkind = \"link-partition\"\nfrom = \"jm\"\nto = \"tm-0\"\n");
    assert!(
        matches!(e, ScenarioError::UnknownNode { fault: 0, ref node, .. } if node == "tm-0"),
        "{e}"
    );
    // Only the one spelling names a TaskManager.
    let e = err("[[faults]]\nat = \"1s\"\nkind = \"crash\"\ntarget = \"tm-01\"\n");
    assert!(
        e.to_string()
            .starts_with("t.toml: faults[0]: unknown node 'tm-01'; known nodes: jm, tm-1,"),
        "{e}"
    );
}

#[test]
fn unknown_job() {
    let e = parse(&BASE.replace("\"keyed-count\"", "\"keyed-cnt\"")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: unknown job 'keyed-cnt'; registered jobs: wordcount, keyed-count, etl, ad-stats"
    );
}

#[test]
fn invalid_job() {
    let e = parse(&BASE.replace("records", "recods")).unwrap_err();
    assert!(
        matches!(&e, ScenarioError::InvalidJob { error: JobError::UnknownParam { param, .. }, .. } if param == "recods")
    );
    assert!(
        e.to_string().starts_with(
            "t.toml: invalid job: unknown parameter 'recods' for job 'keyed-count'; accepted: "
        ),
        "{e}"
    );
    let e = parse(&BASE.replace("parallelism = 4", "parallelism = 0")).unwrap_err();
    assert!(
        matches!(
            e,
            ScenarioError::InvalidJob {
                error: JobError::ZeroParallelism { .. },
                ..
            }
        ),
        "{e}"
    );
    let e = parse(&BASE.replace("parallelism = 4", "parallelism = 200")).unwrap_err();
    assert!(
        matches!(
            e,
            ScenarioError::InvalidJob {
                error: JobError::ParallelismAboveMax { max: 128, .. },
                ..
            }
        ),
        "{e}"
    );
    let e = parse(&BASE.replace("parallelism = 4", "parallelism = 9")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: `job.parallelism`: the job needs 9 slots but the cluster offers 8 (4 taskmanagers x 2 slots)"
    );
}

#[test]
fn config_errors_name_the_key() {
    let e = err("[config]\n\"heartbeat.timeuot\" = \"5s\"\n");
    assert!(
        matches!(&e, ScenarioError::Config { error: ConfigError::UnknownKey { key, .. }, .. } if key == "heartbeat.timeuot")
    );
    assert_eq!(
        e.to_string(),
        "t.toml: [config]: unknown configuration key 'heartbeat.timeuot' (did you mean 'heartbeat.timeout'?)"
    );
    let e = err("[config]\n\"jobmanager.execution.failover-strategy\" = \"everything\"\n");
    assert!(e.to_string().starts_with(
        "t.toml: [config]: invalid value 'everything' for 'jobmanager.execution.failover-strategy'"
    ), "{e}");
}

#[test]
fn invalid_values() {
    let cases: &[(&str, &str)] = &[
        (
            "[[faults]]\nat = \"1s\"\nkind = \"packet-loss\"\nrate = 1.5\n",
            "t.toml: `faults[0].rate`: 1.5 is not within (0, 1]",
        ),
        (
            "[[faults]]\nat = \"1s\"\nkind = \"latency\"\nmin = \"50ms\"\nmax = \"5ms\"\n",
            "t.toml: `faults[0].max`: max (5ms) is below min (50ms)",
        ),
        (
            "[[faults]]\nat = \"60s\"\nkind = \"crash\"\ntarget = \"tm-1\"\n",
            "t.toml: `faults[0].at`: 60s is not before run_for (60s)",
        ),
        (
            "[[faults]]\nat = \"1s\"\nkind = \"explode\"\n",
            "t.toml: `faults[0].kind`: unknown fault kind 'explode'; expected one of: crash, oom-kill, partition, link-partition, packet-loss, latency, pause, clock-skew, store-failure",
        ),
        (
            "[[faults]]\nat = \"1s\"\nkind = \"partition\"\ntarget = \"tm-1\"\ndirection = \"sideways\"\n",
            "t.toml: `faults[0].direction`: unknown value 'sideways'; expected one of: both, inbound, outbound",
        ),
        (
            "[[faults]]\nat = \"1s\"\nkind = \"link-partition\"\nfrom = \"jm\"\nto = \"jm\"\n",
            "t.toml: `faults[0].to`: a link needs two different nodes, both are 'jm'",
        ),
        (
            "[[faults]]\nat = \"1s\"\nkind = \"pause\"\ntarget = 3\nduration = \"1s\"\n",
            "t.toml: `faults[0].target`: expected a string, found integer 3",
        ),
        (
            "[[faults]]\nat = \"1s\"\nkind = \"pause\"\ntarget = \"tm-1\"\nduration = \"0s\"\n",
            "t.toml: `faults[0].duration`: must be greater than 0",
        ),
        (
            "[[faults]]\nat = \"1s\"\nkind = \"clock-skew\"\ntarget = \"tm-1\"\noffset = \"1500us\"\n",
            "t.toml: `faults[0].offset`: '1500us' is not a whole number of milliseconds",
        ),
        (
            "[config]\n\"taskmanager.numberOfTaskSlots\" = \"4\"\n",
            "t.toml: `config.\"taskmanager.numberOfTaskSlots\"`: set by [cluster] slots_per_taskmanager, not in [config]",
        ),
        (
            "[config]\n\"taskmanager.memory.process.size\" = \"1g\"\n",
            "t.toml: `config.\"taskmanager.memory.process.size\"`: set by [cluster] memory_mb, not in [config]",
        ),
        (
            "[swarm]\nkinds = [\"crash\", \"meteor\"]\n",
            "t.toml: `swarm.kinds`: unknown fault kind 'meteor'; expected one of: crash, oom-kill, partition, link-partition, packet-loss, latency, pause, clock-skew, store-failure",
        ),
        ("[swarm]\nkinds = [\"crash\"]\nmin_faults = 4\n", "t.toml: `swarm.min_faults`: 4 is above max_faults (3)"),
        ("[swarm]\nkinds = [\"crash\"]\nuntil = \"90s\"\n", "t.toml: `swarm.until`: 90s is past run_for (60s)"),
        (
            "[expect]\ndelivery = \"at-most-once\"\n",
            "t.toml: `expect.delivery`: unknown value 'at-most-once'; expected one of: exactly-once, lossy-accounted, fault-accounted, at-least-once, unchecked",
        ),
        ("[expect]\nmax_task_range = -1\n", "t.toml: `expect.max_task_range`: -1 is not within 0..=4294967295"),
    ];
    for (extra, expected) in cases {
        let e = err(extra);
        assert!(matches!(e, ScenarioError::Invalid { .. }), "{extra}: {e:?}");
        assert_eq!(e.to_string(), *expected, "{extra}");
    }
    let e = parse(&format!("faults = 3\n{BASE}")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: `faults`: expected an array of tables ([[faults]]), found integer 3"
    );
    let e = parse(&BASE.replace("taskmanagers = 4", "taskmanagers = 0")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: `cluster.taskmanagers`: 0 is not within 1..=250"
    );
}

#[test]
fn name_must_match_file_stem() {
    let e = parse_scenario("specs/other.toml", BASE).unwrap_err();
    assert_eq!(
        e,
        ScenarioError::NameMismatch {
            file: "specs/other.toml".into(),
            name: "t".into(),
            stem: "other".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "specs/other.toml: scenario name 't' must equal the file name 'other'"
    );
}

// ---- writing ---------------------------------------------------------------------------------

fn every_kind() -> Vec<Fault> {
    let f = |at: u64, kind| Fault { at: ms(at), kind };
    vec![
        f(
            0,
            FaultKind::Crash {
                target: "tm-1".into(),
                restart_after: Some(ms(10_000)),
            },
        ),
        f(
            1_500,
            FaultKind::Crash {
                target: "jm".into(),
                restart_after: None,
            },
        ),
        f(
            2_000,
            FaultKind::OomKill {
                target: "tm-2".into(),
                restart_after: Some(ms(250)),
            },
        ),
        f(
            3_000,
            FaultKind::Partition {
                target: "tm-3".into(),
                direction: Direction::Both,
                heal_after: Some(ms(3_000)),
            },
        ),
        f(
            3_100,
            FaultKind::Partition {
                target: "tm-3".into(),
                direction: Direction::Outbound,
                heal_after: None,
            },
        ),
        f(
            4_000,
            FaultKind::LinkPartition {
                from: "jm".into(),
                to: "tm-1".into(),
                both_ways: false,
                heal_after: Some(ms(1)),
            },
        ),
        f(
            4_000,
            FaultKind::LinkPartition {
                from: "tm-2".into(),
                to: "sink-store".into(),
                both_ways: true,
                heal_after: None,
            },
        ),
        f(
            5_000,
            FaultKind::PacketLoss {
                rate: 0.05,
                duration: Some(ms(2_000)),
            },
        ),
        f(
            5_000,
            FaultKind::PacketLoss {
                rate: 1.0,
                duration: None,
            },
        ),
        f(
            6_000,
            FaultKind::Latency {
                min: ms(5),
                max: ms(50),
                duration: Some(Duration::from_micros(1_500)),
            },
        ),
        f(
            6_000,
            FaultKind::Latency {
                min: ms(0),
                max: ms(0),
                duration: None,
            },
        ),
        f(
            7_000,
            FaultKind::Pause {
                target: "tm-4".into(),
                duration: Duration::from_nanos(7),
            },
        ),
        f(
            8_000,
            FaultKind::ClockSkew {
                target: "tm-1".into(),
                offset_ms: -250,
            },
        ),
        f(
            8_000,
            FaultKind::ClockSkew {
                target: "tm-2".into(),
                offset_ms: 3_000,
            },
        ),
        f(
            9_000,
            FaultKind::StoreFailure {
                mode: StoreFailureMode::Fail,
                duration: ms(3_000),
            },
        ),
        f(
            9_500,
            FaultKind::StoreFailure {
                mode: StoreFailureMode::Stall,
                duration: ms(100),
            },
        ),
    ]
}

#[test]
fn faults_round_trip_through_toml() {
    let faults = every_kind();
    let text = faults_to_toml(&faults);
    let parsed = with(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.faults, faults, "{text}");
    assert!(text.starts_with("[[faults]]\nat = \"0s\"\nkind = \"crash\"\ntarget = \"tm-1\"\nrestart_after = \"10s\"\n"), "{text}");
    assert!(text.contains("offset = \"-250ms\""), "{text}");
    assert_eq!(faults_to_toml(&[]), "");
}

#[test]
fn durations_print_exactly() {
    assert_eq!(duration_str(ms(20_000)), "20s");
    assert_eq!(duration_str(ms(1_500)), "1500ms");
    assert_eq!(duration_str(Duration::from_micros(2_001)), "2001us");
    assert_eq!(duration_str(Duration::from_nanos(5)), "5ns");
    assert_eq!(duration_str(Duration::ZERO), "0s");
}

// ---- generated scenarios ---------------------------------------------------------------------

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
fn checkpoint_storage_may_be_the_jobmanager_or_a_store_but_not_a_directory() {
    assert!(with("[config]\n\"state.checkpoints.dir\" = \"jobmanager\"\n").is_ok());
    assert!(with("[config]\n\"state.checkpoints.dir\" = \"rill://10.0.3.1:6130\"\n").is_ok());
    let e = err("[config]\n\"state.checkpoints.dir\" = \"/tmp/chk\"\n");
    assert!(
        e.to_string().starts_with(
            "t.toml: `config.\"state.checkpoints.dir\"`: a directory needs real file I/O"
        ),
        "{e}"
    );
    let e = err("[config]\n\"state.checkpoints.dir\" = \"rill://nowhere\"\n");
    assert!(e.to_string().contains("expected rill://HOST:PORT"), "{e}");
}

#[test]
fn the_harness_owns_the_log_parameter() {
    let e = err("log = \"rill://10.0.3.2:6131\"\n").to_string();
    assert!(
        e.starts_with("t.toml: `job.log`: the harness points the sources"),
        "{e}"
    );
}

/// A scenario is validated against the registry it will run with: a job that registry does not
/// have is an error listing the jobs it has, and its own jobs pass.
#[test]
fn a_scenario_names_a_job_of_the_registry_it_runs_with() {
    let builtin = rill::jobs::builtin();
    let only_etl = rill::jobs::JobRegistry::new()
        .with(*builtin.get("etl").unwrap())
        .unwrap();
    let e = parse_scenario_with("t.toml", BASE, &only_etl).expect_err("keyed-count is not there");
    match &e {
        ScenarioError::UnknownJob { name, known, .. } => {
            assert_eq!(name, "keyed-count");
            assert_eq!(known, &vec!["etl"]);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("registered jobs: etl"), "{e}");
    let etl = BASE.replace("keyed-count", "etl");
    assert!(parse_scenario_with("t.toml", &etl, &only_etl).is_ok());
    assert!(parse_scenario_with("t.toml", BASE, &builtin).is_ok());
}

/// A job whose sources and sink are not the standard ones cannot take the parameters the
/// harness sets to run it on its nodes: refused when its scenario is loaded, saying why.
#[test]
fn a_job_not_built_on_the_standard_source_and_sink_is_refused_with_the_reason() {
    use rill::api::registry::Params;
    use rill::api::{JobError, OutputChecks, StreamEnv};
    use rill::connectors::log::{GeneratedLog, LogRecord};
    use rill::connectors::{LogInput, LogSource};

    fn own_io(_: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
        let input = LogInput::Local(std::sync::Arc::new(GeneratedLog::new(1, 2, Some(10))));
        env.source("own", move |ctx| {
            Ok(Box::new(LogSource::open(&input, ctx, None)?) as _)
        })
        .map("key", |r: LogRecord| r.key);
        Ok(())
    }
    let jobs = rill::jobs::JobRegistry::new()
        .with(rill::jobs::JobDef {
            name: "own-io",
            description: "a source of its own, no sink parameters",
            build: own_io,
            output: OutputChecks::OPAQUE,
        })
        .unwrap();
    let text = BASE
        .replace("keyed-count", "own-io")
        .replace("parallelism = 4\nrecords = 1000\n", "");
    let e = parse_scenario_with("t.toml", &text, &jobs).expect_err("cannot run under the harness");
    // The refusal is the harness-contract error on the job, not some other failure of it
    // (a job without a sink would be refused too, as an InvalidJob).
    match &e {
        ScenarioError::Invalid { path, reason, .. } => {
            assert_eq!(path, "job.name");
            assert!(reason.contains("rill::jobs::io"), "{reason}");
        }
        other => panic!("expected the harness-contract error, got {other:?}"),
    }
}
