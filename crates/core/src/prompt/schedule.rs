//! Prompt editing and alternation: A1111's `get_learned_conditioning_prompt_schedules`.
//!
//! `[from:to:when]` renders `from` while `step <= when` and `to` after; `[to:when]` and
//! `[from::when]` leave one side empty; `[a|b|c]` cycles through its options step by step. An
//! integer `when` is a step, one containing `.` a fraction of the steps; the hires pass and the
//! old scheduling shift both (see [`ScheduleOptions`]). When the prompt does not parse (a stray
//! `|`, a backslash at the end), the whole prompt is one literal entry.
//!
//! A1111 parses with lark's Earley parser and a grammar in which every bracket may also be plain
//! text. This module reproduces the reading lark settles on: nested structures are matched like
//! balanced brackets; at the top level the prompt is read from the right, each time taking the
//! longest run of structures and text that ends there, or else one literal bracket character.
//! Where lark's own choice depends on Python's per-process hash seed (a scheduled block followed by
//! `:`), this rule gives the reading that keeps the block (see `docs/compat.md`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::py;

/// The deepest nesting of brackets that is read as structure. A1111 fails with Python's
/// `RecursionError` somewhere between 200 and 300 levels.
pub const MAX_NESTING: u32 = 200;

/// Which steps a schedule is computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleOptions {
    /// Sampling steps of the (first) pass.
    pub base_steps: u32,
    /// Steps of the hires pass, when the schedule is for that pass.
    pub hires_steps: Option<u32>,
    /// A1111's "old prompt editing timelines" setting: `when < 1` is a fraction, otherwise a step,
    /// and the hires pass uses the base timeline.
    pub old_scheduling: bool,
}

impl ScheduleOptions {
    /// The schedule of an ordinary pass of `steps` steps.
    pub fn steps(steps: u32) -> Self {
        Self {
            base_steps: steps,
            hires_steps: None,
            old_scheduling: false,
        }
    }
}

/// One entry of a schedule: `text` is the prompt up to and including step `end_at_step`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    /// The last step (1-based) at which `text` applies.
    pub end_at_step: i64,
    /// The prompt text for those steps (emphasis not yet applied).
    pub text: String,
}

/// Why a prompt's schedule could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ScheduleError {
    /// Brackets nested deeper than [`MAX_NESTING`].
    #[error("brackets nested more than {MAX_NESTING} deep at character {position}")]
    TooDeep {
        /// Index (in characters) of the opening bracket.
        position: usize,
    },
}

/// A prompt read for scheduling: literal text, emphasis kept as written, scheduled and alternating
/// blocks as structure.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleTree {
    nodes: Vec<Node>,
    /// The blocks, indexed by the atom that opens them (children refer to them by index, so
    /// deep nesting costs linear memory).
    blocks: Vec<Option<Block>>,
    literal: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Block(usize),
}

/// A bracketed block that parses as emphasis, prompt editing or alternation.
#[derive(Clone, Debug, PartialEq)]
struct Block {
    /// Atom index just after the closing bracket.
    end: usize,
    depth: u32,
    kind: BlockKind,
}

#[derive(Clone, Debug, PartialEq)]
enum BlockKind {
    Emphasis {
        open: char,
        inner: Vec<Node>,
        weight: Option<Vec<Node>>,
        close: char,
    },
    Scheduled {
        before: Option<Vec<Node>>,
        after: Vec<Node>,
        when: f64,
        fraction: bool,
    },
    Alternate(Vec<Vec<Node>>),
}

/// Computes the schedule of `prompt` (A1111's `get_learned_conditioning_prompt_schedules` for
/// one prompt).
pub fn prompt_schedule(
    prompt: &str,
    options: ScheduleOptions,
) -> Result<Vec<ScheduleEntry>, ScheduleError> {
    Ok(ScheduleTree::parse(prompt)?.schedule(options))
}

