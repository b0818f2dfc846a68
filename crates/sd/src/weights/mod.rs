//! Loading weights tensor by tensor from byte sources, with key layouts mapped to the model's names.
//!
//! The model blocks ask for tensors by their diffusers names (`down_blocks.0.resnets.1.conv1.weight`);
//! a [`KeyMap`] turns each name into the key stored in the file (identity for the diffusers folder
//! layout, [`layout`] for the CompVis/A1111 single file). Every read is checked against the shape the
//! block expects, and after loading, keys nobody asked for are reported, so a wrong or damaged file
//! fails with a message naming the tensor instead of producing noise.

pub mod layout;
pub mod quant;
pub mod stream;

use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::{Device, Tensor, TensorData};

pub use self::quant::{Precision, Q8};
#[cfg(not(target_arch = "wasm32"))]
pub use keyshift_core::weights::FileSource;
pub use keyshift_core::weights::safetensors::{self, Dtype, SafetensorsFile};
pub use keyshift_core::weights::{ByteSource, LoadError, MemorySource};

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
    recorded: Option<BTreeMap<String, Saved>>,
    stream: Option<stream::StreamingWriter>,
}

/// A tensor as a model loaded at [`Precision::Int8`] holds it, to be saved again.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// Values already rounded to f16, with their stored shape.
    F16(Vec<f32>, Vec<usize>),
    /// Block-quantized values.
    Q8(Q8),
}

/// A weight matrix as a layer receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Weight {
    /// f32 values in the stored layout.
    Float(Vec<f32>),
    /// int8 blocks in the stored layout.
    Q8(Q8),
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
            recorded: None,
            stream: None,
        }
    }

    /// Keeps every tensor read from now on, as the model holds it, for [`WeightStore::saved`].
    pub fn record(&mut self) {
        self.recorded = Some(BTreeMap::new());
    }

    /// The tensors recorded since [`WeightStore::record`], by stored key.
    pub fn saved(&mut self) -> BTreeMap<String, Saved> {
        self.recorded.take().unwrap_or_default()
    }

    /// Writes every tensor read at [`Precision::Int8`] to `writer` as it is read (as
    /// [`WeightStore::record`] keeps them, without holding them).
    pub fn stream_to(&mut self, writer: stream::StreamingWriter) {
        self.stream = Some(writer);
    }

    /// The writer given to [`WeightStore::stream_to`], to finish.
    pub fn take_stream(&mut self) -> Option<stream::StreamingWriter> {
        self.stream.take()
    }

    /// Whether any stored tensor is int8 (a model saved at [`Precision::Int8`]).
    pub fn is_quantized(&self) -> bool {
        self.files.iter().any(|f| {
            f.entries()
                .values()
                .any(|e| e.dtype == safetensors::Dtype::I8)
        })
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

    fn file_of(&mut self, key: &str) -> Result<&mut SafetensorsFile, LoadError> {
        let missing = LoadError::MissingKey {
            file: self.name().to_owned(),
            key: key.to_owned(),
        };
        let Some(&i) = self.index.get(key) else {
            return Err(missing);
        };
        self.files.get_mut(i).ok_or(missing)
    }

    fn stored_dtype(&self, key: &str) -> Option<Dtype> {
        let file = self.files.get(*self.index.get(key)?)?;
        Some(file.entries().get(key)?.dtype)
    }

    /// Reads `key` as f32 (dequantizing an int8 tensor), rounded to f16 if `round`.
    fn read(&mut self, key: &str, round: bool) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        if self.stored_dtype(key) == Some(Dtype::I8) {
            let q = self.read_q8(key)?;
            return Ok((q.dequantize(), q.shape));
        }
        let file = self.file_of(key)?;
        let shape = file
            .entries()
            .get(key)
            .map(|e| e.shape.clone())
            .unwrap_or_default();
        let mut values = file.read_f32(key)?;
        if round {
            quant::round_f16(&mut values);
        }
        self.used.insert(key.to_owned());
        if let (Some(recorded), true) = (&mut self.recorded, round) {
            recorded.insert(key.to_owned(), Saved::F16(values.clone(), shape.clone()));
        }
        if let (Some(stream), true) = (&mut self.stream, round) {
            let bytes: Vec<u8> = values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect();
            stream.put(key, Dtype::F16, &shape, &bytes)?;
        }
        Ok((values, shape))
    }

    /// Reads `key` as int8 blocks: as stored, or quantized now from a float tensor.
    fn read_q8(&mut self, key: &str) -> Result<Q8, LoadError> {
        let file = self.file_of(key)?;
        let name = file.name().to_owned();
        let stored = file
            .entries()
            .get(key)
            .cloned()
            .ok_or_else(|| LoadError::MissingKey {
                file: name.clone(),
                key: key.to_owned(),
            })?;
        let q = if stored.dtype == Dtype::I8 {
            let (entry, bytes) = file.read_bytes(key)?;
            let scale_key = format!("{key}{}", quant::SCALE_SUFFIX);
            let scale_shape = self.shape(&scale_key).map(<[usize]>::to_vec);
            let scale_file = self.file_of(&scale_key)?;
            let scales = scale_file.read_f32(&scale_key)?;
            let values = bytes.iter().map(|&b| b as i8).collect();
            let q = Q8::from_parts(
                entry.shape,
                values,
                &scale_shape.unwrap_or_default(),
                scales,
            )
            .map_err(|problem| LoadError::BadHeader {
                file: name,
                problem: format!("tensor `{key}`: {problem}"),
            })?;
            self.used.insert(scale_key);
            q
        } else {
            // Read in chunks: the stored bytes and the f32 values are never whole at once.
            let values = file.read_f32(key)?;
            Q8::quantize(&values, &stored.shape)
        };
        self.used.insert(key.to_owned());
        if let Some(recorded) = &mut self.recorded {
            recorded.insert(key.to_owned(), Saved::Q8(q.clone()));
        }
        if let Some(stream) = &mut self.stream {
            let values: Vec<u8> = q.values.iter().map(|&v| v as u8).collect();
            stream.put(key, Dtype::I8, &q.shape, &values)?;
            let scales: Vec<u8> = q.scales.iter().flat_map(|v| v.to_le_bytes()).collect();
            stream.put(
                &format!("{key}{}", quant::SCALE_SUFFIX),
                Dtype::F32,
                &q.scale_shape(),
                &scales,
            )?;
        }
        Ok(q)
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
    quantize: bool,
    round: bool,
}

