//! Import of a Keras SavedModel directory (TensorFlow 2.3 / Keras 2.4 layout), in pure Rust.
//!
//! - `saved_model.pb` is a `SavedModel` protocol buffer. Its object graph
//!   (`meta_graphs[].object_graph_def`) has the Keras model as node 0, whose
//!   `user_object.metadata` is the model's JSON config ([`config::plan`] turns it into an
//!   architecture), and one child `layer-K` per layer, each with its own metadata (we read
//!   its `name`) and children leading to its variables (`cell/kernel`,
//!   `cell/recurrent_kernel` of a ConvLSTM2D, `moving_mean` of a BatchNormalization,
//!   `layer/...` inside a TimeDistributed, `kernel`/`bias` of a Dense).
//! - `variables/variables.index` + `.data-*` is a tensor bundle ([`super::bundle`]). Its
//!   `_CHECKPOINTABLE_OBJECT_GRAPH` tensor is a `TrackableObjectGraph` with the same child
//!   names; walking it along a variable's path gives the variable's checkpoint key (for
//!   example `trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE`). Keys are never guessed,
//!   and optimizer slots and metrics are never read.
//!
//! Nothing here runs TensorFlow or Python.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::Value;

use super::bundle::{Checkpoint, OBJECT_GRAPH_KEY};
use super::proto::{
    self, ObjectReference, SavedModel, SavedObject, TrackableObject, TrackableObjectGraph, DT_FLOAT,
};
use super::{BatchNorm, ConvLstm, Dense, Model, Stage};
use crate::{Error, Result};

pub mod config;

pub use config::Plan;

/// One variable the model needs: its object-graph path from the root and its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// For messages: `layer convLSTM_1 kernel`.
    pub what: String,
    /// Child names from the root object, e.g. `["layer-1", "cell", "kernel"]`.
    pub path: Vec<String>,
    pub shape: Vec<usize>,
}

impl Variable {
    fn new(what: String, path: Vec<&str>, shape: Vec<usize>) -> Self {
        Variable {
            what,
            path: path.into_iter().map(str::to_string).collect(),
            shape,
        }
    }
}

/// The variables of one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageVariables {
    pub kernel: Variable,
    pub recurrent: Variable,
    pub norm: Option<NormVariables>,
}

/// The variables of a BatchNormalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormVariables {
    pub mean: Variable,
    pub variance: Variable,
    pub gamma: Option<Variable>,
    pub beta: Option<Variable>,
}

/// The variables of the Dense head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadVariables {
    pub kernel: Variable,
    pub bias: Option<Variable>,
}

/// What `saved_model.pb` says: the architecture and where each weight lives.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModelInfo {
    pub plan: Plan,
    pub stages: Vec<StageVariables>,
    pub head: HeadVariables,
}

/// The nodes of either object graph, for walking child names.
trait GraphNode {
    fn children(&self) -> &[ObjectReference];
}

impl GraphNode for SavedObject {
    fn children(&self) -> &[ObjectReference] {
        &self.children
    }
}

impl GraphNode for TrackableObject {
    fn children(&self) -> &[ObjectReference] {
        &self.children
    }
}

/// The node reached from the root (node 0) through the children named in `path`.
fn walk<'a, N: GraphNode>(nodes: &'a [N], path: &[String]) -> Option<&'a N> {
    let mut node = nodes.first()?;
    for name in path {
        let child = node.children().iter().find(|c| &c.local_name == name)?;
        node = nodes.get(usize::try_from(child.node_id).ok()?)?;
    }
    Some(node)
}

