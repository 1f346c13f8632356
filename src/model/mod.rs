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
//!
//! Files: [`weights`] stores a model as safetensors; [`keras`] imports a Keras SavedModel
//! directory, reading its checkpoint through [`bundle`] (TensorFlow's tensor-bundle format)
//! and [`table`] (LevelDB tables), and its metadata through the messages of [`proto`].
//! [`load`] picks the right one for a path.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix;
use crate::{Error, Result};

pub mod bundle;
pub mod default;
pub mod keras;
pub mod proto;
pub mod table;
pub mod weights;

/// Largest input height, width, slice count or channel count accepted from a file.
pub const MAX_DIM: usize = 1 << 16;
/// Most filters accepted for one ConvLSTM layer from a file.
pub const MAX_FILTERS: usize = 4096;
/// Most stages accepted from a file.
pub const MAX_STAGES: usize = 64;

/// Loads a model: a directory is imported as a Keras SavedModel ([`keras::import`]), a
/// `.npz` file as the study's `*.reference-weights.npz` (for cross-checks), any other file
/// is read as burstwatch safetensors ([`weights::load`]). Either way the model is validated.
pub fn load(path: &Path) -> Result<Model> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        keras::import(path)
    } else if path.extension().is_some_and(|e| e == "npz") {
        Model::from_reference_npz(path)
    } else {
        weights::load(path)
    }
}

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
    /// Alert thresholds calibrated for this model's scores, carried by a trained model file:
    /// a retrained network is calibrated differently from the study's, so the study's
    /// thresholds would not fit it. `None`: `run` uses the study's.
    pub thresholds: Option<AlertThresholds>,
    /// Free-text provenance (how and on what the weights were trained), for `inspect`.
    pub trained: Option<String>,
}

/// Youden-optimal alert thresholds of a model's own score and of its mean with the
/// baseline (the baseline's threshold does not depend on the model).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertThresholds {
    /// Threshold of the model's probability alone.
    pub model: f64,
    /// Threshold of the fused score, (model + baseline) / 2.
    pub fused: f64,
}

impl AlertThresholds {
    /// Both thresholds must be probabilities strictly between 0 and 1: a threshold of 0 or
    /// 1 would alert on every frame or never.
    pub fn validate(&self) -> Result<(), String> {
        for (what, v) in [("model", self.model), ("fused", self.fused)] {
            if !(v > 0.0 && v < 1.0) {
                return Err(format!(
                    "alert threshold {what} {v}; expected a probability strictly between 0 and 1"
                ));
            }
        }
        Ok(())
    }
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

