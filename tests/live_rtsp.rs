//! `run` on an RTSP camera: a real gst-rtsp-server on 127.0.0.1 serving a generated file.
//! Every frame arrives; the server is stopped mid-stream and restarted 5 times and
//! burstwatch reconnects within 2 s of each return; credentials never show. Then the
//! network between them misbehaves (`common::network`): jitter and a slow link lose no
//! frame; a stall with the socket open, a blackhole, a cut and a reset mid-frame are each
//! detected within 3 s and recovered within 2 s of the network's return, as one gap.

mod common;

use std::time::{Duration, Instant};

use common::events::of_type;
use common::network::Network;
use common::rtsp::{self, free_port, KillOnDrop, Serve};
use common::video::h264_mkv;
use common::watch::Watch;

/// Not a test: the RTSP server process the tests start (see `common::rtsp`).
#[test]
#[ignore = "helper process for the RTSP tests"]
fn rtsp_server_process() {
    rtsp::serve_from_env();
}

#[test]
fn rtsp_every_frame_then_five_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("camera.mkv");
    h264_mkv(&file, 180, 30, 320, 240, "I420");
    let port = free_port();
    let serve = Serve {
        shared: true,
        ..Serve::default()
    };
    let mut server = KillOnDrop(rtsp::start_server(port, &file, &serve));
    let url = format!("rtsp://watcher:secret@127.0.0.1:{port}/tank");
    let mut bw = Watch::start(&["--source", &url, "--emit", "all"], &[]);

    // The whole 6 s file arrives, frame for frame, then the stream ends and burstwatch
    // reconnects (a camera does not end).
    bw.wait_status("connected", Duration::from_secs(10));
    let start = bw.lines.len();
    bw.wait_status("reconnecting", Duration::from_secs(30));
    let frames = bw.lines[start..]
        .iter()
        .filter(|l| l.contains("\"type\":\"prediction\""))
        .count();
    assert_eq!(frames, 180, "every frame of the served file");

    // Each round starts connected (the reconnection after the file's end, then the one
    // after the previous restart) and stops the server mid-stream.
    bw.wait_status("connected", Duration::from_secs(10));
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(800));
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        bw.wait_status("reconnecting", Duration::from_secs(6));
        std::thread::sleep(Duration::from_millis(1500));
        server = KillOnDrop(rtsp::start_server(port, &file, &serve));
        let back = Instant::now();
        let (connected, _) = bw.wait_status("connected", Duration::from_secs(10));
        let delay = connected.saturating_duration_since(back);
        assert!(
            delay <= Duration::from_secs(2),
            "round {round}: reconnected {delay:?} after the server returned"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    // A camera's pipeline comes down at once too (rtspsrc's teardown is bounded); the
    // exit watchdog, at 3 s, must not be what ends the run.
    let (took, ok) = bw.interrupt();
    assert!(took < Duration::from_secs(1), "SIGINT: took {took:?}");
    drop(server);
    assert!(ok, "burstwatch failed: {}", bw.stderr());
    let stderr = bw.stderr();
    // How often a dropped session's pipeline took over 2 s to stop (the rtspsrc hang).
    eprintln!(
        "pipelines left stopping in the background: {}",
        stderr.matches("has not stopped").count()
    );
    let stdout = bw.lines.join("\n");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("secret"), "credentials leaked: {text}");
        assert!(!text.contains("watcher"), "user name leaked: {text}");
    }
    assert!(stdout.contains(&format!("rtsp://127.0.0.1:{port}/tank")));
    let gaps = bw
        .lines
        .iter()
        .filter(|l| l.contains("\"reason\":\"reconnect\""))
        .count();
    assert!(gaps >= 5, "each reconnect is a gap: {gaps}");
}

/// A camera file long enough for any test here (60 s, a keyframe a second), made once.
fn long_camera_file() -> &'static std::path::Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let file = dir.join("camera-60s.mkv");
        h264_mkv(&file, 1800, 30, 320, 240, "I420");
        file
    })
}

/// A camera (gst-rtsp-server, one shared stream) behind a network the test controls, and
/// burstwatch watching it through that network with `args`.
struct Behind {
    net: Network,
    bw: Watch,
    _server: KillOnDrop,
}

