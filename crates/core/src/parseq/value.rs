//! Values of the interpolation language and JavaScript's operators on them.

use std::cmp::Ordering;
use std::rc::Rc;

use super::jsnum::{js_pow, string_to_number, to_js_string};

/// A value: a number, a string, or `undefined` (which some functions return).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A JS number.
    Num(f64),
    /// A JS string.
    Str(Rc<str>),
    /// JS `undefined`.
    Undefined,
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Self {
        Self::Str(Rc::from(s))
    }

    /// JS `ToNumber`.
    pub fn to_number(&self) -> f64 {
        match self {
            Self::Num(n) => *n,
            Self::Str(s) => string_to_number(s),
            Self::Undefined => f64::NAN,
        }
    }

    /// JS `ToString` appended to `out`.
    pub fn write_js(&self, out: &mut String) {
        match self {
            Self::Num(n) => out.push_str(&to_js_string(*n)),
            Self::Str(s) => out.push_str(s),
            Self::Undefined => out.push_str("undefined"),
        }
    }

    /// JS `ToString`.
    pub fn to_js_string(&self) -> String {
        let mut s = String::new();
        self.write_js(&mut s);
        s
    }

    /// JS `typeof`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Num(_) => "number",
            Self::Str(_) => "string",
            Self::Undefined => "undefined",
        }
    }

    /// JS truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Self::Num(n) => *n != 0.0 && !n.is_nan(),
            Self::Str(s) => !s.is_empty(),
            Self::Undefined => false,
        }
    }

    /// `self > 0` with JS coercion (the language's notion of "true").
    pub fn is_positive(&self) -> bool {
        self.to_number() > 0.0
    }
}

/// JS `a + b`.
pub fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => Value::Num(x + y),
        (Value::Str(_), _) | (_, Value::Str(_)) => {
            let mut s = a.to_js_string();
            b.write_js(&mut s);
            Value::Str(Rc::from(s))
        }
        _ => Value::Num(a.to_number() + b.to_number()),
    }
}

/// The numeric operators (`-`, `*`, `/`, `%`, `**`) after `ToNumber`.
pub fn arith(op: char, a: f64, b: f64) -> f64 {
    match op {
        '-' => a - b,
        '*' => a * b,
        '/' => a / b,
        '%' => a % b,
        _ => js_pow(a, b),
    }
}

/// JS abstract relational comparison `a < b` (None when undefined, i.e. NaN is involved).
fn less_than(a: &Value, b: &Value) -> Option<bool> {
    if let (Value::Str(x), Value::Str(y)) = (a, b) {
        return Some(x.encode_utf16().cmp(y.encode_utf16()) == Ordering::Less);
    }
    let (x, y) = (a.to_number(), b.to_number());
    if x.is_nan() || y.is_nan() {
        None
    } else {
        Some(x < y)
    }
}

/// `<`, `<=`, `>`, `>=` with JS semantics.
pub fn compare(op: &str, a: &Value, b: &Value) -> bool {
    match op {
        "<" => less_than(a, b) == Some(true),
        ">" => less_than(b, a) == Some(true),
        "<=" => less_than(b, a) == Some(false),
        _ => less_than(a, b) == Some(false),
    }
}

/// JS loose equality `a == b`.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Undefined, Value::Undefined) => true,
        (Value::Undefined, _) | (_, Value::Undefined) => false,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ => a.to_number() == b.to_number(),
    }
}
