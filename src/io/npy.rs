//! NumPy `.npy` (format versions 1–3) and `.npz` reading, and `.npy` writing.
//!
//! Reading accepts every real dtype NumPy writes (bool, signed and unsigned integers, f16,
//! f32, f64, either byte order) in C order; anything else (complex, strings, objects,
//! Fortran order with more than one axis) is refused with an error that names the file
//! and says what was expected.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    F32,
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 | DType::F16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }
}

/// An array as read from a file: its shape, dtype and raw little- or big-endian bytes.
#[derive(Debug, Clone)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub dtype: DType,
    big_endian: bool,
    data: Vec<u8>,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes of a `u8` array.
    pub fn as_u8(&self) -> Option<&[u8]> {
        (self.dtype == DType::U8).then_some(&self.data[..])
    }

    /// The data of a uint8 array, taken out of it (no copy); the array back otherwise.
    pub fn into_u8(self) -> std::result::Result<Vec<u8>, NpyArray> {
        if self.dtype == DType::U8 {
            Ok(self.data)
        } else {
            Err(self)
        }
    }

    /// Every element converted to f64 (exact for all dtypes but 64-bit integers beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        let n = self.dtype.size();
        self.data
            .chunks_exact(n)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(c);
                if self.big_endian {
                    b[..n].reverse();
                }
                match self.dtype {
                    DType::Bool => (b[0] != 0) as u8 as f64,
                    DType::I8 => b[0] as i8 as f64,
                    DType::U8 => b[0] as f64,
                    DType::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
                    DType::U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
                    DType::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])) as f64,
                    DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                    DType::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                    DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                    DType::I64 => i64::from_le_bytes(b) as f64,
                    DType::U64 => u64::from_le_bytes(b) as f64,
                    DType::F64 => f64::from_le_bytes(b),
                }
            })
            .collect()
    }

    /// Every element converted to f32 (f32 data is returned bit for bit).
    pub fn to_f32(&self) -> Vec<f32> {
        if self.dtype == DType::F32 && !self.big_endian {
            return self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        }
        self.to_f64().into_iter().map(|v| v as f32).collect()
    }
}

/// IEEE half precision to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Reads a `.npy` file. The file's bytes become the array's in place (the header is
/// drained off the front), so a 1.4 GB frame stack peaks at 1.4 GB, not twice that.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_owned(bytes).map_err(|what| Error::bad_input(path, what))
}

/// Parses the bytes of a `.npy` file; the error says what is wrong, without the path.
pub fn parse(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    let h = read_header(bytes)?;
    Ok(NpyArray {
        data: bytes[h.data_start..h.data_start + h.data_len].to_vec(),
        shape: h.shape,
        dtype: h.dtype,
        big_endian: h.big_endian,
    })
}

/// [`parse`], keeping `bytes` as the array's data (no copy).
pub fn parse_owned(mut bytes: Vec<u8>) -> std::result::Result<NpyArray, String> {
    let h = read_header(&bytes)?;
    bytes.truncate(h.data_start + h.data_len);
    bytes.drain(..h.data_start);
    Ok(NpyArray {
        data: bytes,
        shape: h.shape,
        dtype: h.dtype,
        big_endian: h.big_endian,
    })
}

/// What a `.npy` header says, checked against the bytes that follow it.
struct Header {
    shape: Vec<usize>,
    dtype: DType,
    big_endian: bool,
    /// Where the data starts, and its length in bytes.
    data_start: usize,
    data_len: usize,
}

fn read_header(bytes: &[u8]) -> std::result::Result<Header, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic); expected a NumPy .npy array".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => {
            return Err(format!(
                "unsupported .npy format version {v}; expected 1, 2 or 3"
            ))
        }
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let fortran =
        dict_value(header, "fortran_order").ok_or("the .npy header has no 'fortran_order'")?;
    let shape = parse_shape(dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?)?;
    let (dtype, big_endian) = parse_descr(descr)?;
    let fortran = fortran.starts_with("True");
    if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err("array is in Fortran order; expected C order".into());
    }
    let n: usize = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("the shape in the .npy header is too large")?;
    let need = n
        .checked_mul(dtype.size())
        .ok_or("the shape in the .npy header is too large")?;
    let data_start = start + header_len;
    let have = bytes.len() - data_start;
    if have < need {
        return Err(format!(
            "truncated .npy data: {have} bytes for shape {shape:?} of {dtype:?}, expected {need}"
        ));
    }
    Ok(Header {
        shape,
        dtype,
        big_endian,
        data_start,
        data_len: need,
    })
}

/// The text after `'key':` in the header dict, up to the end of its value.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}'");
    let pat2 = format!("\"{key}\"");
    let at = header.find(&pat1).or_else(|| header.find(&pat2))?;
    let rest = header[at + pat1.len()..].trim_start();
    Some(rest.strip_prefix(':')?.trim_start())
}