fn watch_behind_network(serve: &Serve, before: impl FnOnce(&Network), args: &[&str]) -> Behind {
    let port = free_port();
    let server = KillOnDrop(rtsp::start_server(port, long_camera_file(), serve));
    let net = Network::start(port);
    before(&net);
    let url = format!("rtsp://127.0.0.1:{}/tank", net.port());
    let mut all = vec!["--source", url.as_str(), "--emit", "all"];
    all.extend_from_slice(args);
    let bw = Watch::start(&all, &[]);
    Behind {
        net,
        bw,
        _server: server,
    }
}

fn shared_stream() -> Serve {
    Serve {
        shared: true,
        ..Serve::default()
    }
}

/// The frame numbers of the predictions among `events`.
fn predicted(events: &[serde_json::Value]) -> Vec<u64> {
    of_type(events, "prediction")
        .iter()
        .map(|e| e["frame"].as_u64().unwrap())
        .collect()
}

#[test]
fn jitter_and_a_slow_link_lose_no_frame() {
    let mut b = watch_behind_network(
        &shared_stream(),
        |net| {
            net.delay(Duration::from_millis(50), Duration::from_millis(300));
            net.limit(2_000_000);
        },
        &[],
    );
    b.bw.wait_status("connected", Duration::from_secs(15));
    let from = b.bw.lines.len();
    b.bw.read_for(Duration::from_secs(8));
    let events = b.bw.events_since(from);
    let frames = predicted(&events);
    assert!(frames.len() >= 200, "8 s of frames: {}", frames.len());
    assert!(
        frames.windows(2).all(|w| w[1] == w[0] + 1),
        "no frame missed: {frames:?}"
    );
    assert!(
        of_type(&events, "gap").is_empty() && of_type(&events, "status").is_empty(),
        "no gap, no reconnection: {:?}\n{}",
        b.bw.statuses(),
        b.bw.stderr()
    );
}

/// After 2 s of frames, `impair` the network at `t0` (what it returns: when the network is
/// back); burstwatch must say it is reconnecting within 3 s of `t0`, be connected within
/// 2 s of the network's return, with one gap for the outage, and score on.
fn outage_is_detected_and_recovered(impair: impl FnOnce(&Network) -> Duration) {
    let mut b = watch_behind_network(&shared_stream(), |_| {}, &[]);
    b.bw.wait_status("connected", Duration::from_secs(15));
    b.bw.read_for(Duration::from_secs(2));
    let from = b.bw.lines.len();
    let t0 = Instant::now();
    let outage = impair(&b.net);
    let (said, status) = b.bw.wait_status("reconnecting", Duration::from_secs(6));
    let detected = said.saturating_duration_since(t0);
    assert!(
        detected <= Duration::from_secs(3),
        "detected after {detected:?}: {status}"
    );
    let (connected, _) =
        b.bw.wait_status("connected", outage + Duration::from_secs(8));
    let back = t0 + outage;
    let delay = connected.saturating_duration_since(back);
    assert!(
        delay <= Duration::from_secs(2),
        "connected {delay:?} after the network's return\n{:?}\n{}",
        b.bw.statuses(),
        b.bw.stderr()
    );
    b.bw.read_for(Duration::from_secs(2));
    let events = b.bw.events_since(from);
    let gaps = of_type(&events, "gap");
    assert_eq!(gaps.len(), 1, "one gap for the outage: {gaps:?}");
    assert_eq!(gaps[0]["reason"], "reconnect");
    let after: Vec<u64> = predicted(&events)
        .into_iter()
        .filter(|&f| f >= gaps[0]["frame"].as_u64().unwrap())
        .collect();
    assert!(after.len() >= 40, "scoring goes on: {} frames", after.len());
    let (took, ok) = b.bw.interrupt();
    assert!(ok && took < Duration::from_secs(1), "stopped in {took:?}");
}

#[test]
fn a_stall_with_the_socket_open_is_detected_and_recovered() {
    outage_is_detected_and_recovered(|net| {
        net.stall(Duration::from_secs(5));
        Duration::from_secs(5)
    });
}

#[test]
fn a_blackhole_is_detected_and_recovered() {
    outage_is_detected_and_recovered(|net| {
        net.blackhole(Duration::from_secs(5));
        Duration::from_secs(5)
    });
}

#[test]
fn a_cut_mid_frame_is_recovered() {
    outage_is_detected_and_recovered(|net| {
        net.cut();
        Duration::ZERO
    });
}

