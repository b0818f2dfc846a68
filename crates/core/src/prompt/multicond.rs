//! Composable diffusion: A1111's `get_multicond_prompt_list` for one prompt.
//!
//! The prompt is split at every whole word `AND`; each part may end with `:weight` (a plain
//! decimal, no exponent), and is encoded on its own. The denoiser combines the parts as
//! `uncond + Σ weight_i · cfg · (cond_i − uncond)`.

use serde::{Deserialize, Serialize};

use super::py;

/// One `AND` part of a prompt and its weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AndPart {
    /// The part's text, without its `:weight` and trailing whitespace.
    pub text: String,
    /// The weight (1 when none is given).
    pub weight: f64,
}

/// Splits `prompt` at `\bAND\b` and reads each part's trailing `:weight`.
pub fn split_and(prompt: &str) -> Vec<AndPart> {
    split_at_and(prompt)
        .into_iter()
        .map(|part| part_with_weight(&part))
        .collect()
}

/// `re.split(r"\bAND\b", prompt)`.
fn split_at_and(prompt: &str) -> Vec<String> {
    let chars: Vec<char> = prompt.chars().collect();
    let word = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|&c| py::is_word(c))
    };
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 3 <= chars.len() {
        let is_and = chars.get(i..i + 3) == Some(&['A', 'N', 'D'][..])
            && !word(i.checked_sub(1))
            && !word(Some(i + 3));
        if is_and {
            parts.push(chars.get(start..i).unwrap_or_default().iter().collect());
            start = i + 3;
            i += 3;
        } else {
            i += 1;
        }
    }
    parts.push(chars.get(start..).unwrap_or_default().iter().collect());
    parts
}

/// `re_weight`: the shortest text such that the rest is `\s*:\s*NUMBER\s*` or only whitespace.
fn part_with_weight(part: &str) -> AndPart {
    let chars: Vec<char> = part.chars().collect();
    let trimmed_end = chars.len() - chars.iter().rev().take_while(|&&c| py::is_space(c)).count();
    let unweighted = || AndPart {
        text: chars
            .get(..trimmed_end)
            .unwrap_or_default()
            .iter()
            .collect(),
        weight: 1.0,
    };
    let Some(colon) = chars
        .get(..trimmed_end)
        .and_then(|head| head.iter().rposition(|&c| c == ':'))
    else {
        return unweighted();
    };
    let number_start = colon
        + 1
        + chars
            .get(colon + 1..trimmed_end)
            .unwrap_or_default()
            .iter()
            .take_while(|&&c| py::is_space(c))
            .count();
    let number: String = chars
        .get(number_start..trimmed_end)
        .unwrap_or_default()
        .iter()
        .collect();
    let weight = is_weight_number(&number)
        .then(|| py::parse_float(&number))
        .flatten();
    let Some(weight) = weight else {
        return unweighted();
    };
    let text_end = colon
        - chars
            .get(..colon)
            .unwrap_or_default()
            .iter()
            .rev()
            .take_while(|&&c| py::is_space(c))
            .count();
    AndPart {
        text: chars.get(..text_end).unwrap_or_default().iter().collect(),
        weight,
    }
}

/// `[-+]?(?:\d+\.?|\d*\.\d+)` matching all of `s`.
fn is_weight_number(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |t: &str| t.chars().all(py::is_decimal);
    let n_int = int.chars().count();
    let n_frac = frac.chars().count();
    all_digits(int) && all_digits(frac) && n_int + n_frac > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(prompt: &str) -> Vec<(String, f64)> {
        split_and(prompt)
            .into_iter()
            .map(|p| (p.text, p.weight))
            .collect()
    }

    fn p(text: &str, weight: f64) -> (String, f64) {
        (text.to_owned(), weight)
    }

    #[test]
    fn weights_and_words() {
        assert_eq!(parts("a :1.5 AND b :0.5"), vec![p("a", 1.5), p(" b", 0.5)]);
        assert_eq!(parts("a : 2 AND b"), vec![p("a", 2.0), p(" b", 1.0)]);
        assert_eq!(parts("a AND"), vec![p("a", 1.0), p("", 1.0)]);
        assert_eq!(parts("aANDb"), vec![p("aANDb", 1.0)]);
        assert_eq!(parts("a and b"), vec![p("a and b", 1.0)]);
        assert_eq!(parts("a :1e2 AND b"), vec![p("a :1e2", 1.0), p(" b", 1.0)]);
        assert_eq!(parts("a: +1 AND b"), vec![p("a", 1.0), p(" b", 1.0)]);
        assert_eq!(parts("x:5."), vec![p("x", 5.0)]);
        assert_eq!(parts("x:."), vec![p("x:.", 1.0)]);
    }
}
