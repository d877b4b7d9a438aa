//! Parsing: defaults, key paths in errors, durations, configuration keys, file names.

use std::time::Duration;

use rill::config::ConfigError;

use super::{err, parse, with, BASE, CRASH};
use crate::scenario_file::*;

#[test]
fn defaults_apply() {
    let s = parse(&BASE.replace("run_for = \"60s\"\n", "")).unwrap();
    assert_eq!(s.run_for, Duration::from_secs(120));
    assert_eq!(s.description, "");
    assert!(s.faults.is_empty() && s.swarm.is_none());
    assert_eq!(s.expect, crate::Expectations::default());
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
        "t.toml: unknown key `nme`; accepted keys: name, description, run_for, cluster, job, config, faults, swarm, expect, buggify"
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

/// A directory of a user's scenarios: listed by name without parsing, loaded by name, and an
/// unknown name lists the names there.
#[test]
fn a_directory_is_listed_and_loaded_by_name() {
    let dir = std::env::temp_dir().join(format!("rill-scenario-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.toml"), BASE).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a scenario").unwrap();
    let jobs = rill::jobs::builtin();
    assert_eq!(names_in(&dir).unwrap(), ["t"]);
    assert_eq!(load_named(&dir, "t", &jobs).unwrap(), parse(BASE).unwrap());
    assert_eq!(load_dir_with(&dir, &jobs).unwrap().len(), 1);
    match load_named(&dir, "u", &jobs).unwrap_err() {
        ScenarioError::UnknownScenario { name, known, .. } => {
            assert_eq!((name.as_str(), known), ("u", vec!["t".to_string()]));
        }
        other => panic!("{other}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}
