//! SSIM gap filling for prompt travel (linear mode, fixed genesis; seeds.md §2.2): once a
//! transition's frames exist, shift-attention's loop inserts frames at the midpoint α of
//! neighbours less similar than the threshold. Before SSIM, both images are centre-cropped
//! (torchvision's `CenterCrop`) and blurred (Pillow's `GaussianBlur`), as prompt travel does.

use std::collections::{BTreeMap, BTreeSet};

use keyshift_core::image::{RgbImage, center_crop, gaussian_blur, ssim};
use keyshift_core::shift::{GapFiller, GapSettings, GapStep, SsimPoint};
use keyshift_core::travel::{FrameKind, TravelFrame};

/// Gap filling's options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TravelGapOptions {
    /// Threshold, minimum step and min threshold % (threshold 0: off).
    pub gap: GapSettings,
    /// Gaussian blur radius before SSIM (0: none).
    pub blur: f64,
    /// Centre crop before SSIM, percent of each side (0: none).
    pub crop: f64,
}

impl Default for TravelGapOptions {
    fn default() -> Self {
        Self {
            gap: GapSettings::default(),
            blur: 0.0,
            crop: 0.0,
        }
    }
}

/// Each transition's frames by α position, and the filling of the one that just closed.
#[derive(Debug, Clone)]
pub(crate) struct TravelGaps {
    options: TravelGapOptions,
    segments: BTreeMap<usize, Vec<(f64, usize)>>,
    filled: BTreeSet<usize>,
    filler: Option<(usize, GapFiller<usize>)>,
    images: BTreeMap<usize, RgbImage>,
    cache: BTreeMap<(usize, usize), f64>,
    points: Vec<SsimPoint>,
}

impl TravelGaps {
    pub(crate) fn new(options: TravelGapOptions) -> Self {
        Self {
            options,
            segments: BTreeMap::new(),
            filled: BTreeSet::new(),
            filler: None,
            images: BTreeMap::new(),
            cache: BTreeMap::new(),
            points: Vec::new(),
        }
    }

    /// Notes a frame handed out under generation index `index`.
    pub(crate) fn record(&mut self, frame: &TravelFrame, index: usize) {
        let (from, t) = (frame.from, frame.t);
        match frame.kind {
            FrameKind::Stage if t == 0.0 => self.at(from, 0.0, index),
            FrameKind::Stage => {
                self.at(from, 1.0, index);
                self.at(from + 1, 0.0, index);
            }
            FrameKind::Between => self.at(from, t, index),
            FrameKind::Embryo => {}
        }
    }

    fn at(&mut self, transition: usize, t: f64, index: usize) {
        let segment = self.segments.entry(transition).or_default();
        segment.push((t, index));
        segment.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// A frame is finished: keep what SSIM compares, and hand a pending gap frame to the filler.
    pub(crate) fn done(&mut self, index: usize, image: &RgbImage) {
        let prepared = gaussian_blur(&center_crop(image, self.options.crop), self.options.blur);
        self.images.insert(index, prepared);
        let Self {
            filler,
            images,
            cache,
            ..
        } = self;
        if let Some((_, filler)) = filler.as_mut() {
            let mut sim = similarity(images, cache);
            filler.add_rendered(index, &mut sim);
        }
    }

    /// Starts filling `transition` unless it was filled already.
    pub(crate) fn close(&mut self, transition: usize) {
        if self.filler.is_some() || !self.filled.insert(transition) {
            return;
        }
        let frames = self.segments.get(&transition).cloned().unwrap_or_default();
        self.filler = Some((transition, GapFiller::new(self.options.gap, frames)));
    }

    /// The α position of the next gap frame of the transition being filled (`None`: none).
    pub(crate) fn next(&mut self) -> Option<(usize, f64)> {
        {
            let Self {
                filler,
                images,
                cache,
                ..
            } = &mut *self;
            let (transition, gaps) = filler.as_mut()?;
            let mut sim = similarity(images, cache);
            match gaps.next(&mut sim) {
                GapStep::Render { distance } => return Some((*transition, distance)),
                GapStep::Done => {}
            }
        }
        let (transition, gaps) = self.filler.take()?;
        self.points.extend(gaps.points());
        let frames = gaps.into_frames();
        let keep = frames.last().map(|f| f.1);
        self.segments.insert(transition, frames);
        // Only the transition's target stays: it starts the next transition.
        self.images.retain(|k, _| Some(*k) == keep);
        self.cache.clear();
        None
    }

    /// Whether `transition` was filled.
    pub(crate) fn is_filled(&self, transition: usize) -> bool {
        self.filled.contains(&transition)
    }

    /// The video order: every transition's frames by α, each transition's start shared with the
    /// one before.
    pub(crate) fn video(&self) -> Vec<usize> {
        let mut video = Vec::new();
        for (i, segment) in &self.segments {
            let skip = usize::from(*i > 0);
            video.extend(segment.iter().skip(skip).map(|f| f.1));
        }
        video
    }

    /// Every SSIM measured.
    pub(crate) fn points(&self) -> &[SsimPoint] {
        &self.points
    }

    /// The options.
    pub(crate) fn options(&self) -> TravelGapOptions {
        self.options
    }
}

fn similarity<'a>(
    images: &'a BTreeMap<usize, RgbImage>,
    cache: &'a mut BTreeMap<(usize, usize), f64>,
) -> impl FnMut(&usize, &usize) -> f64 + 'a {
    move |a: &usize, b: &usize| {
        *cache
            .entry((*a, *b))
            .or_insert_with(|| match (images.get(a), images.get(b)) {
                (Some(x), Some(y)) => ssim(x, y).unwrap_or(0.0),
                _ => 0.0,
            })
    }
}
