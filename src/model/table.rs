//! A reader for LevelDB-format sorted string tables, the container of TensorFlow's
//! `variables.index` (TensorFlow's `core/lib/io/table*` is a copy of LevelDB's table code).
//!
//! Layout (LevelDB `doc/table_format.md`, `table/format.cc`, `table/block.cc`):
//! - the file ends with a 48-byte footer: two BlockHandles (metaindex, index), each a pair
//!   of varint64 `(offset, size)`, zero padding to 40 bytes, then the fixed64 magic
//!   `0xdb4775248b80fb57`;
//! - each block is followed by a 5-byte trailer: one compression-type byte (0 = none,
//!   1 = Snappy) and the masked crc32c of the block contents plus that type byte;
//! - a block is a run of entries `varint32 shared, varint32 non_shared, varint32 value_len,
//!   key[shared..] bytes, value bytes` (keys prefix-compressed against the previous key),
//!   then a restart array of fixed32 offsets (entries with `shared == 0`) and its fixed32
//!   length;
//! - the index block maps a separator key to the BlockHandle of each data block.
//!
//! Everything is bounds-checked: corrupt or hostile bytes give an error, never a panic, and
//! never an allocation larger than a fixed multiple of the input.

use std::ops::Range;

/// LevelDB's table magic number (`kTableMagicNumber`, table/format.h).
pub const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// `Footer::kEncodedLength`: two handles of at most 20 bytes each, then the 8-byte magic.
const FOOTER_LEN: usize = 48;
/// `kBlockTrailerSize`: 1 type byte + 4 crc bytes.
const TRAILER_LEN: usize = 5;
/// Longest key accepted. TensorFlow checkpoint keys are object paths of a few hundred bytes.
const MAX_KEY_LEN: usize = 64 * 1024;
/// Total bytes of decoded keys accepted for one table: prefix compression lets a small file
/// describe many long keys, so this caps memory for hostile input.
const MAX_TOTAL_KEY_BYTES: usize = 32 << 20;

/// `crc32c::Mask` of TensorFlow and LevelDB (`util/crc32c.h`): rotate right by 15 bits and
/// add a constant, so that a crc stored inside checksummed data does not checksum itself.
pub fn mask_crc32c(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One key/value pair of a table; the value borrows the file's bytes.
pub type Entry<'a> = (Vec<u8>, &'a [u8]);

/// Every entry of the table in `bytes`, in key order. Every block's crc32c is checked,
/// keys must be strictly increasing, and blocks must be uncompressed.
pub fn read_table(bytes: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    let footer_at = bytes.len().checked_sub(FOOTER_LEN).ok_or_else(|| {
        format!(
            "{} bytes, shorter than the {FOOTER_LEN}-byte table footer",
            bytes.len()
        )
    })?;
    let footer = &bytes[footer_at..];
    let magic = u64::from_le_bytes(fixed::<8>(footer, 40)?);
    if magic != MAGIC {
        return Err(format!(
            "table magic {magic:#018x} at offset {}; expected {MAGIC:#018x}",
            footer_at + 40
        ));
    }
    let mut pos = 0;
    let metaindex = block_handle(&footer[..40], &mut pos)
        .map_err(|e| format!("footer metaindex handle: {e}"))?;
    let index =
        block_handle(&footer[..40], &mut pos).map_err(|e| format!("footer index handle: {e}"))?;

    let blocks = &bytes[..footer_at];
    // The metaindex block is not used (TensorFlow writes no filter blocks) but it is part of
    // the file, so it must be intact too.
    block_entries(
        read_block(blocks, metaindex.clone())?,
        &mut KeyBudget::new(),
    )?;

    let mut budget = KeyBudget::new();
    let index_entries = block_entries(read_block(blocks, index.clone())?, &mut budget)?;
    let mut out: Vec<Entry<'_>> = Vec::new();
    for (separator, handle_bytes) in index_entries {
        let mut p = 0;
        let handle = block_handle(handle_bytes, &mut p)
            .map_err(|e| format!("index entry {}: {e}", show_key(&separator)))?;
        if handle.end > index.start {
            return Err(format!(
                "data block at offset {} overlaps the index block at offset {}",
                handle.start, index.start
            ));
        }
        let entries = block_entries(read_block(blocks, handle.clone())?, &mut budget)?;
        if let Some((last, _)) = entries.last() {
            if *last > separator {
                return Err(format!(
                    "index separator {} is below the last key {} of the block at offset {}",
                    show_key(&separator),
                    show_key(last),
                    handle.start
                ));
            }
        }
        for (key, value) in entries {
            if let Some((prev, _)) = out.last() {
                if key <= *prev {
                    return Err(format!(
                        "key {} does not sort after {}; expected keys in increasing order",
                        show_key(&key),
                        show_key(prev)
                    ));
                }
            }
            out.push((key, value));
        }
    }
    Ok(out)
}

/// Caps the total size of decoded keys of one table.
struct KeyBudget(usize);

impl KeyBudget {
    fn new() -> Self {
        KeyBudget(MAX_TOTAL_KEY_BYTES)
    }

