//! How a ControlNet guides a render: its strength, guess mode and the part of the steps it acts
//! on (A1111's ControlNet unit: "Control Weight", "Starting/Ending Control Step"; diffusers'
//! `controlnet_conditioning_scale`, `guess_mode`, `control_guidance_start/end`), and how its hint
//! is made.

use serde::{Deserialize, Serialize};

/// A ControlNet's settings for a render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlSettings {
    /// Residuals are multiplied by this (1).
    pub scale: f64,
    /// Guess mode: the net sees only the prompt's half of the guidance batch and its residuals
    /// grow from 0.1× at the first skip connection to 1× at the middle block
    /// (Attention-Interpolation's `default.yaml` turns it on; A1111's "Balanced" is off).
    pub guess_mode: bool,
    /// The fraction of the steps before which the net does not act (0).
    pub start: f64,
    /// The fraction of the steps after which it stops (1).
    pub end: f64,
}

impl Default for ControlSettings {
    fn default() -> Self {
        Self {
            scale: 1.0,
            guess_mode: false,
            start: 0.0,
            end: 1.0,
        }
    }
}

/// Why ControlNet settings are refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// The scale is negative or not a number.
    #[error("the ControlNet scale {0} must be a number from 0 up (1 is full strength)")]
    Scale(f64),
    /// Start and end are not `0 ≤ start < end ≤ 1`.
    #[error(
        "the ControlNet's start {start} and end {end} must be fractions of the steps with \
         0 ≤ start < end ≤ 1"
    )]
    Steps {
        /// The start given.
        start: f64,
        /// The end given.
        end: f64,
    },
}

impl ControlSettings {
    /// Checks the values.
    pub fn check(&self) -> Result<(), ControlError> {
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            return Err(ControlError::Scale(self.scale));
        }
        let (start, end) = (self.start, self.end);
        if !(0.0..=1.0).contains(&start) || !(0.0..=1.0).contains(&end) || start >= end {
            return Err(ControlError::Steps { start, end });
        }
        Ok(())
    }

    /// The value of the field A1111's ControlNet extension adds to a frame's `parameters`
    /// (`ControlNet 0: "Module: canny, Model: …, Weight: 1.0, …"`; the quotes are the
    /// parameters writer's), for a hint made by `module` (`canny`, or `none` for a supplied hint
    /// image) with the model `model`.
    pub fn parameters_value(&self, module: &str, model: &str) -> String {
        let mode = if self.guess_mode {
            "ControlNet is more important"
        } else {
            "Balanced"
        };
        format!(
            "Module: {module}, Model: {model}, Weight: {}, Guidance Start: {}, Guidance End: {}, \
             Control Mode: {mode}",
            crate::prompt::python_repr(self.scale),
            crate::prompt::python_repr(self.start),
            crate::prompt::python_repr(self.end),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_full_strength_over_every_step() {
        let c = ControlSettings::default();
        assert_eq!(
            (c.scale, c.guess_mode, c.start, c.end),
            (1.0, false, 0.0, 1.0)
        );
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn bad_values_are_refused_with_their_numbers() {
        let bad = |c: ControlSettings| c.check().err().map(|e| e.to_string());
        let scale = bad(ControlSettings {
            scale: -0.5,
            ..ControlSettings::default()
        });
        assert!(scale.is_some_and(|m| m.contains("-0.5")));
        let steps = bad(ControlSettings {
            start: 0.6,
            end: 0.4,
            ..ControlSettings::default()
        });
        assert!(steps.is_some_and(|m| m.contains("0.6") && m.contains("0.4")));
    }

    #[test]
    fn the_parameters_field_reads_as_a1111_writes_it() {
        let c = ControlSettings {
            guess_mode: true,
            end: 0.5,
            ..ControlSettings::default()
        };
        assert_eq!(
            c.parameters_value("canny", "control_v11p_sd15_canny"),
            "Module: canny, Model: control_v11p_sd15_canny, Weight: 1.0, Guidance Start: 0.0, \
             Guidance End: 0.5, Control Mode: ControlNet is more important"
        );
    }
}
