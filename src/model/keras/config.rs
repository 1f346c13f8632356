//! From a Keras model config (the JSON Keras 2.3/2.4 stores as the root object's metadata in
//! a SavedModel) to a [`Plan`]: the stages, pools, norms and head of a burstwatch
//! [`Model`](crate::model::Model), with every layer setting checked.
//!
//! Accepted: a single chain of `InputLayer`, `ConvLSTM2D` (3x3, stride 1, dilation 1,
//! 'valid', channels_last, tanh, hard_sigmoid, no bias, forward, stateless),
//! `TimeDistributed(MaxPooling2D)` (2x2, stride 2, 'valid') and
//! `TimeDistributed(BatchNormalization)` between ConvLSTM layers, `MaxPooling2D` /
//! `BatchNormalization` after the last one, `GlobalMaxPooling2D`, `Flatten`, `Dense(1)` with
//! a sigmoid (in the layer or as a following `Activation`), and `Dropout` (a no-op at
//! inference). Anything else is refused with a one-line message naming the layer and the
//! setting. Missing settings take Keras 2.3's defaults (so a missing `use_bias` is `true`,
//! and refused).

use serde_json::{json, Map, Value};

use crate::model::{InputShape, MAX_DIM, MAX_FILTERS, MAX_STAGES};

/// The architecture a Keras config describes, with the Keras layer that holds each weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub input: InputShape,
    pub stages: Vec<StagePlan>,
    pub head: HeadPlan,
}

/// One ConvLSTM2D layer and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    /// Keras layer name of the ConvLSTM2D.
    pub layer: String,
    pub filters: usize,
    pub in_channels: usize,
    pub pool: bool,
    pub norm: Option<NormPlan>,
}

/// A BatchNormalization layer.
#[derive(Debug, Clone, PartialEq)]
pub struct NormPlan {
    /// Keras name of the layer that owns the variables (the TimeDistributed wrapper when
    /// wrapped).
    pub layer: String,
    /// True when wrapped in TimeDistributed: its variables sit under the wrapper's `layer`.
    pub wrapped: bool,
    pub epsilon: f32,
    /// Has gamma (`scale=True`).
    pub scale: bool,
    /// Has beta (`center=True`).
    pub center: bool,
}

/// The Dense classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadPlan {
    pub layer: String,
    pub features: usize,
    pub use_bias: bool,
}

/// Where the chain stands after each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing but the input so far.
    Input,
    /// After a ConvLSTM2D with return_sequences=True: a sequence of maps.
    Sequence,
    /// After the last ConvLSTM2D (return_sequences=False): one map.
    Map,
    /// After the global max pool: a feature vector.
    Features,
    /// After a Dense without activation.
    Logit,
    /// After the sigmoid: the output.
    Probability,
}

const SUPPORTED: &str =
    "InputLayer, ConvLSTM2D, TimeDistributed(MaxPooling2D | BatchNormalization), \
MaxPooling2D, BatchNormalization, GlobalMaxPooling2D, Flatten, Dropout, Dense, Activation";

/// One layer of the config, with a label for messages: `layer NAME (CLASS)`.
struct Layer<'a> {
    /// The layer's whole entry (a functional model keeps `inbound_nodes` beside `config`).
    raw: &'a Value,
    class: &'a str,
    name: String,
    config: &'a Map<String, Value>,
}

