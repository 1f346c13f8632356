//! Strict parsing of burstwatch's JSON Lines: every line must be an object that validates
//! against `docs/events.schema.json` (the schema `burstwatch schema` prints), formats
//! (RFC 3339 times) included.

use std::sync::OnceLock;

use serde_json::Value;

/// The schema every line must follow, compiled once per test binary.
fn schema() -> &'static schema_check::Schema {
    static SCHEMA: OnceLock<schema_check::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json");
        schema_check::Schema::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Parses one line strictly: JSON, an object, valid against the event schema.
pub fn parse_line(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let errors = schema().errors(&v);
    assert!(
        errors.is_empty(),
        "line does not follow docs/events.schema.json: {errors:?}\n{line}"
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

/// The events of one camera (its `source`).
pub fn of_camera<'a>(events: &'a [Value], camera: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["source"] == camera).collect()
}

/// The final stats line of a source.
pub fn final_stats<'a>(events: &'a [Value], source: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == "stats" && e["final"] == true && e["source"] == source)
        .unwrap_or_else(|| panic!("no final stats for {source}"))
}
