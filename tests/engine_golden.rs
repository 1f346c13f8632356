//! The engines against TensorFlow itself: the golden sequences written by
//! `shared/oracle/keras_oracle.py` (the original SavedModel graphs run by TF) hold, for
//! every frame t >= 119, the probability of the window ending at t. Exact mode must match
//! within 1e-5 on every such frame, for both study models and every convolution of the
//! CPU engine (direct and Winograd F(2x2), F(3x3), F(4x4)).
//!
//! Continuous mode (one never-reset state per phase) is exact on the first window of each
//! phase (frames 119..=122) by construction. After that it drifts from the window output
//! by how much the model remembers beyond 30 slices: for upbeat-snowflake-91 within 1e-3
//! (1.1e-4 on seq11, as DESIGN §2 says), but visionary-serenity's second ConvLSTM keeps
//! a longer memory and drifts by up to 0.10 on seq11 (5e-4 one slice after its first
//! window, growing from there), so for it only the first windows are held to 1e-5.
//!
//! Golden directories: `../shared/golden/seq11`, plus every directory listed in
//! `BURSTWATCH_EXTRA_GOLDEN` (colon-separated), e.g. more seeds made with the oracle.

use std::path::{Path, PathBuf};

use burstwatch::engine::cpu::{default_threads, ConvAlgo, CpuEngine, Simd};
use burstwatch::engine::{new_engine, stream::predict_frames, EngineKind, Mode};
use burstwatch::io::{npy, read_frames};
use burstwatch::model::Model;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");
const MODELS: [&str; 2] = ["upbeat-snowflake-91", "visionary-serenity"];

fn golden_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![Path::new(SHARED).join("golden/seq11")];
    if let Ok(extra) = std::env::var("BURSTWATCH_EXTRA_GOLDEN") {
        dirs.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    dirs
}

fn model(name: &str) -> Model {
    Model::from_reference_npz(
        &Path::new(SHARED).join(format!("models/{name}.reference-weights.npz")),
    )
    .unwrap()
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

/// Tolerance of `mode` for `model` on frames from `first_window_end` on; frames before
/// are the first windows of each phase.
fn tolerance(mode: Mode, model: &str) -> Option<f32> {
    match (mode, model) {
        (Mode::Exact, _) => Some(1e-5),
        (Mode::Continuous, "upbeat-snowflake-91") => Some(1e-3),
        (Mode::Continuous, _) => None,
    }
}

/// The first frame that is not the first window of its phase.
const FIRST_WINDOWS_END: usize = 123;

/// Checks `mode` with the CPU engine computing each of `convs`.
fn check(mode: Mode, convs: &[ConvAlgo]) {
    for dir in golden_dirs() {
        let frames = read_frames(&dir.join("model_input.npy")).unwrap();
        let frames: Vec<&[u8]> = (0..frames.count).map(|t| frames.frame(t)).collect();
        for name in MODELS {
            let tf_file = dir.join(format!("p_{name}.npy"));
            let tf = npy::read(&tf_file).unwrap().to_f32();
            for &conv in convs {
                let engine =
                    CpuEngine::with_conv(model(name), default_threads(), conv, Simd::best())
                        .unwrap();
                let p = predict_frames(Box::new(engine), mode, &frames).unwrap();
                check_one(
                    &dir,
                    &format!("{name} {mode} {}", conv.name()),
                    mode,
                    name,
                    &p,
                    &tf,
                );
            }
        }
    }
}

/// `p` (one run of `model` in `mode`, named `what`) against TensorFlow's `tf`: the first
/// windows within 1e-5 always, every frame within the mode's tolerance.
fn check_one(dir: &Path, what: &str, mode: Mode, model: &str, p: &[f32], tf: &[f32]) {
    let (first, at_first) = max_error(&p[..FIRST_WINDOWS_END], &tf[..FIRST_WINDOWS_END]);
    let (err, at) = max_error(p, tf);
    eprintln!(
        "{}: {what}: max |p - p_TF| = {err:.3e} (frame {at}); first windows {first:.3e}",
        dir.display()
    );
    assert!(
        first <= 1e-5,
        "{}: {what}: {first:e} at frame {at_first}",
        dir.display()
    );
    if let Some(tol) = tolerance(mode, model) {
        assert!(
            err <= tol,
            "{}: {what}: {err:e} at frame {at} > {tol:e}",
            dir.display()
        );
    }
}

#[test]
fn exact_mode_matches_tensorflow() {
    check(Mode::Exact, &ConvAlgo::ALL);
}

#[test]
fn continuous_mode_is_close_to_tensorflow() {
    check(Mode::Continuous, &[ConvAlgo::DEFAULT]);
}

/// The plain reference engine on the window of frame 119: the oracle of the fast engine
/// agrees with TensorFlow too.
#[test]
fn reference_engine_matches_tensorflow_on_first_window() {
    let dir = Path::new(SHARED).join("golden/seq11");
    let frames = read_frames(&dir.join("model_input.npy")).unwrap();
    for name in MODELS {
        let tf = npy::read(&dir.join(format!("p_{name}.npy")))
            .unwrap()
            .to_f32();
        let mut engine = new_engine(model(name), EngineKind::Reference).unwrap();
        let slot = engine.alloc_states(1).unwrap().start;
        let i = engine.model().input;
        for k in 0..i.slices {
            let mut slice = vec![0.0f32; i.height * i.width * i.channels];
            for j in 0..i.channels {
                for (px, &v) in frames.frame(k * i.channels + j).iter().enumerate() {
                    slice[px * i.channels + j] = v as f32 / 255.0;
                }
            }
            engine.step(&slice, &[slot]).unwrap();
        }
        let p = engine.head(&[slot]).unwrap()[0];
        let err = (p - tf[119]).abs();
        eprintln!("reference engine, {name}: |p - p_TF| = {err:.3e} at frame 119");
        assert!(err <= 1e-5);
    }
}
