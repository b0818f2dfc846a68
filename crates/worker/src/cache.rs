//! The offline model cache in the origin-private file system (OPFS): one folder per model under
//! `keyshift-models/`, its files written as they download (through a synchronous access handle,
//! so they never sit whole in memory) and a manifest written last. A model is used from the cache
//! only when its manifest is there and every file still has its size and SHA-256.

use js_sys::{Reflect, Uint8Array};
use keyshift_sd::weights::stream::WriteAt;
use keyshift_web::cache::{
    BLOCK_BYTES, CachedFile, FileDigest, MANIFEST, Manifest, PARTIAL, Sha256Digest, from_opfs_name,
    hex_digest, opfs_name,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, FileReaderSync, FileSystemDirectoryHandle, FileSystemFileHandle,
    FileSystemGetDirectoryOptions, FileSystemGetFileOptions, FileSystemReadWriteOptions,
    FileSystemRemoveOptions, FileSystemSyncAccessHandle, StorageEstimate, WorkerGlobalScope,
};

const ROOT: &str = "keyshift-models";

/// Bytes read at a time when checking a file.
const CHECK_CHUNK: f64 = 16.0 * 1024.0 * 1024.0;

/// A browser error as text (`Name: message`).
pub(crate) fn js_text(e: &JsValue) -> String {
    let name = Reflect::get(e, &JsValue::from_str("name"))
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    let message = Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    if name.is_empty() {
        message
    } else {
        format!("{name}: {message}")
    }
}

/// Whether a browser error is the storage quota running out.
pub fn is_quota_error(message: &str) -> bool {
    message.contains("QuotaExceededError")
}

async fn root(create: bool) -> Result<Option<FileSystemDirectoryHandle>, String> {
    top_dir(ROOT, create).await
}

/// The folder `name` at the top of the site's OPFS, created if `create`.
pub(crate) async fn top_dir(
    name: &str,
    create: bool,
) -> Result<Option<FileSystemDirectoryHandle>, String> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let storage = scope.navigator().storage();
    let top: FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
        .await
        .map_err(|e| {
            format!(
                "the browser's file storage is not available ({})",
                js_text(&e)
            )
        })?
        .unchecked_into();
    child_dir(&top, name, create).await
}

/// The folder `name` in `parent` (`None` when absent and not `create`).
pub(crate) async fn child_dir(
    parent: &FileSystemDirectoryHandle,
    name: &str,
    create: bool,
) -> Result<Option<FileSystemDirectoryHandle>, String> {
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(create);
    match JsFuture::from(parent.get_directory_handle_with_options(name, &options)).await {
        Ok(dir) => Ok(Some(dir.unchecked_into())),
        Err(e) if js_text(&e).starts_with("NotFoundError") => Ok(None),
        Err(e) => Err(js_text(&e)),
    }
}

/// The file `name` in `dir` (`None` when absent and not `create`).
pub(crate) async fn file_handle(
    dir: &FileSystemDirectoryHandle,
    name: &str,
    create: bool,
) -> Result<Option<FileSystemFileHandle>, String> {
    let options = FileSystemGetFileOptions::new();
    options.set_create(create);
    match JsFuture::from(dir.get_file_handle_with_options(name, &options)).await {
        Ok(file) => Ok(Some(file.unchecked_into())),
        Err(e) if js_text(&e).starts_with("NotFoundError") => Ok(None),
        Err(e) => Err(js_text(&e)),
    }
}

/// The file's contents as a (disk-backed) Blob.
pub(crate) async fn read_file(handle: &FileSystemFileHandle) -> Result<Blob, String> {
    JsFuture::from(handle.get_file())
        .await
        .map(JsCast::unchecked_into)
        .map_err(|e| js_text(&e))
}

/// The whole SHA-256 and the block digests of a Blob, read in chunks (hashed in wasm).
pub(crate) fn file_digest_of(blob: &Blob) -> Result<(String, Vec<String>), String> {
    let mut digest = FileDigest::default();
    each_chunk(blob, |bytes| digest.update(bytes))?;
    Ok(digest.finish())
}

/// The whole SHA-256 of a Blob, read in chunks (hashed in wasm), where no block digests are
/// wanted.
pub(crate) fn sha256_of(blob: &Blob) -> Result<String, String> {
    let mut digest = Sha256Digest::default();
    each_chunk(blob, |bytes| digest.update(bytes))?;
    Ok(digest.finish())
}

/// Calls `each` with the bytes of `blob`, in order, [`CHECK_CHUNK`] bytes at a time.
fn each_chunk(blob: &Blob, mut each: impl FnMut(&[u8])) -> Result<(), String> {
    let reader = FileReaderSync::new().map_err(|e| js_text(&e))?;
    let mut at = 0.0;
    while at < blob.size() {
        let end = (at + CHECK_CHUNK).min(blob.size());
        let bytes = read_bytes(&reader, blob, at, end)?;
        each(&Uint8Array::new(&bytes).to_vec());
        at = end;
    }
    Ok(())
}

