//! The CUDA kernels without a GPU: `kernels/*.cu` compiled as C++ with the shim of
//! `kernels/emu/` (every thread of a block a fiber, barriers respected, guard zones around
//! every buffer) and run by the CUDA engine's own host code through its emulated backend.
//! Each kernel is compared with the scalar reference engine within 1e-5 on small, odd
//! shapes: maps that are not multiples of the 8x32 tile, 3, 5, 16 and 20 filters (partial
//! filter groups, two blocks along z), a batch of three with a zero slot, a reset slot with
//! stale buffers, the two-stage model's pool and per-state input, several slices in one
//! step; then the study's upbeat-snowflake-91 on the golden sequence's first window.
//!
//! Needs the system `g++`; without it the tests say that they were skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use burstwatch::engine::cpu::CpuEngine;
use burstwatch::engine::cuda::EmulatedEngine;
use burstwatch::engine::reference::{conv3x3_valid, ReferenceEngine};
use burstwatch::engine::Engine;
use burstwatch::io::{npy, read_frames};
use burstwatch::model::{InputShape, Model, StageSpec};
use burstwatch::rng::SplitMix;

const TOL: f32 = 1e-5;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Builds the emulator library once per test run; `None` (after saying so) without g++.
fn emulator() -> Option<&'static Path> {
    static LIB: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIB.get_or_init(|| {
        if Command::new("g++").arg("--version").output().is_err() {
            eprintln!("SKIPPED: g++ not found; the CUDA kernel emulation was not run");
            return None;
        }
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libburstwatch_kernel_emu.so");
        let kernels = Path::new(ROOT).join("kernels");
        let status = Command::new("g++")
            .args([
                "-O2",
                "-std=c++17",
                "-ffp-contract=off",
                "-fPIC",
                "-shared",
                "-Wall",
                "-Wextra",
            ])
            .args(["-Wno-unknown-pragmas", "-Werror", "-I"])
            .arg(&kernels)
            .arg(kernels.join("emu/emulator.cpp"))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("run g++");
        assert!(status.success(), "g++ failed to build the kernel emulator");
        Some(out)
    })
    .as_deref()
}

fn emulated(model: &Model) -> Option<EmulatedEngine> {
    Some(EmulatedEngine::emulated(model.clone(), emulator()?).unwrap())
}

fn model(h: usize, w: usize, c: usize, specs: &[StageSpec], seed: u64) -> Model {
    let input = InputShape {
        slices: 3,
        height: h,
        width: w,
        channels: c,
    };
    Model::random(&format!("emu-{seed}"), input, specs, seed)
}

const fn spec(filters: usize, pool: bool, norm: bool) -> StageSpec {
    StageSpec {
        filters,
        pool,
        norm,
    }
}

/// The shapes every test runs: (description, model).
fn models() -> Vec<(&'static str, Model)> {
    vec![
        ("7x9 map, F=3", model(9, 11, 4, &[spec(3, false, true)], 1)),
        (
            "7x9 map, F=16",
            model(9, 11, 4, &[spec(16, false, true)], 2),
        ),
        (
            "18x68 map (3x3 tiles, partial), F=16",
            model(20, 70, 4, &[spec(16, false, true)], 3),
        ),
        (
            "two stages F=8 pool+norm -> F=12",
            model(17, 23, 3, &[spec(8, true, true), spec(12, false, false)], 4),
        ),
        (
            "two stages F=5 pool -> F=20 (two z blocks), pool after the last",
            model(15, 41, 2, &[spec(5, true, false), spec(20, true, true)], 5),
        ),
    ]
}

