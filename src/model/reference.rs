//! Building a [`Model`] from the study's `*.reference-weights.npz` files: the weights as
//! TensorFlow's checkpoint reader returns them, keyed by checkpoint name. These files exist
//! to cross-check the real Keras importer, and they let the engines be tested against the
//! TensorFlow golden outputs before that importer exists. The architecture is recognised
//! from the set of keys (only the two study models are known); nothing here reads a
//! SavedModel.

use std::collections::BTreeMap;
use std::path::Path;

use crate::io::npy::{self, NpyArray};
use crate::model::{BatchNorm, ConvLstm, Dense, Model, Stage, STUDY_INPUT};
use crate::{Error, Result};

/// Keras' default BatchNormalization epsilon; both study models use it (their configs in
/// saved_model.pb say `epsilon: 0.001`), and the golden outputs agree to 1e-7.
const KERAS_BN_EPSILON: f32 = 0.001;

/// The keys of `upbeat-snowflake-91`: ConvLSTM(16) -> BN -> global max -> Dense.
const UPBEAT_KEYS: [&str; 6] = [
    "trainable_variables/0",
    "trainable_variables/1",
    "layer_with_weights-1/moving_mean",
    "layer_with_weights-1/moving_variance",
    "layer_with_weights-2/kernel",
    "layer_with_weights-2/bias",
];

/// The keys of `visionary-serenity`: ConvLSTM(16) -> per step pool + BN -> ConvLSTM(32)
/// -> global max -> Dense.
const VISIONARY_KEYS: [&str; 8] = [
    "variables/0",
    "variables/1",
    "variables/2",
    "variables/3",
    "variables/4",
    "variables/5",
    "layer_with_weights-3/kernel",
    "layer_with_weights-3/bias",
];

/// The arrays of one file, taken out by name with their shapes checked.
struct Arrays<'a> {
    path: &'a Path,
    map: BTreeMap<String, NpyArray>,
}

impl Arrays<'_> {
    fn has_exactly(&self, keys: &[&str]) -> bool {
        self.map.len() == keys.len() && keys.iter().all(|k| self.map.contains_key(*k))
    }

    /// The array `key` as f32, which must have shape `shape` and only finite values.
    fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let a = self
            .map
            .remove(key)
            .ok_or_else(|| Error::bad_input(self.path, format!("no array {key}")))?;
        if a.shape != shape {
            return Err(Error::bad_input(
                self.path,
                format!("{key} has shape {:?}; expected {shape:?}", a.shape),
            ));
        }
        let v = a.to_f32();
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::bad_input(
                self.path,
                format!("{key}[{i}] is {}; expected finite weights", v[i]),
            ));
        }
        Ok(v)
    }

    fn norm(&mut self, mean: &str, variance: &str, channels: usize) -> Result<BatchNorm> {
        let mean = self.take(mean, &[channels])?;
        let var_key = variance;
        let variance = self.take(variance, &[channels])?;
        if let Some(i) = variance.iter().position(|&v| v + KERAS_BN_EPSILON <= 0.0) {
            return Err(Error::bad_input(
                self.path,
                format!("{var_key}[{i}] is {}; expected a variance", variance[i]),
            ));
        }
        Ok(BatchNorm {
            mean,
            variance,
            epsilon: KERAS_BN_EPSILON,
            gamma: None,
            beta: None,
        })
    }

    fn lstm(
        &mut self,
        kernel: &str,
        recurrent: &str,
        cin: usize,
        filters: usize,
    ) -> Result<ConvLstm> {
        Ok(ConvLstm {
            filters,
            in_channels: cin,
            kernel: self.take(kernel, &[3, 3, cin, 4 * filters])?,
            recurrent: self.take(recurrent, &[3, 3, filters, 4 * filters])?,
        })
    }

    fn dense(&mut self, kernel: &str, bias: &str, features: usize) -> Result<Dense> {
        Ok(Dense {
            weights: self.take(kernel, &[features, 1])?,
            bias: self.take(bias, &[1])?[0],
        })
    }
}

impl Model {
    /// Reads one of the study's `<name>.reference-weights.npz` files and builds its model;
    /// the name is the file name without `.reference-weights.npz`.
    pub fn from_reference_npz(path: &Path) -> Result<Model> {
        let map: BTreeMap<String, NpyArray> = npy::read_npz(path)?.into_iter().collect();
        let mut a = Arrays { path, map };
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file
            .trim_end_matches(".npz")
            .trim_end_matches(".reference-weights")
            .to_owned();
        let c = STUDY_INPUT.channels;
        if a.has_exactly(&UPBEAT_KEYS) {
            let lstm = a.lstm("trainable_variables/0", "trainable_variables/1", c, 16)?;
            let norm = a.norm(
                "layer_with_weights-1/moving_mean",
                "layer_with_weights-1/moving_variance",
                16,
            )?;
            let head = a.dense(
                "layer_with_weights-2/kernel",
                "layer_with_weights-2/bias",
                16,
            )?;
            Ok(Model {
                name,
                input: STUDY_INPUT,
                stages: vec![Stage {
                    lstm,
                    pool: false,
                    norm: Some(norm),
                }],
                head,
                thresholds: None,
                trained: None,
            })
        } else if a.has_exactly(&VISIONARY_KEYS) {
            let first = a.lstm("variables/0", "variables/1", c, 16)?;
            // Checkpoint order of a BatchNormalization without scale and centre is
            // moving_mean, moving_variance; variables/3 is the one that is all positive,
            // and this order reproduces the TensorFlow golden outputs.
            let norm = a.norm("variables/2", "variables/3", 16)?;
            let second = a.lstm("variables/4", "variables/5", 16, 32)?;
            let head = a.dense(
                "layer_with_weights-3/kernel",
                "layer_with_weights-3/bias",
                32,
            )?;
            Ok(Model {
                name,
                input: STUDY_INPUT,
                stages: vec![
                    Stage {
                        lstm: first,
                        pool: true,
                        norm: Some(norm),
                    },
                    Stage {
                        lstm: second,
                        pool: false,
                        norm: None,
                    },
                ],
                head,
                thresholds: None,
                trained: None,
            })
        } else {
            let keys: Vec<&str> = a.map.keys().map(String::as_str).collect();
            Err(Error::bad_input(
                path,
                format!(
                    "arrays {keys:?} match no known study model; expected the keys of \
                     upbeat-snowflake-91 or visionary-serenity reference weights"
                ),
            ))
        }
    }
}