    /// Multiply-adds of stage `k`'s input and recurrent convolutions for one step.
    pub fn stage_macs(&self, k: usize) -> (u64, u64) {
        let (h, w) = self.stage_maps()[k];
        let l = &self.stages[k].lstm;
        let per_in = (h * w) as u64 * 9 * 4 * l.filters as u64;
        (per_in * l.in_channels as u64, per_in * l.filters as u64)
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

impl Model {
    /// Number of stored parameters (kernels, batch-norm statistics and scales, dense weights
    /// and bias).
    pub fn parameter_count(&self) -> usize {
        let norm = |n: &BatchNorm| {
            n.mean.len()
                + n.variance.len()
                + n.gamma.as_ref().map_or(0, Vec::len)
                + n.beta.as_ref().map_or(0, Vec::len)
        };
        self.stages
            .iter()
            .map(|s| s.lstm.kernel.len() + s.lstm.recurrent.len() + s.norm.as_ref().map_or(0, norm))
            .sum::<usize>()
            + self.head.weights.len()
            + 1
    }

    /// Checks that the model can run: sane input shape, channels chaining from stage to
    /// stage, every weight vector of the length its layer implies, maps that stay non-empty
    /// through every convolution and pool, finite weights and positive batch-norm variance.
    /// The message says what is wrong, in the model's terms.
    pub fn validate(&self) -> Result<(), String> {
        let i = &self.input;
        for (what, v) in [
            ("slices", i.slices),
            ("height", i.height),
            ("width", i.width),
            ("channels", i.channels),
        ] {
            if v == 0 || v > MAX_DIM {
                return Err(format!("input {what} {v}; expected 1 to {MAX_DIM}"));
            }
        }
        if self.stages.is_empty() || self.stages.len() > MAX_STAGES {
            return Err(format!(
                "{} ConvLSTM stages; expected 1 to {MAX_STAGES}",
                self.stages.len()
            ));
        }
        let (mut h, mut w, mut channels) = (i.height, i.width, i.channels);
        for (k, s) in self.stages.iter().enumerate() {
            let l = &s.lstm;
            if l.filters == 0 || l.filters > MAX_FILTERS {
                return Err(format!(
                    "stage {k}: {} filters; expected 1 to {MAX_FILTERS}",
                    l.filters
                ));
            }
            if l.in_channels != channels {
                return Err(format!(
                    "stage {k}: {} input channels, but its input has {channels}",
                    l.in_channels
                ));
            }
            let f = l.filters;
            check_len(
                k,
                "input kernel",
                &l.kernel,
                (9 * 4 * f).saturating_mul(channels),
            )?;
            check_len(k, "recurrent kernel", &l.recurrent, 9 * 4 * f * f)?;
            if h < 3 || w < 3 {
                return Err(format!(
                    "stage {k}: input map {h}x{w} is smaller than its 3x3 kernel"
                ));
            }
            h -= 2;
            w -= 2;
            if s.pool {
                if h < 2 || w < 2 {
                    return Err(format!(
                        "stage {k}: 2x2 pool of a {h}x{w} map leaves nothing"
                    ));
                }
                h /= 2;
                w /= 2;
            }
            if let Some(n) = &s.norm {
                check_len(k, "norm mean", &n.mean, f)?;
                check_len(k, "norm variance", &n.variance, f)?;
                if let Some(g) = &n.gamma {
                    check_len(k, "norm gamma", g, f)?;
                }
                if let Some(b) = &n.beta {
                    check_len(k, "norm beta", b, f)?;
                }
                if !n.epsilon.is_finite() || n.epsilon < 0.0 {
                    return Err(format!(
                        "stage {k}: norm epsilon {}; expected a finite value >= 0",
                        n.epsilon
                    ));
                }
                if let Some(c) = n
                    .variance
                    .iter()
                    .position(|&v| !(v >= 0.0 && v + n.epsilon > 0.0))
                {
                    return Err(format!(
                        "stage {k}: norm variance {} in channel {c}; expected variance >= 0 and variance + epsilon > 0",
                        n.variance[c]
                    ));
                }
            }
            channels = f;
        }
        if self.head.weights.len() != channels {
            return Err(format!(
                "dense head has {} weights; expected one per feature of the last stage ({channels})",
                self.head.weights.len()
            ));
        }
        if let Some(t) = &self.thresholds {
            t.validate()?;
        }
        for (name, values) in self.named_tensors() {
            if let Some(at) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "{name} holds {} at index {at}; expected finite weights",
                    values[at]
                ));
            }
        }
        Ok(())
    }

    /// [`Model::validate`] as a library error naming the model, for engines that are
    /// handed a model built in code.
    pub fn check(&self) -> crate::Result<()> {
        self.validate()
            .map_err(|e| crate::Error::Model(format!("model {}: {e}", self.name)))
    }

    /// Every weight vector with a name for messages (the names of [`weights`]' tensors).
    /// SHA-256 of the weights, in hex: every tensor of [`Model::named_tensors`] in order,
    /// its name, a NUL, then its values as little-endian f32. The same weights give the
    /// same digest whatever file (SavedModel or safetensors) they were read from.
    pub fn weights_sha256(&self) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for (name, values) in self.named_tensors() {
            hash.update(name.as_bytes());
            hash.update([0u8]);
            for v in values {
                hash.update(v.to_le_bytes());
            }
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn named_tensors(&self) -> Vec<(String, &[f32])> {
        let mut out: Vec<(String, &[f32])> = Vec::new();
        for (k, s) in self.stages.iter().enumerate() {
            out.push((format!("stage{k}.kernel"), &s.lstm.kernel));
            out.push((format!("stage{k}.recurrent"), &s.lstm.recurrent));
            if let Some(n) = &s.norm {
                out.push((format!("stage{k}.norm.mean"), &n.mean));
                out.push((format!("stage{k}.norm.variance"), &n.variance));
                if let Some(g) = &n.gamma {
                    out.push((format!("stage{k}.norm.gamma"), g));
                }
                if let Some(b) = &n.beta {
                    out.push((format!("stage{k}.norm.beta"), b));
                }
            }
        }
        out.push(("head.weights".into(), &self.head.weights));
        out.push(("head.bias".into(), std::slice::from_ref(&self.head.bias)));
        out
    }
}

