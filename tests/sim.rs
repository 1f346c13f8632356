//! The simulated tank (issue 5): deterministic frames, calibration against the real
//! recording, recordings that decode to the frames rendered, the live-source API, and
//! one-line errors.

mod common;

use burstwatch::io::read_frames;
use burstwatch::sim::calibrate::{self, ACCEPTANCE};
use burstwatch::sim::record::{self, Truth};
use burstwatch::sim::{Look, SimConfig, SimulatedTank, RAW_TANK_CROP};
use burstwatch::speed::{speed_proxy, speed_proxy_series};
use common::*;

fn frames_of(config: SimConfig, count: usize) -> Vec<Vec<u8>> {
    let mut sim = SimulatedTank::new(config).unwrap();
    (0..count).map(|_| sim.next_frame().pixels).collect()
}

fn config(seed: u64, look: Look) -> SimConfig {
    SimConfig {
        seed,
        look,
        ..SimConfig::default()
    }
}

#[test]
fn same_seed_same_frames_byte_for_byte() {
    for (look, count) in [(Look::Processed, 600), (Look::Raw, 30)] {
        let a = frames_of(config(7, look), count);
        let b = frames_of(config(7, look), count);
        assert!(a == b, "{look}: seed 7 twice gave different frames");
        let c = frames_of(config(8, look), count);
        let same = a.iter().zip(&c).filter(|(x, y)| x == y).count();
        assert_eq!(same, 0, "{look}: seeds 7 and 8 share {same} frames");
    }
    // The dynamics do not depend on the look: one seed, one set of chases.
    let mut p = SimulatedTank::new(config(7, Look::Processed)).unwrap();
    let mut r = SimulatedTank::new(config(7, Look::Raw)).unwrap();
    let (mut bp, mut br) = (vec![0; p.frame_len()], vec![0; r.frame_len()]);
    for _ in 0..900 {
        p.render_into(&mut bp);
        r.render_into(&mut br);
    }
    assert!(!p.truth().is_empty());
    assert_eq!(p.truth(), r.truth());
}

/// Issue 5's acceptance on ten minutes of processed-look video for each of three seeds:
/// KS <= 0.15 against the real test + validation y~, autocorrelation within 0.1 at lags
/// 1, 5, 15, 30, positive labels 11-18 %, baseline ROC-AUC 0.74-0.88.
#[test]
fn calibration_meets_the_acceptance_on_three_seeds() {
    let dirs = vec![seed("test"), seed("validation")];
    let real = calibrate::read_real(&dirs).unwrap();
    let report = calibrate::calibrate(SimConfig::default(), &[1, 2, 3], 18_000, &real).unwrap();
    // The real figures come from the files, and they are the ones the issue quotes.
    let r = &report.real;
    assert!((r.median - 0.00134).abs() < 0.00002, "{r:?}");
    assert!((r.autocorrelation[0] - 0.888).abs() < 0.005, "{r:?}");
    for s in &report.seeds {
        let f = &s.figures;
        eprintln!(
            "seed {}: median {:.5} ac {:.3?} pos {:.3} auc {:.3?} KS {:.3} chases {}",
            s.seed, f.median, f.autocorrelation, f.positive_rate, f.baseline_auc, s.ks, s.chases
        );
        assert!(s.failures.is_empty(), "seed {}: {:?}", s.seed, s.failures);
        assert!(s.ks <= ACCEPTANCE.ks_max);
        assert!(
            s.chases > 100,
            "a chase every few seconds, got {}",
            s.chases
        );
    }
}