impl ScheduleTree {
    /// Reads `prompt`. Text that does not parse becomes one literal entry, as in A1111.
    pub fn parse(prompt: &str) -> Result<Self, ScheduleError> {
        let chars: Vec<char> = prompt.chars().collect();
        let atoms = lex(&chars);
        let literal = || Self {
            nodes: Vec::new(),
            blocks: Vec::new(),
            literal: Some(prompt.to_owned()),
        };
        if atoms.iter().any(|a| a.kind == Kind::Bad) {
            return Ok(literal());
        }
        let reader = Reader::new(&chars, atoms);
        match reader.resolve()? {
            Some(nodes) => Ok(Self {
                nodes,
                blocks: reader.blocks,
                literal: None,
            }),
            None => Ok(literal()),
        }
    }

    /// The steps at which the prompt changes, and its text up to each of them.
    pub fn schedule(&self, options: ScheduleOptions) -> Vec<ScheduleEntry> {
        let timeline = Timeline::new(options);
        if let Some(text) = &self.literal {
            return vec![ScheduleEntry {
                end_at_step: timeline.steps,
                text: text.clone(),
            }];
        }
        let mut ends = vec![timeline.steps];
        let mut alternates = false;
        self.collect_steps(&self.nodes, &timeline, &mut ends, &mut alternates);
        if alternates {
            ends.extend(1..=timeline.steps);
        }
        ends.sort_unstable();
        ends.dedup();
        ends.into_iter()
            .map(|step| {
                let mut text = String::new();
                self.render(&self.nodes, step, &timeline, &mut text);
                ScheduleEntry {
                    end_at_step: step,
                    text,
                }
            })
            .collect()
    }
}

/// How `when` values map to steps.
struct Timeline {
    steps: i64,
    int_offset: f64,
    float_offset: f64,
    old: bool,
}

impl Timeline {
    fn new(o: ScheduleOptions) -> Self {
        match o.hires_steps {
            Some(hires) if !o.old_scheduling => Self {
                steps: i64::from(hires),
                int_offset: f64::from(o.base_steps),
                float_offset: 1.0,
                old: false,
            },
            _ => Self {
                steps: i64::from(o.base_steps),
                int_offset: 0.0,
                float_offset: 0.0,
                old: o.old_scheduling,
            },
        }
    }

    /// The last step of the "before" side. A1111 truncates towards zero; an infinite value, where
    /// Python would raise `OverflowError`, saturates.
    fn end_step(&self, when: f64, fraction: bool) -> i64 {
        #[allow(clippy::cast_precision_loss)]
        let steps = self.steps as f64;
        let v = if self.old {
            if when < 1.0 { when * steps } else { when }
        } else if fraction {
            (when - self.float_offset) * steps
        } else {
            when - self.int_offset
        };
        #[allow(clippy::cast_possible_truncation)]
        let truncated = v as i64;
        self.steps.min(truncated)
    }
}

impl ScheduleTree {
    fn block(&self, i: usize) -> Option<&Block> {
        self.blocks.get(i).and_then(Option::as_ref)
    }

    fn collect_steps(
        &self,
        nodes: &[Node],
        timeline: &Timeline,
        ends: &mut Vec<i64>,
        alternates: &mut bool,
    ) {
        for node in nodes {
            let Node::Block(i) = node else { continue };
            let Some(block) = self.block(*i) else {
                continue;
            };
            match &block.kind {
                BlockKind::Emphasis { inner, weight, .. } => {
                    self.collect_steps(inner, timeline, ends, alternates);
                    if let Some(weight) = weight {
                        self.collect_steps(weight, timeline, ends, alternates);
                    }
                }
                BlockKind::Scheduled {
                    before,
                    after,
                    when,
                    fraction,
                } => {
                    if let Some(before) = before {
                        self.collect_steps(before, timeline, ends, alternates);
                    }
                    self.collect_steps(after, timeline, ends, alternates);
                    let end = timeline.end_step(*when, *fraction);
                    if end >= 1 {
                        ends.push(end);
                    }
                }
                BlockKind::Alternate(options) => {
                    for option in options {
                        self.collect_steps(option, timeline, ends, alternates);
                    }
                    *alternates = true;
                }
            }
        }
    }

