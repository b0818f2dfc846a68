//! `keyshift quantize --model PATH --out PATH`: saves a model as int8 (a diffusers folder stays a
//! folder, a single file stays a file) and reports its size against the same model in f16.

use std::path::Path;

use crate::args::Args;
use crate::backend::Backend;
use crate::load::{fp16_bytes, quantize_model};

/// Runs the command; the error is the message to print.
#[allow(clippy::print_stdout, reason = "a command line prints its results")]
pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &[])?;
    if let Some(unknown) = args.unknown(&["model", "out", "backend"]) {
        return Err(unknown);
    }
    let device = Backend::parse(args.get("backend").unwrap_or("cpu"))?.device()?;
    let model = Path::new(args.required("model")?);
    let out = Path::new(args.required("out")?);
    let quantized = quantize_model(model, &device)?;
    let mut written = 0u64;
    for (relative, bytes) in &quantized.files {
        let path = if relative.is_empty() {
            out.to_path_buf()
        } else {
            out.join(relative)
        };
        write(&path, bytes)?;
        if relative.is_empty() || relative.ends_with(".safetensors") {
            written += bytes.len() as u64;
        }
    }
    let half = fp16_bytes(model)?;
    println!("int8_bytes: {written}");
    println!("fp16_bytes: {half}");
    println!(
        "size_ratio_vs_fp16: {:.3}",
        written as f64 / half.max(1) as f64
    );
    Ok(())
}

#[allow(
    clippy::disallowed_methods,
    reason = "the native CLI writes the files it is asked to"
)]
fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}
