//! The crate's own binary runs its job on `rill local`, into the exactly-once file sink.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn the_binary_runs_the_job_on_rill_local() {
    let dir = std::env::temp_dir().join(format!("page-views-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_page-views"))
        .args(["local", "--job", "page-views", "--taskmanagers", "2", "--slots", "2"])
        .args(["--param", "records=4000", "--param", "keys=400"])
        .arg("--param")
        .arg(format!("sink=file:{}", dir.display()))
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Every view produced one running count; each page's last is its number of views.
    let mut lines = 0;
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("output") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("readable").lines() {
            lines += 1;
            let field = |name: &str| -> u64 {
                let rest = &line[line.find(name).expect("field") + name.len()..];
                rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
            };
            let (page, views) = (field("page: "), field("views: "));
            let best = last.entry(page).or_default();
            *best = (*best).max(views);
        }
    }
    assert_eq!(lines, 4000, "one count per view");
    assert_eq!(last.values().sum::<u64>(), 4000, "{last:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
