//! The output room: where events go once a camera has decided them. The schema of the
//! events ([`event`]), the [`EventSink`] trait every output implements, JSON Lines
//! ([`jsonl`], stdout's), and [`Outputs`], which runs each sink on a thread of its own
//! behind a bounded queue of its own ([`queue`]) so that no output can stall another or
//! the cameras. A new output is a new file here implementing [`EventSink`].
//!
//! ```text
//! camera threads --emit--> one queue per sink --> that sink's thread --> stdout, ...
//! ```
//!
//! Camera threads never wait on an output: [`Emitter::emit`] only queues. A sink that
//! fails is reported and closed; the others go on. A sink whose reader leaves (stdout's
//! pipe closed) can end the run, as a subscriber saying it has seen enough.

pub mod backlog;
pub mod event;
pub mod jsonl;
pub mod mqtt;
pub mod outbox;
pub mod queue;
pub mod schema;
pub mod spool;
pub mod webhook;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

pub use event::Event;
pub use jsonl::JsonLines;
pub use mqtt::{MqttSettings, MqttSink};
pub use queue::{QueueLimits, SinkQueue};
pub use webhook::{Webhook, WebhookSettings};

use crate::{Error, Result};

/// Why a sink could not take an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Its reader is gone (a closed pipe): not an error, but nothing more goes there.
    Closed,
    /// It failed; the message is one line.
    Failed(String),
}

/// An output: takes events one at a time, on its own thread.
pub trait EventSink: Send {
    /// A short name for logs and errors (`stdout`, `mqtt://broker/prefix`, ...).
    fn name(&self) -> String;

    /// Writes one event, stamped with its `time` (and latency) when it was emitted, the
    /// same for every sink, so that every output carries the same bytes. A sink may take
    /// its time: only its own queue waits.
    fn write(&mut self, event: &Event) -> Result<(), SinkError>;

    /// Called once after the last event (the run is over): flush and close.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Whether its reader leaving ([`SinkError::Closed`]) ends the whole run: true for
    /// stdout, where `burstwatch run | head` means "enough".
    fn ends_run_when_closed(&self) -> bool {
        false
    }
}

/// Told of every line an output has written (the web page's and `/metrics`' latency from a
/// frame's arrival to its line being out). Called on the output's own thread.
pub trait Written: Send + Sync {
    fn written(&self, output: &str, event: &Event);
}

/// The outputs besides stdout a run writes to, as the config file (`[output.*]`) or the
/// command line (`--mqtt`, `--webhook`) asks for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputSettings {
    pub mqtt: Option<MqttSettings>,
    pub webhooks: Vec<WebhookSettings>,
}

impl OutputSettings {
    /// Starts each of them (their connections are made in the background: a broker or a
    /// receiver that is away at the start is not an error).
    pub fn start(&self) -> Result<Vec<Box<dyn EventSink>>> {
        let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
        if let Some(m) = &self.mqtt {
            sinks.push(Box::new(MqttSink::start(m.clone())?));
        }
        for w in &self.webhooks {
            sinks.push(Box::new(Webhook::start(w.clone())?));
        }
        Ok(sinks)
    }

    /// The longest a run's end waits for these outputs to deliver what they hold.
    pub fn drain(&self) -> std::time::Duration {
        self.mqtt
            .iter()
            .map(|m| m.drain)
            .chain(self.webhooks.iter().map(|w| w.drain))
            .max()
            .unwrap_or_default()
    }
}

/// The running outputs of one run.
pub struct Outputs {
    queues: Arc<Vec<Arc<SinkQueue>>>,
    threads: Vec<(String, JoinHandle<Result<(), String>>)>,
}

