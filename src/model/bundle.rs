//! TensorFlow's tensor-bundle checkpoint format, read in pure Rust: the index
//! (`variables.index`, a LevelDB-format table, see [`super::table`]) maps each checkpoint key
//! to a `BundleEntryProto` (dtype, shape, shard, offset, size, masked crc32c); the key ""
//! holds the `BundleHeaderProto` (number of shards, endianness, version). Tensor bytes lie in
//! `variables.data-NNNNN-of-MMMMM` at the entry's offset.
//!
//! Source of the format: TensorFlow `core/util/tensor_bundle/tensor_bundle.{h,cc,proto}`
//! (`BundleWriter::Add` stores `crc32c::Mask(crc32c(bytes))`; string tensors are
//! `[varint64 len]... [masked crc32c of the lengths] [bytes]...`).
//!
//! Only what the importer needs is supported: little-endian bundles, unsliced tensors,
//! `DT_FLOAT` and `DT_STRING` values. The byte-level functions ([`BundleIndex::parse`],
//! [`decode_f32`], [`decode_strings`]) never panic on hostile input; [`Checkpoint`] adds the
//! files and turns their messages into one-line [`crate::Error`]s naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{self, BundleEntryProto, BundleHeaderProto, DT_FLOAT, DT_STRING};
use super::table::{self, mask_crc32c};
use crate::{Error, Result};

/// Key of the checkpoint's own object graph (a scalar string holding a serialized
/// `TrackableObjectGraph`), as TensorFlow's `OBJECT_GRAPH_PROTO_KEY`.
pub const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";
/// Largest tensor accepted, in elements (1 GiB of f32): far above any model here, far below
/// what a forged shape could otherwise ask for.
const MAX_ELEMENTS: u64 = 1 << 28;
/// `kTensorBundleVersion` of tensor_bundle.cc: the format version this reader understands.
const BUNDLE_VERSION: i32 = 1;
/// Data file names have five-digit shard numbers (`DataFilename`: `%05d`).
const MAX_SHARDS: i32 = 99_999;

/// What the index says about one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEntry {
    /// TensorFlow `DataType` number ([`proto::DT_FLOAT`], [`proto::DT_STRING`], ...).
    pub dtype: i32,
    pub shape: Vec<usize>,
    pub shard: u32,
    pub offset: u64,
    pub size: u64,
    /// `crc32c::Mask(crc32c(stored bytes))`.
    pub masked_crc32c: u32,
}

impl BundleEntry {
    /// Number of elements (1 for a scalar).
    pub fn elements(&self) -> usize {
        // Bounded by MAX_ELEMENTS when the entry was parsed.
        self.shape.iter().product()
    }

    /// The entry's bytes as a range of its data shard.
    pub fn range(&self) -> Result<Range<usize>, String> {
        let start = usize::try_from(self.offset).map_err(|_| "offset too large".to_string())?;
        let len = usize::try_from(self.size).map_err(|_| "size too large".to_string())?;
        let end = start
            .checked_add(len)
            .ok_or_else(|| format!("offset {start} + size {len} overflows"))?;
        Ok(start..end)
    }
}

/// A parsed `variables.index`: the header and every entry, by key.
#[derive(Debug, Clone)]
pub struct BundleIndex {
    num_shards: u32,
    entries: BTreeMap<String, BundleEntry>,
}

