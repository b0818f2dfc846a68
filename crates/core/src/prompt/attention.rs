//! Emphasis: A1111's `parse_prompt_attention`.
//!
//! `(x)` multiplies the weight of `x` by 1.1, `[x]` divides it by 1.1, `(x:1.3)` multiplies it by
//! 1.3; `\( \) \[ \] \\` are literal characters; `BREAK` (a whole word) starts a new 75-token chunk.
//! Unbalanced brackets still apply to the end of the prompt, unmatched closing brackets and stray
//! colons are text, and neighbouring pieces with exactly equal weights are merged.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::Fidelity;
use super::py;

/// A weighted piece of prompt text, or a chunk break.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chunk {
    /// Text whose tokens are all multiplied by `weight`.
    Text {
        /// The text, with escapes resolved and brackets removed.
        text: String,
        /// The emphasis multiplier.
        weight: f64,
    },
    /// `BREAK`: the text encoder starts a new chunk here.
    Break,
}

impl Chunk {
    /// A1111's `[text, weight]` pair; a break is `["BREAK", -1]`.
    pub fn to_pair(&self) -> (String, f64) {
        match self {
            Self::Text { text, weight } => (text.clone(), *weight),
            Self::Break => (BREAK.to_owned(), BREAK_WEIGHT),
        }
    }

    /// Reads an A1111 pair the way its text encoder does: only `["BREAK", -1]` is a break.
    pub fn from_pair(text: &str, weight: f64) -> Self {
        if text == BREAK && weight == BREAK_WEIGHT {
            Self::Break
        } else {
            Self::Text {
                text: text.to_owned(),
                weight,
            }
        }
    }
}

/// Why a prompt's emphasis could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AttentionError {
    /// `(x:1.2.3)`: the weight looks like a number but is not one (A1111 crashes with a
    /// `ValueError` here).
    #[error("invalid weight {text:?} at character {position}")]
    BadWeight {
        /// Index (in characters) of the first character of the weight.
        position: usize,
        /// The weight as written.
        text: String,
    },
}

const BREAK: &str = "BREAK";
/// [`BREAK`]'s characters.
const BREAK_CHARS: [char; 5] = ['B', 'R', 'E', 'A', 'K'];
const BREAK_WEIGHT: f64 = -1.0;
const ROUND_MULTIPLIER: f64 = 1.1;

/// One entry of the list being built; `is_break` marks the entries made for `BREAK`.
struct Entry {
    text: String,
    weight: f64,
    is_break: bool,
}

/// The state of one `parse_prompt_attention` run.
struct Parser {
    fidelity: Fidelity,
    res: Vec<Entry>,
    round: Vec<usize>,
    square: Vec<usize>,
}

/// Parses emphasis, returning A1111's list of `(text, weight)` pairs (a break is `("BREAK", -1)`).
///
/// With [`Fidelity::Original`] a `BREAK` inside brackets has its marker weight multiplied (e.g.
/// `-1.1`), exactly as A1111 does; with [`Fidelity::Keyshift`] it stays a break (see
/// `docs/compat.md`).
pub fn parse_attention_pairs(
    text: &str,
    fidelity: Fidelity,
) -> Result<Vec<(String, f64)>, AttentionError> {
    let entries = run(text, fidelity)?;
    Ok(entries
        .into_iter()
        .map(|e| {
            if e.is_break && fidelity == Fidelity::Keyshift {
                (BREAK.to_owned(), BREAK_WEIGHT)
            } else {
                (e.text, e.weight)
            }
        })
        .collect())
}

/// Parses emphasis into [`Chunk`]s: what the text encoder consumes.
pub fn parse_attention(text: &str, fidelity: Fidelity) -> Result<Vec<Chunk>, AttentionError> {
    let entries = run(text, fidelity)?;
    Ok(entries
        .into_iter()
        .map(|e| match fidelity {
            Fidelity::Keyshift if e.is_break => Chunk::Break,
            _ => Chunk::from_pair(&e.text, e.weight),
        })
        .collect())
}

fn run(text: &str, fidelity: Fidelity) -> Result<Vec<Entry>, AttentionError> {
    let chars: Vec<char> = text.chars().collect();
    let mut parser = Parser {
        fidelity,
        res: Vec::new(),
        round: Vec::new(),
        square: Vec::new(),
    };
    let mut i = 0;
    while i < chars.len() {
        i = parser.token(&chars, i)?;
    }
    parser.finish();
    Ok(parser.res)
}

impl Parser {
    /// Handles the token starting at `i`; returns where the next one starts.
    fn token(&mut self, chars: &[char], i: usize) -> Result<usize, AttentionError> {
        let Some(&c) = chars.get(i) else {
            return Ok(i + 1);
        };
        match c {
            '\\' => Ok(self.escape(chars, i)),
            '(' => {
                self.round.push(self.res.len());
                Ok(i + 1)
            }
            '[' => {
                self.square.push(self.res.len());
                Ok(i + 1)
            }
            ':' => self.colon(chars, i),
            ')' => {
                self.close(chars, i, true);
                Ok(i + 1)
            }
            ']' => {
                self.close(chars, i, false);
                Ok(i + 1)
            }
            _ => {
                let end = plain_run_end(chars, i);
                self.add_text(&collect(chars, i, end));
                Ok(end)
            }
        }
    }

