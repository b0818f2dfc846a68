//! The function library of the interpolation language: names, descriptions (they appear in
//! Parseq's error messages), arguments with aliases, types and defaults.

/// The declared type of an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// `number`.
    Number,
    /// `string`.
    String,
}

impl ArgType {
    /// The JS `typeof` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::String => "string",
        }
    }
}

/// The default of an optional argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ArgDefault {
    /// A number.
    Num(f64),
    /// A string.
    Str(&'static str),
    /// The active keyframe's value.
    ActiveValue,
    /// The next keyframe's value.
    NextValue,
    /// Frames from the active to the next keyframe.
    NextSpan,
    /// The active keyframe's frame.
    ActiveKeyframe,
    /// The field's default value.
    FieldDefault,
    /// The current frame.
    Frame,
    /// Parseq uses the clock; Keyshift a fixed seed per call site (see `docs/compat.md`).
    Clock,
}

/// One argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArgDef {
    /// The name and its aliases.
    pub names: &'static [&'static str],
    /// Declared type.
    pub ty: ArgType,
    /// Whether it must be given.
    pub required: bool,
    /// Default when absent.
    pub default: ArgDefault,
}

/// What a function computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Oscillators.
    Sin,
    /// Square wave.
    Sq,
    /// Sawtooth.
    Saw,
    /// Triangle.
    Tri,
    /// Pulse.
    Pulse,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `abs`.
    Abs,
    /// `round`.
    Round,
    /// `floor`.
    Floor,
    /// `ceil`.
    Ceil,
    /// A one-argument `Math` function (`_sin`, `_log`, …).
    Math(MathFn),
    /// Frames to beats.
    F2b,
    /// Frames to seconds.
    F2s,
    /// Beats to frames.
    B2f,
    /// Seconds to frames.
    S2f,
    /// Seeded random with hold.
    Rand,
    /// Simplex noise.
    Smrand,
    /// Perlin noise.
    Perlin,
    /// Random bezier segments.
    Vibe,
    /// Bezier transition.
    Bez,
    /// Linear slide.
    Slide,
    /// Prompt term weighting.
    Posneg,
    /// Prompt lora weighting.
    PosnegLora,
    /// `info_match`.
    InfoMatch,
    /// `info_match_count`.
    InfoMatchCount,
    /// `info_match_prev` / `info_match_last`.
    InfoMatchPrev,
    /// `info_match_next`.
    InfoMatchNext,
    /// `info_match_gap`.
    InfoMatchGap,
    /// `info_match_progress`.
    InfoMatchProgress,
    /// `info_match_since`.
    InfoMatchSince,
    /// `info_match_until`.
    InfoMatchUntil,
    /// `computed_at`.
    ComputedAt,
    /// `start_of_beat`.
    StartOfBeat,
    /// `recompute_if`.
    RecomputeIf,
    /// `dangerous`.
    Dangerous,
    /// `is_generation`.
    IsGeneration,
    /// Not a library function: a time series alias, else an error.
    Missing,
}

/// The `Math` functions exposed as `_name(v)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MathFn {
    /// sin
    Sin,
    /// cos
    Cos,
    /// tan
    Tan,
    /// asin
    Asin,
    /// acos
    Acos,
    /// atan
    Atan,
    /// log
    Log,
    /// exp
    Exp,
    /// sqrt
    Sqrt,
    /// cbrt
    Cbrt,
    /// clz32
    Clz32,
    /// expm1
    Expm1,
    /// log1p
    Log1p,
    /// log10
    Log10,
    /// log2
    Log2,
    /// sign
    Sign,
    /// sinh
    Sinh,
    /// cosh
    Cosh,
    /// tanh
    Tanh,
    /// asinh
    Asinh,
    /// acosh
    Acosh,
    /// atanh
    Atanh,
}

