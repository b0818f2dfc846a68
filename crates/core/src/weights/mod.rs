//! Weight files as bytes: the safetensors reader, the byte sources it reads from, and the errors
//! every weight loader reports. Pure and burn-free, so the fuzz targets reach it; the engine
//! (`keyshift-sd`) maps the tensors onto its blocks.

mod read_ahead;
pub mod safetensors;

pub use self::read_ahead::ReadAhead;
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

/// What a v1/v2-inference.yaml tells that the weights do not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct YamlHints {
    /// `num_heads` (SD 1.x: 8 heads everywhere).
    pub num_heads: Option<usize>,
    /// `num_head_channels` (SD 2.x: 64 channels per head).
    pub num_head_channels: Option<usize>,
    /// `parameterization: "v"`.
    pub v_prediction: bool,
    /// `scale_factor`.
    pub scale_factor: Option<f64>,
}

impl YamlHints {
    /// Reads the few keys we need, line by line (the configs are flat enough for that).
    pub fn parse(text: &str) -> Self {
        let mut hints = Self::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim().trim_matches('"').trim_matches('\'');
            match key.trim() {
                "num_heads" => hints.num_heads = value.parse().ok().filter(|&n: &usize| n > 0),
                "num_head_channels" => {
                    hints.num_head_channels = value.parse().ok().filter(|&n: &usize| n > 0)
                }
                "parameterization" => hints.v_prediction = value == "v",
                "scale_factor" => hints.scale_factor = value.parse().ok(),
                _ => {}
            }
        }
        hints
    }
}