    /// `\(`, `\)`, `\[`, `\]`, `\\` add the character; any other backslash adds nothing.
    fn escape(&mut self, chars: &[char], i: usize) -> usize {
        match chars.get(i + 1) {
            Some(&next @ ('(' | ')' | '[' | ']' | '\\')) => {
                self.push(next.to_string(), false);
                i + 2
            }
            _ => {
                self.push(String::new(), false);
                i + 1
            }
        }
    }

    /// `:NUMBER)` closes a round bracket with that weight; anything else is text.
    fn colon(&mut self, chars: &[char], i: usize) -> Result<usize, AttentionError> {
        let Some(close) = weight_close(chars, i) else {
            self.add_text(":");
            return Ok(i + 1);
        };
        if let Some(start) = self.round.pop() {
            let number = collect(chars, close.number_start, close.number_end);
            let weight = py::parse_float(&number).ok_or(AttentionError::BadWeight {
                position: close.number_start,
                text: number,
            })?;
            self.multiply_from(start, weight);
        } else {
            self.add_text(&collect(chars, i, close.end));
        }
        Ok(close.end)
    }

    /// `)` or `]`: closes the innermost bracket of its kind, or is text when none is open.
    fn close(&mut self, chars: &[char], i: usize, round: bool) {
        let (stack, multiplier) = if round {
            (&mut self.round, ROUND_MULTIPLIER)
        } else {
            (&mut self.square, 1.0 / ROUND_MULTIPLIER)
        };
        match stack.pop() {
            Some(start) => self.multiply_from(start, multiplier),
            None => self.add_text(&collect(chars, i, i + 1)),
        }
    }

    /// Adds text, splitting it at each `BREAK`.
    fn add_text(&mut self, text: &str) {
        for (n, part) in split_break(text).into_iter().enumerate() {
            if n > 0 {
                self.push(BREAK.to_owned(), true);
            }
            self.push(part.to_owned(), false);
        }
    }

    fn push(&mut self, text: String, is_break: bool) {
        let weight = if is_break { BREAK_WEIGHT } else { 1.0 };
        self.res.push(Entry {
            text,
            weight,
            is_break,
        });
    }

    fn multiply_from(&mut self, start: usize, multiplier: f64) {
        let keep_breaks = self.fidelity == Fidelity::Keyshift;
        for entry in self.res.iter_mut().skip(start) {
            if !(keep_breaks && entry.is_break) {
                entry.weight *= multiplier;
            }
        }
    }

    /// Applies unclosed brackets, fills an empty result and merges equal neighbours.
    fn finish(&mut self) {
        for start in std::mem::take(&mut self.round) {
            self.multiply_from(start, ROUND_MULTIPLIER);
        }
        for start in std::mem::take(&mut self.square) {
            self.multiply_from(start, 1.0 / ROUND_MULTIPLIER);
        }
        if self.res.is_empty() {
            self.push(String::new(), false);
        }
        self.merge_equal_neighbours();
    }

    fn merge_equal_neighbours(&mut self) {
        let keep_breaks = self.fidelity == Fidelity::Keyshift;
        let mut merged: Vec<Entry> = Vec::with_capacity(self.res.len());
        for entry in self.res.drain(..) {
            match merged.last_mut() {
                Some(last)
                    if last.weight == entry.weight
                        && !(keep_breaks && (last.is_break || entry.is_break)) =>
                {
                    last.text.push_str(&entry.text);
                    last.is_break = false;
                }
                _ => merged.push(entry),
            }
        }
        self.res = merged;
    }
}

/// Where a `:NUMBER)` token starting at `i` (a colon) ends, and where its number is.
struct WeightClose {
    number_start: usize,
    number_end: usize,
    end: usize,
}

/// Matches `:\s*([+-]?[.\d]+)\s*\)` at `i`.
fn weight_close(chars: &[char], i: usize) -> Option<WeightClose> {
    let at = |j: usize| chars.get(j).copied();
    let mut j = skip_spaces(chars, i + 1);
    let number_start = j;
    if matches!(at(j), Some('+' | '-')) {
        j += 1;
    }
    let digits_start = j;
    while at(j).is_some_and(|c| c == '.' || py::is_decimal(c)) {
        j += 1;
    }
    if j == digits_start {
        return None;
    }
    let number_end = j;
    let k = skip_spaces(chars, j);
    (at(k) == Some(')')).then_some(WeightClose {
        number_start,
        number_end,
        end: k + 1,
    })
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|&c| py::is_space(c)) {
        i += 1;
    }
    i
}

/// End of the run of characters other than `\ ( ) [ ] :` starting at `i`.
fn plain_run_end(chars: &[char], mut i: usize) -> usize {
    while chars
        .get(i)
        .is_some_and(|c| !matches!(c, '\\' | '(' | ')' | '[' | ']' | ':'))
    {
        i += 1;
    }
    i
}

