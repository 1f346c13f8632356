//! The fast CPU engine against the plain scalar reference engine, on random states and
//! random inputs, for small and odd shapes (edge tiles, channel counts that are not a
//! multiple of 8 or 16, pools of odd maps) and for the study's shapes; every instruction
//! set this CPU has (portable, AVX2, AVX-512); every way the engine splits work over
//! threads. Also: a zero state's skipped recurrent convolution equals computing it with
//! explicit zeros, and a step prepared ahead (`Engine::prepare`) equals one that is not, and
//! is never used once stale. Every check runs with every convolution: direct and Winograd
//! F(2x2, 3x3), F(3x3, 3x3) and F(4x4, 3x3); and each one's rounding is measured against a
//! float64 step.

use burstwatch::engine::cpu::{ConvAlgo, CpuEngine, Simd, Winograd};
use burstwatch::engine::reference::ReferenceEngine;
use burstwatch::engine::Engine;
use burstwatch::model::{InputShape, Model, StageSpec, STUDY_INPUT};
use burstwatch::rng::SplitMix;

/// Largest difference between the fast and the reference engine that we accept on a
/// state value or an output probability (the final budget is 1e-5 on p).
const TOL: f32 = 1e-5;

/// The same for Winograd's F(4x4, 3x3), which is not the default because it exceeds TOL:
/// its transforms multiply by up to 25 and 64 and G has 1/6, 1/12, 1/24, so a state value
/// is within 1.9e-5 of float64 where F(3x3) is within 7e-6 (every_convolution_s_rounding_
/// against_float64). Opt-in (`BURSTWATCH_CONV=winograd4x4`), with this bound.
const F4X4_TOL: f32 = 3e-5;

/// The bound `e`'s convolution is held to.
fn tol(e: &CpuEngine) -> f32 {
    match e.conv() {
        ConvAlgo::Winograd(Winograd::F4x4) => F4X4_TOL,
        _ => TOL,
    }
}

/// The fast engines to hold to the reference: both convolutions (direct, Winograd), on
/// `threads` threads with the best instruction set, and on 2 threads with each other
/// instruction set this CPU has (portable, AVX2, AVX-512).
fn fast_engines(model: &Model, threads: &[usize]) -> Vec<CpuEngine> {
    let mut out = Vec::new();
    for conv in ConvAlgo::ALL {
        for &t in threads {
            out.push(CpuEngine::with_conv(model.clone(), t, conv, Simd::best()).unwrap());
        }
        for simd in Simd::available() {
            if simd != Simd::best() {
                out.push(CpuEngine::with_conv(model.clone(), 2, conv, simd).unwrap());
            }
        }
    }
    out
}

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
        assert_same(
            model,
            &mut fast,
            &mut reference,
            &format!("batch {batch}, step {step}"),
        );
    }
}

#[test]
fn fast_engine_equals_reference_on_small_shapes() {
    for model in [small_upbeat(), small_two_stage(), small_odd()] {
        // Batch 1: fused input convolution, rows split; 2: shared input convolution,
        // rows split; 7: whole states per thread.
        for batch in [1, 2, 7] {
            for fast in fast_engines(&model, &[1, 2, 3]) {
                compare(&model, fast, batch, 100 + batch as u64);
            }
        }
    }
}

#[test]
fn fast_engine_equals_reference_on_study_shapes() {
    for name in ["upbeat-snowflake-91", "visionary-serenity"] {
        let model = Model::random_study(name, 3).unwrap();
        assert_eq!(model.input, STUDY_INPUT);
        for conv in ConvAlgo::ALL {
            for simd in Simd::available() {
                let fast = CpuEngine::with_conv(model.clone(), 2, conv, simd).unwrap();
                compare(&model, fast, 2, 21);
            }
        }
    }
}

