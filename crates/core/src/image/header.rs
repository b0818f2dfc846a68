//! The size an image file's header claims, read before anything is decoded, so that a file
//! claiming 60000×60000 is refused by [`crate::pngtext::check_image_size`] before a browser or
//! decoder allocates for it. PNG, GIF, JPEG, WebP, BMP, ICO and AVIF: the formats browsers decode.

/// The width and height an image's header claims, or `None` when the format is not one of
/// those read here or the header is cut short.
pub fn claimed_size(bytes: &[u8]) -> Option<(u32, u32)> {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => png(bytes),
        [b'G', b'I', b'F', b'8', ..] => gif(bytes),
        [0xFF, 0xD8, ..] => jpeg(bytes),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => webp(bytes),
        [b'B', b'M', ..] => bmp(bytes),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => avif(bytes),
        [0, 0, 1 | 2, 0, ..] => ico(bytes),
        _ => None,
    }
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be16(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        bytes.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le16(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        bytes.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le24(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 3)?;
    Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
}

/// IHDR, the first chunk: width and height after the signature and the chunk's length and type.
fn png(bytes: &[u8]) -> Option<(u32, u32)> {
    (bytes.get(12..16)? == b"IHDR").then_some(())?;
    Some((be32(bytes, 16)?, be32(bytes, 20)?))
}

/// The logical screen, grown to hold the first image: a decoder sizes its canvas to fit a frame
/// that reaches past the screen, so a 1×1 screen may carry a 60000×60000 frame.
fn gif(bytes: &[u8]) -> Option<(u32, u32)> {
    let screen = (le16(bytes, 6)?, le16(bytes, 8)?);
    let Some((left, top, width, height)) = gif_first_image(bytes) else {
        return Some(screen);
    };
    Some((screen.0.max(left + width), screen.1.max(top + height)))
}

/// The first image descriptor's left, top, width and height, skipping the global colour table
/// and any extension blocks before it.
fn gif_first_image(bytes: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let flags = *bytes.get(10)?;
    let mut at = 13 + colour_table(flags);
    loop {
        match *bytes.get(at)? {
            0x2C => {
                let field = |i: usize| le16(bytes, at + 1 + 2 * i);
                return Some((field(0)?, field(1)?, field(2)?, field(3)?));
            }
            0x21 => at = skip_sub_blocks(bytes, at + 2)?,
            _ => return None,
        }
    }
}

/// Bytes of the colour table a GIF flags byte announces (bit 7 set; size in bits 0–2).
fn colour_table(flags: u8) -> usize {
    if flags & 0x80 == 0 {
        0
    } else {
        3 << ((flags & 7) + 1)
    }
}

/// The offset after a chain of sub-blocks (a length byte, that many bytes; 0 ends the chain).
fn skip_sub_blocks(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = usize::from(*bytes.get(at)?);
        at += 1;
        if length == 0 {
            return Some(at);
        }
        at += length;
    }
}

/// The first start-of-frame segment (SOF0–SOF15 except DHT, JPG and DAC), walking the segments.
fn jpeg(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        while *bytes.get(at)? != 0xFF {
            at += 1;
        }
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at)?;
        at += 1;
        if matches!(marker, 0x01 | 0xD0..=0xD8) {
            continue;
        }
        let length = usize::try_from(be16(bytes, at)?).ok()?;
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return Some((be16(bytes, at + 5)?, be16(bytes, at + 3)?));
        }
        if marker == 0xD9 || marker == 0xDA {
            return None;
        }
        at += length;
    }
}

/// VP8 (lossy), VP8L (lossless) or VP8X (extended) headers.
fn webp(bytes: &[u8]) -> Option<(u32, u32)> {
    match bytes.get(12..16)? {
        b"VP8 " => Some((le16(bytes, 26)? & 0x3FFF, le16(bytes, 28)? & 0x3FFF)),
        b"VP8L" => {
            let bits = le32(bytes, 21)?;
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(bytes, 24)? + 1, le24(bytes, 27)? + 1)),
        _ => None,
    }
}

/// BITMAPINFOHEADER (a negative height is a top-down bitmap) or the old BITMAPCOREHEADER.
fn bmp(bytes: &[u8]) -> Option<(u32, u32)> {
    if le32(bytes, 14)? == 12 {
        return Some((le16(bytes, 18)?, le16(bytes, 20)?));
    }
    let height = i32::from_le_bytes(bytes.get(22..26)?.try_into().ok()?);
    Some((le32(bytes, 18)?, height.unsigned_abs()))
}

/// An icon directory: each entry is at most 256×256 itself, but may hold a PNG whose own header
/// claims any size; the largest claim counts.
fn ico(bytes: &[u8]) -> Option<(u32, u32)> {
    let count = usize::try_from(le16(bytes, 4)?).ok()?;
    let mut largest: Option<(u32, u32)> = None;
    for entry in (0..count).map(|i| 6 + 16 * i) {
        let side = |b: u8| if b == 0 { 256 } else { u32::from(b) };
        let mut size = (side(*bytes.get(entry)?), side(*bytes.get(entry + 1)?));
        let offset = usize::try_from(le32(bytes, entry + 12)?).ok()?;
        if let Some(inner) = bytes.get(offset..).and_then(png_only) {
            size = inner;
        }
        largest = Some(largest.map_or(size, |l| (l.0.max(size.0), l.1.max(size.1))));
    }
    largest
}

fn png_only(bytes: &[u8]) -> Option<(u32, u32)> {
    bytes
        .starts_with(&[0x89, b'P', b'N', b'G'])
        .then(|| png(bytes))?
}

