//! bezier-easing 2.1 (cubic-bezier timing functions: sample table in single precision, Newton
//! iterations, bisection), reproducing its numbers exactly.

const NEWTON_ITERATIONS: usize = 4;
const NEWTON_MIN_SLOPE: f64 = 0.001;
const SUBDIVISION_PRECISION: f64 = 0.0000001;
const SUBDIVISION_MAX_ITERATIONS: usize = 10;
const TABLE_SIZE: usize = 11;
const SAMPLE_STEP: f64 = 1.0 / (TABLE_SIZE as f64 - 1.0);

fn coeff_a(a1: f64, a2: f64) -> f64 {
    1.0 - 3.0 * a2 + 3.0 * a1
}
fn coeff_b(a1: f64, a2: f64) -> f64 {
    3.0 * a2 - 6.0 * a1
}
fn coeff_c(a1: f64) -> f64 {
    3.0 * a1
}
fn calc(t: f64, a1: f64, a2: f64) -> f64 {
    ((coeff_a(a1, a2) * t + coeff_b(a1, a2)) * t + coeff_c(a1)) * t
}
fn slope(t: f64, a1: f64, a2: f64) -> f64 {
    3.0 * coeff_a(a1, a2) * t * t + 2.0 * coeff_b(a1, a2) * t + coeff_c(a1)
}

/// Why an easing could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bezier x values must be in [0, 1] range")]
pub struct BezierRangeError;

/// A cubic-bezier easing `(x1, y1, x2, y2)`.
#[derive(Clone, Debug, PartialEq)]
pub struct BezierEasing {
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
    linear: bool,
    samples: [f64; TABLE_SIZE],
}

impl BezierEasing {
    /// Builds the easing; x values outside [0, 1] are an error, as in bezier-easing.
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Result<Self, BezierRangeError> {
        if !((0.0..=1.0).contains(&x1) && (0.0..=1.0).contains(&x2)) {
            return Err(BezierRangeError);
        }
        let mut samples = [0.0; TABLE_SIZE];
        for (i, s) in samples.iter_mut().enumerate() {
            // Stored in a Float32Array upstream.
            *s = f64::from(calc(i as f64 * SAMPLE_STEP, x1, x2) as f32);
        }
        Ok(Self {
            x1,
            y1,
            x2,
            y2,
            linear: x1 == y1 && x2 == y2,
            samples,
        })
    }

    /// The control points.
    pub fn points(&self) -> (f64, f64, f64, f64) {
        (self.x1, self.y1, self.x2, self.y2)
    }

    fn t_for_x(&self, x: f64) -> f64 {
        let mut start = 0.0;
        let mut current = 1;
        let last = TABLE_SIZE - 1;
        while current != last && self.samples[current] <= x {
            start += SAMPLE_STEP;
            current += 1;
        }
        current -= 1;
        let dist =
            (x - self.samples[current]) / (self.samples[current + 1] - self.samples[current]);
        let guess = start + dist * SAMPLE_STEP;
        let initial_slope = slope(guess, self.x1, self.x2);
        if initial_slope >= NEWTON_MIN_SLOPE {
            let mut t = guess;
            for _ in 0..NEWTON_ITERATIONS {
                let s = slope(t, self.x1, self.x2);
                if s == 0.0 {
                    return t;
                }
                t -= (calc(t, self.x1, self.x2) - x) / s;
            }
            t
        } else if initial_slope == 0.0 {
            guess
        } else {
            let (mut a, mut b) = (start, start + SAMPLE_STEP);
            let mut i = 0;
            loop {
                let t = a + (b - a) / 2.0;
                let cx = calc(t, self.x1, self.x2) - x;
                if cx > 0.0 {
                    b = t;
                } else {
                    a = t;
                }
                i += 1;
                if !(cx.abs() > SUBDIVISION_PRECISION && i < SUBDIVISION_MAX_ITERATIONS) {
                    return t;
                }
            }
        }
    }

    /// The eased value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        if self.linear {
            return x;
        }
        if x == 0.0 || x == 1.0 {
            return x;
        }
        calc(self.t_for_x(x), self.y1, self.y2)
    }
}
