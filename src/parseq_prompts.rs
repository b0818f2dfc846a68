//! The Parseq editor's prompt edits, each one undo step: a prompt's texts, range and fades, the
//! common prompt and its position, adding and removing prompts, spacing them evenly, and
//! importing Deforum-style `{"frame": "positive --neg negative"}` objects or plain lines.

use serde_json::{Map, Value as Json, json};

use crate::parseq::ParseqEditor;

/// What of a prompt an edit sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKey {
    /// Its name.
    Name,
    /// Positive text.
    Positive,
    /// Negative text.
    Negative,
    /// First frame.
    From,
    /// Last frame.
    To,
    /// Active on every frame (`true` / `false`).
    AllFrames,
    /// Overlap: `none`, `linear` or `custom`.
    Overlap,
    /// Fade-in frames.
    InFrames,
    /// Fade-out frames.
    OutFrames,
    /// Custom weight formula.
    Custom,
}

/// The prompts object of a document map (created when missing).
fn prompts(map: &mut Map<String, Json>) -> Option<&mut Map<String, Json>> {
    let slot = map
        .entry("prompts")
        .or_insert_with(|| json!({"format": "v2", "enabled": true, "promptList": []}));
    if !slot.is_object() {
        *slot = json!({"format": "v2", "enabled": true, "promptList": []});
    }
    slot.as_object_mut()
}

/// The prompt list of a document map (created when missing).
fn list(map: &mut Map<String, Json>) -> Option<&mut Vec<Json>> {
    let slot = prompts(map)?
        .entry("promptList")
        .or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut()
}

/// A prompt of the list.
fn prompt(name: &str, positive: &str, negative: &str, from: i64, to: i64) -> Json {
    json!({
        "name": name, "positive": positive, "negative": negative, "allFrames": false,
        "from": from, "to": to,
        "overlap": {"inFrames": 0, "outFrames": 0, "type": "none", "custom": "prompt_weight_1"}
    })
}

