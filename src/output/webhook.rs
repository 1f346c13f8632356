//! Events as HTTP POSTs (`[[output.webhook]]`): one request per event, the body exactly
//! the JSON Lines object (`Content-Type: application/json`), for the lab's chat, its
//! stimulus box, any small HTTP service.
//!
//! The same rule as the MQTT sink: writing only queues, in the [outbox](super::outbox);
//! one thread per webhook posts in order, one request at a time, and a request that fails
//! (no connection, a timeout, any status but 2xx) is tried again after a backoff up to
//! 5 s, without losing its place. Nothing is lost within the outbox's bound (and with
//! `spool_dir`, across restarts).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::backlog::{wait_until, Backlog};
use super::{Event, EventSink, SinkError};
use crate::capture::Secret;
use crate::{Error, Result};

/// Longest wait before a failed request is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The event types a webhook may take.
pub const EVENT_TYPES: [&str; 7] = [
    "start",
    "alert",
    "outcome",
    "prediction",
    "gap",
    "status",
    "stats",
];

/// One webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// `http://` or `https://`.
    pub url: String,
    /// The `"type"`s it takes (default alert and outcome).
    pub events: Vec<String>,
    /// Sent as `Authorization: Bearer ...`.
    pub token: Option<Secret>,
    /// Where the token came from (`env NAME`, `file PATH`).
    pub token_from: Option<String>,
    /// One request's limit.
    pub timeout: Duration,
    /// Events the outbox holds while the receiver is away.
    pub queue: usize,
    pub spool_dir: Option<PathBuf>,
    /// At the end of a run, how long the receiver has to take what is still queued.
    pub drain: Duration,
}

impl WebhookSettings {
    /// A webhook to `url` for alerts and outcomes.
    pub fn new(url: impl Into<String>) -> WebhookSettings {
        WebhookSettings {
            url: url.into(),
            events: vec!["alert".into(), "outcome".into()],
            token: None,
            token_from: None,
            timeout: Duration::from_secs(5),
            queue: 100_000,
            spool_dir: None,
            drain: Duration::from_secs(5),
        }
    }

    /// The URL as logs name it (without credentials, should it carry any).
    pub fn display(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_password(None);
                let _ = u.set_username("");
                u.to_string()
            }
            Err(_) => self.url.clone(),
        }
    }

    pub fn check(&self) -> Result<()> {
        self.problem().map_or(Ok(()), |(_, e)| Err(e))
    }

    /// The first setting that cannot work: the config key that sets it (`url`, `events`,
    /// `queue`, `timeout_s`), so that a config file's error stands at that key, and the
    /// error.
    pub fn problem(&self) -> Option<(&'static str, Error)> {
        let bad = |key, what: String| {
            Some((
                key,
                Error::Input(format!("webhook {}: {what}", self.display())),
            ))
        };
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                if u.password().is_some() {
                    return bad(
                        "url",
                        "a password in the URL; expected a token from token_env or token_file"
                            .into(),
                    );
                }
            }
            Ok(_) => {
                return bad(
                    "url",
                    "expected an http:// or https:// URL with a host".into(),
                )
            }
            Err(e) => return bad("url", format!("{e}; expected an http:// or https:// URL")),
        }
        if self.events.is_empty() {
            return bad(
                "events",
                format!("no events; expected some of {}", EVENT_TYPES.join(", ")),
            );
        }
        for e in &self.events {
            if !EVENT_TYPES.contains(&e.as_str()) {
                return bad(
                    "events",
                    format!(
                        "event type {e:?}; expected one of {}",
                        EVENT_TYPES.join(", ")
                    ),
                );
            }
        }
        if self.queue == 0 {
            return bad("queue", "queue 0; expected at least 1 event".into());
        }
        if self.timeout.is_zero() {
            return bad(
                "timeout_s",
                "timeout 0; expected a positive number of seconds".into(),
            );
        }
        None
    }
}

struct State {
    backlog: Backlog,
    closing: bool,
    /// Give up: the run's end waited long enough.
    abort: bool,
}

