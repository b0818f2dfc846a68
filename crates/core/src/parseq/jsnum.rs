//! JavaScript number semantics: `Number.prototype.toString`, `toFixed`, `toPrecision`, string to
//! number conversion, `Math.round` and the other places where JS and Rust disagree.

/// The exact decimal expansion of a finite, non-negative `x`: significant digits (no leading
/// zeros, at least one digit) and the decimal exponent of the first digit.
fn exact_digits(x: f64) -> (Vec<u8>, i32) {
    // 1100 fractional digits in scientific form are enough for every f64 (at most 767
    // significant digits), so the expansion is exact.
    let s = format!("{x:.1100e}");
    split_scientific(&s)
}

/// Digits and exponent of a string written by Rust's `{:e}`.
fn split_scientific(s: &str) -> (Vec<u8>, i32) {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    (digits, exp)
}

/// Rounds `digits` (exponent `exp`) to `keep` digits, half up (ties away from zero, as JS does
/// for `toFixed` and `toPrecision`). Returns the digits (exactly `keep`, padded with zeros) and
/// the possibly bumped exponent.
fn round_digits(digits: &[u8], exp: i32, keep: usize) -> (Vec<u8>, i32) {
    let mut out: Vec<u8> = digits.iter().copied().take(keep).collect();
    out.resize(keep, 0);
    let round_up = digits.get(keep).is_some_and(|&d| d >= 5);
    if !round_up {
        return (out, exp);
    }
    for d in out.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return (out, exp);
        }
    }
    // All nines: 999 → 1000 (one digit more; the caller keeps what it needs).
    out.insert(0, 1);
    (out, exp + 1)
}

fn digits_str(d: &[u8]) -> String {
    d.iter().map(|&b| char::from(b'0' + b)).collect()
}

/// `Number.prototype.toString()` (radix 10): the shortest round-trip digits laid out as JS does.
pub fn to_js_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let (digits, exp) = split_scientific(&format!("{:e}", x.abs()));
    let k = digits.len() as i32;
    let n = exp + 1;
    let ds = digits_str(&digits);
    let body = if k <= n && n <= 21 {
        format!("{ds}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &ds[..n as usize], &ds[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{ds}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let esign = if e < 0 { '-' } else { '+' };
        let mant = if k == 1 {
            ds
        } else {
            format!("{}.{}", &ds[..1], &ds[1..])
        };
        format!("{mant}e{esign}{}", e.abs())
    };
    format!("{sign}{body}")
}

/// `Number.prototype.toFixed(digits)` for `digits` in 0..=100.
pub fn to_fixed(x: f64, digits: usize) -> String {
    if !x.is_finite() || x.abs() >= 1e21 {
        return to_js_string(x);
    }
    // Rust's fixed formatting is exact but breaks exact ties to even; JS rounds them up. Only a
    // value whose scaled fraction is near one half can be a tie: those take the exact path.
    let scaled = x.abs() * 10f64.powi(digits as i32);
    if digits <= 20 && scaled < 1e15 && (scaled.fract() - 0.5).abs() > 1e-6 {
        let s = format!("{:.*}", digits, x);
        // JS writes -0.00 for small negatives, as Rust does; only -0 itself differs.
        return if x == 0.0 {
            s.trim_start_matches('-').to_owned()
        } else {
            s
        };
    }
    to_fixed_exact(x, digits)
}

