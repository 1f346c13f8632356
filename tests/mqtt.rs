//! The MQTT output against a real broker (Debian's mosquitto on 127.0.0.1, a free port)
//! and a real subscriber (mosquitto_sub): every line arrives byte-identical on its topic;
//! `available` says online and offline (also as the Last Will of a killed process); a
//! broker that restarts twice loses nothing; a spool delivers across a SIGKILL; a broker
//! that never comes, an unknown host or a wrong password never stop or block a run.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::broker::{openssl, retained, write, Broker, Burstwatch, Subscriber};
use common::events::parse_line;
use common::rtsp::free_port;
use serde_json::Value;

/// The ids of alerts and outcomes (`alert:ID`, `outcome:ID`) in order, per camera, each
/// once (a QoS 1 subscriber dedupes what a reconnect sent twice).
fn alert_trail<'a>(payloads: impl Iterator<Item = &'a str>) -> BTreeMap<String, Vec<String>> {
    let mut seen = HashSet::new();
    let mut trail: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in payloads {
        let v: Value = serde_json::from_str(p).unwrap_or_else(|e| panic!("{e}: {p}"));
        let key = match v["type"].as_str() {
            Some("alert") => format!("alert:{}", v["id"].as_str().unwrap()),
            Some("outcome") => format!("outcome:{}", v["alert_id"].as_str().unwrap()),
            _ => continue,
        };
        if seen.insert(key.clone()) {
            let camera = v["source"].as_str().unwrap().to_owned();
            trail.entry(camera).or_default().push(key);
        }
    }
    trail
}

/// The topic a line belongs on.
fn topic_of(line: &Value) -> String {
    match line["source"].as_str() {
        None => "bw/start".into(),
        Some(camera) => format!("bw/{camera}/{}", line["type"].as_str().unwrap()),
    }
}

#[test]
fn two_cameras_for_60_s_every_line_arrives_on_its_topic_byte_identical() {
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, "bw/#", None);
    std::thread::sleep(Duration::from_millis(500));
    let url = broker.url("bw");
    let mut bw = Burstwatch::start(
        &[
            "run",
            "--source",
            "sim:1",
            "--source",
            "sim:2",
            "--duration",
            "60",
            "--stats-every",
            "5",
            "--mqtt",
            &url,
        ],
        &[],
    );
    assert!(bw
        .stdout
        .wait_for(Duration::from_secs(30), |l| l.contains("\"stats\"")));
    assert_eq!(
        retained(broker.port, "bw/available").as_deref(),
        Some("online")
    );
    assert_eq!(bw.wait(Duration::from_secs(90)), Some(0));
    let stdout = bw.stdout.all();
    let lines: Vec<Value> = stdout.iter().map(|l| parse_line(l)).collect();
    let alerts = lines.iter().filter(|l| l["type"] == "alert").count();
    assert!(alerts >= 2, "a minute of two tanks alerts: {alerts}");
    // Every stdout line, in order, on its own topic: the same bytes.
    let until = Instant::now() + Duration::from_secs(5);
    let wanted: Vec<(String, String)> = stdout
        .iter()
        .zip(&lines)
        .map(|(raw, v)| (topic_of(v), raw.clone()))
        .collect();
    let got = loop {
        let got: Vec<(String, String)> = sub
            .messages()
            .into_iter()
            .filter(|(t, _)| t != "bw/available")
            .collect();
        if got.len() >= wanted.len() || Instant::now() > until {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for camera in ["sim:1", "sim:2"] {
        let of = |v: &[(String, String)]| -> Vec<(String, String)> {
            v.iter()
                .filter(|(t, _)| t.starts_with(&format!("bw/{camera}/")))
                .cloned()
                .collect()
        };
        assert_eq!(of(&got), of(&wanted), "{camera}: every line, in order");
    }
    assert!(got.contains(&wanted[0]), "the start line on bw/start");
    assert_eq!(got.len(), wanted.len(), "nothing else, nothing twice");
    let available: Vec<String> = sub
        .messages()
        .into_iter()
        .filter(|(t, _)| t == "bw/available")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(available, ["online", "offline"]);
    assert_eq!(
        retained(broker.port, "bw/available").as_deref(),
        Some("offline")
    );
    // Retained: each camera's last status.
    assert!(retained(broker.port, "bw/sim:1/status")
        .unwrap()
        .contains("\"ended\""));
}

#[test]
fn a_killed_process_is_offline_by_its_last_will() {
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, "bw/available", None);
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    write(
        &config,
        &format!(
            "[output.mqtt]\nurl = \"{}\"\nkeepalive_s = 3\n\n[[camera]]\nname = \"tank-a\"\nsource = \"sim:3\"\n",
            broker.url("bw")
        ),
    );
    let mut bw = Burstwatch::start(&["run", "--config", config.to_str().unwrap()], &[]);
    assert!(sub
        .lines
        .wait_for(Duration::from_secs(20), |l| l == "bw/available online"));
    bw.signal(libc::SIGKILL);
    let _ = bw.child.wait();
    let killed = Instant::now();
    assert!(
        sub.lines
            .wait_for(Duration::from_millis(4500), |l| l == "bw/available offline"),
        "offline within 1.5 keepalives"
    );
    eprintln!("offline {:?} after the kill", killed.elapsed());
}

