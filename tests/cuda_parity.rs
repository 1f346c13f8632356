//! The CUDA engine on a real GPU (run by scripts/gpu-check.sh): against the CPU engine on
//! random states and inputs, and against TensorFlow on the golden sequences.
//!
//! These tests need an NVIDIA GPU, its driver and NVRTC, so they are `#[ignore]`d: a
//! plain `cargo test` lists them as ignored (never as passed). Run them with
//! `cargo test --release --test cuda_parity -- --ignored`; without a usable GPU they then
//! fail, saying why.

use std::path::{Path, PathBuf};

use burstwatch::engine::cpu::CpuEngine;
use burstwatch::engine::cuda::CudaEngine;
use burstwatch::engine::{stream::predict_frames, Engine, Mode};
use burstwatch::io::{npy, read_frames};
use burstwatch::model::{InputShape, Model, StageSpec};
use burstwatch::rng::SplitMix;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");
const TOL: f32 = 1e-5;
const STUDY: [&str; 2] = ["upbeat-snowflake-91", "visionary-serenity"];

fn cuda(model: &Model) -> CudaEngine {
    CudaEngine::new(model.clone(), 0)
        .unwrap_or_else(|e| panic!("the CUDA parity tests need a GPU: {e}"))
}

fn study(name: &str) -> Model {
    let path = Path::new(SHARED).join(format!("models/{name}.reference-weights.npz"));
    Model::from_reference_npz(&path).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs()
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0, f32::max)
}

/// `batch` slots, every fourth left zero, the rest random; two steps in scrambled order;
/// every state and head compared with the CPU engine after each.
fn compare_with_cpu(what: &str, model: &Model, batch: usize, seed: u64) {
    let mut gpu = cuda(model);
    let mut cpu = CpuEngine::new(model.clone()).unwrap();
    gpu.alloc_states(batch).unwrap();
    cpu.alloc_states(batch).unwrap();
    let mut rng = SplitMix(seed);
    let maps = model.stage_maps();
    for slot in (0..batch).filter(|s| s % 4 != 0) {
        for (k, s) in model.stages.iter().enumerate() {
            let n = maps[k].0 * maps[k].1 * s.lstm.filters;
            let (h, c) = (rng.vec(n, 1.0), rng.vec(n, 3.0));
            gpu.write_state(slot, k, &h, &c).unwrap();
            cpu.write_state(slot, k, &h, &c).unwrap();
        }
    }
    let order: Vec<usize> = (0..batch).rev().collect();
    let i = model.input;
    let (mut worst_state, mut worst_p) = (0.0f32, 0.0f32);
    for step in 0..2 {
        let slice: Vec<f32> = (0..i.height * i.width * i.channels)
            .map(|_| rng.uniform(0.0, 1.0))
            .collect();
        gpu.step(&slice, &order).unwrap();
        cpu.step(&slice, &order).unwrap();
        for slot in 0..batch {
            for k in 0..model.stages.len() {
                let (gh, gc) = gpu.read_state(slot, k).unwrap();
                let (ch, cc) = cpu.read_state(slot, k).unwrap();
                let (dh, dc) = (max_diff(&gh, &ch), max_diff(&gc, &cc));
                assert!(
                    dh <= TOL && dc <= TOL,
                    "{what}, step {step}, slot {slot}, stage {k}: {dh:e} / {dc:e}"
                );
                worst_state = worst_state.max(dh).max(dc);
            }
        }
        let d = max_diff(&gpu.head(&order).unwrap(), &cpu.head(&order).unwrap());
        assert!(d <= TOL, "{what}, step {step}: heads differ by {d:e}");
        worst_p = worst_p.max(d);
    }
    eprintln!("{what}: CUDA vs CPU, max state error {worst_state:.2e}, max p error {worst_p:.2e}");
}

