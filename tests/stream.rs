//! The streaming schedules (DESIGN §2): exact mode gives every frame its own window's
//! output, continuous mode's first window is exact, the push API takes camera frames
//! (240x320) and model frames (120x160) alike, a reset starts a new sequence, and
//! preparing each next step between frames (as `run` does) changes nothing.

use std::path::Path;

use burstwatch::engine::cpu::CpuEngine;
use burstwatch::engine::reference::ReferenceEngine;
use burstwatch::engine::stream::predict_frames;
use burstwatch::engine::{Engine, Mode, Stream};
use burstwatch::io::read_frames;
use burstwatch::model::{InputShape, Model, StageSpec};
use burstwatch::rng::SplitMix;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

/// Windows of 5 slices of 3 frames (3 phases), a 9x11 map.
fn tiny_model() -> Model {
    let input = InputShape {
        slices: 5,
        height: 9,
        width: 11,
        channels: 3,
    };
    let specs = [
        StageSpec {
            filters: 8,
            pool: true,
            norm: true,
        },
        StageSpec {
            filters: 4,
            pool: false,
            norm: false,
        },
    ];
    Model::random("tiny", input, &specs, 5)
}

fn random_frames(model: &Model, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix(seed);
    let n = model.input.height * model.input.width;
    (0..count)
        .map(|_| (0..n).map(|_| (rng.next_u64() >> 56) as u8).collect())
        .collect()
}

/// The model's output for the window ending at frame t, computed from scratch.
fn window_output(engine: &mut dyn Engine, frames: &[Vec<u8>], t: usize) -> f32 {
    let i = engine.model().input;
    let first = t + 1 - i.slices * i.channels;
    engine.reset(0);
    for k in 0..i.slices {
        let mut slice = vec![0.0f32; i.height * i.width * i.channels];
        for j in 0..i.channels {
            for (px, &v) in frames[first + k * i.channels + j].iter().enumerate() {
                slice[px * i.channels + j] = v as f32 / 255.0;
            }
        }
        engine.step(&slice, &[0]).unwrap();
    }
    engine.head(&[0]).unwrap()[0]
}

#[test]
fn exact_mode_gives_every_frame_its_window() {
    let model = tiny_model();
    let frames = random_frames(&model, 40, 1);
    let mut reference = ReferenceEngine::new(model.clone()).unwrap();
    reference.alloc_states(1).unwrap();
    for (name, engine) in [
        (
            "reference",
            Box::new(ReferenceEngine::new(model.clone()).unwrap()) as Box<dyn Engine>,
        ),
        (
            "cpu",
            Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap()),
        ),
    ] {
        let p = predict_frames(engine, Mode::Exact, &frames).unwrap();
        let first = 5 * 3 - 1;
        for (t, &pt) in p.iter().enumerate() {
            if t < first {
                assert!(pt.is_nan());
                continue;
            }
            let want = window_output(&mut reference, &frames, t);
            assert!(
                (pt - want).abs() < 1e-6,
                "{name}: frame {t}: {pt} vs window {want}"
            );
        }
    }
}

#[test]
fn continuous_mode_first_windows_are_exact() {
    let model = tiny_model();
    let frames = random_frames(&model, 30, 2);
    let engine = || Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap());
    let exact = predict_frames(engine(), Mode::Exact, &frames).unwrap();
    let continuous = predict_frames(engine(), Mode::Continuous, &frames).unwrap();
    // One first window per phase: frames 14, 15, 16.
    for t in 14..17 {
        assert!((exact[t] - continuous[t]).abs() < 1e-6);
    }
    assert!(continuous[14..].iter().all(|p| p.is_finite()));
}

