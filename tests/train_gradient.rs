//! The trainer's hand-written backward pass against finite differences in float64
//! (issue 7: relative error <= 1e-6 for every parameter tensor), and its forward pass
//! against the engines that run the trained model.

use burstwatch::engine::{new_engine, stream::predict_frames, EngineKind, Mode};
use burstwatch::frame::Flip;
use burstwatch::io::Frames;
use burstwatch::model::{InputShape, Model, StageSpec};
use burstwatch::rng::SplitMix;
use burstwatch::train::data::{Chain, Clip};
use burstwatch::train::net::{Norm, Shape, State, Worker};
use burstwatch::train::Net;

const SHAPE: Shape = Shape {
    height: 7,
    width: 9,
    channels: 4,
    filters: 3,
};
const STEPS: usize = 6;
const WEIGHTS: (f64, f64) = (0.3, 0.7);

struct Problem {
    params: Vec<f64>,
    norm: Norm<f64>,
    start: State<f64>,
    slices: Vec<Vec<f64>>,
    labels: Vec<Option<bool>>,
}

fn problem(seed: u64) -> Problem {
    let mut rng = SplitMix(seed);
    let mut u =
        |lo: f64, hi: f64| lo + (hi - lo) * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    // Kernels large enough that some gates clip (the hard sigmoid's flat parts are part of
    // what is checked), dense weights and norm of the study's order.
    let params: Vec<f64> = (0..SHAPE.param_count()).map(|_| u(-0.6, 0.6)).collect();
    let f = SHAPE.filters;
    let norm = Norm {
        mean: (0..f).map(|_| u(-0.1, 0.1)).collect(),
        inv_std: (0..f).map(|_| u(0.5, 3.0)).collect(),
    };
    let mut start = State::zero(&SHAPE);
    for y in 0..SHAPE.out_height() {
        for x in 0..SHAPE.out_width() {
            for k in 0..f {
                start.set(&SHAPE, y, x, k, u(-0.5, 0.5), u(-1.0, 1.0));
            }
        }
    }
    let n = SHAPE.height * SHAPE.width * SHAPE.channels;
    let slices = (0..STEPS)
        .map(|_| (0..n).map(|_| u(0.0, 1.0)).collect())
        .collect();
    // Step 1 has no label: its gradient only comes through later steps.
    let labels = (0..STEPS)
        .map(|t| (t != 1).then(|| u(0.0, 1.0) < 0.4))
        .collect();
    Problem {
        params,
        norm,
        start,
        slices,
        labels,
    }
}

fn bce(logit: f64, y: bool) -> (f64, f64) {
    let p = 1.0 / (1.0 + (-logit).exp());
    if y {
        (-WEIGHTS.1 * p.ln(), WEIGHTS.1 * (p - 1.0))
    } else {
        (-WEIGHTS.0 * (1.0 - p).ln(), WEIGHTS.0 * p)
    }
}

/// The loss of the chunk, and (with `grads`) its gradient from the backward pass.
fn loss(p: &Problem, params: &[f64], worker: &mut Worker<f64>, grads: bool) -> f64 {
    let mut state = p.start.clone();
    let logits = worker.forward(params, &p.norm, &mut state, STEPS, |t, buf| {
        buf.copy_from_slice(&p.slices[t])
    });
    let mut total = 0.0;
    let mut d = vec![0.0; STEPS];
    for t in 0..STEPS {
        if let Some(y) = p.labels[t] {
            let (l, dl) = bce(logits[t], y);
            total += l;
            d[t] = dl;
        }
    }
    if grads {
        worker.clear();
        worker.backward(params, &p.norm, &d);
    }
    total
}

#[test]
fn backward_pass_matches_finite_differences_in_f64() {
    for seed in [1, 2] {
        let p = problem(seed);
        let mut worker = Worker::<f64>::new(SHAPE, STEPS);
        loss(&p, &p.params, &mut worker, true);
        let analytic = worker.grads.clone();
        let eps = 1e-6;
        let mut numeric = vec![0.0; p.params.len()];
        let mut params = p.params.clone();
        for i in 0..params.len() {
            let x = params[i];
            params[i] = x + eps;
            let up = loss(&p, &params, &mut worker, false);
            params[i] = x - eps;
            let down = loss(&p, &params, &mut worker, false);
            params[i] = x;
            numeric[i] = (up - down) / (2.0 * eps);
        }
        let (c, f) = (SHAPE.channels, SHAPE.filters);
        let g = 4 * f;
        let at = SHAPE.dense_at();
        let tensors = [
            ("input kernel", 0..9 * c * g),
            ("recurrent kernel", 9 * c * g..at),
            ("dense weights", at..at + f),
            ("dense bias", at + f..at + f + 1),
        ];
        for (name, range) in tensors {
            let a = &analytic[range.clone()];
            let n = &numeric[range];
            let diff: f64 = a
                .iter()
                .zip(n)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm_a: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let norm_n: f64 = n.iter().map(|x| x * x).sum::<f64>().sqrt();
            let rel = diff / norm_a.max(norm_n);
            eprintln!("seed {seed} {name}: |grad| {norm_a:.3e}, relative error {rel:.2e}");
            assert!(
                norm_a > 1e-6,
                "{name}: gradient vanished, the check would be empty"
            );
            assert!(rel <= 1e-6, "{name}: relative error {rel:e} > 1e-6");
        }
    }
}