impl MathFn {
    /// Applies the function.
    pub fn apply(self, v: f64) -> f64 {
        use super::jsnum::{js_clz32, js_sign};
        match self {
            Self::Sin => v.sin(),
            Self::Cos => v.cos(),
            Self::Tan => v.tan(),
            Self::Asin => v.asin(),
            Self::Acos => v.acos(),
            Self::Atan => v.atan(),
            Self::Log => v.ln(),
            Self::Exp => v.exp(),
            Self::Sqrt => v.sqrt(),
            Self::Cbrt => v.cbrt(),
            Self::Clz32 => js_clz32(v),
            Self::Expm1 => v.exp_m1(),
            Self::Log1p => v.ln_1p(),
            Self::Log10 => v.log10(),
            Self::Log2 => v.log2(),
            Self::Sign => js_sign(v),
            Self::Sinh => v.sinh(),
            Self::Cosh => v.cosh(),
            Self::Tanh => v.tanh(),
            Self::Asinh => v.asinh(),
            Self::Acosh => v.acosh(),
            Self::Atanh => v.atanh(),
        }
    }
}

/// A library function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FuncDef {
    /// Name as called.
    pub name: &'static str,
    /// Description (part of the error messages).
    pub description: &'static str,
    /// Arguments in evaluation order.
    pub args: &'static [ArgDef],
    /// What it computes.
    pub kind: Kind,
}

const fn num(names: &'static [&'static str], default: f64) -> ArgDef {
    ArgDef {
        names,
        ty: ArgType::Number,
        required: false,
        default: ArgDefault::Num(default),
    }
}
const fn req(names: &'static [&'static str]) -> ArgDef {
    ArgDef {
        names,
        ty: ArgType::Number,
        required: true,
        default: ArgDefault::Num(0.0),
    }
}
const fn req_str(names: &'static [&'static str]) -> ArgDef {
    ArgDef {
        names,
        ty: ArgType::String,
        required: true,
        default: ArgDefault::Str(""),
    }
}
const fn opt(names: &'static [&'static str], ty: ArgType, default: ArgDefault) -> ArgDef {
    ArgDef {
        names,
        ty,
        required: false,
        default,
    }
}

