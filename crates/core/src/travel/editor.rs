//! The stage editor's edits: a second view of the prompt's lines (one stage each, with an
//! optional `THEN(seed=…, cfg=…)`) and of the travel-steps text (one entry per transition).
//! Each edit returns the new prompt and steps text, so the prompt box stays the one source.

use super::stages::stage_options;
use super::{TravelError, parse_steps};

/// One row of the stage editor.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRow {
    /// The stage's prompt (without its options).
    pub text: String,
    /// Its own seed.
    pub seed: Option<i64>,
    /// Its own CFG scale.
    pub cfg: Option<f64>,
}

impl StageRow {
    /// The prompt line: the text, then `THEN(…)` when it has options.
    pub fn line(&self) -> String {
        let mut options = Vec::new();
        if let Some(seed) = self.seed {
            options.push(format!("seed={seed}"));
        }
        if let Some(cfg) = self.cfg {
            options.push(format!("cfg={cfg}"));
        }
        if options.is_empty() {
            self.text.clone()
        } else {
            format!("{} THEN({})", self.text, options.join(", "))
        }
    }
}

/// The rows of a prompt box (a line whose options do not read keeps them in its text).
pub fn rows(prompt: &str) -> Vec<StageRow> {
    prompt
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match stage_options(line, 0) {
            Ok((text, seed, cfg)) => StageRow { text, seed, cfg },
            Err(_) => StageRow {
                text: line.to_owned(),
                seed: None,
                cfg: None,
            },
        })
        .collect()
}