/// Parses `saved_model.pb` bytes: the Keras config and the object-graph path of every
/// variable the model needs, checked against the graph's own variable records.
pub fn parse_saved_model(bytes: &[u8]) -> Result<SavedModelInfo, String> {
    let saved = SavedModel::decode(bytes).map_err(|e| {
        format!("not a SavedModel protocol buffer ({e}); expected a TensorFlow SavedModel")
    })?;
    let nodes = saved
        .meta_graphs
        .iter()
        .filter_map(|m| m.object_graph_def.as_ref())
        .map(|g| &g.nodes[..])
        .find(|n| !n.is_empty())
        .ok_or_else(|| {
            "no object graph; expected a TensorFlow 2 SavedModel written by Keras (model.save)"
                .to_string()
        })?;
    let root_meta = nodes[0]
        .user_object
        .as_ref()
        .map(|u| u.metadata.as_str())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            "the root object has no Keras metadata; expected a SavedModel written by Keras 2.3/2.4 (TensorFlow 2.3)"
                .to_string()
        })?;
    let root: Value = serde_json::from_str(root_meta)
        .map_err(|e| format!("the root object's Keras metadata is not JSON ({e})"))?;
    let plan = config::plan(&root)?;

    // Layer name -> the root's child name for it ("layer-K").
    let mut layers: HashMap<String, String> = HashMap::new();
    for child in &nodes[0].children {
        if !child.local_name.starts_with("layer-") {
            continue;
        }
        let name = usize::try_from(child.node_id)
            .ok()
            .and_then(|id| nodes.get(id))
            .and_then(|n| n.user_object.as_ref())
            .and_then(|u| serde_json::from_str::<Value>(&u.metadata).ok())
            .and_then(|m| m.get("name").and_then(Value::as_str).map(str::to_string));
        if let Some(name) = name {
            layers
                .entry(name)
                .or_insert_with(|| child.local_name.clone());
        }
    }
    let layer_path = |layer: &str| -> Result<&str, String> {
        layers.get(layer).map(String::as_str).ok_or_else(|| {
            format!(
                "layer {layer} of the Keras config has no object in the SavedModel's object graph"
            )
        })
    };

    let mut stages = Vec::with_capacity(plan.stages.len());
    for s in &plan.stages {
        let lp = layer_path(&s.layer)?;
        let (f, c) = (s.filters, s.in_channels);
        let norm = match &s.norm {
            None => None,
            Some(n) => {
                let np = layer_path(&n.layer)?;
                let prefix: Vec<&str> = if n.wrapped {
                    vec![np, "layer"]
                } else {
                    vec![np]
                };
                let var = |name: &str| {
                    let mut path = prefix.clone();
                    path.push(name);
                    Variable::new(format!("layer {} {name}", n.layer), path, vec![f])
                };
                Some(NormVariables {
                    mean: var("moving_mean"),
                    variance: var("moving_variance"),
                    gamma: n.scale.then(|| var("gamma")),
                    beta: n.center.then(|| var("beta")),
                })
            }
        };
        stages.push(StageVariables {
            kernel: Variable::new(
                format!("layer {} kernel", s.layer),
                vec![lp, "cell", "kernel"],
                vec![3, 3, c, 4 * f],
            ),
            recurrent: Variable::new(
                format!("layer {} recurrent_kernel", s.layer),
                vec![lp, "cell", "recurrent_kernel"],
                vec![3, 3, f, 4 * f],
            ),
            norm,
        });
    }
    let h = &plan.head;
    let hp = layer_path(&h.layer)?;
    let head = HeadVariables {
        kernel: Variable::new(
            format!("layer {} kernel", h.layer),
            vec![hp, "kernel"],
            vec![h.features, 1],
        ),
        bias: h
            .use_bias
            .then(|| Variable::new(format!("layer {} bias", h.layer), vec![hp, "bias"], vec![1])),
    };
    let info = SavedModelInfo { plan, stages, head };
    for v in info.variables() {
        check_saved_variable(nodes, v)?;
    }
    Ok(info)
}

impl SavedModelInfo {
    /// Every variable, stage by stage, then the head.
    pub fn variables(&self) -> Vec<&Variable> {
        let mut out = Vec::new();
        for s in &self.stages {
            out.push(&s.kernel);
            out.push(&s.recurrent);
            if let Some(n) = &s.norm {
                out.extend([&n.mean, &n.variance]);
                out.extend(n.gamma.iter().chain(n.beta.iter()));
            }
        }
        out.push(&self.head.kernel);
        out.extend(self.head.bias.iter());
        out
    }
}

/// The SavedModel records each variable's dtype and shape: they must be what the config
/// implies.
fn check_saved_variable(nodes: &[SavedObject], v: &Variable) -> Result<(), String> {
    let path = v.path.join("/");
    let var = walk(nodes, &v.path)
        .and_then(|n| n.variable.as_ref())
        .ok_or_else(|| {
            format!(
                "{}: no variable at {path} in the SavedModel's object graph",
                v.what
            )
        })?;
    if var.dtype != DT_FLOAT {
        return Err(format!(
            "{}: variable {path} has dtype {}; expected float32",
            v.what, var.dtype
        ));
    }
    if let Some(shape) = &var.shape {
        let dims = proto::shape_dims(Some(shape), u64::MAX)
            .map_err(|e| format!("{}: variable {path}: {e}", v.what))?;
        if dims != v.shape {
            return Err(format!(
                "{}: variable {path} has shape {dims:?}; the layer config implies {:?}",
                v.what, v.shape
            ));
        }
    }
    Ok(())
}