impl<'a> Layer<'a> {
    fn parse(v: &'a Value) -> Result<Self, String> {
        let class = v
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| "a layer without class_name in the Keras config".to_string())?;
        let config = v
            .get("config")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("a {class} layer without config in the Keras config"))?;
        let name = config
            .get("name")
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        Ok(Layer {
            raw: v,
            class,
            name,
            config,
        })
    }

    fn label(&self) -> String {
        format!("layer {} ({})", self.name, self.class)
    }

    fn err(&self, what: impl std::fmt::Display) -> String {
        format!("{}: {what}", self.label())
    }

    /// A setting, or Keras' default when the config leaves it out.
    fn get(&self, key: &str, default: Value) -> Value {
        self.config.get(key).cloned().unwrap_or(default)
    }

    /// Requires a setting to equal `expected` (after normalising tuples to lists).
    fn require(&self, key: &str, default: Value, expected: &[Value]) -> Result<(), String> {
        let v = normalise(self.get(key, default));
        if expected.contains(&v) {
            return Ok(());
        }
        let want: Vec<String> = expected.iter().map(Value::to_string).collect();
        Err(self.err(format!(
            "{key}={v} is not supported; expected {}",
            want.join(" or ")
        )))
    }

    /// A positive integer setting no larger than `max`.
    fn count(&self, key: &str, max: usize) -> Result<usize, String> {
        let v = self
            .config
            .get(key)
            .ok_or_else(|| self.err(format!("no {key} setting")))?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| (1..=max).contains(&n))
            .ok_or_else(|| self.err(format!("{key}={v}; expected an integer from 1 to {max}")))
    }
}

/// Keras serialises tuples as `{"class_name": "__tuple__", "items": [...]}` and sometimes a
/// pair as a single integer; both become a plain list here.
fn normalise(v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.get("class_name") == Some(&json!("__tuple__")) => {
            normalise(m.remove("items").unwrap_or(Value::Null))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        other => other,
    }
}

/// The plan of a Keras model config: the root object's metadata (`{"class_name":
/// "Functional" | "Model" | "Sequential", "config": {"layers": [...]}, ...}`).
pub fn plan(model: &Value) -> Result<Plan, String> {
    let class = model
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| "the root object's Keras metadata has no class_name".to_string())?;
    if !matches!(class, "Functional" | "Model" | "Sequential") {
        return Err(format!(
            "the root object is a Keras {class}; expected a Functional or Sequential model"
        ));
    }
    let config = model
        .get("config")
        .ok_or_else(|| format!("the {class} model's metadata has no config"))?;
    // Sequential configs of some Keras versions are the bare layer list.
    let layers = config
        .get("layers")
        .or(if config.is_array() {
            Some(config)
        } else {
            None
        })
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the {class} model's config has no layer list"))?;
    let layers: Vec<Layer> = layers.iter().map(Layer::parse).collect::<Result<_, _>>()?;
    if class != "Sequential" {
        check_chain(config, &layers)?;
    }
    let fallback_input = model
        .get("build_input_shape")
        .or_else(|| config.get("build_input_shape"));
    build(&layers, fallback_input)
}

/// A functional model must be one chain: each layer fed by the one before it.
fn check_chain(config: &Value, layers: &[Layer]) -> Result<(), String> {
    let endpoint = |key: &str| -> Option<String> {
        let list = config.get(key)?.as_array()?;
        if list.len() != 1 {
            return None;
        }
        list[0].get(0)?.as_str().map(str::to_string)
    };
    let first = layers.first().map(|l| l.name.clone());
    let last = layers.last().map(|l| l.name.clone());
    if endpoint("input_layers") != first || endpoint("output_layers") != last {
        return Err(
            "the model's inputs and outputs are not the first and last layers of its list; expected a single chain of layers"
                .into(),
        );
    }
    // Keras 2.4 writes `"inbound_nodes": [[["previous_layer", 0, 0, {}]]]`: one call of the
    // layer, on one tensor.
    for pair in layers.windows(2) {
        let (prev, layer) = (&pair[0], &pair[1]);
        let source = layer
            .raw
            .get("inbound_nodes")
            .and_then(Value::as_array)
            .filter(|calls| calls.len() == 1)
            .and_then(|calls| calls[0].as_array())
            .filter(|tensors| tensors.len() == 1)
            .and_then(|tensors| tensors[0].as_array())
            .and_then(|t| t.first())
            .and_then(Value::as_str);
        if source != Some(prev.name.as_str()) {
            return Err(layer.err(format!(
                "is not fed by the layer before it ({}) alone; expected a single chain of layers",
                prev.name
            )));
        }
    }
    Ok(())
}

