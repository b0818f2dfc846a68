//! Lexer and parser of the interpolation language, with Parseq's grammar: every binary level is
//! right-associative, `^` shares the level of `* / % :`, `&&`/`||` sit with the comparisons and
//! `and`/`or` below them, unary minus binds tighter than `^` and must touch its operand, and an
//! `if` takes the shortest expression that completes it.

use std::rc::Rc;

use thiserror::Error;

use super::functions::{self, ArgDef, FuncDef};

/// Longest formula accepted, in bytes.
pub const MAX_FORMULA_BYTES: usize = 64 * 1024;
/// Deepest expression nesting accepted (also bounds evaluation recursion).
pub const MAX_DEPTH: usize = 200;

/// Why a formula could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// A character no token starts with.
    #[error("invalid syntax at line {line} col {col}: {found:?}")]
    Lexer {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        col: u32,
        /// The offending text.
        found: String,
    },
    /// A token the grammar does not allow here.
    #[error("Syntax error at line {line} col {col}: unexpected {found}")]
    Unexpected {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        col: u32,
        /// What was found.
        found: String,
    },
    /// The input ended before the expression was complete (Parseq: "Cannot read properties of
    /// undefined (reading '0')").
    #[error("incomplete expression: the input ends before the expression is complete")]
    Incomplete,
    /// The formula is longer than [`MAX_FORMULA_BYTES`].
    #[error("formula too long: {bytes} bytes (at most {MAX_FORMULA_BYTES})")]
    TooLong {
        /// Its length.
        bytes: usize,
    },
    /// The formula nests deeper than [`MAX_DEPTH`].
    #[error("formula nested too deeply (more than {MAX_DEPTH} levels)")]
    TooDeep,
    /// The formula is too ambiguous to parse within the parser's budget.
    #[error("formula too ambiguous to parse (more than {0} parser states)")]
    TooAmbiguous(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ws,
    Op(&'static str),
    Comment(String),
    Str(String),
    Num(String),
    Ident(String),
    Kw(&'static str),
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: u32,
    pub(super) col: u32,
    pub(super) offset: usize,
}

const OPS: [&str; 19] = [
    "<=", "<", ">=", ">", "==", "!=", "&&", "||", "(", ")", ",", "=", "+", "-", "*", "^", "/", "%",
    ":",
];
const KEYWORDS: [&str; 6] = ["else", "if", "and", "or", "true", "false"];

pub(super) fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    while i < b.len() {
        let start = i;
        let c = b[i];
        let tok = if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
            }
            Tok::Ws
        } else if let Some(op) = OPS.iter().find(|op| input[i..].starts_with(**op)) {
            i += op.len();
            Tok::Op(op)
        } else if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            Tok::Comment(input[start + 1..i].to_owned())
        } else if c == b'"' {
            Tok::Str(lex_string(input, &mut i).ok_or_else(|| lex_error(input, start, line, col))?)
        } else if c.is_ascii_digit() {
            lex_number(b, &mut i);
            Tok::Num(input[start..i].to_owned())
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &input[start..i];
            match KEYWORDS.iter().find(|k| **k == word) {
                Some(k) => Tok::Kw(k),
                None => Tok::Ident(word.to_owned()),
            }
        } else {
            return Err(lex_error(input, start, line, col));
        };
        out.push(Token {
            tok,
            line,
            col,
            offset: start,
        });
        for ch in input[start..i].chars() {
            if ch == '\n' {
                line += 1;
                col = 1;
            } else {
                col += ch.len_utf16() as u32;
            }
        }
    }
    Ok(out)
}

fn lex_error(input: &str, at: usize, line: u32, col: u32) -> ParseError {
    ParseError::Lexer {
        line,
        col,
        found: input[at..].chars().take(10).collect(),
    }
}

