//! Evaluation of a parsed formula at a frame, with Parseq's semantics: JS coercions, node state
//! that persists between frames (`rand` hold, noise generators, `vibe`, `recompute_if`), and
//! Parseq's error messages.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::rc::Rc;

use thiserror::Error;

use super::bezier::BezierEasing;
use super::functions::{ArgDefault, FuncDef, Kind};
use super::interp::{Spline, linear, polynomial};
use super::jsnum::{js_max, js_min, js_pow, js_round, to_fixed};
use super::noise::Noise;
use super::parser::{Ast, BinOp, Call, Expr, NodeId, ParseError, Pos, Unit, Var, parse};
use super::random::SeedRandom;
use super::value::{Value, add, arith, compare, loose_eq};

/// Why evaluation failed (the message is Parseq's).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EvalError {
    /// A function's arguments are missing, unknown, duplicated, too many or of the wrong type.
    #[error("{0}")]
    Argument(String),
    /// Any other failure (division by exactly 0, an unknown variable or function, …).
    #[error("{0}")]
    Runtime(String),
}

fn runtime(msg: impl Into<String>) -> EvalError {
    EvalError::Runtime(msg.into())
}

/// The keyframes that have a value for the field being evaluated (Parseq's `definedFrames` and
/// `definedValues`), with the cubic spline through them computed once.
#[derive(Debug, Default)]
pub struct Keyed {
    frames: Vec<f64>,
    values: Vec<f64>,
    /// Frames ascend (then searches can bisect).
    sorted: bool,
    spline: OnceCell<Spline>,
}

impl Keyed {
    /// Frames and values (values may be fewer than frames, as in prompts).
    pub fn new(frames: Vec<f64>, values: Vec<f64>) -> Self {
        let sorted = frames.windows(2).all(|w| w[0] <= w[1]);
        Self {
            frames,
            values,
            sorted,
            spline: OnceCell::new(),
        }
    }

    /// The frames.
    pub fn frames(&self) -> &[f64] {
        &self.frames
    }

    /// The values.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    fn spline(&self) -> &Spline {
        self.spline
            .get_or_init(|| Spline::new(&self.frames, &self.values))
    }

    /// `findLastIndex(v => v <= frame)`.
    fn last_at_or_before(&self, frame: f64) -> Option<usize> {
        if self.sorted && !frame.is_nan() {
            self.frames.partition_point(|&v| v <= frame).checked_sub(1)
        } else {
            self.frames.iter().rposition(|&v| v <= frame)
        }
    }

    /// `findIndex(v => v > frame)`.
    fn first_after(&self, frame: f64) -> Option<usize> {
        if self.sorted && !frame.is_nan() {
            let i = self.frames.partition_point(|&v| v <= frame);
            (i < self.frames.len()).then_some(i)
        } else {
            self.frames.iter().position(|&v| v > frame)
        }
    }

    fn active_value(&self, frame: f64) -> Result<f64, EvalError> {
        let idx = self.last_at_or_before(frame);
        let v = match idx {
            Some(i) => self.values.get(i),
            None => self.values.first(),
        };
        v.copied()
            .ok_or_else(|| runtime("No active keyframe. Unexpected failure, please report a bug."))
    }

    fn next_frame(&self, frame: f64) -> Result<f64, EvalError> {
        let idx = self.first_after(frame);
        let v = match idx {
            Some(i) => self.frames.get(i),
            None => self.frames.last(),
        };
        v.copied()
            .ok_or_else(|| runtime("No next keyframe. Unexpected failure, please report a bug."))
    }

    fn next_value(&self, frame: f64) -> Result<f64, EvalError> {
        match self.first_after(frame) {
            Some(i) => self.values.get(i).copied().ok_or_else(|| {
                runtime("No next keyframe. Unexpected failure, please report a bug.")
            }),
            // `definedValues.at(-1) || NaN`: a final 0 becomes NaN.
            None => Ok(self
                .values
                .last()
                .copied()
                .filter(|v| *v != 0.0 && !v.is_nan())
                .unwrap_or(f64::NAN)),
        }
    }
}

/// What a formula reads beyond the keyframes around the current frame (which decides how much
/// an edit must re-render).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Every keyframe value (`C`, `P`).
    pub all_keyframes: bool,
    /// Values computed for earlier frames (`prev_computed_value`, `computed_at`, `dangerous`).
    pub own_history: bool,
    /// Other fields (`dangerous`).
    pub other_fields: bool,
}

/// A keyframe as the `info_match*` functions and `last_frame` see it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyframeInfo {
    /// Frame.
    pub frame: f64,
    /// Info label.
    pub info: Option<String>,
}

