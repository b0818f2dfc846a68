//! The job queue: one job runs at a time, later ones wait; a cancelled job stops before its next
//! step, or never starts. A plain owned struct, tested natively.

use std::collections::{BTreeSet, VecDeque};

use keyshift_web::protocol::{BenchJob, GenerateJob, ProbeJob, RenderJob, RerenderJob};

/// A queued job.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// One image.
    Generate(GenerateJob),
    /// An animation.
    Render(Box<RenderJob>),
    /// One frame of a stored animation, again.
    Rerender(RerenderJob),
    /// Visualize Cross-Attention on an image.
    Probe(Box<ProbeJob>),
    /// Time UNet steps.
    Bench(BenchJob),
}

impl Job {
    /// The id every message about it carries.
    pub fn id(&self) -> u64 {
        match self {
            Self::Generate(job) => job.job,
            Self::Render(job) => job.frame.job,
            Self::Rerender(job) => job.job,
            Self::Probe(job) => job.job,
            Self::Bench(job) => job.job,
        }
    }
}

/// What the queue hands out next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run this job.
    Run(Job),
    /// This job was cancelled before it started: report it.
    Skip(u64),
    /// Nothing is waiting: the runner stops.
    Idle,
}

/// Waiting jobs, cancellations, and whether a runner is running.
#[derive(Debug, Default)]
pub struct JobQueue {
    waiting: VecDeque<Job>,
    cancelled: BTreeSet<u64>,
    running: bool,
}

impl JobQueue {
    /// Adds `job`; `true` when no runner is running, so the caller must start one.
    pub fn push(&mut self, job: Job) -> bool {
        self.waiting.push_back(job);
        !std::mem::replace(&mut self.running, true)
    }

    /// The next job for the runner (which stops at [`Next::Idle`]).
    pub fn take_next(&mut self) -> Next {
        match self.waiting.pop_front() {
            Some(job) if self.cancelled.remove(&job.id()) => Next::Skip(job.id()),
            Some(job) => Next::Run(job),
            None => {
                self.running = false;
                Next::Idle
            }
        }
    }

    /// Asks job `id` to stop before its next step (or not to start).
    pub fn cancel(&mut self, id: u64) {
        self.cancelled.insert(id);
    }

    /// Whether job `id` was asked to stop (the request is used up).
    pub fn take_cancelled(&mut self, id: u64) -> bool {
        self.cancelled.remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_web::protocol::Sampler;

    fn job(id: u64) -> Job {
        Job::Generate(GenerateJob {
            job: id,
            prompt: "a cat".into(),
            negative: String::new(),
            width: 64,
            height: 64,
            steps: 4,
            sampler: Sampler::Euler,
            cfg: 7.0,
            seed: 1,
            preview_every: 0,
            init: None,
            init_image: None,
            heatmap: None,
            control: None,
        })
    }

    #[test]
    fn jobs_run_in_order_with_one_runner() {
        let mut q = JobQueue::default();
        assert!(q.push(job(1)), "the first job starts a runner");
        assert!(!q.push(job(2)), "the runner takes the second");
        assert_eq!(q.take_next(), Next::Run(job(1)));
        assert_eq!(q.take_next(), Next::Run(job(2)));
        assert_eq!(q.take_next(), Next::Idle);
        assert!(q.push(job(3)), "an idle queue needs a runner again");
    }

    #[test]
    fn a_cancelled_job_never_starts_and_a_running_one_sees_it_once() {
        let mut q = JobQueue::default();
        q.push(job(1));
        q.push(job(2));
        q.cancel(2);
        assert_eq!(q.take_next(), Next::Run(job(1)));
        assert!(!q.take_cancelled(1));
        q.cancel(1);
        assert!(q.take_cancelled(1));
        assert!(!q.take_cancelled(1), "used up");
        assert_eq!(q.take_next(), Next::Skip(2));
        assert_eq!(q.take_next(), Next::Idle);
    }
}