const V: &[ArgDef] = &[req(&["v"])];
const AB: &[ArgDef] = &[req(&["a"]), req(&["b"])];
const VP: &[ArgDef] = &[req(&["v"]), num(&["p"], 0.0)];
const OSC: &[ArgDef] = &[
    req(&["period", "p"]),
    num(&["phase", "ps"], 0.0),
    num(&["amp", "a"], 1.0),
    num(&["centre", "c"], 0.0),
    num(&["limit", "li"], 0.0),
    num(&["pulse", "pw"], 5.0),
];
const MISSING: &[ArgDef] = &[
    num(&["a"], 0.0),
    num(&["b"], 0.0),
    num(&["c"], 0.0),
    num(&["d"], 0.0),
    num(&["e"], 0.0),
    num(&["f"], 0.0),
    num(&["g"], 0.0),
];
const RAND: &[ArgDef] = &[
    num(&["min", "n"], 0.0),
    num(&["max", "x"], 1.0),
    opt(&["seed", "s"], ArgType::Number, ArgDefault::Clock),
    num(&["hold", "h"], 1.0),
];
const NOISE: &[ArgDef] = &[
    num(&["smooth", "sm"], 10.0),
    num(&["min", "n"], 0.0),
    num(&["max", "x"], 1.0),
    opt(&["seed", "s"], ArgType::Number, ArgDefault::Clock),
    num(&["y"], 0.0),
];
const VIBE: &[ArgDef] = &[
    num(&["x1"], 0.5),
    num(&["y1"], 0.0),
    num(&["x2"], 0.5),
    num(&["y2"], 1.0),
    num(&["offset", "os"], 2.0),
    num(&["pmin"], 1.0),
    num(&["pmax"], 20.0),
    num(&["p"], f64::NAN),
    num(&["min"], 0.0),
    num(&["max"], 1.0),
    opt(&["seed", "s"], ArgType::Number, ArgDefault::Clock),
    opt(&["curve", "c"], ArgType::String, ArgDefault::Str("")),
];
const BEZ: &[ArgDef] = &[
    num(&["x1"], 0.5),
    num(&["y1"], 0.0),
    num(&["x2"], 0.5),
    num(&["y2"], 1.0),
    opt(
        &["from", "start", "s"],
        ArgType::Number,
        ArgDefault::ActiveValue,
    ),
    opt(&["to", "end", "t"], ArgType::Number, ArgDefault::NextValue),
    opt(&["span", "in", "s"], ArgType::Number, ArgDefault::NextSpan),
    num(&["offset", "os"], 2.0),
    opt(&["curve", "c"], ArgType::String, ArgDefault::Str("")),
    num(&["d", "delta"], 0.0),
];
const SLIDE: &[ArgDef] = &[
    opt(
        &["from", "start", "s"],
        ArgType::Number,
        ArgDefault::ActiveValue,
    ),
    opt(&["to", "end", "t"], ArgType::Number, ArgDefault::NextValue),
    opt(&["span", "in", "s"], ArgType::Number, ArgDefault::NextSpan),
    num(&["offset", "os"], 2.0),
];
const POSNEG: &[ArgDef] = &[
    req_str(&["term", "t"]),
    req(&["weight", "w"]),
    num(&["posweight", "pw"], f64::NAN),
    num(&["negweight", "nw"], f64::NAN),
];
const REGEX: &[ArgDef] = &[req_str(&["regex", "r"])];
const REGEX_STR_DEFAULT: &[ArgDef] = &[
    req_str(&["regex", "r"]),
    opt(&["default", "d"], ArgType::String, ArgDefault::Num(-1.0)),
];
const REGEX_DEFAULT: &[ArgDef] = &[req_str(&["regex", "r"]), num(&["default", "d"], -1.0)];
const COMPUTED_AT: &[ArgDef] = &[
    opt(&["f"], ArgType::Number, ArgDefault::ActiveKeyframe),
    opt(&["d"], ArgType::Number, ArgDefault::FieldDefault),
];
const START_OF_BEAT: &[ArgDef] = &[
    opt(&["f"], ArgType::Number, ArgDefault::Frame),
    opt(&["round", "r"], ArgType::String, ArgDefault::Str("r")),
];
const RECOMPUTE_IF: &[ArgDef] = &[
    req(&["if"]),
    req(&["compute", "c"]),
    num(&["default", "d"], -1.0),
];
const DANGEROUS: &[ArgDef] = &[
    ArgDef {
        names: &["name", "n"],
        ty: ArgType::String,
        required: true,
        default: ArgDefault::Num(0.0),
    },
    opt(&["frame", "f"], ArgType::Number, ArgDefault::Frame),
];
const FRAME_ARG: &[ArgDef] = &[opt(&["f"], ArgType::Number, ArgDefault::Frame)];

const fn f(
    name: &'static str,
    description: &'static str,
    args: &'static [ArgDef],
    kind: Kind,
) -> FuncDef {
    FuncDef {
        name,
        description,
        args,
        kind,
    }
}

const fn m(name: &'static str, description: &'static str, fun: MathFn) -> FuncDef {
    f(name, description, V, Kind::Math(fun))
}

const BEZ_DESC: &str = "returns position on bezier curve for the current frame. x1, y1, x2 and y2 behave as with https://cubic-bezier.com/.";
const NOISE_DESC: &str = "Simplex noise function (smooth random)";
const PREV_DESC: &str =
    "Returns the frame number of the last keyframe that matched the regex, or -1 if none.";

/// The function called when a name is not in [`LIBRARY`].
pub const MISSING_FUNCTION: FuncDef = f(
    "missingFunction",
    "invoked when function is not found",
    MISSING,
    Kind::Missing,
);