#[test]
fn chases_show_in_ytilde() {
    let sim = calibrate::simulate_ytilde(config(4, Look::Processed), 9000).unwrap();
    let mut in_chase = vec![false; sim.ytilde.len()];
    for c in &sim.chases {
        for t in c.start_frame..=c.end_frame.min(in_chase.len() - 1) {
            in_chase[t] = true;
        }
    }
    let mean = |want: bool| {
        let v: Vec<f64> = sim.ytilde[..sim.ytilde.len() - 1]
            .iter()
            .zip(&in_chase)
            .filter(|(_, &c)| c == want)
            .map(|(y, _)| *y)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (chasing, calm) = (mean(true), mean(false));
    assert!(
        chasing > 1.3 * calm,
        "y~ in chases {chasing} vs outside {calm}"
    );
}

#[test]
fn live_api_renders_into_a_buffer_at_its_size() {
    let mut sim = SimulatedTank::new(config(1, Look::Raw)).unwrap();
    assert_eq!((sim.width(), sim.height(), sim.fps()), (1280, 720, 30));
    assert_eq!(sim.frame_len(), 1280 * 720);
    let mut buf = vec![0; sim.frame_len()];
    sim.render_into(&mut buf);
    let f = sim.next_frame();
    assert_eq!((f.index, sim.next_index()), (1, 2));
    // The tank (bright floor) is inside the documented crop, the room outside is dim.
    let mean = |x0: usize, y0: usize, w: usize, h: usize| {
        let mut s = 0u64;
        for y in y0..y0 + h {
            s += buf[y * 1280 + x0..y * 1280 + x0 + w]
                .iter()
                .map(|&v| v as u64)
                .sum::<u64>();
        }
        s as f64 / (w * h) as f64
    };
    let c = RAW_TANK_CROP;
    let (x, y, w, h) = (
        c.x as usize,
        c.y as usize,
        c.width as usize,
        c.height as usize,
    );
    let tank = mean(x + w / 4, y + h / 4, w / 2, h / 2);
    let room = mean(0, 0, 200, 720);
    assert!(tank > 150.0 && room < 100.0, "tank {tank}, room {room}");
    assert!(SimulatedTank::new(SimConfig {
        fish: 0,
        ..SimConfig::default()
    })
    .is_err());
}

/// Mean relative error of `got` against `want` over the frames where `want` moves.
fn mean_relative_error(got: &[f64], want: &[f64]) -> f64 {
    let pairs: Vec<(f64, f64)> = got
        .iter()
        .zip(want)
        .filter(|(_, &w)| w > 0.0)
        .map(|(&g, &w)| (g, w))
        .collect();
    pairs.iter().map(|(g, w)| (g - w).abs() / w).sum::<f64>() / pairs.len() as f64
}

/// Records with the binary, decodes through GStreamer, and compares with the render.
fn check_recording(ext: &str, look: Look, seconds: &str, max_error: f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("tank.{ext}"));
    assert_ok(&burstwatch(&[
        "sim",
        "--out",
        s(&out),
        "--seconds",
        seconds,
        "--seed",
        "3",
        "--look",
        &look.to_string(),
    ]));
    let count = (seconds.parse::<f64>().unwrap() * 30.0) as usize;
    let decoded = record::decode_gray(&out).unwrap();
    assert_eq!(decoded.count, count, "{ext}: frames decoded");
    assert_eq!(
        (decoded.width, decoded.height),
        (look.width(), look.height())
    );
    let want = calibrate::simulate_ytilde(config(3, look), count)
        .unwrap()
        .ytilde;
    let got = speed_proxy_series(&decoded);
    let error = mean_relative_error(&got[..count - 1], &want[..count - 1]);
    eprintln!("{look} {ext}: y~ mean relative error {:.4}", error);
    assert!(error <= max_error, "{look} {ext}: y~ error {error}");

    let truth: Truth =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("tank.truth.json")).unwrap())
            .unwrap();
    assert_eq!((truth.seed, truth.fps, truth.frames), (3, 30, count));
    assert_eq!(truth.look, look);
    let mut sim = SimulatedTank::new(config(3, look)).unwrap();
    let mut buf = vec![0; sim.frame_len()];
    for _ in 0..count {
        sim.render_into(&mut buf);
    }
    let started: Vec<_> = sim
        .truth()
        .iter()
        .filter(|c| c.start_frame < count)
        .collect();
    assert_eq!(truth.chases.len(), started.len());
    for (t, c) in truth.chases.iter().zip(started) {
        assert_eq!(
            (t.chaser, t.target, t.display_frame, t.start_frame),
            (c.chaser, c.target, c.display_frame, c.start_frame)
        );
        assert!(t.display_frame < t.start_frame, "{t:?}");
        assert_eq!(t.complete, c.end_frame < count);
        assert!(t.end_frame < count);
    }
    error
}

#[test]
fn recorded_mkv_decodes_to_the_rendered_frames() {
    check_recording("mkv", Look::Processed, "10", 0.05);
}

#[test]
fn recorded_mp4_decodes_to_the_rendered_frames() {
    check_recording("mp4", Look::Processed, "10", 0.05);
}

#[test]
fn recorded_raw_look_decodes() {
    check_recording("mkv", Look::Raw, "2", 0.05);
}