/// A time series: points `(x, y)` with x in frames or milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeSeries {
    /// Alias used in formulas.
    pub alias: String,
    /// Points in order.
    pub points: Vec<(f64, f64)>,
    /// Whether x is in milliseconds (else frames).
    pub millis: bool,
}

impl TimeSeries {
    /// The value at `frame`: the previous point's y (step) or a lerp; the last y past the end.
    pub fn value_at(&self, frame: f64, fps: f64, linear: bool) -> Option<f64> {
        let t = if self.millis {
            (frame / fps) * 1000.0
        } else {
            frame
        };
        let Some(idx) = self.points.iter().position(|p| p.0 >= t) else {
            return self.points.last().map(|p| p.1);
        };
        if idx == 0 {
            return Some(self.points[0].1);
        }
        let (prev, next) = (self.points[idx - 1], self.points[idx]);
        if !linear {
            return Some(prev.1);
        }
        let r = (t - prev.0) / (next.0 - prev.0);
        Some(prev.1 + r * (next.1 - prev.1))
    }
}

/// Extra variables and rendered values a formula can read.
pub trait Lookup {
    /// A variable from the variable map (`prev_computed_value`, field values in prompts, …).
    fn variable(&self, name: &str) -> Option<Value>;
    /// A value already rendered for `field` at `frame` (`dangerous()`).
    fn rendered(&self, frame: f64, field: &str) -> Option<f64> {
        let _ = (frame, field);
        None
    }
}

/// No extra variables.
pub struct NoLookup;

impl Lookup for NoLookup {
    fn variable(&self, _name: &str) -> Option<Value> {
        None
    }
}

/// Everything a formula can see at one frame (Parseq's invocation context).
pub struct Context<'a> {
    /// The frame.
    pub frame: f64,
    /// The latest keyframe with a value for this field at or before `frame`.
    pub active_keyframe: f64,
    /// The field's name.
    pub field_name: &'a str,
    /// Keyframes with a value for this field.
    pub keyed: &'a Keyed,
    /// All keyframes (frames and info labels).
    pub keyframes: &'a [KeyframeInfo],
    /// Output frames per second.
    pub fps: f64,
    /// Beats per minute.
    pub bpm: f64,
    /// Cadence.
    pub cadence: f64,
    /// Values computed so far for this field (`computed_at`).
    pub computed: &'a [Value],
    /// Variables and rendered values.
    pub lookup: &'a dyn Lookup,
    /// Time series by alias.
    pub time_series: &'a [TimeSeries],
    /// `Some(true)` in a positive prompt, `Some(false)` in a negative one, else `None`.
    pub prompt_type: Option<bool>,
    /// The field's default value (`computed_at`'s default).
    pub field_default: f64,
    /// The options `output_fps`, `bpm` and `cadence` as the document gives them, which the
    /// `fps`, `bpm` and `cadence` variables return unconverted (`"30"` stays a string); `None`
    /// means the numbers above.
    pub raw_options: Option<&'a [Value; 3]>,
}

#[derive(Clone, Debug, Default)]
enum NodeState {
    #[default]
    Empty,
    Rand {
        rng: Box<SeedRandom>,
        value: f64,
        at: f64,
    },
    Noise(Box<Noise>),
    Vibe(Box<Vibe>),
}

#[derive(Clone, Debug)]
struct Vibe {
    rng: SeedRandom,
    start_frame: f64,
    period: f64,
    start: f64,
    end: f64,
}

/// A parsed formula with its per-node state; evaluate it frame after frame.
#[derive(Clone, Debug)]
pub struct Formula {
    source: String,
    ast: Ast,
    st: EvalState,
}

/// What evaluation remembers between frames.
#[derive(Clone, Debug)]
struct EvalState {
    state: Vec<NodeState>,
    /// `recompute_if`'s stored value, kept on the node Parseq happens to store it on.
    stored: Vec<Option<f64>>,
    /// Cached easings per call node.
    easings: Vec<Option<BezierEasing>>,
    regexes: HashMap<String, Result<Rc<fancy_regex::Regex>, String>>,
    last: NodeId,
}

/// Most arguments any library function takes.
const MAX_ARGS: usize = 12;

