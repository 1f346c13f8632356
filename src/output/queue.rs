//! The queue in front of one output: bounded, and it never blocks the camera threads that
//! fill it. When its output falls behind (a reader that stopped reading, a slow disk, a
//! broker that is down), `prediction` events are the first to go: they have a budget of
//! their own, and past it a new one is dropped and counted against its camera. Alerts,
//! outcomes, status, gaps and stats have a much larger backlog, sized for hours of alerts;
//! should even that fill, each one lost is counted and logged as an error, loudly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Event;

/// How much one output's queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Prediction events waiting (default 4096: over two minutes of one camera's frames).
    pub predictions: usize,
    /// Every other event waiting (default 200,000: about 5 hours of eight cameras each
    /// alerting as often as the alert rule allows, an alert and an outcome every 45 frames,
    /// plus their stats; a few hundred bytes each).
    pub events: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            predictions: 4096,
            events: 200_000,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Arc<Event>>,
    /// Prediction events among `items`.
    predictions: usize,
    /// No more events: the output is gone or the run is over.
    closed: bool,
    /// When the last "backlog full" error was logged (at most one every 10 s).
    last_loud: Option<Instant>,
}

/// One output's queue; see the module documentation.
#[derive(Debug)]
pub struct SinkQueue {
    name: String,
    limits: QueueLimits,
    state: Mutex<State>,
    ready: Condvar,
}

impl SinkQueue {
    pub fn new(name: impl Into<String>, limits: QueueLimits) -> SinkQueue {
        SinkQueue {
            name: name.into(),
            limits,
            state: Mutex::default(),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event without waiting. Returns false when it was not queued: dropped
    /// for lack of room (counted in `dropped`, the event's camera's counter) or because
    /// the output is closed (not counted: nothing reads it any more).
    pub fn push(&self, event: Arc<Event>, dropped: &AtomicU64) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        if event.droppable() {
            if s.predictions >= self.limits.predictions {
                dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            s.predictions += 1;
        } else if s.items.len() - s.predictions >= self.limits.events {
            dropped.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            if s.last_loud
                .is_none_or(|t| now - t >= Duration::from_secs(10))
            {
                s.last_loud = Some(now);
                tracing::error!(
                    output = %self.name,
                    "the output's backlog of {} events is full: a {} event of {} is LOST \
                     (and so is every further one until the output catches up)",
                    self.limits.events,
                    event.kind(),
                    event.source().unwrap_or("the run")
                );
            }
            return false;
        }
        s.items.push_back(event);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// The next event, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<Arc<Event>> {
        let mut s = self.lock();
        loop {
            if let Some(e) = s.items.pop_front() {
                if e.droppable() {
                    s.predictions -= 1;
                }
                return Some(e);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// No more events will come: [`SinkQueue::pop`] returns what is left, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Closes the queue and forgets what it holds (its output is gone).
    pub fn abandon(&self) -> usize {
        let mut s = self.lock();
        s.closed = true;
        let n = s.items.len();
        s.items.clear();
        s.predictions = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::event::{GapEvent, GapReason, PredictionEvent};

    fn prediction(frame: u64) -> Arc<Event> {
        Arc::new(Event::Prediction(PredictionEvent {
            time: String::new(),
            source: "a".into(),
            frame,
            stream_time: 0.0,
            score: None,
            p_model: None,
            p_baseline: None,
            y_tilde: None,
            latency_ms: 0.0,
            arrival: Instant::now(),
        }))
    }

    fn gap(frame: u64) -> Arc<Event> {
        Arc::new(Event::Gap(GapEvent {
            time: String::new(),
            source: "a".into(),
            frame,
            missing: 0,
            reason: GapReason::Dropped,
        }))
    }

    fn frame_of(e: &Event) -> u64 {
        match e {
            Event::Prediction(p) => p.frame,
            Event::Gap(g) => g.frame,
            _ => unreachable!(),
        }
    }

    #[test]
    fn predictions_go_first_and_the_rest_stays_in_order() {
        let q = SinkQueue::new(
            "test",
            QueueLimits {
                predictions: 3,
                events: 100,
            },
        );
        let dropped = AtomicU64::new(0);
        for f in 0..10 {
            q.push(prediction(f), &dropped);
            q.push(gap(f), &dropped);
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 7);
        q.close();
        let mut order = Vec::new();
        while let Some(e) = q.pop() {
            order.push((e.kind(), frame_of(&e)));
        }
        let gaps: Vec<u64> = order
            .iter()
            .filter(|(k, _)| *k == "gap")
            .map(|(_, f)| *f)
            .collect();
        assert_eq!(gaps, (0..10).collect::<Vec<_>>(), "every gap, in order");
        let predictions: Vec<u64> = order
            .iter()
            .filter(|(k, _)| *k == "prediction")
            .map(|(_, f)| *f)
            .collect();
        assert_eq!(predictions, vec![0, 1, 2], "the first three predictions");
        // Room again once the reader caught up.
        let q = SinkQueue::new("test", QueueLimits::default());
        assert!(q.push(prediction(0), &dropped));
        assert!(q.pop().is_some());
    }

    #[test]
    fn a_full_backlog_loses_loudly_and_a_closed_queue_counts_nothing() {
        let q = SinkQueue::new(
            "test",
            QueueLimits {
                predictions: 1,
                events: 2,
            },
        );
        let dropped = AtomicU64::new(0);
        assert!(q.push(gap(0), &dropped));
        assert!(q.push(gap(1), &dropped));
        assert!(!q.push(gap(2), &dropped));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(q.abandon(), 2);
        assert!(!q.push(gap(3), &dropped));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert!(q.pop().is_none());
    }

    #[test]
    fn pop_waits_for_a_push_from_another_thread() {
        let q = Arc::new(SinkQueue::new("test", QueueLimits::default()));
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.pop().map(|e| frame_of(&e)));
        std::thread::sleep(Duration::from_millis(20));
        q.push(gap(7), &AtomicU64::new(0));
        assert_eq!(t.join().unwrap(), Some(7));
    }
}
