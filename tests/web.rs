//! `run --http`: the live page, `/metrics`, `/healthz` and `/api/cameras`, checked with
//! the real tools: Prometheus's `promtool check metrics` and a Prometheus server scraping
//! the run (Debian's `prometheus`), headless Chromium (Debian's `chromium`) loading the
//! page, a real RTSP server killed under a camera, and clients that misbehave.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::broker::{write, Burstwatch};
use common::browser::Browser;
use common::events::{final_stats, parse_line};
use common::rtsp::{self, free_port, KillOnDrop, Serve};
use common::video::h264_mkv;
use common::web::{get, request};
use serde_json::Value;

/// Not a test: the RTSP server process the tests start (see `common::rtsp`).
#[test]
#[ignore = "helper process for the RTSP tests"]
fn rtsp_server_process() {
    rtsp::serve_from_env();
}

/// A run with `args` (and `env`), its web server on a port of its choosing; the run and
/// that address (`127.0.0.1:PORT`), once it listens.
fn start(args: &[&str], env: &[(&str, &str)]) -> (Burstwatch, String) {
    let bw = Burstwatch::start(args, env);
    const SAID: &str = "web page on http://";
    bw.stderr
        .wait_for(Duration::from_secs(20), |l| l.contains(SAID));
    let said = bw.stderr.containing(SAID);
    let addr = said.first().and_then(|l| {
        let rest = l.split(SAID).nth(1)?;
        rest.split('/').next().map(str::to_owned)
    });
    let addr = addr.unwrap_or_else(|| {
        panic!(
            "the web server did not start; stderr: {}",
            bw.stderr.all().join("\n")
        )
    });
    (bw, addr)
}

/// A config of simulated tanks `names` (seeds 1, 2, ...) served on a port of its choosing.
fn sim_config(dir: &Path, names: &[&str], extra: &str) -> std::path::PathBuf {
    let mut text =
        format!("[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n[defaults]\nstats_every = 2\n");
    for (k, n) in names.iter().enumerate() {
        text += &format!("[[camera]]\nname = \"{n}\"\nsource = \"sim:{}\"\n", k + 1);
    }
    let path = dir.join("lab.toml");
    write(&path, &text);
    path
}

/// Waits until `/healthz` answers `code`; how long that took.
fn wait_health(addr: &str, code: u16, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if get(addr, "/healthz", &[]).is_ok_and(|r| r.status == code) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The samples of an exposition: `name{labels}` to value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let v = match value {
                "+Inf" => f64::INFINITY,
                "NaN" => f64::NAN,
                v => v.parse().unwrap(),
            };
            (series.to_owned(), v)
        })
        .collect()
}