/// `toFixed` from the exact decimal expansion.
fn to_fixed_exact(x: f64, digits: usize) -> String {
    let sign = if x < 0.0 { "-" } else { "" };
    let ax = x.abs();
    let (ds, exp) = if ax == 0.0 {
        (vec![0], 0)
    } else {
        exact_digits(ax)
    };
    // Number of digits kept: integer digits (exp + 1) plus `digits` fractional ones.
    let keep = exp + 1 + digits as i32;
    let (rounded, int_digits) = if keep <= 0 {
        // Everything is below the last kept position: rounds to 0 or to one unit there.
        let up = keep == 0 && ds.first().is_some_and(|&d| d >= 5);
        let mut v = vec![0u8; digits + 1];
        if let (true, Some(last)) = (up, v.last_mut()) {
            *last = 1;
        }
        (v, 1)
    } else {
        let (r, e) = round_digits(&ds, exp, keep as usize);
        let int_digits = (e + 1).max(0) as usize;
        if int_digits == 0 {
            // Leading zeros: the number is below 1.
            let mut v = vec![0u8; (digits + 1).saturating_sub(r.len())];
            v.extend(r);
            (v, 1)
        } else {
            (r, int_digits)
        }
    };
    let s = digits_str(&rounded);
    let (int, frac) = s.split_at(int_digits.min(s.len()));
    if digits == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// `Number.prototype.toPrecision(precision)` for `precision` in 1..=100.
pub fn to_precision(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return to_js_string(x);
    }
    let p = precision.max(1);
    let sign = if x < 0.0 { "-" } else { "" };
    let ax = x.abs();
    let (digits, e) = if ax == 0.0 {
        (vec![0u8; p], 0)
    } else {
        let (ds, exp) = exact_digits(ax);
        let (mut r, e) = round_digits(&ds, exp, p);
        r.truncate(p);
        (r, e)
    };
    let s = digits_str(&digits);
    let body = if e < -6 || e >= p as i32 {
        let mant = if p == 1 {
            s
        } else {
            format!("{}.{}", &s[..1], &s[1..])
        };
        let esign = if e < 0 { '-' } else { '+' };
        format!("{mant}e{esign}{}", e.abs())
    } else if e >= 0 {
        let int_len = (e + 1) as usize;
        if int_len >= p {
            s
        } else {
            format!("{}.{}", &s[..int_len], &s[int_len..])
        }
    } else {
        format!("0.{}{s}", "0".repeat((-e - 1) as usize))
    };
    format!("{sign}{body}")
}

/// JS `ToNumber` of a string: trims JS whitespace; empty is 0; decimal literals with optional
/// sign and exponent, `Infinity`, and `0x`/`0o`/`0b` integers; anything else is NaN.
pub fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let radix = |p: &str, r: u32| -> f64 {
        if p.is_empty() || !p.chars().all(|c| c.is_digit(r)) {
            return f64::NAN;
        }
        p.chars().fold(0.0, |acc, c| {
            acc * f64::from(r) + f64::from(c.to_digit(r).unwrap_or(0))
        })
    };
    let lower = t.get(..2).map(str::to_ascii_lowercase);
    match lower.as_deref() {
        Some("0x") => return radix(&t[2..], 16),
        Some("0o") => return radix(&t[2..], 8),
        Some("0b") => return radix(&t[2..], 2),
        _ => {}
    }
    let (sign, rest) = match t.as_bytes()[0] {
        b'-' => (-1.0, &t[1..]),
        b'+' => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    if rest == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !valid_decimal(rest) {
        return f64::NAN;
    }
    rest.parse::<f64>().map_or(f64::NAN, |v| sign * v)
}

/// `digits[.digits][e[+-]digits]` or `.digits…`, as JS's StrUnsignedDecimalLiteral.
fn valid_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// JS `WhiteSpace` and `LineTerminator` code points (what `String.prototype.trim` removes).
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `String.prototype.trim`.
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// `Math.round`: halves round up (towards +∞); keeps −0.
pub fn js_round(x: f64) -> f64 {
    if !x.is_finite() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let f = x.floor();
    let r = if x - f >= 0.5 { f + 1.0 } else { f };
    if r == 0.0 && x.is_sign_negative() {
        -0.0
    } else {
        r
    }
}

/// `Math.pow` / `**`: like `powf` except that a NaN exponent, or ±1 to an infinite power, is NaN.
pub fn js_pow(base: f64, exp: f64) -> f64 {
    if exp.is_nan() || (base.abs() == 1.0 && exp.is_infinite()) {
        return f64::NAN;
    }
    base.powf(exp)
}

