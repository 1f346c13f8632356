//! Strict parsing of burstwatch's JSON Lines: every line must be an object with a known
//! `"type"` and that type's fields.

use serde_json::Value;

/// Every event type the README documents, with the fields each must carry.
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "alert",
        &[
            "source",
            "frame",
            "stream_time",
            "wall_time",
            "score",
            "p_model",
            "p_baseline",
            "threshold",
            "latency_ms",
        ],
    ),
    ("outcome", &["source", "frame", "burst", "score"]),
    (
        "prediction",
        &[
            "source",
            "frame",
            "stream_time",
            "score",
            "p_model",
            "p_baseline",
            "y_tilde",
            "latency_ms",
        ],
    ),
    ("gap", &["source", "frame", "missing", "reason"]),
    ("status", &["source", "state", "message"]),
    (
        "stats",
        &[
            "source",
            "frames",
            "fps",
            "dropped",
            "gaps",
            "alerts",
            "latency_p50_ms",
            "latency_p99_ms",
            "auc",
            "auc_frames",
            "final",
        ],
    ),
];

/// Parses one line strictly.
pub fn parse_line(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let ty = v["type"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"type\": {line}"));
    let (_, fields) = SCHEMA
        .iter()
        .find(|(t, _)| *t == ty)
        .unwrap_or_else(|| panic!("unknown type {ty:?}: {line}"));
    let obj = v.as_object().expect("an object");
    for f in *fields {
        assert!(obj.contains_key(*f), "{ty} line without {f:?}: {line}");
    }
    assert_eq!(
        obj.len(),
        fields.len() + 1,
        "unexpected fields in {ty} line: {line}"
    );
    v
}

/// Parses all of stdout strictly.
pub fn parse_all(stdout: &str) -> Vec<Value> {
    stdout.lines().map(parse_line).collect()
}

/// The events of one type.
pub fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == ty).collect()
}

/// The final stats line of a source.
pub fn final_stats<'a>(events: &'a [Value], source: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == "stats" && e["final"] == true && e["source"] == source)
        .unwrap_or_else(|| panic!("no final stats for {source}"))
}
