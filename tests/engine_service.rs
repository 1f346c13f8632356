//! Many cameras, one engine: two and five simulated cameras sharing one engine service
//! (their steps batched) give, camera for camera, the same `prediction` lines (within
//! 1e-6) and the same alerts as each camera run alone. The simulator runs `--fast`, so no
//! frame is lost and every camera's frames are the same in both runs.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use common::events::parse_all;
use serde_json::Value;

/// Starts `run` over `cameras` (sim seeds) for `seconds`, as fast as the engine goes.
fn start(seeds: &[u64], seconds: u32) -> Child {
    let mut args = vec!["run".to_owned()];
    for s in seeds {
        args.extend(["--source".to_owned(), format!("sim:{s}")]);
    }
    args.extend(
        ["--fast", "--emit", "all", "--device", "cpu", "--duration"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(seconds.to_string());
    Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(&args)
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

/// The frames both runs scored of one camera agree: model, baseline, score within 1e-6,
/// and the alerts up to the last of them are the same. Returns how many frames had the
/// model's score, and how many alerts.
fn assert_same(name: &str, shared: &Camera, alone: &Camera) -> (usize, usize) {
    let last = *shared
        .predictions
        .keys()
        .max()
        .unwrap()
        .min(alone.predictions.keys().max().unwrap());
    let mut compared = 0;
    for (frame, a) in shared.predictions.range(..=last) {
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
    let upto = |c: &Camera| -> Vec<(u64, f64)> {
        c.alerts.iter().copied().filter(|a| a.0 <= last).collect()
    };
    assert_eq!(upto(shared), upto(alone), "{name}: the alerts");
    (compared, upto(shared).len())
}

#[test]
fn cameras_sharing_one_engine_give_what_each_gives_alone() {
    let seeds = [1, 2, 3, 4, 5];
    let five = finish(start(&seeds, 8));
    let two = finish(start(&seeds[..2], 5));
    // Each camera alone, the five side by side (separate processes, separate engines).
    let alone: Vec<Child> = seeds.iter().map(|&s| start(&[s], 10)).collect();
    let alone: BTreeMap<String, Camera> = alone.into_iter().flat_map(finish).collect();
    let mut alerts = 0;
    for (run, cameras) in [("five cameras", &five), ("two cameras", &two)] {
        for (name, shared) in cameras.iter() {
            let (compared, a) = assert_same(&format!("{run}, {name}"), shared, &alone[name]);
            assert!(
                compared >= 60,
                "{run}, {name}: only {compared} frames with the model's score compared"
            );
            eprintln!("{run}, {name}: {compared} frames with the model's score, {a} alerts");
            alerts += a;
        }
    }
    assert!(alerts > 0, "no alert to compare");
    assert_eq!(five.len(), 5);
    assert_eq!(two.len(), 2);
}
