//! Any animation's source behind one type, for callers that pick the mode at run time (the
//! worker renders whichever mode a job names).

use keyshift_core::image::RgbImage;

use crate::RenderError;
use crate::manifest::FrameRecord;
use crate::parseq::ParseqSource;
use crate::shift::ShiftSource;
use crate::single::SingleFrame;
use crate::source::{Finished, FrameSource, FrameSpec};
use crate::travel::{TravelAgain, TravelSource};

/// A render's source, whichever mode it is.
#[derive(Debug)]
pub enum AnimationSource {
    /// One frame (a single image, or a stored frame made again).
    Single(Box<SingleFrame>),
    /// shift-attention.
    Shift(Box<ShiftSource>),
    /// Prompt travel.
    Travel(Box<TravelSource>),
    /// One prompt-travel frame made again.
    TravelAgain(Box<TravelAgain>),
    /// A Parseq document with Deforum's 2D motion.
    Parseq(Box<ParseqSource>),
    /// Video input.
    Video(Box<crate::video::VideoSource>),
}

impl AnimationSource {
    fn inner(&mut self) -> &mut dyn FrameSource {
        match self {
            Self::Single(s) => s.as_mut(),
            Self::Shift(s) => s.as_mut(),
            Self::Travel(s) => s.as_mut(),
            Self::TravelAgain(s) => s.as_mut(),
            Self::Parseq(s) => s.as_mut(),
            Self::Video(s) => s.as_mut(),
        }
    }

    fn inner_ref(&self) -> &dyn FrameSource {
        match self {
            Self::Single(s) => s.as_ref(),
            Self::Shift(s) => s.as_ref(),
            Self::Travel(s) => s.as_ref(),
            Self::TravelAgain(s) => s.as_ref(),
            Self::Parseq(s) => s.as_ref(),
            Self::Video(s) => s.as_ref(),
        }
    }
}

impl FrameSource for AnimationSource {
    fn next_frame(&mut self) -> Result<Option<FrameSpec>, RenderError> {
        self.inner().next_frame()
    }

    fn frame_done(&mut self, record: &FrameRecord, image: &RgbImage) -> Result<(), RenderError> {
        self.inner().frame_done(record, image)
    }

    fn ready_ahead(&self) -> usize {
        self.inner_ref().ready_ahead()
    }

    fn expected_frames(&self) -> usize {
        self.inner_ref().expected_frames()
    }

    fn finish(&mut self) -> Result<Finished, RenderError> {
        self.inner().finish()
    }
}
