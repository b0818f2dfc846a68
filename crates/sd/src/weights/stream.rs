//! A safetensors file written one tensor at a time, for saving a model as it loads (the int8
//! model prepared in the browser): each tensor goes to the file when it is read and is dropped,
//! so no component is ever whole in memory. The data follows a header area reserved up front; the
//! header is written last, padded with spaces to fill the area (the format allows trailing
//! whitespace, and the data start stays 8-byte aligned).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use super::{Dtype, LoadError, SafetensorsFile};

/// Random-access output: an OPFS synchronous access handle, a file, memory.
pub trait WriteAt {
    /// Writes `bytes` at byte `offset`, growing the output as needed.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), String>;
}

/// [`WriteAt`] into memory shared by its clones (keep one to read what was written).
#[derive(Debug, Default, Clone)]
pub struct MemoryWriteAt(pub Rc<RefCell<Vec<u8>>>);

impl MemoryWriteAt {
    /// The bytes written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.borrow().clone()
    }
}

impl WriteAt for MemoryWriteAt {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), String> {
        let start = usize::try_from(offset).map_err(|e| e.to_string())?;
        let end = start + bytes.len();
        let mut out = self.0.borrow_mut();
        if out.len() < end {
            out.resize(end, 0);
        }
        out[start..end].copy_from_slice(bytes);
        Ok(())
    }
}

/// A safetensors file being written tensor by tensor.
pub struct StreamingWriter {
    name: String,
    target: Box<dyn WriteAt>,
    /// Bytes reserved for the 8-byte length and the header (a multiple of 8).
    reserve: u64,
    data_len: u64,
    header: serde_json::Map<String, serde_json::Value>,
    keys: BTreeSet<String>,
}

impl std::fmt::Debug for StreamingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingWriter")
            .field("name", &self.name)
            .field("reserve", &self.reserve)
            .field("data_len", &self.data_len)
            .field("tensors", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Header bytes one entry can take beyond its key: `"…":{"dtype":"F16","shape":[…],
/// "data_offsets":[…,…]},` with four 6-digit dimensions and two 13-digit offsets is under 100.
const ENTRY_OVERHEAD: u64 = 128;

impl StreamingWriter {
    /// A writer named `name` (for errors) into `target`, reserving `reserve` header bytes
    /// (rounded up to a multiple of 8).
    pub fn new(name: &str, target: Box<dyn WriteAt>, reserve: u64) -> Self {
        Self {
            name: name.to_owned(),
            target,
            reserve: reserve.div_ceil(8) * 8,
            data_len: 0,
            header: serde_json::Map::new(),
            keys: BTreeSet::new(),
        }
    }

    /// A header reserve that holds every tensor of `source` saved as int8 values plus scales
    /// (two entries per key, the second named `<key>.q8scale`).
    pub fn reserve_for(source: &SafetensorsFile) -> u64 {
        let per_key: u64 = source
            .entries()
            .keys()
            .map(|k| 2 * (k.len() as u64 + ENTRY_OVERHEAD) + 16)
            .sum();
        8 + per_key + 64
    }

    /// Appends one tensor. A key written before is skipped (a tensor read twice).
    pub fn put(
        &mut self,
        key: &str,
        dtype: Dtype,
        shape: &[usize],
        bytes: &[u8],
    ) -> Result<(), LoadError> {
        if !self.keys.insert(key.to_owned()) {
            return Ok(());
        }
        let start = self.data_len;
        let end = start + bytes.len() as u64;
        self.target
            .write_at(self.reserve + start, bytes)
            .map_err(|message| self.io(message))?;
        self.header.insert(
            key.to_owned(),
            serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [start, end]}),
        );
        self.data_len = end;
        Ok(())
    }

    /// Writes the header; returns the file's length in bytes.
    pub fn finish(mut self) -> Result<u64, LoadError> {
        let header = serde_json::Value::Object(std::mem::take(&mut self.header)).to_string();
        let room = self.reserve.saturating_sub(8);
        if header.len() as u64 > room {
            return Err(self.io(format!(
                "the header needs {} bytes but {room} were reserved",
                header.len()
            )));
        }
        let mut padded = header.into_bytes();
        padded.resize(usize::try_from(room).unwrap_or(usize::MAX), b' ');
        let mut head = room.to_le_bytes().to_vec();
        head.extend_from_slice(&padded);
        self.target
            .write_at(0, &head)
            .map_err(|message| self.io(message))?;
        Ok(self.reserve + self.data_len)
    }

    fn io(&self, message: String) -> LoadError {
        LoadError::Io {
            file: self.name.clone(),
            message,
        }
    }
}