#[test]
fn a_broker_that_restarts_twice_loses_no_alert_and_stdout_never_pauses() {
    let mut broker = Broker::start();
    // A persistent session: what is published while it reconnects waits for it.
    let sub = Subscriber::start(broker.port, "bw/#", Some("lab-logger"));
    std::thread::sleep(Duration::from_millis(500));
    let url = broker.url("bw");
    let started = Instant::now();
    let mut bw = Burstwatch::start(
        &[
            "run",
            "--source",
            "sim:4",
            "--source",
            "sim:5",
            "--duration",
            "62",
            "--stats-every",
            "1",
            "--threshold",
            "0.45",
            "--mqtt",
            &url,
        ],
        &[],
    );
    let at = |s: u64| {
        let t = started + Duration::from_secs(s);
        std::thread::sleep(t.saturating_duration_since(Instant::now()));
    };
    let mut outages = Vec::new();
    for (down, up) in [(10, 25), (35, 50)] {
        at(down);
        broker.stop();
        assert!(
            broker.saved(),
            "the broker keeps the subscriber's session across the restart"
        );
        let gone = Instant::now();
        at(up);
        broker.restart();
        outages.push((gone, Instant::now()));
    }
    assert_eq!(bw.wait(Duration::from_secs(90)), Some(0));
    let stdout = bw.stdout.timed();
    let wanted = alert_trail(stdout.iter().map(|(_, l)| l.as_str()));
    let n: usize = wanted.values().map(Vec::len).sum();
    assert!(n >= 6, "alerts and outcomes in a minute: {wanted:?}");
    let while_away = stdout
        .iter()
        .filter(|(t, l)| {
            (l.contains("\"type\":\"alert\"") || l.contains("\"type\":\"outcome\""))
                && outages.iter().any(|(a, b)| a <= t && t <= b)
        })
        .count();
    assert!(
        while_away >= 1,
        "some alerts or outcomes came while the broker was away"
    );
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let msgs = sub.messages();
        let got = alert_trail(
            msgs.iter()
                .filter(|(t, _)| t != "bw/available")
                .map(|(_, p)| p.as_str()),
        );
        if got == wanted {
            break;
        }
        assert!(
            Instant::now() < until,
            "every alert and outcome, in order per camera:\n wanted {wanted:?}\n got {got:?}\nstderr: {}",
            bw.stderr.all().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // stdout went on through both outages: a stats line a second per camera.
    let gaps = stdout.windows(2).map(|w| w[1].0 - w[0].0);
    let longest = gaps.max().unwrap();
    assert!(
        longest < Duration::from_millis(2500),
        "stdout paused {longest:?}"
    );
    let stderr = bw.stderr.all().join("\n");
    assert!(stderr.contains("lost the broker"), "{stderr}");
    assert!(stderr.contains("delivering"), "{stderr}");
}

#[test]
fn a_spool_delivers_after_a_sigkill_what_the_broker_never_acknowledged() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    write(
        &config,
        &format!(
            "[defaults]\nthreshold = 0.45\nstats_every = 1\n\n\
             [output.mqtt]\nurl = \"{}\"\nspool_dir = \"spool\"\n\n\
             [[camera]]\nname = \"tank-a\"\nsource = \"sim:6\"\n\n\
             [[camera]]\nname = \"tank-b\"\nsource = \"sim:7\"\n",
            broker.url("bw")
        ),
    );
    let config = config.to_str().unwrap();
    let mut first = Burstwatch::start(&["run", "--config", config], &[]);
    assert!(first
        .stderr
        .wait_for(Duration::from_secs(20), |l| l.contains("connected")));
    broker.stop();
    let before = first.stdout.all().len();
    // Alerts and stats while the broker is away, then the process dies without a word.
    let alerts_since = |b: &Burstwatch| {
        b.stdout.all()[before..]
            .iter()
            .filter(|l| l.contains("\"type\":\"alert\""))
            .count()
    };
    let until = Instant::now() + Duration::from_secs(60);
    while alerts_since(&first) < 2 {
        assert!(
            Instant::now() < until,
            "no alerts while the broker was away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.signal(libc::SIGKILL);
    let _ = first.child.wait();
    let undelivered: Vec<String> = first.stdout.all()[before..].to_vec();

    broker.restart();
    let sub = Subscriber::start(broker.port, "bw/#", None);
    std::thread::sleep(Duration::from_millis(500));
    let mut second = Burstwatch::start(&["run", "--config", config, "--duration", "3"], &[]);
    assert_eq!(second.wait(Duration::from_secs(30)), Some(0));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got: HashSet<String> = sub.messages().into_iter().map(|(_, p)| p).collect();
        let missing: Vec<&String> = undelivered.iter().filter(|l| !got.contains(*l)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "{} of {} spooled lines not delivered, e.g. {}\nstderr: {}",
            missing.len(),
            undelivered.len(),
            missing[0],
            second.stderr.all().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = second.stderr.all().join("\n");
    assert!(
        stderr.contains("not delivered by an earlier run"),
        "{stderr}"
    );
}

#[test]
fn a_broker_that_never_comes_blocks_nothing() {
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}/bw");
    let started = Instant::now();
    let mut bw = Burstwatch::start(
        &[
            "run",
            "--source",
            "sim:8",
            "--duration",
            "5",
            "--stats-every",
            "1",
            "--mqtt",
            &url,
        ],
        &[],
    );
    assert_eq!(bw.wait(Duration::from_secs(30)), Some(0));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(9),
        "the end waited for nobody: {took:?}"
    );
    let stdout = bw.stdout.all();
    let stats = stdout
        .iter()
        .filter(|l| l.contains("\"type\":\"stats\""))
        .count();
    assert!(stats >= 4, "stdout went on: {stats} stats lines");
    let stderr = bw.stderr.all();
    let said = stderr
        .iter()
        .filter(|l| l.contains("nothing accepts connections"))
        .count();
    assert_eq!(said, 1, "said once, retried quietly: {stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("not delivered to the broker and are lost")),
        "{stderr:?}"
    );
}

#[test]
fn an_unknown_host_is_one_clear_line_and_the_run_goes_on() {
    let mut bw = Burstwatch::start(
        &[
            "run",
            "--source",
            "sim:9",
            "--duration",
            "3",
            "--mqtt",
            "mqtt://no-such-broker.invalid/bw",
        ],
        &[],
    );
    assert_eq!(bw.wait(Duration::from_secs(30)), Some(0));
    let stderr = bw.stderr.all();
    let said: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("cannot reach the broker at no-such-broker.invalid:1883"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr:?}");
    assert!(bw.stdout.all().iter().any(|l| l.contains("\"ended\"")));
}

#[test]
fn a_wrong_password_is_said_once_without_the_password_and_retried() {
    let broker = Broker::with_login("bw", "right-one");
    let url = format!("mqtt://bw@127.0.0.1:{}/bw", broker.port);
    let mut bw = Burstwatch::start(
        &[
            "run",
            "--source",
            "sim:10",
            "--duration",
            "4",
            "--mqtt",
            &url,
        ],
        &[("BURSTWATCH_MQTT_PASSWORD", "wrong-one")],
    );
    assert_eq!(bw.wait(Duration::from_secs(30)), Some(0));
    let stderr = bw.stderr.all();
    let said = stderr
        .iter()
        .filter(|l| l.contains("refused the login (user bw): bad user name or password"))
        .count();
    assert_eq!(said, 1, "{stderr:?}");
    assert!(
        !stderr.join("\n").contains("wrong-one"),
        "the password never shows"
    );
    // The right password: connected.
    let mut ok = Burstwatch::start(
        &[
            "run",
            "--source",
            "sim:10",
            "--duration",
            "2",
            "--mqtt",
            &url,
        ],
        &[("BURSTWATCH_MQTT_PASSWORD", "right-one")],
    );
    assert_eq!(ok.wait(Duration::from_secs(30)), Some(0));
    assert!(
        ok.stderr.all().iter().any(|l| l.contains("connected")),
        "{:?}",
        ok.stderr.all()
    );
}

#[test]
fn mqtts_with_the_lab_ca_delivers_and_a_stranger_ca_is_refused() {
    let broker = Broker::with_tls();
    let ca = broker.ca_file();
    let sub = Subscriber::start_with(
        broker.port,
        "bw/#",
        None,
        &["--cafile", ca.to_str().unwrap()],
    );
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    let lab = |ca: &str| {
        format!(
            "[output.mqtt]\nurl = \"mqtts://127.0.0.1:{}/bw\"\nca_file = \"{ca}\"\n\n\
             [[camera]]\nname = \"tank-a\"\nsource = \"sim:16\"\n",
            broker.port
        )
    };
    write(&config, &lab(ca.to_str().unwrap()));
    let mut bw = Burstwatch::run_config(&config, "2");
    assert_eq!(bw.wait(Duration::from_secs(30)), Some(0));
    let stdout = bw.stdout.all();
    assert!(sub.lines.wait_for(Duration::from_secs(5), |l| l
        .starts_with("bw/tank-a/stats ")));
    let got: Vec<String> = sub.messages().into_iter().map(|(_, p)| p).collect();
    for line in &stdout {
        assert!(got.contains(line), "over TLS: {line}");
    }
    // A CA that did not sign the broker's certificate: refused, said once, the run goes on.
    let stranger = dir.path().join("stranger");
    std::fs::create_dir(&stranger).unwrap();
    openssl(
        &stranger,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=stranger",
            "-keyout",
            "k.pem",
            "-out",
            "ca.pem",
        ],
    );
    write(&config, &lab(stranger.join("ca.pem").to_str().unwrap()));
    let mut bw = Burstwatch::run_config(&config, "2");
    assert_eq!(bw.wait(Duration::from_secs(30)), Some(0));
    let said = bw.stderr.containing("certificate");
    assert_eq!(said.len(), 1, "{:?}", bw.stderr.all());
}

