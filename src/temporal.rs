//! The temporal consistency panel's edits of the project (every animation mode): attention
//! interpolation with the previous frames (Attention-Interpolation's `unet_config`, its latent
//! `pipe_config`) and colour matching to the first frame.

use keyshift_core::image::ColourSpace;
use keyshift_core::temporal::{Interpolation, Scheduler, Temporal, UnetPart};

use crate::state::EditError;

/// A tensor of self-attention that can be blended (`use_interpolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensor {
    /// Queries.
    Query,
    /// Keys.
    Key,
    /// Values.
    Value,
    /// Attention probabilities.
    Probabilities,
    /// Output after the output projection.
    Output,
}

/// An option of the panel (values as typed or picked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalField {
    /// Interpolation on (`true`, the original's defaults) or off.
    Interpolation,
    /// `ema`, `cos` or `linear` (attention and latents).
    Scheduler,
    /// Attention: the starting weight of the previous frames, 0 to 1.
    Ema,
    /// Attention: `ema`'s decay per step.
    Eta,
    /// Blending starts after this step.
    StartStep,
    /// Blending stops before this step (empty: the last).
    EndStep,
    /// Steps the weight holds before it decays.
    ConstSteps,
    /// Probabilities only where the keys number at most this squared.
    AttentionRes,
    /// Whether a tensor is blended (`true`/`false`).
    Use(Tensor),
    /// Whether a UNet part is blended (`true`/`false`).
    Part(UnetPart),
    /// Latents: the starting weight, 0 to 1 (0: off).
    LatentEma,
    /// Latents: the decay per step.
    LatentEta,
    /// `none`, `lab`, `hsv` or `rgb`.
    Colour,
}

fn number(field: &'static str, text: &str, min: f64, max: f64) -> Result<f64, EditError> {
    let v: f64 = text.trim().parse().map_err(|_| EditError::NotANumber {
        field,
        text: text.to_owned(),
    })?;
    if !(min..=max).contains(&v) {
        return Err(EditError::OutOfRange {
            field,
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(v)
}

fn count(field: &'static str, text: &str) -> Result<usize, EditError> {
    Ok(number(field, text, 0.0, 1000.0)?.round() as usize)
}

fn flag(field: &'static str, text: &str) -> Result<bool, EditError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(EditError::Invalid {
            field,
            message: format!("\"{other}\" is not true or false"),
        }),
    }
}

impl TemporalField {
    /// Applies the value to `t`; on error `t` is unchanged.
    pub fn apply(self, text: &str, t: &mut Temporal) -> Result<(), EditError> {
        if self == Self::Interpolation {
            t.interpolation = flag("Attention interpolation", text)?.then(Interpolation::default);
            return Ok(());
        }
        if self == Self::Colour {
            t.colour = match text {
                "none" => None,
                name => Some(ColourSpace::from_name(name).ok_or(EditError::Invalid {
                    field: "Colour matching",
                    message: format!("\"{name}\" is not none, lab, hsv or rgb"),
                })?),
            };
            return Ok(());
        }
        let Some(i) = t.interpolation.as_mut() else {
            return Err(EditError::Invalid {
                field: "Attention interpolation",
                message: "turn it on first".into(),
            });
        };
        self.apply_to(text, i)
    }

    fn apply_to(self, text: &str, i: &mut Interpolation) -> Result<(), EditError> {
        let (u, p) = (&mut i.unet_config, &mut i.pipe_config);
        match self {
            Self::Scheduler => {
                let kind = match text {
                    "ema" => Scheduler::Ema,
                    "cos" => Scheduler::Cos,
                    "linear" => Scheduler::Linear,
                    other => {
                        return Err(EditError::Invalid {
                            field: "Weight schedule",
                            message: format!("\"{other}\" is not ema, cos or linear"),
                        });
                    }
                };
                u.interpolation_scheduler = kind;
                p.interpolation_scheduler = kind;
            }
            Self::Ema => u.ema = number("Attention weight", text, 0.0, 1.0)?,
            Self::Eta => u.eta = number("Attention decay (eta)", text, 0.0, 10.0)?,
            Self::StartStep => {
                let v = count("Start step", text)?;
                (u.start_step, p.start_step) = (v, v);
            }
            Self::EndStep => {
                let v = match text.trim() {
                    "" => None,
                    t => Some(count("End step", t)?),
                };
                (u.end_step, p.end_step) = (v, v);
            }
            Self::ConstSteps => {
                let v = count("Constant steps", text)?;
                (u.const_steps, p.const_steps) = (v, v);
            }
            Self::AttentionRes => u.attention_res = count("Attention resolution", text)?.max(1),
            Self::Use(tensor) => {
                let on = flag("Blended tensors", text)?;
                let flags = &mut u.use_interpolation;
                match tensor {
                    Tensor::Query => flags.query = on,
                    Tensor::Key => flags.key = on,
                    Tensor::Value => flags.value = on,
                    Tensor::Probabilities => flags.attention_probs = on,
                    Tensor::Output => flags.out_linear = on,
                }
            }
            Self::Part(part) => {
                let on = flag("Blended parts", text)?;
                u.allow_names.retain(|p| *p != part);
                if on {
                    u.allow_names.push(part);
                    u.allow_names.sort();
                }
            }
            Self::LatentEma => p.ema = number("Latent weight", text, 0.0, 1.0)?,
            Self::LatentEta => p.eta = number("Latent decay (eta)", text, 0.0, 10.0)?,
            Self::Interpolation | Self::Colour => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_edits_the_originals_blocks() {
        let mut t = Temporal::default();
        assert!(
            TemporalField::Ema.apply("0.5", &mut t).is_err(),
            "off: nothing to edit"
        );
        TemporalField::Interpolation.apply("true", &mut t).unwrap();
        assert_eq!(t.interpolation, Some(Interpolation::default()));
        TemporalField::Ema.apply("0.5", &mut t).unwrap();
        TemporalField::Use(Tensor::Value)
            .apply("true", &mut t)
            .unwrap();
        TemporalField::Part(UnetPart::Down)
            .apply("false", &mut t)
            .unwrap();
        TemporalField::EndStep.apply("12", &mut t).unwrap();
        TemporalField::Scheduler.apply("cos", &mut t).unwrap();
        let Some(i) = t.interpolation.clone() else {
            panic!("on");
        };
        assert_eq!(i.unet_config.ema, 0.5);
        assert!(i.unet_config.use_interpolation.value);
        assert_eq!(i.unet_config.allow_names, [UnetPart::Mid, UnetPart::Up]);
        assert_eq!(
            (i.unet_config.end_step, i.pipe_config.end_step),
            (Some(12), Some(12))
        );
        assert_eq!(i.pipe_config.interpolation_scheduler, Scheduler::Cos);
        assert!(TemporalField::Ema.apply("1.5", &mut t).is_err());
        assert!(TemporalField::Scheduler.apply("tanh", &mut t).is_err());
        TemporalField::Colour.apply("hsv", &mut t).unwrap();
        assert_eq!(t.colour, Some(ColourSpace::Hsv));
        TemporalField::Interpolation.apply("false", &mut t).unwrap();
        assert!(t.interpolation.is_none() && t.is_on());
    }
}