fn read_bytes(
    reader: &FileReaderSync,
    blob: &Blob,
    at: f64,
    end: f64,
) -> Result<js_sys::ArrayBuffer, String> {
    let slice = blob
        .slice_with_f64_and_f64(at, end)
        .map_err(|e| js_text(&e))?;
    reader.read_as_array_buffer(&slice).map_err(|e| js_text(&e))
}

/// The browser's native SHA-256: `crypto.subtle.digest` bound to `crypto.subtle`, where the
/// page is a secure context. (Reached by name: the typed bindings would add web-sys features,
/// and with them a rebuild of everything on web-sys, wgpu included.)
struct Subtle {
    subtle: JsValue,
    digest: js_sys::Function,
}

impl Subtle {
    fn get() -> Option<Self> {
        let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
        let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle")).ok()?;
        let digest = Reflect::get(&subtle, &JsValue::from_str("digest"))
            .ok()?
            .dyn_into()
            .ok()?;
        Some(Self { subtle, digest })
    }

    /// The SHA-256 of `bytes`, computed off the worker's thread.
    fn sha256(&self, bytes: &JsValue) -> Result<JsFuture, String> {
        let promise = self
            .digest
            .call2(&self.subtle, &JsValue::from_str("SHA-256"), bytes)
            .map_err(|e| js_text(&e))?;
        Ok(JsFuture::from(js_sys::Promise::resolve(&promise)))
    }
}

fn hex(digest: &JsValue) -> String {
    hex_digest(&Uint8Array::new(digest).to_vec())
}

/// Whether every [`BLOCK_BYTES`] block of `blob` has its digest in `blocks`: each block's
/// native digest runs while the next block is read, so the check costs about one read of the
/// file.
async fn blocks_match(subtle: &Subtle, blob: &Blob, blocks: &[String]) -> Result<bool, String> {
    let reader = FileReaderSync::new().map_err(|e| js_text(&e))?;
    let size = blob.size();
    let mut pending: Option<(JsFuture, &String)> = None;
    for (i, expected) in blocks.iter().enumerate() {
        let at = i as f64 * BLOCK_BYTES as f64;
        let bytes = read_bytes(&reader, blob, at, (at + BLOCK_BYTES as f64).min(size))?;
        let next = subtle.sha256(&bytes)?;
        if let Some((digest, want)) = pending.replace((next, expected))
            && hex(&digest.await.map_err(|e| js_text(&e))?) != *want
        {
            return Ok(false);
        }
    }
    match pending {
        Some((digest, want)) => Ok(hex(&digest.await.map_err(|e| js_text(&e))?) == *want),
        None => Ok(true),
    }
}

/// Whether the cached `blob` still has the contents `entry` recorded: block by block with the
/// native digest where the entry has block digests, else the whole file in wasm.
async fn contents_match(blob: &Blob, entry: &CachedFile) -> Result<bool, String> {
    match Subtle::get() {
        Some(subtle) if entry.has_blocks() => blocks_match(&subtle, blob, &entry.blocks).await,
        _ => Ok(sha256_of(blob)? == entry.sha256),
    }
}

/// A cache file written at any offset (a model prepared while it loads); closed when dropped.
pub struct RandomWriter {
    access: FileSystemSyncAccessHandle,
}

impl WriteAt for RandomWriter {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), String> {
        let options = FileSystemReadWriteOptions::new();
        options.set_at(offset as f64);
        let n = self
            .access
            .write_with_u8_array_and_options(bytes, &options)
            .map_err(|e| js_text(&e))?;
        if n as usize != bytes.len() {
            return Err("the disk took only part of a write".into());
        }
        Ok(())
    }
}

impl Drop for RandomWriter {
    fn drop(&mut self) {
        // Nothing is left to tell if this fails: the file is checked before it is listed.
        let _ = self.access.flush();
        self.access.close();
    }
}

/// A model's folder in the cache.
pub struct ModelDir {
    dir: FileSystemDirectoryHandle,
}

impl ModelDir {
    /// The folder of model `id`, created if `create`.
    pub async fn open(id: &str, create: bool) -> Result<Option<Self>, String> {
        let Some(root) = root(create).await? else {
            return Ok(None);
        };
        Ok(child_dir(&root, &opfs_name(id), create)
            .await?
            .map(|dir| Self { dir }))
    }

