//! Loading weights tensor by tensor from byte sources, with key layouts mapped to the model's names.
//!
//! The model blocks ask for tensors by their diffusers names (`down_blocks.0.resnets.1.conv1.weight`);
//! a [`KeyMap`] turns each name into the key stored in the file (identity for the diffusers folder
//! layout, [`layout`] for the CompVis/A1111 single file). Every read is checked against the shape the
//! block expects, and after loading, keys nobody asked for are reported, so a wrong or damaged file
//! fails with a message naming the tensor instead of producing noise.

pub mod layout;
pub mod safetensors;

use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::{Device, Tensor, TensorData};

pub use self::safetensors::{Dtype, SafetensorsFile};

/// Why weights could not be loaded. Every variant names the file and, where there is one, the tensor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The file ends before the data its header describes.
    #[error("`{file}` is truncated: it needs {needed_bytes} bytes but has {len_bytes}")]
    Truncated {
        /// File name.
        file: String,
        /// Bytes the header says the file has.
        needed_bytes: u64,
        /// Bytes it has.
        len_bytes: u64,
    },
    /// The header is not a valid safetensors header.
    #[error("`{file}` has a bad safetensors header: {problem}")]
    BadHeader {
        /// File name.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("`{file}` has no tensor `{key}`")]
    MissingKey {
        /// File name.
        file: String,
        /// The stored key looked for.
        key: String,
    },
    /// The file holds tensors the model does not use (a different architecture or a damaged file).
    #[error("`{file}` has {count} tensors this model does not use, e.g. `{first}`")]
    UnexpectedKeys {
        /// File name.
        file: String,
        /// How many.
        count: usize,
        /// The first one, sorted by name.
        first: String,
    },
    /// A tensor has a different shape than the model expects.
    #[error("`{file}`: tensor `{key}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// File name.
        file: String,
        /// Stored key.
        key: String,
        /// Shape the model expects.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in an element type we cannot use as weights.
    #[error("`{file}`: tensor `{key}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// File name.
        file: String,
        /// Stored key.
        key: String,
        /// The dtype's name.
        dtype: String,
    },
    /// Reading the source failed.
    #[error("reading `{file}` failed: {message}")]
    Io {
        /// File name.
        file: String,
        /// The system's message.
        message: String,
    },
    /// A configuration file is missing or invalid.
    #[error("config `{file}`: {problem}")]
    Config {
        /// File name.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// The checkpoint is not a Stable Diffusion model we know.
    #[error("unrecognised checkpoint: {0}")]
    Unrecognised(String),
}

/// Random-access bytes: a file natively, a Blob or OPFS handle in the browser, memory in tests.
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` with the bytes starting at `offset`.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// Bytes already in memory.
#[derive(Debug, Clone)]
pub struct MemorySource {
    bytes: Vec<u8>,
}

impl MemorySource {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }
}

impl ByteSource for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.bytes.get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end")
}

/// A file on disk (native only; the browser passes a Blob or OPFS source).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    /// Opens `path` for reading.
    #[allow(clippy::disallowed_methods, reason = "native-only file source")]
    pub fn open(path: &std::path::Path) -> Result<Self, LoadError> {
        let io = |e: std::io::Error| LoadError::Io {
            file: path.display().to_string(),
            message: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(Self { file, len })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }
}

/// Where a model name is stored: the key, and optionally a row range of it (OpenCLIP stores q, k
/// and v stacked in one `in_proj_weight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The key in the file.
    pub key: String,
    /// Rows `start..end` of the first dimension, if only part of the tensor is meant.
    pub rows: Option<(usize, usize)>,
}

impl Stored {
    /// The whole tensor under `key`.
    pub fn key(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            rows: None,
        }
    }
}

/// Maps the model's (diffusers) tensor names to stored keys.
pub trait KeyMap {
    /// Where `name` is stored.
    fn map(&self, name: &str) -> Stored;
}

/// Stored keys are the model's names behind a fixed prefix (the diffusers folder layout).
#[derive(Debug, Clone, Default)]
pub struct Prefixed(pub String);