fn promtool(text: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed; scripts/setup-debian.sh installs Debian's prometheus");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_pass_promtool_rise_between_scrapes_and_count_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let config = sim_config(dir.path(), &["tank-a", "tank-b", "tank-c"], "");
    let (mut bw, addr) = start(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "9",
        ],
        &[],
    );
    wait_health(&addr, 200, Duration::from_secs(10)).expect("healthz 200 once frames flow");
    std::thread::sleep(Duration::from_secs(2));
    let first = get(&addr, "/metrics", &[]).unwrap();
    assert_eq!(first.status, 200);
    assert!(
        first
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        first.headers
    );
    std::thread::sleep(Duration::from_secs(2));
    let second = get(&addr, "/metrics", &[]).unwrap();
    promtool(&first.text());
    promtool(&second.text());
    let (a, b) = (samples(&first.text()), samples(&second.text()));
    for cam in ["tank-a", "tank-b", "tank-c"] {
        let frames = format!("burstwatch_frames_total{{camera=\"{cam}\"}}");
        let count = format!("burstwatch_score_latency_seconds_count{{camera=\"{cam}\"}}");
        let inf =
            format!("burstwatch_score_latency_seconds_bucket{{camera=\"{cam}\",le=\"+Inf\"}}");
        assert!(
            b[&frames] > a[&frames] + 30.0,
            "{cam}: {} then {}",
            a[&frames],
            b[&frames]
        );
        for m in [&a, &b] {
            assert_eq!(
                m[&count], m[&frames],
                "{cam}: the histogram counts every frame scored"
            );
            assert_eq!(m[&inf], m[&count]);
        }
        let step = format!("burstwatch_step_seconds_count{{camera=\"{cam}\"}}");
        assert!(b[&step] > a[&step], "{cam}: engine steps rise");
        assert!(b[&format!("burstwatch_fps{{camera=\"{cam}\"}}")] > 25.0);
        assert_eq!(b[&format!("burstwatch_up{{camera=\"{cam}\"}}")], 1.0);
        let state = format!("burstwatch_camera_state{{camera=\"{cam}\",state=\"connected\"}}");
        assert_eq!(b[&state], 1.0);
        for burst in ["true", "false"] {
            assert!(b.contains_key(&format!(
                "burstwatch_outcomes_total{{camera=\"{cam}\",burst=\"{burst}\"}}"
            )));
        }
    }
    // The simulated tanks alert every few seconds: their lines' latency to stdout counts.
    let written: f64 = b
        .iter()
        .filter(|(k, _)| {
            k.starts_with("burstwatch_line_latency_seconds_count{")
                && k.contains("output=\"stdout\"")
        })
        .map(|(_, v)| v)
        .sum();
    let alerts: f64 = ["tank-a", "tank-b", "tank-c"]
        .iter()
        .map(|c| b[&format!("burstwatch_alerts_total{{camera=\"{c}\"}}")])
        .sum();
    assert!(alerts > 0.0, "alerts in 4 s of three simulated tanks");
    assert!(
        written > 0.0 && written <= alerts,
        "{written} lines, {alerts} alerts"
    );
    assert!(b["process_resident_memory_bytes"] > 1e6);
    assert!(b["process_threads"] > 3.0);
    assert!(b["process_open_fds"] > 2.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        b[&format!("burstwatch_build_info{{version=\"{version}\",model=\"default\"}}")],
        1.0
    );

    let api = get(&addr, "/api/cameras", &[]).unwrap().json();
    let cams = api["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 3);
    assert_eq!(cams[0]["name"], "tank-a");
    assert_eq!(cams[0]["state"], "connected");
    assert_eq!(cams[0]["settings"]["source"], "sim:1");
    assert!(cams[0]["settings"]["threshold"].as_f64().unwrap() > 0.0);
    assert!(cams[0]["frames"].as_u64().unwrap() > 100);
    let health = get(&addr, "/healthz", &[]).unwrap();
    assert_eq!(
        (health.status, health.text().trim()),
        (200, "ok: 3 cameras delivering frames")
    );

    assert_eq!(bw.wait(Duration::from_secs(20)), Some(0));
    let events: Vec<Value> = bw.stdout.all().iter().map(|l| parse_line(l)).collect();
    for cam in ["tank-a", "tank-b", "tank-c"] {
        let scraped = b[&format!("burstwatch_frames_total{{camera=\"{cam}\"}}")];
        assert!(final_stats(&events, cam)["frames"].as_f64().unwrap() >= scraped);
    }
}