impl BundleIndex {
    /// Parses an index file's bytes: the table (every block crc32c checked), the header and
    /// every entry.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let table = table::read_table(bytes)?;
        let mut rows = table.into_iter();
        let header = match rows.next() {
            Some((key, value)) if key.is_empty() => BundleHeaderProto::decode(value)
                .map_err(|e| format!("header entry is not a BundleHeaderProto ({e})"))?,
            _ => return Err("no header entry (key \"\")".into()),
        };
        if !(1..=MAX_SHARDS).contains(&header.num_shards) {
            return Err(format!(
                "header says {} data shards; expected 1 to {MAX_SHARDS}",
                header.num_shards
            ));
        }
        if header.endianness != 0 {
            return Err("big-endian bundle; only little-endian bundles are supported".into());
        }
        if let Some(v) = &header.version {
            if v.min_consumer > BUNDLE_VERSION || v.bad_consumers.contains(&BUNDLE_VERSION) {
                return Err(format!(
                    "bundle format needs a reader of version {} or newer; this reader is version {BUNDLE_VERSION}",
                    v.min_consumer
                ));
            }
        }
        let num_shards = header.num_shards as u32;
        let mut entries = BTreeMap::new();
        for (key, value) in rows {
            let key = String::from_utf8(key).map_err(|_| {
                "a key that is not UTF-8; expected checkpoint object paths".to_string()
            })?;
            let entry = parse_entry(&key, value, num_shards)?;
            entries.insert(key, entry);
        }
        Ok(BundleIndex {
            num_shards,
            entries,
        })
    }

    /// Number of data shards (`variables.data-*-of-N`).
    pub fn num_shards(&self) -> u32 {
        self.num_shards
    }

    /// The entry for `key`.
    pub fn entry(&self, key: &str) -> Result<&BundleEntry, String> {
        self.entries
            .get(key)
            .ok_or_else(|| format!("no tensor \"{key}\" in the checkpoint"))
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

fn parse_entry(key: &str, value: &[u8], num_shards: u32) -> Result<BundleEntry, String> {
    let bad = |what: String| format!("entry \"{key}\": {what}");
    let e = BundleEntryProto::decode(value)
        .map_err(|err| bad(format!("not a BundleEntryProto ({err})")))?;
    if !e.slices.is_empty() {
        return Err(bad(
            "a sliced (partitioned) tensor; expected whole tensors".into()
        ));
    }
    let shard = u32::try_from(e.shard_id)
        .ok()
        .filter(|&s| s < num_shards)
        .ok_or_else(|| bad(format!("shard {} of {num_shards}", e.shard_id)))?;
    let offset = u64::try_from(e.offset).map_err(|_| bad(format!("offset {}", e.offset)))?;
    let size = u64::try_from(e.size).map_err(|_| bad(format!("size {}", e.size)))?;
    let shape = proto::shape_dims(e.shape.as_ref(), MAX_ELEMENTS).map_err(bad)?;
    Ok(BundleEntry {
        dtype: e.dtype,
        shape,
        shard,
        offset,
        size,
        masked_crc32c: e.crc32c,
    })
}

/// The name of data shard `shard` of a bundle with prefix `prefix` (TensorFlow's
/// `DataFilename`: `<prefix>.data-00000-of-00001`).
pub fn shard_file_name(prefix: &str, shard: u32, num_shards: u32) -> String {
    format!("{prefix}.data-{shard:05}-of-{num_shards:05}")
}

/// The bytes of `entry` inside a whole data shard held in memory.
pub fn tensor_bytes<'a>(entry: &BundleEntry, shard: &'a [u8]) -> Result<&'a [u8], String> {
    let range = entry.range()?;
    shard.get(range.clone()).ok_or_else(|| {
        format!(
            "{} bytes at offset {} run past the end of the data file ({} bytes)",
            range.len(),
            range.start,
            shard.len()
        )
    })
}

/// Checks that `entry` is a float32 tensor whose size matches its shape.
fn check_f32_entry(entry: &BundleEntry) -> Result<(), String> {
    if entry.dtype != DT_FLOAT {
        return Err(format!(
            "dtype {} ({}); expected DT_FLOAT (float32)",
            entry.dtype,
            dtype_name(entry.dtype)
        ));
    }
    let expected = entry.elements() as u64 * 4;
    if entry.size != expected {
        return Err(format!(
            "{} bytes for shape {:?}; expected {expected}",
            entry.size, entry.shape
        ));
    }
    Ok(())
}

