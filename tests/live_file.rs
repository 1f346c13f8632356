//! `run` on recorded files: real speed from the pipeline clock, `--fast`, every frame
//! processed, and any frame rate or size normalised to 30 fps GRAY8 320x240; odd streams
//! made by ffmpeg (other codecs, audio, interlacing, 10 bits, rotation, variable rate, a
//! size change mid-stream) and what cannot be watched, each said in one line.

mod common;

use std::time::Instant;

use common::events::{final_stats, of_type, parse_all};
use common::video::{ffmpeg, ffmpeg_card, h264_mkv};
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

/// Every frame of a file as the live pipeline decodes it.
fn frames_of(path: &std::path::Path) -> Vec<Vec<u8>> {
    let spec = burstwatch::capture::SourceSpec::parse(s(path)).unwrap();
    let mut frames = Vec::new();
    burstwatch::capture::read::for_each_frame(&spec, &Default::default(), |f| {
        frames.push(f.to_vec())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    frames
}

#[test]
fn odd_streams_from_ffmpeg_come_out_as_30_fps_gray_frames() {
    let dir = tempfile::tempdir().unwrap();
    let x264 = "-c:v libx264 -preset ultrafast";
    // (file, frame rate of the card, seconds, ffmpeg's arguments after the card)
    let cases = [
        (
            "h265.mkv",
            30,
            3,
            "-c:v libx265 -preset ultrafast -x265-params log-level=error".to_string(),
        ),
        ("mjpeg.avi", 30, 3, "-c:v mjpeg".into()),
        (
            "with-audio.mp4",
            30,
            3,
            format!("-f lavfi -i sine=frequency=440:duration=3 -c:a aac -shortest {x264}"),
        ),
        // 60 fields a second woven into 30 interlaced frames, coded as fields.
        (
            "interlaced.mkv",
            60,
            3,
            format!("-vf interlace -flags +ilme+ildct {x264}"),
        ),
        ("10-bit.mkv", 30, 3, format!("-pix_fmt yuv420p10le {x264}")),
        // Frames at irregular times (two of every seven, every third, and the last one, so
        // that the file lasts 3 s): variable rate.
        (
            "vfr.mkv",
            30,
            3,
            format!("-vf select=not(mod(n\\,3))+lt(mod(n\\,7)\\,2)+eq(n\\,89) -vsync vfr {x264}"),
        ),
        // One keyframe in 10 s: everything after the first frame is predicted.
        (
            "keyframe-10s.mkv",
            30,
            4,
            format!("-g 300 -keyint_min 300 -sc_threshold 0 {x264}"),
        ),
    ];
    for (name, rate, seconds, args) in &cases {
        let path = dir.path().join(name);
        let args: Vec<&str> = args.split(' ').collect();
        ffmpeg_card("640x480", *rate, *seconds, &args, &path);
        let frames = frames_of(&path);
        assert_eq!(
            frames.len() as u32,
            seconds * 30,
            "{name}: frames at 30 fps"
        );
        assert!(
            frames.iter().all(|f| f.len() == 320 * 240),
            "{name}: 320x240 GRAY8"
        );
        // A moving test card: frames differ, and are not blank.
        let mean = |f: &[u8]| f.iter().map(|&p| p as f64).sum::<f64>() / f.len() as f64;
        assert!(
            frames.iter().all(|f| (20.0..235.0).contains(&mean(f))),
            "{name}: a picture"
        );
        assert_ne!(
            frames[0],
            frames[frames.len() - 1],
            "{name}: a moving picture"
        );
    }
}

#[test]
fn a_rotation_tag_turns_the_picture_upright() {
    let dir = tempfile::tempdir().unwrap();
    // The top half white, the bottom half black; the tag says "shown turned by 90 degrees".
    let plain = dir.path().join("plain.mp4");
    let tagged = dir.path().join("tagged.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=white:size=640x240:rate=30:duration=1",
        "-f",
        "lavfi",
        "-i",
        "color=black:size=640x240:rate=30:duration=1",
        "-filter_complex",
        "[0][1]vstack",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&plain),
    ]);
    ffmpeg(&[
        "-i",
        s(&plain),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        s(&tagged),
    ]);
    // The mean of the top half and of the left half.
    let halves = |f: &[u8]| {
        let mean = |v: Vec<u8>| v.iter().map(|&p| p as f64).sum::<f64>() / v.len() as f64;
        let top = mean(f[..320 * 120].to_vec());
        let left = mean(f.chunks(320).flat_map(|row| row[..160].to_vec()).collect());
        (top, left)
    };
    let (top, left) = halves(&frames_of(&plain)[15]);
    assert!(
        top > 200.0 && (100.0..160.0).contains(&left),
        "untagged: white on top ({top}, {left})"
    );
    let rotated = frames_of(&tagged);
    assert_eq!(rotated.len(), 30);
    // Shown turned by 90 degrees counter-clockwise: the white half on the left.
    let (top, left) = halves(&rotated[15]);
    assert!(
        left > 200.0 && (100.0..160.0).contains(&top),
        "tagged: white on the left ({top}, {left})"
    );
}

#[test]
fn a_size_change_mid_stream_goes_on_after_one_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, both) = (
        dir.path().join("a.ts"),
        dir.path().join("b.ts"),
        dir.path().join("both.ts"),
    );
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast"];
    ffmpeg_card("640x480", 30, 5, &x264, &a);
    ffmpeg_card("800x448", 30, 6, &x264, &b);
    // One transport stream whose pictures change size after 5 s (a camera reconfigured).
    ffmpeg(&[
        "-i",
        &format!("concat:{}|{}", s(&a), s(&b)),
        "-c",
        "copy",
        s(&both),
    ]);
    let (events, _) = run_file(&both, &["--fast", "--emit", "all"]);
    let preds = of_type(&events, "prediction");
    let frames: Vec<u64> = preds.iter().map(|e| e["frame"].as_u64().unwrap()).collect();
    assert_eq!(
        frames,
        (0..330).collect::<Vec<_>>(),
        "every frame, numbered on"
    );
    let gaps = of_type(&events, "gap");
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (&gaps[0]["reason"], &gaps[0]["missing"]),
        (&"resized".into(), &0.into())
    );
    let at = gaps[0]["frame"].as_u64().unwrap();
    assert!(
        (148..=151).contains(&at),
        "the gap where the size changed: {at}"
    );
    // Scored before it, then the windows warm up again for 119 frames, then scored again.
    let scored = |f: u64| !preds[f as usize]["p_baseline"].is_null();
    assert!(scored(at - 1) && !scored(at) && !scored(at + 118) && scored(at + 119));
}

#[test]
fn what_cannot_be_watched_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let snow = dir.path().join("snow.mkv");
    let audio = dir.path().join("audio-only.m4a");
    ffmpeg_card("320x240", 30, 1, &["-c:v", "snow"], &snow);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-c:a",
        "aac",
        s(&audio),
    ]);
    let run =
        |p: &std::path::Path| burstwatch(&["run", "--model", "none", "--fast", "--source", s(p)]);
    assert_one_line_error(
        &run(&snow),
        &["snow.mkv", "no decoder for", "V_SNOW", "unsupported codec"],
    );
    assert_one_line_error(&run(&audio), &["audio-only.m4a", "no video stream"]);
}