struct Shared {
    settings: WebhookSettings,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The webhook output; see the module documentation.
pub struct Webhook {
    shared: Arc<Shared>,
    poster: Option<std::thread::JoinHandle<()>>,
}

impl Webhook {
    pub fn start(settings: WebhookSettings) -> Result<Webhook> {
        settings.check()?;
        let backlog = Backlog::open(
            format!("webhook {}", settings.display()),
            "receiver",
            settings.queue,
            settings.spool_dir.as_deref(),
        )?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .user_agent(format!("burstwatch/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let name = settings.display();
        let shared = Arc::new(Shared {
            settings,
            state: Mutex::new(State {
                backlog,
                closing: false,
                abort: false,
            }),
            changed: Condvar::new(),
        });
        let worker = shared.clone();
        let poster = std::thread::Builder::new()
            .name("output webhook".into())
            .spawn(move || post_loop(&worker, &agent))
            .map_err(|e| Error::Output {
                sink: name,
                what: format!("cannot start its thread: {e}"),
            })?;
        Ok(Webhook {
            shared,
            poster: Some(poster),
        })
    }
}

/// One POST; `Err` says why it did not take.
fn post(agent: &ureq::Agent, s: &WebhookSettings, body: &[u8]) -> std::result::Result<(), String> {
    let mut req = agent
        .post(&s.url)
        .header("Content-Type", "application/json");
    if let Some(t) = &s.token {
        req = req.header("Authorization", format!("Bearer {}", t.expose()));
    }
    match req.send(body) {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the receiver answered {}", r.status())),
        Err(e) => Err(format!("{e}")),
    }
}

/// The poster: the oldest queued event, until the receiver takes it; then the next.
fn post_loop(shared: &Shared, agent: &ureq::Agent) {
    let name = shared.settings.display();
    let mut backoff = Duration::from_millis(250);
    loop {
        let next = {
            let mut s = shared.lock();
            loop {
                if s.abort || (s.closing && s.backlog.outbox.is_empty()) {
                    shared.changed.notify_all();
                    return;
                }
                if let Some(o) = s.backlog.outbox.next_to_send() {
                    break o;
                }
                s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        };
        let r = post(agent, &shared.settings, &next.message.payload);
        let mut s = shared.lock();
        match r {
            Ok(()) => {
                backoff = Duration::from_millis(250);
                if next.kept {
                    s.backlog.outbox.ack(next.seq);
                }
                if s.backlog.recovered() {
                    tracing::info!(output = %name, "the receiver takes events again");
                }
                shared.changed.notify_all();
            }
            Err(what) => {
                s.backlog.outbox.rewind();
                s.backlog.failed(what);
                let until = Instant::now() + backoff;
                drop(wait_until(&shared.changed, s, until, |s| s.abort));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl EventSink for Webhook {
    fn name(&self) -> String {
        self.shared.settings.display()
    }

    fn write(&mut self, event: &Event) -> std::result::Result<(), SinkError> {
        let settings = &self.shared.settings;
        if !settings.events.iter().any(|k| k == event.kind()) {
            return Ok(());
        }
        let mut s = self.shared.lock();
        s.backlog.push_event(event, String::new(), false)?;
        self.shared.changed.notify_all();
        Ok(())
    }

    fn finish(&mut self) -> std::result::Result<(), SinkError> {
        let settings = &self.shared.settings;
        let deadline = Instant::now() + settings.drain;
        let mut s = self.shared.lock();
        s.closing = true;
        self.shared.changed.notify_all();
        let mut s = wait_until(&self.shared.changed, s, deadline, |s| {
            s.backlog.outbox.is_empty()
        });
        s.abort = true;
        self.shared.changed.notify_all();
        s.backlog.account();
        drop(s);
        // A request in flight ends within its timeout; the run does not wait for it.
        if let Some(p) = self.poster.take() {
            if p.is_finished() {
                let _ = p.join();
            }
        }
        Ok(())
    }
}