/// Walks the layers in order and builds the plan.
fn build(layers: &[Layer], fallback_input: Option<&Value>) -> Result<Plan, String> {
    let mut input: Option<InputShape> = None;
    let mut phase = Phase::Input;
    let mut channels = 0usize;
    let mut stages: Vec<StagePlan> = Vec::new();
    let mut head: Option<HeadPlan> = None;
    let mut last_label = "the input".to_string();

    for (i, layer) in layers.iter().enumerate() {
        match layer.class {
            "InputLayer" => {
                if i != 0 {
                    return Err(layer.err("an InputLayer that is not the first layer"));
                }
                input = Some(input_shape(layer, layer.config.get("batch_input_shape"))?);
            }
            "ConvLSTM2D" => {
                if input.is_none() {
                    input = Some(input_shape(
                        layer,
                        layer.config.get("batch_input_shape").or(fallback_input),
                    )?);
                }
                if !matches!(phase, Phase::Input | Phase::Sequence) {
                    return Err(layer.err(format!(
                        "follows {last_label}, which does not return a sequence; expected ConvLSTM2D layers to be fed sequences"
                    )));
                }
                if stages.len() == MAX_STAGES {
                    return Err(layer.err(format!("more than {MAX_STAGES} ConvLSTM2D layers")));
                }
                let filters = layer.count("filters", MAX_FILTERS)?;
                check_conv_lstm(layer)?;
                let sequences = layer.get("return_sequences", json!(false));
                phase = match sequences {
                    Value::Bool(true) => Phase::Sequence,
                    Value::Bool(false) => Phase::Map,
                    v => return Err(layer.err(format!("return_sequences={v}; expected true or false"))),
                };
                let in_channels = match stages.last() {
                    Some(s) => s.filters,
                    None => input.map_or(0, |i| i.channels),
                };
                stages.push(StagePlan {
                    layer: layer.name.clone(),
                    filters,
                    in_channels,
                    pool: false,
                    norm: None,
                });
                channels = filters;
            }
            "TimeDistributed" => {
                if phase != Phase::Sequence {
                    return Err(layer.err(format!(
                        "follows {last_label}, which does not return a sequence; expected TimeDistributed only between ConvLSTM2D layers"
                    )));
                }
                let inner_value = layer
                    .config
                    .get("layer")
                    .ok_or_else(|| layer.err("no wrapped layer"))?;
                let inner = Layer::parse(inner_value).map_err(|e| layer.err(e))?;
                let stage = stages.last_mut().ok_or_else(|| layer.err("no ConvLSTM2D before it"))?;
                match inner.class {
                    "MaxPooling2D" | "MaxPool2D" => add_pool(layer, &inner, stage)?,
                    "BatchNormalization" => {
                        add_norm(layer, &inner, stage, true, &[json!(3), json!(-1)])?
                    }
                    other => {
                        return Err(layer.err(format!(
                            "wraps unknown layer class {other}; expected MaxPooling2D or BatchNormalization"
                        )))
                    }
                }
            }
            "MaxPooling2D" | "MaxPool2D" => {
                if phase != Phase::Map {
                    return Err(layer.err(format!(
                        "follows {last_label}; expected MaxPooling2D only after the last ConvLSTM2D (use TimeDistributed between ConvLSTM2D layers)"
                    )));
                }
                let stage = stages.last_mut().ok_or_else(|| layer.err("no ConvLSTM2D before it"))?;
                add_pool(layer, layer, stage)?;
            }
            "BatchNormalization" => {
                // On a sequence (5-D) the channel axis is 4, on a map (4-D) it is 3.
                let axes = match phase {
                    Phase::Sequence => [json!(4), json!(-1)],
                    Phase::Map => [json!(3), json!(-1)],
                    _ => {
                        return Err(layer.err(format!(
                            "follows {last_label}; expected BatchNormalization right after a ConvLSTM2D or its pool"
                        )))
                    }
                };
                let stage = stages.last_mut().ok_or_else(|| layer.err("no ConvLSTM2D before it"))?;
                add_norm(layer, layer, stage, false, &axes)?;
            }
            "GlobalMaxPooling2D" | "GlobalMaxPool2D" => {
                if phase != Phase::Map {
                    return Err(layer.err(format!(
                        "follows {last_label}; expected it after the last ConvLSTM2D (return_sequences=false)"
                    )));
                }
                layer.require("data_format", json!("channels_last"), &[json!("channels_last"), Value::Null])?;
                layer.require("keepdims", json!(false), &[json!(false)])?;
                phase = Phase::Features;
            }
            "Flatten" => {
                if phase != Phase::Features {
                    return Err(layer.err(format!(
                        "follows {last_label}; expected Flatten only after GlobalMaxPooling2D, where it changes nothing"
                    )));
                }
            }
            "Dropout" => {} // inactive at inference
            "Dense" => {
                if phase != Phase::Features {
                    return Err(layer.err(format!(
                        "follows {last_label}; expected Dense right after GlobalMaxPooling2D"
                    )));
                }
                layer.require("units", json!(null), &[json!(1)])?;
                let use_bias = match layer.get("use_bias", json!(true)) {
                    Value::Bool(b) => b,
                    v => return Err(layer.err(format!("use_bias={v}; expected true or false"))),
                };
                layer.require("activation", json!("linear"), &[json!("sigmoid"), json!("linear")])?;
                phase = if layer.get("activation", json!("linear")) == json!("sigmoid") {
                    Phase::Probability
                } else {
                    Phase::Logit
                };
                head = Some(HeadPlan {
                    layer: layer.name.clone(),
                    features: channels,
                    use_bias,
                });
            }
            "Activation" => match (phase, layer.get("activation", Value::Null)) {
                (_, v) if v == json!("linear") => {}
                (Phase::Logit, v) if v == json!("sigmoid") => phase = Phase::Probability,
                (_, v) => {
                    return Err(layer.err(format!(
                        "activation={v} after {last_label} is not supported; expected one sigmoid, right after a linear Dense"
                    )))
                }
            },
            other => {
                return Err(layer.err(format!(
                    "unknown layer class {other}; supported: {SUPPORTED}"
                )))
            }
        }
        if layer.class != "Dropout" {
            last_label = layer.label();
        }
    }
    if phase != Phase::Probability {
        return Err(format!(
            "the model ends with {last_label}; expected ConvLSTM2D layers, GlobalMaxPooling2D, then Dense(1) with a sigmoid"
        ));
    }
    let (Some(input), Some(head)) = (input, head) else {
        return Err("the model has no input shape or no Dense head".into());
    };
    Ok(Plan {
        input,
        stages,
        head,
    })
}

