//! An Earley parser that follows nearley's algorithm step for step over Parseq's compiled
//! grammar, so that ambiguous formulas (an `if` whose last expression could end at several
//! places, operator characters inside strings or comments) get the parse nearley returns first.
//!
//! nearley keeps every derivation as its own state, completes waiting states in reverse order,
//! scans in reverse order, and the first complete start state of the last column wins. The
//! unambiguous majority of formulas take the faster recursive-descent path in [`super::parser`].

use std::rc::Rc;

use super::functions;
use super::parser::{
    ArgList, Ast, BinOp, Call, Expr, Node, NodeId, ParseError, Pos, Tok, Token, Var, bind_args,
    number_expr,
};

/// Most parser states before a formula is refused as too ambiguous.
const MAX_STATES: usize = 2_000_000;
/// Deepest derivation rebuilt.
const MAX_BUILD_DEPTH: usize = 2_000;

/// Whether the tokens contain something only nearley's algorithm reads right.
pub(super) fn needs_earley(tokens: &[Token]) -> bool {
    tokens.iter().any(|t| match &t.tok {
        Tok::Kw("if") | Tok::Comment(_) => true,
        Tok::Str(s) => s.contains(['+', '-', '*', '/', '%', ':', '^']),
        _ => false,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nt {
    Input,
    Call,
    If,
    ArgList,
    NamedArgList,
    Expression,
    Boolean,
    BooleanOp,
    Comparison,
    ComparisonOp,
    Additive,
    Multiplicative,
    Negation,
    Unary,
    BoolLiteral,
    StringLiteral,
    Number,
    Identifier,
    Ws1,
    Ws1Rep,
    Ws0,
    Ws0Rep,
}

const NT_COUNT: usize = 22;

#[derive(Clone, Copy, Debug)]
enum Sym {
    Nt(Nt),
    Lit(&'static str),
    Ws,
    Str,
    Num,
    Ident,
    Class(&'static str),
}

struct Rule {
    name: Nt,
    syms: &'static [Sym],
}

use Sym::{Class, Ident, Lit, Num, Str, Ws};

const fn n(x: Nt) -> Sym {
    Sym::Nt(x)
}

/// The grammar as nearleyc compiles `parseq-lang.ne` (rules of one name in file order).
const RULES: &[Rule] = &[
    Rule {
        name: Nt::Input,
        syms: &[n(Nt::Ws0), n(Nt::Expression), n(Nt::Ws0)],
    },
    Rule {
        name: Nt::Call,
        syms: &[
            n(Nt::Identifier),
            n(Nt::Ws0),
            Lit("("),
            n(Nt::NamedArgList),
            Lit(")"),
        ],
    },
    Rule {
        name: Nt::Call,
        syms: &[
            n(Nt::Identifier),
            n(Nt::Ws0),
            Lit("("),
            n(Nt::ArgList),
            Lit(")"),
        ],
    },
    Rule {
        name: Nt::If,
        syms: &[
            Lit("if"),
            n(Nt::Ws1),
            n(Nt::Expression),
            n(Nt::Ws1),
            n(Nt::Expression),
        ],
    },
    Rule {
        name: Nt::If,
        syms: &[
            Lit("if"),
            n(Nt::Ws1),
            n(Nt::Expression),
            n(Nt::Ws0),
            n(Nt::Expression),
            n(Nt::Ws0),
            Lit("else"),
            n(Nt::Ws1),
            n(Nt::Expression),
        ],
    },
    Rule {
        name: Nt::If,
        syms: &[
            Lit("if"),
            n(Nt::Ws1),
            n(Nt::Expression),
            n(Nt::Ws0),
            n(Nt::Expression),
            n(Nt::Ws0),
            Lit("else"),
            n(Nt::Ws1),
            n(Nt::If),
        ],
    },
    Rule {
        name: Nt::ArgList,
        syms: &[],
    },
    Rule {
        name: Nt::ArgList,
        syms: &[n(Nt::Ws0), n(Nt::Expression), n(Nt::Ws0)],
    },
    Rule {
        name: Nt::ArgList,
        syms: &[
            n(Nt::Ws0),
            n(Nt::Expression),
            n(Nt::Ws0),
            Lit(","),
            n(Nt::ArgList),
        ],
    },
    Rule {
        name: Nt::NamedArgList,
        syms: &[
            n(Nt::Ws0),
            n(Nt::Identifier),
            n(Nt::Ws0),
            Lit("="),
            n(Nt::Ws0),
            n(Nt::Expression),
            n(Nt::Ws0),
        ],
    },
    Rule {
        name: Nt::NamedArgList,
        syms: &[
            n(Nt::Ws0),
            n(Nt::Identifier),
            n(Nt::Ws0),
            Lit("="),
            n(Nt::Ws0),
            n(Nt::Expression),
            n(Nt::Ws0),
            Lit(","),
            n(Nt::NamedArgList),
        ],
    },
    Rule {
        name: Nt::Expression,
        syms: &[n(Nt::Boolean)],
    },
    Rule {
        name: Nt::Boolean,
        syms: &[n(Nt::Comparison)],
    },
    Rule {
        name: Nt::Boolean,
        syms: &[
            n(Nt::Comparison),
            n(Nt::Ws0),
            n(Nt::BooleanOp),
            n(Nt::Ws0),
            n(Nt::Boolean),
        ],
    },
    Rule {
        name: Nt::BooleanOp,
        syms: &[Lit("and")],
    },
    Rule {
        name: Nt::BooleanOp,
        syms: &[Lit("or")],
    },
    Rule {
        name: Nt::Comparison,
        syms: &[n(Nt::Additive)],
    },
    Rule {
        name: Nt::Comparison,
        syms: &[
            n(Nt::Additive),
            n(Nt::Ws0),
            n(Nt::ComparisonOp),
            n(Nt::Ws0),
            n(Nt::Comparison),
        ],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit(">")],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit(">=")],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit("<")],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit("<=")],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit("==")],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit("!=")],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit("&&")],
    },
    Rule {
        name: Nt::ComparisonOp,
        syms: &[Lit("||")],
    },
    Rule {
        name: Nt::Additive,
        syms: &[n(Nt::Multiplicative)],
    },
    Rule {
        name: Nt::Additive,
        syms: &[
            n(Nt::Multiplicative),
            n(Nt::Ws0),
            Class("+-"),
            n(Nt::Ws0),
            n(Nt::Additive),
        ],
    },
    Rule {
        name: Nt::Multiplicative,
        syms: &[n(Nt::Negation)],
    },
    Rule {
        name: Nt::Multiplicative,
        syms: &[
            n(Nt::Negation),
            n(Nt::Ws0),
            Class("*/%:^"),
            n(Nt::Ws0),
            n(Nt::Multiplicative),
        ],
    },
    Rule {
        name: Nt::Negation,
        syms: &[n(Nt::Unary)],
    },
    Rule {
        name: Nt::Negation,
        syms: &[Lit("-"), n(Nt::Unary)],
    },
    Rule {
        name: Nt::Unary,
        syms: &[n(Nt::Number)],
    },
    Rule {
        name: Nt::Unary,
        syms: &[n(Nt::Identifier)],
    },
    Rule {
        name: Nt::Unary,
        syms: &[n(Nt::Call)],
    },
    Rule {
        name: Nt::Unary,
        syms: &[n(Nt::StringLiteral)],
    },
    Rule {
        name: Nt::Unary,
        syms: &[n(Nt::If)],
    },
    Rule {
        name: Nt::Unary,
        syms: &[n(Nt::BoolLiteral)],
    },
    Rule {
        name: Nt::Unary,
        syms: &[
            Lit("("),
            n(Nt::Ws0),
            n(Nt::Expression),
            n(Nt::Ws0),
            Lit(")"),
        ],
    },
    Rule {
        name: Nt::BoolLiteral,
        syms: &[Lit("true")],
    },
    Rule {
        name: Nt::BoolLiteral,
        syms: &[Lit("false")],
    },
    Rule {
        name: Nt::StringLiteral,
        syms: &[Str],
    },
    Rule {
        name: Nt::Number,
        syms: &[Num],
    },
    Rule {
        name: Nt::Identifier,
        syms: &[Ident],
    },
    Rule {
        name: Nt::Ws1Rep,
        syms: &[Ws],
    },
    Rule {
        name: Nt::Ws1Rep,
        syms: &[n(Nt::Ws1Rep), Ws],
    },
    Rule {
        name: Nt::Ws1,
        syms: &[n(Nt::Ws1Rep)],
    },
    Rule {
        name: Nt::Ws0Rep,
        syms: &[],
    },
    Rule {
        name: Nt::Ws0Rep,
        syms: &[n(Nt::Ws0Rep), Ws],
    },
    Rule {
        name: Nt::Ws0,
        syms: &[n(Nt::Ws0Rep)],
    },
];

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
enum Child {
    None,
    Token(u32),
    State(u32),
}

