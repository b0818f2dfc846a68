//! PNG files with text chunks, as A1111 writes them: the generation settings go in a `parameters`
//! chunk (tEXt when the text is Latin-1, iTXt otherwise, as PIL's `PngInfo.add_text` does), so
//! A1111, ComfyUI and Keyshift can read them back.

/// Why a PNG could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    /// The pixel buffer does not match the size.
    #[error("{len} bytes of RGB do not make a {width}x{height} image")]
    Size {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Bytes given.
        len: usize,
    },
    /// Encoding failed.
    #[error("PNG encoding failed: {0}")]
    Encode(String),
    /// The bytes are not a readable PNG.
    #[error("not a readable PNG: {0}")]
    Decode(String),
    /// The header claims more pixels than Keyshift decodes (checked before any pixel buffer is
    /// allocated).
    #[error(
        "the image is {width}×{height} ({} megapixels); Keyshift reads images up to {} megapixels \
         and {MAX_IMAGE_SIDE} pixels a side",
        megapixels(*width, *height),
        MAX_IMAGE_PIXELS / 1_000_000
    )]
    TooLarge {
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
    },
}

/// The most pixels an image may have to be decoded (init images, ControlNet hints, video frames):
/// 64 megapixels, four times a 4K frame — 192 MiB as RGB.
pub const MAX_IMAGE_PIXELS: u64 = 64_000_000;
/// The longest side an image may have to be decoded.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

fn megapixels(width: u32, height: u32) -> u64 {
    (u64::from(width) * u64::from(height)).div_ceil(1_000_000)
}

/// Refuses sizes beyond [`MAX_IMAGE_PIXELS`] and [`MAX_IMAGE_SIDE`], for any image decoder.
pub fn check_image_size(width: u32, height: u32) -> Result<(), PngError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_IMAGE_PIXELS || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(PngError::TooLarge { width, height });
    }
    Ok(())
}

/// Encodes 8-bit RGB pixels with `(keyword, text)` chunks.
pub fn encode_rgb(
    width: usize,
    height: usize,
    rgb: &[u8],
    texts: &[(&str, &str)],
) -> Result<Vec<u8>, PngError> {
    if rgb.len() != width * height * 3 || width == 0 || height == 0 {
        return Err(PngError::Size {
            width,
            height,
            len: rgb.len(),
        });
    }
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(PngError::Size {
            width,
            height,
            len: rgb.len(),
        });
    };
    let enc_err = |e: png::EncodingError| PngError::Encode(e.to_string());
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        for (keyword, text) in texts {
            if text.chars().all(|c| (c as u32) < 256) {
                encoder
                    .add_text_chunk((*keyword).to_owned(), (*text).to_owned())
                    .map_err(enc_err)?;
            } else {
                encoder
                    .add_itxt_chunk((*keyword).to_owned(), (*text).to_owned())
                    .map_err(enc_err)?;
            }
        }
        let mut writer = encoder.write_header().map_err(enc_err)?;
        writer.write_image_data(rgb).map_err(enc_err)?;
        writer.finish().map_err(enc_err)?;
    }
    Ok(out)
}

/// The text chunks of a PNG (tEXt, zTXt and iTXt), in file order.
pub fn read_texts(bytes: &[u8]) -> Result<Vec<(String, String)>, PngError> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder
        .read_info()
        .map_err(|e| PngError::Decode(e.to_string()))?;
    let info = reader.info();
    let mut out: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    for z in &info.compressed_latin1_text {
        if let Ok(text) = z.get_text() {
            out.push((z.keyword.clone(), text));
        }
    }
    for i in &info.utf8_text {
        if let Ok(text) = i.get_text() {
            out.push((i.keyword.clone(), text));
        }
    }
    Ok(out)
}

/// Decodes a PNG to 8-bit RGB: `(width, height, pixels)`. Grey, alpha and palette images are
/// converted; 16-bit samples are reduced to 8.
pub fn decode_rgb(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), PngError> {
    let dec = |e: png::DecodingError| PngError::Decode(e.to_string());
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(dec)?;
    check_image_size(reader.info().width, reader.info().height)?;
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or_else(|| PngError::Decode("image too large".into()))?
    ];
    let frame = reader.next_frame(&mut buf).map_err(dec)?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let pixels = &buf[..frame.buffer_size()];
    let rgb = match frame.color_type {
        png::ColorType::Rgb => pixels.to_vec(),
        png::ColorType::Rgba => pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => pixels
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        png::ColorType::Indexed => return Err(PngError::Decode("palette not expanded".into())),
    };
    Ok((w, h, rgb))
}

