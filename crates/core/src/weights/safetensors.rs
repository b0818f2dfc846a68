//! A streaming reader for the safetensors format: the header is parsed once, then each tensor is
//! read on demand from a [`ByteSource`], so a multi-GB checkpoint never sits whole in memory.
//!
//! Format: 8 bytes little-endian header length `n`, `n` bytes of JSON
//! (`{"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
//! then the data, offsets relative to the end of the header.

use std::collections::BTreeMap;

use super::{ByteSource, LoadError};

/// Headers larger than this are refused (real checkpoints have < 1 MB of header).
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;
/// The longest dimension a tensor may have (the largest in Stable Diffusion is the text
/// encoder's vocabulary, 49408): a shape like `[0, 4000000000]` holds no bytes but would drive
/// allocations sized from it.
pub const MAX_DIMENSION: usize = 1 << 24;

/// The element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// 64-bit signed integers (e.g. CLIP's `position_ids`).
    I64,
    /// 32-bit signed integers.
    I32,
    /// 8-bit signed integers (int8 quantized weights, with their scales beside them).
    I8,
}

impl Dtype {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F16" => Self::F16,
            "BF16" => Self::Bf16,
            "F32" => Self::F32,
            "F64" => Self::F64,
            "I64" => Self::I64,
            "I32" => Self::I32,
            "I8" => Self::I8,
            _ => return None,
        })
    }

    /// The name the safetensors header gives it (`F16`, `I8`…).
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "F16",
            Self::Bf16 => "BF16",
            Self::F32 => "F32",
            Self::F64 => "F64",
            Self::I64 => "I64",
            Self::I32 => "I32",
            Self::I8 => "I8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
            Self::I8 => 1,
        }
    }

    /// Whether the values are floating point (only those can be model weights).
    pub fn is_float(self) -> bool {
        matches!(self, Self::F16 | Self::Bf16 | Self::F32 | Self::F64)
    }
}

/// Where one tensor lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Absolute byte offset of the first element.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
}

/// An opened safetensors file: its index, and the source to read tensors from.
pub struct SafetensorsFile {
    name: String,
    source: Box<dyn ByteSource>,
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("name", &self.name)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl SafetensorsFile {
    /// Reads and checks the header of `source`. `name` is used in error messages.
    pub fn open(name: &str, mut source: Box<dyn ByteSource>) -> Result<Self, LoadError> {
        let file_len = source.len();
        let mut len_bytes = [0u8; 8];
        if file_len < 8 {
            return Err(truncated(name, 8, file_len));
        }
        source
            .read_exact_at(0, &mut len_bytes)
            .map_err(|e| io(name, e))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES {
            return Err(bad_header(
                name,
                format!("header length {header_len} is implausible"),
            ));
        }
        let data_start = 8 + header_len;
        if file_len < data_start {
            return Err(truncated(name, data_start, file_len));
        }
        let mut header = vec![0u8; header_len as usize];
        source
            .read_exact_at(8, &mut header)
            .map_err(|e| io(name, e))?;
        let entries = parse_header(name, &header, data_start)?;
        check_extent(name, &entries, file_len)?;
        Ok(Self {
            name: name.to_owned(),
            source,
            entries,
        })
    }

    /// The file's name as given to [`SafetensorsFile::open`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every tensor's name and location, sorted by name.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// Reads one tensor's stored bytes.
    pub fn read_bytes(&mut self, key: &str) -> Result<(Entry, Vec<u8>), LoadError> {
        let entry = self.entries.get(key).ok_or_else(|| LoadError::MissingKey {
            file: self.name.clone(),
            key: key.to_owned(),
        })?;
        let entry = entry.clone();
        let mut bytes = vec![0u8; entry.len as usize];
        self.source
            .read_exact_at(entry.offset, &mut bytes)
            .map_err(|e| io(&self.name, e))?;
        Ok((entry, bytes))
    }

    /// Reads one tensor, converted to f32. The stored bytes are read a chunk at a time, so
    /// converting needs the f32 values plus one chunk of memory, not the stored tensor as well.
    pub fn read_f32(&mut self, key: &str) -> Result<Vec<f32>, LoadError> {
        let entry = self
            .entries
            .get(key)
            .ok_or_else(|| LoadError::MissingKey {
                file: self.name.clone(),
                key: key.to_owned(),
            })?
            .clone();
        let unsupported = || LoadError::UnsupportedDtype {
            file: self.name.clone(),
            key: key.to_owned(),
            dtype: format!("{:?}", entry.dtype),
        };
        if !entry.dtype.is_float() {
            return Err(unsupported());
        }
        let size = entry.dtype.size() as u64;
        let mut values = Vec::with_capacity(usize::try_from(entry.len / size).unwrap_or(0));
        let step = READ_CHUNK - READ_CHUNK % size;
        let mut chunk = vec![0u8; usize::try_from(step.min(entry.len)).unwrap_or(0)];
        let mut at = 0;
        while at < entry.len {
            let n = step.min(entry.len - at);
            let buf = &mut chunk[..usize::try_from(n).unwrap_or(0)];
            self.source
                .read_exact_at(entry.offset + at, buf)
                .map_err(|e| io(&self.name, e))?;
            values.extend(decode_f32(buf, entry.dtype).ok_or_else(unsupported)?);
            at += n;
        }
        Ok(values)
    }
}

/// Bytes read at a time by [`SafetensorsFile::read_f32`].
const READ_CHUNK: u64 = 8 << 20;

fn parse_header(
    name: &str,
    header: &[u8],
    data_start: u64,
) -> Result<BTreeMap<String, Entry>, LoadError> {
    let text = std::str::from_utf8(header)
        .map_err(|_| bad_header(name, "the header is not UTF-8".into()))?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| bad_header(name, format!("the header is not JSON: {e}")))?;
    let mut entries = BTreeMap::new();
    for (key, value) in raw {
        if key == "__metadata__" {
            continue;
        }
        let entry = parse_entry(name, &key, &value, data_start)?;
        entries.insert(key, entry);
    }
    Ok(entries)
}

