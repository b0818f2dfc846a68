//! How finished frames are kept, whoever keeps them (the CLI's `.in-progress/` folder, the
//! browser's OPFS frame store), and how a finished render is exported: each frame a PNG carrying
//! A1111's `parameters` and its [`FrameRecord`] (so an interrupted render resumes from the PNGs
//! alone), and the end of the render ([`Finished`]) as JSON.

use std::collections::BTreeMap;

use keyshift_core::export::{StoredZip, encode_gif, with_lead};
use keyshift_core::image::RgbImage;
use keyshift_core::image::heatmap::HeatmapData;
use keyshift_core::pngtext;
use serde::{Deserialize, Serialize};

use crate::manifest::FrameRecord;
use crate::session::{FinishedFrame, StoredFrame};
use crate::source::Finished;

/// The PNG text chunk holding a frame's record.
pub const RECORD_CHUNK: &str = "keyshift-frame";
/// The manifest's name in a folder or zip.
pub const MANIFEST: &str = "frames.json";

/// The stored file name of the frame generated `index`-th.
pub fn frame_file(index: usize) -> String {
    format!("{index:05}.png")
}

/// The stored file name of the token heatmap of the frame generated `index`-th.
pub fn heatmap_file(index: usize) -> String {
    format!("{index:05}.heat.json")
}

/// The opacity of the heatmaps drawn over the frames of a heatmap export.
pub const HEATMAP_OPACITY: f32 = 0.5;