fn random_slice(m: &Model, rng: &mut SplitMix) -> Vec<f32> {
    let i = m.input;
    (0..i.height * i.width * i.channels)
        .map(|_| rng.uniform(0.0, 1.0))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_nan() || y.is_nan() {
                f32::INFINITY
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// Every slot's state (all stages) of both engines within TOL; returns the worst error.
fn compare_states(what: &str, m: &Model, emu: &dyn Engine, reference: &dyn Engine) -> f32 {
    let mut worst = 0.0f32;
    for slot in 0..reference.slots() {
        for k in 0..m.stages.len() {
            let (eh, ec) = emu.read_state(slot, k).unwrap();
            let (rh, rc) = reference.read_state(slot, k).unwrap();
            let (dh, dc) = (max_diff(&eh, &rh), max_diff(&ec, &rc));
            assert!(
                dh <= TOL && dc <= TOL,
                "{what}: slot {slot} stage {k}: |dh| {dh:e}, |dc| {dc:e}"
            );
            worst = worst.max(dh).max(dc);
        }
    }
    worst
}

fn random_states(m: &Model, engines: &mut [&mut dyn Engine], slots: &[usize], rng: &mut SplitMix) {
    let maps = m.stage_maps();
    for &slot in slots {
        for (k, s) in m.stages.iter().enumerate() {
            let n = maps[k].0 * maps[k].1 * s.lstm.filters;
            let (h, c) = (rng.vec(n, 1.0), rng.vec(n, 3.0));
            for e in engines.iter_mut() {
                e.write_state(slot, k, &h, &c).unwrap();
            }
        }
    }
}

#[test]
fn input_convolution_matches_the_reference() {
    for (what, m) in models() {
        let Some(mut emu) = emulated(&m) else { return };
        let mut rng = SplitMix(10);
        let slice = random_slice(&m, &mut rng);
        let zx = emu.input_preactivations(&slice).unwrap();
        let i = m.input;
        let l = &m.stages[0].lstm;
        let want = conv3x3_valid(
            &slice,
            i.height,
            i.width,
            i.channels,
            &l.kernel,
            4 * l.filters,
        );
        let err = max_diff(&zx, &want);
        eprintln!("input_conv_f32, {what}: max error {err:.2e}");
        assert!(err <= TOL, "{what}: {err:e}");
    }
}

/// A batch of three: slot 0 zero, slots 1 and 2 random; two steps in scrambled order,
/// then slot 1 reset (its buffers keep stale values) and a third step; states and heads
/// compared after every step.
#[test]
fn batched_steps_and_heads_match_the_reference() {
    for (what, m) in models() {
        let Some(mut emu) = emulated(&m) else { return };
        let mut reference = ReferenceEngine::new(m.clone()).unwrap();
        emu.alloc_states(3).unwrap();
        reference.alloc_states(3).unwrap();
        let mut rng = SplitMix(20);
        random_states(&m, &mut [&mut emu, &mut reference], &[1, 2], &mut rng);
        let (mut worst_state, mut worst_p) = (compare_states(what, &m, &emu, &reference), 0.0f32);
        for step in 0..3 {
            if step == 2 {
                emu.reset(1);
                reference.reset(1);
            }
            let slice = random_slice(&m, &mut rng);
            emu.step(&slice, &[2, 0, 1]).unwrap();
            reference.step(&slice, &[2, 0, 1]).unwrap();
            worst_state = worst_state.max(compare_states(
                &format!("{what}, step {step}"),
                &m,
                &emu,
                &reference,
            ));
            let (pe, pr) = (
                emu.head(&[1, 0, 2]).unwrap(),
                reference.head(&[1, 0, 2]).unwrap(),
            );
            let d = max_diff(&pe, &pr);
            assert!(d <= TOL, "{what}, step {step}: heads {pe:?} vs {pr:?}");
            worst_p = worst_p.max(d);
        }
        // A slot that is zero now (reset, not stepped) gives the head of h = 0.
        emu.reset(2);
        reference.reset(2);
        let d = max_diff(&emu.head(&[2]).unwrap(), &reference.head(&[2]).unwrap());
        assert!(d <= TOL, "{what}: head of a zero slot differs by {d:e}");
        eprintln!("lstm_step_f32 + pool_norm_f32 + head_f32, {what}: max state error {worst_state:.2e}, max p error {worst_p:.2e}");
    }
}

/// Several slices in one step (one per camera): the same as separate steps.
#[test]
fn grouped_steps_match_separate_steps() {
    for (what, m) in models() {
        let Some(mut emu) = emulated(&m) else { return };
        let mut reference = ReferenceEngine::new(m.clone()).unwrap();
        emu.alloc_states(5).unwrap();
        reference.alloc_states(5).unwrap();
        let mut rng = SplitMix(30);
        random_states(&m, &mut [&mut emu, &mut reference], &[0, 3, 4], &mut rng);
        let (a, b) = (random_slice(&m, &mut rng), random_slice(&m, &mut rng));
        let groups: [(&[f32], &[usize]); 3] = [(&a, &[4, 1]), (&b, &[]), (&b, &[0, 2, 3])];
        emu.step_groups(&groups).unwrap();
        reference.step(&a, &[4, 1]).unwrap();
        reference.step(&b, &[0, 2, 3]).unwrap();
        let worst = compare_states(what, &m, &emu, &reference);
        let slots = [0, 1, 2, 3, 4];
        let d = max_diff(&emu.head(&slots).unwrap(), &reference.head(&slots).unwrap());
        assert!(d <= TOL, "{what}: heads differ by {d:e}");
        eprintln!("step_groups, {what}: max state error {worst:.2e}, max p error {d:.2e}");
        // Slots shared between groups are refused.
        assert!(emu.step_groups(&[(&a, &[1]), (&b, &[1])]).is_err());
    }
}

#[test]
fn a_slice_of_the_wrong_size_is_refused() {
    let (_, m) = &models()[1];
    let Some(mut emu) = emulated(m) else { return };
    emu.alloc_states(1).unwrap();
    // A wrong slice length is refused before any launch.
    assert!(emu.step(&[0.0; 3], &[0]).is_err());
}

/// The study's upbeat-snowflake-91 on the golden sequence's first window (frames 0..=119),
/// through the emulated kernels, against TensorFlow's p at frame 119.
#[test]
fn golden_first_window_of_upbeat_snowflake_91() {
    let shared = Path::new(ROOT).join("../shared");
    let weights = shared.join("models/upbeat-snowflake-91.reference-weights.npz");
    let golden = shared.join("golden/seq11");
    if !weights.exists() || !golden.exists() {
        eprintln!(
            "SKIPPED: {} or {} not found",
            weights.display(),
            golden.display()
        );
        return;
    }
    let m = Model::from_reference_npz(&weights).unwrap();
    let Some(mut emu) = emulated(&m) else { return };
    let start = std::time::Instant::now();
    let frames = read_frames(&golden.join("model_input.npy")).unwrap();
    let tf = npy::read(&golden.join("p_upbeat-snowflake-91.npy"))
        .unwrap()
        .to_f32();
    let i = m.input;
    assert_eq!((frames.height, frames.width), (i.height, i.width));
    let slot = emu.alloc_states(1).unwrap().start;
    let mut cpu = CpuEngine::new(m.clone()).unwrap();
    cpu.alloc_states(1).unwrap();
    let mut slice = vec![0.0f32; i.height * i.width * i.channels];
    for k in 0..i.slices {
        for j in 0..i.channels {
            for (px, &v) in frames.frame(k * i.channels + j).iter().enumerate() {
                slice[px * i.channels + j] = v as f32 / 255.0;
            }
        }
        emu.step(&slice, &[slot]).unwrap();
        cpu.step(&slice, &[slot]).unwrap();
    }
    // The whole final state, not only p (which is small at this frame).
    let state_err = compare_states("golden window", &m, &emu, &cpu);
    let p = emu.head(&[slot]).unwrap()[0];
    let t = i.slices * i.channels - 1;
    let err = (p - tf[t]).abs();
    eprintln!(
        "golden seq11, upbeat-snowflake-91, frame {t}: emulated p = {p:.7}, TF {:.7}, |error| {err:.2e}; \
         final h, c vs the CPU engine: max error {state_err:.2e} ({:.1} s)",
        tf[t],
        start.elapsed().as_secs_f64()
    );
    assert!(err <= TOL, "{err:e}");
}