/// `Math.min` of two numbers (NaN wins; −0 is smaller than +0).
pub fn js_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// `Math.max` of two numbers (NaN wins; +0 is larger than −0).
pub fn js_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// `Math.sign`.
pub fn js_sign(x: f64) -> f64 {
    if x.is_nan() || x == 0.0 {
        x
    } else if x > 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// JS `ToInt32`.
pub fn to_int32(x: f64) -> i32 {
    if !x.is_finite() {
        return 0;
    }
    let m = x.trunc().rem_euclid(4_294_967_296.0);
    // `m` is an integer in [0, 2^32); the cast reinterprets it as two's complement.
    (m as u32) as i32
}

/// `Math.clz32`.
pub fn js_clz32(x: f64) -> f64 {
    f64::from((to_int32(x) as u32).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_string_matches_js() {
        for (x, s) in [
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (-2.5, "-2.5"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "0"),
            (100.0, "100"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(to_js_string(x), s, "{x}");
        }
    }

    #[test]
    fn to_fixed_rounds_half_up_on_the_exact_value() {
        assert_eq!(to_fixed(0.5, 0), "1");
        assert_eq!(to_fixed(2.5, 0), "3");
        assert_eq!(to_fixed(1.005, 2), "1.00");
        assert_eq!(to_fixed(0.125, 2), "0.13");
        assert_eq!(to_fixed(0.5, 5), "0.50000");
        assert_eq!(to_fixed(-0.000001, 2), "-0.00");
        assert_eq!(to_fixed(-0.0, 2), "0.00");
        assert_eq!(to_fixed(0.000004, 5), "0.00000");
        assert_eq!(to_fixed(0.000005, 5), "0.00001");
        assert_eq!(to_fixed(9.999999, 5), "10.00000");
        assert_eq!(to_fixed(123.456, 1), "123.5");
        assert_eq!(to_fixed(0.09, 1), "0.1");
        assert_eq!(to_fixed(1e21, 2), "1e+21");
    }

    #[test]
    fn fast_to_fixed_agrees_with_the_exact_expansion() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..4_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let bits = seed >> 11;
            let scale = 10f64.powi((i % 12) - 6);
            let x = (bits as f64 / (1u64 << 53) as f64 - 0.5) * scale;
            for digits in [0, 2, 4, 5] {
                assert_eq!(
                    to_fixed(x, digits),
                    to_fixed_exact(x, digits),
                    "{x} {digits}"
                );
            }
        }
    }

    #[test]
    fn to_precision_matches_js() {
        assert_eq!(to_precision(0.5, 4), "0.5000");
        assert_eq!(to_precision(1.0, 4), "1.000");
        assert_eq!(to_precision(0.0, 4), "0.000");
        assert_eq!(to_precision(1.0 / 3.0, 4), "0.3333");
        assert_eq!(to_precision(0.00001234, 2), "0.000012");
        assert_eq!(to_precision(1e-7, 4), "1.000e-7");
        assert_eq!(to_precision(12345.0, 2), "1.2e+4");
        assert_eq!(to_precision(0.99999, 4), "1.000");
    }

    #[test]
    fn string_to_number_matches_js() {
        assert_eq!(string_to_number(" 12 "), 12.0);
        assert_eq!(string_to_number(""), 0.0);
        assert!(string_to_number("1a").is_nan());
        assert_eq!(string_to_number("0x10"), 16.0);
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(string_to_number(".5"), 0.5);
        assert_eq!(string_to_number("5."), 5.0);
        assert!(string_to_number("inf").is_nan());
        assert!(string_to_number("-0x10").is_nan());
    }

    #[test]
    fn round_is_half_up() {
        assert_eq!(js_round(-2.5), -2.0);
        assert_eq!(js_round(2.5), 3.0);
        assert_eq!(js_round(0.49999999999999994), 0.0);
        assert!(js_round(-0.2).is_sign_negative());
    }
}