#[test]
fn a_prometheus_server_scrapes_the_run() {
    let Ok(prometheus) = which("prometheus") else {
        // Only where the package cannot be installed; scripts/setup-debian.sh installs it.
        eprintln!("SKIPPED: Debian's prometheus is not installed (apt-get install prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = sim_config(dir.path(), &["tank-a"], "");
    let (mut bw, addr) = start(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "28",
        ],
        &[],
    );
    let scrape = dir.path().join("prometheus.yml");
    write(
        &scrape,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: burstwatch\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    );
    let web = format!("127.0.0.1:{}", free_port());
    let _server = KillOnDrop(
        Command::new(prometheus)
            .arg(format!("--config.file={}", scrape.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(20));
    let query = |q: &str| {
        let q = percent_encode(q);
        let r = get(&web, &format!("/api/v1/query?query={q}"), &[]).expect("prometheus answers");
        let v = r.json();
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].clone()
    };
    let up = query("up{job=\"burstwatch\"}");
    assert_eq!(up[0]["value"][1], "1", "the target is up: {up}");
    let frames = query("burstwatch_frames_total{camera=\"tank-a\"}");
    let n: f64 = frames[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n > 300.0, "frames as Prometheus has them: {frames}");
    // Twenty scrapes of a rising counter: its rate is the camera's frame rate.
    let rate = query("rate(burstwatch_frames_total{camera=\"tank-a\"}[10s])");
    let fps: f64 = rate[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((25.0..35.0).contains(&fps), "rate {fps}");
    let p99 = query("histogram_quantile(0.99, rate(burstwatch_score_latency_seconds_bucket[10s]))");
    let p99: f64 = p99[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p99 > 0.0 && p99 < 1.0, "p99 {p99} s");
    assert_eq!(bw.wait(Duration::from_secs(30)), Some(0));
}

fn which(name: &str) -> Result<String, ()> {
    ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
        .ok_or(())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Milliseconds since the epoch of a moment on the monotonic clock.
fn epoch_ms(at: Instant, anchor: (Instant, SystemTime)) -> f64 {
    let wall = if at >= anchor.0 {
        anchor.1 + (at - anchor.0)
    } else {
        anchor.1 - (anchor.0 - at)
    };
    wall.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1e3
}

/// Each tile's picture width and how many pixels of its chart are the score's blue.
const TILES: &str = "[...document.querySelectorAll('.tile')].map(t => {
  const img = t.querySelector('img');
  const cv = t.querySelector('canvas');
  let blue = 0;
  if (cv.width > 1) {
    const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    for (let k = 0; k < d.length; k += 4) if (d[k + 2] > 200 && d[k] < 120) blue++;
  }
  return { picture: img.naturalWidth, chart: cv.width, blue };
})";

/// Whether the page shows `n` tiles, each with its picture and its chart drawn.
fn tiles_ready(browser: &mut Browser, n: usize, within: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        let tiles = browser.eval(&format!("JSON.stringify({TILES})"));
        let tiles: Vec<Value> = serde_json::from_str(tiles.as_str().unwrap()).unwrap();
        let ready = tiles.len() == n
            && tiles
                .iter()
                .all(|t| t["picture"] == 320 && t["blue"].as_u64().unwrap() > 50);
        if ready {
            return true;
        }
        if t0.elapsed() > within {
            eprintln!("tiles: {tiles:?}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_page_shows_every_tank_live_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let config = sim_config(dir.path(), &["tank-a", "tank-b"], "");
    let anchor = (Instant::now(), SystemTime::now());
    let (mut bw, addr) = start(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "40",
        ],
        &[],
    );
    let mut browser = Browser::start();
    browser.viewport(1024, 860, false);
    browser.navigate(&format!("http://{addr}/"));
    assert!(
        tiles_ready(&mut browser, 2, Duration::from_secs(20)),
        "two tiles with pictures and charts; the page: {}",
        browser.eval("document.body.innerText")
    );
    let loaded = Instant::now();
    // The score changes between two reads 2 s apart.
    let score = "document.querySelector('.tile[data-camera=\"tank-a\"] .score').textContent";
    let s1 = browser.eval(score);
    std::thread::sleep(Duration::from_secs(2));
    let s2 = browser.eval(score);
    let (v1, v2) = (
        s1.as_str().unwrap().parse::<f64>(),
        s2.as_str().unwrap().parse::<f64>(),
    );
    assert!(
        v1.is_ok() && v2.is_ok() && s1 != s2,
        "scores {s1} then {s2}"
    );
    let state = browser.eval("document.querySelector('.tile .state').textContent");
    assert_eq!(state, "connected");

    // Every alert written to stdout after the page was up shows on it within 1 s.
    let t0 = Instant::now();
    let mut checked = 0;
    while checked < 3 && t0.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(500));
        let seen = browser.eval("JSON.stringify(bw.seen)");
        let seen: Vec<Value> = serde_json::from_str(seen.as_str().unwrap()).unwrap();
        checked = 0;
        for (at, line) in bw.stdout.timed() {
            if at < loaded + Duration::from_millis(500) || !line.contains("\"type\":\"alert\"") {
                continue;
            }
            let id = parse_line(&line)["id"].as_str().unwrap().to_owned();
            let written = epoch_ms(at, anchor);
            if written > epoch_ms(Instant::now(), anchor) - 1500.0 {
                continue; // the page has its second
            }
            let on_page = seen
                .iter()
                .find(|s| s["id"] == id.as_str())
                .unwrap_or_else(|| panic!("alert {id} is not on the page: {seen:?}"));
            let lag = on_page["t"].as_f64().unwrap() - written;
            assert!(
                lag < 1000.0,
                "alert {id} reached the page {lag:.0} ms after stdout"
            );
            let shown = format!("document.querySelector('[data-alert=\"{id}\"]') !== null");
            assert_eq!(browser.eval(&shown), true, "{id} listed on its tile");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} alerts to check in 25 s");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(shots.join("web-page.png"), browser.screenshot()).unwrap();

    // A phone: one column, nothing wider than the screen.
    browser.viewport(390, 844, true);
    browser.navigate(&format!("http://{addr}/"));
    assert!(
        tiles_ready(&mut browser, 2, Duration::from_secs(20)),
        "tiles on a phone"
    );
    let layout = browser.eval(
        "(() => { const t = [...document.querySelectorAll('.tile')].map(e => e.getBoundingClientRect());
          return { scroll: document.documentElement.scrollWidth, widths: t.map(r => r.width),
                   stacked: t[1].top >= t[0].bottom, right: Math.max(...t.map(r => r.right)) }; })()",
    );
    assert!(layout["scroll"].as_f64().unwrap() <= 390.0, "{layout}");
    assert!(layout["right"].as_f64().unwrap() <= 390.0, "{layout}");
    assert_eq!(layout["stacked"], true, "{layout}");
    std::fs::write(shots.join("web-page-phone.png"), browser.screenshot()).unwrap();
    drop(browser);
    bw.signal(libc::SIGTERM);
    assert_eq!(bw.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn healthz_turns_503_when_an_rtsp_camera_goes_and_200_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tank.mkv");
    h264_mkv(&file, 600, 30, 320, 240, "I420");
    let port = free_port();
    let serve = Serve::default();
    let mut server = KillOnDrop(rtsp::start_server(port, &file, &serve));
    let url = format!("rtsp://127.0.0.1:{port}/tank");
    let (mut bw, addr) = start(
        &[
            "run",
            "--source",
            &url,
            "--model",
            "none",
            "--http",
            "127.0.0.1:0",
            "--crop",
            "40,30,200,150",
        ],
        &[],
    );
    wait_health(&addr, 200, Duration::from_secs(15)).expect("200 while the camera streams");
    std::thread::sleep(Duration::from_secs(2));
    // The page's picture is the camera's own, the crop drawn on it in red.
    let name = percent_encode(&url);
    let pic = get(&addr, &format!("/api/cameras/{name}/picture.png"), &[]).unwrap();
    assert_eq!((pic.status, pic.header("X-Picture")), (200, Some("source")));
    let decoder = png::Decoder::new(std::io::Cursor::new(pic.body.clone()));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height), (320, 240), "the source's size");
    let red = |x: usize, y: usize| {
        let p = &rgb[(y * 320 + x) * 3..][..3];
        p[0] > 150 && p[1] < 90 && p[2] < 90
    };
    assert!(
        (37..44).any(|x| red(x, 100)),
        "the crop's left edge at x = 40"
    );
    assert!((237..244).any(|x| red(x, 100)), "its right edge at x = 240");
    server.0.kill().unwrap();
    let _ = server.0.wait();
    let gone = wait_health(&addr, 503, Duration::from_secs(10)).expect("503 once it is gone");
    assert!(gone <= Duration::from_secs(6), "503 after {gone:?}");
    let r = get(&addr, "/healthz", &[]).unwrap();
    assert!(
        r.text().contains(&url),
        "the stale camera is named: {}",
        r.text()
    );
    let m = samples(&get(&addr, "/metrics", &[]).unwrap().text());
    assert_eq!(m[&format!("burstwatch_up{{camera=\"{url}\"}}")], 0.0);
    server = KillOnDrop(rtsp::start_server(port, &file, &serve));
    let back = wait_health(&addr, 200, Duration::from_secs(15)).expect("200 once it is back");
    eprintln!("503 {gone:?} after the server was killed; 200 {back:?} after it returned");
    let m = samples(&get(&addr, "/metrics", &[]).unwrap().text());
    assert!(m[&format!("burstwatch_reconnects_total{{camera=\"{url}\"}}")] >= 1.0);
    drop(server);
    bw.signal(libc::SIGTERM);
    assert_eq!(bw.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn tokens_stray_paths_big_bodies_and_slow_clients_do_not_hurt_the_run() {
    let clips = tempfile::tempdir().unwrap();
    let args = "run --source sim:1 --http 127.0.0.1:0 --http-token-env BW_TEST_WEB_TOKEN \
                --duration 14 --stats-every 2 --clips";
    let mut args: Vec<&str> = args.split_whitespace().collect();
    args.push(clips.path().to_str().unwrap());
    let (mut bw, addr) = start(&args, &[("BW_TEST_WEB_TOKEN", "s3cret-t0ken")]);
    let bearer = "Authorization: Bearer s3cret-t0ken";
    let missing = get(&addr, "/metrics", &[]).unwrap();
    assert_eq!(missing.status, 401);
    assert!(missing
        .header("WWW-Authenticate")
        .unwrap()
        .starts_with("Bearer"));
    for path in ["/", "/healthz", "/api/cameras", "/events"] {
        assert_eq!(get(&addr, path, &[]).unwrap().status, 401, "{path}");
    }
    let wrong = get(&addr, "/metrics", &["Authorization: Bearer s3cret-t0kem"]).unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(get(&addr, "/metrics", &[bearer]).unwrap().status, 200);
    // Once with ?token= on the page; the cookie it sets serves the rest.
    let page = get(&addr, "/?token=s3cret-t0ken", &[]).unwrap();
    assert_eq!(page.status, 200);
    let cookie = page
        .header("Set-Cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = get(&addr, "/api/cameras", &[&format!("Cookie: {cookie}")]).unwrap();
    assert_eq!(with_cookie.status, 200);
    for path in [
        "/nope",
        "/api",
        "/api/cameras/nope/scores",
        "/media/sim%3A1/x.png",
        "/../etc/passwd",
    ] {
        assert_eq!(get(&addr, path, &[bearer]).unwrap().status, 404, "{path}");
    }

    // A slow client sending its request a byte at a time, one that streams /events and
    // never reads, and 10 MB bodies.
    let slow = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                .iter()
                .cycle()
                .take(40)
            {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        }
    });
    let mut stalled = TcpStream::connect(&addr).unwrap();
    write!(
        stalled,
        "GET /events HTTP/1.1\r\nHost: x\r\n{bearer}\r\n\r\n"
    )
    .unwrap();
    let big = vec![b'x'; 10 << 20];
    let t = Instant::now();
    let r = request(&addr, "GET", "/metrics", &[bearer], &big).unwrap();
    assert_eq!(r.status, 413);
    let r = request(&addr, "POST", "/api/cameras", &[bearer], &big).unwrap();
    assert_eq!(r.status, 405);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "bodies refused in {:?}",
        t.elapsed()
    );
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(&addr, "/healthz", &[bearer]).unwrap().status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "healthz took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The tile links its alerts' snapshot and clip, served from the clips folder.
    let media = |kind: &str, want: &str| {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let api = get(&addr, "/api/cameras", &[bearer]).unwrap().json();
            let links: Vec<String> = api["cameras"][0]["recent_alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a[kind].as_str().map(str::to_owned))
                .collect();
            for link in links {
                let r = get(&addr, &link, &[bearer]).unwrap();
                if r.status == 200 {
                    assert_eq!(r.header("Content-Type"), Some(want), "{link}");
                    assert!(r.body.len() > 1000, "{link}");
                    return link;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("no {kind} served within 10 s");
    };
    let snapshot = media("snapshot", "image/png");
    assert!(snapshot.starts_with("/media/sim%3A1/") && snapshot.ends_with(".png"));
    media("clip", "video/mp4");
    assert_eq!(bw.wait(Duration::from_secs(40)), Some(0));
    slow.join().unwrap();
    drop(stalled);
    let events: Vec<Value> = bw.stdout.all().iter().map(|l| parse_line(l)).collect();
    let last = final_stats(&events, "sim:1");
    assert_eq!(last["dropped"], 0, "{last}");
    assert!(last["frames"].as_u64().unwrap() >= 390, "{last}");
    // The token never shows.
    assert!(!bw.stderr.all().join("\n").contains("s3cret"));
}

#[test]
fn a_bad_listen_address_or_unset_token_is_one_clear_error() {
    let out = common::burstwatch(&["run", "--source", "sim:1", "--http", "localhost"]);
    common::assert_one_line_error(&out, &["\"localhost\"", "expected IP:PORT"]);
    let out = common::burstwatch(&[
        "run",
        "--source",
        "sim:1",
        "--http",
        "127.0.0.1:0",
        "--http-token-env",
        "BW_TEST_UNSET_TOKEN",
    ]);
    common::assert_one_line_error(
        &out,
        &["BW_TEST_UNSET_TOKEN", "expected it to hold the token"],
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let out = common::burstwatch(&["run", "--source", "sim:1", "--http", &at, "--duration", "5"]);
    common::assert_one_line_error(&out, &[&at, "expected a free port"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    write(
        &config,
        "[http]\nlisten = \"127.0.0.1\"\n[[camera]]\nname = \"a\"\nsource = \"sim\"\n",
    );
    let out = common::burstwatch(&["config", "check", config.to_str().unwrap()]);
    common::assert_one_line_error(&out, &["lab.toml:2:10", "expected IP:PORT"]);
}