/// `"…"` with the escapes `\" \\ \n \t \b \f \r`; no raw newline.
fn lex_string(input: &str, i: &mut usize) -> Option<String> {
    let mut out = String::new();
    let mut chars = input[*i + 1..].char_indices();
    while let Some((k, ch)) = chars.next() {
        match ch {
            '"' => {
                *i += 1 + k + 1;
                return Some(out);
            }
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    '"' => '"',
                    '\\' => '\\',
                    'n' => '\n',
                    't' => '\t',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'r' => '\r',
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// `[0-9]+(\.[0-9]+)?[fsb]?`
fn lex_number(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i + 1 < b.len() && b[*i] == b'.' && b[*i + 1].is_ascii_digit() {
        *i += 1;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
    }
    if *i < b.len() && matches!(b[*i], b'f' | b's' | b'b') {
        *i += 1;
    }
}

/// Index of a node in [`Ast::nodes`].
pub type NodeId = u32;

/// Position of a node's first token as Parseq reports it (`line:col`, col 0-based); `None`
/// where Parseq's node has none (it prints `undefined:undefined`).
pub type Pos = Option<(u32, u32)>;

/// A unit suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// `f`: frames.
    Frames,
    /// `s`: seconds.
    Seconds,
    /// `b`: beats.
    Beats,
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `^`
    Pow,
    /// `:`
    Colon,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `and`, `&&`
    And,
    /// `or`, `||`
    Or,
}

/// Built-in variables.
#[derive(Clone, Debug, PartialEq)]
pub enum Var {
    /// `L`
    Linear,
    /// `P`
    Poly,
    /// `S`, `prev_keyframe_value`, `active_keyframe_value`
    Step,
    /// `C`
    Cubic,
    /// `f`
    Frame,
    /// `last_frame`, `final_frame`
    LastFrame,
    /// `b`
    Beat,
    /// `wb`
    WholeBeat,
    /// `s`
    Second,
    /// `fps`
    Fps,
    /// `bpm`
    Bpm,
    /// `cadence`
    Cadence,
    /// `k`
    SinceKeyframe,
    /// `active_keyframe`, `prev_keyframe`
    ActiveKeyframe,
    /// `next_keyframe`
    NextKeyframe,
    /// `next_keyframe_value`
    NextKeyframeValue,
    /// `PI`, `E`, …
    Const(f64),
    /// Anything else: the variable map, then time series, else an error.
    Named(Rc<str>),
}

impl Var {
    pub(super) fn from_name(name: &str) -> Self {
        use std::f64::consts as c;
        match name {
            "L" => Self::Linear,
            "P" => Self::Poly,
            "S" | "prev_keyframe_value" | "active_keyframe_value" => Self::Step,
            "C" => Self::Cubic,
            "f" => Self::Frame,
            "final_frame" | "last_frame" => Self::LastFrame,
            "b" => Self::Beat,
            "wb" => Self::WholeBeat,
            "s" => Self::Second,
            "fps" => Self::Fps,
            "bpm" => Self::Bpm,
            "cadence" => Self::Cadence,
            "k" => Self::SinceKeyframe,
            "prev_keyframe" | "active_keyframe" => Self::ActiveKeyframe,
            "next_keyframe" => Self::NextKeyframe,
            "next_keyframe_value" => Self::NextKeyframeValue,
            "PI" => Self::Const(c::PI),
            "E" => Self::Const(c::E),
            "SQRT2" => Self::Const(c::SQRT_2),
            "SQRT1_2" => Self::Const(c::FRAC_1_SQRT_2),
            "LN2" => Self::Const(c::LN_2),
            "LN10" => Self::Const(c::LN_10),
            "LOG2E" => Self::Const(c::LOG2_E),
            "LOG10E" => Self::Const(c::LOG10_E),
            other => Self::Named(Rc::from(other)),
        }
    }
}

/// A function call: the function, and per argument definition the node that gives it (or the
/// validation error Parseq raises when the call is evaluated).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The name as written.
    pub name: Rc<str>,
    /// The library entry (or the missing-function handler).
    pub def: &'static FuncDef,
    /// Per [`FuncDef::args`] entry, the argument node if given.
    pub args: Result<Vec<Option<NodeId>>, String>,
    /// Byte offset of the call (seeds calls without `s=`).
    pub offset: usize,
}

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number literal.
    Num(f64),
    /// A number with a unit.
    Unit(f64, Unit),
    /// A string literal.
    Str(Rc<str>),
    /// `true` / `false`.
    Bool(bool),
    /// A variable.
    Var(Var),
    /// Unary minus.
    Neg(NodeId),
    /// A binary operation.
    Bin(BinOp, NodeId, NodeId),
    /// `if c a [else b]`.
    If(NodeId, NodeId, Option<NodeId>),
    /// A function call.
    Call(Box<Call>),
    /// A binary operation whose operator token is not an operator (nearley lets a string or
    /// comment token containing an operator character stand in one); fails when evaluated.
    BadOp(Rc<str>, NodeId, NodeId),
}