impl KeyMap for Prefixed {
    fn map(&self, name: &str) -> Stored {
        Stored::key(format!("{}{name}", self.0))
    }
}

/// A set of safetensors files indexed by key, tracking which tensors were read.
#[derive(Debug, Default)]
pub struct WeightStore {
    files: Vec<SafetensorsFile>,
    index: BTreeMap<String, usize>,
    used: BTreeSet<String>,
    synthetic: Option<u64>,
}

impl WeightStore {
    /// Indexes `files`; a key present in several files is taken from the first.
    pub fn new(files: Vec<SafetensorsFile>) -> Self {
        let mut index = BTreeMap::new();
        for (i, file) in files.iter().enumerate() {
            for key in file.entries().keys() {
                index.entry(key.clone()).or_insert(i);
            }
        }
        Self {
            files,
            index,
            used: BTreeSet::new(),
            synthetic: None,
        }
    }

    /// A store that answers every request with small deterministic pseudo-random values of the
    /// requested shape: a model of any configuration without a file (benchmarks, tests).
    pub fn synthetic(seed: u64) -> Self {
        Self {
            synthetic: Some(seed),
            ..Self::default()
        }
    }

    fn synthetic_values(seed: u64, name: &str, len: usize) -> Vec<f32> {
        let mut state = name.bytes().fold(seed ^ 0x9E37_79B9_7F4A_7C15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04
            })
            .collect()
    }

    /// Whether `key` is stored.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The stored shape of `key`.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        let file = self.files.get(*self.index.get(key)?)?;
        Some(&file.entries().get(key)?.shape)
    }

    /// All stored keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The name of the first file (for messages).
    pub fn name(&self) -> &str {
        self.files.first().map_or("weights", SafetensorsFile::name)
    }

    fn read(&mut self, key: &str) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        let missing = LoadError::MissingKey {
            file: self.name().to_owned(),
            key: key.to_owned(),
        };
        let Some(&i) = self.index.get(key) else {
            return Err(missing);
        };
        let Some(file) = self.files.get_mut(i) else {
            return Err(missing);
        };
        let shape = file
            .entries()
            .get(key)
            .map(|e| e.shape.clone())
            .unwrap_or_default();
        let values = file.read_f32(key)?;
        self.used.insert(key.to_owned());
        Ok((values, shape))
    }

    /// Fails on the first stored key under `prefix` that was not read, skipping keys for which
    /// `ignore` is true.
    pub fn check_all_used(
        &self,
        prefix: &str,
        ignore: impl Fn(&str) -> bool,
    ) -> Result<(), LoadError> {
        let unused: Vec<&String> = self
            .index
            .keys()
            .filter(|k| k.starts_with(prefix) && !self.used.contains(*k) && !ignore(k))
            .collect();
        match unused.first() {
            None => Ok(()),
            Some(first) => Err(LoadError::UnexpectedKeys {
                file: self.name().to_owned(),
                count: unused.len(),
                first: (*first).clone(),
            }),
        }
    }
}

/// A view of a [`WeightStore`] for one model component: names are mapped, shapes checked, and
/// tensors created on `device`.
pub struct Loader<'a> {
    store: &'a mut WeightStore,
    map: &'a dyn KeyMap,
    device: Device,
}

impl<'a> Loader<'a> {
    /// A loader reading `store` through `map` onto `device`.
    pub fn new(store: &'a mut WeightStore, map: &'a dyn KeyMap, device: &Device) -> Self {
        Self {
            store,
            map,
            device: device.clone(),
        }
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the model name `name` is stored.
    pub fn has(&self, name: &str) -> bool {
        self.store.contains(&self.map.map(name).key)
    }

    /// The stored shape of model name `name` (the whole stored tensor).
    pub fn stored_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.store
            .shape(&self.map.map(name).key)
            .map(<[usize]>::to_vec)
    }

