//! Video input's option edits (`VideoField`), the frames a picked video gives, and which
//! frames a WebCodecs decode must make (`decode_plan`).

use keyshift_core::share::VideoSettings;

use crate::state::EditError;

/// A video-input option (values as typed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoField {
    /// The video's frame rate, above 0 and at most 240.
    Fps,
    /// The first frame read.
    Start,
    /// Frames to render (0: to the end).
    Count,
    /// Every this many frames, at least 1.
    Stride,
    /// Denoising strength, above 0 and at most 1.
    Denoise,
}

impl VideoField {
    /// Applies the value; on error `v` is unchanged.
    pub fn apply(self, text: &str, v: &mut VideoSettings) -> Result<(), EditError> {
        let (field, min, max) = match self {
            Self::Fps => ("Video frame rate", 0.001, 240.0),
            Self::Start => ("First frame", 0.0, 1e6),
            Self::Count => ("Frames", 0.0, 1e6),
            Self::Stride => ("Every Nth frame", 1.0, 1000.0),
            Self::Denoise => ("Denoising strength", 0.01, 1.0),
        };
        let x: f64 = text.trim().parse().map_err(|_| EditError::NotANumber {
            field,
            text: text.to_owned(),
        })?;
        if !(min..=max).contains(&x) {
            return Err(EditError::OutOfRange {
                field,
                min: min.to_string(),
                max: max.to_string(),
            });
        }
        let whole = x.round() as usize;
        match self {
            Self::Fps => v.fps = x,
            Self::Start => v.start = whole,
            Self::Count => v.count = whole,
            Self::Stride => v.stride = whole.max(1),
            Self::Denoise => v.denoise = x,
        }
        Ok(())
    }
}

/// The times (seconds) the frames at `indices` are read at: the middle of each frame.
pub fn frame_times(indices: &[usize], fps: f64) -> Vec<f64> {
    indices.iter().map(|&i| (i as f64 + 0.5) / fps).collect()
}

/// What a WebCodecs decode of a demuxed video needs: for each wanted time, the frame shown
/// then (the last whose timestamp is not after it; the first before any), and the frame to
/// start decoding at (the last keyframe at or before the first of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodePlan {
    /// Per wanted time, the index of the frame shown.
    pub shown: Vec<usize>,
    /// Decode frames `start..=last`.
    pub start: usize,
    /// The last frame to decode.
    pub last: usize,
}

/// The plan for frames with `timestamps_us` (in decoding order, which for VP8/VP9 is showing
/// order) and `keyframes`, read at `times` (seconds); `None` without frames.
pub fn decode_plan(timestamps_us: &[i64], keyframes: &[bool], times: &[f64]) -> Option<DecodePlan> {
    if timestamps_us.is_empty() || times.is_empty() {
        return None;
    }
    let shown: Vec<usize> = times
        .iter()
        .map(|t| {
            let at = (t * 1e6).round() as i64;
            timestamps_us.iter().rposition(|&ts| ts <= at).unwrap_or(0)
        })
        .collect();
    let first = shown.iter().copied().min()?;
    let last = shown.iter().copied().max()?;
    let start = (0..=first)
        .rev()
        .find(|&i| keyframes.get(i) == Some(&true))?;
    Some(DecodePlan { shown, start, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_starts_at_the_keyframe_before_the_first_wanted_frame() {
        // Ten frames at 10 fps, keyframes at 0 and 5.
        let ts: Vec<i64> = (0..10).map(|i| i * 100_000).collect();
        let keys: Vec<bool> = (0..10).map(|i| i % 5 == 0).collect();
        let plan = decode_plan(&ts, &keys, &frame_times(&[6, 8], 10.0));
        assert_eq!(
            plan,
            Some(DecodePlan {
                shown: vec![6, 8],
                start: 5,
                last: 8
            })
        );
        // A time before the first frame shows the first; past the end, the last.
        let plan = decode_plan(&ts, &keys, &[-1.0, 5.0]).unwrap_or_else(|| panic!("a plan"));
        assert_eq!((plan.shown, plan.start, plan.last), (vec![0, 9], 0, 9));
        assert_eq!(decode_plan(&[], &[], &[0.5]), None);
        // No keyframe before the wanted frames: nothing can be decoded.
        assert_eq!(decode_plan(&ts[1..], &keys[1..], &[0.15]), None);
    }

    #[test]
    fn options_are_checked_and_frames_read_mid_frame() {
        let mut v = VideoSettings::default();
        VideoField::Fps.apply("29.97", &mut v).unwrap();
        VideoField::Stride.apply("2", &mut v).unwrap();
        VideoField::Count.apply("3", &mut v).unwrap();
        assert!(VideoField::Denoise.apply("0", &mut v).is_err());
        assert!(VideoField::Fps.apply("x", &mut v).is_err());
        assert_eq!(v.frame_indices(10.0), [0, 2, 4]);
        let times = frame_times(&[0, 2], 10.0);
        assert!((times[0] - 0.05).abs() < 1e-12 && (times[1] - 0.25).abs() < 1e-12);
    }
}