/// The generation index of a stored frame file (`00012.png` → 12).
pub fn frame_index(name: &str) -> Option<usize> {
    let stem = name.strip_suffix(".png")?;
    (stem.len() == 5 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// The PNG of a finished frame: A1111's `parameters`, and its record (to resume with).
pub fn frame_png(frame: &FinishedFrame) -> Result<Vec<u8>, String> {
    let record = serde_json::to_string(&frame.record).map_err(|e| e.to_string())?;
    let img = &frame.image;
    pngtext::encode_rgb(
        img.width,
        img.height,
        &img.data,
        &[("parameters", &frame.parameters), (RECORD_CHUNK, &record)],
    )
    .map_err(|e| e.to_string())
}

/// A frame read back from its PNG.
pub fn stored_frame(png: &[u8]) -> Result<StoredFrame, String> {
    let (record, parameters) = frame_texts(png)?;
    Ok(StoredFrame {
        record,
        image: decode_png(png)?,
        parameters,
    })
}

/// A stored frame's record and `parameters`, without decoding its pixels.
pub fn frame_texts(png: &[u8]) -> Result<(FrameRecord, String), String> {
    let texts = pngtext::read_texts(png).map_err(|e| e.to_string())?;
    let text = |key: &str| {
        texts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("no {key} text"))
    };
    let record = serde_json::from_str(&text(RECORD_CHUNK)?).map_err(|e| e.to_string())?;
    Ok((record, text("parameters")?))
}

/// The RGB pixels of a PNG.
pub fn decode_png(png: &[u8]) -> Result<RgbImage, String> {
    let (width, height, data) = pngtext::decode_rgb(png).map_err(|e| e.to_string())?;
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// The end of a render as stored beside its frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEnd {
    /// Generation indices in video order.
    pub order: Vec<usize>,
    /// The mode's files: name and text.
    pub files: Vec<(String, String)>,
    /// The video's frame rate.
    pub fps: Option<f64>,
    /// Lead in/out.
    pub lead: usize,
}

impl From<&Finished> for StoredEnd {
    fn from(f: &Finished) -> Self {
        Self {
            order: f.order.clone(),
            files: f.files.clone(),
            fps: f.fps,
            lead: f.lead,
        }
    }
}

impl StoredEnd {
    /// The frame rate exports use (30 where the mode asks for no video).
    pub fn video_fps(&self) -> f64 {
        self.fps.filter(|f| *f > 0.0).unwrap_or(30.0)
    }

    /// The PNG bytes of the video's frames in order (mirror included, lead not), each record
    /// renamed to its place (`00000.png…`).
    pub fn in_order<'a>(
        &self,
        frames: &'a BTreeMap<usize, Vec<u8>>,
    ) -> Result<Vec<(String, &'a [u8])>, String> {
        self.order
            .iter()
            .enumerate()
            .map(|(i, index)| {
                frames
                    .get(index)
                    .map(|png| (frame_file(i), png.as_slice()))
                    .ok_or_else(|| format!("frame {index} of the video is missing from the store"))
            })
            .collect()
    }

    /// `frames.json`: every video frame's record, named by its place.
    pub fn manifest(&self, frames: &BTreeMap<usize, Vec<u8>>) -> Result<String, String> {
        let records = self
            .in_order(frames)?
            .into_iter()
            .map(|(file, png)| {
                let (mut record, _) = frame_texts(png)?;
                record.file = file;
                record.manifest_entry()
            })
            .collect::<Result<Vec<_>, String>>()?;
        serde_json::to_string_pretty(&records).map_err(|e| e.to_string())
    }

    /// A zip of the video's PNG frames, `frames.json` and the mode's files.
    pub fn zip(&self, frames: &BTreeMap<usize, Vec<u8>>) -> Result<Vec<u8>, String> {
        let mut zip = StoredZip::new();
        for (name, png) in self.in_order(frames)? {
            zip.add(&name, png).map_err(|e| e.to_string())?;
        }
        zip.add(MANIFEST, self.manifest(frames)?.as_bytes())
            .map_err(|e| e.to_string())?;
        for (name, text) in &self.files {
            zip.add(name, text.as_bytes()).map_err(|e| e.to_string())?;
        }
        Ok(zip.finish())
    }

    /// A zip of the video's frames that have a heatmap, each drawn over at
    /// [`HEATMAP_OPACITY`] (`heatmap-00000.png`…, numbered by place in the video).
    pub fn heatmap_zip(
        &self,
        frames: &BTreeMap<usize, Vec<u8>>,
        heatmaps: &BTreeMap<usize, HeatmapData>,
    ) -> Result<Vec<u8>, String> {
        let mut zip = StoredZip::new();
        let mut drawn = 0;
        for (place, index) in self.order.iter().enumerate() {
            let (Some(png), Some(map)) = (frames.get(index), heatmaps.get(index)) else {
                continue;
            };
            let over = map
                .over_png(png, HEATMAP_OPACITY)
                .map_err(|e| format!("frame {index}: {e}"))?;
            zip.add(&format!("heatmap-{}", frame_file(place)), &over)
                .map_err(|e| e.to_string())?;
            drawn += 1;
        }
        if drawn == 0 {
            return Err(
                "no frame of this render has a heatmap: choose tokens in the token picker, \
                 then render"
                    .into(),
            );
        }
        Ok(zip.finish())
    }

    /// The video's images: lead in/out added.
    pub fn video_images(&self, frames: &BTreeMap<usize, Vec<u8>>) -> Result<Vec<RgbImage>, String> {
        let images = self
            .in_order(frames)?
            .into_iter()
            .map(|(_, png)| decode_png(png))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(with_lead(&images, self.lead))
    }

    /// An animated GIF of the video (lead in/out added).
    pub fn gif(&self, frames: &BTreeMap<usize, Vec<u8>>) -> Result<Vec<u8>, String> {
        encode_gif(&self.video_images(frames)?, self.video_fps()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_files_are_five_digits_and_nothing_else() {
        assert_eq!(frame_file(12), "00012.png");
        assert_eq!(frame_index("00012.png"), Some(12));
        for other in ["job.json", "0012.png", "00012.png.crswap", "0001a.png"] {
            assert_eq!(frame_index(other), None, "{other}");
        }
    }

    #[test]
    fn a_missing_frame_is_named() {
        let end = StoredEnd {
            order: vec![0, 1],
            files: Vec::new(),
            fps: None,
            lead: 0,
        };
        let mut frames = BTreeMap::new();
        frames.insert(0, vec![1u8]);
        let err = end.in_order(&frames).map(|_| ()).unwrap_err();
        assert_eq!(err, "frame 1 of the video is missing from the store");
        assert!((end.video_fps() - 30.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_heatmap_export_draws_each_frames_map_over_it_in_video_order() {
        let end = StoredEnd {
            order: vec![1, 0],
            files: Vec::new(),
            fps: None,
            lead: 0,
        };
        let grey = |v: u8| pngtext::encode_rgb(4, 2, &[v; 24], &[]).unwrap_or_default();
        let frames = BTreeMap::from([(0, grey(0)), (1, grey(200))]);
        let map = HeatmapData {
            width: 2,
            height: 1,
            values: vec![0.0, 1.0],
            tokens: vec![5],
        };
        let err = end.heatmap_zip(&frames, &BTreeMap::new()).unwrap_err();
        assert!(
            err.contains("no frame of this render has a heatmap"),
            "{err}"
        );
        let zip = end
            .heatmap_zip(&frames, &BTreeMap::from([(1, map.clone())]))
            .unwrap_or_default();
        // Frame 1 is first in the video; frame 0 has no map and is left out.
        let at = |name: &str| zip.windows(name.len()).position(|w| w == name.as_bytes());
        assert!(at("heatmap-00000.png").is_some() && at("heatmap-00001.png").is_none());
        let over = map
            .over_png(&frames[&1], HEATMAP_OPACITY)
            .unwrap_or_default();
        let (_, _, rgb) = pngtext::decode_rgb(&over).unwrap_or_default();
        // Left column: jet(0) (dark blue) half over grey 200; right: jet(1) (dark red).
        assert!(
            rgb[2] > rgb[0] && rgb[4 * 3 - 3] > rgb[4 * 3 - 1],
            "{rgb:?}"
        );
    }
}