#[test]
fn a_reset_mid_frame_is_recovered() {
    outage_is_detected_and_recovered(|net| {
        net.reset();
        Duration::ZERO
    });
}

/// The `transport` of the `connected` status `v`.
fn transport_of(v: &serde_json::Value) -> &str {
    v["transport"].as_str().unwrap_or("none")
}

#[test]
fn a_camera_that_refuses_tcp_is_watched_over_udp_and_back_over_tcp_when_udp_is_blocked() {
    let only_udp = Serve {
        transports: Some("udp"),
        ..shared_stream()
    };
    let port = free_port();
    let mut server = KillOnDrop(rtsp::start_server(port, long_camera_file(), &only_udp));
    let net = Network::start(port);
    let url = format!("rtsp://127.0.0.1:{}/tank", net.port());
    let mut bw = Watch::start(&["--source", &url], &[]);
    let (_, refused) = bw.wait_status("reconnecting", Duration::from_secs(10));
    let said = refused["message"].as_str().unwrap();
    assert!(
        said.contains("461") && said.ends_with("trying udp"),
        "{said}"
    );
    let (_, connected) = bw.wait_status("connected", Duration::from_secs(10));
    assert_eq!(transport_of(&connected), "udp");
    let start = bw
        .lines
        .iter()
        .find(|l| l.contains("\"type\":\"start\""))
        .unwrap();
    assert!(start.contains("\"rtsp_transport\":\"auto\""), "{start}");

    // The camera comes back offering both, behind a firewall that drops UDP: the UDP
    // session brings nothing, and TCP takes over.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    bw.wait_status("reconnecting", Duration::from_secs(6));
    net.block_udp();
    let _server = KillOnDrop(rtsp::start_server(
        port,
        long_camera_file(),
        &shared_stream(),
    ));
    let (_, back) = bw.wait_for("a switch to TCP", Duration::from_secs(20), |v| {
        v["state"] == "reconnecting"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains("no UDP packets") && m.ends_with("trying tcp"))
    });
    let (_, connected) = bw.wait_status("connected", Duration::from_secs(10));
    assert_eq!(transport_of(&connected), "tcp", "{back}");
}

#[test]
fn a_camera_that_offers_only_tcp_is_watched_over_tcp_reconnects_included() {
    let only_tcp = Serve {
        transports: Some("tcp"),
        ..shared_stream()
    };
    let port = free_port();
    let mut server = KillOnDrop(rtsp::start_server(port, long_camera_file(), &only_tcp));
    let url = format!("rtsp://127.0.0.1:{port}/tank");
    let mut bw = Watch::start(&["--source", &url], &[]);
    let (_, connected) = bw.wait_status("connected", Duration::from_secs(10));
    assert_eq!(transport_of(&connected), "tcp");
    assert!(bw.statuses().len() == 1, "straight in: {:?}", bw.statuses());
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    bw.wait_status("reconnecting", Duration::from_secs(6));
    let _server = KillOnDrop(rtsp::start_server(port, long_camera_file(), &only_tcp));
    let (_, connected) = bw.wait_status("connected", Duration::from_secs(10));
    assert_eq!(transport_of(&connected), "tcp");
    // And --rtsp-transport udp against it: one clear line, exit 2.
    let out = common::burstwatch(&[
        "run",
        "--model",
        "none",
        "--rtsp-transport",
        "udp",
        "--source",
        &url,
    ]);
    common::assert_one_line_error(&out, &["461 Unsupported Transport", "expected"]);
}

#[test]
fn basic_and_digest_authentication_right_and_wrong_passwords() {
    for kind in [rtsp::AuthKind::Basic, rtsp::AuthKind::Digest] {
        let serve = Serve {
            auth: Some(("lab".into(), "s3cret-pw".into())),
            auth_kind: kind,
            ..shared_stream()
        };
        let port = free_port();
        let _server = KillOnDrop(rtsp::start_server(port, long_camera_file(), &serve));
        let right = format!("rtsp://lab:s3cret-pw@127.0.0.1:{port}/tank");
        let mut bw = Watch::start(&["--source", &right], &[]);
        bw.wait_status("connected", Duration::from_secs(10));
        let (_, ok) = bw.interrupt();
        assert!(ok, "{kind:?}: {}", bw.stderr());
        let wrong = format!("rtsp://lab:not-it-9@127.0.0.1:{port}/tank");
        let out = common::burstwatch(&["run", "--model", "none", "--source", &wrong]);
        let line = common::assert_one_line_error(&out, &["unauthorized", "401"]);
        assert!(
            !line.contains("not-it-9") && !line.contains("lab:"),
            "{kind:?}: {line}"
        );
    }
}