#[test]
fn npy_output_holds_the_rendered_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames.npy");
    assert_ok(&burstwatch(&[
        "sim",
        "--out",
        s(&out),
        "--seconds",
        "2",
        "--seed",
        "5",
    ]));
    let frames = read_frames(&out).unwrap();
    assert_eq!((frames.count, frames.height, frames.width), (60, 240, 320));
    let want = frames_of(config(5, Look::Processed), 60);
    for (t, w) in want.iter().enumerate() {
        assert!(frames.frame(t) == w.as_slice(), "frame {t}");
    }
    assert!(dir.path().join("frames.truth.json").exists());
    // `speed --frames` takes the stack.
    let y = dir.path().join("y.npy");
    assert_ok(&burstwatch(&["speed", "--frames", s(&out), "--out", s(&y)]));
    let got = burstwatch::io::npy::read_series(&y).unwrap();
    assert_eq!(got[0], speed_proxy(&want[0], &want[1]));
}

#[test]
fn bad_output_is_a_one_line_error() {
    let out = burstwatch(&[
        "sim",
        "--out",
        "/nonexistent/dir/tank.mkv",
        "--seconds",
        "1",
    ]);
    assert_one_line_error(&out, &["/nonexistent/dir/tank.mkv", "cannot write"]);
    let dir = tempfile::tempdir().unwrap();
    let avi = dir.path().join("tank.avi");
    let out = burstwatch(&["sim", "--out", s(&avi), "--seconds", "1"]);
    assert_one_line_error(&out, &["tank.avi", ".mkv"]);
    let out = burstwatch(&["sim", "--out", s(&dir.path().join("t.mkv")), "--fish", "0"]);
    assert_one_line_error(&out, &["0 fish"]);
    let out = burstwatch(&[
        "sim",
        "--out",
        s(&dir.path().join("t.mkv")),
        "--seconds",
        "0",
    ]);
    assert_one_line_error(&out, &["--seconds"]);
}

#[test]
fn missing_gstreamer_element_is_a_one_line_error() {
    // An empty plugin path and a fresh registry: no encoder, no converter.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args([
            "sim",
            "--out",
            s(&dir.path().join("t.mkv")),
            "--seconds",
            "1",
        ])
        .env("BURSTWATCH_LOG", "warn")
        .env("GST_PLUGIN_SYSTEM_PATH_1_0", dir.path())
        .env("GST_PLUGIN_PATH_1_0", dir.path())
        .env("GST_REGISTRY_1_0", dir.path().join("registry.bin"))
        .output()
        .unwrap();
    assert_one_line_error(&out, &["t.mkv", "GStreamer element", "missing", "install"]);
    assert!(!dir.path().join("t.mkv").exists() && !dir.path().join("t.truth.json").exists());
}

#[test]
fn calibrate_command_prints_real_and_simulated_figures() {
    let out = burstwatch(&[
        "sim",
        "--calibrate",
        "--seeds",
        "1",
        "--seconds",
        "120",
        "--real",
        s(&seed("test")),
        s(&seed("validation")),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Two minutes may miss a bound: that is exit code 1 (a check that ran), never 2.
    match out.status.code() {
        Some(0) => {}
        Some(1) => assert!(String::from_utf8_lossy(&out.stderr).contains("out of tolerance")),
        other => panic!("exit code {other:?}"),
    }
    for row in ["real test", "real validation", "real pooled", "sim seed 1"] {
        assert!(stdout.contains(row), "{row} missing from:\n{stdout}");
    }
    let json = burstwatch(&[
        "sim",
        "--calibrate",
        "--json",
        "--seeds",
        "2",
        "--seconds",
        "120",
        "--real",
        s(&seed("test")),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["seeds"][0]["seed"], 2);
    assert!(v["real"]["median"].as_f64().unwrap() > 0.001);
    let missing = burstwatch(&["sim", "--calibrate", "--real", "/nonexistent/part"]);
    assert_one_line_error(&missing, &["/nonexistent/part/Y_tilde.npy"]);
    let none = burstwatch(&["sim", "--calibrate"]);
    assert_one_line_error(&none, &["--real"]);
}

#[test]
fn bench_reports_frames_per_second() {
    let out = assert_ok(&burstwatch(&["sim", "--bench", "--seconds", "2", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["processed_frames_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["raw_frames_per_s"].as_f64().unwrap() > 0.0);
}