impl Outputs {
    /// Starts one thread per sink. `stop` is set when a sink's reader leaves and it
    /// [ends the run](EventSink::ends_run_when_closed), or when every sink is gone.
    /// `watcher`, when given, is told of every line written.
    pub fn start(
        sinks: Vec<Box<dyn EventSink>>,
        limits: QueueLimits,
        stop: Arc<AtomicBool>,
        watcher: Option<Arc<dyn Written>>,
    ) -> Result<Outputs> {
        let live = Arc::new(AtomicUsize::new(sinks.len()));
        let mut queues = Vec::with_capacity(sinks.len());
        let mut threads = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let name = sink.name();
            let queue = Arc::new(SinkQueue::new(name.clone(), limits));
            queues.push(queue.clone());
            let (stop, live, watcher) = (stop.clone(), live.clone(), watcher.clone());
            let thread = std::thread::Builder::new()
                .name(format!("output {name}"))
                .spawn(move || {
                    let (r, gone) = drain(sink, &queue, &stop, watcher.as_deref());
                    if gone && live.fetch_sub(1, Ordering::AcqRel) == 1 {
                        // Nothing is left to write to during the run: it is pointless.
                        stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
                .map_err(|e| Error::Output {
                    sink: name.clone(),
                    what: format!("cannot start its thread: {e}"),
                })?;
            threads.push((name, thread));
        }
        Ok(Outputs {
            queues: Arc::new(queues),
            threads,
        })
    }

    /// A handle for one camera (or the run itself) to emit events through.
    pub fn emitter(&self) -> Emitter {
        Emitter {
            queues: self.queues.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// No more events: every sink writes what it has queued, finishes, and is joined.
    /// Returns the first sink failure (after every sink was given its chance).
    pub fn finish(self) -> Result<()> {
        for q in self.queues.iter() {
            q.close();
        }
        let mut first = None;
        for (name, t) in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err("its thread panicked".into()));
            if let Err(what) = r {
                first.get_or_insert(Error::Output { sink: name, what });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Writes a sink's queue until it is closed and empty, or the sink is gone; says whether
/// it went before the end (failed, or its reader left).
fn drain(
    mut sink: Box<dyn EventSink>,
    queue: &SinkQueue,
    stop: &AtomicBool,
    watcher: Option<&dyn Written>,
) -> (Result<(), String>, bool) {
    let mut result = Ok(());
    let mut gone = false;
    let name = sink.name();
    while let Some(event) = queue.pop() {
        if let Err(e) = sink.write(&event) {
            result = Err(e);
            gone = true;
            break;
        }
        if let Some(w) = watcher {
            w.written(&name, &event);
        }
    }
    if result.is_ok() {
        result = sink.finish();
    }
    let r = match result {
        Ok(()) => Ok(()),
        Err(SinkError::Closed) => {
            let left = queue.abandon();
            tracing::debug!(output = %name, left, "the output's reader is gone");
            if sink.ends_run_when_closed() {
                stop.store(true, Ordering::Relaxed);
            }
            Ok(())
        }
        Err(SinkError::Failed(what)) => {
            let left = queue.abandon();
            tracing::error!(
                output = %name,
                "{what}; this output stops ({left} queued events not written), the others go on"
            );
            Err(what)
        }
    };
    (r, gone)
}

/// Emits events to every output. Each camera has its own (see [`Outputs::emitter`]), so
/// that what the outputs drop of its lines is counted for it.
#[derive(Clone)]
pub struct Emitter {
    queues: Arc<Vec<Arc<SinkQueue>>>,
    dropped: Arc<AtomicU64>,
}

impl Emitter {
    /// Queues `event` for every output, without waiting, stamped with the time now (and,
    /// for a frame's events, the latency from the frame's arrival).
    pub fn emit(&self, event: Event) {
        let event = Arc::new(event.stamped(SystemTime::now(), Instant::now()));
        for q in self.queues.iter() {
            q.push(event.clone(), &self.dropped);
        }
    }

    /// This emitter's events that outputs dropped so far (summed over the outputs).
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::event::{GapEvent, GapReason};
    use std::sync::Mutex;

    fn gap(frame: u64) -> Event {
        Event::Gap(GapEvent {
            time: String::new(),
            source: "a".into(),
            frame,
            missing: 0,
            reason: GapReason::Reconnect,
        })
    }

    /// Keeps what it is given, or fails at the `fail_at`-th event.
    struct Recorder {
        seen: Arc<Mutex<Vec<u64>>>,
        fail_at: Option<usize>,
    }

    impl EventSink for Recorder {
        fn name(&self) -> String {
            "recorder".into()
        }
        fn write(&mut self, event: &Event) -> Result<(), SinkError> {
            let mut seen = self.seen.lock().unwrap();
            if Some(seen.len()) == self.fail_at {
                return Err(SinkError::Failed("disk on fire".into()));
            }
            let Event::Gap(g) = event else { panic!() };
            assert!(!g.time.is_empty(), "stamped when emitted");
            seen.push(g.frame);
            Ok(())
        }
    }

    #[test]
    fn a_failing_sink_is_reported_and_the_others_get_everything() {
        let good = Arc::new(Mutex::new(Vec::new()));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let outputs = Outputs::start(
            vec![
                Box::new(Recorder {
                    seen: bad.clone(),
                    fail_at: Some(3),
                }),
                Box::new(Recorder {
                    seen: good.clone(),
                    fail_at: None,
                }),
            ],
            QueueLimits::default(),
            stop.clone(),
            None,
        )
        .unwrap();
        let emitter = outputs.emitter();
        for f in 0..100 {
            emitter.emit(gap(f));
        }
        let err = outputs.finish().unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert_eq!(*good.lock().unwrap(), (0..100).collect::<Vec<_>>());
        assert_eq!(*bad.lock().unwrap(), vec![0, 1, 2]);
        assert!(!stop.load(Ordering::Relaxed), "one output is still there");
        assert_eq!(emitter.dropped_lines(), 0);
    }
}