fn parse_descr(v: &str) -> std::result::Result<(DType, bool), String> {
    let quote = v.chars().next().filter(|c| *c == '\'' || *c == '"');
    let Some(q) = quote else {
        return Err(format!(
            "structured dtype {}; expected a plain real dtype (bool, integer or float)",
            v.split('}').next().unwrap_or(v)
        ));
    };
    let body = &v[1..];
    let end = body.find(q).ok_or("malformed 'descr' in the .npy header")?;
    let d = &body[..end];
    let (order, code) = match d.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &d[1..]),
        _ => ('=', d),
    };
    let dtype = match code {
        "b1" | "?" => DType::Bool,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        c if c.starts_with('c') => {
            return Err(format!(
                "complex dtype '{d}'; expected a real dtype (bool, integer or float)"
            ))
        }
        c if c.starts_with('U') || c.starts_with('S') || c.starts_with('a') => {
            return Err(format!(
                "string dtype '{d}'; expected a real dtype (bool, integer or float)"
            ))
        }
        _ => {
            return Err(format!(
                "unsupported dtype '{d}'; expected a real dtype (bool, integer or float)"
            ))
        }
    };
    Ok((dtype, order == '>'))
}

fn parse_shape(v: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = v
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("malformed 'shape' in the .npy header")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("malformed 'shape' in the .npy header: {v}"))
        })
        .collect()
}

/// Reads a one-dimensional real series: shape `(T,)` or `(T, 1)`, every value finite.
pub fn read_series(path: &Path) -> Result<Vec<f64>> {
    let a = read(path)?;
    match a.shape.as_slice() {
        [_] | [_, 1] => {}
        [_, c] => {
            return Err(Error::bad_input(
                path,
                format!("{c} columns; expected one series, shape (T,) or (T, 1)"),
            ))
        }
        s => {
            return Err(Error::bad_input(
                path,
                format!("shape {s:?}; expected one series, shape (T,) or (T, 1)"),
            ))
        }
    }
    let v = a.to_f64();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::bad_input(
            path,
            format!("value {} at index {i}; expected finite numbers", v[i]),
        ));
    }
    Ok(v)
}

/// Reads every array of a `.npz` archive, in archive order, keyed by name (without `.npy`).
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    let file = fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let bad = |what: String| Error::bad_input(path, what);
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        bad(format!(
            "not a .npz archive ({e}); expected a NumPy .npz file"
        ))
    })?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("broken .npz entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(format!("broken .npz entry name {i}: {e}")))?
            .trim_end_matches(".npy")
            .to_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("broken .npz entry {name}: {e}")))?;
        let array = parse_owned(bytes).map_err(|e| bad(format!("entry {name}: {e}")))?;
        out.push((name, array));
    }
    Ok(out)
}

/// Element types this module writes.
pub trait NpyElement: Copy {
    /// The `descr` string of this type.
    const DESCR: &'static str;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
}

impl NpyElement for f64 {
    const DESCR: &'static str = "<f8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for u8 {
    const DESCR: &'static str = "|u1";
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

/// Encodes `data` with `shape` as `.npy` (version 1) bytes.
pub fn encode<T: NpyElement>(data: &[T], shape: &[usize]) -> Vec<u8> {
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "npy::encode: data length does not match shape"
    );
    let mut out = header::<T>(shape);
    out.reserve(data.len() * 8);
    for &v in data {
        v.put(&mut out);
    }
    out
}

/// The `.npy` (version 1) header for an array of `T` with `shape`: write it, then the
/// elements in C order, to stream an array too large to hold (a long frame stack).
pub fn header<T: NpyElement>(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_txt}, }}",
        T::DESCR
    );
    // Pad so that the data starts on a 64-byte boundary, as NumPy does.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Writes `data` with `shape` to a `.npy` file.
pub fn write<T: NpyElement>(path: &Path, data: &[T], shape: &[usize]) -> Result<()> {
    let bytes = encode(data, shape);
    fs::File::create(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_f64_and_u8() {
        let a = parse(&encode(&[1.5f64, -2.0, 3.25], &[3])).unwrap();
        assert_eq!(a.shape, vec![3]);
        assert_eq!(a.to_f64(), vec![1.5, -2.0, 3.25]);
        let b = parse(&encode(&[1u8, 2, 3, 4, 5, 6], &[1, 2, 3])).unwrap();
        assert_eq!(b.shape, vec![1, 2, 3]);
        assert_eq!(b.as_u8().unwrap(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn rejects_complex_and_strings() {
        let mut bytes = encode(&[0f64; 2], &[2]);
        let at = bytes.windows(3).position(|w| w == b"<f8").unwrap();
        bytes[at..at + 3].copy_from_slice(b"<c8");
        assert!(parse(&bytes).unwrap_err().contains("complex"));
        bytes[at..at + 3].copy_from_slice(b"<U4");
        assert!(parse(&bytes).unwrap_err().contains("string"));
    }
}
