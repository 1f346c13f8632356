//! A lab's tanks from one config file: four cameras of four kinds run in one process and
//! each one's events equal a single-camera run of it (and two or five simulated cameras
//! sharing one engine service equal theirs); `config check` shows what will run
//! with credentials masked; every kind of mistake in a config file is one line naming the
//! file, line and column, exit 2, and nothing starts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use burstwatch::alert::{alerts_in_series, AlertRule};
use common::events::{of_camera, of_type, parse_all};
use common::rtsp::{self, free_port, KillOnDrop, Serve};
use common::*;
use serde_json::Value;

/// The two tests that compare runs with their single-camera runs take the cores one at a
/// time: side by side, each starved the other's real-speed cameras into ring overflows.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Not a test: the RTSP server process the tests start (see `common::rtsp`).
#[test]
#[ignore = "helper process for the RTSP tests"]
fn rtsp_server_process() {
    rtsp::serve_from_env();
}

/// Runs burstwatch with extra environment variables, stdout and stderr captured.
fn burstwatch_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_burstwatch"));
    c.args(args).env("BURSTWATCH_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One camera's frames as a run scored them: frame -> (score, p_model, p_baseline, y~).
type Scores = BTreeMap<u64, [Option<f64>; 4]>;

fn scores(events: &[&Value]) -> Scores {
    of_type_refs(events, "prediction")
        .iter()
        .map(|p| {
            let f = |k: &str| p[k].as_f64();
            (
                p["frame"].as_u64().unwrap(),
                [f("score"), f("p_model"), f("p_baseline"), f("y_tilde")],
            )
        })
        .collect()
}

fn of_type_refs<'a>(events: &[&'a Value], ty: &str) -> Vec<&'a Value> {
    events.iter().copied().filter(|e| e["type"] == ty).collect()
}

/// Alert frames and outcome (frame, burst) pairs up to frame `last` (inclusive).
fn alerts_and_outcomes(events: &[&Value], last: u64) -> (Vec<u64>, Vec<(u64, bool)>) {
    let alerts = of_type_refs(events, "alert")
        .iter()
        .map(|a| a["frame"].as_u64().unwrap())
        .filter(|&f| f <= last)
        .collect();
    let outcomes = of_type_refs(events, "outcome")
        .iter()
        .map(|o| (o["frame"].as_u64().unwrap(), o["burst"].as_bool().unwrap()))
        .filter(|&(f, _)| f + 46 <= last)
        .collect();
    (alerts, outcomes)
}

/// The frames both runs scored, frame for frame equal: y~ and the baseline exactly, the
/// model within 1e-6 (a step prepared while waiting for its frame adds the same terms in
/// another order), and the same alerts and outcomes over those frames.
fn assert_same_camera(name: &str, lab: &[&Value], single: &[&Value], frames: std::ops::Range<u64>) {
    let (a, b) = (scores(lab), scores(single));
    let mut compared = 0;
    for f in frames.clone() {
        let (Some(x), Some(y)) = (a.get(&f), b.get(&f)) else {
            panic!(
                "{name}: frame {f} missing from a run (lab {}, single {})",
                a.contains_key(&f),
                b.contains_key(&f)
            );
        };
        for (k, what) in ["score", "p_model", "p_baseline", "y_tilde"]
            .iter()
            .enumerate()
        {
            match (x[k], y[k]) {
                (Some(p), Some(q)) => {
                    let tol = if *what == "p_baseline" || *what == "y_tilde" {
                        0.0
                    } else {
                        1e-6
                    };
                    assert!((p - q).abs() <= tol, "{name}: frame {f} {what}: {p} vs {q}");
                }
                (None, None) => {}
                other => panic!("{name}: frame {f} {what}: {other:?}"),
            }
        }
        compared += 1;
    }
    assert!(compared >= 150, "{name}: only {compared} frames compared");
    let last = frames.end - 1;
    assert_eq!(
        alerts_and_outcomes(lab, last),
        alerts_and_outcomes(single, last),
        "{name}: alerts and outcomes"
    );
    // No frame lost in the compared frames (a camera's reconnect after them is fine).
    for e in lab.iter().chain(single) {
        let lost = e["type"] == "gap" && e["frame"].as_u64().unwrap() <= last;
        assert!(!lost, "{name}: no frame lost: {e}");
    }
}

fn wait(child: std::process::Child) -> (Vec<Value>, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "burstwatch failed: {stderr}");
    (parse_all(&String::from_utf8_lossy(&out.stdout)), stderr)
}

