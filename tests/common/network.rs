//! A network between burstwatch and a camera, for the tests: a TCP proxy on 127.0.0.1 in
//! front of the RTSP server, told by the test what to do to the traffic (this kernel has
//! no netem). What it can do, each to the connections open at the time unless said:
//!
//! - [`Network::delay`]: every piece of data arrives `latency` plus up to `jitter` later,
//!   in order (TCP keeps order, so a late piece holds up the ones behind it).
//! - [`Network::limit`]: at most so many bits a second each way.
//! - [`Network::stall`]: nothing more passes, and the sockets stay open: the camera's
//!   session hangs. For the next `d`, new connections are accepted but held too (nothing
//!   of theirs passes until `d` is over, then it flows: the network is back).
//! - [`Network::blackhole`]: for `d`, everything sent either way, on open and new
//!   connections, is lost; when it ends, those connections are reset (a stream with a hole
//!   in it cannot be read on) and new ones flow.
//! - [`Network::cut`] and [`Network::reset`]: the connections end in the middle of a piece
//!   of data (half of it passes): closed (FIN) or reset (RST).
//! - [`Network::block_udp`]: the RTSP SETUP requests are rewritten so that the server
//!   sends its UDP packets to a port nobody reads, as a firewall that drops them would.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest piece the proxy reads and forwards at once (about one Ethernet frame, so
/// that a rate limit spreads data out as a slow link does).
const PIECE: usize = 1500;

/// What a connection is told to do.
const RUN: u8 = 0;
const CUT: u8 = 1;
const RESET: u8 = 2;

/// One proxied connection, as the controller sees it.
struct Link {
    /// Nothing passes any more (a stall): the sockets stay open.
    frozen: AtomicBool,
    /// Held until this instant (ms since the proxy started; 0: not held).
    held_until_ms: AtomicU64,
    /// Its data is lost (a blackhole); reset when the blackhole ends.
    doomed: AtomicBool,
    /// [`RUN`], [`CUT`] or [`RESET`].
    end: AtomicU8,
    /// The client closed its side: nothing more to forward.
    gone: AtomicBool,
    client: Arc<TcpStream>,
    server: Arc<TcpStream>,
}

impl Link {
    /// Ends the connection at once: both sockets shut (RST to the client when `reset`).
    fn close(&self, reset: bool) {
        if reset {
            set_linger_zero(&self.client);
            // Wakes the threads blocked reading; the last one to drop its handle closes
            // the socket, and a zero linger makes that close an RST, with no FIN before.
            let _ = self.client.shutdown(Shutdown::Read);
            let _ = self.server.shutdown(Shutdown::Both);
        } else {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.server.shutdown(Shutdown::Both);
        }
    }
}

/// SO_LINGER with a zero timeout: closing the socket resets the connection.
fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[derive(Default)]
struct Settings {
    latency: Duration,
    jitter: Duration,
    /// Bits a second each way; `None`: unlimited.
    rate: Option<u64>,
    /// New connections are held until then (ms since start).
    hold_new_until_ms: u64,
    /// New connections are doomed until then (ms since start).
    blackhole_until_ms: u64,
    block_udp: bool,
}

struct Shared {
    started: Instant,
    settings: Mutex<Settings>,
    links: Mutex<Vec<Arc<Link>>>,
    accepted: AtomicU64,
    seed: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A random fraction in [0, 1) (SplitMix64; the tests need no better).
    fn random(&self) -> f64 {
        let mut z = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / 2f64.powi(64)
    }
}

/// The proxy: listens on [`Network::port`] and forwards to the server's port.
pub struct Network {
    port: u16,
    shared: Arc<Shared>,
}

impl Network {
    /// A proxy on a free port of 127.0.0.1 in front of `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Network {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            started: Instant::now(),
            settings: Mutex::default(),
            links: Mutex::default(),
            accepted: AtomicU64::new(0),
            seed: AtomicU64::new(upstream as u64),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                s.accepted.fetch_add(1, Ordering::Relaxed);
                // A server that is down is a connection refused: the client's connection
                // ends at once, as it would without the proxy.
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                connect(&s, client, server);
            }
        });
        Network { port, shared }
    }

    /// The port to give burstwatch instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    pub fn delay(&self, latency: Duration, jitter: Duration) {
        let mut s = self.shared.settings.lock().unwrap();
        (s.latency, s.jitter) = (latency, jitter);
    }

    /// At most `bits_per_second` each way, each connection.
    pub fn limit(&self, bits_per_second: u64) {
        self.shared.settings.lock().unwrap().rate = Some(bits_per_second);
    }

    /// No more delay or rate limit.
    pub fn clear(&self) {
        let mut s = self.shared.settings.lock().unwrap();
        (s.latency, s.jitter, s.rate) = (Duration::ZERO, Duration::ZERO, None);
    }

    /// Open connections freeze for good; for `d` from now, new ones are held, then flow.
    pub fn stall(&self, d: Duration) {
        self.shared.settings.lock().unwrap().hold_new_until_ms =
            self.shared.now_ms() + d.as_millis() as u64;
        for l in self.shared.links.lock().unwrap().iter() {
            l.frozen.store(true, Ordering::Relaxed);
        }
    }

    pub fn blackhole(&self, d: Duration) {
        let until = self.shared.now_ms() + d.as_millis() as u64;
        self.shared.settings.lock().unwrap().blackhole_until_ms = until;
        for l in self.shared.links.lock().unwrap().iter() {
            l.doomed.store(true, Ordering::Relaxed);
        }
        // When it ends, every connection that lost data is reset.
        let shared = self.shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            let mut links = shared.links.lock().unwrap();
            links.retain(|l| {
                let doomed = l.doomed.load(Ordering::Relaxed);
                if doomed {
                    l.close(true);
                }
                !doomed
            });
        });
    }

    /// Closes every open connection in the middle of a piece of data.
    pub fn cut(&self) {
        self.end_all(CUT);
    }

    /// Resets every open connection in the middle of a piece of data.
    pub fn reset(&self) {
        self.end_all(RESET);
    }

    pub fn block_udp(&self) {
        self.shared.settings.lock().unwrap().block_udp = true;
    }

    fn end_all(&self, how: u8) {
        let links: Vec<Arc<Link>> = self.shared.links.lock().unwrap().drain(..).collect();
        for l in &links {
            l.end.store(how, Ordering::Relaxed);
        }
        // A connection with nothing flowing ends anyway, a moment later.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            for l in links {
                l.close(how == RESET);
            }
        });
    }
}