#[derive(Clone, Copy)]
struct State {
    rule: u16,
    dot: u16,
    reference: u32,
    /// The `wants` list this state's completion feeds: (column, nonterminal).
    wanted_by: (u32, Nt),
    left: u32,
    right: Child,
}

struct Column {
    states: Vec<u32>,
    wants: [Option<Vec<u32>>; NT_COUNT],
    completed: [Vec<u32>; NT_COUNT],
    scannable: Vec<u32>,
}

impl Column {
    fn new() -> Self {
        Self {
            states: Vec::new(),
            wants: std::array::from_fn(|_| None),
            completed: std::array::from_fn(|_| Vec::new()),
            scannable: Vec::new(),
        }
    }
}

struct Earley<'t> {
    tokens: &'t [Token],
    states: Vec<State>,
    table: Vec<Column>,
}

fn is_complete(s: &State) -> bool {
    usize::from(s.dot) == RULES[usize::from(s.rule)].syms.len()
}

impl Earley<'_> {
    fn add(&mut self, col: usize, s: State) -> Result<(), ParseError> {
        if self.states.len() >= MAX_STATES {
            return Err(ParseError::TooAmbiguous(MAX_STATES));
        }
        self.states.push(s);
        let id = (self.states.len() - 1) as u32;
        self.table[col].states.push(id);
        Ok(())
    }

    fn predict(&mut self, col: usize, exp: Nt) -> Result<(), ParseError> {
        for (i, r) in RULES.iter().enumerate() {
            if r.name == exp {
                let s = State {
                    rule: i as u16,
                    dot: 0,
                    reference: col as u32,
                    wanted_by: (col as u32, exp),
                    left: NONE,
                    right: Child::None,
                };
                self.add(col, s)?;
            }
        }
        Ok(())
    }

    fn complete(&mut self, col: usize, left: u32, right: Child) -> Result<(), ParseError> {
        let l = self.states[left as usize];
        let s = State {
            rule: l.rule,
            dot: l.dot + 1,
            reference: l.reference,
            wanted_by: l.wanted_by,
            left,
            right,
        };
        self.add(col, s)
    }

    fn process(&mut self, col: usize) -> Result<(), ParseError> {
        let mut w = 0;
        while w < self.table[col].states.len() {
            let id = self.table[col].states[w];
            w += 1;
            let state = self.states[id as usize];
            let rule = &RULES[usize::from(state.rule)];
            if is_complete(&state) {
                let (wc, wnt) = state.wanted_by;
                let wanted: Vec<u32> = self.table[wc as usize].wants[wnt as usize]
                    .clone()
                    .unwrap_or_default();
                for &left in wanted.iter().rev() {
                    self.complete(col, left, Child::State(id))?;
                }
                if state.reference as usize == col {
                    self.table[col].completed[rule.name as usize].push(id);
                }
                continue;
            }
            match rule.syms[usize::from(state.dot)] {
                Sym::Nt(exp) => {
                    let slot = &mut self.table[col].wants[exp as usize];
                    if let Some(list) = slot {
                        list.push(id);
                        let nulls = self.table[col].completed[exp as usize].clone();
                        for right in nulls {
                            self.complete(col, id, Child::State(right))?;
                        }
                    } else {
                        *slot = Some(vec![id]);
                        self.predict(col, exp)?;
                    }
                }
                _ => self.table[col].scannable.push(id),
            }
        }
        Ok(())
    }

    fn matches(sym: Sym, token: &Token) -> bool {
        match (sym, &token.tok) {
            (Lit(l), Tok::Op(o)) => l == *o,
            (Lit(l), Tok::Kw(k)) => l == *k,
            (Lit(l), Tok::Ident(i)) => l == i,
            (Ws, Tok::Ws) => true,
            (Str, Tok::Str(_)) => true,
            (Num, Tok::Num(_)) => true,
            (Ident, Tok::Ident(_)) => true,
            // A character class tests the token's value (moo's `toString`).
            (Class(chars), tok) => {
                token_value(tok).is_some_and(|v| v.contains(|c| chars.contains(c)))
            }
            _ => false,
        }
    }

    fn run(&mut self) -> Result<u32, ParseError> {
        self.table.push(Column::new());
        self.table[0].wants[Nt::Input as usize] = Some(Vec::new());
        self.predict(0, Nt::Input)?;
        self.process(0)?;
        for (t, token) in self.tokens.iter().enumerate() {
            self.table.push(Column::new());
            let scannable = self.table[t].scannable.clone();
            for &id in scannable.iter().rev() {
                let state = self.states[id as usize];
                let sym = RULES[usize::from(state.rule)].syms[usize::from(state.dot)];
                if Self::matches(sym, token) {
                    self.complete(t + 1, id, Child::Token(t as u32))?;
                }
            }
            self.process(t + 1)?;
            if self.table[t + 1].states.is_empty() {
                return Err(super::parser::unexpected_token(token));
            }
        }
        let last = self.table.len() - 1;
        self.table[last]
            .states
            .iter()
            .copied()
            .find(|&id| {
                let s = &self.states[id as usize];
                RULES[usize::from(s.rule)].name == Nt::Input && is_complete(s) && s.reference == 0
            })
            .ok_or(ParseError::Incomplete)
    }

    /// The children of a complete state, in order.
    fn children(&self, id: u32) -> Vec<Child> {
        let mut out = Vec::new();
        let mut node = self.states[id as usize];
        while node.left != NONE {
            out.push(node.right);
            node = self.states[node.left as usize];
        }
        out.reverse();
        out
    }
}

