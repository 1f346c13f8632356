//! The model loaders on hostile bytes. The first byte picks the parser for the rest:
//! 0 = a .safetensors model file, 1 = saved_model.pb (protocol buffer, Keras metadata,
//! object-graph paths), 2 = a Keras model config (JSON) straight to a plan.
#![no_main]

use burstwatch::model::{keras, weights};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, bytes)) = input.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(model) = weights::from_bytes(bytes) {
                // What loads must save, and load back the same.
                let again = weights::to_bytes(&model).expect("a loaded model saves");
                assert_eq!(weights::from_bytes(&again).expect("and loads back"), model);
            }
        }
        1 => {
            let _ = keras::parse_saved_model(bytes);
        }
        _ => {
            if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) {
                let _ = keras::config::plan(&json);
            }
        }
    }
});
