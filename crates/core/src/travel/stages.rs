//! Stages from the prompt boxes, one per non-empty line, and the travel-steps text.

use serde::{Deserialize, Serialize};

use super::TravelError;

/// One stage of a travel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Its prompt (the line, stripped, without its `THEN(...)` options).
    pub prompt: String,
    /// Its negative prompt.
    pub negative: String,
    /// Its own seed (`THEN(seed=…)`); frames towards it travel there through variation strength.
    pub seed: Option<i64>,
    /// Its own CFG scale (`THEN(cfg=…)`); frames towards it interpolate the scale.
    pub cfg: Option<f64>,
}

/// The stages of a prompt box and a negative box: one per non-empty line (stripped); an empty
/// negative is `""`, and the shorter list is padded by repeating its last line. A positive line
/// may end with `THEN(seed=…, cfg=…)`.
pub fn stages(prompt: &str, negative: &str) -> Result<Vec<Stage>, TravelError> {
    let positives = lines(prompt);
    let mut negatives = lines(negative);
    if negatives.is_empty() {
        negatives.push("");
    }
    let count = positives.len().max(negatives.len());
    let mut stages = Vec::with_capacity(count);
    for i in 0..count {
        let line = positives.get(i).or(positives.last()).copied().unwrap_or("");
        let negative = negatives.get(i).or(negatives.last()).copied().unwrap_or("");
        let (prompt, seed, cfg) = stage_options(line, i + 1)?;
        stages.push(Stage {
            prompt,
            negative: negative.to_owned(),
            seed,
            cfg,
        });
    }
    Ok(stages)
}

fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Splits a trailing `THEN(seed=…, cfg=…)` off a stage line.
pub(crate) fn stage_options(
    line: &str,
    stage: usize,
) -> Result<(String, Option<i64>, Option<f64>), TravelError> {
    let error = |message: String| TravelError::StageOptions { stage, message };
    let Some(open) = line.rfind("THEN(") else {
        return Ok((line.to_owned(), None, None));
    };
    let Some(inner) = line[open + 5..].strip_suffix(')') else {
        return Err(error(
            "THEN( must close with ) at the end of the line".into(),
        ));
    };
    let (mut seed, mut cfg) = (None, None);
    for item in inner.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(error(format!(
                "{item:?} should be key=value (seed=… or cfg=…)"
            )));
        };
        let value = value.trim();
        match key.trim() {
            "seed" => {
                let s: i64 = value
                    .parse()
                    .map_err(|_| error(format!("seed {value:?} is not a whole number")))?;
                if !(0..=i64::from(u32::MAX)).contains(&s) {
                    return Err(error(format!("seed {s} is outside 0 to 4294967295")));
                }
                seed = Some(s);
            }
            "cfg" => {
                let c: f64 = value
                    .parse()
                    .ok()
                    .filter(|c: &f64| c.is_finite())
                    .ok_or_else(|| error(format!("cfg {value:?} is not a number")))?;
                cfg = Some(c);
            }
            other => {
                return Err(error(format!(
                    "unknown option {other:?} (stages take seed and cfg)"
                )));
            }
        }
    }
    Ok((line[..open].trim_end().to_owned(), seed, cfg))
}

/// Reads "Travel steps between stages": one whole number for every transition, or a comma list
/// with exactly one entry per transition (`stages − 1`); each at least 1.
pub fn parse_steps(text: &str, stages: usize) -> Result<Vec<usize>, TravelError> {
    let transitions = stages.saturating_sub(1).max(1);
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    let mut steps = Vec::with_capacity(items.len());
    for item in &items {
        let n: usize = item.parse().map_err(|_| {
            TravelError::Steps(format!(
                "{item:?} is not a whole number (e.g. 30 or 12, 24)"
            ))
        })?;
        if n == 0 {
            return Err(TravelError::Steps("each entry must be at least 1".into()));
        }
        steps.push(n);
    }
    let steps = match steps.len() {
        1 => vec![steps[0]; transitions],
        n if n == transitions => steps,
        n => {
            return Err(TravelError::Steps(format!(
                "{stages} stages need one number or {transitions} numbers separated by commas, \
                 got {n}"
            )));
        }
    };
    check_total(&steps)?;
    Ok(steps)
}

/// The most frames one travel may have (the stages and every frame between them).
pub const MAX_TRAVEL_FRAMES: usize = 100_000;

/// Refuses steps that could make more than [`MAX_TRAVEL_FRAMES`] frames, before any frame is
/// planned: the first stage and, per transition, its steps and its closing stage (replace mode
/// renders all of them; the other modes fewer).
pub fn check_total(steps: &[usize]) -> Result<(), TravelError> {
    let total = steps
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_add(s)?.checked_add(1))
        .unwrap_or(usize::MAX);
    if total > MAX_TRAVEL_FRAMES {
        return Err(TravelError::Steps(format!(
            "they make up to {total} frames; Keyshift renders at most {MAX_TRAVEL_FRAMES} frames \
             per travel"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_making_more_than_the_frame_limit_are_refused_naming_it() {
        assert_eq!(parse_steps("50000, 49997", 3).map(|s| s.len()), Ok(2));
        // Replace mode renders every step and each closing stage: 1 + 50001 + 49999.
        assert!(parse_steps("50000, 49998", 3).is_err());
        let err = parse_steps("13333377", 4).unwrap_err().to_string();
        assert!(
            err.contains("up to 40000135 frames") && err.contains("100000"),
            "{err}"
        );
        assert!(parse_steps(&usize::MAX.to_string(), 3).is_err());
    }

    #[test]
    fn one_stage_per_non_empty_line_and_negatives_repeat_their_last_line() {
        let got = stages("  a cat \n\n a dog\na bird  ", "blurry\nugly").unwrap();
        let pairs: Vec<(&str, &str)> = got
            .iter()
            .map(|s| (s.prompt.as_str(), s.negative.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("a cat", "blurry"), ("a dog", "ugly"), ("a bird", "ugly")]
        );
        let empty = stages("a\nb", "").unwrap();
        assert!(empty.iter().all(|s| s.negative.is_empty()));
        // More negative lines than positive: the positive repeats (the original's padding).
        let more = stages("a", "x\ny").unwrap();
        assert_eq!(more.len(), 2);
        assert_eq!(more[1].prompt, "a");
    }

    #[test]
    fn stage_options_set_seed_and_cfg() {
        let got = stages("a cat THEN(seed=5, cfg=9.5)\na dog", "").unwrap();
        assert_eq!(got[0].prompt, "a cat");
        assert_eq!((got[0].seed, got[0].cfg), (Some(5), Some(9.5)));
        assert_eq!((got[1].seed, got[1].cfg), (None, None));
        let bad = stages("a\nb THEN(sed=1)", "").unwrap_err();
        assert_eq!(
            bad.to_string(),
            "stage 2: unknown option \"sed\" (stages take seed and cfg)"
        );
        assert!(stages("a THEN(seed=x)\nb", "").is_err());
        assert!(stages("a THEN(seed=1\nb", "").is_err());
    }

    #[test]
    fn steps_are_one_number_or_one_per_transition() {
        assert_eq!(parse_steps("30", 3).unwrap(), [30, 30]);
        assert_eq!(parse_steps("12, 24 ,36", 4).unwrap(), [12, 24, 36]);
        assert_eq!(
            parse_steps("1,2", 4).unwrap_err().to_string(),
            "travel steps: 4 stages need one number or 3 numbers separated by commas, got 2"
        );
        assert!(parse_steps("0", 2).is_err());
        assert!(parse_steps("two", 2).is_err());
        assert!(parse_steps("", 2).is_err());
    }
}
