//! Training throughput, measured (issue 7): the continuous-state scheme, where every step
//! of a 30-step chunk is a labelled sample, against the study's window scheme, where a
//! sample costs a 30-step window from zero state and only its last step is labelled. Same
//! code, same threads, same run; random frames at the study's size.

use std::time::Instant;

use serde::Serialize;

use super::net::{State, Worker};
use super::Net;
use crate::model::STUDY_INPUT;
use crate::rng::SplitMix;

#[derive(Debug, Clone, Serialize)]
pub struct TrainBench {
    pub threads: usize,
    pub chunk: usize,
    /// Forward and backward, per step, wall time over all threads.
    pub ms_per_step: f64,
    /// Labelled samples per second of the continuous-state scheme.
    pub continuous_samples_per_s: f64,
    /// Labelled samples per second of the window scheme.
    pub window_samples_per_s: f64,
    /// continuous / window.
    pub speedup: f64,
}

/// Runs each scheme for about `seconds` on `threads` threads (one chain each).
pub fn measure(threads: usize, seconds: f64) -> TrainBench {
    let net = Net::fresh("bench", STUDY_INPUT, 16, 1);
    let chunk = STUDY_INPUT.slices;
    let norm = net.norm::<f32>();
    let mut rng = SplitMix(3);
    let slice: Vec<f32> = (0..net.shape.slice_len())
        .map(|_| {
            if rng.next_u64().is_multiple_of(8) {
                rng.uniform(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect();
    let n = net.shape.slice_len() - 2 * net.shape.channels;
    let run = |continuous: bool| -> (f64, usize, usize) {
        let start = Instant::now();
        let (steps, samples) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    let (net, norm, slice) = (&net, &norm, &slice);
                    s.spawn(move || {
                        let mut worker = Worker::<f32>::new(net.shape, chunk);
                        let mut state = State::zero(&net.shape);
                        let (mut steps, mut samples) = (0, 0);
                        while start.elapsed().as_secs_f64() < seconds || steps == 0 {
                            if !continuous {
                                state = State::zero(&net.shape);
                            }
                            worker.clear();
                            worker.forward(&net.params, norm, &mut state, chunk, |_, buf| {
                                buf.copy_from_slice(&slice[..n])
                            });
                            let mut d = vec![0.0f32; chunk];
                            if continuous {
                                d.iter_mut().for_each(|v| *v = 1e-3);
                            } else {
                                d[chunk - 1] = 1e-3;
                            }
                            worker.backward(&net.params, norm, &d);
                            steps += chunk;
                            samples += if continuous { chunk } else { 1 };
                        }
                        (steps, samples)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread"))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        });
        (start.elapsed().as_secs_f64(), steps, samples)
    };
    let (tc, steps_c, samples_c) = run(true);
    let (tw, _, samples_w) = run(false);
    let continuous = samples_c as f64 / tc;
    let window = samples_w as f64 / tw;
    TrainBench {
        threads,
        chunk,
        ms_per_step: tc * 1e3 / steps_c as f64,
        continuous_samples_per_s: continuous,
        window_samples_per_s: window,
        speedup: continuous / window,
    }
}
