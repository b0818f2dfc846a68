//! Python text semantics the original tools depend on: `str.isspace`, the `re` classes `\s`, `\w`
//! and `\d` (Unicode 14.0, as in CPython 3.11), `float()` / `int()` parsing and `repr(float)`.
//!
//! The tables below were computed with CPython 3.11's `unicodedata` (facts about Unicode, not code).

/// First code point of every run of ten Unicode decimal digits (category Nd), Unicode 14.0.
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// Ranges where Rust's `char::is_alphanumeric` is true but Python's `\w` is false (combining
/// marks with the Other_Alphabetic property, and characters newer than Unicode 14.0).
const NOT_PYTHON_WORD: &[(u32, u32)] = &[
    (0x345, 0x345),
    (0x363, 0x36F),
    (0x5B0, 0x5BD),
    (0x5BF, 0x5BF),
    (0x5C1, 0x5C2),
    (0x5C4, 0x5C5),
    (0x5C7, 0x5C7),
    (0x610, 0x61A),
    (0x64B, 0x657),
    (0x659, 0x65F),
    (0x670, 0x670),
    (0x6D6, 0x6DC),
    (0x6E1, 0x6E4),
    (0x6E7, 0x6E8),
    (0x6ED, 0x6ED),
    (0x711, 0x711),
    (0x730, 0x73F),
    (0x7A6, 0x7B0),
    (0x816, 0x817),
    (0x81B, 0x823),
    (0x825, 0x827),
    (0x829, 0x82C),
    (0x88F, 0x88F),
    (0x897, 0x897),
    (0x8D4, 0x8DF),
    (0x8E3, 0x8E9),
    (0x8F0, 0x903),
    (0x93A, 0x93B),
    (0x93E, 0x94C),
    (0x94E, 0x94F),
    (0x955, 0x957),
    (0x962, 0x963),
    (0x981, 0x983),
    (0x9BE, 0x9C4),
    (0x9C7, 0x9C8),
    (0x9CB, 0x9CC),
    (0x9D7, 0x9D7),
    (0x9E2, 0x9E3),
    (0xA01, 0xA03),
    (0xA3E, 0xA42),
    (0xA47, 0xA48),
    (0xA4B, 0xA4C),
    (0xA51, 0xA51),
    (0xA70, 0xA71),
    (0xA75, 0xA75),
    (0xA81, 0xA83),
    (0xABE, 0xAC5),
    (0xAC7, 0xAC9),
    (0xACB, 0xACC),
    (0xAE2, 0xAE3),
    (0xAFA, 0xAFC),
    (0xB01, 0xB03),
    (0xB3E, 0xB44),
    (0xB47, 0xB48),
    (0xB4B, 0xB4C),
    (0xB56, 0xB57),
    (0xB62, 0xB63),
    (0xB82, 0xB82),
    (0xBBE, 0xBC2),
    (0xBC6, 0xBC8),
    (0xBCA, 0xBCC),
    (0xBD7, 0xBD7),
    (0xC00, 0xC04),
    (0xC3E, 0xC44),
    (0xC46, 0xC48),
    (0xC4A, 0xC4C),
    (0xC55, 0xC56),
    (0xC5C, 0xC5C),
    (0xC62, 0xC63),
    (0xC81, 0xC83),
    (0xCBE, 0xCC4),
    (0xCC6, 0xCC8),
    (0xCCA, 0xCCC),
    (0xCD5, 0xCD6),
    (0xCDC, 0xCDC),
    (0xCE2, 0xCE3),
    (0xCF3, 0xCF3),
    (0xD00, 0xD03),
    (0xD3E, 0xD44),
    (0xD46, 0xD48),
    (0xD4A, 0xD4C),
    (0xD57, 0xD57),
    (0xD62, 0xD63),
    (0xD81, 0xD83),
    (0xDCF, 0xDD4),
    (0xDD6, 0xDD6),
    (0xDD8, 0xDDF),
    (0xDF2, 0xDF3),
    (0xE31, 0xE31),
    (0xE34, 0xE3A),
    (0xE4D, 0xE4D),
    (0xEB1, 0xEB1),
    (0xEB4, 0xEB9),
    (0xEBB, 0xEBC),
    (0xECD, 0xECD),
    (0xF71, 0xF83),
    (0xF8D, 0xF97),
    (0xF99, 0xFBC),
    (0x102B, 0x1036),
    (0x1038, 0x1038),
    (0x103B, 0x103E),
    (0x1056, 0x1059),
    (0x105E, 0x1060),
    (0x1062, 0x1064),
    (0x1067, 0x106D),
    (0x1071, 0x1074),
    (0x1082, 0x108D),
    (0x108F, 0x108F),
    (0x109A, 0x109D),
    (0x1712, 0x1713),
    (0x1732, 0x1733),
    (0x1752, 0x1753),
    (0x1772, 0x1773),
    (0x17B6, 0x17C8),
    (0x1885, 0x1886),
    (0x18A9, 0x18A9),
    (0x1920, 0x192B),
    (0x1930, 0x1938),
    (0x1A17, 0x1A1B),
    (0x1A55, 0x1A5E),
    (0x1A61, 0x1A74),
    (0x1ABF, 0x1AC0),
    (0x1ACC, 0x1ACE),
    (0x1B00, 0x1B04),
    (0x1B35, 0x1B43),
    (0x1B80, 0x1B82),
    (0x1BA1, 0x1BA9),
    (0x1BAC, 0x1BAD),
    (0x1BE7, 0x1BF1),
    (0x1C24, 0x1C36),
    (0x1C89, 0x1C8A),
    (0x1DD3, 0x1DF4),
    (0x24B6, 0x24E9),
    (0x2DE0, 0x2DFF),
    (0xA674, 0xA67B),
    (0xA69E, 0xA69F),
    (0xA7CB, 0xA7CF),
    (0xA7D2, 0xA7D2),
    (0xA7D4, 0xA7D4),
    (0xA7DA, 0xA7DC),
    (0xA7F1, 0xA7F1),
    (0xA802, 0xA802),
    (0xA80B, 0xA80B),
    (0xA823, 0xA827),
    (0xA880, 0xA881),
    (0xA8B4, 0xA8C3),
    (0xA8C5, 0xA8C5),
    (0xA8FF, 0xA8FF),
    (0xA926, 0xA92A),
    (0xA947, 0xA952),
    (0xA980, 0xA983),
    (0xA9B4, 0xA9BF),
    (0xA9E5, 0xA9E5),
    (0xAA29, 0xAA36),
    (0xAA43, 0xAA43),
    (0xAA4C, 0xAA4D),
    (0xAA7B, 0xAA7D),
    (0xAAB0, 0xAAB0),
    (0xAAB2, 0xAAB4),
    (0xAAB7, 0xAAB8),
    (0xAABE, 0xAABE),
    (0xAAEB, 0xAAEF),
    (0xAAF5, 0xAAF5),
    (0xABE3, 0xABEA),
    (0xFB1E, 0xFB1E),
    (0x10376, 0x1037A),
    (0x105C0, 0x105F3),
    (0x10940, 0x10959),
    (0x10A01, 0x10A03),
    (0x10A05, 0x10A06),
    (0x10A0C, 0x10A0F),
    (0x10D24, 0x10D27),
    (0x10D40, 0x10D65),
    (0x10D69, 0x10D69),
    (0x10D6F, 0x10D85),
    (0x10EAB, 0x10EAC),
    (0x10EC2, 0x10EC7),
    (0x10EFA, 0x10EFC),
    (0x11000, 0x11002),
    (0x11038, 0x11045),
    (0x11073, 0x11074),
    (0x11080, 0x11082),
    (0x110B0, 0x110B8),
    (0x110C2, 0x110C2),
    (0x11100, 0x11102),
    (0x11127, 0x11132),
    (0x11145, 0x11146),
    (0x11180, 0x11182),
    (0x111B3, 0x111BF),
    (0x111CE, 0x111CF),
    (0x1122C, 0x11234),
    (0x11237, 0x11237),
    (0x1123E, 0x11241),
    (0x112DF, 0x112E8),
    (0x11300, 0x11303),
    (0x1133E, 0x11344),
    (0x11347, 0x11348),
    (0x1134B, 0x1134C),
    (0x11357, 0x11357),
    (0x11362, 0x11363),
    (0x11380, 0x11389),
    (0x1138B, 0x1138B),
    (0x1138E, 0x1138E),
    (0x11390, 0x113B5),
    (0x113B7, 0x113C0),
    (0x113C2, 0x113C2),
    (0x113C5, 0x113C5),
    (0x113C7, 0x113CA),
    (0x113CC, 0x113CD),
    (0x113D1, 0x113D1),
    (0x113D3, 0x113D3),
    (0x11435, 0x11441),
    (0x11443, 0x11445),
    (0x114B0, 0x114C1),
    (0x115AF, 0x115B5),
    (0x115B8, 0x115BE),
    (0x115DC, 0x115DD),
    (0x11630, 0x1163E),
    (0x11640, 0x11640),
    (0x116AB, 0x116B5),
    (0x116D0, 0x116E3),
    (0x1171D, 0x1172A),
    (0x1182C, 0x11838),
    (0x11930, 0x11935),
    (0x11937, 0x11938),
    (0x1193B, 0x1193C),
    (0x11940, 0x11940),
    (0x11942, 0x11942),
    (0x119D1, 0x119D7),
    (0x119DA, 0x119DF),
    (0x119E4, 0x119E4),
    (0x11A01, 0x11A0A),
    (0x11A35, 0x11A39),
    (0x11A3B, 0x11A3E),
    (0x11A51, 0x11A5B),
    (0x11A8A, 0x11A97),
    (0x11B60, 0x11B67),
    (0x11BC0, 0x11BE0),
    (0x11BF0, 0x11BF9),
    (0x11C2F, 0x11C36),
    (0x11C38, 0x11C3E),
    (0x11C92, 0x11CA7),
    (0x11CA9, 0x11CB6),
    (0x11D31, 0x11D36),
    (0x11D3A, 0x11D3A),
    (0x11D3C, 0x11D3D),
    (0x11D3F, 0x11D41),
    (0x11D43, 0x11D43),
    (0x11D47, 0x11D47),
    (0x11D8A, 0x11D8E),
    (0x11D90, 0x11D91),
    (0x11D93, 0x11D96),
    (0x11DB0, 0x11DDB),
    (0x11DE0, 0x11DE9),
    (0x11EF3, 0x11EF6),
    (0x11F00, 0x11F10),
    (0x11F12, 0x11F3A),
    (0x11F3E, 0x11F40),
    (0x11F50, 0x11F59),
    (0x1342F, 0x1342F),
    (0x13441, 0x13446),
    (0x13460, 0x143FA),
    (0x16100, 0x1612E),
    (0x16130, 0x16139),
    (0x16D40, 0x16D6C),
    (0x16D70, 0x16D79),
    (0x16EA0, 0x16EB8),
    (0x16EBB, 0x16ED3),
    (0x16F4F, 0x16F4F),
    (0x16F51, 0x16F87),
    (0x16F8F, 0x16F92),
    (0x16FF0, 0x16FF6),
    (0x187F8, 0x187FF),
    (0x18CFF, 0x18CFF),
    (0x18D09, 0x18D1E),
    (0x18D80, 0x18DF2),
    (0x1B132, 0x1B132),
    (0x1B155, 0x1B155),
    (0x1BC9E, 0x1BC9E),
    (0x1CCF0, 0x1CCF9),
    (0x1D2C0, 0x1D2D3),
    (0x1DF25, 0x1DF2A),
    (0x1E000, 0x1E006),
    (0x1E008, 0x1E018),
    (0x1E01B, 0x1E021),
    (0x1E023, 0x1E024),
    (0x1E026, 0x1E02A),
    (0x1E030, 0x1E06D),
    (0x1E08F, 0x1E08F),
    (0x1E4D0, 0x1E4EB),
    (0x1E4F0, 0x1E4F9),
    (0x1E5D0, 0x1E5ED),
    (0x1E5F0, 0x1E5FA),
    (0x1E6C0, 0x1E6DE),
    (0x1E6E0, 0x1E6F5),
    (0x1E6FE, 0x1E6FF),
    (0x1E947, 0x1E947),
    (0x1F130, 0x1F149),
    (0x1F150, 0x1F169),
    (0x1F170, 0x1F189),
    (0x2B739, 0x2B73F),
    (0x2CEA2, 0x2CEAD),
    (0x2EBF0, 0x2EE5D),
    (0x31350, 0x33479),
];