/// Checks one weight vector's length (`expected` is small: filters and channels are
/// bounded before this is called).
fn check_len(stage: usize, what: &str, v: &[f32], expected: usize) -> Result<(), String> {
    if v.len() == expected {
        Ok(())
    } else {
        Err(format!(
            "stage {stage}: {what} has {} values; expected {expected}",
            v.len()
        ))
    }
}

mod reference;

/// What [`Model::random`] builds per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageSpec {
    pub filters: usize,
    pub pool: bool,
    pub norm: bool,
}

/// The study models' architectures (DESIGN §1), by run name.
pub const STUDY_ARCHITECTURES: [(&str, &[StageSpec]); 2] = [
    (
        "upbeat-snowflake-91",
        &[StageSpec {
            filters: 16,
            pool: false,
            norm: true,
        }],
    ),
    (
        "visionary-serenity",
        &[
            StageSpec {
                filters: 16,
                pool: true,
                norm: true,
            },
            StageSpec {
                filters: 32,
                pool: false,
                norm: false,
            },
        ],
    ),
];

impl Model {
    /// A model of the given architecture with random weights (Glorot-uniform kernels,
    /// batch norms with small means and variances near the study's), for tests and for
    /// benchmarks run without the study's weight files.
    pub fn random(name: &str, input: InputShape, specs: &[StageSpec], seed: u64) -> Model {
        let mut rng = SplitMix(seed);
        let mut cin = input.channels;
        let mut stages = Vec::with_capacity(specs.len());
        for s in specs {
            let f = s.filters;
            let glorot = |fan_in: usize| (6.0 / (fan_in + 4 * f) as f32).sqrt();
            let lstm = ConvLstm {
                filters: f,
                in_channels: cin,
                kernel: rng.vec(9 * cin * 4 * f, glorot(9 * cin)),
                recurrent: rng.vec(9 * f * 4 * f, glorot(9 * f)),
            };
            let norm = s.norm.then(|| BatchNorm {
                mean: rng.vec(f, 0.05),
                variance: (0..f).map(|_| rng.uniform(0.02, 0.2)).collect(),
                epsilon: 0.001,
                gamma: None,
                beta: None,
            });
            stages.push(Stage {
                lstm,
                pool: s.pool,
                norm,
            });
            cin = f;
        }
        Model {
            name: name.to_owned(),
            input,
            stages,
            head: Dense {
                weights: rng.vec(cin, 0.5),
                bias: rng.uniform(-0.1, 0.1),
            },
            thresholds: None,
            trained: None,
        }
    }

    /// One of the study models with random weights (see [`STUDY_ARCHITECTURES`]).
    pub fn random_study(name: &str, seed: u64) -> Option<Model> {
        STUDY_ARCHITECTURES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, specs)| Model::random(n, STUDY_INPUT, specs, seed))
    }
}

impl Dense {
    /// The logit `bias + sum_k features[k] * weights[k]`, accumulated in f64 in feature
    /// order so that it adds no rounding of its own; the engines take its sigmoid.
    pub fn logit(&self, features: impl IntoIterator<Item = f32>) -> f64 {
        self.bias as f64
            + features
                .into_iter()
                .zip(&self.weights)
                .map(|(x, &w)| x as f64 * w as f64)
                .sum::<f64>()
    }
}

impl BatchNorm {
    /// Per channel `(scale, shift)` with `norm(x) = x * scale + shift`, the form Keras'
    /// inference path computes (`nn.batch_normalization`): scale = gamma / sqrt(var + eps),
    /// shift = beta - mean * scale.
    pub fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.mean.len();
        let mut scale = Vec::with_capacity(n);
        let mut shift = Vec::with_capacity(n);
        for k in 0..n {
            let g = self.gamma.as_ref().map_or(1.0, |g| g[k]);
            let b = self.beta.as_ref().map_or(0.0, |b| b[k]);
            let s = g / (self.variance[k] + self.epsilon).sqrt();
            scale.push(s);
            shift.push(b - self.mean[k] * s);
        }
        (scale, shift)
    }
}
