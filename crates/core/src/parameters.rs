//! A1111's "parameters" text, the generation settings stored in its PNGs:
//!
//! ```text
//! a photo of a cat
//! Negative prompt: blurry
//! Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512
//! ```
//!
//! Values holding `,`, `:` or a newline are JSON-quoted, as A1111's `quote()` does.

use crate::schedule::{KMethod, Sampler};

/// Generation settings in A1111's text form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters {
    /// The prompt (may span lines).
    pub prompt: String,
    /// The negative prompt (empty: no line).
    pub negative: String,
    /// `Key: value` pairs of the last line, in order.
    pub fields: Vec<(String, String)>,
}

impl Parameters {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Adds `key: value` where A1111 writes its extensions' fields: before `Version` (at the end
    /// when there is none).
    pub fn insert_before_version(&mut self, key: &str, value: &str) {
        let at = self
            .fields
            .iter()
            .position(|(k, _)| k == "Version")
            .unwrap_or(self.fields.len());
        self.fields.insert(at, (key.into(), value.into()));
    }

    /// The text as A1111 writes it.
    pub fn to_text(&self) -> String {
        let mut out = self.prompt.clone();
        if !self.negative.is_empty() {
            out.push_str("\nNegative prompt: ");
            out.push_str(&self.negative);
        }
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{k}: {}", quote(v)))
            .collect();
        out.push('\n');
        out.push_str(&fields.join(", "));
        out
    }

    /// Reads A1111's text: the last line holds the fields when it has at least three of them.
    pub fn parse(text: &str) -> Self {
        let mut lines: Vec<&str> = text.trim().lines().collect();
        let mut fields = Vec::new();
        if let Some(last) = lines.last() {
            let parsed = parse_fields(last);
            if parsed.len() >= 3 {
                fields = parsed;
                lines.pop();
            }
        }
        let (mut prompt, mut negative, mut in_negative) = (Vec::new(), Vec::new(), false);
        for line in lines {
            if let Some(rest) = line.strip_prefix("Negative prompt:") {
                in_negative = true;
                negative.push(rest.trim_start());
            } else if in_negative {
                negative.push(line);
            } else {
                prompt.push(line);
            }
        }
        Self {
            prompt: prompt.join("\n"),
            negative: negative.join("\n"),
            fields,
        }
    }
}

fn quote(value: &str) -> String {
    if value.contains([',', '\n', ':']) {
        serde_json::to_string(value).unwrap_or_else(|_| value.to_owned())
    } else {
        value.to_owned()
    }
}

/// `Key: value, Key: "quoted, value", …`
fn parse_fields(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while let Some((key, after)) = rest.split_once(':') {
        let key = key.trim();
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || " -/_".contains(c));
        if !valid {
            return Vec::new();
        }
        let after = after.trim_start();
        let (value, remaining) = if after.starts_with('"') {
            let mut de = serde_json::Deserializer::from_str(after).into_iter::<String>();
            match de.next() {
                Some(Ok(v)) => (v, &after[de.byte_offset()..]),
                _ => return Vec::new(),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim_end().to_owned(), &after[end..])
        };
        out.push((key.to_owned(), value));
        rest = remaining
            .trim_start()
            .strip_prefix(',')
            .unwrap_or(remaining)
            .trim_start();
        if rest.is_empty() {
            break;
        }
    }
    out
}

/// A1111's name of a sampler and its "Schedule type" (`None`: the default).
pub fn sampler_name(sampler: Sampler) -> (&'static str, Option<&'static str>) {
    let karras = |k: bool| if k { Some("Karras") } else { None };
    match sampler {
        Sampler::Ddim { .. } => ("DDIM", None),
        Sampler::Euler { karras: k }
        | Sampler::KDiffusion {
            method: KMethod::Euler,
            karras: k,
        } => ("Euler", karras(k)),
        Sampler::EulerAncestral => ("Euler a", None),
        Sampler::KDiffusion {
            method: KMethod::EulerAncestral,
            karras: k,
        } => ("Euler a", karras(k)),
        Sampler::DpmPp2m { karras: k }
        | Sampler::KDiffusion {
            method: KMethod::DpmPp2m,
            karras: k,
        } => ("DPM++ 2M", karras(k)),
        Sampler::Lcm => ("LCM", None),
    }
}

