//! shift-attention's ranges: every `a~b~c…` run of numbers in a prompt, spread over a distance
//! from 0 to 1.
//!
//! The match rule is shift-attention's regex `[\-.\d]+~[\-~.\d]+`, anywhere in the text (weights,
//! `AND` weights, LoRA weights). `N` values are spread evenly in distance: at distance `d` with
//! `l = N - 1`, `q1 = ⌊d·l⌋`, `q2 = ⌈d·l⌉`, the value is `a[q1] + (a[q2] − a[q1])·(d·l − q1)`.

use super::ShiftError;
use crate::prompt::py;
use crate::prompt::{Fidelity, plain_decimal, python_float, python_repr};

/// One `a~b~c` run in a text.
#[derive(Clone, Debug, PartialEq)]
struct RangeSpan {
    /// Character range of the run.
    start: usize,
    end: usize,
    /// The values as written, with the character index of each.
    values: Vec<(usize, String)>,
}

/// A text whose ranges have been found (and, for [`Fidelity::Keyshift`], checked).
#[derive(Clone, Debug, PartialEq)]
pub struct RangedText {
    chars: Vec<char>,
    spans: Vec<RangeSpan>,
    fidelity: Fidelity,
}

impl RangedText {
    /// Finds the ranges of `text`. With [`Fidelity::Keyshift`] every value must be a number
    /// (`1~~2`, `1~0~`, `1-2~3` and `1.2.3~1` are errors with the position of the bad value);
    /// with [`Fidelity::Original`] a bad value fails only when a frame needs it, as in
    /// shift-attention.
    pub fn new(text: &str, fidelity: Fidelity) -> Result<Self, ShiftError> {
        let chars: Vec<char> = text.chars().collect();
        let spans = find_spans(&chars);
        let ranged = Self {
            chars,
            spans,
            fidelity,
        };
        if fidelity == Fidelity::Keyshift {
            ranged.check_values()?;
        }
        Ok(ranged)
    }

    /// Whether the text has any range.
    pub fn has_ranges(&self) -> bool {
        !self.spans.is_empty()
    }

    fn check_values(&self) -> Result<(), ShiftError> {
        for (position, value) in self.spans.iter().flat_map(|s| &s.values) {
            if python_float(value).is_none() {
                return Err(ShiftError::BadRangeValue {
                    position: *position,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }

    /// The text at distance `d` (0..=1): each range replaced by its value.
    pub fn at(&self, distance: f64) -> Result<String, ShiftError> {
        let mut out = String::with_capacity(self.chars.len());
        let mut copied = 0;
        for span in &self.spans {
            out.extend(self.chars.get(copied..span.start).unwrap_or_default());
            let value = interpolate(&span.values, distance)?;
            out.push_str(&self.format(value));
            copied = span.end;
        }
        out.extend(self.chars.get(copied..).unwrap_or_default());
        Ok(out)
    }

    fn format(&self, value: f64) -> String {
        match self.fidelity {
            Fidelity::Keyshift => plain_decimal(value),
            Fidelity::Original => python_repr(value),
        }
    }
}

/// The value of one range at distance `d`, parsing the values in the order Python does.
fn interpolate(values: &[(usize, String)], distance: f64) -> Result<f64, ShiftError> {
    let l = values.len().saturating_sub(1);
    #[allow(clippy::cast_precision_loss)]
    let scaled = distance * l as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (q1, q2) = (scaled.floor() as usize, scaled.ceil() as usize);
    let a1 = value_at(values, q1)?;
    let a2 = value_at(values, q2)?;
    #[allow(clippy::cast_precision_loss)]
    let fraction = scaled - q1 as f64;
    Ok(a1 + (a2 - a1) * fraction)
}

fn value_at(values: &[(usize, String)], i: usize) -> Result<f64, ShiftError> {
    let (position, text) = values
        .get(i)
        .or(values.last())
        .ok_or(ShiftError::BadRangeValue {
            position: 0,
            value: String::new(),
        })?;
    python_float(text).ok_or_else(|| ShiftError::BadRangeValue {
        position: *position,
        value: text.clone(),
    })
}

fn is_number_char(c: char) -> bool {
    c == '-' || c == '.' || py::is_decimal(c)
}

/// All non-overlapping matches of `[\-.\d]+~[\-~.\d]+`, leftmost first.
fn find_spans(chars: &[char]) -> Vec<RangeSpan> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match span_at(chars, i) {
            Some(span) => {
                i = span.end;
                spans.push(span);
            }
            None => i += 1,
        }
    }
    spans
}

fn span_at(chars: &[char], start: usize) -> Option<RangeSpan> {
    let head = chars
        .get(start..)?
        .iter()
        .take_while(|&&c| is_number_char(c))
        .count();
    if head == 0 || chars.get(start + head) != Some(&'~') {
        return None;
    }
    let tail_start = start + head + 1;
    let tail = chars
        .get(tail_start..)?
        .iter()
        .take_while(|&&c| c == '~' || is_number_char(c))
        .count();
    if tail == 0 {
        return None;
    }
    let end = tail_start + tail;
    Some(RangeSpan {
        start,
        end,
        values: split_values(chars, start, end),
    })
}

fn split_values(chars: &[char], start: usize, end: usize) -> Vec<(usize, String)> {
    let mut values = Vec::new();
    let mut value_start = start;
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate().take(end).skip(start) {
        if c == '~' {
            values.push((value_start, std::mem::take(&mut current)));
            value_start = i + 1;
        } else {
            current.push(c);
        }
    }
    values.push((value_start, current));
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, d: f64, fidelity: Fidelity) -> Result<String, ShiftError> {
        RangedText::new(text, fidelity)?.at(d)
    }

    #[test]
    fn spreads_values_evenly() {
        let k = Fidelity::Keyshift;
        assert_eq!(at("(cat:1~0~1)", 0.25, k), Ok("(cat:0.5)".into()));
        assert_eq!(at("(cat:1~0~1)", 0.5, k), Ok("(cat:0.0)".into()));
        assert_eq!(at("(cat:1~0~1)", 1.0, k), Ok("(cat:1.0)".into()));
        assert_eq!(
            at("cat :1~0 AND dog :0~1", 0.25, k),
            Ok("cat :0.75 AND dog :0.25".into())
        );
        assert_eq!(at("<lora:x:1~0>", 0.5, k), Ok("<lora:x:0.5>".into()));
    }

    #[test]
    fn small_values_are_plain_decimals_unless_original() {
        let text = "(x:0.00001~0.00002)";
        assert_eq!(at(text, 0.0, Fidelity::Keyshift), Ok("(x:0.00001)".into()));
        assert_eq!(at(text, 0.0, Fidelity::Original), Ok("(x:1e-05)".into()));
    }

    #[test]
    fn bad_values_are_errors_with_positions() {
        for (text, position, value) in [
            ("(cat:1~~2)", 7, ""),
            ("(cat:1~0~)", 9, ""),
            ("(cat:1-2~3)", 5, "1-2"),
            ("(cat:1.2.3~1)", 5, "1.2.3"),
        ] {
            assert_eq!(
                RangedText::new(text, Fidelity::Keyshift).err(),
                Some(ShiftError::BadRangeValue {
                    position,
                    value: value.into()
                }),
                "{text}"
            );
        }
        let lazy = RangedText::new("(cat:1~~2)", Fidelity::Original);
        assert_eq!(lazy.and_then(|r| r.at(0.0)), Ok("(cat:1.0)".into()));
    }
}