impl Formula {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        let ast = parse(source)?;
        let n = ast.nodes.len();
        Ok(Self {
            source: source.to_owned(),
            ast,
            st: EvalState {
                state: vec![NodeState::Empty; n],
                stored: vec![None; n],
                easings: vec![None; n],
                regexes: HashMap::new(),
                last: 0,
            },
        })
    }

    /// The formula text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed tree.
    pub fn ast(&self) -> &Ast {
        &self.ast
    }

    /// What the formula reads beyond the keyframes around the current frame.
    pub fn dependencies(&self) -> Dependencies {
        let mut d = Dependencies::default();
        for node in &self.ast.nodes {
            match &node.expr {
                Expr::Var(Var::Cubic | Var::Poly) => d.all_keyframes = true,
                Expr::Var(Var::Named(n)) if &**n == "prev_computed_value" => d.own_history = true,
                Expr::Call(c) if c.def.kind == Kind::ComputedAt => d.own_history = true,
                Expr::Call(c) if c.def.kind == Kind::Dangerous => {
                    d.other_fields = true;
                    d.own_history = true;
                }
                _ => {}
            }
        }
        d
    }

    /// Forgets all node state, as a freshly parsed formula.
    pub fn reset(&mut self) {
        self.st.state.iter_mut().for_each(|s| *s = NodeState::Empty);
        self.st.stored.iter_mut().for_each(|s| *s = None);
    }

    /// Evaluates at `ctx.frame`.
    pub fn eval(&mut self, ctx: &Context<'_>) -> Result<Value, EvalError> {
        let root = self.ast.root;
        self.st.node(&self.ast, root, ctx)
    }
}

impl EvalState {
    fn node(&mut self, ast: &Ast, id: NodeId, ctx: &Context<'_>) -> Result<Value, EvalError> {
        self.last = id;
        let Some(node) = ast.nodes.get(id as usize) else {
            return Err(runtime("internal: dangling node"));
        };
        match &node.expr {
            Expr::Num(n) => Ok(Value::Num(*n)),
            Expr::Str(s) => Ok(Value::Str(s.clone())),
            Expr::Bool(b) => Ok(Value::Num(if *b { 1.0 } else { 0.0 })),
            Expr::Unit(n, u) => Ok(Value::Num(match u {
                Unit::Frames => *n,
                Unit::Seconds => n * ctx.fps,
                Unit::Beats => n * (ctx.fps * 60.0) / ctx.bpm,
            })),
            Expr::Var(v) => variable(v, node.pos, ctx),
            Expr::Neg(a) => Ok(match self.node(ast, *a, ctx)? {
                Value::Str(s) => Value::Str(Rc::from(format!("-{s}"))),
                v => Value::Num(-v.to_number()),
            }),
            Expr::Bin(op, a, b) => {
                let l = self.node(ast, *a, ctx)?;
                let r = self.node(ast, *b, ctx)?;
                binary(*op, &l, &r, node.pos)
            }
            Expr::BadOp(text, a, b) => {
                self.node(ast, *a, ctx)?;
                self.node(ast, *b, ctx)?;
                let quoted = serde_json::to_string(&**text).unwrap_or_default();
                Err(runtime(format!(
                    "Unknown binary operator '{quoted}' at {}.",
                    pos_text(node.pos)
                )))
            }
            Expr::If(c, a, b) => {
                if self.node(ast, *c, ctx)?.is_positive() {
                    self.node(ast, *a, ctx)
                } else if let Some(b) = b {
                    self.node(ast, *b, ctx)
                } else {
                    Ok(Value::Num(0.0))
                }
            }
            Expr::Call(call) => self.call(ast, id, call, ctx),
        }
    }

    fn call(
        &mut self,
        ast: &Ast,
        id: NodeId,
        call: &Call,
        ctx: &Context<'_>,
    ) -> Result<Value, EvalError> {
        let def: &'static FuncDef = call.def;
        let bound = match &call.args {
            Ok(b) => b,
            Err(msg) => return Err(EvalError::Argument(msg.clone())),
        };
        let mut args: [Value; MAX_ARGS] = std::array::from_fn(|_| Value::Undefined);
        let count = def.args.len().min(MAX_ARGS);
        for (i, (arg_def, node)) in def.args.iter().zip(bound).enumerate().take(count) {
            args[i] = match node {
                Some(n) => {
                    let v = self.node(ast, *n, ctx)?;
                    if v.type_name() != arg_def.ty.name() {
                        return Err(EvalError::Argument(format!(
                            "Invalid argument type for argument '{}' for function '{} ({})'. Expected type '{}', got '{}'",
                            arg_def.names.join("/"),
                            call.name,
                            def.description,
                            arg_def.ty.name(),
                            v.type_name()
                        )));
                    }
                    v
                }
                None => default_value(arg_def.default, ctx, call.offset)?,
            };
        }
        self.apply(id, def.kind, &call.name, &args[..count], ctx)
    }

