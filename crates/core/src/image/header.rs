//! The size an image file's header claims, read before anything is decoded, so that a file
//! claiming 60000×60000 is refused by [`crate::pngtext::check_image_size`] before a browser or
//! decoder allocates for it. PNG, GIF, JPEG, WebP and BMP: the formats browsers decode.

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

/// The logical screen (every frame is drawn on it).
fn gif(bytes: &[u8]) -> Option<(u32, u32)> {
    Some((le16(bytes, 6)?, le16(bytes, 8)?))
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
}