/// A node with Parseq's notion of its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The expression.
    pub expr: Expr,
    /// Position for error messages.
    pub pos: Pos,
}

/// A parsed formula.
#[derive(Clone, Debug, PartialEq)]
pub struct Ast {
    /// Nodes; children come before parents.
    pub nodes: Vec<Node>,
    /// The root.
    pub root: NodeId,
}

/// Parses a formula.
pub fn parse(input: &str) -> Result<Ast, ParseError> {
    if input.len() > MAX_FORMULA_BYTES {
        return Err(ParseError::TooLong { bytes: input.len() });
    }
    let tokens = lex(input)?;
    if super::earley::needs_earley(&tokens) {
        let ast = super::earley::parse_tokens(&tokens)?;
        if depth(&ast) > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        return Ok(ast);
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        nodes: Vec::new(),
        depth: 0,
    };
    p.skip_ws();
    let root = p.expression()?;
    p.skip_ws();
    if let Some(t) = p.tokens.get(p.pos) {
        return Err(unexpected(t));
    }
    let ast = Ast {
        nodes: p.nodes,
        root,
    };
    if depth(&ast) > MAX_DEPTH {
        return Err(ParseError::TooDeep);
    }
    Ok(ast)
}

/// Parses with nearley's algorithm whatever the formula (slower; [`parse`] uses it only where
/// the grammar is ambiguous). For checking that both paths agree.
pub fn parse_nearley(input: &str) -> Result<Ast, ParseError> {
    if input.len() > MAX_FORMULA_BYTES {
        return Err(ParseError::TooLong { bytes: input.len() });
    }
    let tokens = lex(input)?;
    let ast = super::earley::parse_tokens(&tokens)?;
    if depth(&ast) > MAX_DEPTH {
        return Err(ParseError::TooDeep);
    }
    Ok(ast)
}

/// Depth of the tree (children precede parents, so one forward pass suffices).
fn depth(ast: &Ast) -> usize {
    let mut d = vec![1usize; ast.nodes.len()];
    for (i, n) in ast.nodes.iter().enumerate() {
        let child = |c: &NodeId| d.get(*c as usize).copied().unwrap_or(0);
        let deepest = match &n.expr {
            Expr::Neg(a) => child(a),
            Expr::Bin(_, a, b) | Expr::BadOp(_, a, b) => child(a).max(child(b)),
            Expr::If(a, b, c) => child(a).max(child(b)).max(c.as_ref().map_or(0, child)),
            Expr::Call(call) => call
                .args
                .as_ref()
                .map_or(0, |a| a.iter().flatten().map(child).max().unwrap_or(0)),
            _ => 0,
        };
        d[i] = deepest + 1;
    }
    d.get(ast.root as usize).copied().unwrap_or(0)
}

/// The error for a token the grammar does not accept.
pub(super) fn unexpected_token(t: &Token) -> ParseError {
    unexpected(t)
}

