//! SSIM gap filling, as planning logic: where the next frame of a segment goes and when to stop,
//! exactly as shift-attention decides. The similarity function is injected (the real SSIM comes
//! with the renderer); the planner only sees frames as opaque items with distances.
//!
//! Scanning left to right from the last settled gap, the first pair of neighbours that is less
//! similar than the threshold, and further apart than the minimum step, gets a frame at its
//! midpoint. The new frame is kept if it is more similar to the left neighbour than the right one
//! was, or still far below the threshold (`threshold · min_pct / 100`); otherwise the gap is given
//! up. The pass ends when a scan inserts nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::gapped::Gapped;

/// The gap-filling options (shift-attention's "SSIM threshold", "SSIM minimum step" and
/// "SSIM min threshold").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GapSettings {
    /// Neighbours less similar than this get a frame between them (0 turns gap filling off).
    pub threshold: f64,
    /// Gaps this narrow (in distance) are never split.
    pub min_step: f64,
    /// Percent of `threshold` below which a new frame is kept even if it is no improvement.
    pub min_threshold_pct: f64,
}

impl Default for GapSettings {
    fn default() -> Self {
        Self {
            threshold: 0.0,
            min_step: 0.0001,
            min_threshold_pct: 75.0,
        }
    }
}

/// Counters shift-attention reports in its info file.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GapStats {
    /// Gaps left as they are because they reached the minimum step.
    pub skip_count: u32,
    /// The lowest similarity among those gaps (starts at 1).
    pub worst_skipped: f64,
    /// New frames that were no improvement (their gap was given up).
    pub not_better: u32,
}

impl Default for GapStats {
    fn default() -> Self {
        Self {
            skip_count: 0,
            worst_skipped: 1.0,
            not_better: 0,
        }
    }
}

/// One similarity measured by gap filling, for the SSIM scatter plot.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SsimPoint {
    /// Width of the gap in distance.
    pub gap: f64,
    /// The similarity of its two frames.
    pub ssim: f64,
    /// Whether the gap got a new frame (orange in shift-attention's plot) or was accepted (blue).
    pub subdivided: bool,
}

/// What the planner wants next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GapStep {
    /// Render the segment at this distance and pass the frame to [`GapFiller::add_rendered`].
    Render {
        /// Where the new frame goes (the midpoint of the gap).
        distance: f64,
    },
    /// Gap filling of this segment is finished.
    Done,
}

/// The gap being filled: its left index, its similarity and the requested distance.
#[derive(Clone, Copy, Debug)]
struct Pending {
    left: usize,
    similarity: f64,
    distance: f64,
}

/// Plans the extra frames of one segment.
#[derive(Clone, Debug)]
pub struct GapFiller<T> {
    settings: GapSettings,
    frames: Gapped<(f64, T)>,
    done: usize,
    pending: Option<Pending>,
    finished: bool,
    stats: GapStats,
    subdivided: Vec<SsimPoint>,
    accepted: BTreeMap<(u64, u64), SsimPoint>,
}

impl<T> GapFiller<T> {
    /// Starts from the segment's frames, in order, with their distances.
    pub fn new(settings: GapSettings, frames: Vec<(f64, T)>) -> Self {
        Self {
            settings,
            frames: Gapped::from(frames),
            done: 0,
            pending: None,
            finished: false,
            stats: GapStats::default(),
            subdivided: Vec::new(),
            accepted: BTreeMap::new(),
        }
    }

