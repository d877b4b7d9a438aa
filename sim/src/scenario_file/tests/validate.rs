//! Validation: ranges, node names, the job against the registry it runs with, the slots it
//! needs, and what the harness owns (checkpoint storage, the log and sink-store parameters).

use rill::api::JobError;

use super::{err, parse, with, BASE};
use crate::scenario_file::*;

#[test]
fn memory_mb_is_mirrored_into_the_configuration() {
    let s = parse(&BASE.replace(
        "slots_per_taskmanager = 2",
        "slots_per_taskmanager = 2\nmemory_mb = 64",
    ))
    .unwrap();
    assert_eq!(s.cluster.memory_mb, Some(64));
    assert_eq!(s.config.memory_process_size(), 64 << 20);
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

/// A job that does not take the sink parameters the harness sets to run it on its nodes (its
/// output goes elsewhere: here, nowhere) is refused when its scenario is loaded, saying why,
/// before its graph is even compiled.
#[test]
fn a_job_not_built_on_the_standard_source_and_sink_is_refused_with_the_reason() {
    use rill::api::registry::Params;
    use rill::api::{JobError, OutputChecks, StreamEnv};
    use rill::connectors::log::{GeneratedLog, LogRecord};
    use rill::jobs::io::{log_source, SourceParams};

    fn own_io(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
        let log = std::sync::Arc::new(GeneratedLog::new(1, 2, Some(10)));
        let source = SourceParams::of_log(p, log, 1)?;
        log_source(p, env, "own", source).map("key", |r: LogRecord| r.key);
        Ok(())
    }
    let jobs = rill::jobs::JobRegistry::new()
        .with(rill::jobs::JobDef {
            name: "own-io",
            description: "no standard sink, so no sink parameters",
            build: own_io,
            output: OutputChecks::OPAQUE,
        })
        .unwrap();
    let text = BASE
        .replace("keyed-count", "own-io")
        .replace("parallelism = 4\nrecords = 1000\n", "");
    let e = parse_scenario_with("t.toml", &text, &jobs).expect_err("cannot run under the harness");
    // The refusal is the harness-contract error on the job, not some other failure of it.
    match &e {
        ScenarioError::Invalid { path, reason, .. } => {
            assert_eq!(path, "job.name");
            assert!(reason.contains("rill::jobs::io"), "{reason}");
        }
        other => panic!("expected the harness-contract error, got {other:?}"),
    }
}
