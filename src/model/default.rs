//! The model that ships inside the binary, used whenever `--model` is not given.
//!
//! `models/default.safetensors` at the top of the repository is a model file written by
//! `burstwatch train` (README: "The default model"); replacing that file and rebuilding is
//! all it takes to ship a new default. It is embedded as bytes, so the binary runs without
//! any model file beside it, and parsed (and validated) like any other model file.
//!
//! The file shipped today is upbeat-snowflake-91's architecture trained by `burstwatch
//! train` on 10 minutes of simulated tank video; the README says how and what it scores.

use super::{weights, Model};

/// The embedded model file, exactly as in `models/default.safetensors`.
pub const DEFAULT_MODEL_BYTES: &[u8] = include_bytes!("../../models/default.safetensors");

/// The embedded default model, parsed and validated.
///
/// # Panics
/// Only if the embedded file is not a valid model; the unit test below parses it, so a
/// broken file cannot pass the test suite.
pub fn default_model() -> Model {
    weights::from_bytes(DEFAULT_MODEL_BYTES)
        .unwrap_or_else(|e| panic!("models/default.safetensors (embedded) is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_parses_and_validates() {
        let m = weights::from_bytes(DEFAULT_MODEL_BYTES).expect("embedded default model");
        m.validate().unwrap();
        // `run` and `predict --source` feed it the camera's 240x320 frames, halved.
        assert_eq!(m.input, super::super::STUDY_INPUT);
        if let Some(t) = &m.thresholds {
            t.validate().unwrap();
        }
        assert_eq!(default_model(), m);
    }
}