    fn render(&self, nodes: &[Node], step: i64, timeline: &Timeline, out: &mut String) {
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Block(i) => {
                    if let Some(block) = self.block(*i) {
                        self.render_block(&block.kind, step, timeline, out);
                    }
                }
            }
        }
    }

    fn render_block(&self, kind: &BlockKind, step: i64, timeline: &Timeline, out: &mut String) {
        match kind {
            BlockKind::Emphasis {
                open,
                inner,
                weight,
                close,
            } => {
                out.push(*open);
                self.render(inner, step, timeline, out);
                if let Some(weight) = weight {
                    out.push(':');
                    self.render(weight, step, timeline, out);
                }
                out.push(*close);
            }
            BlockKind::Scheduled {
                before,
                after,
                when,
                fraction,
            } => {
                if step <= timeline.end_step(*when, *fraction) {
                    if let Some(before) = before {
                        self.render(before, step, timeline, out);
                    }
                } else {
                    self.render(after, step, timeline, out);
                }
            }
            BlockKind::Alternate(options) => {
                let n = i64::try_from(options.len()).unwrap_or(1).max(1);
                let pick = usize::try_from((step - 1).rem_euclid(n)).unwrap_or(0);
                if let Some(option) = options.get(pick) {
                    self.render(option, step, timeline, out);
                }
            }
        }
    }
}

/// The lexical pieces of a prompt. Plain text is lexed the same everywhere (a backslash escapes
/// the next character unless that is a newline), so the pieces do not depend on the parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Open(char),
    Close(char),
    Colon,
    Pipe,
    Bad,
}

#[derive(Clone, Copy, Debug)]
struct Atom {
    kind: Kind,
    start: usize,
    end: usize,
}

fn lex(chars: &[char]) -> Vec<Atom> {
    let mut atoms = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let (kind, len) = match c {
            '[' | '(' => (Kind::Open(c), 1),
            ']' | ')' => (Kind::Close(c), 1),
            ':' => (Kind::Colon, 1),
            '|' => (Kind::Pipe, 1),
            '\\' if !escapes_next(chars, i) => (Kind::Bad, 1),
            _ => (Kind::Text, text_run_len(chars, i)),
        };
        atoms.push(Atom {
            kind,
            start: i,
            end: i + len,
        });
        i += len;
    }
    atoms
}

fn escapes_next(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(|&c| c != '\n')
}

/// Length of the plain run at `i` (characters other than `\ [ ] ( ) : |`, and escapes).
fn text_run_len(chars: &[char], start: usize) -> usize {
    let mut i = start;
    while let Some(&c) = chars.get(i) {
        match c {
            '[' | ']' | '(' | ')' | ':' | '|' => break,
            '\\' if escapes_next(chars, i) => i += 2,
            '\\' => break,
            _ => i += 1,
        }
    }
    i - start
}

/// A sequence of nested-level elements and the atom that stopped it (`None`: the input ended).
struct Seq {
    nodes: Vec<Node>,
    depth: u32,
    stop: usize,
}

struct Reader<'a> {
    chars: &'a [char],
    atoms: Vec<Atom>,
    /// For each atom that opens a bracket, the block it starts, if valid.
    blocks: Vec<Option<Block>>,
}

impl<'a> Reader<'a> {
    fn new(chars: &'a [char], atoms: Vec<Atom>) -> Self {
        let mut reader = Self {
            chars,
            blocks: vec![None; atoms.len()],
            atoms,
        };
        // Right to left, so that every nested block is known before its parent is read.
        for i in (0..reader.atoms.len()).rev() {
            if let Some(Kind::Open(open)) = reader.kind(i) {
                let block = reader.block(i, open);
                if let Some(slot) = reader.blocks.get_mut(i) {
                    *slot = block;
                }
            }
        }
        reader
    }