/// `batch_input_shape = [null, slices, height, width, channels]`.
fn input_shape(layer: &Layer, shape: Option<&Value>) -> Result<InputShape, String> {
    let shape = shape.cloned().map(normalise).ok_or_else(|| {
        layer.err("no batch_input_shape; expected [null, slices, height, width, channels]")
    })?;
    let dims = shape
        .as_array()
        .filter(|a| a.len() == 5)
        .map(|a| a[1..].iter().map(|d| d.as_u64().and_then(|n| usize::try_from(n).ok())).collect::<Vec<_>>())
        .filter(|d| d.iter().all(|x| x.is_some_and(|n| (1..=MAX_DIM).contains(&n))))
        .ok_or_else(|| {
            layer.err(format!(
                "input shape {shape}; expected [null, slices, height, width, channels] with sizes 1 to {MAX_DIM}"
            ))
        })?;
    let d: Vec<usize> = dims.into_iter().flatten().collect();
    Ok(InputShape {
        slices: d[0],
        height: d[1],
        width: d[2],
        channels: d[3],
    })
}

/// The ConvLSTM2D settings burstwatch implements (DESIGN §1); Keras 2.3 defaults in the
/// second argument.
fn check_conv_lstm(layer: &Layer) -> Result<(), String> {
    layer.require("kernel_size", Value::Null, &[json!([3, 3]), json!(3)])?;
    layer.require("strides", json!([1, 1]), &[json!([1, 1]), json!(1)])?;
    layer.require("dilation_rate", json!([1, 1]), &[json!([1, 1]), json!(1)])?;
    layer.require("padding", json!("valid"), &[json!("valid")])?;
    layer.require(
        "data_format",
        Value::Null,
        &[json!("channels_last"), Value::Null],
    )?;
    layer.require("activation", json!("tanh"), &[json!("tanh")])?;
    layer.require(
        "recurrent_activation",
        json!("hard_sigmoid"),
        &[json!("hard_sigmoid")],
    )?;
    layer.require("use_bias", json!(true), &[json!(false)])?;
    layer.require("go_backwards", json!(false), &[json!(false)])?;
    layer.require("stateful", json!(false), &[json!(false)])?;
    layer.require("return_state", json!(false), &[json!(false)])?;
    layer.require("time_major", json!(false), &[json!(false)])?;
    Ok(())
}