/// Camera-size random frames with moving bright blobs, so the states do something.
fn frames(count: usize, h: usize, w: usize, seed: u64) -> Frames {
    let mut rng = SplitMix(seed);
    let mut data = vec![0u8; count * h * w];
    for t in 0..count {
        for v in &mut data[t * h * w..(t + 1) * h * w] {
            *v = if rng.next_u64().is_multiple_of(5) {
                (rng.next_u64() % 256) as u8
            } else {
                0
            };
        }
    }
    Frames {
        count,
        height: h,
        width: w,
        data,
    }
}

#[test]
fn forward_pass_equals_the_engines_continuous_mode() {
    let input = InputShape {
        slices: 3,
        height: 12,
        width: 14,
        channels: 4,
    };
    let spec = [StageSpec {
        filters: 5,
        pool: false,
        norm: true,
    }];
    let model = Model::random("small", input, &spec, 7);
    let net = Net::from_model(&model).unwrap();
    assert_eq!(
        net.to_model(),
        model,
        "the model round-trips through the trainer's form"
    );
    let full = frames(70, 24, 28, 3);
    let clip = Clip::from_frames("random", &full, input).unwrap();
    let frames: Vec<&[u8]> = (0..clip.len()).map(|t| clip.frame(t)).collect();
    for kind in [EngineKind::Reference, EngineKind::Cpu] {
        let engine = new_engine(model.clone(), kind).unwrap();
        let want = predict_frames(engine, Mode::Continuous, frames.iter()).unwrap();
        let norm: Norm<f32> = net.norm();
        let mut checked = 0;
        let mut worst = 0.0f64;
        for phase in 0..4 {
            let chain = Chain {
                clip: 0,
                start: 0,
                end: clip.len(),
                phase,
                flip: Flip::default(),
            };
            let mut worker = Worker::<f32>::new(net.shape, 4);
            let mut state = State::zero(&net.shape);
            let steps = chain.steps(4);
            let mut j0 = 0;
            while j0 < steps {
                let n = (steps - j0).min(4);
                let logits = worker.forward(&net.params, &norm, &mut state, n, |j, buf| {
                    clip.fill_slice(chain.frame_of(j0 + j, 4), 4, chain.flip, buf)
                });
                for (j, z) in logits.iter().enumerate() {
                    let t = chain.frame_of(j0 + j, 4);
                    if j0 + j + 1 >= input.slices {
                        let p = 1.0 / (1.0 + (-*z as f64).exp());
                        worst = worst.max((p - want[t] as f64).abs());
                        checked += 1;
                    } else {
                        assert!(want[t].is_nan(), "frame {t} has no full window yet");
                    }
                }
                j0 += n;
            }
        }
        assert_eq!(checked, clip.len() - (4 * input.slices - 1));
        eprintln!("{kind:?}: max |p_train - p_engine| = {worst:.2e}");
        assert!(
            worst < 2e-5,
            "{kind:?}: trainer and engine differ by {worst:e}"
        );
    }
}

#[test]
fn flips_mirror_the_frames() {
    let input = InputShape {
        slices: 3,
        height: 12,
        width: 14,
        channels: 4,
    };
    let clip = Clip::from_frames("random", &frames(70, 24, 28, 5), input).unwrap();
    let n = 12 * 14 * 4;
    let mut plain = vec![0.0f32; n];
    let mut both = vec![0.0f32; n];
    clip.fill_slice(20, 4, Flip::default(), &mut plain);
    let flip = Flip {
        horizontal: true,
        vertical: true,
    };
    clip.fill_slice(20, 4, flip, &mut both);
    for y in 0..12 {
        for x in 0..14 {
            for j in 0..4 {
                let a = plain[(y * 14 + x) * 4 + j];
                let b = both[((11 - y) * 14 + (13 - x)) * 4 + j];
                assert_eq!(a, b);
            }
        }
    }
    // Channel j of the slice completing at frame t is frame t - 3 + j, value / 255.
    assert_eq!(plain[3], clip.frame(20)[0] as f32 / 255.0);
    assert_eq!(plain[0], clip.frame(17)[0] as f32 / 255.0);
}