    fn kind(&self, i: usize) -> Option<Kind> {
        self.atoms.get(i).map(|a| a.kind)
    }

    fn text(&self, i: usize) -> String {
        self.atoms
            .get(i)
            .and_then(|a| self.chars.get(a.start..a.end))
            .unwrap_or_default()
            .iter()
            .collect()
    }

    /// Reads nested-level elements from atom `i` up to a `:`, `|`, closing bracket or the end.
    /// `None` when a bracket inside is not a valid block.
    fn seq(&self, mut i: usize) -> Option<Seq> {
        let mut nodes = Vec::new();
        let mut depth = 0;
        loop {
            match self.kind(i) {
                Some(Kind::Text) => {
                    nodes.push(Node::Text(self.text(i)));
                    i += 1;
                }
                Some(Kind::Open(_)) => {
                    let block = self.blocks.get(i)?.as_ref()?;
                    nodes.push(Node::Block(i));
                    depth = depth.max(block.depth);
                    i = block.end;
                }
                Some(Kind::Bad) => return None,
                _ => {
                    return Some(Seq {
                        nodes,
                        depth,
                        stop: i,
                    });
                }
            }
        }
    }

    fn block(&self, i: usize, open: char) -> Option<Block> {
        let first = self.seq(i + 1)?;
        let (end, depth, kind) = if open == '(' {
            self.round(first)?
        } else {
            self.square(first)?
        };
        Some(Block {
            end,
            depth: depth + 1,
            kind,
        })
    }

    /// `(p)` or `(p:p)`.
    fn round(&self, first: Seq) -> Option<(usize, u32, BlockKind)> {
        match self.kind(first.stop)? {
            Kind::Close(')') => Some((first.stop + 1, first.depth, emphasis('(', first, None))),
            Kind::Colon => {
                let second = self.seq(first.stop + 1)?;
                (self.kind(second.stop)? == Kind::Close(')')).then(|| {
                    let depth = first.depth.max(second.depth);
                    (second.stop + 1, depth, emphasis('(', first, Some(second)))
                })
            }
            _ => None,
        }
    }

    /// `[p]`, `[p|p…]`, `[p:when]` or `[p:p:when]`.
    fn square(&self, first: Seq) -> Option<(usize, u32, BlockKind)> {
        match self.kind(first.stop)? {
            Kind::Close(']') => Some((first.stop + 1, first.depth, emphasis('[', first, None))),
            Kind::Pipe => self.alternate(first),
            Kind::Colon => self.scheduled(first),
            _ => None,
        }
    }

    fn alternate(&self, first: Seq) -> Option<(usize, u32, BlockKind)> {
        let mut depth = first.depth;
        let mut stop = first.stop;
        let mut options = vec![first.nodes];
        while self.kind(stop)? == Kind::Pipe {
            let next = self.seq(stop + 1)?;
            depth = depth.max(next.depth);
            stop = next.stop;
            options.push(next.nodes);
        }
        (self.kind(stop)? == Kind::Close(']')).then_some((
            stop + 1,
            depth,
            BlockKind::Alternate(options),
        ))
    }

    fn scheduled(&self, first: Seq) -> Option<(usize, u32, BlockKind)> {
        let colon = first.stop;
        if let Some((end, when)) = self.when_and_close(colon + 1) {
            let node = scheduled_node(None, first.nodes, &when)?;
            return Some((end, first.depth, node));
        }
        let second = self.seq(colon + 1)?;
        if self.kind(second.stop)? != Kind::Colon {
            return None;
        }
        let (end, when) = self.when_and_close(second.stop + 1)?;
        let depth = first.depth.max(second.depth);
        let node = scheduled_node(Some(first.nodes), second.nodes, &when)?;
        Some((end, depth, node))
    }

