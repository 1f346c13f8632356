//! Training data: videos turned into model-size frames, y~ and the study's labels, and the
//! chains (continuous states over stretches of video, with a phase and a flip) that an
//! epoch runs.

use super::real::Real;
use crate::frame::{self, Flip};
use crate::io::Frames;
use crate::model::InputShape;
use crate::rng::SplitMix;
use crate::speed::{baseline, label_bursts, speed_proxy_series, STUDY_BASELINE, STUDY_LABELS};
use crate::{Error, Result};

/// One video, ready to train or validate on.
#[derive(Debug, Clone)]
pub struct Clip {
    pub name: String,
    /// Model-size frames (120x160), `len() * height * width` bytes.
    frames: Vec<u8>,
    height: usize,
    width: usize,
    /// The speed proxy of the camera-size frames and the study's labels (DESIGN §1).
    pub ytilde: Vec<f64>,
    pub labels: Vec<bool>,
}

impl Clip {
    /// A clip from camera-size frames (240x320: y~ and the labels come from them, the model
    /// sees them halved as the study did). Decoding videos is the caller's (`train` reads
    /// them as `run` does, with its crop and preprocessing).
    pub fn from_frames(name: &str, full: &Frames, input: InputShape) -> Result<Clip> {
        let need = input.slices * input.channels + STUDY_LABELS.h + 2;
        if full.count < need {
            return Err(Error::Input(format!(
                "{name}: {} frames; expected at least {need} (one window and the labels' look-ahead)",
                full.count
            )));
        }
        if (full.height, full.width) != (2 * input.height, 2 * input.width) {
            return Err(Error::Input(format!(
                "{name}: frames of {}x{}; the model takes {}x{}, expected twice that",
                full.height, full.width, input.height, input.width
            )));
        }
        let ytilde = speed_proxy_series(full);
        let labels = label_bursts(&ytilde, &STUDY_LABELS);
        Ok(Clip {
            name: name.to_owned(),
            frames: full.downscale_half().data,
            height: input.height,
            width: input.width,
            ytilde,
            labels,
        })
    }

    pub fn len(&self) -> usize {
        self.ytilde.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ytilde.is_empty()
    }

    /// Model-size frame `t`.
    pub fn frame(&self, t: usize) -> &[u8] {
        let n = self.height * self.width;
        &self.frames[t * n..(t + 1) * n]
    }

    /// Whether frame t has a label: `[4n-1, T-2-h]` (later frames' futures are unseen).
    pub fn labelled(&self, t: usize) -> bool {
        let first = 4 * STUDY_LABELS.n - 1;
        t >= first && t + 2 + STUDY_LABELS.h <= self.len()
    }

    /// Share of positive labels among the labelled frames.
    pub fn positive_rate(&self) -> f64 {
        let (mut pos, mut n) = (0usize, 0usize);
        for t in (0..self.len()).filter(|&t| self.labelled(t)) {
            n += 1;
            pos += self.labels[t] as usize;
        }
        pos as f64 / n.max(1) as f64
    }

    /// The baseline's probabilities for every frame (DESIGN §1).
    pub fn baseline(&self) -> Vec<f64> {
        baseline(&self.ytilde, &STUDY_BASELINE)
    }

    /// Writes the model input of the slice that frame `t` completes (frames t-3 ..= t),
    /// flipped as asked: `out[(y * width + x) * channels + j]`, value / 255.
    pub fn fill_slice<T: Real>(&self, t: usize, channels: usize, flip: Flip, out: &mut [T]) {
        let scale = T::from_f64(1.0 / 255.0);
        let frames: Vec<&[u8]> = (0..channels)
            .map(|j| self.frame(t + 1 + j - channels))
            .collect();
        frame::fill_slice(
            &frames,
            self.height,
            self.width,
            flip,
            |v| T::from_f64(v as f64) * scale,
            out,
        );
    }
}

/// One of the four mirror images (none, horizontal, vertical, both), uniformly.
pub fn random_flip(rng: &mut SplitMix) -> Flip {
    let r = rng.next_u64() >> 62;
    Flip {
        horizontal: r & 1 == 1,
        vertical: r & 2 == 2,
    }
}

/// A continuous state run over frames `start .. end` of a clip: it steps at every slice
/// of its phase (the slice completing at frame `start + channels - 1 + phase + channels
/// * j`), exactly as a [`crate::engine::Stream`] restarted at `start` steps that phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub clip: usize,
    pub start: usize,
    pub end: usize,
    pub phase: usize,
    pub flip: Flip,
}

impl Chain {
    /// The frame whose slice step `j` consumes (and whose probability it gives).
    pub fn frame_of(&self, j: usize, channels: usize) -> usize {
        self.start + channels - 1 + self.phase + channels * j
    }

    /// Steps in the chain.
    pub fn steps(&self, channels: usize) -> usize {
        let first = self.start + channels - 1 + self.phase;
        if first >= self.end {
            0
        } else {
            (self.end - 1 - first) / channels + 1
        }
    }
}

/// An epoch's chains: every clip cut into stretches of about `segment` frames (the cut
/// points shifted at random each epoch), each run at `phases` random phases with a random
/// flip, in random order.
pub fn epoch_chains(
    clips: &[Clip],
    segment: usize,
    phases: usize,
    channels: usize,
    rng: &mut SplitMix,
) -> Vec<Chain> {
    let mut chains = Vec::new();
    for (ci, clip) in clips.iter().enumerate() {
        let n = clip.len();
        let parts = (n / segment).max(1);
        let len = n / parts;
        // Shift the cuts by up to half a segment so that chunk boundaries move between
        // epochs; the first stretch absorbs the shift.
        let shift = (rng.next_u64() % (len as u64 / 2 + 1)) as usize;
        let mut cuts: Vec<usize> = (1..parts).map(|p| p * len - shift).collect();
        cuts.insert(0, 0);
        cuts.push(n);
        for w in cuts.windows(2) {
            let mut order: Vec<usize> = (0..channels).collect();
            shuffle(&mut order, rng);
            for &phase in order.iter().take(phases.min(channels)) {
                chains.push(Chain {
                    clip: ci,
                    start: w[0],
                    end: w[1],
                    phase,
                    flip: random_flip(rng),
                });
            }
        }
    }
    shuffle(&mut chains, rng);
    chains
}

/// Fisher-Yates.
pub fn shuffle<X>(v: &mut [X], rng: &mut SplitMix) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

impl Clip {
    /// Splits off the frames from `at` on as a clip of their own (a validation clip held
    /// out of a training video). Both parts' labels are recomputed on their own y~, so
    /// neither sees the other's frames.
    pub fn split_off(&mut self, at: usize) -> Clip {
        let n = self.height * self.width;
        let mut tail_y = self.ytilde.split_off(at);
        let tail_frames = self.frames.split_off(at * n);
        if let Some(last) = self.ytilde.last_mut() {
            *last = 0.0;
        }
        self.labels = label_bursts(&self.ytilde, &STUDY_LABELS);
        if let Some(last) = tail_y.last_mut() {
            *last = 0.0;
        }
        let labels = label_bursts(&tail_y, &STUDY_LABELS);
        Clip {
            name: format!("{} (from frame {at})", self.name),
            frames: tail_frames,
            height: self.height,
            width: self.width,
            ytilde: tail_y,
            labels,
        }
    }
}