#[test]
#[ignore = "needs an NVIDIA GPU; run by scripts/gpu-check.sh"]
fn cuda_matches_the_cpu_engine_on_random_states() {
    for name in STUDY {
        compare_with_cpu(
            &format!("{name} (study weights), batch 30"),
            &study(name),
            30,
            1,
        );
    }
    let odd = |h, w, c, specs: &[StageSpec], seed| {
        Model::random(
            "odd",
            InputShape {
                slices: 3,
                height: h,
                width: w,
                channels: c,
            },
            specs,
            seed,
        )
    };
    let s = |filters, pool, norm| StageSpec {
        filters,
        pool,
        norm,
    };
    compare_with_cpu("9x11x4, F=3", &odd(9, 11, 4, &[s(3, false, true)], 2), 3, 2);
    compare_with_cpu(
        "17x23x3, F=8 pool -> F=12",
        &odd(17, 23, 3, &[s(8, true, true), s(12, false, false)], 3),
        5,
        3,
    );
    compare_with_cpu(
        "15x41x2, F=5 pool -> F=20 pool",
        &odd(15, 41, 2, &[s(5, true, false), s(20, true, true)], 4),
        4,
        4,
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU; run by scripts/gpu-check.sh"]
fn grouped_steps_match_separate_steps_on_the_gpu() {
    let model = study("upbeat-snowflake-91");
    let (mut grouped, mut separate) = (cuda(&model), cuda(&model));
    grouped.alloc_states(6).unwrap();
    separate.alloc_states(6).unwrap();
    let mut rng = SplitMix(7);
    let i = model.input;
    let slices: Vec<Vec<f32>> = (0..3)
        .map(|_| {
            (0..i.height * i.width * i.channels)
                .map(|_| rng.uniform(0.0, 1.0))
                .collect()
        })
        .collect();
    let slots: [&[usize]; 3] = [&[0, 1], &[2, 3], &[4, 5]];
    for _ in 0..2 {
        let groups: Vec<(&[f32], &[usize])> = slices.iter().map(|s| &s[..]).zip(slots).collect();
        grouped.step_groups(&groups).unwrap();
        for (s, sl) in &groups {
            separate.step(s, sl).unwrap();
        }
    }
    let all = [0, 1, 2, 3, 4, 5];
    let d = max_diff(&grouped.head(&all).unwrap(), &separate.head(&all).unwrap());
    assert!(d <= TOL, "{d:e}");
    eprintln!("step_groups vs separate steps on the GPU: max p difference {d:.2e}");
}

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

fn golden(mode: Mode, tolerance: f32) {
    for dir in golden_dirs() {
        let frames = read_frames(&dir.join("model_input.npy")).unwrap();
        let frames: Vec<&[u8]> = (0..frames.count).map(|t| frames.frame(t)).collect();
        for name in STUDY {
            let tf = npy::read(&dir.join(format!("p_{name}.npy")))
                .unwrap()
                .to_f32();
            let p = predict_frames(Box::new(cuda(&study(name))), mode, &frames).unwrap();
            let mut worst = (0.0f32, 0);
            for (t, (&a, &b)) in p.iter().zip(&tf).enumerate() {
                if b.is_nan() {
                    assert!(a.is_nan(), "frame {t}: TF has no output, we have {a}");
                    continue;
                }
                let d = if a.is_finite() {
                    (a - b).abs()
                } else {
                    f32::INFINITY
                };
                if d > worst.0 {
                    worst = (d, t);
                }
            }
            eprintln!(
                "{}: {name} {mode} on CUDA: max |p - p_TF| = {:.3e} (frame {})",
                dir.display(),
                worst.0,
                worst.1
            );
            assert!(
                worst.0 <= tolerance,
                "{name} {mode}: {:e} at frame {}",
                worst.0,
                worst.1
            );
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU; run by scripts/gpu-check.sh"]
fn exact_mode_on_cuda_matches_tensorflow() {
    golden(Mode::Exact, TOL);
}

#[test]
#[ignore = "needs an NVIDIA GPU; run by scripts/gpu-check.sh"]
fn continuous_mode_on_cuda_is_close_to_tensorflow() {
    golden(Mode::Continuous, 1e-3);
}
