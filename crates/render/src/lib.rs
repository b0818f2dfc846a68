//! The render layer: one loop from a plan to frames, for the browser worker and the CLI alike.
//!
//! A [`FrameSource`] says which frame comes next ([`FrameSpec`]: prompts, seeds, variation, CFG,
//! optional init image) and may look at each finished frame before deciding (SSIM gap filling is
//! such a feedback source). A [`RenderSession`] turns specs into images with the engine, one
//! sampling step per [`RenderSession::advance`], and reports [`Event`]s: each step, each finished
//! frame (with A1111's `parameters` and its manifest record), and the end with the frames' video
//! order. The worker awaits between steps (yielding to its event loop, where Cancel arrives); the
//! CLI simply loops. A single image is a one-frame plan ([`SingleFrame`]).
//!
//! Sources: [`SingleFrame`], [`ShiftSource`] (shift-attention, with SSIM gap filling on the
//! rendered frames), [`TravelSource`] (prompt travel: mixed stage conditioning per step,
//! img2img chains, embryo latents), [`ParseqSource`] (a Parseq document rendered as Deforum's 2D
//! loopback, with cadence frames made without diffusion), [`VideoSource`] (video input: img2img
//! of each source frame, output at the source's size). Any of them may run with temporal
//! consistency ([`TemporalState`]: attention and latent interpolation with the previous frames,
//! colours matched to the first), and any frame with a hint ([`Hint`]) is guided by the session's
//! ControlNet.

mod animation;
mod eta;
mod manifest;
mod parseq;
mod session;
mod shift;
mod single;
mod source;
pub mod store;
mod svg;
mod temporal;
mod travel;
mod travel_gap;
mod video;

pub use animation::AnimationSource;
pub use eta::Eta;
pub use manifest::{FrameRecord, OVERRIDES, frame_parameters};
pub use parseq::{ParseqOptions, ParseqSource};
pub use session::{
    Event, FinishedFrame, MAX_FRAME_BATCH, Progress, RenderSession, StepEvent, StoredFrame,
};
pub use shift::{INFO_FILE, SCATTER_FILE, ShiftOptions, ShiftSource};
pub use single::SingleFrame;
pub use source::{
    Embryo, Finished, FrameSource, FrameSpec, FrameTravel, Hint, RenderControl, RenderSettings,
    TravelMix,
};
pub use svg::ssim_scatter_svg;
pub use temporal::{TemporalState, frame_blend_config, weight_schedule};
pub use travel::{TravelAgain, TravelOptions, TravelSource};
pub use travel_gap::TravelGapOptions;
pub use video::{VideoFrame, VideoHint, VideoOptions, VideoSource};

/// Why rendering stopped.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The plan is invalid (a prompt, a `THEN` option, a setting).
    #[error("{0}")]
    Plan(String),
    /// The engine could not make a frame.
    #[error("frame {frame}: {source}")]
    Generate {
        /// Generation index of the frame.
        frame: usize,
        /// What went wrong.
        source: keyshift_sd::generate::GenerateError,
    },
    /// A finished frame could not be encoded.
    #[error("frame {frame}: {message}")]
    Encode {
        /// Generation index of the frame.
        frame: usize,
        /// What went wrong.
        message: String,
    },
    /// `advance` was called after `Done`.
    #[error("the render is finished")]
    Finished,
}
