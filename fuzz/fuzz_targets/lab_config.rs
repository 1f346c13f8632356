//! The lab config parser on hostile text: any outcome but a panic is fine, and an error
//! is placed inside the text (a line and column that exist). Environment variables are
//! looked up in a fixed table, never the process's; files named by `password_file` or a
//! source are looked up relative to a directory that does not exist.
#![no_main]

use std::path::Path;

use burstwatch::config;
use burstwatch::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let env = |name: &str| (name == "TANK_PASSWORD").then(|| "pw".to_owned());
    let path = Path::new("/nonexistent-fuzz/lab.toml");
    match config::parse(text, path, &env) {
        Ok(lab) => {
            let _ = lab.sources();
        }
        Err(Error::Config { line, column, .. }) => {
            let lines = text.split('\n').count().max(1);
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            assert!(column >= 1);
        }
        Err(_) => {}
    }
});
