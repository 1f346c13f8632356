//! The tensor-bundle reader on hostile bytes: input = `u32 LE n`, then `n` bytes of
//! `variables.index`, then the rest as the data shard. Every entry is looked up and read
//! (float32 or string) against that fake shard; the checkpoint object graph is decoded.
//! Any outcome but a panic, an out-of-bounds access or a huge allocation is fine.
#![no_main]

use burstwatch::model::bundle::{self, BundleIndex, OBJECT_GRAPH_KEY};
use burstwatch::model::proto::{TrackableObjectGraph, DT_FLOAT, DT_STRING};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|input: &[u8]| {
    let Some((len, rest)) = input.split_first_chunk::<4>() else {
        return;
    };
    let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (index, shard) = rest.split_at(n);
    let Ok(index) = BundleIndex::parse(index) else {
        return;
    };
    let keys: Vec<String> = index.keys().map(str::to_string).collect();
    for key in keys
        .iter()
        .map(String::as_str)
        .chain([OBJECT_GRAPH_KEY, "missing"])
    {
        let Ok(entry) = index.entry(key) else {
            continue;
        };
        let Ok(bytes) = bundle::tensor_bytes(entry, shard) else {
            continue;
        };
        match entry.dtype {
            DT_FLOAT => {
                let _ = bundle::decode_f32(entry, bytes);
            }
            DT_STRING => {
                if let Ok(strings) = bundle::decode_strings(entry, bytes) {
                    for s in strings {
                        let _ = TrackableObjectGraph::decode(&s[..]);
                    }
                }
            }
            _ => {}
        }
    }
});