#[derive(serde::Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

fn parse_entry(
    name: &str,
    key: &str,
    value: &serde_json::Value,
    data_start: u64,
) -> Result<Entry, LoadError> {
    let raw: RawEntry = serde_json::from_value(value.clone())
        .map_err(|e| bad_header(name, format!("tensor `{key}`: {e}")))?;
    let Some(dtype) = Dtype::parse(&raw.dtype) else {
        return Err(LoadError::UnsupportedDtype {
            file: name.to_owned(),
            key: key.to_owned(),
            dtype: raw.dtype,
        });
    };
    if let Some(d) = raw.shape.iter().find(|&&d| d > MAX_DIMENSION) {
        return Err(bad_header(
            name,
            format!(
                "tensor `{key}` has shape {:?}: a dimension of {d} is over Keyshift's limit of \
                 {MAX_DIMENSION}",
                raw.shape
            ),
        ));
    }
    let [begin, end] = raw.data_offsets;
    let elements = raw
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let expected = elements.and_then(|n| n.checked_mul(dtype.size() as u64));
    if end < begin || expected != Some(end - begin) {
        return Err(bad_header(
            name,
            format!(
                "tensor `{key}`: offsets {begin}..{end} do not fit {:?} {:?}",
                dtype, raw.shape
            ),
        ));
    }
    let offset = data_start.checked_add(begin).ok_or_else(|| {
        bad_header(
            name,
            format!("tensor `{key}`: offset {begin} is past any file"),
        )
    })?;
    Ok(Entry {
        dtype,
        shape: raw.shape,
        offset,
        len: end - begin,
    })
}

fn check_extent(
    name: &str,
    entries: &BTreeMap<String, Entry>,
    file_len: u64,
) -> Result<(), LoadError> {
    let needed = entries
        .values()
        .map(|e| e.offset.saturating_add(e.len))
        .max()
        .unwrap_or(0);
    if needed > file_len {
        return Err(truncated(name, needed, file_len));
    }
    Ok(())
}

/// Converts little-endian stored values to f32; `None` for integer types.
pub fn decode_f32(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::Bf16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })
            .collect(),
        Dtype::I64 | Dtype::I32 | Dtype::I8 => return None,
    };
    Some(values)
}

fn truncated(name: &str, needed: u64, len: u64) -> LoadError {
    LoadError::Truncated {
        file: name.to_owned(),
        needed_bytes: needed,
        len_bytes: len,
    }
}

fn bad_header(name: &str, problem: String) -> LoadError {
    LoadError::BadHeader {
        file: name.to_owned(),
        problem,
    }
}

