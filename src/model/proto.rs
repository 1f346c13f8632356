//! The few TensorFlow protocol buffer messages the importer reads, written by hand for
//! `prost` (no `protoc` at build time). Only the fields we use are declared; prost skips
//! the rest (for example the whole `graph_def` of a MetaGraphDef), so a newer producer that
//! adds fields still decodes.
//!
//! Field numbers are TensorFlow's, from (paths in the tensorflow/tensorflow repository):
//! `core/protobuf/saved_model.proto`, `core/protobuf/meta_graph.proto`,
//! `core/protobuf/saved_object_graph.proto`, `core/protobuf/trackable_object_graph.proto`,
//! `core/protobuf/tensor_bundle.proto`, `core/framework/tensor_shape.proto`,
//! `core/framework/versions.proto` and `core/framework/types.proto`.
//!
//! Decoding never panics on untrusted bytes: prost bounds-checks every length against the
//! remaining input and limits message nesting.

/// `DataType.DT_FLOAT` (types.proto).
pub const DT_FLOAT: i32 = 1;
/// `DataType.DT_STRING` (types.proto).
pub const DT_STRING: i32 = 7;

/// `tensorflow.VersionDef` (versions.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionDef {
    #[prost(int32, tag = "1")]
    pub producer: i32,
    #[prost(int32, tag = "2")]
    pub min_consumer: i32,
    #[prost(int32, repeated, tag = "3")]
    pub bad_consumers: Vec<i32>,
}

/// `tensorflow.TensorShapeProto` (tensor_shape.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// `tensorflow.TensorShapeProto.Dim`: a size of -1 means "unknown".
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `tensorflow.BundleHeaderProto` (tensor_bundle.proto): the value of the index's "" key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    /// 0 = LITTLE, 1 = BIG.
    #[prost(int32, tag = "2")]
    pub endianness: i32,
    #[prost(message, optional, tag = "3")]
    pub version: Option<VersionDef>,
}

/// `tensorflow.BundleEntryProto` (tensor_bundle.proto): where one tensor lies in the data
/// shards. `crc32c` is the masked crc32c of the stored bytes (`crc32c::Mask`, as written by
/// `BundleWriter::Add`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleEntryProto {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub shard_id: i32,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub size: i64,
    #[prost(fixed32, tag = "6")]
    pub crc32c: u32,
    /// `TensorSliceProto`s of a partitioned variable; kept opaque: we refuse slices.
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub slices: Vec<Vec<u8>>,
}

/// `tensorflow.SavedModel` (saved_model.proto): the content of `saved_model.pb`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModel {
    #[prost(int64, tag = "1")]
    pub saved_model_schema_version: i64,
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

/// `tensorflow.MetaGraphDef` (meta_graph.proto); only the object graph (field 7) is kept.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphDef {
    #[prost(message, optional, tag = "7")]
    pub object_graph_def: Option<SavedObjectGraph>,
}

/// `tensorflow.SavedObjectGraph` (saved_object_graph.proto): node 0 is the root object.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedObjectGraph {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<SavedObject>,
}

/// `tensorflow.SavedObject`. `kind` is a oneof in the .proto; the two members we read are
/// declared as optional fields (same wire format).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedObject {
    #[prost(message, repeated, tag = "1")]
    pub children: Vec<ObjectReference>,
    #[prost(message, optional, tag = "4")]
    pub user_object: Option<SavedUserObject>,
    #[prost(message, optional, tag = "7")]
    pub variable: Option<SavedVariable>,
}

/// `tensorflow.SavedUserObject`: for Keras objects, `metadata` is the layer's or model's JSON.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedUserObject {
    #[prost(string, tag = "1")]
    pub identifier: String,
    #[prost(string, tag = "3")]
    pub metadata: String,
}

/// `tensorflow.SavedVariable`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedVariable {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    #[prost(string, tag = "6")]
    pub name: String,
}

/// `tensorflow.TrackableObjectGraph.TrackableObject.ObjectReference`
/// (trackable_object_graph.proto): an edge of either object graph.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectReference {
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    #[prost(string, tag = "2")]
    pub local_name: String,
}

/// `tensorflow.TrackableObjectGraph`: the checkpoint's own object graph, stored as the
/// string tensor `_CHECKPOINTABLE_OBJECT_GRAPH` in the bundle.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObjectGraph {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<TrackableObject>,
}

/// `tensorflow.TrackableObjectGraph.TrackableObject`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObject {
    #[prost(message, repeated, tag = "1")]
    pub children: Vec<ObjectReference>,
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<SerializedTensor>,
}

/// `tensorflow.TrackableObjectGraph.TrackableObject.SerializedTensor`: `checkpoint_key` is
/// the bundle key of the value (for a variable, attribute `name` is "VARIABLE_VALUE").
#[derive(Clone, PartialEq, prost::Message)]
pub struct SerializedTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub full_name: String,
    #[prost(string, tag = "3")]
    pub checkpoint_key: String,
}

/// The dimensions of a fully defined shape, or a description of what is wrong with it.
/// `max_elements` bounds the element count, so that a forged shape cannot ask for a huge
/// allocation.
pub fn shape_dims(
    shape: Option<&TensorShapeProto>,
    max_elements: u64,
) -> Result<Vec<usize>, String> {
    let Some(shape) = shape else {
        return Ok(Vec::new()); // an absent shape is a scalar (proto3 default)
    };
    if shape.unknown_rank {
        return Err("shape of unknown rank; expected a fully defined shape".into());
    }
    let mut dims = Vec::with_capacity(shape.dim.len().min(64));
    let mut elements: u64 = 1;
    for d in &shape.dim {
        let size = u64::try_from(d.size)
            .map_err(|_| format!("dimension {}; expected a fully defined shape", d.size))?;
        elements = elements
            .checked_mul(size)
            .filter(|&e| e <= max_elements)
            .ok_or_else(|| format!("shape with more than {max_elements} elements"))?;
        dims.push(usize::try_from(size).map_err(|_| "dimension too large".to_string())?);
    }
    Ok(dims)
}
