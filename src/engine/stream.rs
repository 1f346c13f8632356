//! The two streaming schedules of DESIGN §2 over any [`Engine`]: frames go in one at a
//! time, a probability comes out per frame once a whole window has been seen.
//!
//! The model input of frame t is 30 *slices* of 4 consecutive frames: slice k, channel j
//! is frame `t - 119 + 4k + j`. So every frame completes one slice (its own and the three
//! before it), and the frames split into 4 *phases* (by t mod 4) whose windows share
//! slices: the windows of frames t and t+4 share 29.
//!
//! - **Exact**: each phase keeps 30 *windows* in flight, started 1..30 slices ago, in 30
//!   engine slots. When a slice completes, all of that phase's windows advance by one
//!   batched step; the one that has now seen 30 slices gives `p[t]` through the head, and its
//!   slot restarts from zero with the next slice. Every `p[t]` is the original window output.
//! - **Continuous**: one state per phase, never reset, one step per slice; ~30x cheaper,
//!   and within ~1e-4 of exact on the study's data because the forget gates forget fast.
//!   The first window (t = 119) is identical to exact by construction.

use super::{Engine, Slot};
use crate::frame;
use crate::{Error, Result};

/// How the model runs per frame (the two streaming schedules above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every frame gets exactly its original window's output (~30 steps per frame).
    Exact,
    /// One never-reset state per phase, one step per frame (~30x cheaper).
    Continuous,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(Mode::Exact),
            "continuous" => Ok(Mode::Continuous),
            _ => Err(Error::Input(format!(
                "mode {s:?}; expected continuous or exact"
            ))),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Exact => "exact",
            Mode::Continuous => "continuous",
        })
    }
}

/// The frames sharing one set of slice boundaries, and their windows' slots.
#[derive(Debug)]
struct Phase {
    /// Exact: the window that started at this phase's slice `s` lives in `slots[s % 30]`.
    /// Continuous: one slot.
    slots: Vec<Slot>,
    /// Slices completed in this phase since the last reset.
    slices: usize,
}

/// A running predictor: push frames, get probabilities.
pub struct Stream {
    engine: Box<dyn Engine>,
    mode: Mode,
    /// Model input height, width, frames per slice and slices per window.
    height: usize,
    width: usize,
    channels: usize,
    window: usize,
    /// The last `channels` frames (model-size), oldest first after rotation; `frames`
    /// counts frames since the last reset.
    recent: Vec<Vec<u8>>,
    frames: usize,
    slice: Vec<f32>,
    active: Vec<Slot>,
    phases: Vec<Phase>,
}