    fn take(&mut self, n: usize) -> Result<(), String> {
        self.0 = self
            .0
            .checked_sub(n)
            .ok_or_else(|| format!("keys total more than {MAX_TOTAL_KEY_BYTES} bytes"))?;
        Ok(())
    }
}

/// A key for messages: printable ASCII as is, anything else escaped, long keys cut.
fn show_key(key: &[u8]) -> String {
    let mut s: String = key
        .iter()
        .take(80)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if key.len() > 80 {
        s.push_str("...");
    }
    format!("\"{s}\"")
}

/// `N` bytes at `at`, or an error.
fn fixed<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| format!("{N}-byte field at offset {at} runs past the end"))
}

/// A LevelDB varint of at most `max_bytes` bytes (5 for varint32, 10 for varint64).
fn varint(bytes: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, String> {
    let start = *pos;
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let b = *bytes
            .get(*pos)
            .ok_or_else(|| format!("varint at offset {start} runs past the end"))?;
        *pos += 1;
        let bits = u64::from(b & 0x7f);
        // The tenth byte of a varint64 may only carry the 64th bit.
        if i == 9 && bits > 1 {
            return Err(format!("varint at offset {start} overflows 64 bits"));
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(format!(
        "varint at offset {start} is longer than {max_bytes} bytes"
    ))
}

fn varint32(bytes: &[u8], pos: &mut usize) -> Result<usize, String> {
    let start = *pos;
    let v = varint(bytes, pos, 5)?;
    u32::try_from(v)
        .map(|v| v as usize)
        .map_err(|_| format!("varint32 at offset {start} exceeds 32 bits"))
}

/// A BlockHandle (`offset`, `size` as varint64) as a byte range of the file.
fn block_handle(bytes: &[u8], pos: &mut usize) -> Result<Range<usize>, String> {
    let offset = varint(bytes, pos, 10)?;
    let size = varint(bytes, pos, 10)?;
    let start = usize::try_from(offset).map_err(|_| format!("block offset {offset} too large"))?;
    let len = usize::try_from(size).map_err(|_| format!("block size {size} too large"))?;
    let end = start
        .checked_add(len)
        .ok_or_else(|| format!("block offset {offset} + size {size} overflows"))?;
    Ok(start..end)
}

/// The contents of the block at `handle`, after checking its trailer. `blocks` is the file
/// without its footer, so a block and its trailer must end before the footer.
fn read_block(blocks: &[u8], handle: Range<usize>) -> Result<(usize, &[u8]), String> {
    let trailer = handle
        .end
        .checked_add(TRAILER_LEN)
        .and_then(|end| blocks.get(handle.end..end))
        .ok_or_else(|| {
            format!(
                "block at offset {} of {} bytes runs past the end of the table ({} bytes before the footer)",
                handle.start,
                handle.len(),
                blocks.len()
            )
        })?;
    let contents = blocks
        .get(handle.clone())
        .ok_or_else(|| format!("block at offset {} runs past the end", handle.start))?;
    let kind = trailer[0];
    let stored = u32::from_le_bytes([trailer[1], trailer[2], trailer[3], trailer[4]]);
    let actual = mask_crc32c(crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]));
    if stored != actual {
        return Err(format!(
            "block crc32c mismatch at offset {} (stored {stored:#010x}, computed {actual:#010x})",
            handle.start
        ));
    }
    match kind {
        0 => Ok((handle.start, contents)),
        1 => Err(format!(
            "block at offset {} is Snappy-compressed; expected uncompressed blocks (type 0), as TensorFlow writes",
            handle.start
        )),
        k => Err(format!(
            "block at offset {} has unknown compression type {k}; expected 0 (none)",
            handle.start
        )),
    }
}