    fn apply(
        &mut self,
        id: NodeId,
        kind: Kind,
        name: &str,
        args: &[Value],
        ctx: &Context<'_>,
    ) -> Result<Value, EvalError> {
        let n = |i: usize| args.get(i).map_or(f64::NAN, Value::to_number);
        let num = |v: f64| Ok(Value::Num(v));
        match kind {
            Kind::Sin | Kind::Sq | Kind::Saw | Kind::Tri | Kind::Pulse => {
                num(oscillator(kind, [n(0), n(1), n(2), n(3), n(4), n(5)], ctx))
            }
            Kind::Min => num(js_min(n(0), n(1))),
            Kind::Max => num(js_max(n(0), n(1))),
            Kind::Abs => num(n(0).abs()),
            Kind::Round | Kind::Floor | Kind::Ceil => {
                let pow = js_pow(10.0, n(1));
                let x = n(0) * pow;
                let r = match kind {
                    Kind::Round => js_round(x),
                    Kind::Floor => x.floor(),
                    _ => x.ceil(),
                };
                num(r / pow)
            }
            Kind::Math(f) => num(f.apply(n(0))),
            Kind::F2b => num(n(0) / ((ctx.fps * 60.0) / ctx.bpm)),
            Kind::F2s => num(n(0) / ctx.fps),
            Kind::B2f => num(n(0) * ((ctx.fps * 60.0) / ctx.bpm)),
            Kind::S2f => num(n(0) * ctx.fps),
            Kind::Rand => num(self.rand(id, [n(0), n(1), n(2), n(3)], ctx)),
            Kind::Smrand | Kind::Perlin => {
                let (smooth, min, max, seed, y) = (n(0), n(1), n(2), n(3), n(4));
                let smooth = if smooth == 0.0 || smooth.is_nan() {
                    1.0
                } else {
                    smooth
                };
                let x = ctx.frame / smooth;
                let slot = &mut self.state[id as usize];
                if !matches!(slot, NodeState::Noise(_)) {
                    *slot = NodeState::Noise(Box::new(Noise::new(seed)));
                }
                let NodeState::Noise(noise) = slot else {
                    return Err(runtime("internal: noise state"));
                };
                if kind == Kind::Smrand {
                    num(noise.simplex2(x, y) * (max - min) / 2.0 + (max + min) / 2.0)
                } else {
                    num(noise.perlin2(x, y) * (max - min) + (max + min) / 2.0)
                }
            }
            Kind::Vibe => self.vibe(id, args, ctx).map(Value::Num),
            Kind::Bez => {
                let (mut pts, from, mut to, span, offset) =
                    ([n(0), n(1), n(2), n(3)], n(4), n(5), n(6), n(7));
                let curve = args.get(8).map(Value::to_js_string).unwrap_or_default();
                if !curve.is_empty() {
                    pts = curve_points(&curve)?;
                }
                let delta = n(9);
                if delta != 0.0 && !delta.is_nan() {
                    to = from + delta;
                }
                self.bezier(id, pts, from, to, span, offset, ctx)
                    .map(Value::Num)
            }
            Kind::Slide => num(slide(n(0), n(1), n(2), n(3), ctx)),
            Kind::Posneg | Kind::PosnegLora => {
                let Some(positive) = ctx.prompt_type else {
                    return Err(runtime("posneg() can only be used in a prompt."));
                };
                let term = args.first().map(Value::to_js_string).unwrap_or_default();
                let (prefix, suffix) = if kind == Kind::Posneg {
                    ("(", ")")
                } else {
                    ("<lora:", ">")
                };
                Ok(Value::Str(Rc::from(posneg(
                    &term,
                    n(1),
                    n(2),
                    n(3),
                    positive,
                    prefix,
                    suffix,
                ))))
            }
            Kind::InfoMatch
            | Kind::InfoMatchCount
            | Kind::InfoMatchPrev
            | Kind::InfoMatchNext
            | Kind::InfoMatchGap
            | Kind::InfoMatchProgress
            | Kind::InfoMatchSince
            | Kind::InfoMatchUntil => self.info(kind, args, ctx).map(Value::Num),
            Kind::ComputedAt => {
                let prior = n(0);
                if prior > ctx.frame {
                    return Err(runtime(
                        "computed_at(prior_frame) - prior_frame must be below the current frame number.",
                    ));
                }
                if prior < 0.0 {
                    return num(n(1));
                }
                Ok(index(ctx.computed, prior)
                    .cloned()
                    .unwrap_or(Value::Undefined))
            }
            Kind::StartOfBeat => {
                let mode = args.get(1).map(Value::to_js_string).unwrap_or_default();
                let whole = (n(0) / ((ctx.fps * 60.0) / ctx.bpm)).floor();
                let frame = whole * ((ctx.fps * 60.0) / ctx.bpm);
                match mode.as_str() {
                    "d" => num(frame.floor()),
                    "u" => num(frame.ceil()),
                    "r" => num(js_round(frame)),
                    _ => Err(runtime(format!("Unknow rounding mode: {mode}"))),
                }
            }
            Kind::RecomputeIf => {
                let slot = self.last as usize;
                if n(0) > 0.0 {
                    let v = n(1);
                    if let Some(s) = self.stored.get_mut(slot) {
                        *s = Some(v);
                    }
                    num(v)
                } else {
                    num(self.stored.get(slot).copied().flatten().unwrap_or(n(2)))
                }
            }
            Kind::Dangerous => {
                let field = args.first().map(Value::to_js_string).unwrap_or_default();
                let v = ctx.lookup.rendered(n(1), &field);
                num(v.filter(|v| *v != 0.0 && !v.is_nan()).unwrap_or(-1.0))
            }
            Kind::IsGeneration => num(if n(0) % ctx.cadence == 0.0 { 1.0 } else { 0.0 }),
            Kind::Missing => match ctx.time_series.iter().find(|t| t.alias == name) {
                Some(ts) => {
                    let linear = args.get(1).is_some_and(Value::truthy);
                    num(ts.value_at(n(0), ctx.fps, linear).unwrap_or(0.0))
                }
                None => Err(runtime(format!("Unknown function: '{name}'"))),
            },
        }
    }

