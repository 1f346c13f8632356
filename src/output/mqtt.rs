//! Events into an MQTT broker, the lab's bus: every burstwatch (one per camera host)
//! publishes there, and dashboards, loggers and the scripts that start a recording
//! subscribe. MQTT 3.1.1 through `rumqttc`.
//!
//! Topics, under the prefix of the sink's URL (`mqtt://broker.lab/burstwatch`):
//!
//! ```text
//! PREFIX/available          retained: "online" once connected, "offline" at a clean stop
//!                           and as the Last Will when the process dies or the link breaks
//! PREFIX/start              retained: the run's start line (cameras, models, thresholds)
//! PREFIX/<camera>/status    retained: the camera's last state
//! PREFIX/<camera>/alert     PREFIX/<camera>/outcome   PREFIX/<camera>/gap
//! PREFIX/<camera>/stats     PREFIX/<camera>/prediction (with predictions = true)
//! ```
//!
//! Payloads are exactly the JSON Lines objects of stdout. Every line but predictions goes
//! at the sink's QoS (1 by default: at least once, so a subscriber dedupes alerts by `id`)
//! and stays in the [outbox](super::outbox) until the broker acknowledged it: while the
//! broker is away (down at start, restarting, unreachable for minutes) they wait, in
//! order, and go once it is back; with `spool_dir` they wait on disk and survive a restart
//! of burstwatch. Predictions go at QoS 0 and are the first dropped when the outbox is full.
//!
//! The sink never stops a run and never slows the cameras: writing only queues. One thread
//! per sink holds the connection, reconnecting with a backoff up to 5 s; each failure (an
//! unknown host, a refused login) is logged as one line when it changes, and retried.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event as Net, LastWill, MqttOptions, Outgoing,
    Packet, QoS, TlsConfiguration, Transport,
};

use super::backlog::{wait_until, Backlog};
use super::outbox::Message;
use super::{Event, EventSink, SinkError};
use crate::capture::Secret;
use crate::{Error, Result};

/// The password of an `--mqtt mqtt://user@host/...` broker, kept out of `ps`.
pub const PASSWORD_ENV: &str = "BURSTWATCH_MQTT_PASSWORD";

/// Messages handed to the connection and not yet acknowledged, at most.
const WINDOW: usize = 100;

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the sink publishes and how.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS (rustls), the system's roots or `ca_file`.
    pub tls: bool,
    /// Topics start with it (`lab/rack3`); one prefix per burstwatch.
    pub prefix: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Where the password came from (`env NAME`, `file PATH`), for `config check`.
    pub password_from: Option<String>,
    /// Default `burstwatch-<hostname>`.
    pub client_id: String,
    /// QoS of every line but predictions: 1 (at least once) or 2 (exactly once).
    pub qos: u8,
    /// Publish `prediction` lines too (QoS 0).
    pub predictions: bool,
    /// The MQTT keepalive: a broken link is noticed within about 1.5 times it.
    pub keepalive: Duration,
    /// Events the outbox holds while the broker is away.
    pub queue: usize,
    /// Keep the outbox on disk here.
    pub spool_dir: Option<PathBuf>,
    /// PEM file of the CA that signed the broker's certificate (mqtts://).
    pub ca_file: Option<PathBuf>,
    /// At the end of a run, how long the broker has to acknowledge what is still queued.
    pub drain: Duration,
}

