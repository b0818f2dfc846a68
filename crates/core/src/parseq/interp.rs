//! The interpolations behind `L`, `P` and `C`: everpolate's linear and polynomial (Neville)
//! interpolation and the natural cubic spline of the `cubic-spline` package, with their exact
//! arithmetic (including their behaviour outside the keyframes).

/// everpolate's interval search: the index of the left border of the interval holding `point`.
/// `None` where the original would never return (fewer than two points inside the range).
fn interval_index(point: f64, xs: &[f64]) -> Option<usize> {
    let (first, last) = (xs.first()?, xs.last()?);
    if point < *first {
        return Some(0);
    }
    if point > *last {
        return Some(xs.len() - 1);
    }
    if xs.len() < 2 {
        return None;
    }
    let (mut left, mut right) = (0usize, xs.len() - 1);
    while right - left != 1 {
        let mid = left + (right - left) / 2;
        if point >= xs[mid] {
            left = mid;
        } else {
            right = mid;
        }
    }
    Some(left)
}

/// everpolate `linear(x, xs, ys)[0]` (NaN where the original never returns).
pub fn linear(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    let Some(mut i) = interval_index(x, xs) else {
        return f64::NAN;
    };
    if i == xs.len() - 1 {
        if i == 0 {
            return f64::NAN;
        }
        i -= 1;
    }
    let (x0, y0, x1, y1) = (xs[i], ys_at(ys, i), xs[i + 1], ys_at(ys, i + 1));
    let a = (y1 - y0) / (x1 - x0);
    let b = -a * x0 + y0;
    a * x + b
}

fn ys_at(ys: &[f64], i: usize) -> f64 {
    ys.get(i).copied().unwrap_or(f64::NAN)
}

