//! Watching a live run over HTTP (`run --http 127.0.0.1:8080`, `[http]` in a config):
//!
//! | path | what |
//! |------|------|
//! | `/` | the page: a tile per camera (picture, last minute of scores, state, alerts) |
//! | `/events` | Server-Sent Events: every event, the same JSON as stdout |
//! | `/metrics` | Prometheus text format, per camera (label `camera`) |
//! | `/healthz` | 200 when every camera delivered a frame in the last 5 s, else 503 naming the stale ones |
//! | `/api/cameras` | each camera's settings and state (JSON) |
//! | `/api/cameras/<name>/scores?after=N` | its scores after frame N (the chart) |
//! | `/api/cameras/<name>/picture.png` | its latest picture |
//! | `/media/<name>/<file>` | its snapshots and clips (with clips) |
//!
//! The server is tiny_http: blocking, no async runtime (burstwatch is threads throughout),
//! a small dependency that compiles in seconds. It runs on threads of its own at the
//! lowest priority ([`crate::priority::lowest`]); it reads what the cameras leave on the
//! run's [`Board`] and never waits on them, so a page, a scraper or a slow client can
//! take only idle time. With `token_env` every request needs the token: as `Authorization:
//! Bearer ...` (Prometheus, scripts), or `?token=...` once on the page, which then keeps
//! it in a cookie.

pub mod api;
pub mod events;
pub mod metrics;
mod picture;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::capture::Secret;
use crate::live::Board;
use crate::{Error, Result};

pub use events::{EventStream, Subscribers};

/// The page: HTML, CSS and JavaScript in one file, served from the binary (no CDN, no
/// build step).
const PAGE: &str = include_str!("page.html");

/// Threads answering requests (Server-Sent Events clients have one each besides).
const WORKERS: usize = 3;
/// The most Server-Sent Events clients at once; more get 503.
const MAX_STREAMS: usize = 32;
/// A request with a body is refused unread beyond this (there is nothing to post).
const MAX_BODY: usize = 0;

/// Where the server listens, and its token.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// The bearer token every request must carry; `None`: none asked for.
    pub token: Option<Secret>,
    /// Where it came from (`env NAME`, `file PATH`), never the token.
    pub token_from: Option<String>,
}

/// The environment variable `run --http-token-env` names by default in examples.
pub const TOKEN_ENV_EXAMPLE: &str = "BURSTWATCH_HTTP_TOKEN";

impl HttpSettings {
    /// `IP:PORT` (port 0: any free port, logged), without a token.
    pub fn parse(listen: &str) -> Result<HttpSettings> {
        let listen = listen.parse().map_err(|_| {
            Error::Input(format!(
                "http listen address {listen:?}; expected IP:PORT, as 127.0.0.1:8080"
            ))
        })?;
        Ok(HttpSettings {
            listen,
            token: None,
            token_from: None,
        })
    }

