//! The Parseq mode's part of a project: the document (as Parseq saves it) and how Keyshift renders
//! it as Deforum's 2D animation.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::image::Border;

/// The Parseq mode's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParseqSettings {
    /// The Parseq document as JSON text; empty until one is opened (the editor then starts from
    /// Parseq's default template).
    pub document: String,
    /// Which output frames to render: `A..B` (B excluded), `A..=B`, `A..`, one frame `A`, or
    /// empty for all.
    pub frames: String,
    /// What the motion reveals at the edges.
    pub border: Border,
    /// LAB colour coherence with the first moved frame (Deforum's default).
    pub colour_coherence: bool,
}

impl Default for ParseqSettings {
    fn default() -> Self {
        Self {
            document: String::new(),
            frames: String::new(),
            border: Border::Replicate,
            colour_coherence: true,
        }
    }
}

impl ParseqSettings {
    /// The frames to render of a document with `n` output frames.
    pub fn range(&self, n: usize) -> Result<Range<usize>, String> {
        match self.frames.trim() {
            "" => Ok(0..n),
            text => parse_frames(text, n),
        }
    }
}

/// `A..B` (B excluded), `A..=B`, `A..`, `..B` or a single frame `A`, within `0..n`.
pub fn parse_frames(text: &str, n: usize) -> Result<Range<usize>, String> {
    let number = |s: &str| -> Result<usize, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("frames: \"{}\" is not a frame number", s.trim()))
    };
    let range = match text.split_once("..") {
        None => {
            let a = number(text)?;
            a..a + 1
        }
        Some((a, b)) => {
            let start = if a.trim().is_empty() { 0 } else { number(a)? };
            let end = match (b.strip_prefix('='), b.trim().is_empty()) {
                (Some(last), _) => number(last)? + 1,
                (None, true) => n,
                (None, false) => number(b)?,
            };
            start..end
        }
    };
    if range.start >= range.end || range.end > n {
        return Err(format!(
            "frames: {text} is not a non-empty range within the document's frames 0..{n}"
        ));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ranges() {
        assert_eq!(parse_frames("0..4", 10), Ok(0..4));
        assert_eq!(parse_frames("2..=4", 10), Ok(2..5));
        assert_eq!(parse_frames("7..", 10), Ok(7..10));
        assert_eq!(parse_frames("..3", 10), Ok(0..3));
        assert_eq!(parse_frames("3", 10), Ok(3..4));
        assert!(parse_frames("4..2", 10).is_err());
        assert!(parse_frames("0..11", 10).is_err());
        assert!(parse_frames("a..b", 10).is_err());
        let s = ParseqSettings::default();
        assert_eq!(s.range(5), Ok(0..5));
    }
}