/// Python's `str.isspace()`, which is also what `re`'s `\s` matches in a `str` pattern.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `re`'s `\w` in a `str` pattern: alphanumeric (Unicode 14.0) or `_`.
pub(crate) fn is_word(c: char) -> bool {
    if c == '_' {
        return true;
    }
    if !c.is_alphanumeric() {
        return false;
    }
    let cp = u32::from(c);
    let idx = NOT_PYTHON_WORD.partition_point(|&(_, hi)| hi < cp);
    !NOT_PYTHON_WORD
        .get(idx)
        .is_some_and(|&(lo, hi)| lo <= cp && cp <= hi)
}

/// The value of a Unicode decimal digit (Python `re`'s `\d`), if `c` is one.
pub(crate) fn decimal_value(c: char) -> Option<u32> {
    let cp = u32::from(c);
    let idx = DECIMAL_ZEROS.partition_point(|&zero| zero <= cp);
    let zero = *DECIMAL_ZEROS.get(idx.checked_sub(1)?)?;
    (cp - zero < 10).then_some(cp - zero)
}

/// Python `re`'s `\d`.
pub(crate) fn is_decimal(c: char) -> bool {
    decimal_value(c).is_some()
}

/// Python's `str.strip()` with no argument.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Maps Unicode decimal digits to ASCII, as `float()` and `int()` do before parsing.
fn ascii_digits(s: &str) -> String {
    s.chars()
        .map(|c| match decimal_value(c) {
            Some(v) if !c.is_ascii_digit() => char::from_digit(v, 10).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Removes `_` separators that Python accepts between two digits; `None` if one is misplaced.
fn without_digit_separators(s: &str) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let before = i.checked_sub(1).and_then(|j| chars.get(j));
        let after = chars.get(i + 1);
        if !(before.is_some_and(char::is_ascii_digit) && after.is_some_and(char::is_ascii_digit)) {
            return None;
        }
    }
    Some(out)
}

/// Counts the ASCII digits of `b` from `i`.
fn digit_run(b: &[u8], i: usize) -> usize {
    b.get(i..).map_or(0, |rest| {
        rest.iter().take_while(|c| c.is_ascii_digit()).count()
    })
}

/// Whether the unsigned `s` is a decimal literal `float()` accepts (digits, one point, optional
/// exponent).
fn is_float_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = digit_run(b, i);
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        frac_digits = digit_run(b, i + 1);
        i += 1 + frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        i += usize::from(matches!(b.get(i), Some(b'+' | b'-')));
        let exp_digits = digit_run(b, i);
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == b.len()
}

