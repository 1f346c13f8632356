//! A real RTSP camera for the tests: gst-rtsp-server on 127.0.0.1 serving an H.264 MKV
//! file at rtsp://127.0.0.1:PORT/tank, optionally behind basic authentication. It runs in
//! a process of its own (the test binary re-executed), so that a test can kill and
//! restart it like a camera that goes away. A test file that uses it defines the helper
//! test that the process runs:
//!
//! ```ignore
//! #[test]
//! #[ignore = "helper process for the RTSP tests"]
//! fn rtsp_server_process() {
//!     common::rtsp::serve_from_env();
//! }
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

const SERVE_ENV: &str = "BURSTWATCH_TEST_RTSP_SERVE";

/// How the server checks who watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthKind {
    #[default]
    Basic,
    Digest,
}

/// How the server serves.
#[derive(Debug, Clone, Default)]
pub struct Serve {
    /// Only this user and password may watch.
    pub auth: Option<(String, String)>,
    /// Basic or digest authentication.
    pub auth_kind: AuthKind,
    /// One pipeline for every client (a new client joins the stream where it is), or a
    /// fresh one per client (every client sees the file from its start).
    pub shared: bool,
    /// The lower transports it offers: "tcp", "udp", or both when `None`. A client asking
    /// for another is answered 461 Unsupported Transport.
    pub transports: Option<&'static str>,
}

/// The body of the helper process: serves what `$BURSTWATCH_TEST_RTSP_SERVE` says (one
/// value a line: port, file, shared, transports, auth kind, user, password) until killed.
/// Does nothing when the variable is not set (a plain `cargo test --ignored`).
pub fn serve_from_env() {
    let Ok(spec) = std::env::var(SERVE_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('\n').collect();
    let [port, file, shared, transports, auth_kind, user, pass] = parts[..] else {
        panic!("{SERVE_ENV}: seven lines expected, got {spec:?}");
    };
    gst::init().unwrap();
    let main_loop = gst::glib::MainLoop::new(None, false);
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(port);
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( filesrc location={file} ! matroskademux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    ));
    factory.set_shared(shared == "shared");
    let lower = rtsp::gst_rtsp::RTSPLowerTrans::from_bits_truncate(0);
    let lower = match transports {
        "tcp" => lower | rtsp::gst_rtsp::RTSPLowerTrans::TCP,
        "udp" => lower | rtsp::gst_rtsp::RTSPLowerTrans::UDP,
        _ => rtsp::gst_rtsp::RTSPLowerTrans::TCP | rtsp::gst_rtsp::RTSPLowerTrans::UDP,
    };
    factory.set_protocols(lower);
    if !user.is_empty() {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "watcher")
            .build();
        if auth_kind == "digest" {
            auth.add_digest(user, pass, &token);
            auth.set_supported_methods(rtsp::gst_rtsp::RTSPAuthMethod::Digest);
        } else {
            auth.add_basic(&rtsp::RTSPAuth::make_basic(user, pass), &token);
        }
        server.set_auth(Some(&auth));
        let role = gst::Structure::builder("watcher")
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build();
        factory.add_role_from_structure(&role);
    }
    server.mount_points().unwrap().add_factory("/tank", factory);
    let _source = server.attach(None).expect("the RTSP port is free");
    println!("ready");
    main_loop.run();
}

/// Kills a child process when dropped, so that a failing test leaves no server or
/// burstwatch behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on loopback for a server to listen on, below the kernel's ephemeral
/// range (32768 and up here): a port the kernel hands out for `bind(0)` or as a client's
/// source port cannot then take it between this check and the server's start (seen once
/// with nine RTSP tests side by side). Ports are tried from a per-process sequence, so
/// tests in one binary do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(2654435761) % 12000;
    for _ in 0..1000 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + ((base + k * 7) % 12000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// Starts the server process on `port` serving `file` and waits until it listens.
pub fn start_server(port: u16, file: &std::path::Path, serve: &Serve) -> Child {
    let (user, pass) = serve.auth.clone().unwrap_or_default();
    let spec = [
        port.to_string(),
        file.display().to_string(),
        (if serve.shared { "shared" } else { "own" }).into(),
        serve.transports.unwrap_or("any").into(),
        (if serve.auth_kind == AuthKind::Digest {
            "digest"
        } else {
            "basic"
        })
        .into(),
        user,
        pass,
    ]
    .join("\n");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "rtsp_server_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SERVE_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if line.contains("ready") {
            // Keep draining its stdout so the server never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return child;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the RTSP server did not start");
}
