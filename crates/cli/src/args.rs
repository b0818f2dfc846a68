//! A small `--flag value` reader with messages that name the flag.

use std::collections::BTreeMap;

/// Parsed `--key value` pairs and bare `--switch`es.
#[derive(Debug, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    /// Reads `args`; every flag takes a value except those in `switches`.
    pub fn parse(args: &[String], switches: &[&str]) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(key) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument \"{arg}\""));
            };
            let value = if switches.contains(&key) {
                "true".to_owned()
            } else {
                it.next()
                    .ok_or_else(|| format!("--{key} needs a value"))?
                    .clone()
            };
            values.insert(key.to_owned(), value);
        }
        Ok(Self { values })
    }

    /// A string value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A required string value.
    pub fn required(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| format!("--{key} is required"))
    }

    /// A parsed value, or `default` when absent.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: cannot read \"{v}\"")),
        }
    }

    /// Adds `defaults` for the keys not given (a switch is given by the value `"true"`).
    pub fn with_defaults(mut self, defaults: Vec<(&str, String)>) -> Self {
        for (key, value) in defaults {
            self.values.entry(key.to_owned()).or_insert(value);
        }
        self
    }

    /// Keys not in `known`, for a clear error.
    pub fn unknown(&self, known: &[&str]) -> Option<String> {
        self.values
            .keys()
            .find(|k| !known.contains(&k.as_str()))
            .map(|k| format!("unknown option --{k}"))
    }
}

/// `WxH` → `(width, height)`.
pub fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("--size: expected WxH, got \"{text}\""))?;
    let w = w
        .trim()
        .parse()
        .map_err(|_| format!("--size: bad width \"{w}\""))?;
    let h = h
        .trim()
        .parse()
        .map_err(|_| format!("--size: bad height \"{h}\""))?;
    Ok((w, h))
}
