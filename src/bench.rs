//! "Benchmark this device" (the System page) as plain state: the benchmark asked for, its result
//! or failure. Tested natively with the worker's messages.

use keyshift_web::protocol::{BenchJob, BenchReport, FromWorker, Stage, ToWorker};

/// Timed steps unless the user asks for another number.
pub const DEFAULT_RUNS: u32 = 5;

/// The benchmark card.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BenchView {
    /// The benchmark waiting for its result.
    pub running: Option<u64>,
    /// The latest result, and the model it ran on (as the model card names it).
    pub result: Option<(BenchReport, String)>,
    /// Why the latest benchmark failed.
    pub error: Option<String>,
    model: String,
}

impl BenchView {
    /// The benchmark `job` of `model` at `width`×`height`, `runs` timed steps (the text of the
    /// runs field), or why it cannot start.
    pub fn start(
        &mut self,
        job: u64,
        model: &str,
        (width, height): (u32, u32),
        runs: &str,
    ) -> Result<ToWorker, String> {
        if self.running.is_some() {
            return Err("A benchmark is already running.".into());
        }
        let runs: u32 = runs
            .trim()
            .parse()
            .ok()
            .filter(|r| (1..=100).contains(r))
            .ok_or_else(|| format!("runs \"{}\" is not a number from 1 to 100", runs.trim()))?;
        self.running = Some(job);
        self.error = None;
        model.clone_into(&mut self.model);
        Ok(ToWorker::Benchmark {
            job: BenchJob {
                job,
                width,
                height,
                runs,
            },
        })
    }

    /// Folds a worker message in.
    pub fn apply(&mut self, message: &FromWorker) {
        let Some(running) = self.running else {
            return;
        };
        match message {
            FromWorker::Benchmarked { job, report } if *job == running => {
                self.result = Some((report.clone(), std::mem::take(&mut self.model)));
                self.running = None;
            }
            FromWorker::Cancelled { job } if *job == running => self.running = None,
            FromWorker::Failed {
                stage: Stage::Generate | Stage::Crashed,
                message,
            } => {
                self.error = Some(message.clone());
                self.running = None;
            }
            _ => {}
        }
    }

    /// The result in one line.
    pub fn result_text(&self) -> Option<String> {
        let (r, model) = self.result.as_ref()?;
        Some(format!(
            "{:.1} ms per UNet step with CFG at {}×{} (median of {}; fastest {:.1} ms; first step \
             {:.0} ms) — {model}",
            r.median_ms, r.width, r.height, r.runs, r.min_ms, r.warmup_ms
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]
    use super::*;

    fn report() -> BenchReport {
        BenchReport {
            width: 64,
            height: 64,
            runs: 3,
            median_ms: 812.25,
            min_ms: 790.0,
            warmup_ms: 4100.0,
            checksum: -4.575,
        }
    }

    #[test]
    fn a_benchmark_runs_once_and_reports_its_model() {
        let mut bench = BenchView::default();
        let sent = bench.start(7, "tiny test model on WebGPU", (64, 64), " 3 ");
        assert_eq!(
            sent,
            Ok(ToWorker::Benchmark {
                job: BenchJob {
                    job: 7,
                    width: 64,
                    height: 64,
                    runs: 3
                }
            })
        );
        assert!(bench.start(8, "x", (64, 64), "3").is_err(), "one at a time");
        // Another job's result is not this one's.
        bench.apply(&FromWorker::Benchmarked {
            job: 6,
            report: report(),
        });
        assert_eq!(bench.running, Some(7));
        bench.apply(&FromWorker::Benchmarked {
            job: 7,
            report: report(),
        });
        assert_eq!(bench.running, None);
        assert_eq!(
            bench.result_text().unwrap(),
            "812.2 ms per UNet step with CFG at 64×64 (median of 3; fastest 790.0 ms; first step \
             4100 ms) — tiny test model on WebGPU"
        );
    }

    #[test]
    fn bad_runs_and_failures_are_named_and_end_the_benchmark() {
        let mut bench = BenchView::default();
        let err = bench.start(1, "m", (64, 64), "0").unwrap_err();
        assert_eq!(err, "runs \"0\" is not a number from 1 to 100");
        assert!(bench.start(1, "m", (64, 64), "many").is_err());
        assert_eq!(bench.running, None);
        bench.start(2, "m", (64, 64), "2").unwrap();
        bench.apply(&FromWorker::Failed {
            stage: Stage::Generate,
            message: "4096×4096 is too large for this GPU".into(),
        });
        assert_eq!(bench.running, None);
        assert_eq!(
            bench.error.as_deref(),
            Some("4096×4096 is too large for this GPU")
        );
        bench.start(3, "m", (64, 64), "2").unwrap();
        assert_eq!(bench.error, None);
        bench.apply(&FromWorker::Cancelled { job: 3 });
        assert_eq!(bench.running, None);
        assert_eq!(bench.result, None);
    }
}
