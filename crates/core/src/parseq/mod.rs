//! Parseq (rewbs/sd-parseq v0.1.112) compatible keyframe sequencer: the interpolation language,
//! documents, rendering, Deforum schedules and frame plans.

pub mod bench;
pub mod bezier;
pub mod cases;
pub mod deforum;
pub mod document;
mod earley;
pub mod eval;
pub mod functions;
pub mod interp;
pub mod jsnum;
pub mod loopback;
pub mod noise;
pub mod parser;
pub mod random;
pub mod render;
pub mod templates;
pub mod value;

pub use eval::{Context, EvalError, Formula, Keyed, KeyframeInfo, Lookup, NoLookup, TimeSeries};
pub use parser::ParseError;
pub use value::Value;
