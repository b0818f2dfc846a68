//! One module per page.
mod animate;
mod parseq;
mod parseq_audio;
mod parseq_graph;
mod parseq_grid;
mod parseq_panels;
mod project;
mod studio;
mod system;
mod travel;

pub use project::ProjectPage;
pub use system::SystemPage;
