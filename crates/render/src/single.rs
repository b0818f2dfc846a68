//! A single image: the one-frame plan.

use crate::RenderError;
use crate::source::{Finished, FrameSource, FrameSpec};

/// Renders one frame.
#[derive(Debug)]
pub struct SingleFrame {
    spec: Option<FrameSpec>,
}

impl SingleFrame {
    /// The plan of `spec` alone.
    pub fn new(spec: FrameSpec) -> Self {
        Self { spec: Some(spec) }
    }
}

impl FrameSource for SingleFrame {
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        Ok(self.spec.take())
    }

    fn expected_frames(&self) -> usize {
        1
    }

    fn finish(&mut self) -> Result<Finished, RenderError> {
        Ok(Finished {
            order: vec![0],
            ..Finished::default()
        })
    }
}
