//! Deforum / FizzNodes schedule strings, as Parseq's "Raw schedules" panel writes them:
//! `0: (1), 1: (0.5), …` for a field (its deltas or absolute values) and `"0": "prompt",` lines
//! for prompts.

use super::jsnum::to_js_string;
use super::render::Rendered;

/// Which values of a field a schedule carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleVariant {
    /// `<field>_delta` (what Deforum uses for motion when `parseq_use_deltas` is on).
    Delta,
    /// The field's value.
    Absolute,
}

/// Which part of the prompt a prompt schedule carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptPart {
    /// `deforum_prompt` as is.
    Full,
    /// The text before `--neg`.
    Positive,
    /// The text after `--neg` (`undefined` when there is none, as in Parseq).
    Negative,
}

/// `0: (v), 1: (v), …` for a managed field; `None` if the field is not rendered.
pub fn field_schedule(
    rendered: &Rendered,
    field: &str,
    variant: ScheduleVariant,
) -> Option<String> {
    let f = rendered.field(field)?;
    let column = match variant {
        ScheduleVariant::Delta => &f.delta,
        ScheduleVariant::Absolute => &f.values,
    };
    let parts: Vec<String> = column
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{}: ({})",
                rendered.first_frame + i as i64,
                to_js_string(*v)
            )
        })
        .collect();
    Some(parts.join(", "))
}

/// `"0": "prompt"` lines joined with `,\n`; `None` when prompts are disabled.
pub fn prompt_schedule(rendered: &Rendered, part: PromptPart) -> Option<String> {
    let prompts = rendered.prompts.as_ref()?;
    let lines: Vec<String> = prompts
        .iter()
        .enumerate()
        .map(|(i, full)| {
            let piece = match part {
                PromptPart::Full => full.as_str(),
                PromptPart::Positive => full.split("--neg").next().unwrap_or(""),
                PromptPart::Negative => full.split("--neg").nth(1).unwrap_or("undefined"),
            };
            format!("\"{}\": \"{piece}\"", rendered.first_frame + i as i64)
        })
        .collect();
    Some(lines.join(",\n"))
}