/// The values of a float32 tensor from its stored `bytes`, after checking dtype, size and
/// the crc32c.
pub fn decode_f32(entry: &BundleEntry, bytes: &[u8]) -> Result<Vec<f32>, String> {
    check_f32_entry(entry)?;
    if bytes.len() as u64 != entry.size {
        return Err(format!("{} bytes; expected {}", bytes.len(), entry.size));
    }
    check_crc(entry, crc32c::crc32c(bytes))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The elements of a string tensor from its stored `bytes`: varint64 lengths, the masked
/// crc32c of the lengths, then the bytes (tensor_bundle.cc `WriteStringTensor`). Both the
/// lengths' checksum and the entry's crc32c are checked.
pub fn decode_strings(entry: &BundleEntry, bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if entry.dtype != DT_STRING {
        return Err(format!(
            "dtype {} ({}); expected DT_STRING",
            entry.dtype,
            dtype_name(entry.dtype)
        ));
    }
    if bytes.len() as u64 != entry.size {
        return Err(format!("{} bytes; expected {}", bytes.len(), entry.size));
    }
    let n = entry.elements();
    if n > bytes.len() {
        return Err(format!("{n} strings cannot fit in {} bytes", bytes.len()));
    }
    // The crc covers each length as a little-endian u32 (u64 when larger), not its varint.
    let mut crc = 0u32;
    let mut lengths = Vec::with_capacity(n);
    let mut pos = 0;
    for _ in 0..n {
        let len = read_varint64(bytes, &mut pos)?;
        crc = match u32::try_from(len) {
            Ok(l) => crc32c::crc32c_append(crc, &l.to_le_bytes()),
            Err(_) => crc32c::crc32c_append(crc, &len.to_le_bytes()),
        };
        lengths.push(len);
    }
    let raw = pos
        .checked_add(4)
        .and_then(|end| bytes.get(pos..end))
        .ok_or_else(|| "string lengths run past the tensor's bytes".to_string())?;
    let stored = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if stored != mask_crc32c(crc) {
        return Err("checksum of the string lengths does not match".into());
    }
    crc = crc32c::crc32c_append(crc, raw);
    pos += 4;
    let mut out = Vec::with_capacity(n);
    for len in lengths {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| "string bytes run past the tensor's bytes".to_string())?;
        let s = &bytes[pos..end];
        crc = crc32c::crc32c_append(crc, s);
        out.push(s.to_vec());
        pos = end;
    }
    if pos != bytes.len() {
        return Err(format!(
            "{} stray bytes after the strings",
            bytes.len() - pos
        ));
    }
    check_crc(entry, crc)?;
    Ok(out)
}

fn check_crc(entry: &BundleEntry, crc: u32) -> Result<(), String> {
    let computed = mask_crc32c(crc);
    if computed != entry.masked_crc32c {
        return Err(format!(
            "crc32c mismatch at offset {} (index says {:#010x}, data gives {computed:#010x})",
            entry.offset, entry.masked_crc32c
        ));
    }
    Ok(())
}

fn read_varint64(bytes: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..10 {
        let b = *bytes
            .get(*pos)
            .ok_or_else(|| "string length runs past the tensor's bytes".to_string())?;
        *pos += 1;
        let bits = u64::from(b & 0x7f);
        if i == 9 && bits > 1 {
            return Err("string length overflows 64 bits".into());
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("string length varint longer than 10 bytes".into())
}

/// A readable name for the dtypes a checkpoint commonly holds (types.proto).
fn dtype_name(dtype: i32) -> &'static str {
    match dtype {
        1 => "float32",
        2 => "float64",
        3 => "int32",
        4 => "uint8",
        7 => "string",
        9 => "int64",
        10 => "bool",
        14 => "bfloat16",
        19 => "float16",
        _ => "other",
    }
}

/// A checkpoint on disk: `<dir>/<prefix>.index` and its data shards.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    prefix: String,
    index_path: PathBuf,
    index: BundleIndex,
}

impl Checkpoint {
    /// Opens `<dir>/<prefix>.index` (a SavedModel's checkpoint is `variables/variables`).
    pub fn open(dir: &Path, prefix: &str) -> Result<Self> {
        let index_path = dir.join(format!("{prefix}.index"));
        let bytes = fs::read(&index_path).map_err(|source| Error::Read {
            path: index_path.clone(),
            source,
        })?;
        let index = BundleIndex::parse(&bytes).map_err(|e| {
            Error::bad_input(
                &index_path,
                format!("{e}; expected an intact TensorFlow tensor-bundle index"),
            )
        })?;
        Ok(Checkpoint {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            index_path,
            index,
        })
    }

    /// The parsed index.
    pub fn index(&self) -> &BundleIndex {
        &self.index
    }