impl ParseqEditor {
    /// The prompt list as the document holds it.
    pub fn prompt_list(&self) -> Vec<Json> {
        self.document()
            .json()
            .get("prompts")
            .and_then(|p| p.get("promptList"))
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// The last frame of the document.
    fn last_frame(&self) -> i64 {
        self.keyframe_frames().last().copied().unwrap_or(0)
    }

    /// Sets `key` of prompt `index` from `text`.
    pub fn set_prompt(&mut self, index: usize, key: PromptKey, text: &str) -> Result<(), String> {
        let number = || {
            text.trim()
                .parse::<f64>()
                .map(|v| json!(v.round() as i64))
                .map_err(|_| format!("\"{text}\" is not a frame number"))
        };
        let (path, value): (&[&str], Json) = match key {
            PromptKey::Name => (&["name"], json!(text)),
            PromptKey::Positive => (&["positive"], json!(text)),
            PromptKey::Negative => (&["negative"], json!(text)),
            PromptKey::From => (&["from"], number()?),
            PromptKey::To => (&["to"], number()?),
            PromptKey::AllFrames => (&["allFrames"], json!(text == "true")),
            PromptKey::Overlap => (&["overlap", "type"], json!(text)),
            PromptKey::InFrames => (&["overlap", "inFrames"], number()?),
            PromptKey::OutFrames => (&["overlap", "outFrames"], number()?),
            PromptKey::Custom => (&["overlap", "custom"], json!(text)),
        };
        if index >= self.prompt_list().len() {
            return Err(format!("there is no prompt {}", index + 1));
        }
        self.edit_document(|map| {
            let Some(Json::Object(p)) = list(map).and_then(|l| l.get_mut(index)) else {
                return;
            };
            let mut slot = p;
            for key in &path[..path.len() - 1] {
                let next = slot.entry(*key).or_insert_with(|| json!({}));
                let Some(obj) = next.as_object_mut() else {
                    return;
                };
                slot = obj;
            }
            if let Some(last) = path.last() {
                slot.insert((*last).to_owned(), value);
            }
        })
    }

    /// Adds a prompt over every frame.
    pub fn add_prompt(&mut self) -> Result<(), String> {
        let (n, last) = (self.prompt_list().len() + 1, self.last_frame());
        self.edit_document(|map| {
            if let Some(l) = list(map) {
                l.push(prompt(&format!("Prompt {n}"), "", "", 0, last));
            }
        })
    }

    /// Removes prompt `index` (one always stays).
    pub fn remove_prompt(&mut self, index: usize) -> Result<(), String> {
        if self.prompt_list().len() <= 1 {
            return Err("the last prompt cannot be removed (disable prompts instead)".into());
        }
        self.edit_document(|map| {
            if let Some(l) = list(map).filter(|l| index < l.len()) {
                l.remove(index);
            }
        })
    }

    /// The common prompt's texts (`positive`, `negative`) or its position (`pos`: append,
    /// prepend, template), or whether Parseq manages prompts (`enabled`).
    pub fn set_common(&mut self, key: &str, text: &str) -> Result<(), String> {
        if key == "pos" && !["append", "prepend", "template"].contains(&text) {
            return Err(format!("\"{text}\" (use append, prepend or template)"));
        }
        self.edit_document(|map| {
            let Some(p) = prompts(map) else { return };
            match key {
                "pos" => {
                    p.insert("commonPromptPos".into(), json!(text));
                }
                "enabled" => {
                    p.insert("enabled".into(), json!(text == "true"));
                }
                _ => {
                    let c = p.entry("commonPrompt").or_insert_with(|| json!({}));
                    if let Some(c) = c.as_object_mut() {
                        c.insert(key.to_owned(), json!(text));
                    }
                }
            }
        })
    }

    /// Spreads the prompts evenly over the frames with `fade` frames of linear overlap between
    /// neighbours (none at the ends), as Parseq's "Evenly space prompts".
    pub fn evenly_space(&mut self, fade: i64) -> Result<(), String> {
        let n = self.prompt_list().len();
        if n == 0 {
            return Err("there are no prompts to space".into());
        }
        let last = self.last_frame();
        let span = (last + 1) as f64 / n as f64;
        let half = fade.max(0) as f64 / 2.0;
        self.edit_document(|map| {
            for (i, p) in list(map).into_iter().flatten().enumerate() {
                let Some(p) = p.as_object_mut() else { continue };
                let from = (i as f64 * span - half).ceil().max(0.0) as i64;
                let to = (((i + 1) as f64 * span + half).floor() as i64).min(last);
                let (fade_in, fade_out) = (
                    if i == 0 { 0 } else { fade },
                    if i + 1 == n { 0 } else { fade },
                );
                p.insert("from".into(), json!(from));
                p.insert("to".into(), json!(to));
                p.insert("allFrames".into(), json!(false));
                let o = p.entry("overlap").or_insert_with(|| json!({}));
                if let Some(o) = o.as_object_mut() {
                    o.insert(
                        "type".into(),
                        json!(if fade > 0 { "linear" } else { "none" }),
                    );
                    o.insert("inFrames".into(), json!(fade_in));
                    o.insert("outFrames".into(), json!(fade_out));
                }
            }
        })
    }

    /// Replaces the prompts with those in `text`: a Deforum-style object
    /// `{"0": "a cat --neg blurry", "60": "a dog"}` (each runs until the next starts, the last to
    /// the end) or plain lines (spaced evenly).
    pub fn import_prompts(&mut self, text: &str) -> Result<usize, String> {
        let last = self.last_frame();
        let mut starts: Vec<(i64, String)> = match serde_json::from_str::<Json>(text.trim()) {
            Ok(Json::Object(obj)) => obj
                .iter()
                .map(|(k, v)| {
                    let frame = k
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| format!("\"{k}\" is not a frame"))?;
                    let text = v
                        .as_str()
                        .ok_or_else(|| format!("the prompt at {k} is not text"))?;
                    Ok((frame.round() as i64, text.to_owned()))
                })
                .collect::<Result<_, String>>()?,
            _ => {
                let lines: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                let n = lines.len().max(1) as i64;
                lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| ((i as i64 * last) / n, l.to_owned()))
                    .collect()
            }
        };
        if starts.is_empty() {
            return Err(
                "no prompts found: paste {\"frame\": \"prompt\"} or one prompt per line".into(),
            );
        }
        starts.sort_by_key(|s| s.0);
        let count = starts.len();
        let made: Vec<Json> = starts
            .iter()
            .enumerate()
            .map(|(i, (from, text))| {
                let to = starts.get(i + 1).map_or(last, |n| (n.0 - 1).max(*from));
                let (pos, neg) = text.split_once("--neg").unwrap_or((text, ""));
                prompt(
                    &format!("Prompt {}", i + 1),
                    pos.trim(),
                    neg.trim(),
                    *from,
                    to,
                )
            })
            .collect();
        self.edit_document(|map| {
            if let Some(l) = list(map) {
                *l = made;
            }
        })?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parseq::tests::catduck;