/// Starts forwarding one accepted connection both ways.
fn connect(shared: &Arc<Shared>, client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let now = shared.now_ms();
    let (held, doomed) = {
        let s = shared.settings.lock().unwrap();
        (
            if s.hold_new_until_ms > now {
                s.hold_new_until_ms
            } else {
                0
            },
            s.blackhole_until_ms > now,
        )
    };
    let link = Arc::new(Link {
        frozen: AtomicBool::new(false),
        held_until_ms: AtomicU64::new(held),
        doomed: AtomicBool::new(doomed),
        end: AtomicU8::new(RUN),
        gone: AtomicBool::new(false),
        client: Arc::new(client),
        server: Arc::new(server),
    });
    shared.links.lock().unwrap().push(link.clone());
    for to_client in [false, true] {
        let (from, to) = if to_client {
            (link.server.clone(), link.client.clone())
        } else {
            (link.client.clone(), link.server.clone())
        };
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let (s, l) = (shared.clone(), link.clone());
        std::thread::spawn(move || read_side(&s, &l, &from, tx, !to_client));
        let (s, l) = (shared.clone(), link.clone());
        std::thread::spawn(move || write_side(&s, &l, &to, rx, to_client));
    }
}

/// Reads pieces and stamps each with when it is due at the other end.
fn read_side(
    shared: &Shared,
    link: &Link,
    from: &TcpStream,
    tx: mpsc::Sender<(Instant, Vec<u8>)>,
    from_client: bool,
) {
    let mut buf = [0u8; PIECE];
    let mut last_due = Instant::now();
    loop {
        let n = match (&*from).read(&mut buf) {
            Ok(n) if n > 0 => n,
            _ => {
                // The client is done with it (or it was ended here): so is the server.
                if from_client {
                    link.gone.store(true, Ordering::Relaxed);
                    let _ = link.server.shutdown(Shutdown::Both);
                }
                return;
            }
        };
        let (latency, jitter, block_udp) = {
            let s = shared.settings.lock().unwrap();
            (s.latency, s.jitter, s.block_udp)
        };
        let mut piece = buf[..n].to_vec();
        if from_client && block_udp {
            piece = redirect_udp(&piece);
        }
        let due = Instant::now() + latency + jitter.mul_f64(shared.random());
        last_due = last_due.max(due);
        if tx.send((last_due, piece)).is_err() {
            return;
        }
    }
}

/// A SETUP's `client_port=A-B` turned into ports nobody reads.
fn redirect_udp(piece: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(piece);
    let Some(at) = text.find("client_port=") else {
        return piece.to_vec();
    };
    let start = at + "client_port=".len();
    let end = text[start..]
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .map_or(text.len(), |e| start + e);
    format!("{}{}{}", &text[..start], "9-10", &text[end..]).into_bytes()
}

/// Writes the pieces when they are due, as the settings and the connection's state allow.
fn write_side(
    shared: &Shared,
    link: &Link,
    to: &TcpStream,
    rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    to_client: bool,
) {
    let _ = to.set_write_timeout(Some(Duration::from_millis(100)));
    let mut next_free = Instant::now();
    while let Ok((due, piece)) = rx.recv() {
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        loop {
            let held = link.held_until_ms.load(Ordering::Relaxed);
            let frozen = link.frozen.load(Ordering::Relaxed);
            let waiting = frozen || held > shared.now_ms();
            if link.gone.load(Ordering::Relaxed) {
                return;
            }
            if !waiting || link.end.load(Ordering::Relaxed) != RUN {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let end = link.end.load(Ordering::Relaxed);
        if end != RUN {
            // Half of the piece, then the end: mid-frame, as a cable pulled.
            if to_client {
                let _ = (&*to).write_all(&piece[..piece.len() / 2]);
                let _ = (&*to).flush();
            }
            link.close(end == RESET);
            return;
        }
        if link.doomed.load(Ordering::Relaxed) {
            continue;
        }
        let rate = shared.settings.lock().unwrap().rate;
        if let Some(bps) = rate {
            let on_the_wire = Duration::from_secs_f64(piece.len() as f64 * 8.0 / bps as f64);
            next_free = next_free.max(Instant::now()) + on_the_wire;
            if let Some(wait) = next_free.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let mut rest = &piece[..];
        while !rest.is_empty() {
            match (&*to).write(rest) {
                Ok(0) => return,
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if link.end.load(Ordering::Relaxed) != RUN {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    }
    // The sender's side closed: so does this one (a FIN passed on).
    let _ = to.shutdown(Shutdown::Write);
}