#[test]
fn zero_state_skip_equals_explicit_zeros() {
    for model in [
        small_upbeat(),
        small_two_stage(),
        Model::random_study("upbeat-snowflake-91", 4).unwrap(),
    ] {
        for mut e in fast_engines(&model, &[1, 2]) {
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
                // The direct convolution of explicit zeros adds exact zeros; Winograd's
                // computes a later stage's input convolution its own way, so there the
                // two agree within rounding.
                let exact = !e.name().contains("winograd");
                let tol = if exact { 0.0 } else { 1e-6 };
                for k in 0..model.stages.len() {
                    let (h0, c0) = e.read_state(slots[0], k).unwrap();
                    let (h1, c1) = e.read_state(slots[1], k).unwrap();
                    let d = max_diff(&h0, &h1).max(max_diff(&c0, &c1));
                    assert!(
                        d <= tol,
                        "{} ({}): stage {k} differs by {d:e}",
                        model.name,
                        e.name()
                    );
                }
                assert_eq!(alone.0, e.read_state(slots[0], 0).unwrap().0);
                let p = e.head(&slots).unwrap();
                assert!((p[0] - p[1]).abs() <= tol);
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

/// Gives slot `slot` of both engines the same random state.
fn random_state(model: &Model, a: &mut dyn Engine, b: &mut dyn Engine, slot: usize, seed: u64) {
    let mut rng = SplitMix(seed);
    for (k, (m, s)) in model.stage_maps().iter().zip(&model.stages).enumerate() {
        let n = m.0 * m.1 * s.lstm.filters;
        let (h, c) = (rng.vec(n, 1.0), rng.vec(n, 3.0));
        a.write_state(slot, k, &h, &c).unwrap();
        b.write_state(slot, k, &h, &c).unwrap();
    }
}

/// Every state of `slots` and their heads agree within TOL.
fn assert_same(model: &Model, fast: &mut CpuEngine, reference: &mut ReferenceEngine, what: &str) {
    let tol = tol(fast);
    let slots: Vec<usize> = (0..fast.slots()).collect();
    for &slot in &slots {
        for k in 0..model.stages.len() {
            let (fh, fc) = fast.read_state(slot, k).unwrap();
            let (rh, rc) = reference.read_state(slot, k).unwrap();
            let (dh, dc) = (max_diff(&fh, &rh), max_diff(&fc, &rc));
            assert!(
                dh < tol && dc < tol,
                "{} ({}), {what}: slot {slot} stage {k}: |dh| {dh:e}, |dc| {dc:e}",
                model.name,
                fast.name()
            );
        }
    }
    let d = max_diff(
        &fast.head(&slots).unwrap(),
        &reference.head(&slots).unwrap(),
    );
    assert!(
        d < tol,
        "{} ({}), {what}: head differs by {d:e}",
        model.name,
        fast.name()
    );
}

/// Both engines and the slices they are fed.
struct Pair<'m> {
    model: &'m Model,
    fast: CpuEngine,
    reference: ReferenceEngine,
    rng: SplitMix,
}

impl Pair<'_> {
    /// Steps `slots` of both engines on a random slice and compares them.
    fn step(&mut self, slots: &[usize], what: &str) {
        let slice = random_slice(self.model, &mut self.rng);
        self.fast.step(&slice, slots).unwrap();
        self.reference.step(&slice, slots).unwrap();
        assert_same(self.model, &mut self.fast, &mut self.reference, what);
    }
}

#[test]
fn prepared_steps_equal_the_reference_and_stale_preparations_are_not_used() {
    let study = Model::random_study("upbeat-snowflake-91", 5).unwrap();
    for model in [small_upbeat(), small_two_stage(), small_odd(), study] {
        for fast in fast_engines(&model, &[1, 2, 3]) {
            let mut e = Pair {
                model: &model,
                fast,
                reference: ReferenceEngine::new(model.clone()).unwrap(),
                rng: SplitMix(31),
            };
            e.fast.alloc_states(2).unwrap();
            e.reference.alloc_states(2).unwrap();
            // A zero slot has nothing to prepare; then three prepared steps in a row.
            e.fast.prepare(0).unwrap();
            e.step(&[0], "prepared zero slot");
            let macs = e.fast.macs_done();
            for i in 0..3 {
                e.fast.prepare(0).unwrap();
                e.step(&[0], &format!("prepared step {i}"));
            }
            // The same work as unprepared steps: prepare counts what the step skips.
            let per_step = (e.fast.macs_done() - macs) / 3;
            e.step(&[0], "unprepared step");
            assert_eq!(e.fast.macs_done() - macs, 4 * per_step, "{}", model.name);

            // Stale preparations: the slot was stepped in a batch, reset, overwritten, or
            // another slot was prepared since.
            random_state(&model, &mut e.fast, &mut e.reference, 1, 7);
            e.fast.prepare(0).unwrap();
            e.step(&[1, 0], "batch after preparing one of its slots");
            e.step(&[0], "step after that batch");
            e.fast.prepare(0).unwrap();
            e.fast.reset(0);
            e.reference.reset(0);
            e.step(&[0], "step after reset");
            e.fast.prepare(0).unwrap();
            random_state(&model, &mut e.fast, &mut e.reference, 0, 8);
            e.step(&[0], "step after write_state");
            e.fast.prepare(0).unwrap();
            e.fast.prepare(1).unwrap();
            e.step(&[0], "step after preparing another slot");
            e.step(&[1], "the other slot's prepared step");
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

/// Many cameras in one `step_groups` call (one slot each, each its own slice: the engine
/// service's continuous-mode batch) equal the reference's steps one by one: fresh and
/// random states, some prepared, others not, one and two stages, every thread count.
#[test]
fn batched_single_slot_groups_equal_the_reference() {
    let study = Model::random_study("upbeat-snowflake-91", 9).unwrap();
    for model in [small_upbeat(), small_two_stage(), small_odd(), study] {
        for mut fast in fast_engines(&model, &[1, 2, 3]) {
            let mut reference = ReferenceEngine::new(model.clone()).unwrap();
            fast.alloc_states(5).unwrap();
            reference.alloc_states(5).unwrap();
            let mut rng = SplitMix(77);
            // Slot 4 stays zero for the first batch; the others get random states.
            for slot in 0..4 {
                random_state(&model, &mut fast, &mut reference, slot, 40 + slot as u64);
            }
            for round in 0..3 {
                let slices: Vec<Vec<f32>> =
                    (0..5).map(|_| random_slice(&model, &mut rng)).collect();
                // Two of the five prepared (a different pair each round).
                fast.prepare(round % 5).unwrap();
                fast.prepare((round + 2) % 5).unwrap();
                // Groups in an order that is not the slots' own.
                let order = [3, 0, 4, 1, 2];
                let slots: Vec<[usize; 1]> = order.iter().map(|&s| [s]).collect();
                let groups: Vec<(&[f32], &[usize])> = order
                    .iter()
                    .zip(&slots)
                    .map(|(&s, one)| (&slices[s][..], &one[..]))
                    .collect();
                fast.step_groups(&groups).unwrap();
                for (s, slice) in slices.iter().enumerate() {
                    reference.step(slice, &[s]).unwrap();
                }
                assert_same(&model, &mut fast, &mut reference, &format!("batch {round}"));
            }
        }
    }
}

/// One step of every stage in float64 from the same states and slice: the yardstick of
/// the convolutions' rounding. `states[k]` is stage k's (h, c) without border, updated.
fn step_f64(model: &Model, slice: &[f32], states: &mut [(Vec<f64>, Vec<f64>)]) {
    let hs = |v: f64| (0.2 * v + 0.5).clamp(0.0, 1.0);
    let i = model.input;
    let (mut x, mut in_h, mut in_w, mut cin) = (
        slice.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>(),
        i.height,
        i.width,
        i.channels,
    );
    for (k, stage) in model.stages.iter().enumerate() {
        let l = &stage.lstm;
        let (f, h, w) = (l.filters, in_h - 2, in_w - 2);
        let (h_old, c) = &mut states[k];
        let mut h_new = vec![0.0; h * w * f];
        let mut z = vec![0.0f64; 4 * f];
        for y in 0..h {
            for xx in 0..w {
                z.fill(0.0);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let tap = ky * 3 + kx;
                        for ci in 0..cin {
                            let v = x[((y + ky) * in_w + xx + kx) * cin + ci];
                            let kr = &l.kernel[(tap * cin + ci) * 4 * f..][..4 * f];
                            for (a, &kv) in z.iter_mut().zip(kr) {
                                *a += v * f64::from(kv);
                            }
                        }
                        // The "same" convolution of h: source pixel (y + ky - 1, x + kx - 1).
                        let (sy, sx) = (y + ky, xx + kx);
                        if sy == 0 || sx == 0 || sy > h || sx > w {
                            continue;
                        }
                        for ci in 0..f {
                            let v = h_old[((sy - 1) * w + sx - 1) * f + ci];
                            let kr = &l.recurrent[(tap * f + ci) * 4 * f..][..4 * f];
                            for (a, &kv) in z.iter_mut().zip(kr) {
                                *a += v * f64::from(kv);
                            }
                        }
                    }
                }
                let p = (y * w + xx) * f;
                for j in 0..f {
                    let cn = hs(z[f + j]) * c[p + j] + hs(z[j]) * z[2 * f + j].tanh();
                    c[p + j] = cn;
                    h_new[p + j] = hs(z[3 * f + j]) * cn.tanh();
                }
            }
        }
        *h_old = h_new;
        // The next stage's input: pool, then BatchNorm, as the engines do.
        let (oh, ow) = if stage.pool { (h / 2, w / 2) } else { (h, w) };
        let at = |y: usize, xx: usize, j: usize| h_old[(y * w + xx) * f + j];
        x = (0..oh * ow * f)
            .map(|q| {
                let (y, xx, j) = (q / f / ow, q / f % ow, q % f);
                let v = if stage.pool {
                    at(2 * y, 2 * xx, j)
                        .max(at(2 * y, 2 * xx + 1, j))
                        .max(at(2 * y + 1, 2 * xx, j))
                        .max(at(2 * y + 1, 2 * xx + 1, j))
                } else {
                    at(y, xx, j)
                };
                match &stage.norm {
                    Some(n) => {
                        let g = n.gamma.as_ref().map_or(1.0, |g| f64::from(g[j]));
                        let b = n.beta.as_ref().map_or(0.0, |b| f64::from(b[j]));
                        let s = g / (f64::from(n.variance[j]) + f64::from(n.epsilon)).sqrt();
                        (v - f64::from(n.mean[j])) * s + b
                    }
                    None => v,
                }
            })
            .collect();
        (in_h, in_w, cin) = (oh, ow, f);
    }
}

/// The largest |engine - float64| over the states of one step from random states (h in
/// [-1, 1), c in [-3, 3)), every stage: the rounding of each convolution, printed as the
/// README's numerics table, and held to the engines' bound.
#[test]
fn every_convolution_s_rounding_against_float64() {
    for name in ["upbeat-snowflake-91", "visionary-serenity"] {
        let model = Model::random_study(name, 5).unwrap();
        let mut rng = SplitMix(77);
        let maps = model.stage_maps();
        let states: Vec<(Vec<f32>, Vec<f32>)> = model
            .stages
            .iter()
            .zip(&maps)
            .map(|(s, m)| {
                let n = m.0 * m.1 * s.lstm.filters;
                (rng.vec(n, 1.0), rng.vec(n, 3.0))
            })
            .collect();
        let slice = random_slice(&model, &mut rng);
        let mut exact: Vec<(Vec<f64>, Vec<f64>)> = states
            .iter()
            .map(|(h, c)| {
                let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
                (wide(h), wide(c))
            })
            .collect();
        step_f64(&model, &slice, &mut exact);
        let error = |e: &mut dyn Engine| -> f64 {
            let slot = e.alloc_states(1).unwrap().start;
            for (k, (h, c)) in states.iter().enumerate() {
                e.write_state(slot, k, h, c).unwrap();
            }
            e.step(&slice, &[slot]).unwrap();
            let mut worst = 0.0f64;
            for (k, (h, c)) in exact.iter().enumerate() {
                let (eh, ec) = e.read_state(slot, k).unwrap();
                for (a, b) in eh.iter().zip(h).chain(ec.iter().zip(c)) {
                    worst = worst.max((f64::from(*a) - b).abs());
                }
            }
            worst
        };
        let mut reference = ReferenceEngine::new(model.clone()).unwrap();
        let yardstick = error(&mut reference);
        eprintln!(
            "{name}: scalar reference engine (f32, direct): max |state - float64| {yardstick:.2e}"
        );
        assert!(yardstick < f64::from(TOL) / 2.0);
        for conv in ConvAlgo::ALL {
            for simd in Simd::available() {
                let mut e = CpuEngine::with_conv(model.clone(), 2, conv, simd).unwrap();
                let err = error(&mut e);
                eprintln!(
                    "{name}: {} {}: max |state - float64| {err:.2e}",
                    conv.name(),
                    simd.name()
                );
                assert!(err < f64::from(tol(&e)), "{name}: {}: {err:e}", e.name());
            }
        }
    }
}