    /// The manifest, if the model was cached completely.
    pub async fn manifest(&self) -> Option<Manifest> {
        let handle = file_handle(&self.dir, MANIFEST, false).await.ok()??;
        let blob = read_file(&handle).await.ok()?;
        let text = FileReaderSync::new().ok()?.read_as_text(&blob).ok()?;
        Manifest::from_json(&text)
    }

    /// The cached file for `path`, checked against its manifest entry (size and SHA-256).
    pub async fn checked_file(&self, entry: &CachedFile) -> Result<Blob, String> {
        let handle = file_handle(&self.dir, &opfs_name(&entry.path), false)
            .await?
            .ok_or_else(|| format!("{} is missing from the cache", entry.path))?;
        let blob = read_file(&handle).await?;
        let size = blob.size() as u64;
        if size != entry.bytes {
            return Err(format!(
                "{} in the cache has {size} bytes instead of {}",
                entry.path, entry.bytes
            ));
        }
        if !contents_match(&blob, entry).await? {
            return Err(format!(
                "{} in the cache is damaged (its checksum changed)",
                entry.path
            ));
        }
        Ok(blob)
    }

    /// A new (empty) file for `path`.
    pub async fn create(&self, path: &str) -> Result<CacheWriter, String> {
        let mut writer = self.open_writer(path).await?;
        writer.restart()?;
        Ok(writer)
    }

    /// The file for `path`, to be continued where an interrupted download left it: its bytes
    /// so far are kept (and hashed again, so the finished file's SHA-256 covers them).
    pub async fn resume(&self, path: &str) -> Result<CacheWriter, String> {
        let mut writer = self.open_writer(path).await?;
        let size = writer.access.get_size().map_err(|e| js_text(&e))?;
        let mut buf = vec![0u8; CHECK_CHUNK as usize];
        let mut at = 0.0;
        while at < size {
            let n = (size - at).min(CHECK_CHUNK) as usize;
            let options = FileSystemReadWriteOptions::new();
            options.set_at(at);
            let read = writer
                .access
                .read_with_u8_array_and_options(&mut buf[..n], &options)
                .map_err(|e| js_text(&e))? as usize;
            if read == 0 {
                break;
            }
            writer.digest.update(&buf[..read]);
            at += read as f64;
        }
        writer.written = at as u64;
        Ok(writer)
    }

    async fn open_access(
        &self,
        path: &str,
    ) -> Result<(FileSystemFileHandle, FileSystemSyncAccessHandle), String> {
        let handle = file_handle(&self.dir, &opfs_name(path), true)
            .await?
            .ok_or_else(|| format!("{path}: cannot create it in the cache"))?;
        let access: FileSystemSyncAccessHandle = JsFuture::from(handle.create_sync_access_handle())
            .await
            .map_err(|e| js_text(&e))?
            .unchecked_into();
        Ok((handle, access))
    }

    async fn open_writer(&self, path: &str) -> Result<CacheWriter, String> {
        let (handle, access) = self.open_access(path).await?;
        Ok(CacheWriter {
            path: path.to_owned(),
            handle,
            access,
            written: 0,
            digest: FileDigest::default(),
        })
    }

    /// A new (empty) file for `path`, written at any offset.
    pub async fn create_random(&self, path: &str) -> Result<RandomWriter, String> {
        let (_, access) = self.open_access(path).await?;
        // Wrapped first, so that the handle is closed if truncating fails.
        let writer = RandomWriter { access };
        writer
            .access
            .truncate_with_f64(0.0)
            .map_err(|e| js_text(&e))?;
        Ok(writer)
    }

    /// The manifest entry of a finished file (its size and SHA-256, read back).
    pub async fn entry_for(&self, path: &str) -> Result<(CachedFile, Blob), String> {
        let handle = file_handle(&self.dir, &opfs_name(path), false)
            .await?
            .ok_or_else(|| format!("{path} is missing from the cache"))?;
        let blob = read_file(&handle).await?;
        let (sha256, blocks) = file_digest_of(&blob)?;
        let entry = CachedFile {
            path: path.to_owned(),
            bytes: blob.size() as u64,
            sha256,
            blocks,
        };
        Ok((entry, blob))
    }

    /// Deletes the file for `path` (absent is fine).
    pub async fn remove(&self, path: &str) -> Result<(), String> {
        match JsFuture::from(self.dir.remove_entry(&opfs_name(path))).await {
            Ok(_) => Ok(()),
            Err(e) if js_text(&e).starts_with("NotFoundError") => Ok(()),
            Err(e) => Err(js_text(&e)),
        }
    }

    /// The files an unfinished download completed, if one was interrupted.
    pub async fn partial(&self) -> Option<Manifest> {
        let handle = file_handle(&self.dir, PARTIAL, false).await.ok()??;
        let blob = read_file(&handle).await.ok()?;
        let text = FileReaderSync::new().ok()?.read_as_text(&blob).ok()?;
        Manifest::from_json(&text)
    }