fn token_value(tok: &Tok) -> Option<&str> {
    match tok {
        Tok::Ws => None,
        Tok::Op(o) => Some(o),
        Tok::Comment(c) => Some(c),
        Tok::Str(s) => Some(s),
        Tok::Num(n) => Some(n),
        Tok::Ident(i) => Some(i),
        Tok::Kw(k) => Some(k),
    }
}

/// Parses tokens with nearley's algorithm and builds the first result.
pub(super) fn parse_tokens(tokens: &[Token]) -> Result<Ast, ParseError> {
    let mut e = Earley {
        tokens,
        states: Vec::new(),
        table: Vec::new(),
    };
    let top = e.run()?;
    let mut b = Builder {
        e: &e,
        nodes: Vec::new(),
        depth: 0,
    };
    let root = b.expr_of(Child::State(top))?;
    Ok(Ast {
        nodes: b.nodes,
        root,
    })
}

struct Builder<'a, 'b> {
    e: &'a Earley<'b>,
    nodes: Vec<Node>,
    depth: usize,
}

impl Builder<'_, '_> {
    fn push(&mut self, expr: Expr, pos: Pos) -> NodeId {
        self.nodes.push(Node { expr, pos });
        (self.nodes.len() - 1) as NodeId
    }

    fn token(&self, c: Child) -> Option<&Token> {
        match c {
            Child::Token(t) => self.e.tokens.get(t as usize),
            _ => None,
        }
    }

