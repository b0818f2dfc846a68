//! The frame store in the origin-private file system: one folder per render under
//! `keyshift-renders/`, holding `job.json` (what was asked), one PNG per finished frame by
//! generation index (`00000.png…`, written the moment the frame exists, with its `parameters` and
//! record) and `end.json` once the render finished. Frames never accumulate in wasm memory; a
//! reload loses at most the frame in progress, and Resume reads the PNGs back.

use std::collections::BTreeMap;

use js_sys::{Reflect, Uint8Array};
use keyshift_core::image::heatmap::HeatmapData;
use keyshift_render::store::{StoredEnd, frame_file, frame_index, heatmap_file};
use keyshift_web::protocol::{RenderInfo, RenderJob};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileReaderSync, FileSystemDirectoryHandle, FileSystemRemoveOptions, FileSystemSyncAccessHandle,
};

use crate::cache::{child_dir, file_handle, js_text, read_file, top_dir};

const ROOT: &str = "keyshift-renders";
const JOB: &str = "job.json";
const END: &str = "end.json";

/// One render's folder.
pub struct RenderStore {
    dir: FileSystemDirectoryHandle,
}

impl RenderStore {
    /// The folder of render `id`, created if `create`.
    pub async fn open(id: &str, create: bool) -> Result<Option<Self>, String> {
        let Some(root) = top_dir(ROOT, create).await? else {
            return Ok(None);
        };
        Ok(child_dir(&root, id, create).await?.map(|dir| Self { dir }))
    }

    /// A fresh folder for render `id` (an earlier one of that id is deleted), holding `job`.
    pub async fn create(job: &RenderJob) -> Result<Self, String> {
        delete(&job.render).await?;
        let store = Self::open(&job.render, true)
            .await?
            .ok_or("the frame store could not be created")?;
        store.write(JOB, job_json(job).as_bytes()).await?;
        Ok(store)
    }