/// Imports a Keras SavedModel directory. The model is named after the directory.
pub fn import(dir: &Path) -> Result<Model> {
    let pb_path = dir.join("saved_model.pb");
    if !pb_path.is_file() {
        return Err(Error::bad_input(
            dir,
            "no saved_model.pb; expected a TensorFlow SavedModel directory (or a .safetensors file)",
        ));
    }
    let vars_dir = dir.join("variables");
    if !vars_dir.is_dir() {
        return Err(Error::bad_input(
            dir,
            "SavedModel without a variables/ directory; expected its checkpoint in variables/ (variables.index and variables.data-*)",
        ));
    }
    let bytes = std::fs::read(&pb_path).map_err(|source| Error::Read {
        path: pb_path.clone(),
        source,
    })?;
    let info = parse_saved_model(&bytes).map_err(|e| Error::bad_input(&pb_path, e))?;

    let ckpt = Checkpoint::open(&vars_dir, "variables")?;
    let graph = checkpoint_graph(&ckpt)?;
    let read = |v: &Variable| read_variable(&ckpt, &graph, &vars_dir, v);

    let mut stages = Vec::with_capacity(info.stages.len());
    for (plan, vars) in info.plan.stages.iter().zip(&info.stages) {
        let norm = match (&plan.norm, &vars.norm) {
            (Some(p), Some(v)) => Some(BatchNorm {
                mean: read(&v.mean)?,
                variance: read(&v.variance)?,
                epsilon: p.epsilon,
                gamma: v.gamma.as_ref().map(read).transpose()?,
                beta: v.beta.as_ref().map(read).transpose()?,
            }),
            _ => None,
        };
        stages.push(Stage {
            lstm: ConvLstm {
                filters: plan.filters,
                in_channels: plan.in_channels,
                kernel: read(&vars.kernel)?,
                recurrent: read(&vars.recurrent)?,
            },
            pool: plan.pool,
            norm,
        });
    }
    let bias = match &info.head.bias {
        Some(b) => read(b)?.first().copied().unwrap_or(0.0),
        None => 0.0,
    };
    let model = Model {
        name: model_name(dir),
        input: info.plan.input,
        stages,
        head: Dense {
            weights: read(&info.head.kernel)?,
            bias,
        },
        thresholds: None,
        trained: None,
    };
    model
        .validate()
        .map_err(|e| Error::bad_input(&pb_path, e))?;
    Ok(model)
}

/// The checkpoint's own object graph.
fn checkpoint_graph(ckpt: &Checkpoint) -> Result<TrackableObjectGraph> {
    let strings = ckpt.read_strings(OBJECT_GRAPH_KEY)?;
    let bad = |what: String| Error::bad_input(ckpt.index_path(), what);
    let [bytes] = &strings[..] else {
        return Err(bad(format!(
            "{OBJECT_GRAPH_KEY} holds {} strings; expected one serialized TrackableObjectGraph",
            strings.len()
        )));
    };
    TrackableObjectGraph::decode(&bytes[..]).map_err(|e| {
        bad(format!(
            "{OBJECT_GRAPH_KEY} is not a TrackableObjectGraph ({e})"
        ))
    })
}

/// Reads one variable: its checkpoint key from the checkpoint's object graph, then its
/// values, with shape and finiteness checked.
fn read_variable(
    ckpt: &Checkpoint,
    graph: &TrackableObjectGraph,
    vars_dir: &Path,
    v: &Variable,
) -> Result<Vec<f32>> {
    let path = v.path.join("/");
    let key = walk(&graph.nodes, &v.path)
        .and_then(|n| n.attributes.iter().find(|a| a.name == "VARIABLE_VALUE"))
        .map(|a| a.checkpoint_key.clone())
        .ok_or_else(|| {
            Error::bad_input(
                ckpt.index_path(),
                format!(
                    "{}: the checkpoint's object graph has no value at {path}; expected the variables of saved_model.pb",
                    v.what
                ),
            )
        })?;
    let (shape, values) = ckpt.read_f32(&key)?;
    if shape != v.shape {
        return Err(Error::bad_input(
            ckpt.index_path(),
            format!(
                "tensor \"{key}\" ({}) has shape {shape:?}; expected {:?}",
                v.what, v.shape
            ),
        ));
    }
    if let Some(at) = values.iter().position(|x| !x.is_finite()) {
        return Err(Error::bad_input(
            vars_dir,
            format!(
                "tensor \"{key}\" ({}) holds {} at index {at}; expected finite weights",
                v.what, values[at]
            ),
        ));
    }
    Ok(values)
}

/// The model's name: the SavedModel directory's name (the study's run name).
fn model_name(dir: &Path) -> String {
    let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    named(dir)
        .or_else(|| dir.canonicalize().ok().as_deref().and_then(named))
        .unwrap_or_else(|| PathBuf::from(dir).display().to_string())
}
