//! The network: its architecture and weights in memory ([`Model`]), how they are stored
//! (safetensors with the spec as JSON metadata) and how the study's Keras SavedModels are
//! imported. Nothing here runs the network; that is the engines' job.
//!
//! Semantics (DESIGN §1, Keras 2.3): each [`Stage`] is a ConvLSTM2D layer, 3x3 kernels,
//! no bias, `z = conv3x3_valid(x, kernel) + conv3x3_same(h, recurrent)`, gates split along
//! channels as `[i | f | g | o]`, `i, f, o = hard_sigmoid(.)`, `g = tanh(.)`,
//! `c = f*c + i*g`, `h = o*tanh(c)`, h and c zero at the start of every window. After each
//! step the stage's output is `norm(pool(h))` (both optional); the next stage consumes that
//! sequence. The last stage's final output goes through a global max over the map, then
//! [`Dense`] and a sigmoid.

use serde::{Deserialize, Serialize};

/// Shape of one model input window: `slices` time steps of `height` x `width` x `channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// Time steps per window (the study: 30 slices).
    pub slices: usize,
    pub height: usize,
    pub width: usize,
    /// Consecutive frames stacked per slice (the study's "time channels": 4).
    pub channels: usize,
}

/// The study's input: 30 slices of 4 frames at 120x160 (DESIGN §1).
pub const STUDY_INPUT: InputShape = InputShape {
    slices: 30,
    height: 120,
    width: 160,
    channels: 4,
};

/// One ConvLSTM2D layer. Kernels are HWIO, `[3][3][in][4F]`, gate order i, f, g, o.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLstm {
    pub filters: usize,
    pub in_channels: usize,
    /// Input kernel, `3*3*in_channels*4*filters` values.
    pub kernel: Vec<f32>,
    /// Recurrent kernel, `3*3*filters*4*filters` values.
    pub recurrent: Vec<f32>,
}

/// Inference-mode batch normalisation: `(x - mean) / sqrt(variance + epsilon) * gamma + beta`,
/// where a missing gamma is 1 and a missing beta is 0 (Keras `scale=False`, `center=False`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
    pub epsilon: f32,
    pub gamma: Option<Vec<f32>>,
    pub beta: Option<Vec<f32>>,
}

/// The classifier: `sigmoid(weights . features + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub weights: Vec<f32>,
    pub bias: f32,
}

/// A ConvLSTM layer and what follows each of its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub lstm: ConvLstm,
    /// MaxPool 2x2 (stride 2, valid) after every step.
    pub pool: bool,
    /// Batch normalisation after the (optional) pool.
    pub norm: Option<BatchNorm>,
}

/// A whole network, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// A name for logs and reports (the study's run name, or the file stem).
    pub name: String,
    pub input: InputShape,
    pub stages: Vec<Stage>,
    pub head: Dense,
}

impl Model {
    /// Map size `(height, width)` of each stage's hidden state: a valid 3x3 convolution
    /// trims one pixel on each side, a pool halves (floor).
    pub fn stage_maps(&self) -> Vec<(usize, usize)> {
        let (mut h, mut w) = (self.input.height, self.input.width);
        let mut maps = Vec::with_capacity(self.stages.len());
        for s in &self.stages {
            h -= 2;
            w -= 2;
            maps.push((h, w));
            if s.pool {
                h /= 2;
                w /= 2;
            }
        }
        maps
    }

    /// Multiply-adds of one time step through every stage (input and recurrent
    /// convolutions), the figure benchmarks turn into GFLOP/s.
    pub fn macs_per_step(&self) -> u64 {
        self.stages
            .iter()
            .zip(self.stage_maps())
            .map(|(s, (h, w))| {
                let f = s.lstm.filters as u64;
                (h * w) as u64 * 9 * 4 * f * (s.lstm.in_channels as u64 + f)
            })
            .sum()
    }
}
