//! AUTOMATIC1111's prompt language, read exactly as A1111 reads it.
//!
//! A prompt goes through three stages, as in A1111:
//! 1. [`split_and`]: `AND` parts with weights (composable diffusion);
//! 2. [`prompt_schedule`]: each part's text per sampling step (`[from:to:when]`, `[a|b]`);
//! 3. [`parse_attention`]: each scheduled text's emphasis (`(x)`, `[x]`, `(x:1.3)`, `BREAK`).
//!
//! [`ParsedPrompt::parse`] runs all three. Every function accepts any string: it either parses
//! or returns a typed error with a character position; none panics.

mod attention;
mod multicond;
pub(crate) mod py;
mod schedule;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use attention::{AttentionError, Chunk, parse_attention, parse_attention_pairs};
pub use multicond::{AndPart, split_and};
pub use py::{parse_float as python_float, plain_decimal, python_repr};
pub use schedule::{
    MAX_NESTING, ScheduleEntry, ScheduleError, ScheduleOptions, ScheduleTree, prompt_schedule,
};

/// Whether to reproduce an original tool bug for bug, or to apply Keyshift's documented fixes of
/// its quirks (`docs/compat.md`). Everything that is not a documented quirk behaves the same in
/// both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fidelity {
    /// The original's behaviour with Keyshift's documented fixes (what the app uses).
    #[default]
    Keyshift,
    /// The original's behaviour, quirks included (for conformance checks).
    Original,
}

/// Why a prompt could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PromptError {
    /// Emphasis could not be read.
    #[error(transparent)]
    Attention(#[from] AttentionError),
    /// Scheduling could not be read.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

impl PromptError {
    /// Index (in characters, within the text that was being read) where the problem is.
    pub fn position(&self) -> usize {
        match self {
            Self::Attention(AttentionError::BadWeight { position, .. })
            | Self::Schedule(ScheduleError::TooDeep { position }) => *position,
        }
    }
}

/// One entry of a part's schedule, with its emphasis read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledText {
    /// The last sampling step (1-based) at which this text applies.
    pub end_at_step: i64,
    /// The text for those steps.
    pub text: String,
    /// The text's weighted chunks.
    pub chunks: Vec<Chunk>,
}

/// One `AND` part: its weight and its per-step texts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParsedPart {
    /// The part's text (as split, before scheduling).
    pub text: String,
    /// Composable-diffusion weight.
    pub weight: f64,
    /// The part's schedule (at least one entry; the last ends at the last step).
    pub schedule: Vec<ScheduledText>,
}

/// A prompt fully read: `AND` parts, each with its schedule and emphasis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParsedPrompt {
    /// The parts, in order.
    pub parts: Vec<ParsedPart>,
}

impl ParsedPrompt {
    /// Reads `prompt` for a pass described by `options`.
    ///
    /// An error's position is within the `AND` part, or the scheduled text, where it was found.
    pub fn parse(
        prompt: &str,
        options: ScheduleOptions,
        fidelity: Fidelity,
    ) -> Result<Self, PromptError> {
        let parts = split_and(prompt)
            .into_iter()
            .map(|part| parse_part(part, options, fidelity))
            .collect::<Result<_, _>>()?;
        Ok(Self { parts })
    }
}

fn parse_part(
    part: AndPart,
    options: ScheduleOptions,
    fidelity: Fidelity,
) -> Result<ParsedPart, PromptError> {
    let schedule = prompt_schedule(&part.text, options)?
        .into_iter()
        .map(|entry| {
            let chunks = parse_attention(&entry.text, fidelity)?;
            Ok(ScheduledText {
                end_at_step: entry.end_at_step,
                text: entry.text,
                chunks,
            })
        })
        .collect::<Result<_, PromptError>>()?;
    Ok(ParsedPart {
        text: part.text,
        weight: part.weight,
        schedule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_three_stages() {
        let parsed = ParsedPrompt::parse(
            "a [red:blue:5] (cat:1.2) :0.5 AND dog",
            ScheduleOptions::steps(10),
            Fidelity::Keyshift,
        );
        let Ok(parsed) = parsed else {
            panic!("should parse: {parsed:?}");
        };
        assert_eq!(parsed.parts.len(), 2);
        let first = &parsed.parts[0];
        assert_eq!(first.weight, 0.5);
        assert_eq!(first.schedule.len(), 2);
        assert_eq!(first.schedule[0].text, "a red (cat:1.2)");
        assert_eq!(
            first.schedule[1].chunks,
            vec![
                Chunk::Text {
                    text: "a blue ".into(),
                    weight: 1.0
                },
                Chunk::Text {
                    text: "cat".into(),
                    weight: 1.2
                },
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        let err = ParsedPrompt::parse(
            "x AND (cat:1.2.3)",
            ScheduleOptions::steps(10),
            Fidelity::Keyshift,
        );
        assert_eq!(err.map_err(|e| e.position()), Err(6));
    }
}