/// AVIF/HEIF (ISO base media): every `ispe` (image spatial extent) property, the largest.
fn avif(bytes: &[u8]) -> Option<(u32, u32)> {
    (bytes.get(8..12)? == b"avif" || bytes.get(8..12)? == b"avis").then_some(())?;
    let mut largest: Option<(u32, u32)> = None;
    let mut from = 0;
    while let Some(found) = find(bytes.get(from..)?, b"ispe") {
        let at = from + found + 4;
        if let (Some(w), Some(h)) = (be32(bytes, at + 4), be32(bytes, at + 8)) {
            largest = Some(largest.map_or((w, h), |l| (l.0.max(w), l.1.max(h))));
        }
        from = at;
    }
    largest
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_headers_are_read_from_a_real_file_and_a_forged_one() {
        let png = crate::pngtext::encode_rgb(3, 2, &[0; 18], &[]).unwrap();
        assert_eq!(claimed_size(&png), Some((3, 2)));
        let mut forged = png[..33].to_vec();
        forged[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        forged[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        assert_eq!(claimed_size(&forged), Some((60_000, 60_000)));
        assert_eq!(claimed_size(&png[..20]), None, "cut short");
    }

    #[test]
    fn gif_jpeg_webp_and_bmp_headers_are_read() {
        let mut gif = b"GIF89a".to_vec();
        gif.extend([0x60, 0xEA, 0x10, 0x27, 0, 0, 0]);
        assert_eq!(claimed_size(&gif), Some((60_000, 10_000)));
        // SOI, an APP0 segment, then SOF2 (progressive) of 1000 rows by 50000 columns.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0];
        jpeg.extend([0xFF, 0xC2, 0, 11, 8, 0x03, 0xE8, 0xC3, 0x50, 3]);
        assert_eq!(claimed_size(&jpeg), Some((50_000, 1_000)));
        let huffman_only = [0xFF, 0xD8, 0xFF, 0xC4, 0, 2, 0xFF, 0xD9];
        assert_eq!(claimed_size(&huffman_only), None);
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        vp8x.extend([10, 0, 0, 0, 0, 0, 0, 0]);
        vp8x.extend([0x0F, 0x27, 0, 0x3F, 0x9C, 0]);
        assert_eq!(claimed_size(&vp8x), Some((10_000, 40_000)));
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        // 14-bit width−1 = 99, height−1 = 49.
        vp8l.extend((99u32 | 49 << 14).to_le_bytes());
        assert_eq!(claimed_size(&vp8l), Some((100, 50)));
        let mut bmp = b"BM".to_vec();
        bmp.extend([0; 12]);
        bmp.extend(40u32.to_le_bytes());
        bmp.extend(70_000u32.to_le_bytes());
        bmp.extend((-20i32).to_le_bytes());
        assert_eq!(claimed_size(&bmp), Some((70_000, 20)));
        assert_eq!(claimed_size(b"not an image"), None);
    }

    /// A GIF whose 1×1 screen holds one image at (left, top) of width × height, after a global
    /// colour table of two entries and a graphic control extension.
    fn gif_with_image(left: u16, top: u16, width: u16, height: u16) -> Vec<u8> {
        let mut gif = b"GIF89a".to_vec();
        gif.extend([1, 0, 1, 0, 0x80, 0, 0]);
        gif.extend([0; 6]);
        gif.extend([0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
        gif.push(0x2C);
        for v in [left, top, width, height] {
            gif.extend(v.to_le_bytes());
        }
        gif.extend([0, 2, 2, 0x4C, 0x01, 0, 0x3B]);
        gif
    }

    #[test]
    fn a_gif_frame_larger_than_its_screen_is_what_counts() {
        assert_eq!(claimed_size(&gif_with_image(0, 0, 1, 1)), Some((1, 1)));
        let bomb = gif_with_image(0, 0, 60_000, 60_000);
        assert_eq!(claimed_size(&bomb), Some((60_000, 60_000)));
        let far = gif_with_image(65_000, 10, 1_000, 1);
        assert_eq!(claimed_size(&far), Some((66_000, 11)));
        let screen_only = &gif_with_image(0, 0, 9, 9)[..13];
        assert_eq!(claimed_size(screen_only), Some((1, 1)));
    }

    #[test]
    fn icons_count_their_largest_entry_and_any_png_inside() {
        let mut ico = vec![0, 0, 1, 0, 2, 0];
        ico.extend([16, 16, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 38, 0, 0, 0]);
        ico.extend([0, 0, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 38, 0, 0, 0]);
        assert_eq!(claimed_size(&ico), Some((256, 256)));
        let png = crate::pngtext::encode_rgb(1, 1, &[0; 3], &[]).unwrap();
        let mut forged = png[..33].to_vec();
        forged[16..24].copy_from_slice(&[0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60]);
        ico.extend(forged);
        assert_eq!(claimed_size(&ico), Some((60_000, 60_000)));
    }

    #[test]
    fn avif_spatial_extents_are_read() {
        let mut avif = vec![0, 0, 0, 20];
        avif.extend(b"ftypavif\0\0\0\0mif1");
        for (w, h) in [(512u32, 512u32), (70_000, 3)] {
            avif.extend(20u32.to_be_bytes());
            avif.extend(b"ispe\0\0\0\0");
            avif.extend(w.to_be_bytes());
            avif.extend(h.to_be_bytes());
        }
        assert_eq!(claimed_size(&avif), Some((70_000, 512)));
        assert_eq!(claimed_size(&avif[..24]), None, "no extent yet");
    }
}