/// Reads a sampler name as A1111 writes it (`Euler a`, `DPM++ 2M Karras`, `DDIM`, `LCM`) or in
/// lower case with `_`/`-` (`euler_a`, `dpmpp_2m_karras`); A1111's samplers run the k-diffusion
/// way. `schedule` is A1111's "Schedule type" (`Karras`).
pub fn parse_sampler(name: &str, schedule: Option<&str>) -> Option<Sampler> {
    let norm: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '-' { ' ' } else { c })
        .collect();
    let norm = norm.replace("dpm++", "dpmpp").replace("dpmpp ", "dpmpp");
    let (base, karras_suffix) = match norm.strip_suffix(" karras") {
        Some(b) => (b.to_owned(), true),
        None => (norm.clone(), false),
    };
    let karras = karras_suffix || schedule.is_some_and(|s| s.eq_ignore_ascii_case("karras"));
    let k = |method| Sampler::KDiffusion { method, karras };
    Some(match base.as_str() {
        "euler" => k(KMethod::Euler),
        "euler a" => k(KMethod::EulerAncestral),
        "dpmpp2m" | "dpmpp 2m" => k(KMethod::DpmPp2m),
        "ddim" => Sampler::Ddim { eta: 0.0 },
        "lcm" => Sampler::Lcm,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_fields_go_before_the_version() {
        let mut p = Parameters::default();
        p.insert_before_version("VAE Decoder", "TAESD");
        assert_eq!(p.fields, vec![("VAE Decoder".into(), "TAESD".into())]);
        p.fields.push(("Version".into(), "v1.10.1".into()));
        p.insert_before_version("ControlNet 0", "Module: canny");
        let keys: Vec<&str> = p.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["VAE Decoder", "ControlNet 0", "Version"]);
    }

    #[test]
    fn text_round_trips_with_quoting() {
        let p = Parameters {
            prompt: "a photo of a cat,\n(masterpiece:1.2)".into(),
            negative: "blurry".into(),
            fields: vec![
                ("Steps".into(), "4".into()),
                ("Sampler".into(), "Euler a".into()),
                ("Seed".into(), "1234".into()),
                ("Model".into(), "tiny, random".into()),
                ("Size".into(), "64x64".into()),
            ],
        };
        let text = p.to_text();
        assert!(
            text.ends_with(
                "Steps: 4, Sampler: Euler a, Seed: 1234, Model: \"tiny, random\", Size: 64x64"
            ),
            "{text}"
        );
        assert_eq!(Parameters::parse(&text), p);
    }

    #[test]
    fn reads_a1111_text() {
        let text = "masterpiece, cat\nNegative prompt: lowres\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1";
        let p = Parameters::parse(text);
        assert_eq!(p.prompt, "masterpiece, cat");
        assert_eq!(p.negative, "lowres");
        assert_eq!(p.get("Size"), Some("512x768"));
        assert_eq!(p.get("Version"), Some("v1.10.1"));
        let sampler = parse_sampler(p.get("Sampler").unwrap(), p.get("Schedule type"));
        assert_eq!(
            sampler,
            Some(Sampler::KDiffusion {
                method: KMethod::DpmPp2m,
                karras: true
            })
        );
    }

    #[test]
    fn a_prompt_without_fields_is_all_prompt() {
        let p = Parameters::parse("just a prompt\nsecond line");
        assert_eq!(p.prompt, "just a prompt\nsecond line");
        assert!(p.fields.is_empty());
    }

    #[test]
    fn sampler_names_round_trip() {
        for name in [
            "Euler",
            "Euler a",
            "DPM++ 2M",
            "DPM++ 2M Karras",
            "DDIM",
            "LCM",
            "euler_a",
            "dpmpp_2m_karras",
        ] {
            let s = parse_sampler(name, None).unwrap_or_else(|| panic!("{name}"));
            let (n, sched) = sampler_name(s);
            assert_eq!(parse_sampler(n, sched), Some(s), "{name}");
        }
        assert_eq!(parse_sampler("Heun", None), None);
    }
}
