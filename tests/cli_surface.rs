//! What a new user meets first: the event schema kept in the repository, the help, shell
//! completions and the man page, and logs that never go silent.

mod common;

use std::process::Command;

use common::events::parse_line;
use common::*;

#[test]
fn the_schema_in_docs_is_the_one_the_binary_prints() {
    let printed = assert_ok(&burstwatch(&["schema"]));
    let kept = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/events.schema.json"
    ))
    .unwrap();
    assert!(
        printed == kept,
        "docs/events.schema.json is stale: run `burstwatch schema > docs/events.schema.json`"
    );
}

#[test]
fn the_schema_refuses_what_is_not_an_event() {
    let good = r#"{"type":"gap","time":"2026-12-01T08:00:00.000Z","source":"tank-a","frame":5,"missing":2,"reason":"dropped"}"#;
    parse_line(good);
    for bad in [
        // An unknown field, a missing one, a reason outside the closed set, a bad time.
        good.replace("\"missing\":2", "\"missing\":2,\"extra\":1"),
        good.replace(",\"missing\":2", ""),
        good.replace("dropped", "lost"),
        good.replace("2026-12-01T08:00:00.000Z", "yesterday"),
        good.replace("\"gap\"", "\"gossip\""),
    ] {
        let r = std::panic::catch_unwind(|| parse_line(&bad));
        assert!(r.is_err(), "accepted: {bad}");
    }
}

/// The help of `args`, its line wrapping undone (words joined by single spaces).
fn help(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let text = assert_ok(&burstwatch(&all));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_help_starts_with_run_and_shows_examples_and_the_environment() {
    let top = help(&[]);
    let raw = assert_ok(&burstwatch(&["--help"]));
    let commands: Vec<&str> = raw
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(commands.first(), Some(&"run"), "{top}");
    let run = help(&["run"]);
    for want in [
        "Examples:",
        "--config",
        "BURSTWATCH_RTSP_PASSWORD",
        "[env: BURSTWATCH_LOG=",
        "[possible values: continuous, exact]",
        "Exit codes",
    ] {
        assert!(run.contains(want), "run --help lacks {want:?}:\n{run}");
    }
    let sim = help(&["sim"]);
    assert!(sim.contains("[possible values: processed, raw]"), "{sim}");
    // No internal references and no paths into the study's data in any help.
    for cmd in [
        vec![],
        vec!["run"],
        vec!["eval"],
        vec!["sim"],
        vec!["train"],
        vec!["predict"],
        vec!["bench"],
        vec!["speed"],
        vec!["label"],
        vec!["baseline"],
        vec!["config", "check"],
        vec!["import"],
        vec!["inspect"],
    ] {
        let text = help(&cmd);
        for bad in ["DESIGN", "../shared", "issue "] {
            assert!(
                !text.contains(bad),
                "{cmd:?} --help mentions {bad:?}:\n{text}"
            );
        }
    }
}

#[test]
fn completions_and_the_man_page() {
    let bash = assert_ok(&burstwatch(&["completions", "bash"]));
    assert!(
        bash.contains("burstwatch") && bash.contains("--config"),
        "{bash}"
    );
    let zsh = assert_ok(&burstwatch(&["completions", "zsh"]));
    assert!(zsh.contains("#compdef burstwatch"));
    let man = assert_ok(&burstwatch(&["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH burstwatch"),
        "{man}"
    );
    assert!(man.contains("run"));
}

/// `burstwatch run` of one simulated second with `BURSTWATCH_LOG` set to `log`.
fn run_with_log(log: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args([
            "run",
            "--source",
            "sim:1",
            "--model",
            "none",
            "--duration",
            "1",
        ])
        .args(extra)
        .env("BURSTWATCH_LOG", log)
        .output()
        .unwrap()
}

#[test]
fn a_malformed_log_filter_is_a_warning_not_silence() {
    let out = run_with_log("debg", &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"debg\" is not a level") && stderr.contains("logging at info"),
        "{stderr}"
    );
    // Info lines still come (the log is not silenced).
    assert!(
        stderr.contains("scoring with the statistical baseline alone"),
        "{stderr}"
    );
    // stdout stays pure JSON Lines.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        parse_line(line);
    }
}

#[test]
fn logs_as_json_for_log_shippers() {
    let out = run_with_log("info", &["--log-format", "json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut n = 0;
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        n += 1;
    }
    assert!(n >= 1, "{stderr}");
}
