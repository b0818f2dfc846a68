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

use leptos::prelude::{GetUntracked, Memo};

/// After a text or number input's `change` was handled: shows what the project now holds. A
/// refused value, or one normalised to what was already stored, would otherwise stay in the box,
/// because the input's memo does not fire when the stored value did not change.
pub fn show_stored(ev: &leptos::ev::Event, stored: Memo<String>) {
    if let Some(target) = ev.target() {
        // `value` is set the same way on an input and a textarea.
        let _ = js_sys::Reflect::set(&target, &"value".into(), &stored.get_untracked().into());
    }
}
