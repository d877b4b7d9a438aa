//! `cargo xtask bench recovery --real`: the recovery benchmark on real processes, a thin use of
//! the parity machinery. Each of `scenarios/bench/recovery-{full,region,taskmanager}.toml`
//! (keyed-count p=4 on 4 x 2 at 20,000 records/s, tm-2 SIGKILLed at 25 s) runs once in the
//! simulator and twice as real processes (`rill-sim real --compare`, over mutual TLS and then
//! `--plaintext`, so the cost of TLS shows side by side), and the side-by-side
//! table shows, for both, the longest stall and where the time of the recovery went: the
//! loss detected, the failover started, the replacements deployed and running, the consumers
//! reconnected, the output back at 95% of its rate. A checker that fails or differs is
//! reported, not an error: this is a measurement.

use std::ffi::OsStr;
use std::path::Path;

use crate::parity::real_binary;
use crate::steps::{Failure, Plan, Step};

const STRATEGIES: [&str; 3] = ["full", "region", "taskmanager"];

pub fn real(root: &Path) -> Result<(), Failure> {
    crate::parity::prepare(root).map_err(|e| Failure::new(format!("parity directory: {e}")))?;
    let mut plan = Plan::new(2 + 3 * STRATEGIES.len());
    for build in crate::parity::builds(root) {
        plan.run(build)?;
    }
    let sim_bin = crate::parity::sim_binary(root);
    let (real_bin, rill) = (real_binary(root, "rill-sim"), real_binary(root, "rill"));
    let mut findings = Vec::new();
    for strategy in STRATEGIES {
        let scenario = root.join(format!("scenarios/bench/recovery-{strategy}.toml"));
        let summary = crate::parity::summary_dir(root).join(format!("recovery-{strategy}.sim"));
        let simulated = Step::new("recovery: simulated", root, &sim_bin)
            .args([
                OsStr::new("run"),
                OsStr::new("--scenario"),
                scenario.as_os_str(),
            ])
            .args([OsStr::new("--seed"), OsStr::new("1")])
            .args([OsStr::new("--summary"), summary.as_os_str()]);
        if plan.run(simulated).is_err() {
            findings.push(format!("{strategy}: a simulated checker failed"));
        }
        // Over mutual TLS, as production runs, then in plaintext: what TLS costs a recovery.
        let modes = [
            ("tls", "recovery: real, mutual TLS", None),
            (
                "plaintext",
                "recovery: real, plaintext",
                Some("--plaintext"),
            ),
        ];
        for (mode, label, extra) in modes {
            let real = Step::new(label, root, &real_bin)
                .args([
                    OsStr::new("real"),
                    OsStr::new("--scenario"),
                    scenario.as_os_str(),
                ])
                .args([OsStr::new("--rill"), rill.as_os_str()])
                .args([OsStr::new("--compare"), summary.as_os_str()])
                .args(extra.map(OsStr::new));
            if plan.run(real).is_err() {
                findings.push(format!(
                    "{strategy} ({mode}): a real checker failed or differs"
                ));
            }
        }
    }
    println!("target under taskmanager failover: no 100 ms window without output (longest_stall), back at 95% within 0.5 s of the SIGKILL (recovery.back_at_95)");
    println!("Flink 1.20, same setup, region failover (restarts all 8 tasks): 2.5 s without output, back at 95% after 2.6 s");
    for finding in &findings {
        println!("finding: {finding}");
    }
    plan.finish();
    Ok(())
}
