//! Animated GIF of RGB frames (each frame quantised to its own 256-colour palette by the `gif`
//! crate's NeuQuant), looping forever.

use crate::image::RgbImage;

/// Why a GIF could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GifError {
    /// Frames of different sizes, or a side over 65,535.
    #[error("{0}")]
    Size(String),
    /// The encoder failed.
    #[error("GIF encoding failed: {0}")]
    Encode(String),
}

/// GIF frame delay in hundredths of a second for `fps` (at least 2: browsers slow down 0 and 1).
pub fn gif_delay_cs(fps: f64) -> u16 {
    if fps.is_nan() || fps <= 0.0 {
        return 2;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped to the u16 range"
    )]
    let cs = (100.0 / fps).round().clamp(2.0, 65_535.0) as u16;
    cs
}

/// The GIF of `frames` at `fps`.
pub fn encode_gif(frames: &[RgbImage], fps: f64) -> Result<Vec<u8>, GifError> {
    let Some(first) = frames.first() else {
        return Err(GifError::Size("no frames".into()));
    };
    let side = |n: usize| {
        u16::try_from(n).map_err(|_| GifError::Size(format!("{n} pixels is too large for a GIF")))
    };
    let (w, h) = (side(first.width)?, side(first.height)?);
    let encode = |e: gif::EncodingError| GifError::Encode(e.to_string());
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, w, h, &[]).map_err(encode)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(encode)?;
        for image in frames {
            if (image.width, image.height) != (first.width, first.height) {
                return Err(GifError::Size(format!(
                    "frame of {}×{} among frames of {}×{}",
                    image.width, image.height, first.width, first.height
                )));
            }
            let mut frame = gif::Frame::from_rgb_speed(w, h, &image.data, 10);
            frame.delay = gif_delay_cs(fps);
            encoder.write_frame(&frame).map_err(encode)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_frame_rate() {
        assert_eq!(gif_delay_cs(10.0), 10);
        assert_eq!(gif_delay_cs(30.0), 3);
        assert_eq!(gif_delay_cs(100.0), 2);
        assert_eq!(gif_delay_cs(0.0), 2);
    }

    #[test]
    fn writes_every_frame() {
        let frame = |v: u8| RgbImage {
            width: 4,
            height: 2,
            data: vec![v; 24],
        };
        let bytes = encode_gif(&[frame(0), frame(128), frame(255)], 10.0).unwrap_or_default();
        assert_eq!(&bytes[..6], b"GIF89a");
        let mut decoder = gif::DecodeOptions::new();
        decoder.set_color_output(gif::ColorOutput::RGBA);
        let Ok(mut reader) = decoder.read_info(bytes.as_slice()) else {
            panic!("readable");
        };
        let mut count = 0;
        while let Ok(Some(f)) = reader.read_next_frame() {
            assert_eq!(f.delay, 10);
            count += 1;
        }
        assert_eq!(count, 3);
    }
}
