//! `THEN`: a prompt split into segments, each travelling towards the options of the `THEN(...)`
//! that ends it (`seed=` for seed travel, `cfg=` for CFG travel).
//!
//! The positive and negative prompts are split separately and paired segment by segment; when one
//! runs out its entries are `None` ("reuse the previous text"). A negative prompt's `seed=` is used
//! only when the positive one has none; a positive `cfg=` overrides a negative one.

use super::ShiftError;
use crate::prompt::{Fidelity, py, python_float};

/// A segment's text (stripped) and the character index where it starts in its prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentText {
    /// The text.
    pub text: String,
    /// Index (in characters) of its first character in the whole prompt.
    pub offset: usize,
}

/// One segment before rendering: its texts (`None` once its prompt has run out) and the options
/// of the `THEN(...)` that ends it.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentSpec {
    /// Positive text; `None` when the positive prompt has fewer segments.
    pub prompt: Option<SegmentText>,
    /// Negative text; `None` when the negative prompt has fewer segments.
    pub negative: Option<SegmentText>,
    /// `seed=`: the seed this segment travels to.
    pub seed: Option<i64>,
    /// `cfg=`: the CFG scale this segment travels to.
    pub cfg: Option<f64>,
}

/// A text piece, where it starts, and the separator after it (`None` for the last piece).
struct Piece {
    text: String,
    start: usize,
    separator: Option<Separator>,
}

impl Piece {
    fn stripped(&self) -> SegmentText {
        let lead = self.text.chars().take_while(|&c| py::is_space(c)).count();
        SegmentText {
            text: py::strip(&self.text).to_owned(),
            offset: self.start + lead,
        }
    }
}

/// `THEN` or `THEN(options)`, with the character index of its options.
struct Separator {
    options: Option<String>,
    options_at: usize,
}

/// Pairs the `THEN` segments of both prompts.
pub fn split_segments(
    prompt: &str,
    negative: &str,
    fidelity: Fidelity,
) -> Result<Vec<SegmentSpec>, ShiftError> {
    let mut positive = split_then(prompt, fidelity).into_iter();
    let mut negative = split_then(negative, fidelity).into_iter();
    let mut specs = Vec::new();
    loop {
        let (neg, pos) = (negative.next(), positive.next());
        if neg.is_none() && pos.is_none() {
            return Ok(specs);
        }
        let neg_options = read_options(neg.as_ref(), fidelity)?;
        let pos_options = read_options(pos.as_ref(), fidelity)?;
        specs.push(pair(pos, neg, &pos_options, &neg_options, fidelity));
    }
}

fn pair(
    pos: Option<Piece>,
    neg: Option<Piece>,
    pos_options: &Options,
    neg_options: &Options,
    fidelity: Fidelity,
) -> SegmentSpec {
    let seed = match (pos_options.seed, fidelity) {
        (Some(seed), Fidelity::Keyshift) => Some(seed),
        (Some(seed), Fidelity::Original) if seed != 0 => Some(seed),
        _ => neg_options.seed,
    };
    let cfg = if pos_options.cfg_set {
        pos_options.cfg
    } else {
        neg_options.cfg
    };
    SegmentSpec {
        prompt: pos.as_ref().map(Piece::stripped),
        negative: neg.as_ref().map(Piece::stripped),
        seed,
        cfg,
    }
}