    fn pos_of(&self, id: NodeId) -> Pos {
        self.nodes.get(id as usize).and_then(|n| n.pos)
    }

    /// The first token of a derivation (for positions).
    fn first_token(&self, c: Child) -> Option<&Token> {
        match c {
            Child::Token(_) => self.token(c),
            Child::State(id) => self
                .e
                .children(id)
                .into_iter()
                .find_map(|ch| self.first_token(ch)),
            Child::None => None,
        }
    }

    fn expr_of(&mut self, c: Child) -> Result<NodeId, ParseError> {
        self.depth += 1;
        if self.depth > MAX_BUILD_DEPTH {
            return Err(ParseError::TooDeep);
        }
        let r = self.expr_inner(c);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, c: Child) -> Result<NodeId, ParseError> {
        let Child::State(id) = c else {
            return Err(ParseError::Incomplete);
        };
        let rule = &RULES[usize::from(self.e.states[id as usize].rule)];
        let ch = self.e.children(id);
        let at = |i: usize| ch.get(i).copied().unwrap_or(Child::None);
        match rule.name {
            Nt::Input => self.expr_of(at(1)),
            Nt::Expression => self.expr_of(at(0)),
            Nt::Boolean | Nt::Comparison | Nt::Additive | Nt::Multiplicative if ch.len() == 1 => {
                self.expr_of(at(0))
            }
            Nt::Boolean | Nt::Comparison | Nt::Additive | Nt::Multiplicative => {
                let left = self.expr_of(at(0))?;
                let right = self.expr_of(at(4))?;
                let op_token = match rule.name {
                    Nt::Boolean | Nt::Comparison => self.first_token(at(2)),
                    _ => self.token(at(2)),
                };
                let value = op_token.and_then(|t| token_value(&t.tok)).unwrap_or("");
                let pos = self.pos_of(left);
                Ok(match bin_op(value) {
                    Some(op) => self.push(Expr::Bin(op, left, right), pos),
                    None => self.push(Expr::BadOp(Rc::from(value), left, right), pos),
                })
            }
            Nt::Negation if ch.len() == 1 => self.expr_of(at(0)),
            Nt::Negation => {
                let inner = self.expr_of(at(1))?;
                Ok(self.push(Expr::Neg(inner), None))
            }
            Nt::Unary if ch.len() == 1 => self.expr_of(at(0)),
            Nt::Unary => self.expr_of(at(2)),
            Nt::Number => {
                let text = match self.token(at(0)).map(|t| &t.tok) {
                    Some(Tok::Num(t)) => t.clone(),
                    _ => String::new(),
                };
                Ok(self.push(number_expr(&text), None))
            }
            Nt::StringLiteral => {
                let s = match self.token(at(0)).map(|t| &t.tok) {
                    Some(Tok::Str(s)) => s.clone(),
                    _ => String::new(),
                };
                Ok(self.push(Expr::Str(Rc::from(s)), None))
            }
            Nt::BoolLiteral => {
                let t = self.first_token(at(0)).cloned();
                let truth = matches!(t.as_ref().map(|t| &t.tok), Some(Tok::Kw("true")));
                Ok(self.push(Expr::Bool(truth), t.map(|t| start(&t))))
            }
            Nt::Identifier => {
                let t = self.first_token(at(0)).cloned();
                let name = match t.as_ref().map(|t| &t.tok) {
                    Some(Tok::Ident(n)) => n.clone(),
                    _ => String::new(),
                };
                Ok(self.push(Expr::Var(Var::from_name(&name)), t.map(|t| start(&t))))
            }
            Nt::If => {
                let t = self.first_token(at(0)).cloned();
                let cond = self.expr_of(at(2))?;
                let then = self.expr_of(at(4))?;
                let alt = if ch.len() > 5 {
                    Some(self.expr_of(at(8))?)
                } else {
                    None
                };
                Ok(self.push(Expr::If(cond, then, alt), t.map(|t| start(&t))))
            }
            Nt::Call => self.call(&ch),
            _ => Err(ParseError::Incomplete),
        }
    }