/// Resizes 8-bit RGB with bilinear interpolation (pixel centres aligned, as PIL's BILINEAR when
/// enlarging).
pub fn resize_rgb(
    rgb: &[u8],
    width: usize,
    height: usize,
    to_width: usize,
    to_height: usize,
) -> Vec<u8> {
    if (width, height) == (to_width, to_height) || width == 0 || height == 0 {
        return rgb.to_vec();
    }
    let at = |x: usize, y: usize, c: usize| {
        f32::from(rgb.get((y * width + x) * 3 + c).copied().unwrap_or(0))
    };
    let src = |d: usize, from: usize, to: usize| {
        ((d as f32 + 0.5) * from as f32 / to as f32 - 0.5).clamp(0.0, (from - 1) as f32)
    };
    let mut out = Vec::with_capacity(to_width * to_height * 3);
    for y in 0..to_height {
        let sy = src(y, height, to_height);
        let (y0, fy) = (sy.floor() as usize, sy.fract());
        let y1 = (y0 + 1).min(height - 1);
        for x in 0..to_width {
            let sx = src(x, width, to_width);
            let (x0, fx) = (sx.floor() as usize, sx.fract());
            let x1 = (x0 + 1).min(width - 1);
            for c in 0..3 {
                let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
                let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
                out.push((top * (1.0 - fy) + bottom * fy).round() as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn resizing_keeps_flat_colour_and_size() {
        let rgb: Vec<u8> = [10u8, 200, 30].repeat(4 * 3);
        let out = super::resize_rgb(&rgb, 4, 3, 7, 5);
        assert_eq!(out.len(), 7 * 5 * 3);
        assert!(out.chunks(3).all(|p| p == [10, 200, 30]));
        let gradient = [0u8, 0, 0, 255, 255, 255];
        assert_eq!(super::resize_rgb(&gradient, 2, 1, 4, 1)[3..6], [64, 64, 64]);
    }

    use super::*;

    #[test]
    fn pixels_and_parameters_round_trip() {
        let rgb: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 13) as u8).collect();
        let latin = "a photo of a café\nSteps: 4, Sampler: Euler";
        let png = encode_rgb(2, 3, &rgb, &[("parameters", latin)]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert_eq!(
            read_texts(&png).unwrap(),
            vec![("parameters".to_owned(), latin.to_owned())]
        );
        assert_eq!(decode_rgb(&png).unwrap(), (2, 3, rgb));
    }

    #[test]
    fn non_latin_text_goes_in_an_itxt_chunk() {
        let text = "猫の写真";
        let png = encode_rgb(1, 1, &[1, 2, 3], &[("parameters", text)]).unwrap();
        assert!(png.windows(4).any(|w| w == b"iTXt"));
        assert_eq!(read_texts(&png).unwrap()[0].1, text);
    }

    #[test]
    fn bad_sizes_and_bytes_are_errors() {
        assert!(matches!(
            encode_rgb(2, 2, &[0; 5], &[]),
            Err(PngError::Size { .. })
        ));
        assert!(matches!(read_texts(b"not a png"), Err(PngError::Decode(_))));
        assert!(matches!(
            decode_rgb(&[0x89, b'P', b'N', b'G']),
            Err(PngError::Decode(_))
        ));
    }
}

/// Peak signal-to-noise ratio in dB between two 8-bit images of the same size (`inf` when they
/// are identical, `None` when the sizes differ or they are empty).
pub fn psnr(a: &[u8], b: &[u8]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = sum / a.len() as f64;
    Some(10.0 * (255.0f64 * 255.0 / mse).log10())
}

#[cfg(test)]
mod psnr_tests {
    use super::psnr;

    #[test]
    fn psnr_follows_the_mean_squared_error() {
        assert_eq!(psnr(&[1, 2, 3], &[1, 2, 3]), Some(f64::INFINITY));
        // One value off by 255 in 4: MSE 255²/4 → 10·log10(4) ≈ 6.02 dB.
        let p = psnr(&[0, 0, 0, 0], &[255, 0, 0, 0]).unwrap();
        assert!((p - 6.0206).abs() < 1e-3, "{p}");
        assert_eq!(psnr(&[1], &[1, 2]), None);
        assert_eq!(psnr(&[], &[]), None);
    }
}
