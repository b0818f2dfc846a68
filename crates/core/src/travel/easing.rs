//! How α moves between two stages: linear (the original), the CSS timing curves, or any cubic
//! Bézier `(x1, y1, x2, y2)` — the curve Parseq's `bez()` uses (bezier-easing).

use serde::{Deserialize, Serialize};

use super::TravelError;
use crate::parseq::bezier::BezierEasing;

/// An α curve over a transition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Easing {
    /// α = t: the original's frames exactly.
    #[default]
    Linear,
    /// Slow start (CSS `ease-in`, Bézier 0.42, 0, 1, 1).
    EaseIn,
    /// Slow end (CSS `ease-out`, Bézier 0, 0, 0.58, 1).
    EaseOut,
    /// Slow start and end (CSS `ease-in-out`, Bézier 0.42, 0, 0.58, 1).
    EaseInOut,
    /// A cubic Bézier from (0, 0) to (1, 1) with these control points; x values in [0, 1].
    Bezier {
        /// First control point, x.
        x1: f64,
        /// First control point, y.
        y1: f64,
        /// Second control point, x.
        x2: f64,
        /// Second control point, y.
        y2: f64,
    },
}

impl Easing {
    /// The named curves, by name.
    pub const NAMED: &'static [(Easing, &'static str)] = &[
        (Self::Linear, "linear"),
        (Self::EaseIn, "ease-in"),
        (Self::EaseOut, "ease-out"),
        (Self::EaseInOut, "ease-in-out"),
    ];

    /// Reads a name (`linear`, `ease-in`, `ease-out`, `ease-in-out`) or four numbers
    /// `x1,y1,x2,y2`.
    pub fn parse(text: &str) -> Result<Self, TravelError> {
        let text = text.trim();
        if let Some((e, _)) = Self::NAMED.iter().find(|(_, n)| *n == text) {
            return Ok(*e);
        }
        let numbers: Result<Vec<f64>, _> =
            text.split(',').map(|n| n.trim().parse::<f64>()).collect();
        let Ok(&[x1, y1, x2, y2]) = numbers.as_deref() else {
            return Err(TravelError::Easing(format!(
                "{text:?}: use linear, ease-in, ease-out, ease-in-out or four numbers x1,y1,x2,y2"
            )));
        };
        let easing = Self::Bezier { x1, y1, x2, y2 };
        easing.curve()?;
        Ok(easing)
    }

    /// How it is written: its name, or `x1,y1,x2,y2`.
    pub fn text(&self) -> String {
        match self {
            Self::Bezier { x1, y1, x2, y2 } => format!("{x1},{y1},{x2},{y2}"),
            named => Self::NAMED
                .iter()
                .find(|(e, _)| e == named)
                .map_or_else(String::new, |(_, n)| (*n).to_owned()),
        }
    }

    fn points(&self) -> Option<(f64, f64, f64, f64)> {
        match *self {
            Self::Linear => None,
            Self::EaseIn => Some((0.42, 0.0, 1.0, 1.0)),
            Self::EaseOut => Some((0.0, 0.0, 0.58, 1.0)),
            Self::EaseInOut => Some((0.42, 0.0, 0.58, 1.0)),
            Self::Bezier { x1, y1, x2, y2 } => Some((x1, y1, x2, y2)),
        }
    }

    /// The curve, checked (x values in [0, 1], all finite).
    pub fn curve(&self) -> Result<Curve, TravelError> {
        let Some((x1, y1, x2, y2)) = self.points() else {
            return Ok(Curve(None));
        };
        if ![x1, y1, x2, y2].iter().all(|v| v.is_finite()) {
            return Err(TravelError::Easing("the numbers must be finite".into()));
        }
        BezierEasing::new(x1, y1, x2, y2)
            .map(|b| Curve(Some(b)))
            .map_err(|_| TravelError::Easing(format!("x1 {x1} and x2 {x2} must be within 0 to 1")))
    }
}

/// A checked easing, ready to evaluate.
#[derive(Clone, Debug)]
pub struct Curve(Option<BezierEasing>);

impl Curve {
    /// The linear curve.
    pub fn linear() -> Self {
        Self(None)
    }

    /// α at `t` in [0, 1]; `t` itself for linear.
    pub fn at(&self, t: f64) -> f64 {
        self.0.as_ref().map_or(t, |b| b.at(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse_and_print_back() {
        for (e, name) in Easing::NAMED {
            assert_eq!(Easing::parse(name).unwrap(), *e);
            assert_eq!(e.text(), *name);
        }
        let b = Easing::parse("0.25, 0.1, 0.25, 1").unwrap();
        assert_eq!(
            b,
            Easing::Bezier {
                x1: 0.25,
                y1: 0.1,
                x2: 0.25,
                y2: 1.0
            }
        );
        assert_eq!(Easing::parse(&b.text()).unwrap(), b);
        assert!(Easing::parse("1.5,0,0.5,1").is_err());
        assert!(Easing::parse("bounce").is_err());
        assert!(Easing::parse("1,2,3").is_err());
    }

    #[test]
    fn curves_follow_their_shape() {
        let linear = Easing::Linear.curve().unwrap();
        assert_eq!(linear.at(0.3), 0.3);
        let ease_in = Easing::EaseIn.curve().unwrap();
        let ease_out = Easing::EaseOut.curve().unwrap();
        let in_out = Easing::EaseInOut.curve().unwrap();
        for c in [&ease_in, &ease_out, &in_out] {
            assert_eq!(c.at(0.0), 0.0);
            assert_eq!(c.at(1.0), 1.0);
        }
        // CSS ease-in at x = 0.5 is y ≈ 0.3153; ease-out mirrors it; ease-in-out is symmetric.
        assert!(
            (ease_in.at(0.5) - 0.3153).abs() < 1e-3,
            "{}",
            ease_in.at(0.5)
        );
        assert!((ease_out.at(0.5) - 0.6847).abs() < 1e-3);
        assert!((in_out.at(0.5) - 0.5).abs() < 1e-6);
        assert!((in_out.at(0.25) + in_out.at(0.75) - 1.0).abs() < 1e-6);
        // Monotonic.
        let mut last = 0.0;
        for i in 1..=20 {
            let y = ease_in.at(f64::from(i) / 20.0);
            assert!(y > last);
            last = y;
        }
    }
}
