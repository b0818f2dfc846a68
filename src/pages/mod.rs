//! One module per page.
mod project;
mod studio;
mod system;

pub use project::ProjectPage;
pub use system::SystemPage;
