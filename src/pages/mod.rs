//! One module per page.
mod animate;
mod project;
mod studio;
mod system;
mod travel;

pub use project::ProjectPage;
pub use system::SystemPage;