/// Every library function.
pub const LIBRARY: &[FuncDef] = &[
    f(
        "min",
        "returns the smaller of 2 arguments 'a' and 'b'",
        AB,
        Kind::Min,
    ),
    f(
        "max",
        "returns the greater of 2 arguments 'a' and 'b'",
        AB,
        Kind::Max,
    ),
    f("abs", "returns absolute value of 'v'", V, Kind::Abs),
    f(
        "round",
        "returns 'v' rounded to precision 'p' decimal places (default 0)",
        VP,
        Kind::Round,
    ),
    f(
        "floor",
        "returns 'v' rounded down to precision 'p' decimal places (default 0)",
        VP,
        Kind::Floor,
    ),
    f(
        "ceil",
        "returns 'v' rounded up to precision 'p' decimal places (default 0)",
        VP,
        Kind::Ceil,
    ),
    m("_sin", "Equivalent to Math.sin(v)", MathFn::Sin),
    m("_cos", "Equivalent to Math.cos(v)", MathFn::Cos),
    m("_tan", "Equivalent to Math.tan(v)", MathFn::Tan),
    m("_asin", "Equivalent to Math.asin(v)", MathFn::Asin),
    m("_acos", "Equivalent to Math.acos(v)", MathFn::Acos),
    m("_atan", "Equivalent to Math.atan(v)", MathFn::Atan),
    m("_log", "Equivalent to Math.log(v)", MathFn::Log),
    m("_exp", "Equivalent to Math.exp(v)", MathFn::Exp),
    m("_sqrt", "Equivalent to Math.sqrt(v)", MathFn::Sqrt),
    m("_cbrt", "Equivalent to Math.cbrt(v)", MathFn::Cbrt),
    m("_clz32", "Equivalent to Math.clz32(v)", MathFn::Clz32),
    m("_expm1", "Equivalent to Math.expm1(v)", MathFn::Expm1),
    m("_log1p", "Equivalent to Math.log1p(v)", MathFn::Log1p),
    m("_log10", "Equivalent to Math.log10(v)", MathFn::Log10),
    m("_log2", "Equivalent to Math.log2(v)", MathFn::Log2),
    m("_sign", "Equivalent to Math.sign(v)", MathFn::Sign),
    m("_sinh", "Equivalent to Math.sinh(v)", MathFn::Sinh),
    m("_cosh", "Equivalent to Math.cosh(v)", MathFn::Cosh),
    m("_tanh", "Equivalent to Math.tanh(v)", MathFn::Tanh),
    m("_asinh", "Equivalent to Math.asinh(v)", MathFn::Asinh),
    m("_acosh", "Equivalent to Math.acosh(v)", MathFn::Acosh),
    m("_atanh", "Equivalent to Math.atanh(v)", MathFn::Atanh),
    f("sin", "returns position on a sine wave", OSC, Kind::Sin),
    f("sq", "returns position on a square wave", OSC, Kind::Sq),
    f("saw", "returns position on a sawtooth wave", OSC, Kind::Saw),
    f("tri", "returns position on a triangle wave", OSC, Kind::Tri),
    f(
        "pulse",
        "returns position on a pulse wave",
        OSC,
        Kind::Pulse,
    ),
    f(
        "rand",
        "returns a random number between 'min' and 'max' (default 0 and 1), using seed 's' (default current time using high precison timer), holding that value for 'h' frames (default 1)",
        RAND,
        Kind::Rand,
    ),
    f("smrand", NOISE_DESC, NOISE, Kind::Smrand),
    f("perlin", NOISE_DESC, NOISE, Kind::Perlin),
    f("vibe", BEZ_DESC, VIBE, Kind::Vibe),
    f("bez", BEZ_DESC, BEZ, Kind::Bez),
    f(
        "slide",
        "returns position on a linear slide with configurable starting and ending points.",
        SLIDE,
        Kind::Slide,
    ),
    f(
        "posneg",
        "Weight term, and move to positive prompt if weigth is positive, negative prompt otherwise.",
        POSNEG,
        Kind::Posneg,
    ),
    f(
        "posneg_lora",
        "Weight lora, and move to positive prompt if weigth is positive, negative prompt otherwise.",
        POSNEG,
        Kind::PosnegLora,
    ),
    f(
        "info_match",
        "Returns 1 if the info label of the current keyframe matches the supplied regex, 0 otherwise.",
        REGEX,
        Kind::InfoMatch,
    ),
    f(
        "info_match_count",
        "Returns the number of keyframes that have info labels that matched the supplied regex so far.",
        REGEX,
        Kind::InfoMatchCount,
    ),
    f(
        "info_match_prev",
        PREV_DESC,
        REGEX_STR_DEFAULT,
        Kind::InfoMatchPrev,
    ),
    f(
        "info_match_last",
        PREV_DESC,
        REGEX_STR_DEFAULT,
        Kind::InfoMatchPrev,
    ),
    f(
        "info_match_next",
        "Returns the frame number of the next keyframe that matched the regex, or -1 if none.",
        REGEX_DEFAULT,
        Kind::InfoMatchNext,
    ),
    f(
        "info_match_gap",
        "Returns the number of frames between the previous and next match (equivalent to `info_match_next()-info_match_prev()`), or `-1` if not between matches.",
        REGEX_DEFAULT,
        Kind::InfoMatchGap,
    ),
    f(
        "info_match_progress",
        "Returns a number between 0 and 1 reprenting how far the current frame is along the gap between (equivalent to `(f-info_match_prev()/info_match_gap())`, or `-1` if not between matches.",
        REGEX_DEFAULT,
        Kind::InfoMatchProgress,
    ),
    f(
        "info_match_since",
        "Returns the number of frames since the previous keyframe that matched the regex, or an overridable fallback defaulting to `-1` if no next match. Equivalent to `f-info_match_prev()`.",
        REGEX_DEFAULT,
        Kind::InfoMatchSince,
    ),
    f(
        "info_match_until",
        "Returns the number of frames until the next keyframe that matches the regex, or an overridable fallback defaulting to `-1` if no next match. Equivalent to `info_match_next()-f`.",
        REGEX_DEFAULT,
        Kind::InfoMatchUntil,
    ),
    f(
        "f2b",
        "Converts a frame number to a beat position or number of beats.",
        V,
        Kind::F2b,
    ),
    f(
        "f2s",
        "Converts a frame number to a second position or number of seconds.",
        V,
        Kind::F2s,
    ),
    f("b2f", "Converts a number of beats to frames", V, Kind::B2f),
    f(
        "s2f",
        "Converts a frame number to a second position or number of second.",
        V,
        Kind::S2f,
    ),
    f(
        "computed_at",
        "Get the value computed for this field at a given frame.",
        COMPUTED_AT,
        Kind::ComputedAt,
    ),
    f(
        "start_of_beat",
        "Get the frame number of the start of the beat at the given frame.",
        START_OF_BEAT,
        Kind::StartOfBeat,
    ),
    f(
        "recompute_if",
        "If the supplied condition is true, return the second param, else return the value of the second param when condition was last true. If condition is false and has never been true, return -1 or overridden default.",
        RECOMPUTE_IF,
        Kind::RecomputeIf,
    ),
    f(
        "dangerous",
        "Get value of a field at a given frame, IF it has already been calculated, else -1. WARNING: there's no guarantee of field computation ordering, and there's no protection from of cyclical references.",
        DANGEROUS,
        Kind::Dangerous,
    ),
    f(
        "is_generation",
        "Returns 1 if the supplied frame is a generation frame, and 0 if it's a cadence frame",
        FRAME_ARG,
        Kind::IsGeneration,
    ),
];

/// The library function called `name`, or [`MISSING_FUNCTION`].
pub fn lookup(name: &str) -> &'static FuncDef {
    LIBRARY
        .iter()
        .find(|d| d.name == name)
        .unwrap_or(&MISSING_FUNCTION)
}
