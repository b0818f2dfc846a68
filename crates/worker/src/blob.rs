//! Model files as Blobs: their bytes stay in the browser's memory (or on disk, for an OPFS file),
//! and the engine reads one tensor at a time through `FileReaderSync`, which only workers have.

use std::collections::BTreeMap;

use js_sys::Uint8Array;
use keyshift_core::weights::ReadAhead;
use keyshift_sd::model::Folder;
use keyshift_sd::weights::ByteSource;
use web_sys::{Blob, FileReaderSync};

/// Bytes of one read of a model file. Each read of a Blob costs about 3 ms whatever its size, and
/// a model is hundreds of tensors, most of them small: they are read a block at a time.
const READ_BLOCK: usize = 4 << 20;

/// `blob` as the weight loader reads it: small reads share blocks ([`ReadAhead`]).
pub fn weights_source(blob: Blob) -> Result<Box<dyn ByteSource>, String> {
    Ok(Box::new(ReadAhead::new(BlobSource::new(blob)?, READ_BLOCK)))
}

/// Random access to a Blob.
pub struct BlobSource {
    blob: Blob,
    reader: FileReaderSync,
}

impl BlobSource {
    /// Reads `blob`; fails outside a worker.
    pub fn new(blob: Blob) -> Result<Self, String> {
        let reader = FileReaderSync::new().map_err(|e| format!("FileReaderSync: {e:?}"))?;
        Ok(Self { blob, reader })
    }
}

impl ByteSource for BlobSource {
    fn len(&self) -> u64 {
        self.blob.size() as u64
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        let slice = self
            .blob
            .slice_with_f64_and_f64(offset as f64, end as f64)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let bytes = self
            .reader
            .read_as_array_buffer(&slice)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let array = Uint8Array::new(&bytes);
        if array.length() as usize != buf.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        array.copy_to(buf);
        Ok(())
    }
}

/// A model's files by relative path.
#[derive(Default)]
pub struct BlobFolder {
    files: BTreeMap<String, Blob>,
}

impl BlobFolder {
    /// Adds a file.
    pub fn insert(&mut self, path: &str, blob: Blob) {
        self.files.insert(path.to_owned(), blob);
    }

    /// The files, by path.
    pub fn files(&self) -> impl Iterator<Item = (&String, &Blob)> {
        self.files.iter()
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<&Blob> {
        self.files.get(path)
    }
}

impl Folder for BlobFolder {
    fn read_text(&self, path: &str) -> Option<String> {
        let blob = self.files.get(path)?;
        let reader = FileReaderSync::new().ok()?;
        reader.read_as_text(blob).ok()
    }

    fn open(&self, path: &str) -> Option<Box<dyn ByteSource>> {
        let blob = self.files.get(path)?.clone();
        weights_source(blob).ok()
    }
}
