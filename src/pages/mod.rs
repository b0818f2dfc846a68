//! One module per page.
mod animate;
mod control;
mod heatmap;
mod parseq;
mod parseq_audio;
mod parseq_graph;
mod parseq_grid;
mod parseq_panels;
mod project;
mod studio;
mod system;
mod temporal;
mod travel;
mod video;

pub use project::ProjectPage;
pub use system::SystemPage;
