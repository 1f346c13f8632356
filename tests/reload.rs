//! SIGHUP reloads the config of a running `run --config`: a config with a mistake is
//! refused (one line, nothing changes); one that adds a camera and changes another's
//! threshold starts the new camera, restarts the changed one with its new threshold, and
//! leaves the third untouched: its frames keep their numbering, without a gap.

mod common;

use std::time::Duration;

use common::broker::{write, Burstwatch};
use common::events::{of_camera, of_type, parse_line};
use serde_json::Value;

const CAMERAS: &str = "[[camera]]\nname = \"tank-a\"\nsource = \"sim:13\"\nemit = \"all\"\n\n\
                       [[camera]]\nname = \"tank-b\"\nsource = \"sim:14\"\nthreshold = 0.5\n";

#[test]
fn sighup_adds_restarts_and_keeps_cameras_as_the_new_config_says() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    write(&config, CAMERAS);
    let mut bw = Burstwatch::start(&["run", "--config", config.to_str().unwrap()], &[]);
    let frames_of_a = |bw: &Burstwatch| {
        bw.stdout
            .all()
            .iter()
            .filter(|l| l.contains("\"type\":\"prediction\"") && l.contains("\"tank-a\""))
            .count()
    };
    assert!(bw.stdout.wait_for(Duration::from_secs(30), |l| l
        .contains("\"type\":\"prediction\"")));

    // A mistake: refused, one line with where it is; nothing changes.
    write(
        &config,
        &format!("{CAMERAS}\n[[camera]]\nname = \"tank-c\"\n"),
    );
    bw.signal(libc::SIGHUP);
    assert!(bw
        .stderr
        .wait_for(Duration::from_secs(10), |l| l.contains("reload refused")));
    let refused: Vec<String> = bw
        .stderr
        .all()
        .into_iter()
        .filter(|l| l.contains("reload refused"))
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("lab.toml:11:1") && refused[0].contains("has no source"),
        "{}",
        refused[0]
    );

    let before = frames_of_a(&bw);
    write(
        &config,
        &format!(
            "{}\n[[camera]]\nname = \"tank-c\"\nsource = \"sim:15\"\n",
            CAMERAS.replace("threshold = 0.5", "threshold = 0.6")
        ),
    );
    bw.signal(libc::SIGHUP);
    assert!(bw
        .stderr
        .wait_for(Duration::from_secs(20), |l| l.contains("config reloaded")));
    // A few more seconds of all three.
    while frames_of_a(&bw) < before + 150 {
        std::thread::sleep(Duration::from_millis(100));
    }
    bw.signal(libc::SIGINT);
    assert_eq!(bw.wait(Duration::from_secs(20)), Some(0));

    let events: Vec<Value> = bw.stdout.all().iter().map(|l| parse_line(l)).collect();
    let starts = of_type(&events, "start");
    assert_eq!(starts.len(), 2, "the run's start line and the reload's");
    let names: Vec<&str> = starts[1]["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tank-a", "tank-b", "tank-c"]);
    assert_eq!(starts[1]["cameras"][1]["threshold"], 0.6);

    let stderr = bw.stderr.all().join("\n");
    assert!(
        stderr.contains("1 cameras added, 1 restarted with new settings, 0 removed, 1 unchanged"),
        "{stderr}"
    );

    // tank-b ended, saying why, and came back with its new threshold.
    let b = of_camera(&events, "tank-b");
    let b_status: Vec<&Value> = b
        .iter()
        .copied()
        .filter(|e| e["type"] == "status")
        .collect();
    let states: Vec<&str> = b_status
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["connected", "ended", "connected", "ended"]);
    assert!(b_status[1]["message"]
        .as_str()
        .unwrap()
        .contains("new settings"));
    for alert in b.iter().filter(|e| e["type"] == "alert") {
        assert!([0.5, 0.6].contains(&alert["threshold"].as_f64().unwrap()));
    }

    // tank-c started.
    let c = of_camera(&events, "tank-c");
    assert_eq!(c.iter().filter(|e| e["state"] == "connected").count(), 1);

    // tank-a went on untouched: one session, every frame numbered in turn, no gap.
    let a = of_camera(&events, "tank-a");
    assert_eq!(a.iter().filter(|e| e["type"] == "gap").count(), 0);
    assert_eq!(a.iter().filter(|e| e["state"] == "connected").count(), 1);
    let frames: Vec<u64> = a
        .iter()
        .filter(|e| e["type"] == "prediction")
        .map(|e| e["frame"].as_u64().unwrap())
        .collect();
    assert!(frames.len() > before + 100);
    assert!(
        frames.windows(2).all(|w| w[1] == w[0] + 1),
        "tank-a's frames follow each other"
    );
}