    /// The path of the index file.
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    fn entry(&self, key: &str) -> Result<&BundleEntry> {
        self.index
            .entry(key)
            .map_err(|e| Error::bad_input(&self.index_path, e))
    }

    /// Reads the stored bytes of `entry` from its shard, never more than the file holds.
    fn read_bytes(&self, entry: &BundleEntry) -> Result<(PathBuf, Vec<u8>)> {
        let path = self.dir.join(shard_file_name(
            &self.prefix,
            entry.shard,
            self.index.num_shards(),
        ));
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        let mut file = fs::File::open(&path).map_err(read_err)?;
        let file_len = file.metadata().map_err(read_err)?.len();
        if entry
            .offset
            .checked_add(entry.size)
            .is_none_or(|end| end > file_len)
        {
            return Err(Error::bad_input(
                &path,
                format!(
                    "{} bytes at offset {} run past the end of the file ({file_len} bytes); expected a complete TensorFlow checkpoint data file",
                    entry.size, entry.offset
                ),
            ));
        }
        let mut bytes = vec![0u8; entry.size as usize];
        file.seek(SeekFrom::Start(entry.offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(read_err)?;
        Ok((path, bytes))
    }

    /// The shape and values of the float32 tensor `key`, crc32c checked.
    pub fn read_f32(&self, key: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let entry = self.entry(key)?;
        check_f32_entry(entry)
            .map_err(|e| Error::bad_input(&self.index_path, format!("tensor \"{key}\": {e}")))?;
        let (path, bytes) = self.read_bytes(entry)?;
        let values = decode_f32(entry, &bytes).map_err(|e| {
            Error::bad_input(
                &path,
                format!(
                    "tensor \"{key}\": {e}; expected an intact TensorFlow checkpoint data file"
                ),
            )
        })?;
        Ok((entry.shape.clone(), values))
    }

    /// The elements of the string tensor `key`, checksums checked.
    pub fn read_strings(&self, key: &str) -> Result<Vec<Vec<u8>>> {
        let entry = self.entry(key)?;
        if entry.dtype != DT_STRING {
            return Err(Error::bad_input(
                &self.index_path,
                format!(
                    "tensor \"{key}\" has dtype {}; expected DT_STRING",
                    entry.dtype
                ),
            ));
        }
        let (path, bytes) = self.read_bytes(entry)?;
        decode_strings(entry, &bytes).map_err(|e| {
            Error::bad_input(
                &path,
                format!(
                    "tensor \"{key}\": {e}; expected an intact TensorFlow checkpoint data file"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study_dir(model: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../shared/models/{model}/variables"))
    }

    #[test]
    fn reads_the_study_index() {
        let ckpt = Checkpoint::open(&study_dir("upbeat-snowflake-91"), "variables").unwrap();
        let e = ckpt
            .index()
            .entry("trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE")
            .unwrap();
        assert_eq!(e.shape, vec![3, 3, 4, 64]);
        assert_eq!(e.dtype, DT_FLOAT);
        let (shape, v) = ckpt
            .read_f32("layer_with_weights-2/bias/.ATTRIBUTES/VARIABLE_VALUE")
            .unwrap();
        assert_eq!(shape, vec![1]);
        assert_eq!(v.len(), 1);
        let graph = ckpt.read_strings(OBJECT_GRAPH_KEY).unwrap();
        assert_eq!(graph.len(), 1);
        assert!(graph[0].len() > 1000);
    }

    #[test]
    fn string_tensor_corruption_is_detected() {
        let dir = study_dir("visionary-serenity");
        let ckpt = Checkpoint::open(&dir, "variables").unwrap();
        let entry = ckpt.index().entry(OBJECT_GRAPH_KEY).unwrap().clone();
        let shard = fs::read(dir.join("variables.data-00000-of-00001")).unwrap();
        let bytes = tensor_bytes(&entry, &shard).unwrap();
        assert!(decode_strings(&entry, bytes).is_ok());
        for i in [0, 1, 3, 10, bytes.len() - 1] {
            let mut b = bytes.to_vec();
            b[i] ^= 0x10;
            assert!(decode_strings(&entry, &b).is_err(), "flip at {i}");
        }
    }
}
