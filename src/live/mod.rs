//! `run`: the live predictor. One capture and one inference thread per source, one writer
//! thread for stdout, all joined here:
//!
//! ```text
//! source (GStreamer or simulator) -> frame ring -> inference thread -> channel -> writer
//! ```

pub mod bench;
pub mod inference;
pub mod writer;

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::alert::Event;
use crate::capture::ring::{frame_ring, Overflow};
use crate::capture::{gst_source, pipeline, sim_source, CaptureSettings, SourceKind, SourceSpec};
use crate::capture::{FRAME_HEIGHT, FRAME_WIDTH};
use crate::{Error, Result};

pub use inference::InferenceSettings;

/// A model that scores frames online (an engine under a streaming schedule).
pub trait FrameModel: Send {
    /// Feeds one 120x160 frame (the 240x320 frame halved as DESIGN §1); returns this frame's
    /// burst probability once its window of 120 frames is complete.
    fn push_frame(&mut self, small: &[u8]) -> Option<f32>;
    /// Forgets every window (after a gap).
    fn reset(&mut self);
    /// Does what it can of the next frame's work before that frame arrives (called when
    /// no frame is waiting). Optional: this default does nothing.
    fn prepare(&mut self) {}
}

impl FrameModel for crate::engine::Stream {
    fn push_frame(&mut self, small: &[u8]) -> Option<f32> {
        match crate::engine::Stream::push_frame(self, small) {
            Ok(p) => p,
            Err(e) => {
                // Only a frame of the wrong size fails, and `run` checks the model's input
                // size at start; should it happen, the frame gets no model score.
                tracing::error!("model step failed: {e}");
                None
            }
        }
    }

    fn reset(&mut self) {
        crate::engine::Stream::reset(self)
    }

    fn prepare(&mut self) {
        if let Err(e) = crate::engine::Stream::prepare(self) {
            tracing::error!("preparing the model's next step failed: {e}");
        }
    }
}

/// A model factory for `run`: one engine on `device` under `mode` per source. Fails at
/// start when the model does not take the frames every source delivers (120x160 after
/// halving).
pub fn engine_factory(
    model: crate::model::Model,
    mode: crate::engine::Mode,
    device: crate::engine::device::Device,
) -> Result<impl Fn() -> Result<Box<dyn FrameModel>> + Sync> {
    let i = model.input;
    if (i.height, i.width) != (FRAME_HEIGHT / 2, FRAME_WIDTH / 2) {
        return Err(Error::Invalid(format!(
            "model {} takes {}x{} frames; expected {}x{} (the 240x320 frames halved)",
            model.name,
            i.width,
            i.height,
            FRAME_WIDTH / 2,
            FRAME_HEIGHT / 2
        )));
    }
    let device = device.resolve();
    Ok(move || -> Result<Box<dyn FrameModel>> {
        let engine = crate::engine::device::new_engine_on(model.clone(), device)?;
        Ok(Box::new(crate::engine::Stream::new(engine, mode)?))
    })
}

/// Makes one model per source (each source has its own windows).
pub type ModelFactory = dyn Fn() -> Result<Box<dyn FrameModel>> + Sync;

/// Everything `run` needs.
pub struct RunConfig<'a> {
    pub sources: Vec<SourceSpec>,
    pub capture: CaptureSettings,
    pub inference: InferenceSettings,
    pub model: Option<&'a ModelFactory>,
}

/// Runs every source to its end (or until `stop`), writing events to `out`. Returns the
/// first source failure, after everything computed before it was written.
pub fn run(config: RunConfig, out: impl Write + Send, stop: Arc<AtomicBool>) -> Result<()> {
    if config
        .sources
        .iter()
        .any(|s| !matches!(s.kind, SourceKind::Sim { .. }))
    {
        pipeline::init().map_err(Error::Invalid)?;
    }
    let (tx, rx) = crossbeam_channel::unbounded::<Event>();
    std::thread::scope(|scope| {
        let writer_stop = stop.clone();
        let writer = scope.spawn(move || writer::write_events(rx, out, writer_stop));
        let mut workers = Vec::new();
        for spec in &config.sources {
            let overflow = if config.capture.fast && !spec.kind.is_live() {
                Overflow::Wait
            } else {
                Overflow::Drop
            };
            let (ring_w, ring_r) = frame_ring(
                config.capture.ring_slots,
                FRAME_WIDTH * FRAME_HEIGHT,
                overflow,
            );
            let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
            let model = match config.model {
                Some(make) => Some(make()?),
                None => None,
            };
            let capture = match &spec.kind {
                SourceKind::Sim { seed } => sim_source::spawn(*seed, ring_w, ev_tx, stop.clone()),
                _ => gst_source::spawn(
                    spec.clone(),
                    config.capture.clone(),
                    ring_w,
                    ev_tx,
                    stop.clone(),
                ),
            };
            let inference = inference::Inference::new(
                spec.name.clone(),
                config.inference.clone(),
                model,
                tx.clone(),
            );
            let stop = stop.clone();
            let name = spec.name.clone();
            let worker = scope.spawn(move || {
                let r = inference.run(ring_r, ev_rx, stop.clone());
                // A source that ends or fails stops its own capture; the others run on.
                let _ = capture.join();
                r.map_err(|e| format!("{name}: {e}"))
            });
            workers.push(worker);
        }
        drop(tx);
        let mut first_failure = None;
        for w in workers {
            if let Err(e) = w
                .join()
                .unwrap_or_else(|_| Err("inference thread panicked".into()))
            {
                first_failure.get_or_insert(e);
            }
        }
        match writer.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Invalid(format!("cannot write to stdout: {e}"))),
            Err(_) => return Err(Error::Invalid("the output thread panicked".into())),
        }
        first_failure.map_or(Ok(()), |e| Err(Error::Invalid(e)))
    })
}