fn io(name: &str, e: std::io::Error) -> LoadError {
    LoadError::Io {
        file: name.to_owned(),
        message: e.to_string(),
    }
}

/// Writes tensors in the safetensors format (f32 or f16), for tests and saved models.
pub fn encode(tensors: &[(&str, Dtype, &[usize], &[u8])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape, bytes) in tensors {
        let dtype_name = dtype.name();
        let end = offset + bytes.len() as u64;
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": dtype_name, "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset as usize);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::MemorySource;

    fn sample() -> Vec<u8> {
        let a: Vec<u8> = [1.0f32, -2.5, 3.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let b: Vec<u8> = [0.5f32, 65504.0]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        encode(&[
            ("a", Dtype::F32, &[3], &a),
            ("b.w", Dtype::F16, &[1, 2], &b),
        ])
    }

    #[test]
    fn a_tensor_larger_than_a_read_chunk_is_read_in_pieces_exactly() {
        // 5 M f16 values (10 MB): two 8 MiB chunks, the second partial.
        let n = 5_000_000usize;
        let bytes: Vec<u8> = (0..n)
            .flat_map(|i| half::f16::from_f32((i % 2048) as f32 - 1024.0).to_le_bytes())
            .collect();
        let file = encode(&[("w", Dtype::F16, &[n], &bytes)]);
        let mut f = SafetensorsFile::open("big", Box::new(MemorySource::new(file))).unwrap();
        let values = f.read_f32("w").unwrap();
        assert_eq!(values.len(), n);
        assert_eq!(values, decode_f32(&bytes, Dtype::F16).unwrap());
        assert!(f.read_f32("missing").is_err());
    }

    #[test]
    fn reads_f32_and_f16_tensors() {
        let mut file = SafetensorsFile::open("t", Box::new(MemorySource::new(sample()))).unwrap();
        assert_eq!(file.entries()["b.w"].shape, vec![1, 2]);
        assert_eq!(file.read_f32("a").unwrap(), vec![1.0, -2.5, 3.25]);
        assert_eq!(file.read_f32("b.w").unwrap(), vec![0.5, 65504.0]);
    }

    #[test]
    fn a_truncated_file_is_named_as_such() {
        let mut bytes = sample();
        bytes.truncate(bytes.len() - 3);
        let err =
            SafetensorsFile::open("m.safetensors", Box::new(MemorySource::new(bytes))).unwrap_err();
        assert!(matches!(err, LoadError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("m.safetensors"), "{err}");
        let err = SafetensorsFile::open("x", Box::new(MemorySource::new(vec![1, 2]))).unwrap_err();
        assert!(matches!(err, LoadError::Truncated { .. }), "{err}");
    }

    #[test]
    fn a_bad_header_is_named_as_such() {
        let mut bytes = 5u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{nope");
        let err = SafetensorsFile::open("x", Box::new(MemorySource::new(bytes))).unwrap_err();
        assert!(matches!(err, LoadError::BadHeader { .. }), "{err}");
        let huge = u64::MAX.to_le_bytes().to_vec();
        let err = SafetensorsFile::open("x", Box::new(MemorySource::new(huge))).unwrap_err();
        assert!(matches!(err, LoadError::BadHeader { .. }), "{err}");
    }

    #[test]
    fn offsets_that_disagree_with_the_shape_are_refused() {
        let header = br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 8]);
        let err = SafetensorsFile::open("x", Box::new(MemorySource::new(bytes))).unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");
    }

    #[test]
    fn an_absurd_dimension_is_refused_naming_the_limit() {
        // No bytes (a zero dimension), but a dimension that would size allocations.
        let header = br#"{"a":{"dtype":"F16","shape":[0,4000000000],"data_offsets":[0,0]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        let err = SafetensorsFile::open("x", Box::new(MemorySource::new(bytes))).unwrap_err();
        assert!(
            err.to_string()
                .contains("a dimension of 4000000000 is over Keyshift's limit of 16777216"),
            "{err}"
        );
    }

    #[test]
    fn unknown_dtypes_are_refused_with_their_name() {
        let header = br#"{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.push(0);
        let err = SafetensorsFile::open("x", Box::new(MemorySource::new(bytes))).unwrap_err();
        assert!(err.to_string().contains("F8_E4M3"), "{err}");
    }
}