impl Stream {
    /// A stream over `engine`'s model, allocating the slots the mode needs
    /// (exact: phases x slices per window; continuous: one per phase).
    pub fn new(mut engine: Box<dyn Engine>, mode: Mode) -> Result<Self> {
        let inp = engine.model().input;
        let per_phase = match mode {
            Mode::Exact => inp.slices,
            Mode::Continuous => 1,
        };
        let mut phases = Vec::with_capacity(inp.channels);
        for _ in 0..inp.channels {
            let slots: Vec<Slot> = engine.alloc_states(per_phase)?.collect();
            phases.push(Phase { slots, slices: 0 });
        }
        Ok(Stream {
            engine,
            mode,
            height: inp.height,
            width: inp.width,
            channels: inp.channels,
            window: inp.slices,
            recent: vec![vec![0; inp.height * inp.width]; inp.channels],
            frames: 0,
            slice: vec![0.0; inp.height * inp.width * inp.channels],
            active: Vec::with_capacity(inp.slices),
            phases,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Frames pushed since the last reset.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The first frame (counted from the last reset) that gets a probability: 119 for
    /// the study's 30 slices of 4 frames.
    pub fn first_frame(&self) -> usize {
        self.window * self.channels - 1
    }

    /// Starts over, as after a gap in the stream: the next frame is frame 0 of a new
    /// sequence and no window spans the gap.
    pub fn reset(&mut self) {
        self.frames = 0;
        for p in &mut self.phases {
            p.slices = 0;
        }
    }

    /// Prepares the step the next frame will make ([`Engine::prepare`]), so that it costs
    /// less once the frame arrives: for a live camera, call it while waiting for a frame.
    /// Continuous mode only (exact mode's steps are batches of 30 windows); otherwise, and
    /// before the first window, it does nothing.
    pub fn prepare(&mut self) -> Result<()> {
        let c = self.channels;
        if self.mode != Mode::Continuous || self.frames + 1 < c {
            return Ok(());
        }
        let phase = &self.phases[(self.frames + 1 - c) % c];
        // A phase's first slice starts from zero: nothing to prepare.
        if phase.slices == 0 {
            return Ok(());
        }
        self.engine.prepare(phase.slots[0])
    }

    /// Feeds the next frame: `height x width` of the model input (120x160), or exactly
    /// twice that in both axes (the camera's 240x320), which is downscaled as the study
    /// did (PIL nearest: `small[y][x] = full[2y+1][2x+1]`). Returns p for this frame once
    /// a whole window has been seen (119 frames after the last reset), else `None`.
    pub fn push_frame(&mut self, pixels: &[u8]) -> Result<Option<f32>> {
        let (h, w) = (self.height, self.width);
        // The oldest of the recent frames is overwritten by this one.
        let mut frame = std::mem::take(&mut self.recent[0]);
        if pixels.len() == h * w {
            frame.copy_from_slice(pixels);
        } else if pixels.len() == 4 * h * w {
            frame::halve_to(pixels, 2 * w, &mut frame);
        } else {
            self.recent[0] = frame;
            return Err(Error::Input(format!(
                "frame of {} pixels; expected {w}x{h} or {}x{}",
                pixels.len(),
                2 * w,
                2 * h
            )));
        }
        self.recent.rotate_left(1);
        let last = self.recent.len() - 1;
        self.recent[last] = frame;
        let t = self.frames;
        self.frames += 1;
        if t + 1 < self.channels {
            return Ok(None);
        }
        // Slice channel j = frame t - channels + 1 + j, as value / 255 in f32 (what the
        // study's `img_to_array(...) / 255.` computes).
        let c = self.channels;
        frame::fill_slice(
            &self.recent,
            h,
            w,
            frame::Flip::default(),
            |v| v as f32 / 255.0,
            &mut self.slice,
        );
        let phase = &mut self.phases[(t + 1 - c) % c];
        let k = phase.slices;
        phase.slices += 1;
        let n = self.window;
        let done = match self.mode {
            Mode::Exact => {
                // The window starting now takes the slot freed by the one that finished at
                // the previous slice; the windows in flight started at slices
                // max(0, k+1-n) ..= k.
                self.engine.reset(phase.slots[k % n]);
                self.active.clear();
                for s in (k + 1).saturating_sub(n)..=k {
                    self.active.push(phase.slots[s % n]);
                }
                (k + 1 >= n).then(|| phase.slots[(k + 1) % n])
            }
            Mode::Continuous => {
                if k == 0 {
                    self.engine.reset(phase.slots[0]);
                }
                self.active.clear();
                self.active.push(phase.slots[0]);
                (k + 1 >= n).then_some(phase.slots[0])
            }
        };
        self.engine.step_and_head(&self.slice, &self.active, done)
    }
}

/// Runs a whole sequence of frames (model-size or twice that) through a fresh stream;
/// returns one probability per frame, NaN before the first full window.
pub fn predict_frames(
    engine: Box<dyn Engine>,
    mode: Mode,
    frames: impl IntoIterator<Item = impl AsRef<[u8]>>,
) -> Result<Vec<f32>> {
    let mut stream = Stream::new(engine, mode)?;
    let mut out = Vec::new();
    for f in frames {
        out.push(stream.push_frame(f.as_ref())?.unwrap_or(f32::NAN));
    }
    Ok(out)
}
