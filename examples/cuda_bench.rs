//! The CUDA engine's speed in exact mode (DESIGN §2), as scripts/gpu-check.sh reports it:
//!
//! - one stream: latency of `Stream::push_frame` per frame (the batched step of the
//!   phase's 30 windows, the finishing window's head, the copy of p back), median and p99;
//! - 64 streams batched: 64 cameras in lockstep; per frame tick the 64 cameras' slices
//!   advance their 64 x 30 windows in one `step_groups` (one launch per kernel), then the
//!   64 finishing windows' heads in one launch; frames/s = 64 x ticks / seconds.
//!
//! Targets from the issue: <= 0.5 ms per frame for one stream, >= 1920 frames/s for 64
//! streams (64 x 30 fps), on an H200.
//!
//! usage: cargo run --release --example cuda_bench [-- SECONDS_PER_MEASUREMENT]

use std::path::Path;
use std::time::{Duration, Instant};

use burstwatch::engine::cuda::CudaEngine;
use burstwatch::engine::{Engine, Mode, Stream};
use burstwatch::model::{Model, STUDY_ARCHITECTURES};
use burstwatch::rng::SplitMix;

const CAMERAS: usize = 64;

fn load(name: &str) -> (Model, &'static str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../shared/models/{name}.reference-weights.npz"));
    match Model::from_reference_npz(&path) {
        Ok(m) => (m, "study"),
        Err(_) => (
            Model::random_study(name, 1).expect("a study architecture"),
            "random",
        ),
    }
}

/// Per-frame latency of one exact-mode stream, in ms: (median, p99, frames timed).
fn one_stream(model: &Model, seconds: f64) -> anyhow::Result<(f64, f64, usize)> {
    let engine = CudaEngine::new(model.clone(), 0)?;
    let mut stream = Stream::new(Box::new(engine), Mode::Exact)?;
    let i = model.input;
    let mut rng = SplitMix(5);
    let frames: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            (0..i.height * i.width)
                .map(|_| (rng.next_u64() >> 56) as u8)
                .collect()
        })
        .collect();
    // Warm up: fill every phase's 30 windows.
    for t in 0..2 * i.slices * i.channels {
        stream.push_frame(&frames[t % frames.len()])?;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(seconds) || times.len() < 100 {
        let t0 = Instant::now();
        let p = stream.push_frame(&frames[times.len() % frames.len()])?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        assert!(p.is_some_and(f32::is_finite));
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    Ok((at(0.5), at(0.99), times.len()))
}

/// Frames per second of CAMERAS exact-mode streams batched into one engine.
fn batched(model: &Model, seconds: f64) -> anyhow::Result<(f64, usize)> {
    let mut engine = CudaEngine::new(model.clone(), 0)?;
    let i = model.input;
    let (phases, window) = (i.channels, i.slices);
    let first = engine.alloc_states(CAMERAS * phases * window)?.start;
    let slot =
        |cam: usize, phase: usize, k: usize| first + (cam * phases + phase) * window + k % window;
    let mut rng = SplitMix(6);
    let slices: Vec<Vec<f32>> = (0..CAMERAS)
        .map(|_| {
            (0..i.height * i.width * i.channels)
                .map(|_| rng.uniform(0.0, 1.0))
                .collect()
        })
        .collect();
    let mut tick = |t: usize| -> anyhow::Result<()> {
        let (phase, k) = (t % phases, t / phases);
        // As Stream does: the window starting now takes the slot of the one that finished.
        let mut active: Vec<Vec<usize>> = Vec::with_capacity(CAMERAS);
        for cam in 0..CAMERAS {
            engine.reset(slot(cam, phase, k));
            active.push(
                ((k + 1).saturating_sub(window)..=k)
                    .map(|s| slot(cam, phase, s))
                    .collect(),
            );
        }
        let groups: Vec<(&[f32], &[usize])> = slices
            .iter()
            .map(|s| &s[..])
            .zip(active.iter().map(|a| &a[..]))
            .collect();
        engine.step_groups(&groups)?;
        if k + 1 >= window {
            let done: Vec<usize> = (0..CAMERAS).map(|cam| slot(cam, phase, k + 1)).collect();
            engine.head(&done)?;
        }
        Ok(())
    };
    let warm = phases * window;
    for t in 0..warm {
        tick(t)?;
    }
    let start = Instant::now();
    let mut ticks = 0;
    while start.elapsed() < Duration::from_secs_f64(seconds) || ticks < 8 {
        tick(warm + ticks)?;
        ticks += 1;
    }
    // Every tick ends with a head's copy back (a synchronisation), so the time is complete.
    Ok((
        CAMERAS as f64 * ticks as f64 / start.elapsed().as_secs_f64(),
        ticks,
    ))
}

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::args().nth(1).map_or(Ok(3.0), |s| s.parse())?;
    let mut rows = Vec::new();
    let mut device = String::new();
    for (name, _) in STUDY_ARCHITECTURES {
        let (model, weights) = load(name);
        device = CudaEngine::new(model.clone(), 0)?.name();
        eprintln!("measuring {name} ({weights} weights) on {device}");
        let (median, p99, frames) = one_stream(&model, seconds)?;
        let (fps, ticks) = batched(&model, seconds)?;
        rows.push((name, weights, median, p99, frames, fps, ticks));
    }
    println!("CUDA engine, exact mode, on {device}\n");
    println!("| model | weights | one stream: ms per frame, median (p99) | {CAMERAS} streams batched: frames/s |");
    println!("|---|---|---|---|");
    for (name, weights, median, p99, frames, fps, ticks) in &rows {
        println!(
            "| {name} | {weights} | {median:.3} ({p99:.3}) over {frames} frames | {fps:.0} over {ticks} ticks |"
        );
    }
    let (_, _, median, _, _, fps, _) = rows[0];
    println!(
        "\ntargets (upbeat-snowflake-91): <= 0.5 ms per frame: {}; >= 1920 frames/s: {}",
        if median <= 0.5 { "met" } else { "MISSED" },
        if fps >= 1920.0 { "met" } else { "MISSED" }
    );
    Ok(())
}
