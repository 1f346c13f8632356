//! What the network outputs (MQTT, webhooks) share around their [`Outbox`]: opening it
//! (in memory or spooled), queueing with the overflow said at most every 10 s, saying a
//! connection failure once while it lasts, waiting out a backoff that a closing run cuts
//! short, and the account of what was left undelivered at the end.

use std::path::Path;
use std::sync::{Condvar, MutexGuard};
use std::time::{Duration, Instant};

use super::outbox::{Message, Outbox};
use super::{Event, SinkError};
use crate::{Error, Result};

/// How often an unchanged failure is said again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// An outbox and what has been said about it.
#[derive(Debug)]
pub struct Backlog {
    pub outbox: Outbox,
    /// The output, as logs name it.
    name: String,
    /// What is on the other side: "broker", "receiver".
    peer: &'static str,
    /// The last failure said, and when.
    problem: Option<(String, Instant)>,
    said_full: Option<Instant>,
    said_spool: Option<Instant>,
}

/// Whether a rate-limited message is due (at most one every 10 s).
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    let due = last.is_none_or(|t| now - t >= Duration::from_secs(10));
    if due {
        *last = Some(now);
    }
    due
}

impl Backlog {
    /// An outbox of `capacity` events, on disk in `spool_dir` when given.
    pub fn open(
        name: String,
        peer: &'static str,
        capacity: usize,
        spool_dir: Option<&Path>,
    ) -> Result<Backlog> {
        let outbox = match spool_dir {
            Some(dir) => Outbox::spooled(capacity, dir).map_err(|e| {
                Error::Input(format!(
                    "{name}: spool_dir {}: {e}; expected a folder burstwatch can write",
                    dir.display()
                ))
            })?,
            None => Outbox::new(capacity),
        };
        Ok(Backlog {
            outbox,
            name,
            peer,
            problem: None,
            said_full: None,
            said_spool: None,
        })
    }

    /// Queues an event for `topic` as its JSON (the stdout line without its newline);
    /// predictions pass, everything else is kept until acknowledged.
    pub fn push_event(
        &mut self,
        event: &Event,
        topic: String,
        retain: bool,
    ) -> std::result::Result<(), SinkError> {
        let payload = serde_json::to_vec(event)
            .map_err(|e| SinkError::Failed(format!("cannot encode an event: {e}")))?;
        let message = Message {
            topic,
            payload,
            retain,
        };
        self.push(message, !event.droppable());
        Ok(())
    }

    /// Queues a message; a full outbox or a spool that cannot be written is said.
    pub fn push(&mut self, message: Message, kept: bool) {
        let pushed = self.outbox.push(message, kept);
        if pushed.dropped > 0 && due(&mut self.said_full) {
            let (passing, kept) = self.outbox.dropped();
            tracing::error!(
                output = %self.name,
                "the outbox of {} events is full while the {} is away: dropped so far \
                 {passing} predictions and {kept} other events (oldest first)",
                self.outbox.capacity(),
                self.peer
            );
        }
        if let Some(e) = pushed.spool_error {
            if due(&mut self.said_spool) {
                tracing::error!(
                    output = %self.name,
                    "cannot write the spool: {e}; events wait in memory only"
                );
            }
        }
    }

    /// A delivery failed (`what`, one line): said when it is new or a minute old, else
    /// only at debug level.
    pub fn failed(&mut self, what: String) {
        let repeat = self
            .problem
            .as_ref()
            .is_some_and(|(p, at)| *p == what && at.elapsed() < REMIND_EVERY);
        if repeat {
            tracing::debug!(output = %self.name, "{what}; retrying");
        } else {
            tracing::warn!(
                output = %self.name,
                "{what}; retrying (at most every 5 s), {} events wait",
                self.outbox.len()
            );
            self.problem = Some((what, Instant::now()));
        }
    }

    /// Deliveries work again; whether a failure had been said.
    pub fn recovered(&mut self) -> bool {
        self.problem.take().is_some()
    }

    /// The end of the run: the spool synced, and what was not delivered said.
    pub fn account(&mut self) {
        let left = self.outbox.unacknowledged();
        if let Err(e) = self.outbox.sync() {
            tracing::error!(output = %self.name, "cannot sync the spool: {e}");
        }
        if left > 0 {
            match self.outbox.spool_dir() {
                Some(dir) => tracing::warn!(
                    output = %self.name,
                    "{left} events were not delivered to the {}; they wait in the spool {} for \
                     the next run",
                    self.peer,
                    dir.display()
                ),
                None => tracing::warn!(
                    output = %self.name,
                    "{left} events were not delivered to the {} and are lost (no spool_dir)",
                    self.peer
                ),
            }
        }
        let (passing, kept) = self.outbox.dropped();
        if passing + kept > 0 {
            tracing::warn!(
                output = %self.name,
                "the full outbox dropped {passing} predictions and {kept} other events in this run"
            );
        }
    }
}

/// Waits on `changed` until `until`, or until `stop` holds of the state.
pub fn wait_until<'a, T>(
    changed: &Condvar,
    mut guard: MutexGuard<'a, T>,
    until: Instant,
    stop: impl Fn(&T) -> bool,
) -> MutexGuard<'a, T> {
    while !stop(&guard) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        guard = changed
            .wait_timeout(guard, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    guard
}