fn unexpected(t: &Token) -> ParseError {
    let found = match &t.tok {
        Tok::Ws => "whitespace".to_owned(),
        Tok::Op(o) => format!("{o:?}"),
        Tok::Comment(_) => "comment".to_owned(),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Ident(i) => format!("identifier {i}"),
        Tok::Kw(k) => format!("keyword {k}"),
    };
    ParseError::Unexpected {
        line: t.line,
        col: t.col,
        found,
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nodes: Vec<Node>,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn fail(&self) -> ParseError {
        self.tokens
            .get(self.pos)
            .map_or(ParseError::Incomplete, unexpected)
    }

    /// Skips whitespace; whether there was any.
    fn skip_ws(&mut self) -> bool {
        let mut any = false;
        while self.peek() == Some(&Tok::Ws) {
            self.pos += 1;
            any = true;
        }
        any
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn push(&mut self, expr: Expr, pos: Pos) -> NodeId {
        self.nodes.push(Node { expr, pos });
        (self.nodes.len() - 1) as NodeId
    }

    fn pos_of(&self, id: NodeId) -> Pos {
        self.nodes.get(id as usize).and_then(|n| n.pos)
    }

    fn expression(&mut self) -> Result<NodeId, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        let r = self.level(0);
        self.depth -= 1;
        r
    }

    /// One binary level (0: and/or, 1: comparisons, 2: additive, 3: multiplicative), folded
    /// to the right.
    fn level(&mut self, level: u8) -> Result<NodeId, ParseError> {
        let mut operands = vec![self.operand(level)?];
        let mut ops = Vec::new();
        loop {
            let save = self.pos;
            self.skip_ws();
            let Some(op) = self.binary_op(level) else {
                self.pos = save;
                break;
            };
            self.skip_ws();
            ops.push(op);
            operands.push(self.operand(level)?);
        }
        let mut right = operands.pop().ok_or(ParseError::Incomplete)?;
        while let (Some(op), Some(left)) = (ops.pop(), operands.pop()) {
            let pos = self.pos_of(left);
            right = self.push(Expr::Bin(op, left, right), pos);
        }
        Ok(right)
    }

    fn operand(&mut self, level: u8) -> Result<NodeId, ParseError> {
        if level < 3 {
            self.level(level + 1)
        } else {
            self.negation()
        }
    }

    fn binary_op(&mut self, level: u8) -> Option<BinOp> {
        let op = match (level, self.peek()?) {
            (0, Tok::Kw("and")) => BinOp::And,
            (0, Tok::Kw("or")) => BinOp::Or,
            (1, Tok::Op(o)) => match *o {
                ">" => BinOp::Gt,
                ">=" => BinOp::Ge,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "&&" => BinOp::And,
                "||" => BinOp::Or,
                _ => return None,
            },
            (2, Tok::Op("+")) => BinOp::Add,
            (2, Tok::Op("-")) => BinOp::Sub,
            (3, Tok::Op(o)) => match *o {
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "%" => BinOp::Rem,
                ":" => BinOp::Colon,
                "^" => BinOp::Pow,
                _ => return None,
            },
            _ => return None,
        };
        self.pos += 1;
        Some(op)
    }

    fn negation(&mut self) -> Result<NodeId, ParseError> {
        if self.eat_op("-") {
            let inner = self.unary()?;
            return Ok(self.push(Expr::Neg(inner), None));
        }
        self.unary()
    }

    fn unary(&mut self) -> Result<NodeId, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<NodeId, ParseError> {
        let Some(token) = self.tokens.get(self.pos).cloned() else {
            return Err(ParseError::Incomplete);
        };
        let start = Some((token.line, token.col.saturating_sub(1)));
        match token.tok {
            Tok::Num(text) => {
                self.pos += 1;
                Ok(self.number(&text))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(self.push(Expr::Str(Rc::from(s)), None))
            }
            Tok::Kw("true") | Tok::Kw("false") => {
                self.pos += 1;
                Ok(self.push(Expr::Bool(token.tok == Tok::Kw("true")), start))
            }
            Tok::Kw("if") => {
                self.pos += 1;
                self.if_expression(start)
            }
            Tok::Op("(") => {
                self.pos += 1;
                self.skip_ws();
                let inner = self.expression()?;
                self.skip_ws();
                if !self.eat_op(")") {
                    return Err(self.fail());
                }
                Ok(inner)
            }
            Tok::Ident(name) => {
                self.pos += 1;
                let save = self.pos;
                self.skip_ws();
                if self.eat_op("(") {
                    return self.call(name, start, token.offset);
                }
                self.pos = save;
                Ok(self.push(Expr::Var(Var::from_name(&name)), start))
            }
            _ => Err(self.fail()),
        }
    }

    fn number(&mut self, text: &str) -> NodeId {
        self.push(number_expr(text), None)
    }

    /// `if __ cond __ then` | `if __ cond _ then _ else __ alt`; the last expression is the
    /// shortest that completes the `if`.
    fn if_expression(&mut self, start: Pos) -> Result<NodeId, ParseError> {
        if !self.skip_ws() {
            return Err(self.fail());
        }
        let cond = self.expression()?;
        let ws_after_cond = self.skip_ws();
        let then_start = self.pos;
        let nodes_before = self.nodes.len();
        let then = self.expression()?;
        let save = self.pos;
        self.skip_ws();
        if matches!(self.peek(), Some(Tok::Kw("else"))) {
            self.pos += 1;
            if !self.skip_ws() {
                return Err(self.fail());
            }
            let alt = self.negation()?;
            return Ok(self.push(Expr::If(cond, then, Some(alt)), start));
        }
        self.pos = save;
        if !ws_after_cond {
            return Err(self.fail());
        }
        // No `else`: re-read the consequent as the shortest expression.
        self.pos = then_start;
        self.nodes.truncate(nodes_before);
        let then = self.negation()?;
        Ok(self.push(Expr::If(cond, then, None), start))
    }

    fn call(&mut self, name: String, start: Pos, offset: usize) -> Result<NodeId, ParseError> {
        let args = if self.named_args_ahead() {
            ArgList::Named(self.named_args()?)
        } else {
            ArgList::Positional(self.positional_args()?)
        };
        let def = functions::lookup(&name);
        let args = bind_args(&name, def, &args);
        Ok(self.push(
            Expr::Call(Box::new(Call {
                name: Rc::from(name),
                def,
                args,
                offset,
            })),
            start,
        ))
    }

    fn named_args_ahead(&self) -> bool {
        let mut i = self.pos;
        let at = |i: usize| self.tokens.get(i).map(|t| &t.tok);
        while at(i) == Some(&Tok::Ws) {
            i += 1;
        }
        if !matches!(at(i), Some(Tok::Ident(_))) {
            return false;
        }
        i += 1;
        while at(i) == Some(&Tok::Ws) {
            i += 1;
        }
        at(i) == Some(&Tok::Op("="))
    }

    fn named_args(&mut self) -> Result<Vec<(String, NodeId)>, ParseError> {
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            let Some(Tok::Ident(name)) = self.peek().cloned() else {
                return Err(self.fail());
            };
            self.pos += 1;
            self.skip_ws();
            if !self.eat_op("=") {
                return Err(self.fail());
            }
            self.skip_ws();
            let value = self.expression()?;
            self.skip_ws();
            out.push((name, value));
            if self.eat_op(")") {
                return Ok(out);
            }
            if !self.eat_op(",") {
                return Err(self.fail());
            }
        }
    }

    fn positional_args(&mut self) -> Result<Vec<NodeId>, ParseError> {
        let mut out = Vec::new();
        loop {
            if self.eat_op(")") {
                return Ok(out);
            }
            self.skip_ws();
            out.push(self.expression()?);
            self.skip_ws();
            if self.eat_op(")") {
                return Ok(out);
            }
            if !self.eat_op(",") {
                return Err(self.fail());
            }
        }
    }
}

