//! `burstwatch predict`: the real binary on the golden sequence, and bad input answered
//! by one line on stderr and exit code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burstwatch::io::npy;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

fn model_file() -> PathBuf {
    Path::new(SHARED).join("models/upbeat-snowflake-91.reference-weights.npz")
}

fn predict(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .arg("predict")
        .args(args)
        .env("BURSTWATCH_LOG", "warn")
        .output()
        .unwrap()
}

/// Exit code 2 and exactly one line on stderr that contains `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

#[test]
fn predicts_camera_frames_of_the_golden_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("p.npy");
    let frames = Path::new(SHARED).join("golden/seq11/frames.npy");
    let out = predict(&[
        "--model",
        model_file().to_str().unwrap(),
        "--frames",
        frames.to_str().unwrap(),
        "--mode",
        "continuous",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = npy::read(&out_file).unwrap();
    assert_eq!(p.shape, vec![200]);
    assert_eq!(p.dtype, npy::DType::F32);
    let p = p.to_f32();
    let tf = npy::read(&Path::new(SHARED).join("golden/seq11/p_upbeat-snowflake-91.npy"))
        .unwrap()
        .to_f32();
    for t in 0..200 {
        if t < 119 {
            assert!(p[t].is_nan() && tf[t].is_nan());
        } else {
            assert!(
                (p[t] - tf[t]).abs() < 1e-3,
                "frame {t}: {} vs TF {}",
                p[t],
                tf[t]
            );
        }
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("p.npy");
    let out_arg = out_file.to_str().unwrap();
    let model = model_file();
    let model = model.to_str().unwrap();

    let wrong_size = dir.path().join("wrong.npy");
    npy::write(&wrong_size, &vec![0u8; 130 * 50 * 60], &[130, 50, 60]).unwrap();
    let out = predict(&[
        "--model",
        model,
        "--frames",
        wrong_size.to_str().unwrap(),
        "--out",
        out_arg,
    ]);
    assert_one_line_error(&out, "expected 240x320 or 120x160");

    let few = dir.path().join("few.npy");
    npy::write(&few, &vec![0u8; 100 * 120 * 160], &[100, 120, 160]).unwrap();
    let out = predict(&[
        "--model",
        model,
        "--frames",
        few.to_str().unwrap(),
        "--out",
        out_arg,
    ]);
    assert_one_line_error(&out, "expected at least 120");

    let not_a_model = dir.path().join("model.npz");
    std::fs::write(&not_a_model, "not a zip archive\n").unwrap();
    let out = predict(&[
        "--model",
        not_a_model.to_str().unwrap(),
        "--frames",
        few.to_str().unwrap(),
        "--out",
        out_arg,
    ]);
    assert_one_line_error(&out, "model.npz");

    let other_npz = Path::new(SHARED).join("golden/seq11/y_tilde.npy");
    let out = predict(&[
        "--model",
        other_npz.to_str().unwrap(),
        "--frames",
        few.to_str().unwrap(),
        "--out",
        out_arg,
    ]);
    assert_one_line_error(&out, "y_tilde.npy");

    let out = predict(&[
        "--model",
        model,
        "--frames",
        few.to_str().unwrap(),
        "--mode",
        "sometimes",
        "--out",
        out_arg,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out_file.exists());
}
