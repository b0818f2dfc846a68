//! Video input's option edits (`VideoField`) and the frames a picked video gives.

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

#[cfg(test)]
mod tests {
    use super::*;

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