    /// Records the files completed so far.
    pub async fn write_partial(&self, done: &Manifest) -> Result<(), String> {
        let mut writer = self.create(PARTIAL).await?;
        writer.write(done.to_json().as_bytes())?;
        writer.close().await.map(|_| ())
    }

    /// Writes the manifest: the model is complete.
    pub async fn finish(&self, manifest: &Manifest) -> Result<(), String> {
        let mut writer = self.create(MANIFEST).await?;
        writer.write(manifest.to_json().as_bytes())?;
        writer.close().await?;
        self.remove(PARTIAL).await
    }
}

/// A file being written into the cache.
pub struct CacheWriter {
    path: String,
    handle: FileSystemFileHandle,
    access: FileSystemSyncAccessHandle,
    written: u64,
    digest: FileDigest,
}

impl CacheWriter {
    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let options = FileSystemReadWriteOptions::new();
        options.set_at(self.written as f64);
        let n = self
            .access
            .write_with_u8_array_and_options(bytes, &options)
            .map_err(|e| js_text(&e))?;
        if n as usize != bytes.len() {
            return Err(format!("{}: the disk took only part of a write", self.path));
        }
        self.written += bytes.len() as u64;
        self.digest.update(bytes);
        Ok(())
    }

    /// Bytes in the file so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Forgets what was written (a download starting over).
    pub fn restart(&mut self) -> Result<(), String> {
        self.access
            .truncate_with_f64(0.0)
            .map_err(|e| js_text(&e))?;
        self.written = 0;
        self.digest = FileDigest::default();
        Ok(())
    }

    /// Closes the file; returns its manifest entry and its contents as a (disk-backed) Blob.
    pub async fn close(mut self) -> Result<(CachedFile, Blob), String> {
        self.access.flush().map_err(|e| js_text(&e))?;
        self.access.close();
        let blob = read_file(&self.handle).await?;
        let (sha256, blocks) = std::mem::take(&mut self.digest).finish();
        Ok((
            CachedFile {
                path: std::mem::take(&mut self.path),
                bytes: self.written,
                sha256,
                blocks,
            },
            blob,
        ))
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        // A writer given up on (a missing fp16 file, a failed download) must not keep the file's
        // only access handle open: the next load in this worker could not open the file again.
        // Closing a closed handle does nothing.
        self.access.close();
    }
}

/// A cached model, for the list the user manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// Its id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// Bytes on disk.
    pub bytes: u64,
    /// Whether its manifest is there (an interrupted download has none).
    pub complete: bool,
}

/// Every model folder in the cache.
pub async fn list() -> Result<Vec<CachedModel>, String> {
    let Some(root) = root(false).await? else {
        return Ok(Vec::new());
    };
    let iterator = root.keys();
    let mut models = Vec::new();
    loop {
        let next = JsFuture::from(iterator.next().map_err(|e| js_text(&e))?)
            .await
            .map_err(|e| js_text(&e))?;
        let done = Reflect::get(&next, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let Some(name) = Reflect::get(&next, &JsValue::from_str("value"))
            .ok()
            .and_then(|v| v.as_string())
        else {
            continue;
        };
        let id = from_opfs_name(&name);
        let Some(dir) = ModelDir::open(&id, false).await? else {
            continue;
        };
        let manifest = dir.manifest().await;
        models.push(CachedModel {
            label: manifest
                .as_ref()
                .map_or_else(|| id.clone(), |m| m.label.clone()),
            bytes: manifest.as_ref().map_or(0, Manifest::bytes),
            complete: manifest.is_some(),
            id,
        });
    }
    Ok(models)
}

/// Deletes model `id` from the cache.
pub async fn delete(id: &str) -> Result<(), String> {
    let Some(root) = root(false).await? else {
        return Ok(());
    };
    let options = FileSystemRemoveOptions::new();
    options.set_recursive(true);
    match JsFuture::from(root.remove_entry_with_options(&opfs_name(id), &options)).await {
        Ok(_) => Ok(()),
        Err(e) if js_text(&e).starts_with("NotFoundError") => Ok(()),
        Err(e) => Err(js_text(&e)),
    }
}

/// The storage used and available to the site, in bytes.
pub async fn estimate() -> Result<(u64, u64), String> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let estimate: StorageEstimate = JsFuture::from(
        scope
            .navigator()
            .storage()
            .estimate()
            .map_err(|e| js_text(&e))?,
    )
    .await
    .map_err(|e| js_text(&e))?
    .unchecked_into();
    let usage = estimate.get_usage().unwrap_or(0.0);
    let quota = estimate.get_quota().unwrap_or(0.0);
    Ok((usage as u64, quota as u64))
}