#[test]
fn four_cameras_from_one_config_equal_their_single_runs() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // A recording (8 s of simulated tank) for the file camera, another (6 s) served by
    // the RTSP camera behind a password.
    record_sim(&dir.path().join("tank.mkv"), 8, 5);
    let served = dir.path().join("served.mkv");
    record_sim(&served, 6, 9);
    let port = free_port();
    let _server = KillOnDrop(rtsp::start_server(
        port,
        &served,
        &Serve {
            auth: Some(("watcher".into(), "s3cret-pw".into())),
            ..Serve::default()
        },
    ));
    let rtsp_url = format!("rtsp://watcher@127.0.0.1:{port}/tank");
    let config = dir.path().join("lab.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Four tanks, four kinds of camera.
[defaults]
emit = "all"
device = "cpu"

[[camera]]
name = "sim-a"
source = "sim:3"
threshold = 0.5

[[camera]]
name = "sim-b"
source = "sim:4"
score = "model"
threshold = 0.4

[[camera]]
name = "file"
source = "tank.mkv"
crop = [20, 10, 280, 220]
model = "none"

[[camera]]
name = "rtsp"
source = "{rtsp_url}"
password_env = "TANK_PASSWORD"
"#
        ),
    )
    .unwrap();
    let seconds = "12";
    let lab = burstwatch_env(
        &["run", "--config", s(&config), "--duration", seconds],
        &[("TANK_PASSWORD", "s3cret-pw")],
    );
    let (lab, lab_err) = wait(lab);
    // The same cameras one at a time, all at once (each its own process).
    let file = dir.path().join("tank.mkv");
    // (Test paths have no spaces: the arguments are split at spaces.)
    let single = |args: String, env: &[(&str, &str)]| {
        let mut all = vec!["run", "--emit", "all", "--device", "cpu"];
        all.extend(args.split(' '));
        burstwatch_env(&all, env)
    };
    let d = format!("--duration {seconds}");
    let singles = [
        single(format!("--source sim:3 --threshold 0.5 {d}"), &[]),
        single(
            format!("--source sim:4 --score model --threshold 0.4 {d}"),
            &[],
        ),
        single(
            format!("--source {} --crop 20,10,280,220 --model none", s(&file)),
            &[],
        ),
        single(
            format!("--source {rtsp_url} {d}"),
            &[("BURSTWATCH_RTSP_PASSWORD", "s3cret-pw")],
        ),
    ];
    let singles: Vec<(Vec<Value>, String)> = singles.into_iter().map(wait).collect();
    // The start line names every camera with what it runs.
    assert_eq!(lab[0]["type"], "start");
    let cams = lab[0]["cameras"].as_array().unwrap();
    let names: Vec<&str> = cams.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sim-a", "sim-b", "file", "rtsp"]);
    assert_eq!(cams[0]["threshold"], 0.5);
    assert_eq!(cams[0]["threshold_from"], "config");
    assert_eq!(cams[1]["score"], "model");
    assert_eq!(cams[2]["model"], Value::Null);
    assert_eq!(cams[2]["score"], "baseline");
    assert_eq!(cams[3]["source"], format!("rtsp://127.0.0.1:{port}/tank"));
    assert_eq!(cams[3]["device"], "cpu");
    let sha = &cams[0]["model"]["sha256"];
    assert!(sha.as_str().is_some_and(|s| s.len() == 64));
    assert_eq!(&cams[3]["model"]["sha256"], sha, "one model, one digest");

    let last_common = |a: &[&Value], b: &[&Value]| {
        let last = |e: &[&Value]| scores(e).keys().last().copied().unwrap();
        last(a).min(last(b))
    };
    for (k, name) in ["sim-a", "sim-b", "file"].iter().enumerate() {
        let single = &singles[k].0;
        let single_name = single[0]["cameras"][0]["name"].as_str().unwrap().to_owned();
        let mine = of_camera(&lab, name);
        let theirs = of_camera(single, &single_name);
        let end = last_common(&mine, &theirs) + 1;
        assert_same_camera(name, &mine, &theirs, 0..end);
    }
    // The file camera saw the whole file in both runs.
    assert_eq!(scores(&of_camera(&lab, "file")).len(), 240);
    // The RTSP camera: its first session, the whole served file (180 frames).
    let rtsp_single = &singles[3].0;
    let single_name = rtsp_single[0]["cameras"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_same_camera(
        "rtsp",
        &of_camera(&lab, "rtsp"),
        &of_camera(rtsp_single, &single_name),
        0..180,
    );
    // The password is in no event and no log.
    let mut all = lab_err.clone();
    for (events, err) in &singles {
        all += err;
        all += &events.iter().map(Value::to_string).collect::<String>();
    }
    all += &lab.iter().map(Value::to_string).collect::<String>();
    assert!(!all.contains("s3cret-pw"), "the password leaked");
    // Every alert's id is camera-frame, and its outcome names it.
    for a in of_type(&lab, "alert") {
        assert_eq!(
            a["id"],
            format!("{}-{}", a["source"].as_str().unwrap(), a["frame"])
        );
    }
    for o in of_type(&lab, "outcome") {
        assert_eq!(
            o["alert_id"],
            format!("{}-{}", o["source"].as_str().unwrap(), o["frame"])
        );
    }
    // Alerts follow the scores by the alert rule, camera by camera.
    for (name, threshold) in [("sim-a", 0.5), ("sim-b", 0.4)] {
        let sc = scores(&of_camera(&lab, name));
        let last = *sc.keys().last().unwrap();
        let series: Vec<Option<f64>> = (0..=last).map(|f| sc.get(&f).and_then(|v| v[0])).collect();
        let (alerts, _) = alerts_and_outcomes(&of_camera(&lab, name), last);
        assert_eq!(
            alerts,
            alerts_in_series(&series, AlertRule::new(threshold)),
            "{name}"
        );
    }
}

