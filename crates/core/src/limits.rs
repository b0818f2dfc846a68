//! What the page reads from a user's files, at most: checked before the bytes are read or the
//! frames and samples are copied, so that a file that is (or decodes to) far more than anyone
//! animates is refused with a message naming the limit instead of exhausting a tab's memory.

use thiserror::Error;

use crate::pngtext::{MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, check_image_size};

const MIB: u64 = 1 << 20;

/// The kinds of file the page reads whole into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A project file (`.json`) or an A1111 PNG dropped on the Project page.
    Project,
    /// An init or control image.
    Image,
    /// A video for video input or a ControlNet hint video.
    Video,
    /// An audio file for Parseq's onsets and amplitude.
    Audio,
}

impl FileKind {
    /// The largest file of this kind that is read.
    pub const fn max_bytes(self) -> u64 {
        match self {
            Self::Project => 64 * MIB,
            Self::Image => 256 * MIB,
            Self::Video => 512 * MIB,
            Self::Audio => 256 * MIB,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Project => "project files and PNGs",
            Self::Image => "images",
            Self::Video => "videos",
            Self::Audio => "audio files",
        }
    }
}

/// The most RGB bytes a video's frames may take once read (they are sent to the worker whole).
pub const MAX_VIDEO_FRAME_BYTES: u64 = 1 << 30;

/// The longest audio analysed (Parseq's onsets and amplitude): 20 minutes.
pub const MAX_AUDIO_SECONDS: f64 = 1200.0;

/// A file or what it decodes to is over a limit.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LimitError {
    /// The file itself is too large to read.
    #[error("the file is {} MiB; {} of up to {} MiB are read", mib(*bytes), kind.noun(), mib(kind.max_bytes()))]
    File {
        /// What the file is for.
        kind: FileKind,
        /// Its size.
        bytes: u64,
    },
    /// A video's frames are larger than an image may be.
    #[error(
        "the video's frames are {width}×{height}; Keyshift reads frames up to {} megapixels and {MAX_IMAGE_SIDE} pixels a side",
        MAX_IMAGE_PIXELS / 1_000_000
    )]
    VideoSize {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// The frames asked for would take too much memory.
    #[error(
        "{frames} frames of {width}×{height} take {} MiB as RGB; at most {} MiB of video frames are read: pick fewer frames or a smaller video",
        mib(u64::from(*width) * u64::from(*height) * 3 * u64::from(*frames)),
        mib(MAX_VIDEO_FRAME_BYTES)
    )]
    VideoFrames {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// Frames asked for.
        frames: u32,
    },
    /// The audio is longer than [`MAX_AUDIO_SECONDS`].
    #[error(
        "the audio lasts {seconds:.0} s; audio of up to {} s (20 minutes) is analysed",
        MAX_AUDIO_SECONDS
    )]
    AudioLength {
        /// Its length.
        seconds: f64,
    },
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// Refuses a file larger than its kind's [`FileKind::max_bytes`].
pub fn check_file(kind: FileKind, bytes: u64) -> Result<(), LimitError> {
    if bytes > kind.max_bytes() {
        return Err(LimitError::File { kind, bytes });
    }
    Ok(())
}

/// Refuses reading `frames` frames of `width`×`height` when a frame is larger than an image may
/// be, or when they would pass [`MAX_VIDEO_FRAME_BYTES`] as RGB.
pub fn check_video_frames(width: u32, height: u32, frames: usize) -> Result<(), LimitError> {
    if check_image_size(width, height).is_err() {
        return Err(LimitError::VideoSize { width, height });
    }
    let frames = u32::try_from(frames).unwrap_or(u32::MAX);
    let bytes = u64::from(width) * u64::from(height) * 3 * u64::from(frames);
    if bytes > MAX_VIDEO_FRAME_BYTES {
        return Err(LimitError::VideoFrames {
            width,
            height,
            frames,
        });
    }
    Ok(())
}

/// Refuses audio longer than [`MAX_AUDIO_SECONDS`] (`samples` per channel at `rate` Hz).
pub fn check_audio(samples: u64, rate: f64) -> Result<(), LimitError> {
    check_audio_seconds(samples as f64 / rate.max(1.0))
}