#[test]
fn a_camera_that_starts_refusing_the_password_is_asked_less_and_less_often() {
    let serve = |pw: &str| Serve {
        auth: Some(("lab".into(), pw.into())),
        ..shared_stream()
    };
    let port = free_port();
    let mut server = KillOnDrop(rtsp::start_server(port, long_camera_file(), &serve("pw-1")));
    let net = Network::start(port);
    let url = format!("rtsp://lab:pw-1@127.0.0.1:{}/tank", net.port());
    let mut bw = Watch::start(&["--source", &url], &[]);
    bw.wait_status("connected", Duration::from_secs(10));
    // Someone changes the camera's password.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let _server = KillOnDrop(rtsp::start_server(port, long_camera_file(), &serve("pw-2")));
    bw.wait_for("an unauthorized status", Duration::from_secs(10), |v| {
        v["state"] == "reconnecting"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains("unauthorized"))
    });
    let asked = net.accepted();
    bw.read_for(Duration::from_secs(12));
    let again = net.accepted() - asked;
    // Backing off 1, 2, 4, 8 s: four more attempts in 12 s (every half second: 24).
    assert!((2..=5).contains(&again), "{again} attempts in 12 s");
    let said = bw
        .lines
        .iter()
        .filter(|l| l.contains("unauthorized"))
        .count();
    assert_eq!(said, 1, "said once: {:?}", bw.statuses());
    assert!(!bw.lines.join("\n").contains("pw-1") && !bw.stderr().contains("pw-1"));
}

