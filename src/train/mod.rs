//! Self-supervised training of the ConvLSTM on a lab's own footage (issue 7): frames ->
//! y~ -> the study's labels -> class-weighted cross-entropy, Adam, flip augmentation,
//! continuous-state truncated back-propagation through time with a hand-written backward
//! pass ([`net`]), checked against finite differences in float64.
//!
//! The scheme: a chain is one continuous state (DESIGN §2) run over a stretch of video,
//! one step per slice of its phase; it is cut into chunks of 30 steps, and every step's
//! output is a labelled sample. The state flows from chunk to chunk, the gradient stops at
//! chunk boundaries. This trains the model the way `run` uses it (continuous mode), 30
//! samples for the price of ~30 steps instead of one sample per 30-step window.

pub mod adam;
pub mod bench;
pub mod data;
pub mod fit;
pub mod net;
pub mod real;

use crate::model::{BatchNorm, ConvLstm, Dense, InputShape, Model, Stage};
use crate::rng::SplitMix;
use net::{Norm, Shape};
use real::Real;

/// Batch-norm epsilon of the study's models (Keras' default).
const EPSILON: f32 = 0.001;

/// A trainable network: its shape, flat parameters (stacked kernel, dense weights, dense
/// bias; see [`net::Shape`]) and the fixed batch norm.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    pub name: String,
    pub input: InputShape,
    pub shape: Shape,
    pub params: Vec<f32>,
    /// The fixed batch norm: `(h - mean) / sqrt(variance + epsilon)`.
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
    pub epsilon: f32,
}

impl Net {
    /// A network of upbeat-snowflake-91's architecture with fresh weights, initialised as
    /// Keras does (Glorot-uniform kernels and dense weights, zero dense bias) and an identity
    /// batch norm.
    pub fn fresh(name: &str, input: InputShape, filters: usize, seed: u64) -> Net {
        let shape = Shape {
            height: input.height,
            width: input.width,
            channels: input.channels,
            filters,
        };
        let mut rng = SplitMix(seed);
        let g = 4 * filters;
        let glorot = |fan_in: usize, fan_out: usize| (6.0 / (fan_in + fan_out) as f32).sqrt();
        let mut params = rng.vec(9 * input.channels * g, glorot(9 * input.channels, 9 * g));
        params.extend(rng.vec(9 * filters * g, glorot(9 * filters, 9 * g)));
        params.extend(rng.vec(filters, glorot(filters, 1)));
        params.push(0.0);
        Net {
            name: name.to_owned(),
            input,
            shape,
            params,
            mean: vec![0.0; filters],
            variance: vec![1.0 - EPSILON; filters],
            epsilon: EPSILON,
        }
    }

    /// The trainable form of `model`, which must have upbeat-snowflake-91's architecture
    /// (one ConvLSTM stage, no pool, an optional batch norm without scale or centre). The
    /// message says what does not fit.
    pub fn from_model(model: &Model) -> Result<Net, String> {
        let [stage] = model.stages.as_slice() else {
            return Err(format!(
                "model {} has {} ConvLSTM stages; training supports one (upbeat-snowflake-91's architecture)",
                model.name,
                model.stages.len()
            ));
        };
        if stage.pool {
            return Err(format!(
                "model {} pools after its ConvLSTM; training supports upbeat-snowflake-91's architecture (no pool)",
                model.name
            ));
        }
        let f = stage.lstm.filters;
        let (mean, variance, epsilon) = match &stage.norm {
            None => (vec![0.0; f], vec![1.0 - EPSILON; f], EPSILON),
            Some(n) if n.gamma.is_none() && n.beta.is_none() => {
                (n.mean.clone(), n.variance.clone(), n.epsilon)
            }
            Some(_) => {
                return Err(format!(
                    "model {}'s batch norm has a scale or centre; training supports one without (as the study's)",
                    model.name
                ))
            }
        };
        let mut params = stage.lstm.kernel.clone();
        params.extend_from_slice(&stage.lstm.recurrent);
        params.extend_from_slice(&model.head.weights);
        params.push(model.head.bias);
        Ok(Net {
            name: model.name.clone(),
            input: model.input,
            shape: Shape {
                height: model.input.height,
                width: model.input.width,
                channels: model.input.channels,
                filters: f,
            },
            params,
            mean,
            variance,
            epsilon,
        })
    }

    /// The batch norm in the form the trainer computes with.
    pub fn norm<T: Real>(&self) -> Norm<T> {
        Norm {
            mean: self.mean.iter().map(|&m| T::from_f64(m as f64)).collect(),
            inv_std: self
                .variance
                .iter()
                .map(|&v| T::from_f64(1.0 / (v as f64 + self.epsilon as f64).sqrt()))
                .collect(),
        }
    }

    /// The network as a [`Model`] the engines run (and [`crate::model::weights`] saves).
    pub fn to_model(&self) -> Model {
        let sh = &self.shape;
        let g = 4 * sh.filters;
        let split = 9 * sh.channels * g;
        let at = sh.dense_at();
        Model {
            name: self.name.clone(),
            input: self.input,
            stages: vec![Stage {
                lstm: ConvLstm {
                    filters: sh.filters,
                    in_channels: sh.channels,
                    kernel: self.params[..split].to_vec(),
                    recurrent: self.params[split..at].to_vec(),
                },
                pool: false,
                norm: Some(BatchNorm {
                    mean: self.mean.clone(),
                    variance: self.variance.clone(),
                    epsilon: self.epsilon,
                    gamma: None,
                    beta: None,
                }),
            }],
            head: Dense {
                weights: self.params[at..at + sh.filters].to_vec(),
                bias: self.params[at + sh.filters],
            },
            thresholds: None,
            trained: None,
        }
    }
}