/// `re.split("(THEN\([^\)]*\)|THEN)", text)`; with [`Fidelity::Keyshift`], `THEN` must be a
/// whole word (so `STRENGTHEN` is text).
fn split_then(text: &str, fidelity: Fidelity) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut piece_start = 0;
    let mut i = 0;
    while i < chars.len() {
        match then_at(&chars, i, fidelity) {
            Some((end, separator)) => {
                pieces.push(Piece {
                    text: chars
                        .get(piece_start..i)
                        .unwrap_or_default()
                        .iter()
                        .collect(),
                    start: piece_start,
                    separator: Some(separator),
                });
                piece_start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    pieces.push(Piece {
        text: chars
            .get(piece_start..)
            .unwrap_or_default()
            .iter()
            .collect(),
        start: piece_start,
        separator: None,
    });
    pieces
}

fn then_at(chars: &[char], i: usize, fidelity: Fidelity) -> Option<(usize, Separator)> {
    if chars.get(i..i + 4) != Some(&['T', 'H', 'E', 'N'][..]) {
        return None;
    }
    let word = |j: Option<usize>| {
        j.and_then(|j| chars.get(j))
            .is_some_and(|&c| py::is_word(c))
    };
    if fidelity == Fidelity::Keyshift && word(i.checked_sub(1)) {
        return None;
    }
    let after = i + 4;
    if chars.get(after) == Some(&'(')
        && let Some(len) = chars
            .get(after + 1..)
            .and_then(|rest| rest.iter().position(|&c| c == ')'))
    {
        let options = chars.get(after + 1..after + 1 + len)?.iter().collect();
        let separator = Separator {
            options: Some(options),
            options_at: after + 1,
        };
        return Some((after + len + 2, separator));
    }
    if fidelity == Fidelity::Keyshift && word(Some(after)) {
        return None;
    }
    let separator = Separator {
        options: None,
        options_at: after,
    };
    Some((after, separator))
}

/// The options of one `THEN(...)`. `cfg_set` records that a `cfg` key was present (even with an
/// unreadable value, which then resets it), as in shift-attention.
#[derive(Default)]
struct Options {
    seed: Option<i64>,
    cfg: Option<f64>,
    cfg_set: bool,
}

fn read_options(piece: Option<&Piece>, fidelity: Fidelity) -> Result<Options, ShiftError> {
    let mut options = Options::default();
    let Some(Separator {
        options: Some(inner),
        options_at,
    }) = piece.and_then(|p| p.separator.as_ref())
    else {
        return Ok(options);
    };
    // shift-attention unwraps `THEN(...)` with `.*`, which stops at a newline: such options are
    // then split with their `THEN(` and `)` still attached.
    let (text, mut at) = if inner.contains('\n') {
        (format!("THEN({inner})"), options_at.saturating_sub(5))
    } else {
        (inner.clone(), *options_at)
    };
    for item in text.split(',') {
        read_item(item, at, fidelity, &mut options)?;
        at += item.chars().count() + 1;
    }
    Ok(options)
}

fn read_item(
    item: &str,
    at: usize,
    fidelity: Fidelity,
    options: &mut Options,
) -> Result<(), ShiftError> {
    let mut parts = item.split('=');
    let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    if parts.next().is_some() {
        return Err(ShiftError::BadThenOption {
            position: at,
            option: item.to_owned(),
        });
    }
    let key = match fidelity {
        Fidelity::Keyshift => key.trim(),
        Fidelity::Original => key,
    };
    match key {
        "seed" => options.seed = py::parse_int(value),
        "cfg" => {
            options.cfg = python_float(value);
            options.cfg_set = true;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(prompt: &str, negative: &str, fidelity: Fidelity) -> Vec<SegmentSpec> {
        split_segments(prompt, negative, fidelity).unwrap_or_default()
    }

    fn text(text: &str, offset: usize) -> SegmentText {
        SegmentText {
            text: text.to_owned(),
            offset,
        }
    }

    fn spec(prompt: Option<SegmentText>, negative: Option<SegmentText>) -> SegmentSpec {
        SegmentSpec {
            prompt,
            negative,
            seed: None,
            cfg: None,
        }
    }

    #[test]
    fn pairs_segments_and_options() {
        let got = specs("a THEN(seed=2) b THEN c", "n", Fidelity::Original);
        let mut first = spec(Some(text("a", 0)), Some(text("n", 0)));
        first.seed = Some(2);
        assert_eq!(
            got,
            vec![
                first,
                spec(Some(text("b", 15)), None),
                spec(Some(text("c", 22)), None)
            ]
        );
    }

    #[test]
    fn keyshift_fixes() {
        let original = specs("a THEN(seed=5, cfg=12) b", "", Fidelity::Original);
        assert_eq!(original.first().and_then(|s| s.cfg), None);
        let fixed = specs("a THEN(seed=5, cfg=12) b", "", Fidelity::Keyshift);
        assert_eq!(fixed.first().and_then(|s| s.cfg), Some(12.0));
        assert_eq!(specs("STRENGTHEN", "", Fidelity::Original).len(), 2);
        assert_eq!(specs("STRENGTHEN", "", Fidelity::Keyshift).len(), 1);
        let zero = specs("a THEN(seed=0) b", "", Fidelity::Keyshift);
        assert_eq!(zero.first().and_then(|s| s.seed), Some(0));
        let zero = specs("a THEN(seed=0) b", "", Fidelity::Original);
        assert_eq!(zero.first().and_then(|s| s.seed), None);
    }

    #[test]
    fn two_equals_signs_are_an_error() {
        assert_eq!(
            split_segments("a THEN(seed=1=2) b", "", Fidelity::Keyshift),
            Err(ShiftError::BadThenOption {
                position: 7,
                option: "seed=1=2".into()
            })
        );
    }

    #[test]
    fn spaced_options_are_text() {
        let got = specs("a THEN (seed=5) b", "", Fidelity::Original);
        assert_eq!(
            got.get(1).and_then(|s| s.prompt.clone()),
            Some(text("(seed=5) b", 7))
        );
    }
}
