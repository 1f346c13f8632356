//! `run` on recorded files: real speed from the pipeline clock, `--fast`, every frame
//! processed, and any frame rate or size normalised to 30 fps GRAY8 320x240.

mod common;

use std::time::Instant;

use common::events::{final_stats, of_type, parse_all};
use common::video::h264_mkv;
use common::*;

fn run_file(path: &std::path::Path, extra: &[&str]) -> (Vec<serde_json::Value>, f64) {
    let mut args = vec!["run", "--model", "none", "--source", s(path)];
    args.extend_from_slice(extra);
    let t0 = Instant::now();
    let out = burstwatch(&args);
    let wall = t0.elapsed().as_secs_f64();
    let stdout = assert_ok(&out);
    (parse_all(&stdout), wall)
}

#[test]
fn a_file_replays_at_real_speed_and_fast_with_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tank.mkv");
    let seconds = 20.0;
    h264_mkv(&file, 600, 30, 640, 480, "I420");

    let (events, wall) = run_file(&file, &[]);
    let stats = final_stats(&events, s(&file));
    assert_eq!(stats["frames"], 600, "every frame processed: {stats}");
    assert_eq!(stats["dropped"], 0);
    assert!(
        (wall - seconds).abs() <= 0.05 * seconds,
        "real speed: {wall:.2} s for a {seconds} s file"
    );

    let (events, fast_wall) = run_file(&file, &["--fast"]);
    let stats = final_stats(&events, s(&file));
    assert_eq!(
        stats["frames"], 600,
        "every frame processed with --fast: {stats}"
    );
    assert!(fast_wall < seconds / 3.0, "--fast took {fast_wall:.2} s");
    assert!(of_type(&events, "gap").is_empty());
}

/// Frames and stream times of a `--fast --emit all` run.
fn predictions(path: &std::path::Path) -> Vec<(u64, f64)> {
    let (events, _) = run_file(path, &["--fast", "--emit", "all"]);
    of_type(&events, "prediction")
        .iter()
        .map(|p| {
            (
                p["frame"].as_u64().unwrap(),
                p["stream_time"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn any_rate_and_size_comes_out_at_30_fps() {
    let dir = tempfile::tempdir().unwrap();
    // 4 seconds each: 25 fps, 60 fps, and 1280x720 colour.
    let cases = [
        ("25fps.mkv", 100, 25, 320, 240, "I420"),
        ("60fps.mkv", 240, 60, 640, 480, "I420"),
        ("720p.mkv", 120, 30, 1280, 720, "RGB"),
    ];
    for (name, frames, fps, w, h, format) in cases {
        let file = dir.path().join(name);
        h264_mkv(&file, frames, fps, w, h, format);
        let p = predictions(&file);
        assert_eq!(p.len(), 120, "{name}: 4 s at 30 fps");
        for (i, (frame, t)) in p.iter().enumerate() {
            assert_eq!(*frame, i as u64, "{name}: frames in order");
            assert!(
                (t - i as f64 / 30.0).abs() < 1e-3,
                "{name}: frame {i} at {t}"
            );
        }
    }
}