    /// `[WHITESPACE] NUMBER [WHITESPACE] "]"` at atom `i`: the atom after `]` and the number.
    fn when_and_close(&self, i: usize) -> Option<(usize, String)> {
        if self.kind(i)? != Kind::Text || self.kind(i + 1)? != Kind::Close(']') {
            return None;
        }
        let atom = self.atoms.get(i)?;
        let run = self.chars.get(atom.start..atom.end)?;
        let lead = run.iter().take_while(|&&c| py::is_space(c)).count();
        let number_len = match_number(run.get(lead..)?)?;
        let rest = run.get(lead + number_len..)?;
        rest.iter().all(|&c| py::is_space(c)).then(|| {
            (
                i + 2,
                run.get(lead..lead + number_len)
                    .unwrap_or_default()
                    .iter()
                    .collect(),
            )
        })
    }

    /// Reads the prompt at the top level; `None` if it does not parse.
    fn resolve(&self) -> Result<Option<Vec<Node>>, ScheduleError> {
        let top = TopLevel::new(self);
        if !top.derivable(self.atoms.len()) {
            return Ok(None);
        }
        let mut pieces: Vec<Vec<Node>> = Vec::new();
        let mut pos = self.atoms.len();
        while pos > 0 {
            let Some((start, piece)) = top.last_piece(pos) else {
                return Ok(None);
            };
            self.check_depth(&piece)?;
            pieces.push(piece);
            pos = start;
        }
        pieces.reverse();
        Ok(Some(pieces.concat()))
    }

    /// Rejects top-level blocks nested deeper than [`MAX_NESTING`].
    fn check_depth(&self, nodes: &[Node]) -> Result<(), ScheduleError> {
        for node in nodes {
            let Node::Block(i) = node else { continue };
            let too_deep = self
                .blocks
                .get(*i)
                .and_then(Option::as_ref)
                .is_some_and(|b| b.depth > MAX_NESTING);
            if too_deep {
                let position = self.atoms.get(*i).map_or(0, |a| a.start);
                return Err(ScheduleError::TooDeep { position });
            }
        }
        Ok(())
    }
}

fn emphasis(open: char, first: Seq, second: Option<Seq>) -> BlockKind {
    BlockKind::Emphasis {
        open,
        inner: first.nodes,
        weight: second.map(|s| s.nodes),
        close: if open == '(' { ')' } else { ']' },
    }
}

fn scheduled_node(before: Option<Vec<Node>>, after: Vec<Node>, when: &str) -> Option<BlockKind> {
    Some(BlockKind::Scheduled {
        before,
        after,
        when: py::parse_float(when)?,
        fraction: when.contains('.'),
    })
}

