//! What the image tests share: reading their reference PNGs.

use keyshift_core::image::RgbImage;
use keyshift_core::pngtext::decode_rgb;

/// The PNG `name` of `tests/data/<dir>/` as RGB (an unreadable one fails the test by name).
#[allow(clippy::disallowed_methods, reason = "test data")]
pub fn data_png(dir: &str, name: &str) -> RgbImage {
    let path = format!("{}/tests/data/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap_or_default();
    let Ok((width, height, data)) = decode_rgb(&bytes) else {
        panic!("{name} is not a readable PNG");
    };
    RgbImage {
        width,
        height,
        data,
    }
}