impl<'a> Loader<'a> {
    /// A loader reading `store` through `map` onto `device`.
    pub fn new(store: &'a mut WeightStore, map: &'a dyn KeyMap, device: &Device) -> Self {
        Self {
            store,
            map,
            device: device.clone(),
            quantize: false,
            round: false,
        }
    }

    /// Holds this component at `precision`: at [`Precision::Int8`], weight matrices (linear,
    /// convolution, the token embedding) are int8 and every other tensor is rounded to f16.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.round = precision == Precision::Int8;
        self.quantize = self.round;
        self
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
            let mut values = WeightStore::synthetic_values(seed, name, shape.iter().product());
            if self.round {
                quant::round_f16(&mut values);
            }
            return Ok(values);
        }
        let stored = self.map.map(name);
        let (values, stored_shape) = self.store.read(&stored.key, self.round)?;
        let (values, found) = match stored.rows {
            None => (values, stored_shape),
            Some((start, end)) => slice_rows(values, &stored_shape, start, end),
        };
        self.check_shape(&stored.key, found, shape)?;
        Ok(values)
    }

    /// Reads the weight matrix (linear or convolution) `name` of `shape`: int8 blocks when this
    /// component quantizes its matrices, f32 otherwise.
    pub fn weight(&mut self, name: &str, shape: &[usize]) -> Result<Weight, LoadError> {
        if !self.quantize {
            return self.values(name, shape).map(Weight::Float);
        }
        if self.store.synthetic.is_some() {
            let values = self.values(name, shape)?;
            return Ok(Weight::Q8(Q8::quantize(&values, shape)));
        }
        let stored = self.map.map(name);
        let q = self.store.read_q8(&stored.key)?;
        let q = match stored.rows {
            None => q,
            Some((start, end)) => q.rows(start, end).ok_or_else(|| LoadError::ShapeMismatch {
                file: self.store.name().to_owned(),
                key: stored.key.clone(),
                expected: shape.to_vec(),
                found: q.shape.clone(),
            })?,
        };
        self.check_shape(&stored.key, q.shape.clone(), shape)?;
        Ok(Weight::Q8(q))
    }

    /// Reads `name` of `shape` through [`Loader::weight`] as an f32 tensor: an int8 weight is
    /// dequantized (convolutions, embedding tables: int8 when stored, f32 on the device).
    pub fn dequantized<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, LoadError> {
        let values = match self.weight(name, &shape)? {
            Weight::Float(values) => values,
            Weight::Q8(q) => q.dequantize(),
        };
        Ok(Tensor::<D>::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }

    fn check_shape(&self, key: &str, found: Vec<usize>, shape: &[usize]) -> Result<(), LoadError> {
        if same_ignoring_trailing_ones(&found, shape) {
            return Ok(());
        }
        Err(LoadError::ShapeMismatch {
            file: self.store.name().to_owned(),
            key: key.to_owned(),
            expected: shape.to_vec(),
            found,
        })
    }
}

/// Writes the tensors a [`WeightStore`] recorded as one safetensors file: f16 values, and int8
/// values with their scales under the key plus [`quant::SCALE_SUFFIX`].
pub fn encode_saved(saved: &BTreeMap<String, Saved>) -> Vec<u8> {
    let mut parts: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (key, tensor) in saved {
        match tensor {
            Saved::F16(values, shape) => {
                let bytes = values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect();
                parts.push((key.clone(), Dtype::F16, shape.clone(), bytes));
            }
            Saved::Q8(q) => {
                let values = q.values.iter().map(|&v| v as u8).collect();
                parts.push((key.clone(), Dtype::I8, q.shape.clone(), values));
                let scales = q.scales.iter().flat_map(|v| v.to_le_bytes()).collect();
                parts.push((
                    format!("{key}{}", quant::SCALE_SUFFIX),
                    Dtype::F32,
                    q.scale_shape(),
                    scales,
                ));
            }
        }
    }
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = parts
        .iter()
        .map(|(k, d, s, b)| (k.as_str(), *d, s.as_slice(), b.as_slice()))
        .collect();
    safetensors::encode(&refs)
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