/// A number token's expression: a literal, or a literal with a unit.
pub(super) fn number_expr(text: &str) -> Expr {
    let (digits, unit) = match text.as_bytes().last() {
        Some(b'f') => (&text[..text.len() - 1], Some(Unit::Frames)),
        Some(b's') => (&text[..text.len() - 1], Some(Unit::Seconds)),
        Some(b'b') => (&text[..text.len() - 1], Some(Unit::Beats)),
        _ => (text, None),
    };
    let v: f64 = digits.parse().unwrap_or(f64::NAN);
    match unit {
        Some(u) => Expr::Unit(v, u),
        None => Expr::Num(v),
    }
}

pub(super) enum ArgList {
    Named(Vec<(String, NodeId)>),
    Positional(Vec<NodeId>),
}

fn joined(def: &ArgDef) -> String {
    def.names.join("/")
}

fn label(name: &str, def: &FuncDef) -> String {
    format!("'{name} ({})'", def.description)
}

/// Parseq's argument validation (run when the call is evaluated) and the mapping of argument
/// definitions to nodes.
pub(super) fn bind_args(
    name: &str,
    def: &FuncDef,
    args: &ArgList,
) -> Result<Vec<Option<NodeId>>, String> {
    let required: Vec<&ArgDef> = def.args.iter().filter(|a| a.required).collect();
    let missing = match args {
        ArgList::Named(list) => required
            .iter()
            .any(|a| a.names.iter().all(|n| !list.iter().any(|(k, _)| k == n))),
        ArgList::Positional(list) => list.len() < required.len(),
    };
    if missing {
        let names: Vec<String> = required.iter().map(|a| joined(a)).collect();
        return Err(format!(
            "1 or more missing required arguments for function {}. Required arguments: {}",
            label(name, def),
            names.join(", ")
        ));
    }
    let supported = || def.args.iter().map(joined).collect::<Vec<_>>().join(", ");
    match args {
        ArgList::Named(list) => {
            let unknown: Vec<&str> = list
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !def.args.iter().any(|a| a.names.contains(k)))
                .collect();
            if !unknown.is_empty() {
                return Err(format!(
                    "1 or more unrecognised arguments for function {}: {}. Supported arguments: {}",
                    label(name, def),
                    unknown.join(", "),
                    supported()
                ));
            }
            let duplicates: Vec<String> = def
                .args
                .iter()
                .filter(|a| {
                    list.iter()
                        .filter(|(k, _)| a.names.contains(&k.as_str()))
                        .count()
                        > 1
                })
                .map(joined)
                .collect();
            if !duplicates.is_empty() {
                return Err(format!(
                    "Duplicate arguments for function {}: {}",
                    label(name, def),
                    duplicates.join(", ")
                ));
            }
            Ok(def
                .args
                .iter()
                .map(|a| {
                    list.iter()
                        .find(|(k, _)| a.names.contains(&k.as_str()))
                        .map(|(_, v)| *v)
                })
                .collect())
        }
        ArgList::Positional(list) => {
            if list.len() > def.args.len() {
                return Err(format!(
                    "Too many arguments for function {}. Expected {} arguments, got {}",
                    label(name, def),
                    def.args.len(),
                    list.len()
                ));
            }
            Ok((0..def.args.len()).map(|i| list.get(i).copied()).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(input: &str) -> String {
        let Ok(ast) = parse(input) else {
            return "error".to_owned();
        };
        show(&ast, ast.root)
    }

    fn show(ast: &Ast, id: NodeId) -> String {
        match &ast.nodes[id as usize].expr {
            Expr::Num(n) => n.to_string(),
            Expr::Var(Var::Named(n)) => n.to_string(),
            Expr::Var(v) => format!("{v:?}"),
            Expr::Neg(a) => format!("-{}", show(ast, *a)),
            Expr::Bin(op, a, b) => format!("({} {op:?} {})", show(ast, *a), show(ast, *b)),
            Expr::If(c, a, b) => format!(
                "if({},{},{})",
                show(ast, *c),
                show(ast, *a),
                b.map_or("-".to_owned(), |b| show(ast, b))
            ),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn operators_are_right_associative() {
        assert_eq!(shape("10-2-3"), "(10 Sub (2 Sub 3))");
        assert_eq!(shape("2^3*2"), "(2 Pow (3 Mul 2))");
        assert_eq!(shape("-2^2"), "(-2 Pow 2)");
        assert_eq!(shape("a and y > z"), "(a And (y Gt z))");
        assert_eq!(shape("a && y > z"), "(a And (y Gt z))");
        assert_eq!(shape("- 3"), "error");
        assert_eq!(shape("--3"), "error");
        assert_eq!(shape("1 +"), "error");
    }

    #[test]
    fn if_takes_the_shortest_tail() {
        assert_eq!(shape("if a y else z - 1"), "(if(a,y,z) Sub 1)");
        assert_eq!(shape("if a y + 1 else z"), "if(a,(y Add 1),z)");
        assert_eq!(shape("if a y + 1"), "(if(a,y,-) Add 1)");
        assert_eq!(shape("if(a) y"), "error");
    }
}
