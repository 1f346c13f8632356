//! `/events`: every event of the run as Server-Sent Events, each `data:` the same JSON as
//! its stdout line. The run hands events to an [`EventStream`] (an output like any other,
//! behind its own queue); it passes each to every connected client's own small queue and
//! never waits: a client that does not keep up is disconnected (its browser reconnects
//! and reloads what it missed from `/api/cameras`).

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tiny_http::Request;

use crate::output::{Event, EventSink, SinkError};

/// Events a client may be behind before it is dropped.
const CLIENT_QUEUE: usize = 256;
/// A comment line this often keeps proxies and browsers from closing a quiet stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The clients of `/events`.
#[derive(Clone, Default)]
pub struct Subscribers(Arc<Mutex<Vec<Client>>>);

/// A connected client: its queue, and whether its stream still runs (it holds the
/// other end of `alive`).
struct Client {
    tx: Sender<Arc<str>>,
    alive: Weak<()>,
}

impl Subscribers {
    fn lock(&self) -> MutexGuard<'_, Vec<Client>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clients connected now.
    pub fn count(&self) -> usize {
        self.lock()
            .iter()
            .filter(|c| c.alive.strong_count() > 0)
            .count()
    }

    /// A new client's queue and its life, unless there are `max` already.
    fn subscribe(&self, max: usize) -> Option<(Receiver<Arc<str>>, Arc<()>)> {
        let mut s = self.lock();
        s.retain(|c| c.alive.strong_count() > 0);
        if s.len() >= max {
            return None;
        }
        let (tx, rx) = crossbeam_channel::bounded(CLIENT_QUEUE);
        let alive = Arc::new(());
        s.push(Client {
            tx,
            alive: Arc::downgrade(&alive),
        });
        Some((rx, alive))
    }

    /// Hands one line to every client; drops those that are full or gone.
    fn publish(&self, line: Arc<str>) {
        self.lock().retain(|c| match c.tx.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::debug!("an /events client fell behind; it is disconnected");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// The run is over: every stream ends.
    fn close(&self) {
        self.lock().clear();
    }
}

/// The output that feeds `/events`.
pub struct EventStream {
    clients: Subscribers,
}

impl EventStream {
    /// An output and the clients it feeds (for the web server).
    pub fn new() -> (EventStream, Subscribers) {
        let clients = Subscribers::default();
        let sink = EventStream {
            clients: clients.clone(),
        };
        (sink, clients)
    }
}

impl EventSink for EventStream {
    fn name(&self) -> String {
        "web /events".into()
    }

    fn write(&mut self, event: &Event) -> Result<(), SinkError> {
        if self.clients.count() == 0 {
            return Ok(());
        }
        let line = serde_json::to_string(event)
            .map_err(|e| SinkError::Failed(format!("cannot encode an event: {e}")))?;
        self.clients.publish(Arc::from(line));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.clients.close();
        Ok(())
    }
}

/// Answers one `/events` request: the stream runs on a thread of its own until the client
/// leaves or the run ends.
pub(super) fn serve(rq: Request, clients: &Subscribers, max: usize) {
    let Some((rx, alive)) = clients.subscribe(max) else {
        let r = tiny_http::Response::from_string("too many /events clients; try again later\n")
            .with_status_code(503);
        let _ = rq.respond(r);
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("web /events".into())
        .spawn(move || {
            let _alive = alive;
            // The raw connection: tiny_http's own chunked responses are buffered 8 kB at
            // a time, which would hold an alert back.
            let mut out = rq.into_writer();
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                        Cache-Control: no-store\r\nConnection: close\r\n\
                        X-Accel-Buffering: no\r\n\r\nretry: 1000\n\n";
            if out
                .write_all(head.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                return;
            }
            loop {
                let chunk = match rx.recv_timeout(KEEPALIVE) {
                    Ok(line) => format!("data: {line}\n\n"),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => ": keepalive\n\n".into(),
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                };
                if out
                    .write_all(chunk.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start an /events stream: {e}");
    }
}