impl MqttSettings {
    /// Settings from `mqtt://[user@]host[:port][/PREFIX]` (or `mqtts://`, port 8883) and
    /// the defaults for the rest. A password in the URL is refused: it would show in `ps`.
    pub fn from_url(text: &str) -> Result<MqttSettings> {
        // Said without a password, should the URL carry one.
        let shown = match url::Url::parse(text) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => text.to_owned(),
        };
        let bad = |what: String| Err(Error::Input(format!("mqtt URL {shown:?}: {what}")));
        let url = match url::Url::parse(text) {
            Ok(u) => u,
            Err(e) => return bad(format!("{e}; expected mqtt://[user@]host[:port]/PREFIX")),
        };
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            s => return bad(format!("scheme {s}; expected mqtt:// or mqtts://")),
        };
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return bad("no host; expected mqtt://host[:port]/PREFIX".into());
        };
        if url.password().is_some() {
            return bad(format!(
                "a password in the URL (it would show in ps); expected it in {PASSWORD_ENV} \
                 or the config's password_env / password_file"
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        if url.fragment().is_some() {
            return bad(
                "a '#' in the topic prefix; expected topic levels without '+', '#' or empty levels"
                    .into(),
            );
        }
        let prefix = decode(url.path().trim_matches('/'));
        let prefix = if prefix.is_empty() {
            "burstwatch".to_owned()
        } else {
            prefix
        };
        if prefix.contains(['+', '#', '\0']) || prefix.split('/').any(str::is_empty) {
            return bad(format!(
                "topic prefix {prefix:?}; expected topic levels without '+', '#' or empty levels"
            ));
        }
        if url.query().is_some() {
            return bad("a query (?...); expected mqtt://[user@]host[:port]/PREFIX".into());
        }
        Ok(MqttSettings {
            host: host.trim_matches(['[', ']']).to_owned(),
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            prefix,
            username: Some(decode(url.username())).filter(|u| !u.is_empty()),
            password: None,
            password_from: None,
            client_id: format!("burstwatch-{}", hostname()),
            qos: 1,
            predictions: false,
            keepalive: Duration::from_secs(15),
            queue: 100_000,
            spool_dir: None,
            ca_file: None,
            drain: Duration::from_secs(5),
        })
    }

    /// The broker as logs name it: the URL without a password.
    pub fn display(&self) -> String {
        let user = self
            .username
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!(
            "{scheme}://{user}{}:{}/{}",
            self.host, self.port, self.prefix
        )
    }

    /// Checks what can be checked before connecting.
    pub fn check(&self) -> Result<()> {
        self.problem().map_or(Ok(()), |(_, e)| Err(e))
    }

    /// The first setting that cannot work: the config key that sets it (`qos`, `queue`,
    /// `client_id`, `keepalive_s`, `username`, `ca_file`), so that a config file's error
    /// stands at that key, and the error.
    pub fn problem(&self) -> Option<(&'static str, Error)> {
        let bad = |key, what: &str| {
            Some((
                key,
                Error::Input(format!("mqtt {}: {what}", self.display())),
            ))
        };
        if !matches!(self.qos, 1 | 2) {
            return bad(
                "qos",
                &format!(
                    "qos {}; expected 1 or 2 (alerts must be acknowledged by the broker)",
                    self.qos
                ),
            );
        }
        if self.queue == 0 {
            return bad("queue", "queue 0; expected at least 1 event");
        }
        if self.client_id.is_empty() || self.client_id.len() > 65_535 {
            return bad(
                "client_id",
                "an empty client_id; expected a name unique on the broker",
            );
        }
        if self.keepalive < Duration::from_secs(1) {
            return bad(
                "keepalive_s",
                "keepalive under 1 s; expected at least 1 second",
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("username", "a password without a username; expected both");
        }
        if self.ca_file.is_some() && !self.tls {
            return bad(
                "ca_file",
                "ca_file for mqtt://; expected it with mqtts:// only",
            );
        }
        None
    }

    fn qos(&self) -> QoS {
        if self.qos == 2 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    fn available(&self) -> String {
        format!("{}/available", self.prefix)
    }

    /// The connection's options: credentials, Last Will, TLS.
    fn options(&self) -> Result<MqttOptions> {
        let mut o = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        o.set_keep_alive(self.keepalive)
            .set_clean_session(true)
            .set_inflight(WINDOW as u16)
            .set_max_packet_size(1 << 20, 1 << 20)
            .set_last_will(LastWill::new(
                self.available(),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(user) = &self.username {
            let pw = self.password.as_ref().map_or("", |p| p.expose());
            o.set_credentials(user.clone(), pw.to_owned());
        }
        if self.tls {
            o.set_transport(Transport::tls_with_config(self.tls_config()?));
        }
        Ok(o)
    }

    fn tls_config(&self) -> Result<TlsConfiguration> {
        let bad = |what: String| Error::Input(format!("mqtt {}: {what}", self.display()));
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    bad(format!(
                        "ca_file {}: {e}; expected a readable PEM file",
                        path.display()
                    ))
                })?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| {
                        bad(format!(
                            "ca_file {}: {e}; expected PEM certificates",
                            path.display()
                        ))
                    })?;
                    roots.add(cert).map_err(|e| {
                        bad(format!(
                            "ca_file {}: {e}; expected a CA certificate",
                            path.display()
                        ))
                    })?;
                }
                if roots.is_empty() {
                    return Err(bad(format!(
                        "ca_file {} holds no certificate; expected PEM certificates",
                        path.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(bad(
                        "no system CA certificates (ca-certificates); expected them or ca_file"
                            .into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConfiguration::Rustls(Arc::new(config)))
    }

    /// Where an event goes: its topic, and whether it is retained.
    fn route(&self, e: &Event) -> Option<(String, bool)> {
        let p = &self.prefix;
        let Some(camera) = e.source() else {
            return Some((format!("{p}/start"), true));
        };
        let topic = format!("{p}/{}/{}", topic_level(camera), e.kind());
        match e {
            Event::Prediction(_) if !self.predictions => None,
            Event::Status(_) => Some((topic, true)),
            _ => Some((topic, false)),
        }
    }
}

/// A camera's name as one topic level: a config's names are already ([A-Za-z0-9_-]); a
/// one-off `--source /data/tank.mkv` has its '/' (and MQTT's wildcards) made '_'.
pub fn topic_level(camera: &str) -> String {
    camera.replace(['/', '+', '#', '\0'], "_")
}

/// This machine's name (for the default client id).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(h) if r == 0 && !h.is_empty() => h.to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// A request in the connection's channel, or a publish waiting for its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Kept(u64),
    Passing,
    Online,
    Offline,
}

/// A connection the broker accepted.
struct Link {
    client: Client,
    /// Requests sent to the client, in order, not yet written to the network.
    requested: VecDeque<Pending>,
    /// Publishes written, by packet id, waiting for their acknowledgement.
    inflight: HashMap<u16, Pending>,
    offline_sent: bool,
}

struct State {
    backlog: Backlog,
    /// The client of a connection being made. It and the [`Link`] hold the only handles
    /// of the connection's client: dropping them ends the connection without a goodbye.
    dialing: Option<Client>,
    link: Option<Link>,
    /// The run is over: deliver what is left, say offline, go.
    closing: bool,
    /// The connection thread is over.
    done: bool,
}

struct Shared {
    settings: MqttSettings,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands the connection what it may take now: queued messages up to the window, then,
/// when closing with nothing left, the `offline` goodbye.
fn fill(settings: &MqttSettings, s: &mut State) {
    let State {
        backlog,
        link,
        closing,
        ..
    } = s;
    let outbox = &mut backlog.outbox;
    let Some(link) = link else { return };
    while link.requested.len() + link.inflight.len() < WINDOW {
        let Some(o) = outbox.next_to_send() else {
            break;
        };
        let (qos, pending) = if o.kept {
            (settings.qos(), Pending::Kept(o.seq))
        } else {
            (QoS::AtMostOnce, Pending::Passing)
        };
        let Message {
            topic,
            payload,
            retain,
        } = o.message;
        if let Err(e) = link.client.try_publish(topic, qos, retain, payload) {
            // The channel has room for the window; this is a connection on its way out.
            tracing::debug!(output = %settings.display(), "cannot hand a message over: {e}");
            break;
        }
        link.requested.push_back(pending);
    }
    if *closing && outbox.is_empty() && !link.offline_sent {
        let sent = link
            .client
            .try_publish(settings.available(), QoS::AtLeastOnce, true, "offline");
        if sent.is_ok() {
            link.requested.push_back(Pending::Offline);
            link.offline_sent = true;
        }
    }
}

/// A connection failure in words, one line, without credentials.
fn describe(settings: &MqttSettings, e: &ConnectionError) -> String {
    let at = format!("{}:{}", settings.host, settings.port);
    match e {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => format!(
            "the broker at {at} refused the login ({}): bad user name or password",
            settings
                .username
                .as_deref()
                .map_or("no username".to_owned(), |u| format!("user {u}"))
        ),
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker at {at} refused the connection: {code:?}")
        }
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("nothing accepts connections at {at} (is the broker running?)")
        }
        ConnectionError::Io(io) => format!("cannot reach the broker at {at}: {io}"),
        ConnectionError::NetworkTimeout => format!("the broker at {at} does not answer"),
        other => format!("the connection to {at} failed: {other}"),
    }
}

/// The connection thread: connects, delivers, reconnects, until the run is over.
fn connect_loop(shared: Arc<Shared>, options: MqttOptions) {
    let settings = &shared.settings;
    let name = settings.display();
    let mut backoff = Duration::from_millis(250);
    loop {
        if shared.lock().closing {
            break;
        }
        let (client, mut connection) = Client::new(options.clone(), 2 * WINDOW + 8);
        // Without it, Nagle's algorithm and the broker's delayed acknowledgements hold a
        // small publish back by up to 40 ms.
        let mut net = connection.eventloop.network_options();
        net.set_tcp_nodelay(true);
        connection.eventloop.set_network_options(net);
        shared.lock().dialing = Some(client);
        let mut accepted = false;
        let mut failure = None;
        let mut clean_end = false;
        for notification in connection.iter() {
            let ev = match notification {
                Ok(ev) => ev,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let mut s = shared.lock();
            match ev {
                Net::Incoming(Packet::ConnAck(_)) => {
                    let Some(client) = s.dialing.take() else {
                        // The run is over and gave up waiting.
                        break;
                    };
                    accepted = true;
                    backoff = Duration::from_millis(250);
                    let waiting = s.backlog.outbox.len();
                    if s.backlog.recovered() || waiting > 0 {
                        tracing::info!(output = %name, "connected; delivering {waiting} waiting events");
                    } else {
                        tracing::info!(output = %name, "connected");
                    }
                    s.backlog.outbox.rewind();
                    let mut link = Link {
                        client: client.clone(),
                        requested: VecDeque::new(),
                        inflight: HashMap::new(),
                        offline_sent: false,
                    };
                    if client
                        .try_publish(settings.available(), QoS::AtLeastOnce, true, "online")
                        .is_ok()
                    {
                        link.requested.push_back(Pending::Online);
                    }
                    s.link = Some(link);
                    fill(settings, &mut s);
                }
                Net::Outgoing(Outgoing::Publish(pkid)) => {
                    if let Some(link) = &mut s.link {
                        match link.requested.pop_front() {
                            Some(Pending::Passing) | None => {}
                            Some(p) => {
                                link.inflight.insert(pkid, p);
                            }
                        }
                    }
                }
                Net::Incoming(Packet::PubAck(rumqttc::PubAck { pkid, .. }))
                | Net::Incoming(Packet::PubComp(rumqttc::PubComp { pkid, .. })) => {
                    let acked = s.link.as_mut().and_then(|l| l.inflight.remove(&pkid));
                    match acked {
                        Some(Pending::Kept(seq)) => s.backlog.outbox.ack(seq),
                        Some(Pending::Offline) => {
                            if let Some(link) = &s.link {
                                let _ = link.client.disconnect();
                            }
                        }
                        _ => {}
                    }
                    fill(settings, &mut s);
                    shared.changed.notify_all();
                }
                Net::Incoming(Packet::PubRec(_)) => {}
                Net::Outgoing(Outgoing::Disconnect) => {
                    clean_end = true;
                    break;
                }
                _ => {}
            }
        }
        let mut s = shared.lock();
        s.link = None;
        s.dialing = None;
        s.backlog.outbox.rewind();
        if clean_end {
            break;
        }
        if let Some(e) = failure {
            let what = describe(settings, &e);
            s.backlog.failed(if accepted {
                format!("lost the broker: {what}")
            } else {
                what
            });
        }
        if s.closing {
            break;
        }
        // Wait before the next attempt; a closing run wakes it.
        drop(wait_until(
            &shared.changed,
            s,
            Instant::now() + backoff,
            |s| s.closing,
        ));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let mut s = shared.lock();
    s.done = true;
    shared.changed.notify_all();
}

/// The MQTT output; see the module documentation.
pub struct MqttSink {
    shared: Arc<Shared>,
}

impl MqttSink {
    /// Checks the settings, opens the spool and starts connecting (in the background: a
    /// broker that is down at start is not an error).
    pub fn start(settings: MqttSettings) -> Result<MqttSink> {
        settings.check()?;
        let options = settings.options()?;
        let backlog = Backlog::open(
            format!("mqtt {}", settings.display()),
            "broker",
            settings.queue,
            settings.spool_dir.as_deref(),
        )?;
        let shared = Arc::new(Shared {
            settings,
            state: Mutex::new(State {
                backlog,
                dialing: None,
                link: None,
                closing: false,
                done: false,
            }),
            changed: Condvar::new(),
        });
        let name = shared.settings.display();
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("output mqtt".into())
            .spawn(move || connect_loop(worker, options))
            .map_err(|e| Error::Output {
                sink: name,
                what: format!("cannot start its connection thread: {e}"),
            })?;
        Ok(MqttSink { shared })
    }
}

impl EventSink for MqttSink {
    fn name(&self) -> String {
        self.shared.settings.display()
    }

    fn write(&mut self, event: &Event) -> std::result::Result<(), SinkError> {
        let settings = &self.shared.settings;
        let Some((topic, retain)) = settings.route(event) else {
            return Ok(());
        };
        let mut s = self.shared.lock();
        s.backlog.push_event(event, topic, retain)?;
        fill(settings, &mut s);
        Ok(())
    }

    /// Gives the broker up to `drain` to acknowledge what is queued, then says `offline`.
    /// What it did not acknowledge stays in the spool (or is lost without one, which is
    /// said).
    fn finish(&mut self) -> std::result::Result<(), SinkError> {
        let settings = &self.shared.settings;
        let deadline = Instant::now() + settings.drain;
        let mut s = self.shared.lock();
        s.closing = true;
        fill(settings, &mut s);
        self.shared.changed.notify_all();
        // Without a connection now there is nobody to wait for.
        s.dialing = None;
        let mut s = wait_until(&self.shared.changed, s, deadline, |s| {
            s.done || s.link.is_none()
        });
        // Dropping the connection without a goodbye makes the broker publish the Last
        // Will: `offline`.
        s.link = None;
        s.backlog.account();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_prefix_and_user() {
        let s = MqttSettings::from_url("mqtt://bw@broker.lab/lab/rack3").unwrap();
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.prefix.as_str(),
                s.username.as_deref()
            ),
            ("broker.lab", 1883, "lab/rack3", Some("bw"))
        );
        assert!(!s.tls);
        assert_eq!(s.display(), "mqtt://bw@broker.lab:1883/lab/rack3");
        let s = MqttSettings::from_url("mqtts://127.0.0.1:9000").unwrap();
        assert_eq!(
            (s.port, s.prefix.as_str(), s.tls),
            (9000, "burstwatch", true)
        );
        assert!(s.client_id.starts_with("burstwatch-"));
        for (bad, says) in [
            ("http://h/x", "expected mqtt:// or mqtts://"),
            ("mqtt://bw:secret@h/x", "password in the URL"),
            ("mqtt://h/a/+/b", "topic prefix"),
            ("mqtt://h/a//b", "topic prefix"),
            ("broker.lab", "expected mqtt://"),
        ] {
            let e = MqttSettings::from_url(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn events_go_to_their_camera_topics() {
        use crate::output::event::{CameraState, GapEvent, GapReason, StatusEvent};
        let mut s = MqttSettings::from_url("mqtt://h/bw").unwrap();
        let gap = Event::Gap(GapEvent {
            time: String::new(),
            source: "tank-a".into(),
            frame: 1,
            missing: 0,
            reason: GapReason::Reconnect,
        });
        assert_eq!(s.route(&gap), Some(("bw/tank-a/gap".into(), false)));
        let status = Event::Status(StatusEvent {
            time: String::new(),
            source: "tank-a".into(),
            state: CameraState::Connected,
            message: None,
            transport: None,
        });
        assert_eq!(s.route(&status), Some(("bw/tank-a/status".into(), true)));
        assert_eq!(topic_level("/data/t+1.mkv"), "_data_t_1.mkv");
        s.qos = 0;
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("expected 1 or 2"));
    }
}