    /// Asks for the token held in environment variable `name` (`env` looks it up); unset
    /// or empty is an error.
    pub fn with_token_env(
        mut self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HttpSettings> {
        match env(name) {
            Some(t) if !t.trim().is_empty() => {
                self.token = Some(Secret::new(t.trim()));
                self.token_from = Some(format!("env {name}"));
                Ok(self)
            }
            _ => Err(Error::Input(format!(
                "the web token's environment variable {name} is not set or empty; expected \
                 it to hold the token"
            ))),
        }
    }
}

/// What every request handler sees.
struct Site {
    board: Arc<Board>,
    streams: Subscribers,
    token: Option<Secret>,
    requests: AtomicU64,
}

/// The running server; it stops when dropped.
pub struct WebServer {
    addr: SocketAddr,
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl WebServer {
    /// Listens on `settings.listen` and serves `board`; `/events` streams what `streams`
    /// is given (an [`EventStream`] sink of the run).
    pub fn start(
        settings: &HttpSettings,
        board: Arc<Board>,
        streams: Subscribers,
    ) -> Result<WebServer> {
        let token = settings.token.clone();
        let ip = settings.listen.ip();
        if !ip.is_loopback() {
            tracing::warn!(
                "the web page listens on {} (not loopback): anyone who reaches this machine \
                 sees the cameras{}",
                settings.listen,
                if token.is_some() {
                    " with the token"
                } else {
                    "; set [http] token_env to ask for a token"
                }
            );
        }
        let site = Arc::new(Site {
            board,
            streams,
            token,
            requests: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        // The server is made on a thread at the lowest priority, so that tiny_http's own
        // threads (accepting, reading requests) inherit it.
        let (tx, rx) = crossbeam_channel::bounded(1);
        let listen = settings.listen;
        let (site2, stop2) = (site.clone(), stop.clone());
        let main = std::thread::Builder::new()
            .name("web".into())
            .spawn(move || {
                crate::priority::lowest("the web server");
                let server = match Server::http(listen) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let workers: Vec<_> = (0..WORKERS)
                    .map(|k| {
                        let (server, site, stop) = (server.clone(), site2.clone(), stop2.clone());
                        std::thread::Builder::new()
                            .name(format!("web {k}"))
                            .spawn(move || serve(&server, &site, &stop))
                    })
                    .collect();
                let _ = tx.send(Ok(server));
                for w in workers.into_iter().flatten() {
                    let _ = w.join();
                }
            })
            .map_err(|e| Error::Input(format!("cannot start the web server's thread: {e}")))?;
        let server = rx
            .recv()
            .map_err(|_| Error::Input("the web server's thread ended at its start".into()))?
            .map_err(|e| {
                Error::Input(format!(
                    "cannot listen on {listen} for the web page: {e}; expected a free port \
                     on an address of this machine"
                ))
            })?;
        let addr = server.server_addr().to_ip().unwrap_or(listen);
        tracing::info!("web page on http://{addr}/ (metrics on /metrics)");
        Ok(WebServer {
            addr,
            server,
            stop,
            threads: vec![main],
        })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A worker: answers requests until the server stops.
fn serve(server: &Server, site: &Site, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(rq)) => handle(rq, site),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("web server: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

/// A complete answer.
fn reply(rq: Request, code: u16, content_type: &str, body: Vec<u8>, extra: &[Header]) {
    let mut r = Response::from_data(body)
        .with_status_code(code)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"));
    for h in extra {
        r.add_header(h.clone());
    }
    // A client that left is no one's concern.
    let _ = rq.respond(r);
}

fn text(rq: Request, code: u16, body: impl Into<String>) {
    let mut body = body.into();
    body.push('\n');
    reply(
        rq,
        code,
        "text/plain; charset=utf-8",
        body.into_bytes(),
        &[],
    );
}

fn json(rq: Request, value: &serde_json::Value) {
    let body = serde_json::to_vec(value).unwrap_or_default();
    reply(rq, 200, "application/json", body, &[]);
}

/// The request's path (percent-decoded, segment by segment) and query.
fn split_url(url: &str) -> (Vec<String>, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(&v.replace('+', " ")))
        })
        .collect();
    (segments, query)
}

/// Compares without a shortcut at the first difference: how long a wrong token takes
/// says nothing of the right one.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The token the request carries: bearer header, cookie, or `?token=`.
fn token_of(rq: &Request, query: &[(String, String)]) -> Option<String> {
    for h in rq.headers() {
        if h.field.equiv("Authorization") {
            if let Some(t) = h.value.as_str().strip_prefix("Bearer ") {
                return Some(t.trim().to_owned());
            }
        }
        if h.field.equiv("Cookie") {
            for c in h.value.as_str().split(';') {
                if let Some(t) = c.trim().strip_prefix("burstwatch_token=") {
                    return Some(t.to_owned());
                }
            }
        }
    }
    query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
}

fn handle(mut rq: Request, site: &Site) {
    site.requests.fetch_add(1, Ordering::Relaxed);
    let (path, query) = split_url(rq.url());
    if !matches!(rq.method(), Method::Get | Method::Head) {
        return text(rq, 405, "only GET and HEAD are served here");
    }
    // Nothing here takes a body: a large one is refused, not read (tiny_http discards it
    // on its connection's thread, at the lowest priority).
    if rq.body_length().unwrap_or(0) > MAX_BODY {
        return text(rq, 413, "a request body is not expected here");
    }
    let mut cookie = None;
    if let Some(want) = &site.token {
        match token_of(&rq, &query) {
            Some(t) if same(&t, want.expose()) => {
                if query.iter().any(|(k, _)| k == "token") {
                    cookie = Some(header(
                        "Set-Cookie",
                        &format!("burstwatch_token={t}; Path=/; HttpOnly; SameSite=Strict"),
                    ));
                }
            }
            got => {
                let what = if got.is_some() { "wrong" } else { "missing" };
                let body = format!(
                    "{what} token; expected Authorization: Bearer <token> (or ?token= once on \
                     the page)\n"
                );
                let ask = header("WWW-Authenticate", "Bearer realm=\"burstwatch\"");
                return reply(
                    rq,
                    401,
                    "text/plain; charset=utf-8",
                    body.into_bytes(),
                    &[ask],
                );
            }
        }
    }
    // A body under the limit is drained so that the connection can go on.
    let _ = std::io::copy(&mut rq.as_reader().take(1 << 16), &mut std::io::sink());
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        [] => reply(
            rq,
            200,
            "text/html; charset=utf-8",
            PAGE.as_bytes().to_vec(),
            cookie.as_slice(),
        ),
        ["events"] => events::serve(rq, &site.streams, MAX_STREAMS),
        ["metrics"] => reply(
            rq,
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(
                &site.board,
                metrics::WebFigures {
                    requests: site.requests.load(Ordering::Relaxed),
                    event_streams: site.streams.count(),
                },
            )
            .into_bytes(),
            &[],
        ),
        ["healthz"] => {
            let stale = site.board.stale();
            let n = site.board.cameras().len();
            if stale.is_empty() {
                text(rq, 200, format!("ok: {n} cameras delivering frames"))
            } else {
                let names: Vec<String> = stale
                    .iter()
                    .map(|(c, age)| format!("{c} (no frame for {:.1} s)", age.as_secs_f64()))
                    .collect();
                text(rq, 503, format!("stale: {}", names.join(", ")))
            }
        }
        ["api", "cameras"] => json(rq, &api::cameras(&site.board)),
        ["api", "cameras", name, "scores"] => {
            let after = query
                .iter()
                .find(|(k, _)| k == "after")
                .and_then(|(_, v)| v.parse().ok());
            match site.board.camera(name) {
                Some(c) => json(rq, &api::scores(&c, after)),
                None => text(rq, 404, format!("no camera {name:?}")),
            }
        }
        ["api", "cameras", name, "picture.png"] => {
            match site.board.camera(name).as_deref().and_then(picture::png) {
                // Which picture it is: the page's caption says.
                Some((png, what)) => reply(rq, 200, "image/png", png, &[header("X-Picture", what)]),
                None => text(rq, 404, format!("no picture of {name:?} yet")),
            }
        }
        ["media", name, file] => media(rq, site, name, file),
        _ => text(
            rq,
            404,
            "not found; expected /, /events, /metrics, /healthz or /api/cameras",
        ),
    }
}

/// A snapshot, clip or record from a camera's clips folder, by file name only.
fn media(rq: Request, site: &Site, camera: &str, file: &str) {
    let folder = site
        .board
        .camera(camera)
        .and_then(|c| c.clips_folder.clone());
    let safe = !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let kind = match file.rsplit_once('.').map(|(_, e)| e) {
        Some("png") => "image/png",
        Some("mp4") => "video/mp4",
        Some("json") => "application/json",
        _ => "",
    };
    match folder {
        Some(dir) if safe && !kind.is_empty() => match std::fs::read(dir.join(file)) {
            Ok(bytes) => reply(rq, 200, kind, bytes, &[]),
            Err(_) => text(rq, 404, format!("no {file} (yet) for {camera}")),
        },
        _ => text(rq, 404, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_decoded_segments_and_query() {
        let (p, q) = split_url("/api/cameras/sim%3A1/scores?after=12&token=a+b");
        assert_eq!(p, ["api", "cameras", "sim:1", "scores"]);
        assert_eq!(
            q,
            [
                ("after".to_owned(), "12".to_owned()),
                ("token".to_owned(), "a b".to_owned())
            ]
        );
        assert_eq!(split_url("/").0, Vec::<String>::new());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cres"));
        assert!(!same("s3cre", "s3cret"));
    }

    #[test]
    fn a_listen_address_is_ip_and_port() {
        assert!(HttpSettings::parse("127.0.0.1:8080").is_ok());
        let e = HttpSettings::parse("localhost").unwrap_err().to_string();
        assert!(e.contains("expected IP:PORT"), "{e}");
        let s = HttpSettings::parse("127.0.0.1:0").unwrap();
        assert!(s.clone().with_token_env("BW_T", &|_| None).is_err());
        let s = s.with_token_env("BW_T", &|_| Some("t0k\n".into())).unwrap();
        assert_eq!(s.token.unwrap().expose(), "t0k");
        assert_eq!(s.token_from.as_deref(), Some("env BW_T"));
    }
}