    fn call(&mut self, ch: &[Child]) -> Result<NodeId, ParseError> {
        let t = ch.first().and_then(|c| self.first_token(*c)).cloned();
        let name = match t.as_ref().map(|t| &t.tok) {
            Some(Tok::Ident(n)) => n.clone(),
            _ => String::new(),
        };
        let list = ch.get(3).copied().unwrap_or(Child::None);
        let args = self.args(list)?;
        let def = functions::lookup(&name);
        let bound = bind_args(&name, def, &args);
        let offset = t.as_ref().map_or(0, |t| t.offset);
        Ok(self.push(
            Expr::Call(Box::new(Call {
                name: Rc::from(name),
                def,
                args: bound,
                offset,
            })),
            t.map(|t| start(&t)),
        ))
    }

    fn args(&mut self, list: Child) -> Result<ArgList, ParseError> {
        let mut named = Vec::new();
        let mut positional = Vec::new();
        let mut is_named = false;
        let mut cur = list;
        while let Child::State(id) = cur {
            let rule = &RULES[usize::from(self.e.states[id as usize].rule)];
            let ch = self.e.children(id);
            let at = |i: usize| ch.get(i).copied().unwrap_or(Child::None);
            match rule.name {
                Nt::NamedArgList => {
                    is_named = true;
                    let key = match self.first_token(at(1)).map(|t| &t.tok) {
                        Some(Tok::Ident(n)) => n.clone(),
                        _ => String::new(),
                    };
                    let v = self.expr_of(at(5))?;
                    named.push((key, v));
                    cur = if ch.len() > 7 { at(8) } else { Child::None };
                }
                _ => {
                    if ch.is_empty() {
                        break;
                    }
                    positional.push(self.expr_of(at(1))?);
                    cur = if ch.len() > 3 { at(4) } else { Child::None };
                }
            }
        }
        Ok(if is_named {
            ArgList::Named(named)
        } else {
            ArgList::Positional(positional)
        })
    }
}

fn start(t: &Token) -> (u32, u32) {
    (t.line, t.col.saturating_sub(1))
}

fn bin_op(value: &str) -> Option<BinOp> {
    Some(match value {
        "+" => BinOp::Add,
        "-" => BinOp::Sub,
        "*" => BinOp::Mul,
        "/" => BinOp::Div,
        "%" => BinOp::Rem,
        "^" => BinOp::Pow,
        ":" => BinOp::Colon,
        "<" => BinOp::Lt,
        "<=" => BinOp::Le,
        ">" => BinOp::Gt,
        ">=" => BinOp::Ge,
        "==" => BinOp::Eq,
        "!=" => BinOp::Ne,
        "and" | "&&" => BinOp::And,
        "or" | "||" => BinOp::Or,
        _ => return None,
    })
}
