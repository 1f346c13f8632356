//! One camera's inference thread: a short loop around its [`Scorer`] that takes frames
//! from the ring, hands their events to the outputs, prepares the model's next step while
//! it waits, and turns what the source says (reconnecting, ended, failed) into events in
//! the order things happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::board::CameraBoard;
use super::scorer::{CapturedFrame, Scorer};
use super::CameraStop;
use crate::capture::gst_source::{SourceEvent, SourceFailure};
use crate::capture::ring::{FrameSlot, RingReader};
use crate::clips::Recorder;
use crate::output::{Emitter, Event};
use crate::Result;

/// How long a frame's lines have the cores to themselves before the next frame's model
/// step is prepared: the outputs' threads need a core to write them, and preparing busies
/// every core the engine has.
const WRITER_FIRST: Duration = Duration::from_millis(2);

/// Longest wait for a frame before looking at the source's events and the clock.
const POLL: Duration = Duration::from_millis(20);

/// A ring slot as the scorer takes it.
fn captured(slot: &FrameSlot) -> CapturedFrame<'_> {
    CapturedFrame {
        pixels: &slot.pixels,
        index: slot.index,
        pts_ns: slot.pts_ns,
        arrival: slot.arrival,
        session: slot.session,
        picture: slot.picture,
        transport: slot.transport,
    }
}

/// Gives the frame's alerts their snapshot and its outcomes their clip (with clips).
fn add_media(recorder: &mut Recorder, scorer: &Scorer, slot: &FrameSlot, events: &mut [Event]) {
    for e in events {
        match e {
            Event::Alert(a) => {
                // An alert is always the frame's just scored.
                let png = recorder.alert(a, slot.session, slot.pts_ns, scorer.trace());
                a.snapshot = png.map(|p| p.display().to_string());
            }
            Event::Outcome(o) => o.clip = recorder.outcome(o).map(|p| p.display().to_string()),
            _ => {}
        }
    }
}

/// What a camera does besides scoring and emitting.
#[derive(Default)]
pub struct Extras {
    /// Alerts get their snapshot and clip.
    pub recorder: Option<Recorder>,
    /// Its figures, state and picture for the web page and `/metrics`.
    pub board: Option<Arc<CameraBoard>>,
}

/// Runs until the source ends, fails or `stop` is set; the last events are the final
/// stats and the camera's `ended` (with the stop's reason) or `failed` status. Returns the
/// source's failure.
pub fn run(
    mut scorer: Scorer,
    mut ring: RingReader,
    source_events: Receiver<SourceEvent>,
    out: Emitter,
    stop: &CameraStop,
    stats_every: Duration,
    extras: Extras,
) -> Result<()> {
    let Extras {
        mut recorder,
        board,
    } = extras;
    let mut events: Vec<Event> = Vec::with_capacity(8);
    let send = |events: &mut Vec<Event>| {
        for e in events.drain(..) {
            if let Some(b) = &board {
                b.event(&e);
            }
            out.emit(e);
        }
    };
    let mut ended = false;
    let mut failure: Option<SourceFailure> = None;
    let mut last_stats = Instant::now();
    // Whether the next frame's model step is prepared (or there is nothing to prepare).
    let mut prepared = true;
    loop {
        if stop.is_set() {
            break;
        }
        if last_stats.elapsed() >= stats_every {
            last_stats = Instant::now();
            let clips = recorder.as_ref().map(Recorder::counts);
            scorer.stats(
                ring.dropped(),
                out.dropped_lines(),
                clips,
                false,
                &mut events,
            );
            send(&mut events);
        }
        let wait = if prepared { POLL } else { WRITER_FIRST };
        if let Some(slot) = ring.pop(wait) {
            scorer.push(captured(&slot), &mut events);
            if let Some(r) = recorder.as_mut() {
                add_media(r, &scorer, &slot, &mut events);
            }
            if let (Some(b), Some(f)) = (&board, scorer.last_figures()) {
                b.frame(f, ring.dropped(), &slot.pixels);
            }
            ring.recycle(slot);
            send(&mut events);
            prepared = !scorer.has_model();
            continue;
        }
        if !prepared {
            // Waiting for the next frame, and the outputs have had their moment for the
            // lines just queued: do the part of the next model step that does not need the
            // frame. (With frames queued, the step does it all anyway.)
            scorer.prepare(&mut events);
            send(&mut events);
            prepared = true;
        }
        // The ring is empty: every frame that came before a source event has been scored,
        // so events and frames are reported in the order they happened.
        while let Ok(ev) = source_events.try_recv() {
            match ev {
                // Announced with the session's first frame instead (see `Scorer::push`).
                SourceEvent::Connected { .. } => {}
                SourceEvent::Reconnecting { attempt, reason } => {
                    scorer.reconnecting(attempt, &reason, &mut events)
                }
                SourceEvent::Ended => ended = true,
                SourceEvent::Failed(f) => {
                    failure = Some(f);
                    ended = true;
                }
            }
        }
        send(&mut events);
        if ended && ring.pending() == 0 {
            break;
        }
    }
    // The last clips are written before the final figures are told.
    let clips = recorder.map(Recorder::finish);
    scorer.stats(
        ring.dropped(),
        out.dropped_lines(),
        clips,
        true,
        &mut events,
    );
    let message = failure.as_ref().map(SourceFailure::message);
    scorer.end(message.as_deref(), stop.reason().as_deref(), &mut events);
    send(&mut events);
    failure.map_or(Ok(()), |f| Err(f.into_error(scorer.camera())))
}