fn collect(chars: &[char], start: usize, end: usize) -> String {
    chars.get(start..end).unwrap_or_default().iter().collect()
}

/// `re.split(r"\s*\bBREAK\b\s*", text)`.
pub(crate) fn split_break(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut part_start = 0;
    let mut search = 0;
    while search < chars.len() {
        match break_match_at(&chars, search) {
            Some(end) => {
                parts.push(collect(&chars, part_start, search));
                part_start = end;
                search = end;
            }
            // Every start inside a run of spaces skips to the same place and fails the same
            // way: go on after the run (a long run would otherwise cost its length squared).
            None => search = skip_spaces(&chars, search).max(search + 1),
        }
    }
    parts.push(collect(&chars, part_start, chars.len()));
    parts
}

/// If `\s*\bBREAK\b\s*` matches at `i`, where the match ends.
fn break_match_at(chars: &[char], i: usize) -> Option<usize> {
    let word = |j: usize| chars.get(j).is_some_and(|&c| py::is_word(c));
    let b = skip_spaces(chars, i);
    let before_is_word = b.checked_sub(1).is_some_and(word);
    if before_is_word || chars.get(b..b + BREAK_CHARS.len()) != Some(BREAK_CHARS.as_slice()) {
        return None;
    }
    let after = b + BREAK_CHARS.len();
    if word(after) {
        return None;
    }
    Some(skip_spaces(chars, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, f64)> {
        parse_attention_pairs(text, Fidelity::Original).unwrap_or_default()
    }

    fn p(text: &str, weight: f64) -> (String, f64) {
        (text.to_owned(), weight)
    }

    #[test]
    fn doctests() {
        assert_eq!(pairs("normal text"), vec![p("normal text", 1.0)]);
        assert_eq!(
            pairs("an (important) word"),
            vec![p("an ", 1.0), p("important", 1.1), p(" word", 1.0)]
        );
        assert_eq!(pairs("(unbalanced"), vec![p("unbalanced", 1.1)]);
        assert_eq!(pairs("\\(literal\\]"), vec![p("(literal]", 1.0)]);
        assert_eq!(
            pairs("(unnecessary)(parens)"),
            vec![p("unnecessaryparens", 1.1)]
        );
        assert_eq!(
            pairs("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            vec![
                p("a ", 1.0),
                p("house", 1.5730000000000004),
                p(" ", 1.1),
                p("on", 1.0),
                p(" a ", 1.1),
                p("hill", 0.55),
                p(", sun, ", 1.1),
                p("sky", 1.4641000000000006),
                p(".", 1.1),
            ]
        );
    }

    #[test]
    fn breaks() {
        assert_eq!(
            pairs("a BREAK b"),
            vec![p("a", 1.0), p("BREAK", -1.0), p("b", 1.0)]
        );
        assert_eq!(pairs("aBREAKb"), vec![p("aBREAKb", 1.0)]);
        let original = pairs("(a BREAK b)");
        assert_eq!(original.get(1), Some(&p("BREAK", -1.1)));
        let fixed = parse_attention("(a BREAK b)", Fidelity::Keyshift).unwrap_or_default();
        assert_eq!(fixed.get(1), Some(&Chunk::Break));
        assert_eq!(
            fixed.first(),
            Some(&Chunk::Text {
                text: "a".into(),
                weight: 1.1
            })
        );
    }

    #[test]
    fn breaks_after_and_between_runs_of_spaces() {
        // `re.split(r"\s*\bBREAK\b\s*", …)`: the spaces around a BREAK go with it, wherever
        // the search starts inside the run; a BREAK glued to a word is text.
        let spaces = " ".repeat(3000);
        assert_eq!(
            split_break(&format!("a{spaces}BREAK{spaces}b")),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert_eq!(
            split_break(&format!("{spaces}BREAK\tc BREAK")),
            vec![String::new(), "c".to_owned(), String::new()]
        );
        let no_break = format!("a{spaces}xBREAK{spaces}BREAKy{spaces}");
        assert_eq!(split_break(&no_break), vec![no_break.clone()]);
        assert_eq!(
            split_break(&format!("a\n\n BREAK\n{spaces}")),
            vec!["a".to_owned(), String::new()]
        );
    }

    #[test]
    fn bad_weight_is_a_typed_error_with_position() {
        assert_eq!(
            parse_attention("(cat:1.2.3)", Fidelity::Keyshift),
            Err(AttentionError::BadWeight {
                position: 5,
                text: "1.2.3".into()
            })
        );
    }

    #[test]
    fn odd_input() {
        assert_eq!(pairs("\\"), vec![p("", 1.0)]);
        assert_eq!(pairs("cat:1.5)"), vec![p("cat:1.5)", 1.0)]);
        assert_eq!(pairs(""), vec![p("", 1.0)]);
        assert_eq!(pairs("(猫:１.５)"), vec![p("猫", 1.5)]);
    }
}