/// Not in CI (about 5 minutes): `BURSTWATCH_STOP_CYCLES` (default 200) runs of burstwatch on
/// a connected RTSP camera, each stopped with SIGINT once its first frame arrived; every
/// stop must take under 1 s, and none may leave a camera's pipeline stopping in the
/// background (the rtspsrc hang this guards against took over 20 s). Run it with
/// `cargo test --release --test live_rtsp -- --ignored stop_start_cycles --nocapture`.
#[test]
#[ignore = "a 5-minute measurement; see its comment"]
fn stop_start_cycles() {
    let cycles: usize = std::env::var("BURSTWATCH_STOP_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let port = free_port();
    let _server = KillOnDrop(rtsp::start_server(
        port,
        long_camera_file(),
        &shared_stream(),
    ));
    let url = format!("rtsp://127.0.0.1:{port}/tank");
    let mut stops = Vec::with_capacity(cycles);
    for cycle in 0..cycles {
        let mut bw = Watch::start(&["--source", &url], &[]);
        bw.wait_status("connected", Duration::from_secs(10));
        let (took, ok) = bw.interrupt();
        let log = bw.stderr();
        assert!(ok, "cycle {cycle}: {log}");
        assert!(
            !log.contains("has not stopped"),
            "cycle {cycle}: a pipeline hung on its way down:\n{log}"
        );
        assert!(
            took < Duration::from_secs(1),
            "cycle {cycle}: stopped in {took:?}\n{log}"
        );
        stops.push(took.as_secs_f64() * 1e3);
    }
    stops.sort_by(f64::total_cmp);
    eprintln!(
        "{cycles} stop/start cycles: stop p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        stops[cycles / 2],
        stops[(cycles * 99) / 100],
        stops[cycles - 1]
    );
}

/// One sample of a process: resident memory (bytes), threads, open file descriptors.
fn sample(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    (field("VmRSS:") * 1024, field("Threads:"), fds)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// A day in a few minutes: four cameras in one run (two simulated with the default model,
/// two RTSP through a network that misbehaves: a random impairment every `every`, a
/// server restart every fifth), sampled every 10 s; after the warm-up, resident memory
/// may not grow by more than 10 MB, nor threads or open files at all (medians of the first
/// and last five samples, so that a reconnect in progress does not count as growth).
/// CI runs 3 minutes (an impairment every 30 s); `scripts/soak.sh [MINUTES]` runs the
/// full one (default 60 minutes, an impairment a minute, a restart every five).
#[test]
fn soak() {
    let minutes: f64 = std::env::var("BURSTWATCH_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let every = if minutes >= 10.0 { 60 } else { 30 };
    let total = Duration::from_secs_f64(minutes * 60.0);
    let warm_up = Duration::from_secs(40);
    let dir = tempfile::tempdir().unwrap();
    let mut cameras = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let server = KillOnDrop(rtsp::start_server(
            port,
            long_camera_file(),
            &shared_stream(),
        ));
        cameras.push((port, server, Network::start(port)));
    }
    let config = dir.path().join("lab.toml");
    std::fs::write(
        &config,
        format!(
            "[[camera]]\nname = \"sim-a\"\nsource = \"sim:1\"\n\n\
             [[camera]]\nname = \"sim-b\"\nsource = \"sim:2\"\n\n\
             [[camera]]\nname = \"rtsp-a\"\nsource = \"rtsp://127.0.0.1:{}/tank\"\nmodel = \"none\"\n\n\
             [[camera]]\nname = \"rtsp-b\"\nsource = \"rtsp://127.0.0.1:{}/tank\"\nmodel = \"none\"\n",
            cameras[0].2.port(),
            cameras[1].2.port()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut bw = Watch::run(&["--config", &config], &[]);
    let pid = bw.child.0.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut round = 0u64;
    let mut next_impairment = started + Duration::from_secs(every);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    while started.elapsed() < total {
        bw.read_for(Duration::from_secs(10));
        if let Ok(Some(status)) = bw.child.0.try_wait() {
            panic!("burstwatch ended ({status}): {}", bw.stderr());
        }
        if started.elapsed() >= warm_up {
            samples.push(sample(pid));
        }
        if Instant::now() < next_impairment {
            continue;
        }
        next_impairment += Duration::from_secs(every);
        round += 1;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (port, server, net) = &mut cameras[(seed % 2) as usize];
        net.clear();
        if round.is_multiple_of(5) {
            server.0.kill().unwrap();
            server.0.wait().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            *server = KillOnDrop(rtsp::start_server(
                *port,
                long_camera_file(),
                &shared_stream(),
            ));
            continue;
        }
        match (seed >> 8) % 6 {
            0 => net.delay(Duration::from_millis(50), Duration::from_millis(300)),
            1 => net.limit(2_000_000),
            2 => net.stall(Duration::from_secs(4)),
            3 => net.blackhole(Duration::from_secs(4)),
            4 => net.cut(),
            _ => net.reset(),
        }
    }
    let (took, ok) = bw.interrupt();
    assert!(ok, "{}", bw.stderr());
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    assert!(samples.len() >= 10, "{} samples", samples.len());
    let head = &samples[..5];
    let tail = &samples[samples.len() - 5..];
    let of =
        |s: &[(u64, u64, u64)], k: usize| median(s.iter().map(|x| [x.0, x.1, x.2][k]).collect());
    let events = bw.events_since(0);
    let finals: Vec<(String, u64)> = of_type(&events, "stats")
        .into_iter()
        .filter(|s| s["final"] == true)
        .map(|s| {
            (
                s["source"].as_str().unwrap().to_owned(),
                s["frames"].as_u64().unwrap(),
            )
        })
        .collect();
    let reconnects = of_type(&events, "status")
        .iter()
        .filter(|s| s["state"] == "reconnecting")
        .count();
    eprintln!(
        "soak {minutes} min, {round} impairments: RSS {:.1} -> {:.1} MB, threads {} -> {}, \
         fds {} -> {}, reconnects {reconnects}, frames {finals:?}",
        of(head, 0) as f64 / 1e6,
        of(tail, 0) as f64 / 1e6,
        of(head, 1),
        of(tail, 1),
        of(head, 2),
        of(tail, 2),
    );
    assert!(
        of(tail, 0) <= of(head, 0) + 10_000_000,
        "memory grew: {samples:?}"
    );
    assert!(of(tail, 1) <= of(head, 1), "threads grew: {samples:?}");
    assert!(of(tail, 2) <= of(head, 2), "open files grew: {samples:?}");
    // Every camera scored on through it all: at least half of its real-time frames.
    assert_eq!(finals.len(), 4, "{finals:?}");
    let expected = (minutes * 60.0 * 30.0 * 0.5) as u64;
    for (name, frames) in &finals {
        assert!(*frames >= expected, "{name}: {frames} frames of {expected}");
    }
}
