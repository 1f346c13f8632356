//! `predict --device`: on a machine without a usable CUDA device (CI, this project's
//! machines) `auto` runs on the CPU and says so in exactly one info line; an explicit
//! `cuda` is a one-line error with exit code 2; an unknown device is a usage error.
//! On a machine with a GPU, the fallback checks are skipped (and say so).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burstwatch::engine::cuda::cuda_probe;
use burstwatch::io::{npy, read_frames};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

fn model() -> PathBuf {
    Path::new(SHARED).join("models/upbeat-snowflake-91.reference-weights.npz")
}

/// The golden sequence's first 120 frames (one window), written once per test process
/// (the tests run in parallel threads, so the first caller writes and the others wait).
fn frames() -> PathBuf {
    static FRAMES: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FRAMES
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("device-fallback-frames-{}.npy", std::process::id()));
            let f = read_frames(&Path::new(SHARED).join("golden/seq11/model_input.npy")).unwrap();
            let n = 120;
            npy::write(
                &out,
                &f.data[..n * f.height * f.width],
                &[n, f.height, f.width],
            )
            .unwrap();
            out
        })
        .clone()
}

fn predict(device: &str, out: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args([
            "predict",
            "--mode",
            "continuous",
            "--device",
            device,
            "--model",
        ])
        .arg(model())
        .arg("--frames")
        .arg(frames())
        .arg("--out")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join(out))
        .env("BURSTWATCH_LOG", "info")
        .env_remove("RUST_LOG")
        .output()
        .expect("run burstwatch")
}

/// stderr without ANSI colour sequences, line by line.
fn stderr_lines(o: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&o.stderr);
    let mut clean = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    clean.lines().map(str::to_owned).collect()
}

fn gpu_present() -> bool {
    match cuda_probe(0) {
        Ok(_) => {
            eprintln!("SKIPPED: a CUDA device is usable here, so there is no fallback to check");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn auto_falls_back_to_the_cpu_with_one_info_line() {
    if gpu_present() {
        return;
    }
    let o = predict("auto", "fallback-auto.npy");
    let lines = stderr_lines(&o);
    assert!(o.status.success(), "exit {:?}: {lines:#?}", o.status);
    let fallback: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("running on the CPU"))
        .collect();
    assert_eq!(fallback.len(), 1, "{lines:#?}");
    assert!(fallback[0].contains("INFO"), "{}", fallback[0]);
    assert!(
        fallback[0].contains("CUDA"),
        "the line says why: {}",
        fallback[0]
    );
    // Nothing else mentions CUDA, and the run used the CPU engine.
    assert_eq!(
        lines.iter().filter(|l| l.contains("CUDA")).count(),
        1,
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("wrote probabilities") && l.contains("engine=cpu")),
        "{lines:#?}"
    );
    let p = npy::read(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("fallback-auto.npy"))
        .unwrap()
        .to_f32();
    assert_eq!(p.len(), 120);
    assert!(p[119].is_finite() && p[..119].iter().all(|v| v.is_nan()));
}

#[test]
fn explicit_cuda_without_a_gpu_is_a_one_line_error() {
    if gpu_present() {
        return;
    }
    for device in ["cuda", "cuda:1"] {
        let o = predict(device, "fallback-cuda.npy");
        let lines = stderr_lines(&o);
        assert_eq!(o.status.code(), Some(2), "{device}: {lines:#?}");
        assert_eq!(lines.len(), 1, "{device}: {lines:#?}");
        assert!(
            lines[0].starts_with("burstwatch: error: ") && lines[0].contains("CUDA"),
            "{}",
            lines[0]
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn an_unknown_device_is_a_usage_error() {
    let o = predict("bogus", "fallback-bogus.npy");
    let lines = stderr_lines(&o);
    assert_eq!(o.status.code(), Some(2), "{lines:#?}");
    assert!(
        lines[0].contains("invalid value 'bogus' for '--device"),
        "{lines:#?}"
    );
    assert!(
        lines[0].contains("expected auto, cpu, cuda or cuda:N"),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("--help")), "{lines:#?}");
    // And --engine with --device is refused the same way.
    let o = Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args([
            "predict", "--engine", "cpu", "--device", "cpu", "--model", "m", "--frames", "f",
            "--out", "o",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
}
