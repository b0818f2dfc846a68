//! "Pick frame by slice": Python's `start:stop:step` over the video's frames (before padding);
//! a single `n` means `:n`.

use serde::{Deserialize, Serialize};

use super::TravelError;

/// A Python slice; `None` parts take Python's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    /// First index (negative: from the end).
    pub start: Option<i64>,
    /// End index, exclusive (negative: from the end).
    pub stop: Option<i64>,
    /// Step (not 0; negative walks backwards).
    pub step: Option<i64>,
}

impl Slice {
    /// Reads `start:stop:step` (each part optional), or `n` for `:n`; empty text is no slice.
    pub fn parse(text: &str) -> Result<Option<Self>, TravelError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let part = |p: &str| -> Result<Option<i64>, TravelError> {
            let p = p.trim();
            if p.is_empty() {
                return Ok(None);
            }
            p.parse()
                .map(Some)
                .map_err(|_| TravelError::Slice(format!("{p:?} in {text:?} is not a whole number")))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let slice = match parts.as_slice() {
            [n] => Self {
                stop: part(n)?,
                ..Self::default()
            },
            [a, b] => Self {
                start: part(a)?,
                stop: part(b)?,
                step: None,
            },
            [a, b, c] => Self {
                start: part(a)?,
                stop: part(b)?,
                step: part(c)?,
            },
            _ => {
                return Err(TravelError::Slice(format!(
                    "{text:?}: use start:stop:step (e.g. ::2 or :-1)"
                )));
            }
        };
        if slice.step == Some(0) {
            return Err(TravelError::Slice("the step must not be 0".into()));
        }
        Ok(Some(slice))
    }

    /// The indices of a list of `len` items that the slice picks, in order (Python semantics).
    pub fn indices(&self, len: usize) -> Vec<usize> {
        let n = i64::try_from(len).unwrap_or(i64::MAX);
        let step = self.step.unwrap_or(1);
        let clamp = |v: Option<i64>, default: i64, low: i64, high: i64| match v {
            None => default,
            Some(v) if v < 0 => (v + n).max(low),
            Some(v) => v.min(high),
        };
        let mut out = Vec::new();
        if step > 0 {
            let (start, stop) = (clamp(self.start, 0, 0, n), clamp(self.stop, n, 0, n));
            let mut i = start;
            while i < stop {
                out.extend(usize::try_from(i).ok());
                let Some(next) = i.checked_add(step) else {
                    break;
                };
                i = next;
            }
        } else {
            let start = clamp(self.start, n - 1, -1, n - 1);
            let stop = clamp(self.stop, -1, -1, n - 1);
            let mut i = start;
            while i > stop {
                out.extend(usize::try_from(i).ok());
                let Some(next) = i.checked_add(step) else {
                    break;
                };
                i = next;
            }
        }
        out
    }

    /// As written: `start:stop:step` with empty parts left out.
    pub fn text(&self) -> String {
        let p = |v: Option<i64>| v.map_or_else(String::new, |v| v.to_string());
        match self.step {
            Some(step) => format!("{}:{}:{step}", p(self.start), p(self.stop)),
            None => format!("{}:{}", p(self.start), p(self.stop)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(spec: &str, len: usize) -> Vec<usize> {
        Slice::parse(spec).unwrap().unwrap().indices(len)
    }

    #[test]
    fn python_slices() {
        // Values checked against Python's list(range(n))[slice].
        assert_eq!(pick("::2", 7), [0, 2, 4, 6]);
        assert_eq!(pick(":-1", 5), [0, 1, 2, 3]);
        assert_eq!(pick("3", 10), [0, 1, 2]);
        assert_eq!(pick("-3:", 5), [2, 3, 4]);
        assert_eq!(pick("::-1", 4), [3, 2, 1, 0]);
        assert_eq!(pick("1:100:3", 8), [1, 4, 7]);
        assert_eq!(pick("-100:2", 5), [0, 1]);
        assert_eq!(pick("4:1:-2", 6), [4, 2]);
        assert_eq!(pick("10:", 3), Vec::<usize>::new());
        assert_eq!(Slice::parse("  ").unwrap(), None);
        assert!(Slice::parse("::0").is_err());
        assert!(Slice::parse("a:b").is_err());
        assert!(Slice::parse("1:2:3:4").is_err());
        assert_eq!(Slice::parse("1::2").unwrap().unwrap().text(), "1::2");
        assert_eq!(Slice::parse("5").unwrap().unwrap().text(), ":5");
        // Steps past the end of the index type stop the walk instead of overflowing.
        assert_eq!(pick("1::9223372036854775807", 5), [1]);
        assert_eq!(pick(":-2:-9223372036854775808", 5), [4]);
    }
}