    /// Writes (replaces) the file `name`.
    pub async fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let handle = file_handle(&self.dir, name, true)
            .await?
            .ok_or_else(|| format!("{name}: cannot create it in the frame store"))?;
        let access: FileSystemSyncAccessHandle = JsFuture::from(handle.create_sync_access_handle())
            .await
            .map_err(|e| js_text(&e))?
            .unchecked_into();
        let written = access
            .truncate_with_f64(0.0)
            .and_then(|()| access.write_with_u8_array(bytes))
            .and_then(|n| access.flush().map(|()| n));
        access.close();
        match written.map_err(|e| js_text(&e))? {
            n if n as usize == bytes.len() => Ok(()),
            _ => Err(format!("{name}: the disk took only part of a write")),
        }
    }

    /// The bytes of file `name`, if it is there.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(handle) = file_handle(&self.dir, name, false).await? else {
            return Ok(None);
        };
        let blob = read_file(&handle).await?;
        let reader = FileReaderSync::new().map_err(|e| js_text(&e))?;
        let buffer = reader
            .read_as_array_buffer(&blob)
            .map_err(|e| js_text(&e))?;
        Ok(Some(Uint8Array::new(&buffer).to_vec()))
    }

    /// Keeps a finished frame.
    pub async fn put_frame(&self, index: usize, png: &[u8]) -> Result<(), String> {
        self.write(&frame_file(index), png).await
    }

    /// Keeps a finished frame's token heatmap.
    pub async fn put_heatmap(&self, index: usize, map: &HeatmapData) -> Result<(), String> {
        let json = serde_json::to_vec(map).map_err(|e| e.to_string())?;
        self.write(&heatmap_file(index), &json).await
    }

    /// The token heatmap of the frame generated `index`-th, if it has one.
    pub async fn heatmap(&self, index: usize) -> Result<Option<HeatmapData>, String> {
        match self.read(&heatmap_file(index)).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("the heatmap of frame {index}: {e}")),
            None => Ok(None),
        }
    }

    /// Every stored heatmap, by generation index.
    pub async fn heatmaps(&self) -> Result<BTreeMap<usize, HeatmapData>, String> {
        let mut maps = BTreeMap::new();
        for index in self.frame_indices().await? {
            if let Some(map) = self.heatmap(index).await? {
                maps.insert(index, map);
            }
        }
        Ok(maps)
    }

    /// Records the end of the render.
    pub async fn finish(&self, end: &StoredEnd) -> Result<(), String> {
        let json = serde_json::to_string(end).map_err(|e| e.to_string())?;
        self.write(END, json.as_bytes()).await
    }

    /// The job the render was started with.
    pub async fn job(&self) -> Result<RenderJob, String> {
        let bytes = self
            .read(JOB)
            .await?
            .ok_or("the render's job.json is missing")?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the render's job.json: {e}"))
    }

    /// The end of the render, once it finished.
    pub async fn end(&self) -> Result<Option<StoredEnd>, String> {
        match self.read(END).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("the render's end.json: {e}")),
            None => Ok(None),
        }
    }

    /// Every stored frame's generation index.
    pub async fn frame_indices(&self) -> Result<Vec<usize>, String> {
        let mut indices: Vec<usize> = names(&self.dir)
            .await?
            .iter()
            .filter_map(|n| frame_index(n))
            .collect();
        indices.sort_unstable();
        Ok(indices)
    }

    /// The PNG of the frame generated `index`-th.
    pub async fn frame(&self, index: usize) -> Result<Vec<u8>, String> {
        self.read(&frame_file(index))
            .await?
            .ok_or_else(|| format!("frame {index} is missing from the frame store"))
    }

    /// Every stored frame's PNG, by generation index.
    pub async fn frames(&self) -> Result<BTreeMap<usize, Vec<u8>>, String> {
        let mut frames = BTreeMap::new();
        for index in self.frame_indices().await? {
            frames.insert(index, self.frame(index).await?);
        }
        Ok(frames)
    }

    /// Bytes of every file.
    async fn bytes(&self) -> Result<u64, String> {
        let mut total = 0;
        for name in names(&self.dir).await? {
            if let Some(handle) = file_handle(&self.dir, &name, false).await? {
                total += read_file(&handle).await?.size() as u64;
            }
        }
        Ok(total)
    }

    /// What the render list shows of it.
    pub async fn info(&self, id: &str) -> Result<RenderInfo, String> {
        Ok(RenderInfo {
            id: id.to_owned(),
            job: self.job().await?,
            frames: self.frame_indices().await?.len(),
            bytes: self.bytes().await?,
            complete: self.end().await?.is_some(),
        })
    }
}

fn job_json(job: &RenderJob) -> String {
    let stored = RenderJob {
        resume: false,
        ..job.clone()
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// The names in a folder.
async fn names(dir: &FileSystemDirectoryHandle) -> Result<Vec<String>, String> {
    let iterator = dir.keys();
    let mut out = Vec::new();
    loop {
        let next = JsFuture::from(iterator.next().map_err(|e| js_text(&e))?)
            .await
            .map_err(|e| js_text(&e))?;
        let field = |name: &str| Reflect::get(&next, &JsValue::from_str(name)).ok();
        if field("done").and_then(|d| d.as_bool()).unwrap_or(true) {
            return Ok(out);
        }
        if let Some(name) = field("value").and_then(|v| v.as_string()) {
            out.push(name);
        }
    }
}

/// Every render in the store, newest first (ids are start times; unreadable folders skipped).
pub async fn list() -> Result<Vec<RenderInfo>, String> {
    let Some(root) = top_dir(ROOT, false).await? else {
        return Ok(Vec::new());
    };
    let mut ids = names(&root).await?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut renders = Vec::new();
    for id in ids {
        if let Some(store) = RenderStore::open(&id, false).await?
            && let Ok(info) = store.info(&id).await
        {
            renders.push(info);
        }
    }
    Ok(renders)
}

/// Deletes render `id` (absent is fine).
pub async fn delete(id: &str) -> Result<(), String> {
    let Some(root) = top_dir(ROOT, false).await? else {
        return Ok(());
    };
    let options = FileSystemRemoveOptions::new();
    options.set_recursive(true);
    match JsFuture::from(root.remove_entry_with_options(id, &options)).await {
        Ok(_) => Ok(()),
        Err(e) if js_text(&e).starts_with("NotFoundError") => Ok(()),
        Err(e) => Err(js_text(&e)),
    }
}