#[test]
fn preparing_between_frames_changes_nothing() {
    let model = tiny_model();
    let frames = random_frames(&model, 60, 4);
    for mode in [Mode::Exact, Mode::Continuous] {
        let plain = predict_frames(
            Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap()),
            mode,
            &frames,
        )
        .unwrap();
        let mut s = Stream::new(
            Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap()),
            mode,
        )
        .unwrap();
        // Prepared before every frame, across a reset too.
        let input_macs: u64 = (0..model.stages.len()).map(|k| model.stage_macs(k).0).sum();
        let (mut prepared, mut used) = (Vec::new(), 0);
        for (i, f) in frames.iter().enumerate() {
            if i == 30 {
                s.reset();
            }
            let before = s.engine().macs_done();
            s.prepare().unwrap();
            let mid = s.engine().macs_done();
            prepared.push(s.push_frame(f).unwrap().unwrap_or(f32::NAN));
            // A preparation that was made is what the step used: only the input
            // convolutions were left to it.
            if mid > before {
                assert_eq!(s.engine().macs_done() - mid, input_macs, "frame {i}");
                used += 1;
            }
        }
        // Continuous mode prepares every step but each phase's first after a (re)start.
        let expected_used = if mode == Mode::Continuous {
            60 - 2 * (3 + 2)
        } else {
            0
        };
        assert_eq!(used, expected_used, "{mode}");
        let restarted = predict_frames(
            Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap()),
            mode,
            &frames[30..],
        )
        .unwrap();
        let expected = plain[..30].iter().chain(&restarted);
        for (t, (a, b)) in prepared.iter().zip(expected).enumerate() {
            assert!(
                a.is_nan() && b.is_nan() || (a - b).abs() < 1e-6,
                "{mode}, frame {t}: {a} vs {b}"
            );
        }
        assert!(prepared[59].is_finite());
    }
}

#[test]
fn reset_starts_a_new_sequence() {
    let model = tiny_model();
    let frames = random_frames(&model, 40, 3);
    for mode in [Mode::Exact, Mode::Continuous] {
        let mut s = Stream::new(
            Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap()),
            mode,
        )
        .unwrap();
        for f in &frames[..23] {
            s.push_frame(f).unwrap();
        }
        s.reset();
        let after: Vec<Option<f32>> = frames[23..]
            .iter()
            .map(|f| s.push_frame(f).unwrap())
            .collect();
        let fresh = predict_frames(
            Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap()),
            mode,
            &frames[23..],
        )
        .unwrap();
        for (a, b) in after.iter().zip(&fresh) {
            match a {
                None => assert!(b.is_nan()),
                Some(a) => assert!((a - b).abs() < 1e-6),
            }
        }
    }
}

#[test]
fn camera_frames_equal_model_frames() {
    let dir = Path::new(SHARED).join("golden/seq11");
    let full = read_frames(&dir.join("frames.npy")).unwrap();
    let small = read_frames(&dir.join("model_input.npy")).unwrap();
    assert_eq!((full.height, full.width), (240, 320));
    let model = Model::from_reference_npz(
        &Path::new(SHARED).join("models/upbeat-snowflake-91.reference-weights.npz"),
    )
    .unwrap();
    let n = 126;
    let run = |frames: &burstwatch::io::Frames| {
        let engine = Box::new(CpuEngine::new(model.clone()).unwrap());
        predict_frames(engine, Mode::Continuous, (0..n).map(|t| frames.frame(t))).unwrap()
    };
    let (a, b) = (run(&full), run(&small));
    for t in 0..n {
        assert!(
            a[t] == b[t] || (a[t].is_nan() && b[t].is_nan()),
            "frame {t}: {} vs {}",
            a[t],
            b[t]
        );
    }
    assert!(a[119..].iter().all(|p| p.is_finite()));
}

#[test]
fn wrong_frame_size_is_an_error() {
    let model = tiny_model();
    let mut s = Stream::new(
        Box::new(CpuEngine::with_threads(model, 1).unwrap()),
        Mode::Exact,
    )
    .unwrap();
    let e = s.push_frame(&[0u8; 10]).unwrap_err().to_string();
    assert!(e.contains("expected 11x9 or 22x18"), "{e}");
    assert!(s.push_frame(&[0u8; 99]).unwrap().is_none());
}
