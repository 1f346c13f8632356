//! The JSON Schema of every event (`burstwatch schema`), generated from the event types
//! themselves so that it cannot drift from what is written. The repository keeps a copy
//! as `docs/events.schema.json`; a test fails when the two differ.

use schemars::generate::{Contract, SchemaSettings};

use super::Event;

/// The schema (JSON Schema 2020-12) of one output line, pretty-printed, ending in a newline.
pub fn events_schema() -> String {
    // The serialize contract: a field that is always written (even as null) is required.
    let mut schema = SchemaSettings::draft2020_12()
        .with(|s| s.contract = Contract::Serialize)
        .into_generator()
        .into_root_schema_for::<Event>();
    let obj = schema.as_object_mut().expect("a schema object");
    obj.insert("title".into(), "burstwatch event".into());
    obj.insert(
        "description".into(),
        "One line of burstwatch's JSON Lines output (stdout) and of every other output: \
         an object whose \"type\" says which event it is."
            .into(),
    );
    serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n"
}
