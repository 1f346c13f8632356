//! Validates JSON values against a JSON Schema file with the `jsonschema` crate, formats
//! (RFC 3339 times) included. For burstwatch's integration tests (`tests/common/events.rs`).

use std::path::Path;

use serde_json::Value;

/// A compiled schema.
pub struct Schema(jsonschema::Validator);

impl Schema {
    /// Reads and compiles the schema at `path`.
    pub fn load(path: &Path) -> Result<Schema, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let schema: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map(Schema)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every way `value` breaks the schema, each with where (empty: it is valid).
    pub fn errors(&self, value: &Value) -> Vec<String> {
        self.0
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }
}
