//! Starting documents, by the names Parseq gives its templates (`?templateId=`): a blank
//! document, several prompts, Parseq's default "Cat / Duck", and waves of strength and seed.
//! Each is a partial document that [`Document::from_json`] fills with Parseq's defaults.

use super::document::{Document, DocumentError};

/// A starting document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Parseq's template id.
    pub id: &'static str,
    /// Its name in the UI.
    pub name: &'static str,
    /// What it shows.
    pub description: &'static str,
    json: &'static str,
}

/// Every template, in the order a picker lists them.
pub const TEMPLATES: [Template; 5] = [
    Template {
        id: "catduck",
        name: "Cat / Duck",
        description: "Term weights slide a black cat into a white duck while the camera zooms.",
        json: include_str!("templates/catduck.json"),
    },
    Template {
        id: "blank",
        name: "Blank",
        description: "Two keyframes, a seed that counts up each frame, and no prompts.",
        json: include_str!("templates/blank.json"),
    },
    Template {
        id: "multiprompt",
        name: "Multi-prompt",
        description: "Three prompts that fade into one another over 120 frames.",
        json: include_str!("templates/multiprompt.json"),
    },
    Template {
        id: "strengthWave",
        name: "Strength wave",
        description: "Strength and zoom swing with the beat (sine oscillators).",
        json: include_str!("templates/strengthWave.json"),
    },
    Template {
        id: "seedWave",
        name: "Seed wave",
        description: "The seed rocks back and forth on a triangle wave: fractional seeds travel.",
        json: include_str!("templates/seedWave.json"),
    },
];

impl Template {
    /// The template called `id`.
    pub fn by_id(id: &str) -> Option<Self> {
        TEMPLATES.into_iter().find(|t| t.id == id)
    }

    /// The template as a document (filled with Parseq's defaults).
    pub fn document(&self) -> Result<Document, DocumentError> {
        Document::from_json_str(self.json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parseq::render::render;

    #[test]
    fn every_template_opens_and_renders() {
        for t in TEMPLATES {
            let doc = t.document();
            let Ok(doc) = doc else {
                panic!("{}: {doc:?}", t.id);
            };
            let rendered = render(&doc);
            let Ok((_, rendered)) = rendered else {
                panic!("{}: {rendered:?}", t.id);
            };
            assert_eq!(rendered.frame_count, 120, "{}", t.id);
            assert!(rendered.field("seed").is_some(), "{}", t.id);
        }
        assert_eq!(
            Template::by_id("seedWave").map(|t| t.name),
            Some("Seed wave")
        );
        assert!(Template::by_id("nope").is_none());
    }

    #[test]
    fn waves_move() {
        let doc = Template::by_id("strengthWave").map(|t| t.document());
        let Some(Ok(doc)) = doc else {
            panic!("opens");
        };
        let Ok((_, rendered)) = render(&doc) else {
            panic!("renders");
        };
        let strength = rendered
            .field("strength")
            .map(|f| f.values.clone())
            .unwrap_or_default();
        let (lo, hi) = strength
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        assert!(lo < 0.45 && hi > 0.65, "{lo}..{hi}");
    }
}
