//! The fast CPU engine against the plain scalar reference engine, on random states and
//! random inputs, for small and odd shapes (edge tiles, channel counts that are not a
//! multiple of 8, pools of odd maps) and for the study's shapes; both instruction-set
//! paths; every way the engine splits work over threads. Also: a zero state's skipped
//! recurrent convolution equals computing it with explicit zeros.

use burstwatch::engine::cpu::CpuEngine;
use burstwatch::engine::reference::ReferenceEngine;
use burstwatch::engine::Engine;
use burstwatch::model::{InputShape, Model, SplitMix, StageSpec, STUDY_INPUT};

/// Largest difference between the fast and the reference engine that we accept on a
/// state value or an output probability (the final budget is 1e-5 on p).
const TOL: f32 = 1e-5;

fn small_upbeat() -> Model {
    let input = InputShape {
        slices: 3,
        height: 13,
        width: 21,
        channels: 4,
    };
    let specs = [StageSpec {
        filters: 16,
        pool: false,
        norm: true,
    }];
    Model::random("small-upbeat", input, &specs, 11)
}

/// Three input channels, 8 then 12 filters (4F = 48: a partial gate vector, three blocks),
/// a pool of an odd map (15x21 -> 7x10).
fn small_two_stage() -> Model {
    let input = InputShape {
        slices: 3,
        height: 17,
        width: 23,
        channels: 3,
    };
    let specs = [
        StageSpec {
            filters: 8,
            pool: true,
            norm: true,
        },
        StageSpec {
            filters: 12,
            pool: false,
            norm: false,
        },
    ];
    Model::random("small-two-stage", input, &specs, 12)
}

/// Five filters (4F = 20: blocks padded with zero weights), a pool after the last stage.
fn small_odd() -> Model {
    let input = InputShape {
        slices: 3,
        height: 9,
        width: 8,
        channels: 2,
    };
    let specs = [StageSpec {
        filters: 5,
        pool: true,
        norm: true,
    }];
    Model::random("small-odd", input, &specs, 13)
}