/// A 2x2, stride-2, 'valid' max pool (`layer` labels messages, `pool` holds the config).
fn add_pool(layer: &Layer, pool: &Layer, stage: &mut StagePlan) -> Result<(), String> {
    let label = |e: String| {
        if std::ptr::eq(layer, pool) {
            e
        } else {
            layer.err(e)
        }
    };
    pool.require("pool_size", json!([2, 2]), &[json!([2, 2]), json!(2)])
        .map_err(label)?;
    pool.require(
        "strides",
        Value::Null,
        &[json!([2, 2]), json!(2), Value::Null],
    )
    .map_err(label)?;
    pool.require("padding", json!("valid"), &[json!("valid")])
        .map_err(label)?;
    pool.require(
        "data_format",
        Value::Null,
        &[json!("channels_last"), Value::Null],
    )
    .map_err(label)?;
    if stage.norm.is_some() {
        return Err(layer.err(format!(
            "pool after the BatchNormalization of {}; expected the pool first, then the norm",
            stage.layer
        )));
    }
    if stage.pool {
        return Err(layer.err(format!(
            "a second pool after {}; expected at most one",
            stage.layer
        )));
    }
    stage.pool = true;
    Ok(())
}

/// An inference-mode BatchNormalization over the channel axis.
fn add_norm(
    layer: &Layer,
    norm: &Layer,
    stage: &mut StagePlan,
    wrapped: bool,
    axes: &[Value],
) -> Result<(), String> {
    let label = |e: String| if wrapped { layer.err(e) } else { e };
    let axis = normalise(norm.get("axis", json!(-1)));
    let axis = match axis {
        Value::Array(a) if a.len() == 1 => a[0].clone(),
        other => other,
    };
    if !axes.contains(&axis) {
        return Err(label(norm.err(format!(
            "axis={axis} is not supported; expected the channel axis ({})",
            axes.iter().map(Value::to_string).collect::<Vec<_>>().join(" or ")
        ))));
    }
    norm.require("renorm", json!(false), &[json!(false)])
        .map_err(label)?;
    let flag = |key: &str| match norm.get(key, json!(true)) {
        Value::Bool(b) => Ok(b),
        v => Err(label(
            norm.err(format!("{key}={v}; expected true or false")),
        )),
    };
    let (scale, center) = (flag("scale")?, flag("center")?);
    let epsilon = norm.get("epsilon", json!(0.001));
    let epsilon = epsilon
        .as_f64()
        .map(|e| e as f32)
        .filter(|e| e.is_finite() && *e >= 0.0)
        .ok_or_else(|| {
            label(norm.err(format!("epsilon={epsilon}; expected a finite number >= 0")))
        })?;
    if stage.norm.is_some() {
        return Err(layer.err(format!(
            "a second BatchNormalization after {}; expected at most one",
            stage.layer
        )));
    }
    stage.norm = Some(NormPlan {
        layer: layer.name.clone(),
        wrapped,
        epsilon,
        scale,
        center,
    });
    Ok(())
}