    /// Decides the next step. While a render is pending the same request is returned again.
    pub fn next(&mut self, similarity: &mut impl FnMut(&T, &T) -> f64) -> GapStep {
        if let Some(p) = self.pending {
            return GapStep::Render {
                distance: p.distance,
            };
        }
        if self.finished || self.settings.threshold <= 0.0 {
            self.finished = true;
            return GapStep::Done;
        }
        let mut i = self.done;
        while let (Some(left), Some(right)) = (self.frames.get(i), self.frames.get(i + 1)) {
            let d = similarity(&left.1, &right.1);
            let gap = right.0 - left.0;
            let point = SsimPoint {
                gap,
                ssim: d,
                subdivided: false,
            };
            if d < self.settings.threshold && gap > self.settings.min_step {
                let distance = (left.0 + right.0) / 2.0;
                self.subdivided.push(SsimPoint {
                    subdivided: true,
                    ..point
                });
                self.pending = Some(Pending {
                    left: i,
                    similarity: d,
                    distance,
                });
                return GapStep::Render { distance };
            }
            if d <= self.settings.threshold {
                self.stats.skip_count += 1;
                self.stats.worst_skipped = self.stats.worst_skipped.min(d);
            }
            self.accepted
                .insert((left.0.to_bits(), right.0.to_bits()), point);
            self.done = i;
            i += 1;
        }
        self.finished = true;
        GapStep::Done
    }

    /// Takes the frame rendered for the pending request; returns the index it was inserted at,
    /// or `None` when it was no improvement (the gap is given up and the frame dropped).
    pub fn add_rendered(
        &mut self,
        frame: T,
        similarity: &mut impl FnMut(&T, &T) -> f64,
    ) -> Option<usize> {
        let p = self.pending.take()?;
        let left = &self.frames.get(p.left)?.1;
        let d2 = similarity(left, &frame);
        let floor = self.settings.threshold * self.settings.min_threshold_pct / 100.0;
        if d2 > p.similarity || d2 < floor {
            self.frames.insert(p.left + 1, (p.distance, frame));
            Some(p.left + 1)
        } else {
            self.stats.not_better += 1;
            self.done = p.left + 1;
            None
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> GapStats {
        self.stats
    }

    /// The similarities measured: each gap that got a new frame (as often as it did), then each
    /// accepted gap once (shift-attention's `ssim_stats`).
    pub fn points(&self) -> Vec<SsimPoint> {
        let mut points = self.subdivided.clone();
        points.extend(self.accepted.values().copied());
        points
    }

    /// The final frames, in order.
    pub fn into_frames(self) -> Vec<(f64, T)> {
        self.frames.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a filler where frames are their own distances and similarity is `1 - |a - b|`.
    fn fill(settings: GapSettings, steps: u32) -> (Vec<f64>, GapStats) {
        let frames = (0..=steps)
            .map(|i| {
                let d = f64::from(i) / f64::from(steps);
                (d, d)
            })
            .collect();
        let mut filler = GapFiller::new(settings, frames);
        let mut sim = |a: &f64, b: &f64| 1.0 - (a - b).abs();
        let mut guard = 0;
        while let GapStep::Render { distance } = filler.next(&mut sim) {
            filler.add_rendered(distance, &mut sim);
            guard += 1;
            assert!(guard < 10_000, "gap filling must end");
        }
        let stats = filler.stats();
        (
            filler.into_frames().into_iter().map(|f| f.0).collect(),
            stats,
        )
    }

    #[test]
    fn halves_gaps_until_similar_enough() {
        let settings = GapSettings {
            threshold: 0.9,
            ..GapSettings::default()
        };
        let (distances, stats) = fill(settings, 2);
        assert_eq!(distances.len(), 17);
        assert!(distances.windows(2).all(|w| w[1] - w[0] <= 0.1));
        assert_eq!(stats, GapStats::default());
    }

    #[test]
    fn off_when_threshold_is_zero() {
        let (distances, _) = fill(GapSettings::default(), 3);
        assert_eq!(distances.len(), 4);
    }

    #[test]
    fn min_step_stops_subdivision() {
        let settings = GapSettings {
            threshold: 0.99,
            min_step: 0.2,
            min_threshold_pct: 75.0,
        };
        let (distances, stats) = fill(settings, 1);
        assert_eq!(
            distances,
            vec![0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]
        );
        assert_eq!(
            stats.skip_count, 12,
            "re-scanned gaps count again, as in shift-attention"
        );
        assert_eq!(stats.worst_skipped, 0.875);
    }
}