/// The entries of one block (LevelDB `block.cc`); `base` is the block's file offset, for
/// messages.
fn block_entries<'a>(
    (base, block): (usize, &'a [u8]),
    budget: &mut KeyBudget,
) -> Result<Vec<Entry<'a>>, String> {
    let at = |p: usize| base + p;
    let n_restarts = u32::from_le_bytes(
        block
            .len()
            .checked_sub(4)
            .and_then(|p| fixed::<4>(block, p).ok())
            .ok_or_else(|| format!("block at offset {base} is shorter than its restart count"))?,
    ) as usize;
    let restarts_at = n_restarts
        .checked_mul(4)
        .and_then(|n| n.checked_add(4))
        .and_then(|n| block.len().checked_sub(n))
        .ok_or_else(|| {
            format!("block at offset {base} claims {n_restarts} restart points, more than fit in its {} bytes", block.len())
        })?;
    let mut restarts = Vec::with_capacity(n_restarts);
    for i in 0..n_restarts {
        let r = u32::from_le_bytes(fixed::<4>(block, restarts_at + 4 * i)?) as usize;
        if r >= restarts_at && !(r == 0 && restarts_at == 0) {
            return Err(format!(
                "restart point {i} of the block at offset {base} points to {r}, past its entries"
            ));
        }
        restarts.push(r);
    }
    let entries_area = &block[..restarts_at];
    let mut entries: Vec<Entry<'a>> = Vec::new();
    let mut starts = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < entries_area.len() {
        let entry_at = pos;
        let shared = varint32(entries_area, &mut pos)
            .map_err(|e| format!("{e} in block at offset {base}"))?;
        let non_shared = varint32(entries_area, &mut pos)
            .map_err(|e| format!("{e} in block at offset {base}"))?;
        let value_len = varint32(entries_area, &mut pos)
            .map_err(|e| format!("{e} in block at offset {base}"))?;
        if shared > prev.len() {
            return Err(format!(
                "entry at offset {} shares {shared} key bytes with a previous key of {} bytes",
                at(entry_at),
                prev.len()
            ));
        }
        let key_len = shared
            .checked_add(non_shared)
            .filter(|&n| n <= MAX_KEY_LEN)
            .ok_or_else(|| {
                format!(
                    "entry at offset {} has a key longer than {MAX_KEY_LEN} bytes",
                    at(entry_at)
                )
            })?;
        let key_end = pos
            .checked_add(non_shared)
            .filter(|&e| e <= entries_area.len())
            .ok_or_else(|| {
                format!(
                    "key of the entry at offset {} runs past its block",
                    at(entry_at)
                )
            })?;
        let value_end = key_end
            .checked_add(value_len)
            .filter(|&e| e <= entries_area.len())
            .ok_or_else(|| {
                format!(
                    "value of the entry at offset {} runs past its block",
                    at(entry_at)
                )
            })?;
        budget.take(key_len)?;
        let mut key = Vec::with_capacity(key_len);
        key.extend_from_slice(&prev[..shared]);
        key.extend_from_slice(&entries_area[pos..key_end]);
        let value = &entries_area[key_end..value_end];
        starts.push((entry_at, shared));
        prev.clone_from(&key);
        entries.push((key, value));
        pos = value_end;
    }
    // Every restart point must be the start of an entry that stores its whole key.
    for (i, &r) in restarts.iter().enumerate() {
        if entries.is_empty() {
            break;
        }
        match starts.binary_search_by_key(&r, |&(s, _)| s) {
            Ok(j) if starts[j].1 == 0 => {}
            _ => {
                return Err(format!(
                    "restart point {i} of the block at offset {base} ({r}) is not the start of a full key"
                ))
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an uncompressed table of `entries` (one data block) as LevelDB would.
    pub(crate) fn build_table(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        fn put_varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        fn block(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
            let mut b = Vec::new();
            let mut prev: &[u8] = &[];
            for (k, v) in entries {
                let shared = prev
                    .iter()
                    .zip(k.iter())
                    .take_while(|(a, b)| a == b)
                    .count();
                put_varint(&mut b, shared as u64);
                put_varint(&mut b, (k.len() - shared) as u64);
                put_varint(&mut b, v.len() as u64);
                b.extend_from_slice(&k[shared..]);
                b.extend_from_slice(v);
                prev = k;
            }
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b
        }
        fn emit(file: &mut Vec<u8>, contents: &[u8]) -> (u64, u64) {
            let at = file.len() as u64;
            file.extend_from_slice(contents);
            file.push(0);
            let crc = mask_crc32c(crc32c::crc32c_append(crc32c::crc32c(contents), &[0]));
            file.extend_from_slice(&crc.to_le_bytes());
            (at, contents.len() as u64)
        }
        let mut file = Vec::new();
        let data = emit(&mut file, &block(entries));
        let meta = emit(&mut file, &block(&[]));
        let mut handle = Vec::new();
        put_varint(&mut handle, data.0);
        put_varint(&mut handle, data.1);
        let last = entries.last().map(|e| e.0).unwrap_or(b"");
        let index = emit(&mut file, &block(&[(last, &handle)]));
        let mut footer = Vec::new();
        put_varint(&mut footer, meta.0);
        put_varint(&mut footer, meta.1);
        put_varint(&mut footer, index.0);
        put_varint(&mut footer, index.1);
        footer.resize(40, 0);
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        file.extend_from_slice(&footer);
        file
    }

    #[test]
    fn reads_what_it_builds() {
        let t = build_table(&[(b"", b"h"), (b"abc", b"1"), (b"abd", b"22")]);
        let e = read_table(&t).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].0, b"abc");
        assert_eq!(e[2].0, b"abd");
        assert_eq!(e[2].1, b"22");
    }

    #[test]
    fn every_flipped_bit_and_truncation_is_an_error_not_a_panic() {
        let t = build_table(&[(b"", b"h"), (b"abc", b"1"), (b"abd", b"22")]);
        for i in 0..t.len() {
            for bit in 0..8 {
                let mut c = t.clone();
                c[i] ^= 1 << bit;
                // Padding bytes of the footer are not covered by any check.
                let _ = read_table(&c);
            }
            assert!(read_table(&t[..i]).is_err());
        }
    }

    #[test]
    fn mask_matches_tensorflow() {
        // upbeat-snowflake-91's dense bias: 4 bytes at offset 192 of its data file have
        // crc32c 0xd8e39a67, and its BundleEntryProto stores 0xd7529c9f.
        assert_eq!(mask_crc32c(0xd8e3_9a67), 0xd752_9c9f);
    }
}
