//! burstwatch's own model file: a [safetensors](https://github.com/huggingface/safetensors)
//! file whose `__metadata__` carries the architecture as JSON, so one file is a whole model.
//!
//! Metadata keys:
//! - `burstwatch.format` = [`FORMAT`], `burstwatch.version` = [`VERSION`];
//! - `burstwatch.spec`: `{"name", "input": {slices, height, width, channels},
//!   "stages": [{filters, in_channels, pool, norm: null | {epsilon, scale, center}}],
//!   "head": {features}}`. `epsilon` is the f32 value widened to f64, so it round-trips
//!   bit for bit.
//! - optional `burstwatch.thresholds`: `{"model": p, "fused": p}`, the alert thresholds
//!   calibrated for this model (each strictly between 0 and 1); absent for the study's
//!   imported models, whose thresholds are the study's;
//! - optional `burstwatch.trained`: free text saying how the weights were made.
//!
//! Tensors (all float32, little-endian, C order; the layouts of the Keras originals):
//! - `stage{k}.kernel` `[3, 3, in_channels, 4*filters]` (HWIO, gates i|f|g|o);
//! - `stage{k}.recurrent` `[3, 3, filters, 4*filters]`;
//! - `stage{k}.norm.mean`, `.variance`, and with scale/center `.gamma`, `.beta`: `[filters]`;
//! - `head.weights` `[features, 1]`, `head.bias` `[1]`.
//!
//! Loading validates everything and refuses anything else: a missing or extra tensor, a
//! wrong dtype or shape, a non-finite value (the message names the tensor), a spec whose
//! stages do not chain. It never panics on a damaged file.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::{
    AlertThresholds, BatchNorm, ConvLstm, Dense, InputShape, Model, Stage, MAX_FILTERS, MAX_STAGES,
};
use crate::{Error, Result};

/// Value of the `burstwatch.format` metadata key.
pub const FORMAT: &str = "burstwatch-convlstm";
/// Value of the `burstwatch.version` metadata key this code writes and reads.
pub const VERSION: &str = "1";
const KEY_FORMAT: &str = "burstwatch.format";
const KEY_VERSION: &str = "burstwatch.version";
const KEY_SPEC: &str = "burstwatch.spec";
const KEY_THRESHOLDS: &str = "burstwatch.thresholds";
const KEY_TRAINED: &str = "burstwatch.trained";

