//! `keyshift warp IN.png --zoom Z --angle DEG --tx X --ty Y [--border replicate|wrap] --out OUT.png`:
//! one step of Deforum's 2D motion on an image (the matrix and sampling of `render parseq`).

use keyshift_core::image::{Border, Motion2d, warp_perspective};
use keyshift_core::pngtext::encode_rgb;
use keyshift_render::store::decode_png;

use crate::args::Args;
use crate::engine::write;

const OPTIONS: &[&str] = &["zoom", "angle", "tx", "ty", "border", "out"];

/// Reads the motion flags: zoom 1, angle and translations 0 when absent.
fn motion(args: &Args) -> Result<Motion2d, String> {
    let number = |key: &str, default: f64| -> Result<f64, String> {
        let v = args.parsed(key, default)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("--{key}: must be a finite number"))
        }
    };
    let zoom = number("zoom", 1.0)?;
    if zoom == 0.0 {
        return Err("--zoom: 0 would collapse the image to a point".into());
    }
    Ok(Motion2d {
        zoom,
        angle: number("angle", 0.0)?,
        translation_x: number("tx", 0.0)?,
        translation_y: number("ty", 0.0)?,
    })
}

/// Runs the command.
#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI reads the image it is given"
)]
pub fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: keyshift warp IN.png --zoom Z --angle DEG --tx X --ty Y \
                 [--border replicate|wrap] --out OUT.png";
    let Some((input, rest)) = args.split_first().filter(|(a, _)| !a.starts_with("--")) else {
        return Err(usage.into());
    };
    let args = Args::parse(rest, &[])?;
    if let Some(unknown) = args.unknown(OPTIONS) {
        return Err(unknown);
    }
    let border = args.get("border").unwrap_or("replicate");
    let border = Border::from_name(border)
        .ok_or_else(|| format!("--border: \"{border}\" (use replicate or wrap)"))?;
    let motion = motion(&args)?;
    let out = args.required("out")?;
    let bytes = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let image = decode_png(&bytes).map_err(|e| format!("{input}: {e}"))?;
    let warped = warp_perspective(&image, &motion.matrix(image.width, image.height), border);
    let png = encode_rgb(warped.width, warped.height, &warped.data, &[])
        .map_err(|e| format!("cannot encode {out}: {e}"))?;
    write(std::path::Path::new(out), &png)
}