/// Python's `float(s)` for a `str`: `None` where Python raises `ValueError`.
pub fn parse_float(s: &str) -> Option<f64> {
    let t = without_digit_separators(&ascii_digits(strip(s)))?;
    let (sign, body) = match t.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, t.strip_prefix('+').unwrap_or(&t)),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    if !is_float_literal(body) {
        return None;
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

/// Python's `int(s)` for a `str` (base 10): `None` where Python raises, or where the value does not
/// fit in an `i64` (Python would keep an arbitrarily large integer).
pub fn parse_int(s: &str) -> Option<i64> {
    let t = without_digit_separators(&ascii_digits(strip(s)))?;
    let body = t.strip_prefix(['+', '-']).unwrap_or(&t);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.strip_prefix('+').unwrap_or(&t).parse::<i64>().ok()
}

/// The shortest round-trip digits of a finite, non-zero `|x|` and its decimal exponent, so that
/// `|x| = d1.d2d3… × 10^exp`.
fn shortest_digits(x: f64) -> (String, i32) {
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse::<i32>().unwrap_or(0))
}

/// Places `digits` (d1.d2d3… × 10^exp) in positional notation, with at least one fractional digit.
fn positional(digits: &str, exp: i32) -> String {
    let n = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let point = i64::from(exp) + 1;
    if point <= 0 {
        let zeros = usize::try_from(-point).unwrap_or(0);
        format!("0.{}{digits}", "0".repeat(zeros))
    } else if point >= n {
        let zeros = usize::try_from(point - n).unwrap_or(0);
        format!("{digits}{}.0", "0".repeat(zeros))
    } else {
        let (int_part, frac_part) = digits.split_at(usize::try_from(point).unwrap_or(0));
        format!("{int_part}.{frac_part}")
    }
}

