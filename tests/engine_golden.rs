//! The engines against TensorFlow itself: the golden sequences written by
//! `shared/oracle/keras_oracle.py` (the original SavedModel graphs run by TF) hold, for
//! every frame t >= 119, the probability of the window ending at t. Exact mode must match
//! within 1e-5 on every such frame, for both study models; continuous mode within 1e-3.
//!
//! Golden directories: `../shared/golden/seq11`, plus every directory listed in
//! `BURSTWATCH_EXTRA_GOLDEN` (colon-separated), e.g. more seeds made with the oracle.

use std::path::{Path, PathBuf};

use burstwatch::engine::{new_engine, stream::predict_frames, EngineKind, Mode};
use burstwatch::io::{npy, read_frames};
use burstwatch::model::Model;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");
const MODELS: [&str; 2] = ["upbeat-snowflake-91", "visionary-serenity"];

fn golden_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![Path::new(SHARED).join("golden/seq11")];
    if let Ok(extra) = std::env::var("BURSTWATCH_EXTRA_GOLDEN") {
        dirs.extend(extra.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    dirs
}

fn model(name: &str) -> Model {
    Model::from_reference_npz(&Path::new(SHARED).join(format!("models/{name}.reference-weights.npz"))).unwrap()
}

/// Largest |p - p_TF| over the frames TF scored; also checks that the frames before the
/// first window are NaN in both.
fn max_error(p: &[f32], tf: &[f32]) -> (f32, usize) {
    assert_eq!(p.len(), tf.len());
    let mut worst = (0.0f32, 0);
    for (t, (&a, &b)) in p.iter().zip(tf).enumerate() {
        if b.is_nan() {
            assert!(a.is_nan(), "frame {t}: TF has no output but we have {a}");
            continue;
        }
        let d = (a - b).abs();
        assert!(d.is_finite(), "frame {t}: {a} vs TF {b}");
        if d > worst.0 {
            worst = (d, t);
        }
    }
    worst
}

fn check(mode: Mode, tolerance: f32) {
    for dir in golden_dirs() {
        let frames = read_frames(&dir.join("model_input.npy")).unwrap();
        let frames: Vec<&[u8]> = (0..frames.count).map(|t| frames.frame(t)).collect();
        for name in MODELS {
            let tf_file = dir.join(format!("p_{name}.npy"));
            let tf = npy::read(&tf_file).unwrap().to_f32();
            let engine = new_engine(model(name), EngineKind::Cpu).unwrap();
            let p = predict_frames(engine, mode, &frames).unwrap();
            let (err, at) = max_error(&p, &tf);
            eprintln!("{}: {name} {mode}: max |p - p_TF| = {err:.3e} (frame {at})", dir.display());
            assert!(err <= tolerance, "{}: {name} {mode}: {err:e} at frame {at} > {tolerance:e}", dir.display());
        }
    }
}

#[test]
fn exact_mode_matches_tensorflow() {
    check(Mode::Exact, 1e-5);
}

#[test]
fn continuous_mode_is_close_to_tensorflow() {
    check(Mode::Continuous, 1e-3);
}

/// The plain reference engine on the first window of each phase (frames 119..=122),
/// where continuous mode is exact by construction: the oracle of the fast engine agrees
/// with TensorFlow too.
#[test]
fn reference_engine_matches_tensorflow_on_first_windows() {
    let dir = Path::new(SHARED).join("golden/seq11");
    let frames = read_frames(&dir.join("model_input.npy")).unwrap();
    let frames: Vec<&[u8]> = (0..123).map(|t| frames.frame(t)).collect();
    for name in MODELS {
        let tf = npy::read(&dir.join(format!("p_{name}.npy"))).unwrap().to_f32();
        let engine = new_engine(model(name), EngineKind::Reference).unwrap();
        let p = predict_frames(engine, Mode::Continuous, &frames).unwrap();
        let (err, at) = max_error(&p, &tf[..123]);
        eprintln!("reference engine, {name}: max |p - p_TF| = {err:.3e} (frame {at})");
        assert!(err <= 1e-5);
    }
}