/// The architecture, as stored in the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    input: InputShape,
    stages: Vec<StageSpec>,
    head: HeadSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageSpec {
    filters: usize,
    in_channels: usize,
    pool: bool,
    norm: Option<NormSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormSpec {
    epsilon: f64,
    /// Has `gamma`.
    scale: bool,
    /// Has `beta`.
    center: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadSpec {
    features: usize,
}

impl Spec {
    fn of(model: &Model) -> Spec {
        Spec {
            name: model.name.clone(),
            input: model.input,
            stages: model
                .stages
                .iter()
                .map(|s| StageSpec {
                    filters: s.lstm.filters,
                    in_channels: s.lstm.in_channels,
                    pool: s.pool,
                    norm: s.norm.as_ref().map(|n| NormSpec {
                        epsilon: f64::from(n.epsilon),
                        scale: n.gamma.is_some(),
                        center: n.beta.is_some(),
                    }),
                })
                .collect(),
            head: HeadSpec {
                features: model.head.weights.len(),
            },
        }
    }

    /// Every tensor the spec implies, with its shape. Sizes are checked first so that no
    /// shape arithmetic can overflow.
    fn tensors(&self) -> Result<Vec<(String, Vec<usize>)>, String> {
        if self.stages.is_empty() || self.stages.len() > MAX_STAGES {
            return Err(format!(
                "spec has {} stages; expected 1 to {MAX_STAGES}",
                self.stages.len()
            ));
        }
        let mut out = Vec::new();
        for (k, s) in self.stages.iter().enumerate() {
            for (what, v) in [("filters", s.filters), ("in_channels", s.in_channels)] {
                if v == 0 || v > super::MAX_DIM.max(MAX_FILTERS) {
                    return Err(format!("spec stage {k}: {what} {v} out of range"));
                }
            }
            let (f, c) = (s.filters, s.in_channels);
            out.push((format!("stage{k}.kernel"), vec![3, 3, c, 4 * f]));
            out.push((format!("stage{k}.recurrent"), vec![3, 3, f, 4 * f]));
            if let Some(n) = &s.norm {
                out.push((format!("stage{k}.norm.mean"), vec![f]));
                out.push((format!("stage{k}.norm.variance"), vec![f]));
                if n.scale {
                    out.push((format!("stage{k}.norm.gamma"), vec![f]));
                }
                if n.center {
                    out.push((format!("stage{k}.norm.beta"), vec![f]));
                }
            }
        }
        out.push(("head.weights".into(), vec![self.head.features, 1]));
        out.push(("head.bias".into(), vec![1]));
        Ok(out)
    }
}

/// The model as safetensors bytes. The model is validated first.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>, String> {
    model.validate()?;
    let spec = Spec::of(model);
    let shapes: HashMap<String, Vec<usize>> = spec.tensors()?.into_iter().collect();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .named_tensors()
        .into_iter()
        .map(|(name, values)| {
            let shape = shapes.get(&name).cloned().unwrap_or_default();
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| format!("tensor {name}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let spec_json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
    let mut metadata = HashMap::from([
        (KEY_FORMAT.to_string(), FORMAT.to_string()),
        (KEY_VERSION.to_string(), VERSION.to_string()),
        (KEY_SPEC.to_string(), spec_json),
    ]);
    if let Some(t) = &model.thresholds {
        let json = serde_json::to_string(t).map_err(|e| e.to_string())?;
        metadata.insert(KEY_THRESHOLDS.to_string(), json);
    }
    if let Some(t) = &model.trained {
        metadata.insert(KEY_TRAINED.to_string(), t.clone());
    }
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

/// Writes the model to `path` as safetensors: to a temporary file beside it, renamed
/// over `path` once complete, so that a reader (or a crash) never sees half a model.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    let bytes = to_bytes(model)
        .map_err(|e| Error::Model(format!("cannot save model {}: {e}", model.name)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(write_error)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_error(e)
    })
}

/// Reads and validates a model written by [`save`].
pub fn load(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    from_bytes(&bytes).map_err(|e| Error::bad_input(path, e))
}

/// Parses and validates a model from safetensors bytes. The message of an error says what
/// was found and what was expected.
pub fn from_bytes(bytes: &[u8]) -> Result<Model, String> {
    let expected = "expected a burstwatch model (.safetensors written by `burstwatch import`)";
    // read_metadata checks the header length against the buffer before reading it, and
    // that the tensors' offsets tile the data exactly.
    let (header_len, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a valid safetensors file ({e}); {expected}"))?;
    let data = header_len
        .checked_add(8)
        .and_then(|start| bytes.get(start..))
        .ok_or_else(|| format!("not a valid safetensors file (header past the end); {expected}"))?;
    let meta = header
        .metadata()
        .as_ref()
        .ok_or_else(|| format!("safetensors file without metadata; {expected}"))?;
    match meta.get(KEY_FORMAT).map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => return Err(format!("{KEY_FORMAT} is \"{other}\"; {expected}")),
        None => return Err(format!("no {KEY_FORMAT} in the metadata; {expected}")),
    }
    match meta.get(KEY_VERSION).map(String::as_str) {
        Some(VERSION) => {}
        v => {
            return Err(format!(
                "{KEY_VERSION} is {v:?}; this build reads version {VERSION}"
            ))
        }
    }
    let spec_json = meta
        .get(KEY_SPEC)
        .ok_or_else(|| format!("no {KEY_SPEC} in the metadata; {expected}"))?;
    let spec: Spec = serde_json::from_str(spec_json)
        .map_err(|e| format!("{KEY_SPEC} is not a valid architecture ({e})"))?;
    let wanted = spec.tensors()?;
    let thresholds = meta
        .get(KEY_THRESHOLDS)
        .map(|json| parse_thresholds(json))
        .transpose()?;
    let trained = meta.get(KEY_TRAINED).cloned();

    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    for (name, shape) in &wanted {
        let t = header.info(name).ok_or_else(|| {
            format!("no tensor {name}; the architecture needs it with shape {shape:?}")
        })?;
        if t.dtype != Dtype::F32 {
            return Err(format!("tensor {name} is {}; expected F32", t.dtype));
        }
        if t.shape != *shape {
            return Err(format!(
                "tensor {name} has shape {:?}; expected {shape:?}",
                t.shape
            ));
        }
        let (start, end) = t.data_offsets;
        let v: Vec<f32> = data
            .get(start..end)
            .ok_or_else(|| format!("tensor {name} lies outside the file"))?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(at) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "tensor {name} holds {} at index {at}; expected finite weights",
                v[at]
            ));
        }
        values.insert(name.clone(), v);
    }
    if let Some(extra) = header
        .offset_keys()
        .into_iter()
        .find(|n| !wanted.iter().any(|(w, _)| w == n))
    {
        return Err(format!(
            "unexpected tensor {extra}; the architecture in {KEY_SPEC} does not use it"
        ));
    }

    let mut take = |name: String| values.remove(&name).unwrap_or_default();
    let stages = spec
        .stages
        .iter()
        .enumerate()
        .map(|(k, s)| Stage {
            lstm: ConvLstm {
                filters: s.filters,
                in_channels: s.in_channels,
                kernel: take(format!("stage{k}.kernel")),
                recurrent: take(format!("stage{k}.recurrent")),
            },
            pool: s.pool,
            norm: s.norm.as_ref().map(|n| BatchNorm {
                mean: take(format!("stage{k}.norm.mean")),
                variance: take(format!("stage{k}.norm.variance")),
                epsilon: n.epsilon as f32,
                gamma: n.scale.then(|| take(format!("stage{k}.norm.gamma"))),
                beta: n.center.then(|| take(format!("stage{k}.norm.beta"))),
            }),
        })
        .collect();
    let head = Dense {
        weights: take("head.weights".into()),
        bias: take("head.bias".into())
            .first()
            .copied()
            .unwrap_or(f32::NAN),
    };
    let model = Model {
        name: spec.name,
        input: spec.input,
        stages,
        head,
        thresholds,
        trained,
    };
    model.validate()?;
    Ok(model)
}

/// Reads the `burstwatch.thresholds` metadata value.
fn parse_thresholds(json: &str) -> Result<AlertThresholds, String> {
    let expected = r#"expected {"model": p, "fused": p} with each p strictly between 0 and 1"#;
    let t: AlertThresholds = serde_json::from_str(json)
        .map_err(|e| format!("{KEY_THRESHOLDS} is not valid ({e}); {expected}"))?;
    t.validate()
        .map_err(|e| format!("{KEY_THRESHOLDS}: {e}; {expected}"))?;
    Ok(t)
}