/// Python's spelling of zero, infinities and NaN; `None` for other numbers.
fn special(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("nan")
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" })
    } else if x == 0.0 {
        Some(if x.is_sign_negative() { "-0.0" } else { "0.0" })
    } else {
        None
    }
}

/// Python's `repr(float)` / `str(float)`: shortest round-trip digits, scientific notation when
/// the decimal exponent is below -4 or at least 16 (`1e-05`, `6.103515625e-05`, `1e+16`).
pub fn python_repr(x: f64) -> String {
    if let Some(s) = special(x) {
        return s.to_owned();
    }
    let (digits, exp) = shortest_digits(x);
    let sign = if x < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        return format!("{sign}{}", positional(&digits, exp));
    }
    let mantissa = match digits.split_at_checked(1) {
        Some((first, rest)) if !rest.is_empty() => format!("{first}.{rest}"),
        _ => digits.clone(),
    };
    let exp_sign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mantissa}e{exp_sign}{:02}", exp.unsigned_abs())
}

/// Like [`python_repr`], but never in scientific notation: `0.00001`, `0.00006103515625`.
/// Keyshift writes every weight it generates this way, so A1111's weight syntax (which has no
/// exponent) always reads it back.
pub fn plain_decimal(x: f64) -> String {
    if let Some(s) = special(x) {
        return s.to_owned();
    }
    let (digits, exp) = shortest_digits(x);
    let sign = if x < 0.0 { "-" } else { "" };
    format!("{sign}{}", positional(&digits, exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        let cases = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (0.30000000000000004, "0.30000000000000004"),
            (1e-5, "1e-05"),
            (6.103515625e-05, "6.103515625e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123.456, "123.456"),
            (-2.5e-7, "-2.5e-07"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
        ];
        for (x, want) in cases {
            assert_eq!(python_repr(x), want, "{x}");
        }
    }

    #[test]
    fn plain_never_uses_exponent() {
        assert_eq!(plain_decimal(1e-5), "0.00001");
        assert_eq!(plain_decimal(6.103515625e-05), "0.00006103515625");
        assert_eq!(plain_decimal(1e16), "10000000000000000.0");
        assert_eq!(plain_decimal(-0.25), "-0.25");
        assert_eq!(plain_decimal(7.0), "7.0");
    }

    #[test]
    fn float_parsing_follows_python() {
        assert_eq!(parse_float(" 1.5 "), Some(1.5));
        assert_eq!(parse_float("1_000.5"), Some(1000.5));
        assert_eq!(parse_float("1__0"), None);
        assert_eq!(parse_float("1."), Some(1.0));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("-.5e1"), Some(-5.0));
        assert_eq!(parse_float("１.２"), Some(1.2));
        assert_eq!(parse_float("Infinity"), Some(f64::INFINITY));
        assert!(parse_float("nan").is_some_and(f64::is_nan));
        for bad in [
            "", ".", "1.2.3", "1-2", "e5", "1e", "--1", "0x10", "1 2", "+-1",
        ] {
            assert_eq!(parse_float(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn int_parsing_follows_python() {
        assert_eq!(parse_int(" 42\n"), Some(42));
        assert_eq!(parse_int("-7"), Some(-7));
        assert_eq!(parse_int("+1_000"), Some(1000));
        assert_eq!(parse_int("٣"), Some(3));
        for bad in ["", "1.0", "abc", "1_", "+", "+-1", "99999999999999999999"] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn character_classes() {
        assert!(is_space('\u{1f}') && is_space('\u{3000}') && !is_space('x'));
        assert!(is_word('猫') && is_word('_') && is_word('é') && !is_word('-'));
        assert!(
            !is_word('\u{345}'),
            "a combining mark with Other_Alphabetic is not \\w in Python"
        );
        assert_eq!(decimal_value('٣'), Some(3));
        assert_eq!(decimal_value('９'), Some(9));
        assert_eq!(decimal_value('a'), None);
        assert_eq!(decimal_value('/'), None);
    }
}