#[test]
fn config_check_prints_the_resolved_cameras_with_credentials_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.pass"), "file-pw\n").unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(
        &config,
        "[defaults]\nthreshold = 0.55\n\n\
         [[camera]]\nname = \"tank-a\"\nsource = \"rtsp://lab@cam-a.lab/stream1\"\npassword_env = \"TANK_A_PASSWORD\"\n\
         crop = [240, 60, 800, 600]\npreprocess = \"bgsub\"\n\n\
         [[camera]]\nname = \"tank-b\"\nsource = \"rtsp://cam-b.lab/s\"\nusername = \"lab\"\npassword_file = \"b.pass\"\n\
         mode = \"exact\"\nmodel = \"none\"\n",
    )
    .unwrap();
    let child = burstwatch_env(
        &["config", "check", s(&config)],
        &[("TANK_A_PASSWORD", "env-pw")],
    );
    let out = child.wait_with_output().unwrap();
    let stdout = assert_ok(&out);
    assert!(
        !stdout.contains("env-pw") && !stdout.contains("file-pw"),
        "{stdout}"
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let cams = v["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 2);
    let a = &cams[0];
    assert_eq!(a["name"], "tank-a");
    assert_eq!(a["source"], "rtsp://cam-a.lab/stream1");
    assert_eq!(a["username"], "lab");
    assert_eq!(a["password"], "***");
    assert_eq!(a["password_from"], "env TANK_A_PASSWORD");
    assert_eq!(a["crop"], serde_json::json!([240, 60, 800, 600]));
    assert_eq!(a["preprocess"], "bgsub");
    assert_eq!(a["threshold"], 0.55);
    assert_eq!(a["model"], "default");
    assert_eq!(a["mode"], "continuous");
    let b = &cams[1];
    assert_eq!(b["password"], "***");
    assert!(b["password_from"].as_str().unwrap().ends_with("b.pass"));
    assert_eq!(b["mode"], "exact");
    assert_eq!(b["model"], "none");
}

/// `run --config` and `config check` on a bad config: both exit 2 with one line naming
/// the file, line and column, and nothing runs.
fn assert_placed(dir: &Path, name: &str, text: &str, at: (usize, usize), what: &str) {
    let config = dir.join(name);
    std::fs::write(&config, text).unwrap();
    let place = format!("{}:{}:{}", config.display(), at.0, at.1);
    for args in [
        vec!["run", "--config", s(&config)],
        vec!["config", "check", s(&config)],
    ] {
        let out: Output = burstwatch_env(&args, &[("SET_BUT_EMPTY", "")])
            .wait_with_output()
            .unwrap();
        let line = assert_one_line_error(&out, &[&place, what]);
        assert!(out.stdout.is_empty(), "{name}: nothing started: {line}");
    }
}

#[test]
fn every_kind_of_config_mistake_is_one_placed_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("locked.pass"), "pw").unwrap();
    let locked = d.join("locked.pass");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // (Root reads any file: then the unreadable password file is a missing one instead.)
    let unreadable = if std::fs::read(&locked).is_ok() {
        "missing.pass"
    } else {
        "locked.pass"
    };
    let cam = "[[camera]]\nname = \"a\"\nsource = \"sim:1\"\n";
    let cases: Vec<(&str, String, (usize, usize), &str)> = vec![
        ("unknown-key.toml", format!("{cam}thresold = 0.5\n"), (4, 1), "unknown field `thresold`"),
        ("unknown-default.toml", format!("[defaults]\nmdoel = \"none\"\n{cam}"), (2, 1), "unknown field `mdoel`"),
        ("unknown-table.toml", format!("[outputs]\n{cam}"), (1, 2), "unknown field `outputs`"),
        ("no-name.toml", "[[camera]]\nsource = \"sim:1\"\n".into(), (1, 1), "without a name"),
        ("same-name.toml", format!("{cam}{cam}"), (5, 8), "used twice"),
        ("bad-name.toml", "[[camera]]\nname = \"tank/a\"\nsource = \"sim:1\"\n".into(), (2, 8), "letters, digits"),
        ("no-source.toml", "[[camera]]\nname = \"a\"\n".into(), (1, 1), "has no source"),
        ("bad-mode.toml", format!("{cam}mode = \"fast\"\n"), (4, 8), "expected continuous or exact"),
        ("bad-threshold.toml", format!("{cam}threshold = 2\n"), (4, 13), "between 0 and 1"),
        ("bad-transport.toml", format!("{cam}rtsp_transport = \"quic\"\n"), (4, 18), "expected auto, tcp or udp"),
        ("bad-type.toml", format!("{cam}threshold = \"high\"\n"), (4, 13), "expected f64"),
        ("bad-crop.toml", format!("{cam}crop = [0, 0, 100]\n"), (4, 8), "length 4"),
        ("unset-env.toml", "[[camera]]\nname = \"a\"\nsource = \"rtsp://lab@h/x\"\npassword_env = \"NO_SUCH_VAR_BW\"\n".into(), (4, 16), "NO_SUCH_VAR_BW is not set"),
        ("empty-env.toml", "[[camera]]\nname = \"a\"\nsource = \"rtsp://lab@h/x\"\npassword_env = \"SET_BUT_EMPTY\"\n".into(), (4, 16), "is empty"),
        ("unreadable-pass.toml", format!("[[camera]]\nname = \"a\"\nsource = \"rtsp://lab@h/x\"\npassword_file = \"{unreadable}\"\n"), (4, 17), unreadable),
        ("missing-file.toml", "[[camera]]\nname = \"a\"\nsource = \"nowhere.mkv\"\n".into(), (3, 10), "nowhere.mkv"),
        ("missing-model.toml", format!("{cam}model = \"nowhere.safetensors\"\n"), (4, 9), "nowhere.safetensors"),
        ("syntax.toml", "[[camera]\nname = \"a\"\n".into(), (1, 10), "expected"),
        ("empty.toml", "# nothing yet\n".into(), (1, 1), "no [[camera]]"),
    ];
    assert!(cases.len() >= 12);
    for (name, text, at, what) in &cases {
        assert_placed(d, name, text, *at, what);
    }
    // An unreadable config file itself, and --config with --source.
    let out = burstwatch(&["run", "--config", "/nonexistent/lab.toml"]);
    assert_one_line_error(&out, &["/nonexistent/lab.toml", "cannot read"]);
    let ok = d.join("ok.toml");
    std::fs::write(&ok, cam).unwrap();
    let out = burstwatch(&["run", "--config", s(&ok), "--source", "sim:2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    assert!(out.stdout.is_empty());
}

/// Many cameras, one engine: two and five simulated cameras sharing one engine service
/// (their steps batched) give, camera for camera, the same `prediction` lines (within
/// 1e-6) and the same alerts as each camera run alone. Each tank is recorded first (10 s of
/// the simulator, a seed each) and read `--fast`, so that no frame is lost and every run
/// scores every frame of every camera to the end, however loaded the machine is (runs of
/// the live simulator for a fixed time compared as few as 29 frames under CI's load).
mod one_engine_for_many_cameras {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    use super::common::events::parse_all;
    use super::common::{record_sim_look, s};
    use serde_json::Value;

    const SECONDS: u32 = 10;
    /// The frames of a recording that have the model's score: every one from the 120th on.
    const MODEL_FRAMES: usize = SECONDS as usize * 30 - 119;

    /// Starts `run` over `tanks` (recordings) as fast as the engine goes, to their end.
    fn start(tanks: &[PathBuf]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_burstwatch"));
        cmd.arg("run");
        for t in tanks {
            cmd.args(["--source", s(t)]);
        }
        cmd.args(["--fast", "--emit", "all", "--device", "cpu"])
            .env("BURSTWATCH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("burstwatch runs")
    }

    /// Per camera: its predictions by frame, and its alerts as (frame, score).
    struct Camera {
        predictions: BTreeMap<u64, Value>,
        alerts: Vec<(u64, f64)>,
    }

    fn finish(child: Child) -> BTreeMap<String, Camera> {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cameras: BTreeMap<String, Camera> = BTreeMap::new();
        for e in parse_all(&String::from_utf8(out.stdout).unwrap()) {
            let Some(source) = e["source"].as_str() else {
                continue;
            };
            let c = cameras.entry(source.to_owned()).or_insert(Camera {
                predictions: BTreeMap::new(),
                alerts: Vec::new(),
            });
            match e["type"].as_str().unwrap() {
                "prediction" => {
                    c.predictions.insert(e["frame"].as_u64().unwrap(), e);
                }
                "alert" => c
                    .alerts
                    .push((e["frame"].as_u64().unwrap(), e["score"].as_f64().unwrap())),
                "gap" => panic!("{source}: a gap in a --fast run: {e}"),
                _ => {}
            }
        }
        cameras
    }

    /// Both runs scored the same frames of one camera, and they agree: model, baseline,
    /// score within 1e-6, and the same alerts. Returns how many frames had the model's
    /// score, and how many alerts.
    fn assert_same(name: &str, shared: &Camera, alone: &Camera) -> (usize, usize) {
        assert!(
            shared.predictions.keys().eq(alone.predictions.keys()),
            "{name}: frames {}..={} shared, {}..={} alone",
            shared.predictions.keys().next().unwrap(),
            shared.predictions.keys().last().unwrap(),
            alone.predictions.keys().next().unwrap(),
            alone.predictions.keys().last().unwrap(),
        );
        let mut compared = 0;
        for (frame, a) in &shared.predictions {
            let b = &alone.predictions[frame];
            for key in ["p_model", "p_baseline", "score", "y_tilde"] {
                match (a[key].as_f64(), b[key].as_f64()) {
                    (Some(x), Some(y)) => assert!(
                        (x - y).abs() <= 1e-6,
                        "{name} frame {frame} {key}: {x} shared, {y} alone"
                    ),
                    (x, y) => assert_eq!(x, y, "{name} frame {frame} {key}"),
                }
            }
            compared += usize::from(a["p_model"].is_number());
        }
        assert_eq!(shared.alerts, alone.alerts, "{name}: the alerts");
        (compared, shared.alerts.len())
    }

    fn record(dir: &Path, seed: u64) -> PathBuf {
        let path = dir.join(format!("tank{seed}.mkv"));
        record_sim_look(&path, SECONDS, seed, "processed");
        path
    }

    #[test]
    fn cameras_sharing_one_engine_give_what_each_gives_alone() {
        let _alone = super::ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let tanks: Vec<PathBuf> = (1..=5).map(|seed| record(dir.path(), seed)).collect();
        let five = finish(start(&tanks));
        let two = finish(start(&tanks[..2]));
        // Each camera alone, the five side by side (separate processes, separate engines).
        let alone: Vec<Child> = tanks
            .iter()
            .map(|t| start(std::slice::from_ref(t)))
            .collect();
        let alone: BTreeMap<String, Camera> = alone.into_iter().flat_map(finish).collect();
        assert_eq!(alone.len(), 5);
        let mut alerts = 0;
        for (run, cameras) in [("five cameras", &five), ("two cameras", &two)] {
            for (name, shared) in cameras.iter() {
                let (compared, a) = assert_same(&format!("{run}, {name}"), shared, &alone[name]);
                assert_eq!(
                    compared, MODEL_FRAMES,
                    "{run}, {name}: frames with the model's score"
                );
                eprintln!("{run}, {name}: {compared} frames with the model's score, {a} alerts");
                alerts += a;
            }
        }
        assert!(alerts > 0, "no alert to compare");
        assert_eq!(five.len(), 5);
        assert_eq!(two.len(), 2);
    }
}