    fn rand(&mut self, id: NodeId, [min, max, seed, hold]: [f64; 4], ctx: &Context<'_>) -> f64 {
        let kf = ctx.active_keyframe;
        let slot = &mut self.state[id as usize];
        if let NodeState::Rand { value, at, .. } = slot {
            let fresh =
                at.is_nan() || ((*at - kf) / hold).floor() < ((ctx.frame - kf) / hold).floor();
            if !fresh {
                return *value;
            }
        }
        if !matches!(slot, NodeState::Rand { .. }) {
            *slot = NodeState::Rand {
                rng: Box::new(SeedRandom::new(&super::jsnum::to_js_string(seed))),
                value: f64::NAN,
                at: f64::NAN,
            };
        }
        let NodeState::Rand { rng, value, at } = slot else {
            return f64::NAN;
        };
        let v = rng.next_f64() * (max - min) + min;
        *value = v;
        *at = ctx.frame;
        v
    }

    fn vibe(&mut self, id: NodeId, args: &[Value], ctx: &Context<'_>) -> Result<f64, EvalError> {
        let n = |i: usize| args.get(i).map_or(f64::NAN, Value::to_number);
        let (pmin, pmax, p, min, max, seed) = (n(5), n(6), n(7), n(8), n(9), n(10));
        let curve = args.get(11).map(Value::to_js_string).unwrap_or_default();
        let slot = &mut self.state[id as usize];
        let renew = match slot {
            NodeState::Vibe(v) => {
                v.start_frame.is_nan() || v.period.is_nan() || ctx.frame > v.start_frame + v.period
            }
            _ => true,
        };
        if renew {
            if !matches!(slot, NodeState::Vibe(_)) {
                *slot = NodeState::Vibe(Box::new(Vibe {
                    rng: SeedRandom::new(&super::jsnum::to_js_string(seed)),
                    start_frame: f64::NAN,
                    period: f64::NAN,
                    start: f64::NAN,
                    end: f64::NAN,
                }));
            }
            let NodeState::Vibe(v) = slot else {
                return Err(runtime("internal: vibe state"));
            };
            v.start_frame = ctx.frame;
            v.start = if v.end.is_nan() {
                ctx.keyed.active_value(ctx.frame)?
            } else {
                v.end
            };
            v.end = v.rng.next_f64() * (max - min) + min;
            v.period = if p.is_nan() {
                (v.rng.next_f64() * (pmin - pmax) + pmin).floor()
            } else {
                p
            };
        }
        let NodeState::Vibe(v) = &self.state[id as usize] else {
            return Err(runtime("internal: vibe state"));
        };
        let (start, end, period, start_frame) = (v.start, v.end, v.period, v.start_frame);
        let mut pts = [n(0), n(1), n(2), n(3)];
        if !curve.is_empty() {
            pts = curve_points(&curve)?;
        }
        self.bezier(
            id,
            pts,
            start,
            end,
            period,
            (ctx.frame - start_frame) / period,
            ctx,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn bezier(
        &mut self,
        id: NodeId,
        [x1, y1, x2, y2]: [f64; 4],
        from: f64,
        to: f64,
        span: f64,
        offset: f64,
        ctx: &Context<'_>,
    ) -> Result<f64, EvalError> {
        let x = ctx.frame - ctx.active_keyframe;
        let position = if offset.abs() < 1.0 { offset } else { x / span };
        if span == 0.0 {
            return Ok(from);
        }
        if position > 1.0 {
            return Ok(to);
        }
        let Some(slot) = self.easings.get_mut(id as usize) else {
            return Err(runtime("internal: easing slot"));
        };
        let fresh = slot.as_ref().is_none_or(|e| e.points() != (x1, y1, x2, y2));
        if fresh {
            *slot = Some(BezierEasing::new(x1, y1, x2, y2).map_err(|e| runtime(e.to_string()))?);
        }
        let eased = slot.as_ref().map_or(f64::NAN, |e| e.at(position));
        Ok(from + eased * (to - from))
    }

    fn regex(&mut self, pattern: &str) -> Result<Rc<fancy_regex::Regex>, EvalError> {
        let entry = self.regexes.entry(pattern.to_owned()).or_insert_with(|| {
            fancy_regex::Regex::new(pattern)
                .map(Rc::new)
                .map_err(|e| format!("Invalid regular expression: /{pattern}/: {e}"))
        });
        entry.clone().map_err(runtime)
    }

    fn info(&mut self, kind: Kind, args: &[Value], ctx: &Context<'_>) -> Result<f64, EvalError> {
        let pattern = args.first().map(Value::to_js_string).unwrap_or_default();
        let default = args.get(1).map_or(f64::NAN, Value::to_number);
        let re = self.regex(&pattern)?;
        let matches = |k: &KeyframeInfo| {
            k.info
                .as_deref()
                .is_some_and(|i| re.is_match(i).unwrap_or(false))
        };
        let f = ctx.frame;
        let prev = ctx
            .keyframes
            .iter()
            .rev()
            .find(|k| k.frame <= f && matches(k))
            .map(|k| k.frame);
        let next = ctx
            .keyframes
            .iter()
            .find(|k| k.frame > f && matches(k))
            .map(|k| k.frame);
        Ok(match kind {
            Kind::InfoMatch => {
                let active = ctx.keyframes.iter().rev().find(|k| k.frame <= f);
                f64::from(u8::from(active.is_some_and(matches)))
            }
            Kind::InfoMatchCount => ctx
                .keyframes
                .iter()
                .filter(|k| k.frame <= f && matches(k))
                .count() as f64,
            Kind::InfoMatchPrev => prev.unwrap_or(default),
            Kind::InfoMatchNext => next.unwrap_or(default),
            Kind::InfoMatchGap => match (prev, next) {
                (Some(p), Some(n)) => n - p,
                _ => default,
            },
            Kind::InfoMatchProgress => match (prev, next) {
                (Some(p), Some(n)) => (f - p) / (n - p),
                _ => default,
            },
            Kind::InfoMatchSince => prev.map_or(default, |p| f - p),
            _ => next.map_or(default, |n| n - f),
        })
    }
}

/// `arr[i]` for a JS number index.
fn index<T>(arr: &[T], i: f64) -> Option<&T> {
    if i.fract() != 0.0 || i < 0.0 || i >= arr.len() as f64 {
        return None;
    }
    arr.get(i as usize)
}

fn pos_text(pos: Pos) -> String {
    pos.map_or("undefined:undefined".to_owned(), |(l, c)| {
        format!("{l}:{c}")
    })
}

fn variable(v: &Var, pos: Pos, ctx: &Context<'_>) -> Result<Value, EvalError> {
    let keyed = ctx.keyed;
    let f = ctx.frame;
    let beat = |frame: f64| frame / ((ctx.fps * 60.0) / ctx.bpm);
    let n = match v {
        Var::Linear => linear(f, keyed.frames(), keyed.values()),
        Var::Poly => polynomial(f, keyed.frames(), keyed.values()),
        Var::Step => keyed.active_value(f)?,
        Var::Cubic => keyed.spline().at(f),
        Var::Frame => f,
        Var::LastFrame => ctx
            .keyframes
            .iter()
            .map(|k| k.frame)
            .fold(None, |m: Option<f64>, x| {
                Some(m.map_or(x, |m| if x > m { x } else { m }))
            })
            .unwrap_or(0.0),
        Var::Beat => beat(f),
        Var::WholeBeat => beat(f).floor(),
        Var::Second => f / ctx.fps,
        Var::Fps | Var::Bpm | Var::Cadence => {
            let (i, n) = match v {
                Var::Fps => (0, ctx.fps),
                Var::Bpm => (1, ctx.bpm),
                _ => (2, ctx.cadence),
            };
            return Ok(ctx.raw_options.map_or(Value::Num(n), |r| r[i].clone()));
        }
        Var::SinceKeyframe => f - ctx.active_keyframe,
        Var::ActiveKeyframe => ctx.active_keyframe,
        Var::NextKeyframe => keyed.next_frame(f)?,
        Var::NextKeyframeValue => keyed.next_value(f)?,
        Var::Const(c) => *c,
        Var::Named(name) => {
            if let Some(v) = ctx.lookup.variable(name) {
                return Ok(if v == Value::Undefined {
                    Value::Num(0.0)
                } else {
                    v
                });
            }
            if let Some(ts) = ctx.time_series.iter().find(|t| *t.alias == **name) {
                return Ok(Value::Num(ts.value_at(f, ctx.fps, false).unwrap_or(0.0)));
            }
            return Err(runtime(format!(
                "Unrecognised variable {name} at {}",
                pos_text(pos)
            )));
        }
    };
    Ok(Value::Num(n))
}

fn binary(op: BinOp, l: &Value, r: &Value, pos: Pos) -> Result<Value, EvalError> {
    let num = |x: f64| Ok(Value::Num(x));
    let flag = |b: bool| Ok(Value::Num(if b { 1.0 } else { 0.0 }));
    match op {
        BinOp::Add => Ok(add(l, r)),
        BinOp::Sub => num(arith('-', l.to_number(), r.to_number())),
        BinOp::Mul => num(arith('*', l.to_number(), r.to_number())),
        BinOp::Div => {
            if *r == Value::Num(0.0) {
                return Err(runtime(format!("Divide by zero at {}.", pos_text(pos))));
            }
            num(arith('/', l.to_number(), r.to_number()))
        }
        BinOp::Rem => num(arith('%', l.to_number(), r.to_number())),
        BinOp::Pow => num(arith('^', l.to_number(), r.to_number())),
        BinOp::Colon => {
            let mut s = String::from("(");
            l.write_js(&mut s);
            s.push(':');
            r.write_js(&mut s);
            s.push(')');
            Ok(Value::Str(Rc::from(s)))
        }
        BinOp::Lt => flag(compare("<", l, r)),
        BinOp::Le => flag(compare("<=", l, r)),
        BinOp::Gt => flag(compare(">", l, r)),
        BinOp::Ge => flag(compare(">=", l, r)),
        BinOp::Eq => flag(loose_eq(l, r)),
        BinOp::Ne => flag(!loose_eq(l, r)),
        BinOp::And => flag(l.is_positive() && r.is_positive()),
        BinOp::Or => flag(l.is_positive() || r.is_positive()),
    }
}

fn default_value(d: ArgDefault, ctx: &Context<'_>, offset: usize) -> Result<Value, EvalError> {
    Ok(Value::Num(match d {
        ArgDefault::Num(n) => n,
        ArgDefault::Str(s) => return Ok(Value::str(s)),
        ArgDefault::ActiveValue => ctx.keyed.active_value(ctx.frame)?,
        ArgDefault::NextValue => ctx.keyed.next_value(ctx.frame)?,
        ArgDefault::NextSpan => ctx.keyed.next_frame(ctx.frame)? - ctx.active_keyframe,
        ArgDefault::ActiveKeyframe => ctx.active_keyframe,
        ArgDefault::FieldDefault => ctx.field_default,
        ArgDefault::Frame => ctx.frame,
        ArgDefault::Clock => offset as f64,
    }))
}

fn oscillator(
    kind: Kind,
    [period, phase, amp, centre, limit, pw]: [f64; 6],
    ctx: &Context<'_>,
) -> f64 {
    use std::f64::consts::PI;
    if limit > 0.0 && (ctx.frame - ctx.active_keyframe) > limit * period {
        return 0.0;
    }
    let pos = ctx.frame + phase;
    let angle = pos * PI * 2.0 / period;
    match kind {
        Kind::Sin => centre + angle.sin() * amp,
        Kind::Tri => centre + angle.sin().asin() * (2.0 * amp) / PI,
        Kind::Saw => centre + (pos % period) * amp / period,
        Kind::Sq => centre + (if angle.sin() >= 0.0 { 1.0 } else { -1.0 }) * amp,
        _ => centre + amp * (if (pos % period) < pw { 1.0 } else { 0.0 }),
    }
}

fn slide(from: f64, to: f64, span: f64, offset: f64, ctx: &Context<'_>) -> f64 {
    let x = ctx.frame - ctx.active_keyframe;
    let position = if offset.abs() < 1.0 { offset * span } else { x };
    if span == 0.0 {
        from
    } else if x >= span {
        to
    } else {
        from + (to - from) / span * position
    }
}

fn posneg(
    term: &str,
    weight: f64,
    pweight: f64,
    nweight: f64,
    positive: bool,
    prefix: &str,
    suffix: &str,
) -> String {
    let neg_to_pos = !positive && weight < 0.0;
    let pos_to_neg = positive && weight < 0.0;
    let pick = |o: f64| if o.is_nan() { weight.abs() } else { o };
    let canonical = if neg_to_pos || (!pos_to_neg && positive) {
        pick(pweight)
    } else {
        pick(nweight)
    };
    let weighted = format!("{prefix}{term}:{}{suffix}", to_fixed(canonical, 4));
    if weight == 0.0 {
        String::new()
    } else if neg_to_pos || pos_to_neg {
        format!("__PARSEQ_MOVE__{weighted}__PARSEQ_END_MOVE__")
    } else {
        weighted
    }
}

/// Control points of a named curve.
fn curve_points(name: &str) -> Result<[f64; 4], EvalError> {
    Ok(match name {
        "ease" => [0.25, 0.1, 0.25, 1.0],
        "ease-in" | "easeIn" => [0.42, 0.0, 1.0, 1.0],
        "ease-out" | "easeOut" => [0.0, 0.0, 0.58, 1.0],
        "ease-in-out" | "easeInOut" => [0.42, 0.0, 0.58, 1.0],
        "linear" => [0.0, 0.0, 1.0, 1.0],
        "step-start" | "stepStart" => [0.0, 0.0, 0.0, 1.0],
        "step-end" | "stepEnd" => [1.0, 0.0, 1.0, 1.0],
        "easeInSine" | "easeIn1" => [0.12, 0.0, 0.39, 0.0],
        "easeOutSine" | "easeOut1" => [0.61, 1.0, 0.88, 1.0],
        "easeInOutSine" | "easeInOut1" => [0.37, 0.0, 0.63, 1.0],
        "easeInQuad" | "easeIn2" => [0.11, 0.0, 0.5, 0.0],
        "easeOutQuad" | "easeOut2" => [0.5, 1.0, 0.89, 1.0],
        "easeInOutQuad" | "easeInOut2" => [0.45, 0.0, 0.55, 1.0],
        "easeInCubic" | "easeIn3" => [0.32, 0.0, 0.67, 0.0],
        "easeOutCubic" | "easeOut3" => [0.33, 1.0, 0.68, 1.0],
        "easeInOutCubic" | "easeInOut3" => [0.65, 0.0, 0.35, 1.0],
        "easeInQuart" | "easeIn4" => [0.5, 0.0, 0.75, 0.0],
        "easeOutQuart" | "easeOut4" => [0.25, 1.0, 0.5, 1.0],
        "easeInOutQuart" | "easeInOut4" => [0.76, 0.0, 0.24, 1.0],
        "easeInQuint" | "easeIn5" => [0.64, 0.0, 0.78, 0.0],
        "easeOutQuint" | "easeOut5" => [0.22, 1.0, 0.36, 1.0],
        "easeInOutQuint" | "easeInOut5" => [0.83, 0.0, 0.17, 1.0],
        "easeInExpo" | "easeIn6" => [0.7, 0.0, 0.84, 0.0],
        "easeOutExpo" | "easeOut6" => [0.16, 1.0, 0.3, 1.0],
        "easeInOutExpo" | "easeInOut6" => [0.87, 0.0, 0.13, 1.0],
        "easeInCirc" => [0.55, 0.0, 1.0, 0.45],
        "easeOutCirc" => [0.0, 0.55, 0.45, 1.0],
        "easeInOutCirc" => [0.85, 0.0, 0.15, 1.0],
        "easeInBack" => [0.36, 0.0, 0.66, -0.56],
        "easeOutBack" => [0.34, 1.56, 0.64, 1.0],
        "easeInOutBack" => [0.68, -0.6, 0.32, 1.6],
        other => return Err(runtime(format!("Unknown curve type: {other}."))),
    })
}