/// everpolate `polynomial(x, xs, ys)[0]`: Neville's iterated interpolation.
pub fn polynomial(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    // q[j][i] for the current j; the original keeps every level, only two are needed.
    let mut prev: Vec<f64> = (0..n).map(|i| ys_at(ys, i)).collect();
    let mut cur = vec![f64::NAN; n];
    for j in 1..n {
        for i in j..n {
            cur[i] = ((x - xs[i - j]) * prev[i] - (x - xs[i]) * prev[i - 1]) / (xs[i] - xs[i - j]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    // The result is Q[n-1][n-1] (Q[0][0] = ys[0] for a single point).
    prev[n - 1]
}

/// A natural cubic spline through the points (slope form), as the `cubic-spline` package
/// solves and evaluates it.
#[derive(Clone, Debug, PartialEq)]
pub struct Spline {
    xs: Vec<f64>,
    ys: Vec<f64>,
    ks: Vec<f64>,
}

impl Spline {
    /// Solves for the slopes (Gaussian elimination with partial pivoting, as upstream).
    pub fn new(xs: &[f64], ys: &[f64]) -> Self {
        let ys: Vec<f64> = (0..xs.len()).map(|i| ys_at(ys, i)).collect();
        let ks = natural_slopes(xs, &ys);
        Self {
            xs: xs.to_vec(),
            ys,
            ks,
        }
    }

    fn index_before(&self, target: f64) -> usize {
        let n = self.xs.len();
        let (mut low, mut high) = (0usize, n);
        while low < high {
            let mid = (low + high) / 2;
            if self.xs[mid] < target && mid != low {
                low = mid;
            } else if self.xs[mid] >= target && mid != high {
                high = mid;
            } else {
                high = low;
            }
        }
        // The published 3.0.3 has no special case for the last point: past the last x the
        // index runs off the end and the value is NaN.
        low + 1
    }

    /// The spline's value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        if self.xs.len() < 2 {
            return f64::NAN;
        }
        let i = self.index_before(x);
        if i == 0 || i >= self.xs.len() {
            return f64::NAN;
        }
        let (xs, ys, ks) = (&self.xs, &self.ys, &self.ks);
        let dx = xs[i] - xs[i - 1];
        let dy = ys[i] - ys[i - 1];
        let t = (x - xs[i - 1]) / dx;
        let a = ks[i - 1] * dx - dy;
        let b = -ks[i] * dx + dy;
        (1.0 - t) * ys[i - 1] + t * ys[i] + t * (1.0 - t) * (a * (1.0 - t) + b * t)
    }
}

fn natural_slopes(xs: &[f64], ys: &[f64]) -> Vec<f64> {
    let m = xs.len();
    if m < 2 {
        return vec![0.0; m];
    }
    let n = m - 1;
    let cols = n + 2;
    let mut a = vec![vec![0.0f64; cols]; m];
    for i in 1..n {
        let (d0, d1) = (xs[i] - xs[i - 1], xs[i + 1] - xs[i]);
        a[i][i - 1] = 1.0 / d0;
        a[i][i] = 2.0 * (1.0 / d0 + 1.0 / d1);
        a[i][i + 1] = 1.0 / d1;
        a[i][n + 1] = 3.0 * ((ys[i] - ys[i - 1]) / (d0 * d0) + (ys[i + 1] - ys[i]) / (d1 * d1));
    }
    let d = xs[1] - xs[0];
    a[0][0] = 2.0 / d;
    a[0][1] = 1.0 / d;
    a[0][n + 1] = (3.0 * (ys[1] - ys[0])) / (d * d);
    let d = xs[n] - xs[n - 1];
    a[n][n - 1] = 1.0 / d;
    a[n][n] = 2.0 / d;
    a[n][n + 1] = (3.0 * (ys[n] - ys[n - 1])) / (d * d);
    solve(&mut a)
}

/// Gauss-Jordan elimination exactly as upstream (rows are `m`, the right-hand side is column `m`).
fn solve(a: &mut [Vec<f64>]) -> Vec<f64> {
    let m = a.len();
    let all_finite = a.iter().all(|r| r.iter().all(|v| v.is_finite()));
    let (mut h, mut k) = (0usize, 0usize);
    while h < m && k <= m {
        let mut i_max = 0;
        let mut max = f64::NEG_INFINITY;
        for (i, row) in a.iter().enumerate().skip(h) {
            let v = row[k].abs();
            if v > max {
                i_max = i;
                max = v;
            }
        }
        if a[i_max][k] == 0.0 {
            k += 1;
            continue;
        }
        a.swap(h, i_max);
        let (top, rest) = a.split_at_mut(h + 1);
        let pivot_row = &top[h];
        for row in rest.iter_mut() {
            // A zero factor changes nothing when every entry is finite (tridiagonal rows).
            if all_finite && row[k] == 0.0 {
                continue;
            }
            let f = row[k] / pivot_row[k];
            row[k] = 0.0;
            for j in k + 1..=m {
                row[j] -= pivot_row[j] * f;
            }
        }
        h += 1;
        k += 1;
    }
    let mut ks = vec![0.0; m];
    for i in (0..m).rev() {
        let v = if a[i][i] != 0.0 && !a[i][i].is_nan() {
            a[i][m] / a[i][i]
        } else {
            0.0
        };
        ks[i] = v;
        for row in a.iter_mut().take(i) {
            row[m] -= row[i] * v;
            row[i] = 0.0;
        }
    }
    ks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_extrapolates_from_the_end_intervals() {
        let (xs, ys) = ([0.0, 5.0, 10.0], [5.0, 0.0, 10.0]);
        assert_eq!(linear(2.0, &xs, &ys), 3.0);
        assert_eq!(linear(10.0, &xs, &ys), 10.0);
        assert_eq!(linear(12.0, &xs, &ys), 14.0);
    }

    #[test]
    fn polynomial_passes_through_points() {
        let (xs, ys) = ([0.0, 5.0, 10.0], [5.0, 0.0, 10.0]);
        assert_eq!(polynomial(5.0, &xs, &ys), 0.0);
        assert_eq!(polynomial(10.0, &xs, &ys), 10.0);
    }
}
