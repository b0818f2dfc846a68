//! Benchmark this device (the System page): the shapes of one UNet step with CFG at the asked
//! size, and the report from its timings. Plain functions, tested natively; the worker's engine
//! runs the steps.

use keyshift_sd::model::ModelInfo;
use keyshift_web::protocol::{BenchJob, BenchReport};

use crate::job::check_size;

/// The most timed steps one benchmark takes.
pub const MAX_RUNS: u32 = 100;

/// The latent sample's fill (as `keyshift bench unet` and the peers' benchmark).
pub const SAMPLE: f32 = 0.1;
/// The text context's fill.
pub const CONTEXT: f32 = 0.01;
/// The timestep of every step.
pub const TIMESTEP: f64 = 900.0;

/// The inputs of a benchmark's UNet call: batch 2, as with CFG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchShapes {
    /// `[2, channels, height / scale, width / scale]`.
    pub latent: [usize; 4],
    /// `[2, 77, context width]`.
    pub context: [usize; 3],
}

/// The shapes for `job` on a model of `info`, or why it cannot run (`limit`: bytes per buffer
/// on WebGPU, `None` on the CPU).
pub fn bench_shapes(
    job: &BenchJob,
    info: &ModelInfo,
    limit: Option<u64>,
) -> Result<BenchShapes, String> {
    if job.runs == 0 || job.runs > MAX_RUNS {
        return Err(format!(
            "runs must be from 1 to {MAX_RUNS}; {} is not",
            job.runs
        ));
    }
    let scale = info.vae.downscale().max(1);
    let (w, h) = (job.width as usize, job.height as usize);
    if w == 0 || h == 0 || !w.is_multiple_of(scale) || !h.is_multiple_of(scale) {
        return Err(format!(
            "this model needs sides that are multiples of {scale}; {w}x{h} is not"
        ));
    }
    if let Some(limit) = limit {
        check_size(info, (w, h), 2, limit)?;
    }
    Ok(BenchShapes {
        latent: [2, info.unet.in_channels, h / scale, w / scale],
        context: [2, 77, info.unet.cross_attention_dim],
    })
}

/// The report of `job`: `times` the timed steps in milliseconds, `output` the first step's
/// output values (flattened).
pub fn bench_report(job: &BenchJob, warmup_ms: f64, times: &[f64], output: &[f32]) -> BenchReport {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    BenchReport {
        width: job.width,
        height: job.height,
        runs: u32::try_from(times.len()).unwrap_or(u32::MAX),
        median_ms: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        min_ms: sorted.first().copied().unwrap_or(0.0),
        warmup_ms,
        checksum: output.iter().take(16).map(|&v| f64::from(v)).sum(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]
    use super::*;

    fn job(width: u32, height: u32, runs: u32) -> BenchJob {
        BenchJob {
            job: 1,
            width,
            height,
            runs,
        }
    }

    #[test]
    fn shapes_follow_the_model_and_the_size() {
        let shapes = bench_shapes(&job(512, 768, 3), &ModelInfo::sd15(), Some(128 << 20));
        assert_eq!(
            shapes,
            Ok(BenchShapes {
                latent: [2, 4, 96, 64],
                context: [2, 77, 768],
            })
        );
    }

    #[test]
    fn bad_requests_are_named() {
        let info = ModelInfo::sd15();
        let runs = bench_shapes(&job(512, 512, 0), &info, None).unwrap_err();
        assert!(runs.contains("runs must be from 1 to 100"), "{runs}");
        let odd = bench_shapes(&job(500, 512, 3), &info, None).unwrap_err();
        assert!(odd.contains("multiples of 8; 500x512"), "{odd}");
        let big = bench_shapes(&job(2048, 2048, 3), &info, Some(128 << 20)).unwrap_err();
        assert!(big.contains("too large for this GPU"), "{big}");
        // On the CPU there is no buffer limit.
        assert!(bench_shapes(&job(2048, 2048, 3), &info, None).is_ok());
    }

    #[test]
    fn the_report_takes_the_median_and_the_first_sixteen_values() {
        let output: Vec<f32> = (0..20).map(|i| i as f32 * 0.5).collect();
        let report = bench_report(&job(64, 64, 4), 900.0, &[40.0, 10.0, 30.0, 20.0], &output);
        assert_eq!(report.median_ms, 30.0);
        assert_eq!(report.min_ms, 10.0);
        assert_eq!(report.runs, 4);
        assert_eq!(report.warmup_ms, 900.0);
        // 0.5 × (0 + 1 + … + 15)
        assert_eq!(report.checksum, 60.0);
    }
}
