//! `buggify` at the top level and in `[swarm]`: `"all"` or a list of point names, checked
//! against the runtime's points, and written back as read.

use rill::buggify::Point;

use super::{err, parse, with, BASE};
use crate::scenario_file::*;

#[test]
fn buggify_is_off_unless_named() {
    let s = parse(BASE).unwrap();
    assert!(s.buggify.is_empty());
    let s = with("[swarm]\nkinds = [\"crash\"]\n").unwrap();
    assert!(s.swarm.unwrap().buggify.is_empty());
}

#[test]
fn buggify_takes_all_or_names_sorted() {
    let s = parse(&format!("buggify = \"all\"\n{BASE}")).unwrap();
    assert_eq!(s.buggify, Point::ALL.to_vec());
    let s = parse(&format!(
        "buggify = [\"restore-slow\", \"control-message-late\"]\n{BASE}"
    ))
    .unwrap();
    assert_eq!(
        s.buggify,
        vec![Point::ControlMessageLate, Point::RestoreSlow]
    );
    let s = with("[swarm]\nkinds = [\"crash\"]\nbuggify = [\"buffers-run-dry\"]\n").unwrap();
    assert_eq!(s.swarm.unwrap().buggify, vec![Point::BuffersRunDry]);
}

#[test]
fn unknown_or_repeated_points_are_refused_with_the_known_names() {
    let e = parse(&format!("buggify = [\"restore-slowly\"]\n{BASE}")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "t.toml: `buggify`: unknown buggify point 'restore-slowly'; known points: {}",
            Point::names().join(", ")
        )
    );
    let e = err("[swarm]\nkinds = [\"crash\"]\nbuggify = [\"restore-slow\", \"restore-slow\"]\n");
    assert_eq!(
        e.to_string(),
        "t.toml: `swarm.buggify`: 'restore-slow' is named twice"
    );
    let e = parse(&format!("buggify = \"some\"\n{BASE}")).unwrap_err();
    assert!(
        e.to_string()
            .contains("expected \"all\" or an array of buggify point names"),
        "{e}"
    );
    let e = parse(&format!("buggify = [1]\n{BASE}")).unwrap_err();
    assert!(
        e.to_string().starts_with("t.toml: `buggify`: expected"),
        "{e}"
    );
}

#[test]
fn a_scenario_built_in_code_names_each_point_once() {
    let mut s = parse(BASE).unwrap();
    s.buggify = vec![Point::RestoreSlow, Point::RestoreSlow];
    let e = validate(&s).unwrap_err().to_string();
    assert_eq!(e, "t: `buggify`: 'restore-slow' is named twice");
}

#[test]
fn buggify_round_trips_through_toml() {
    let all = parse(&format!(
        "buggify = \"all\"\n{BASE}[swarm]\nkinds = [\"crash\"]\nbuggify = [\"reconnect-late\", \"checkpoint-ack-late\"]\n"
    ))
    .unwrap();
    let text = scenario_to_toml(&all);
    assert!(text.contains("\nbuggify = \"all\"\n"), "{text}");
    assert!(
        text.contains("buggify = [\"checkpoint-ack-late\", \"reconnect-late\"]"),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap(), all);
    let some = parse(&format!("buggify = [\"sink-store-ack-late\"]\n{BASE}")).unwrap();
    assert_eq!(parse(&scenario_to_toml(&some)).unwrap(), some);
    let none = parse(BASE).unwrap();
    assert!(!scenario_to_toml(&none).contains("buggify"));
}