/// Refuses audio longer than [`MAX_AUDIO_SECONDS`] (a length read from a header).
pub fn check_audio_seconds(seconds: f64) -> Result<(), LimitError> {
    if seconds > MAX_AUDIO_SECONDS {
        return Err(LimitError::AudioLength { seconds });
    }
    Ok(())
}

/// The length a WAV file's header claims (its `data` chunk over the format's bytes per second),
/// read before the browser decodes it; `None` for other formats or a header cut short.
pub fn wav_seconds(bytes: &[u8]) -> Option<f64> {
    (bytes.get(0..4)? == b"RIFF" && bytes.get(8..12)? == b"WAVE").then_some(())?;
    let mut at = 12;
    let mut per_second = None;
    loop {
        let id = bytes.get(at..at + 4)?;
        let size = u32::from_le_bytes(bytes.get(at + 4..at + 8)?.try_into().ok()?);
        if id == b"fmt " {
            let rate = u32::from_le_bytes(bytes.get(at + 16..at + 20)?.try_into().ok()?);
            per_second = Some(f64::from(rate.max(1)));
        }
        if id == b"data" {
            return Some(f64::from(size) / per_second?);
        }
        at = at.checked_add(8 + usize::try_from(size).ok()? + (size as usize & 1))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_over_their_kind_s_limit_are_refused_by_name() {
        assert_eq!(check_file(FileKind::Video, 512 * MIB), Ok(()));
        let e = check_file(FileKind::Video, 3 << 30).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the file is 3072 MiB; videos of up to 512 MiB are read"
        );
        let e = check_file(FileKind::Project, 64 * MIB + 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the file is 65 MiB; project files and PNGs of up to 64 MiB are read"
        );
        assert!(check_file(FileKind::Audio, 300 * MIB).is_err());
        assert!(check_file(FileKind::Image, 300 * MIB).is_err());
    }

    #[test]
    fn video_frames_are_counted_before_they_are_read() {
        assert_eq!(check_video_frames(1920, 1080, 150), Ok(()));
        let e = check_video_frames(3840, 2160, 100).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("100 frames of 3840×2160 take 2374 MiB as RGB; at most 1024 MiB"),
            "{e}"
        );
        assert!(check_video_frames(16_384, 16_384, 1).is_err());
        assert_eq!(
            check_video_frames(60_000, 60_000, 1)
                .unwrap_err()
                .to_string(),
            "the video's frames are 60000×60000; Keyshift reads frames up to 64 megapixels and \
             16384 pixels a side"
        );
        assert!(
            check_video_frames(u32::MAX, u32::MAX, usize::MAX).is_err(),
            "no overflow"
        );
    }

    #[test]
    fn audio_length_is_read_from_wav_headers_and_checked() {
        let mut wav = b"RIFF\0\0\0\0WAVE".to_vec();
        wav.extend(b"fmt ");
        wav.extend(16u32.to_le_bytes());
        wav.extend([1, 0, 1, 0]);
        wav.extend(8_000u32.to_le_bytes());
        wav.extend(16_000u32.to_le_bytes());
        wav.extend([2, 0, 16, 0]);
        wav.extend(b"LIST");
        wav.extend(3u32.to_le_bytes());
        wav.extend([0; 4]); // 3 bytes and the pad byte
        wav.extend(b"data");
        wav.extend(u32::MAX.to_le_bytes());
        let seconds = wav_seconds(&wav).unwrap();
        assert!((seconds - f64::from(u32::MAX) / 16_000.0).abs() < 1e-6);
        let e = check_audio((seconds * 8_000.0) as u64, 8_000.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the audio lasts 268435 s; audio of up to 1200 s (20 minutes) is analysed"
        );
        assert_eq!(check_audio(44_100 * 600, 44_100.0), Ok(()));
        assert_eq!(wav_seconds(&wav[..30]), None, "cut short");
        assert_eq!(wav_seconds(b"OggS"), None);
    }
}