fn random_slice(model: &Model, rng: &mut SplitMix) -> Vec<f32> {
    let i = model.input;
    (0..i.height * i.width * i.channels)
        .map(|_| rng.uniform(0.0, 1.0))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Gives `batch` slots random states in both engines (every third slot left zero), steps
/// both twice on random slices, and compares every state and the head after each step.
fn compare(model: &Model, mut fast: CpuEngine, batch: usize, seed: u64) {
    let mut reference = ReferenceEngine::new(model.clone()).unwrap();
    let mut rng = SplitMix(seed);
    let slots: Vec<usize> = fast.alloc_states(batch).unwrap().collect();
    reference.alloc_states(batch).unwrap();
    let maps = model.stage_maps();
    for &slot in &slots {
        if slot % 3 == 0 {
            continue;
        }
        for (k, s) in model.stages.iter().enumerate() {
            let n = maps[k].0 * maps[k].1 * s.lstm.filters;
            let h = rng.vec(n, 1.0);
            let c = rng.vec(n, 3.0);
            fast.write_state(slot, k, &h, &c).unwrap();
            reference.write_state(slot, k, &h, &c).unwrap();
        }
    }
    // Step in a scrambled order: the batch order must not matter.
    let mut order = slots.clone();
    order.reverse();
    for step in 0..2 {
        let slice = random_slice(model, &mut rng);
        fast.step(&slice, &order).unwrap();
        reference.step(&slice, &order).unwrap();
        for &slot in &slots {
            for k in 0..model.stages.len() {
                let (fh, fc) = fast.read_state(slot, k).unwrap();
                let (rh, rc) = reference.read_state(slot, k).unwrap();
                let (dh, dc) = (max_diff(&fh, &rh), max_diff(&fc, &rc));
                assert!(
                    dh < TOL && dc < TOL,
                    "{} ({}), batch {batch}, step {step}, slot {slot}, stage {k}: |dh| {dh:e}, |dc| {dc:e}",
                    model.name,
                    fast.name()
                );
            }
        }
        let (fp, rp) = (fast.head(&slots).unwrap(), reference.head(&slots).unwrap());
        let d = max_diff(&fp, &rp);
        assert!(
            d < TOL,
            "{} ({}): head differs by {d:e}",
            model.name,
            fast.name()
        );
    }
}

#[test]
fn fast_engine_equals_reference_on_small_shapes() {
    for model in [small_upbeat(), small_two_stage(), small_odd()] {
        for threads in [1, 2, 3] {
            // Batch 1: fused input convolution, rows split; 2: shared input convolution,
            // rows split; 7: whole states per thread.
            for batch in [1, 2, 7] {
                let fast = CpuEngine::with_threads(model.clone(), threads).unwrap();
                compare(&model, fast, batch, 100 + batch as u64);
            }
        }
        compare(&model, CpuEngine::portable(model.clone(), 2).unwrap(), 3, 7);
    }
}

#[test]
fn fast_engine_equals_reference_on_study_shapes() {
    for name in ["upbeat-snowflake-91", "visionary-serenity"] {
        let model = Model::random_study(name, 3).unwrap();
        assert_eq!(model.input, STUDY_INPUT);
        compare(
            &model,
            CpuEngine::with_threads(model.clone(), 2).unwrap(),
            2,
            21,
        );
    }
}

#[test]
fn zero_state_skip_equals_explicit_zeros() {
    for model in [
        small_upbeat(),
        small_two_stage(),
        Model::random_study("upbeat-snowflake-91", 4).unwrap(),
    ] {
        for threads in [1, 2] {
            let mut e = CpuEngine::with_threads(model.clone(), threads).unwrap();
            let slots: Vec<usize> = e.alloc_states(2).unwrap().collect();
            // Slot 0 stays flagged zero (skips the recurrent convolutions); slot 1 holds
            // explicit zeros (computes them).
            for (k, n) in model
                .stage_maps()
                .iter()
                .zip(&model.stages)
                .enumerate()
                .map(|(k, (m, s))| (k, m.0 * m.1 * s.lstm.filters))
            {
                e.write_state(slots[1], k, &vec![0.0; n], &vec![0.0; n])
                    .unwrap();
            }
            let mut rng = SplitMix(9);
            for _ in 0..2 {
                let slice = random_slice(&model, &mut rng);
                // Alone (fused input convolution) and together (shared), both ways.
                e.reset(slots[0]);
                e.step(&slice, &slots[..1]).unwrap();
                let alone = e.read_state(slots[0], 0).unwrap();
                e.reset(slots[0]);
                e.step(&slice, &slots).unwrap();
                for k in 0..model.stages.len() {
                    let (h0, c0) = e.read_state(slots[0], k).unwrap();
                    let (h1, c1) = e.read_state(slots[1], k).unwrap();
                    assert!(h0 == h1 && c0 == c1, "{}: stage {k} differs", model.name);
                }
                assert_eq!(alone.0, e.read_state(slots[0], 0).unwrap().0);
                let p = e.head(&slots).unwrap();
                assert_eq!(p[0], p[1]);
                // From now on slot 1 is a general state; start it from zeros again.
                for (k, (m, s)) in model.stage_maps().iter().zip(&model.stages).enumerate() {
                    let n = m.0 * m.1 * s.lstm.filters;
                    e.write_state(slots[1], k, &vec![0.0; n], &vec![0.0; n])
                        .unwrap();
                }
            }
        }
    }
}

#[test]
fn head_of_a_fresh_slot_matches_reference() {
    let model = small_two_stage();
    let mut fast = CpuEngine::with_threads(model.clone(), 2).unwrap();
    let mut reference = ReferenceEngine::new(model.clone()).unwrap();
    fast.alloc_states(1).unwrap();
    reference.alloc_states(1).unwrap();
    let d = (fast.head(&[0]).unwrap()[0] - reference.head(&[0]).unwrap()[0]).abs();
    assert!(d < TOL);
}

#[test]
fn bad_batches_are_errors() {
    let model = small_upbeat();
    let mut e = CpuEngine::with_threads(model.clone(), 2).unwrap();
    e.alloc_states(2).unwrap();
    let slice = vec![0.0; 13 * 21 * 4];
    assert!(e.step(&slice, &[0, 0]).is_err());
    assert!(e.step(&slice, &[2]).is_err());
    assert!(e.step(&slice[1..], &[0]).is_err());
    assert!(e.write_state(0, 0, &[0.0; 3], &[0.0; 3]).is_err());
    assert!(e.read_state(0, 1).is_err());
}
