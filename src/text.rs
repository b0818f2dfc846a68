//! Small text helpers the UI's plain types share.

/// `text` with its first letter in upper case.
pub fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A time left as people read it: `42 s`, or `3:05` from a minute on (whole seconds, rounded up).
pub fn duration(seconds: f64) -> String {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative count of seconds"
    )]
    let s = seconds.ceil().max(0.0) as u64;
    if s >= 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn capitals_and_durations() {
        assert_eq!(super::capitalise("über"), "Über");
        assert_eq!(super::capitalise(""), "");
        assert_eq!(super::duration(41.2), "42 s");
        assert_eq!(super::duration(185.0), "3:05");
        assert_eq!(super::duration(-3.0), "0 s");
    }
}