    #[test]
    fn prompt_edits_reach_the_rendered_prompts() {
        let mut e = catduck();
        assert_eq!(e.set_prompt(0, PromptKey::Positive, "a red fox"), Ok(()));
        assert_eq!(e.set_prompt(0, PromptKey::Negative, "blurry"), Ok(()));
        assert_eq!(e.prompt_at(10).as_deref(), Some("a red fox --neg blurry"));
        assert_eq!(e.set_common("positive", "oil painting"), Ok(()));
        assert_eq!(
            e.prompt_at(10).as_deref(),
            Some("a red fox oil painting --neg blurry")
        );
        assert_eq!(e.set_common("pos", "prepend"), Ok(()));
        assert_eq!(
            e.prompt_at(10).as_deref(),
            Some("oil painting a red fox --neg blurry")
        );
        assert!(e.set_common("pos", "sideways").is_err());
        assert!(e.set_prompt(0, PromptKey::From, "x").is_err());
        assert!(e.set_prompt(5, PromptKey::Name, "x").is_err());
        assert!(e.remove_prompt(0).is_err(), "one prompt stays");
    }

    #[test]
    fn two_prompts_fade_with_weights() {
        let mut e = catduck();
        assert_eq!(e.import_prompts("a cat\na dog"), Ok(2));
        assert_eq!(e.evenly_space(10), Ok(()));
        let list = e.prompt_list();
        assert_eq!(
            (list[0]["from"].clone(), list[0]["to"].clone()),
            (json!(0), json!(65))
        );
        assert_eq!(
            (list[1]["from"].clone(), list[1]["to"].clone()),
            (json!(55), json!(119))
        );
        let mid = e.prompt_at(60).unwrap_or_default();
        assert!(
            mid.contains("a cat: ") && mid.contains(" AND a dog: "),
            "{mid}"
        );
        assert_eq!(e.prompt_at(0).as_deref(), Some("a cat"));
    }

    #[test]
    fn deforum_style_prompts_import() {
        let mut e = catduck();
        let n = e.import_prompts(r#"{"0": "a cat --neg blurry", "60": "a dog"}"#);
        assert_eq!(n, Ok(2));
        let list = e.prompt_list();
        assert_eq!(list[0]["to"], json!(59));
        assert_eq!(list[1]["to"], json!(119));
        assert_eq!(list[0]["negative"], json!("blurry"));
        assert_eq!(e.prompt_at(59).as_deref(), Some("a cat --neg blurry"));
        assert_eq!(e.prompt_at(60).as_deref(), Some("a dog"));
        assert_eq!(e.add_prompt(), Ok(()));
        assert_eq!(e.prompt_list().len(), 3);
        assert_eq!(e.remove_prompt(2), Ok(()));
        assert!(e.import_prompts("").is_err());
        assert_eq!(e.undo(), Ok(()));
        assert_eq!(e.prompt_list().len(), 3);
    }
}