/// lark's `SIGNED_NUMBER` matched at the start of `s` (Python `re` semantics: the first
/// alternative that matches wins); returns its length.
fn match_number(s: &[char]) -> Option<usize> {
    let digits = |i: usize| {
        s.get(i..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    let is = |i: usize, set: &str| s.get(i).is_some_and(|&c| set.contains(c));
    let exponent = |i: usize| -> Option<usize> {
        if !is(i, "eE") {
            return None;
        }
        let j = i + 1 + usize::from(is(i + 1, "+-"));
        let n = digits(j);
        (n > 0).then_some(j + n)
    };
    let i = usize::from(is(0, "+-"));
    let int_len = digits(i);
    if int_len > 0
        && let Some(end) = exponent(i + int_len)
    {
        return Some(end);
    }
    let decimal_end = if int_len > 0 && is(i + int_len, ".") {
        Some(i + int_len + 1 + digits(i + int_len + 1))
    } else if is(i, ".") && digits(i + 1) > 0 {
        Some(i + 1 + digits(i + 1))
    } else {
        None
    };
    if let Some(end) = decimal_end {
        return Some(exponent(end).unwrap_or(end));
    }
    (int_len > 0).then_some(i + int_len)
}

/// The top-level reading: which brackets are structure and which are literal text.
struct TopLevel<'r, 'a> {
    reader: &'r Reader<'a>,
    /// `need[k]`: the smallest prefix end that covers every `|` before atom `k` with a block
    /// (`usize::MAX` when one cannot be covered).
    need: Vec<usize>,
    /// For each atom index, the opening atom of the valid block that ends just before it.
    start_of_block_ending_at: Vec<Option<usize>>,
}

impl<'r, 'a> TopLevel<'r, 'a> {
    fn new(reader: &'r Reader<'a>) -> Self {
        let n = reader.atoms.len();
        let mut start_of_block_ending_at = vec![None; n + 1];
        for (i, block) in reader.blocks.iter().enumerate() {
            if let Some(slot) = block
                .as_ref()
                .and_then(|b| start_of_block_ending_at.get_mut(b.end))
            {
                *slot = Some(i);
            }
        }
        Self {
            need: pipe_cover_need(reader),
            reader,
            start_of_block_ending_at,
        }
    }

    /// Whether the atoms `[0, k)` can be read as a top-level prefix.
    fn derivable(&self, k: usize) -> bool {
        self.need.get(k).is_some_and(|&need| need <= k)
    }

    /// The last top-level piece of `[0, pos)`: its start and nodes.
    fn last_piece(&self, pos: usize) -> Option<(usize, Vec<Node>)> {
        if let Some(start) = self.longest_prompt_suffix(pos) {
            return Some((start, self.prompt_nodes(start, pos)));
        }
        let start = self.literal_suffix(pos)?;
        let text: String = (start..pos).map(|i| self.reader.text(i)).collect();
        Some((start, vec![Node::Text(text)]))
    }

    /// The smallest `k < pos` such that `[k, pos)` is a sequence of text and valid blocks and
    /// `[0, k)` is readable; `Some(0)` when the whole prefix is such a sequence.
    fn longest_prompt_suffix(&self, pos: usize) -> Option<usize> {
        let mut boundaries = Vec::new();
        let mut k = pos;
        while k > 0 {
            k = match self.reader.kind(k - 1)? {
                Kind::Text => k - 1,
                Kind::Close(_) => match self.start_of_block_ending_at.get(k).copied().flatten() {
                    Some(start) => start,
                    None => break,
                },
                _ => break,
            };
            boundaries.push(k);
        }
        if k == 0 && boundaries.last() == Some(&0) {
            return Some(0);
        }
        boundaries.into_iter().rev().find(|&b| self.derivable(b))
    }

    /// The largest `k < pos` such that `[k, pos)` is bracket characters and `[0, k)` is
    /// readable: one literal character where possible.
    fn literal_suffix(&self, pos: usize) -> Option<usize> {
        let mut k = pos;
        while k > 0 {
            k -= 1;
            if !matches!(
                self.reader.kind(k)?,
                Kind::Open(_) | Kind::Close(_) | Kind::Colon
            ) {
                return None;
            }
            if self.derivable(k) {
                return Some(k);
            }
        }
        None
    }

    fn prompt_nodes(&self, start: usize, end: usize) -> Vec<Node> {
        let mut nodes = Vec::new();
        let mut i = start;
        while i < end {
            match self.reader.blocks.get(i).and_then(Option::as_ref) {
                Some(block) if matches!(self.reader.kind(i), Some(Kind::Open(_))) => {
                    nodes.push(Node::Block(i));
                    i = block.end;
                }
                _ => {
                    nodes.push(Node::Text(self.reader.text(i)));
                    i += 1;
                }
            }
        }
        nodes
    }
}

/// For every prefix end `k`, the atom index up to which a prefix must extend so that each `|`
/// before `k` lies inside a valid block (the innermost block around it).
fn pipe_cover_need(reader: &Reader<'_>) -> Vec<usize> {
    let n = reader.atoms.len();
    let mut need = vec![0; n + 1];
    let mut open_blocks: Vec<usize> = Vec::new();
    let mut current = 0;
    for i in 0..n {
        while open_blocks.last().is_some_and(|&end| end <= i) {
            open_blocks.pop();
        }
        if let Some(block) = reader.blocks.get(i).and_then(Option::as_ref) {
            open_blocks.push(block.end);
        }
        if reader.kind(i) == Some(Kind::Pipe) {
            let cover = open_blocks.last().copied().unwrap_or(usize::MAX);
            current = current.max(cover);
        }
        if let Some(slot) = need.get_mut(i + 1) {
            *slot = current;
        }
    }
    need
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(prompt: &str) -> Vec<(i64, String)> {
        prompt_schedule(prompt, ScheduleOptions::steps(10))
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.end_at_step, e.text))
            .collect()
    }

    fn s(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
        pairs.iter().map(|&(n, t)| (n, t.to_owned())).collect()
    }

    #[test]
    fn doctests() {
        assert_eq!(g("test"), s(&[(10, "test")]));
        assert_eq!(g("a [b:3]"), s(&[(3, "a "), (10, "a b")]));
        assert_eq!(g("a [b: 3]"), s(&[(3, "a "), (10, "a b")]));
        assert_eq!(g("a [[[b]]:2]"), s(&[(2, "a "), (10, "a [[b]]")]));
        assert_eq!(g("[(a:2):3]"), s(&[(3, ""), (10, "(a:2)")]));
        assert_eq!(g("a [b : c : 1] d"), s(&[(1, "a b  d"), (10, "a  c  d")]));
        assert_eq!(
            g("a[b:[c:d:2]:1]e"),
            s(&[(1, "abe"), (2, "ace"), (10, "ade")])
        );
        assert_eq!(g("a [unbalanced"), s(&[(10, "a [unbalanced")]));
        assert_eq!(g("a [b:.5] c"), s(&[(5, "a  c"), (10, "a b c")]));
        assert_eq!(g("a [{b|d{:.5] c"), s(&[(10, "a [{b|d{:.5] c")]));
        assert_eq!(
            g("((a][:b:c [d:3]"),
            s(&[(3, "((a][:b:c "), (10, "((a][:b:c d")])
        );
        let fe = g("[fe|||]male");
        assert_eq!(fe.first(), Some(&(1, "female".to_owned())));
        assert_eq!(fe.get(1), Some(&(2, "male".to_owned())));
        assert_eq!(fe.get(4), Some(&(5, "female".to_owned())));
    }

    #[test]
    fn hires() {
        let hires = ScheduleOptions {
            base_steps: 10,
            hires_steps: Some(10),
            old_scheduling: false,
        };
        let h = |p: &str| {
            prompt_schedule(p, hires)
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.end_at_step, e.text))
                .collect::<Vec<_>>()
        };
        assert_eq!(h("a [b:.5] c"), s(&[(10, "a b c")]));
        assert_eq!(h("a [b:1.5] c"), s(&[(5, "a  c"), (10, "a b c")]));
    }

    #[test]
    fn scheduled_block_before_a_colon_is_kept() {
        assert_eq!(g("(a) [b:c:5]:1"), s(&[(5, "(a) b:1"), (10, "(a) c:1")]));
    }

    #[test]
    fn stray_pipe_makes_the_prompt_literal() {
        assert_eq!(g("a|b [c:d:2]"), s(&[(10, "a|b [c:d:2]")]));
        assert_eq!(g("a\\"), s(&[(10, "a\\")]));
    }

    #[test]
    fn numbers() {
        let m = |t: &str| match_number(&t.chars().collect::<Vec<_>>());
        assert_eq!(m("1e1"), Some(3));
        assert_eq!(m("1.5e1x"), Some(5));
        assert_eq!(m("1.e"), Some(2));
        assert_eq!(m("-.5"), Some(3));
        assert_eq!(m("+"), None);
        assert_eq!(m("."), None);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}a{}", "(".repeat(300), ")".repeat(300));
        assert_eq!(
            prompt_schedule(&deep, ScheduleOptions::steps(10)),
            Err(ScheduleError::TooDeep { position: 0 })
        );
        let unclosed = "[".repeat(10_000);
        assert_eq!(g(&unclosed), s(&[(10, unclosed.as_str())]));
    }
}
