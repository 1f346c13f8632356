//! The service unit and the example config of `packaging/`: systemd's own checker accepts
//! the unit, it restarts on failures but not on a bad config (exit 2), reloads by SIGHUP,
//! and the example config is one `config check` accepts, its commented outputs included.

mod common;

use std::path::Path;
use std::process::Command;

fn packaging(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn systemd_analyze_verifies_the_service_unit() {
    let unit = packaging("burstwatch.service");
    for line in [
        "ExecStart=/usr/local/bin/burstwatch run --config /etc/burstwatch/lab.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "DynamicUser=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit has {line}");
    }
    // Checked as installed, but with the binary this build made (systemd-analyze looks
    // for the executable).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("burstwatch.service");
    std::fs::write(
        &file,
        unit.replace(
            "/usr/local/bin/burstwatch",
            env!("CARGO_BIN_EXE_burstwatch"),
        ),
    )
    .unwrap();
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("systemd-analyze is installed (the setup script installs systemd)");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("burstwatch.service"),
        "no warning about the unit: {stderr}"
    );
}

#[test]
fn the_example_config_checks_with_and_without_its_outputs() {
    let example = packaging("lab.example.toml");
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("lab.toml");
    std::fs::write(&plain, &example).unwrap();
    let out = common::burstwatch(&["config", "check", common::s(&plain)]);
    let v: serde_json::Value = serde_json::from_str(&common::assert_ok(&out)).unwrap();
    assert_eq!(v["cameras"][0]["name"], "tank-a");
    assert!(v["outputs"]["mqtt"].is_null());
    assert!(v["http"].is_null());
    assert!(v["engine"]["batch_wait_ms"].is_null());

    // Every commented output table and its keys, switched on ([http] last).
    let mut on = String::new();
    let mut in_output = false;
    for line in example.lines() {
        if line.starts_with("# [output") || line.starts_with("# [[output") {
            in_output = true;
        }
        if in_output && line.starts_with("# ") && !line.starts_with("# A ") {
            on.push_str(&line[2..]);
        } else {
            on.push_str(line);
        }
        on.push('\n');
    }
    let full = dir.path().join("full.toml");
    std::fs::write(&full, &on).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(["config", "check", common::s(&full)])
        .env("BURSTWATCH_LOG", "warn")
        .env("BW_MQTT_PASSWORD", "example")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&common::assert_ok(&out)).unwrap();
    let mqtt = &v["outputs"]["mqtt"];
    assert_eq!(mqtt["url"], "mqtt://burstwatch@broker.lab:1883/lab/rack1");
    assert_eq!(mqtt["password"], "***");
    assert_eq!(mqtt["password_from"], "env BW_MQTT_PASSWORD");
    assert_eq!(mqtt["spool_dir"], "/var/lib/burstwatch/mqtt");
    assert_eq!(v["outputs"]["webhooks"][0]["events"][0], "alert");
    let clips = &v["cameras"][0]["clips"];
    assert_eq!(clips["dir"], "/var/lib/burstwatch/clips/tank-a", "{clips}");
    assert_eq!(clips["max_mb"], 2000);
    assert_eq!(v["http"]["listen"], "127.0.0.1:8080");
    assert!(v["http"]["token"].is_null());
    assert_eq!(v["engine"]["batch_wait_ms"], 1.0);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("example"));
}
