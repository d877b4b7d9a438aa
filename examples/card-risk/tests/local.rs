//! card-windows on a real cluster (`rill local`'s, in this process): its own payment feed
//! in, its own sink out. The alert desk must hold exactly the suspicious windows the feed
//! implies, each card's numbered in order, computed here from the feed directly.
#![cfg(not(madsim))]

use std::collections::BTreeMap;

use card_risk::{AlertDesk, CardWindow, Payments};
use rill::cluster::LocalCluster;
use rill::config::Configuration;
use rill::rpc::JobStatus;
use rill::JobSpec;

/// The windows the job must file for `feed`, computed without rill.
fn expected(feed: &Payments, window_ms: u64, max_payments: u64, max_cents: u64) -> Vec<CardWindow> {
    let mut windows: BTreeMap<(u64, u64), (u64, u64)> = BTreeMap::new();
    for shard in 0..feed.shards {
        for i in 0..feed.per_shard {
            let p = feed.payment(shard, i);
            let w = windows
                .entry((p.card, p.at_ms / window_ms * window_ms))
                .or_default();
            *w = (w.0 + 1, w.1 + p.amount);
        }
    }
    let mut flagged: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for ((card, start_ms), (payments, cents)) in windows {
        if payments > max_payments || cents > max_cents {
            let before = flagged.entry(card).or_default();
            out.push(CardWindow {
                card,
                start_ms,
                payments,
                cents,
                suspicious: true,
                flagged_before: *before,
            });
            *before += 1;
        }
    }
    out
}

#[tokio::test]
async fn card_windows_files_exactly_the_suspicious_windows_at_its_alert_desk() {
    let config = Configuration::new()
        .with("taskmanager.numberOfTaskSlots", "2")
        .and_then(|c| c.with("execution.checkpointing.interval", "200ms"))
        .expect("valid");
    let cluster = LocalCluster::start_with_jobs(2, config, card_risk::registry())
        .await
        .expect("cluster");
    let spec = JobSpec::new("card-windows")
        .with("parallelism", 2)
        .with("payments", 8000)
        .with("cards", 500)
        .with("hot-per-mille", 100)
        .with("rate", 8000)
        .with("window-ms", 2000)
        .with("seed", 11);
    let report = cluster
        .run_job(&spec, |_| {}, |_| {})
        .await
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{:?}", report.message);
    // The job's defaults for what this test does not set: 2 shards a subtask, 10 ms steps.
    let feed = Payments {
        shards: 4,
        per_shard: 2000,
        cards: 500,
        hot_per_mille: 100,
        seed: 11,
        step_ms: 10,
        rate: 0.0,
    };
    let want = expected(&feed, 2000, 5, 150_000);
    assert!(
        want.len() > 10,
        "the feed has suspicious windows: {}",
        want.len()
    );
    assert_eq!(AlertDesk::cases(), want);
}