    /// Reads `name` as a tensor of `shape`. A stored shape that differs only by trailing 1s
    /// (a 1×1 conv stored for a linear layer, or the other way) is accepted.
    pub fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, LoadError> {
        let values = self.values(name, &shape)?;
        Ok(Tensor::<D>::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }

    /// Reads `name` as flat f32 values, checked against `shape`.
    pub fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        if let Some(seed) = self.store.synthetic {
            return Ok(WeightStore::synthetic_values(
                seed,
                name,
                shape.iter().product(),
            ));
        }
        let stored = self.map.map(name);
        let (values, stored_shape) = self.store.read(&stored.key)?;
        let (values, found) = match stored.rows {
            None => (values, stored_shape),
            Some((start, end)) => slice_rows(values, &stored_shape, start, end),
        };
        if !same_ignoring_trailing_ones(&found, shape) {
            return Err(LoadError::ShapeMismatch {
                file: self.store.name().to_owned(),
                key: stored.key,
                expected: shape.to_vec(),
                found,
            });
        }
        Ok(values)
    }
}

fn slice_rows(
    values: Vec<f32>,
    shape: &[usize],
    start: usize,
    end: usize,
) -> (Vec<f32>, Vec<usize>) {
    let row: usize = shape.iter().skip(1).product();
    let rows = shape.first().copied().unwrap_or(0);
    let (start, end) = (start.min(rows), end.min(rows).max(start.min(rows)));
    let mut new_shape = shape.to_vec();
    if let Some(first) = new_shape.first_mut() {
        *first = end - start;
    }
    let sliced = values
        .get(start * row..end * row)
        .map(<[f32]>::to_vec)
        .unwrap_or_default();
    (sliced, new_shape)
}

fn same_ignoring_trailing_ones(a: &[usize], b: &[usize]) -> bool {
    let trim = |s: &[usize]| {
        let mut n = s.len();
        while n > 1 && s[n - 1] == 1 {
            n -= 1;
        }
        s[..n].to_vec()
    };
    a == b || trim(a) == trim(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> WeightStore {
        let w: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let bytes = safetensors::encode(&[
            ("m.in_proj", Dtype::F32, &[6, 2], &w),
            ("m.conv", Dtype::F32, &[2, 2, 1, 1], &w[..16]),
        ]);
        let file =
            SafetensorsFile::open("t.safetensors", Box::new(MemorySource::new(bytes))).unwrap();
        WeightStore::new(vec![file])
    }

    struct Split;
    impl KeyMap for Split {
        fn map(&self, name: &str) -> Stored {
            match name {
                "k" => Stored {
                    key: "m.in_proj".into(),
                    rows: Some((2, 4)),
                },
                other => Stored::key(format!("m.{other}")),
            }
        }
    }

    #[test]
    fn rows_of_a_stacked_tensor_can_be_read() {
        let mut s = store();
        let mut loader = Loader::new(&mut s, &Split, &Device::flex());
        assert_eq!(
            loader.values("k", &[2, 2]).unwrap(),
            vec![4.0, 5.0, 6.0, 7.0]
        );
    }

    #[test]
    fn a_1x1_conv_loads_as_a_linear_weight_and_shapes_are_checked() {
        let mut s = store();
        let mut loader = Loader::new(&mut s, &Split, &Device::flex());
        assert_eq!(loader.values("conv", &[2, 2]).unwrap().len(), 4);
        let err = loader.values("conv", &[4]).unwrap_err();
        assert!(
            matches!(err, LoadError::ShapeMismatch { ref found, .. } if found == &vec![2, 2, 1, 1]),
            "{err}"
        );
    }

    #[test]
    fn missing_and_unused_keys_are_named() {
        let mut s = store();
        let mut loader = Loader::new(&mut s, &Split, &Device::flex());
        let err = loader.values("nope", &[1]).unwrap_err();
        assert!(err.to_string().contains("m.nope"), "{err}");
        loader.values("conv", &[2, 2]).unwrap();
        let err = s.check_all_used("m.", |_| false).unwrap_err();
        assert!(err.to_string().contains("m.in_proj"), "{err}");
        assert!(s.check_all_used("m.", |k| k.ends_with("in_proj")).is_ok());
    }
}