/// Steps per transition for `stages` stages: the text's, or its first number for each when the
/// count does not match (the editor shows something sensible while the text is wrong).
pub fn transition_steps(text: &str, stages: usize) -> Vec<usize> {
    parse_steps(text, stages).unwrap_or_else(|_| {
        let first = text
            .split(',')
            .find_map(|t| t.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(30);
        vec![first; stages.saturating_sub(1).max(1)]
    })
}

/// The steps text: one number when every transition has the same, else a comma list.
pub fn steps_text(steps: &[usize]) -> String {
    match steps {
        [first, rest @ ..] if rest.iter().all(|s| s == first) => first.to_string(),
        _ => steps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// An edit in the stage editor.
#[derive(Clone, Debug, PartialEq)]
pub enum StageEdit {
    /// A new last stage (a copy of the last one, to edit).
    Add,
    /// Remove stage `i` (and the transition into it, or out of it for the first).
    Remove(usize),
    /// Move stage `i` one place up (earlier).
    Up(usize),
    /// Move stage `i` one place down.
    Down(usize),
    /// Replace stage `i`'s prompt.
    Text(usize, String),
    /// Stage `i`'s own seed (empty: none).
    Seed(usize, String),
    /// Travel steps of transition `i` (from stage `i` to `i + 1`).
    Steps(usize, String),
}

/// Applies `edit` to the prompt and steps text; returns the new prompt and steps text.
pub fn apply(edit: StageEdit, prompt: &str, steps: &str) -> Result<(String, String), TravelError> {
    let mut rows = rows(prompt);
    let mut transitions = transition_steps(steps, rows.len());
    transitions.resize(
        rows.len().saturating_sub(1),
        transitions.last().copied().unwrap_or(30),
    );
    let n = rows.len();
    let bad = |i: usize| TravelError::StageOptions {
        stage: i + 1,
        message: format!("there are {n} stages"),
    };
    match edit {
        StageEdit::Add => {
            let last = rows.last().cloned().unwrap_or(StageRow {
                text: "a new stage".into(),
                seed: None,
                cfg: None,
            });
            if !rows.is_empty() {
                transitions.push(transitions.last().copied().unwrap_or(30));
            }
            rows.push(last);
        }
        StageEdit::Remove(i) if i < n => {
            rows.remove(i);
            if !transitions.is_empty() {
                transitions.remove(i.saturating_sub(1).min(transitions.len() - 1));
            }
        }
        StageEdit::Up(i) if i > 0 && i < n => rows.swap(i - 1, i),
        StageEdit::Down(i) if i + 1 < n => rows.swap(i, i + 1),
        StageEdit::Up(_) | StageEdit::Down(_) => {}
        StageEdit::Text(i, text) if i < n => {
            rows[i].text = text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        }
        StageEdit::Seed(i, text) if i < n => rows[i].seed = parse_seed(i, &text)?,
        StageEdit::Steps(i, text) if i < transitions.len() => {
            transitions[i] = text.trim().parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                TravelError::Steps(format!("{text:?} is not a whole number of at least 1"))
            })?;
        }
        StageEdit::Remove(i)
        | StageEdit::Text(i, _)
        | StageEdit::Seed(i, _)
        | StageEdit::Steps(i, _) => {
            return Err(bad(i));
        }
    }
    let prompt = rows
        .iter()
        .map(StageRow::line)
        .collect::<Vec<_>>()
        .join("\n");
    let steps = if transitions.is_empty() {
        steps.trim().to_owned()
    } else {
        steps_text(&transitions)
    };
    Ok((prompt, steps))
}

fn parse_seed(i: usize, text: &str) -> Result<Option<i64>, TravelError> {
    let text = text.trim();
    if text.is_empty() || text == "-1" {
        return Ok(None);
    }
    text.parse::<i64>()
        .ok()
        .filter(|s| (0..=i64::from(u32::MAX)).contains(s))
        .map(Some)
        .ok_or_else(|| TravelError::StageOptions {
            stage: i + 1,
            message: format!("seed {text:?} is not a whole number from 0 to 4294967295"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(e: StageEdit, prompt: &str, steps: &str) -> (String, String) {
        apply(e, prompt, steps).unwrap()
    }

    #[test]
    fn rows_read_lines_and_options() {
        let r = rows("a cat THEN(seed=5)\n\n a dog THEN(cfg=9, seed=1)\nbad THEN(x=1)");
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].text.as_str(), r[0].seed), ("a cat", Some(5)));
        assert_eq!(r[1].line(), "a dog THEN(seed=1, cfg=9)");
        assert_eq!(r[2].text, "bad THEN(x=1)");
    }

    #[test]
    fn edits_rewrite_the_prompt_and_the_steps() {
        let p = "a cat\na dog\na bird";
        assert_eq!(
            edit(StageEdit::Add, p, "5"),
            ("a cat\na dog\na bird\na bird".into(), "5".into())
        );
        assert_eq!(
            edit(StageEdit::Steps(1, "8".into()), p, "5"),
            (p.into(), "5, 8".into())
        );
        assert_eq!(
            edit(StageEdit::Remove(1), p, "4, 8"),
            ("a cat\na bird".into(), "8".into())
        );
        assert_eq!(
            edit(StageEdit::Remove(2), p, "4, 8"),
            ("a cat\na dog".into(), "4".into())
        );
        assert_eq!(
            edit(StageEdit::Down(0), p, "4, 8").0,
            "a dog\na cat\na bird"
        );
        assert_eq!(edit(StageEdit::Up(2), p, "4, 8").0, "a cat\na bird\na dog");
        assert_eq!(edit(StageEdit::Up(0), p, "4, 8").0, p);
        assert_eq!(
            edit(StageEdit::Seed(1, "77".into()), p, "4").0,
            "a cat\na dog THEN(seed=77)\na bird"
        );
        assert_eq!(
            edit(StageEdit::Seed(1, "".into()), "a\nb THEN(seed=3)", "4").0,
            "a\nb"
        );
        assert_eq!(
            edit(StageEdit::Text(0, "a fox".into()), p, "4").0,
            "a fox\na dog\na bird"
        );
        assert!(apply(StageEdit::Seed(0, "x".into()), p, "4").is_err());
        assert!(apply(StageEdit::Steps(0, "0".into()), p, "4").is_err());
        assert!(apply(StageEdit::Text(5, "x".into()), p, "4").is_err());
        // A steps text that does not fit is shown (and rewritten) as its first number.
        assert_eq!(transition_steps("4, 8", 4), [4, 4, 4]);
        assert_eq!(
            edit(StageEdit::Add, "", "3"),
            ("a new stage".into(), "3".into())
        );
    }
}