#[test]
fn bad_output_urls_are_one_line_at_start_without_the_password() {
    for (args, says) in [
        (
            vec!["--mqtt", "http://broker.lab/bw"],
            "expected mqtt:// or mqtts://",
        ),
        (
            vec!["--mqtt", "mqtt://bw:hunter2@broker.lab/bw"],
            "a password in the URL",
        ),
        (vec!["--mqtt", "mqtt://broker.lab/lab/#"], "topic prefix"),
        (
            vec!["--webhook", "ftp://hooks.lab/x"],
            "expected an http:// or https:// URL",
        ),
    ] {
        let mut all = vec!["run", "--source", "sim:1", "--duration", "1"];
        all.extend(args);
        let out = common::burstwatch(&all);
        let line = common::assert_one_line_error(&out, &[says]);
        assert!(!line.contains("hunter2"), "{line}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_full_outbox_drops_the_oldest_counts_and_says_so() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    write(
        &config,
        &format!(
            "[defaults]\nstats_every = 0.2\n\n[output.mqtt]\nurl = \"mqtt://127.0.0.1:{port}/bw\"\nqueue = 5\n\n\
             [[camera]]\nname = \"tank-a\"\nsource = \"sim:17\"\n"
        ),
    );
    let mut bw = Burstwatch::run_config(&config, "3");
    assert_eq!(bw.wait(Duration::from_secs(30)), Some(0));
    let full = bw.stderr.containing("the outbox of 5 events is full");
    assert_eq!(full.len(), 1, "said once (at most every 10 s): {full:?}");
    let end = bw.stderr.containing("the full outbox dropped");
    let end = end
        .first()
        .unwrap_or_else(|| panic!("{:?}", bw.stderr.all()));
    let stats = bw
        .stdout
        .all()
        .iter()
        .filter(|l| l.contains("\"type\":\"stats\""))
        .count();
    assert!(stats > 10, "{stats}");
    assert!(
        end.contains(&format!("0 predictions and {} other events", stats + 3 - 5)),
        "{end}"
    );
}
