//! Deforum's 2D motion: the matrix `M = R·T` (OpenCV's `getRotationMatrix2D` about a centre, then a
//! translation) and `warpPerspective` with bilinear sampling and a replicated or wrapped border.
//! Checked against OpenCV on `tests/data/warp` (made by `scripts/reference/make_warp_reference.py`).

use super::RgbImage;

/// A 3×3 homogeneous matrix, row-major.
pub type Matrix3 = [[f64; 3]; 3];

/// What lies outside the image when a warp reads past its edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Border {
    /// The nearest edge pixel (OpenCV's `BORDER_REPLICATE`, Deforum's default).
    #[default]
    Replicate,
    /// The opposite edge (OpenCV's `BORDER_WRAP`).
    Wrap,
}

impl Border {
    /// The name Deforum uses (`replicate`, `wrap`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Replicate => "replicate",
            Self::Wrap => "wrap",
        }
    }

    /// Reads a name; `None` for an unknown one.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "replicate" => Some(Self::Replicate),
            "wrap" => Some(Self::Wrap),
            _ => None,
        }
    }

    /// The sample index for `i` on an axis of `n` samples.
    fn index(self, i: i64, n: usize) -> usize {
        let n = n as i64;
        let i = match self {
            Self::Replicate => i.clamp(0, n - 1),
            Self::Wrap => i.rem_euclid(n),
        };
        i as usize
    }
}

/// One frame's 2D motion as Deforum reads it: zoom (a scale factor), angle in degrees
/// (counter-clockwise), translation in pixels, about `centre` (pixels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Motion2d {
    /// Scale factor (1: none).
    pub zoom: f64,
    /// Rotation in degrees.
    pub angle: f64,
    /// Horizontal translation in pixels.
    pub translation_x: f64,
    /// Vertical translation in pixels.
    pub translation_y: f64,
}

impl Default for Motion2d {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            angle: 0.0,
            translation_x: 0.0,
            translation_y: 0.0,
        }
    }
}

impl Motion2d {
    /// Whether the motion leaves the image as it is.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// `R·T` for a `width`×`height` image, rotating about `(width // 2, height // 2)`.
    pub fn matrix(&self, width: usize, height: usize) -> Matrix3 {
        let centre = ((width / 2) as f64, (height / 2) as f64);
        let r = rotation_matrix(centre, self.angle, self.zoom);
        let t = [
            [1.0, 0.0, self.translation_x],
            [0.0, 1.0, self.translation_y],
            [0.0, 0.0, 1.0],
        ];
        multiply(&r, &t)
    }
}

/// OpenCV's `getRotationMatrix2D(centre, angle, scale)` as a 3×3 matrix.
pub fn rotation_matrix(centre: (f64, f64), angle_degrees: f64, scale: f64) -> Matrix3 {
    let radians = angle_degrees.to_radians();
    let (alpha, beta) = (scale * radians.cos(), scale * radians.sin());
    let (cx, cy) = centre;
    [
        [alpha, beta, (1.0 - alpha) * cx - beta * cy],
        [-beta, alpha, beta * cx + (1.0 - alpha) * cy],
        [0.0, 0.0, 1.0],
    ]
}

/// `a·b`.
pub fn multiply(a: &Matrix3, b: &Matrix3) -> Matrix3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// The inverse of `m`, `None` when it is singular.
pub fn invert(m: &Matrix3) -> Option<Matrix3> {
    let minor =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let det =
        m[0][0] * minor(1, 2, 1, 2) - m[0][1] * minor(1, 2, 0, 2) + m[0][2] * minor(1, 2, 0, 1);
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    let inv = 1.0 / det;
    Some([
        [
            minor(1, 2, 1, 2) * inv,
            -minor(0, 2, 1, 2) * inv,
            minor(0, 1, 1, 2) * inv,
        ],
        [
            -minor(1, 2, 0, 2) * inv,
            minor(0, 2, 0, 2) * inv,
            -minor(0, 1, 0, 2) * inv,
        ],
        [
            minor(1, 2, 0, 1) * inv,
            -minor(0, 2, 0, 1) * inv,
            minor(0, 1, 0, 1) * inv,
        ],
    ])
}

/// OpenCV's `warpPerspective(image, m, (w, h), INTER_LINEAR, border)`: every output pixel reads
/// the input at `m⁻¹·(x, y, 1)` with bilinear weights. A singular `m` gives the image unchanged.
pub fn warp_perspective(image: &RgbImage, m: &Matrix3, border: Border) -> RgbImage {
    let Some(inv) = invert(m) else {
        return image.clone();
    };
    let (w, h) = (image.width, image.height);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f64, y as f64);
            let z = inv[2][0] * xf + inv[2][1] * yf + inv[2][2];
            let z = if z == 0.0 { 0.0 } else { 1.0 / z };
            let sx = (inv[0][0] * xf + inv[0][1] * yf + inv[0][2]) * z;
            let sy = (inv[1][0] * xf + inv[1][1] * yf + inv[1][2]) * z;
            bilinear(image, sx, sy, border, &mut data);
        }
    }
    RgbImage {
        width: w,
        height: h,
        data,
    }
}

/// Appends the bilinear sample of `image` at (`sx`, `sy`).
fn bilinear(image: &RgbImage, sx: f64, sy: f64, border: Border, out: &mut Vec<u8>) {
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = (sx - x0, sy - y0);
    // Far outside (or not a number): clamp before the integer conversion.
    let limit = 1e9;
    let (x0, y0) = (
        x0.clamp(-limit, limit) as i64,
        y0.clamp(-limit, limit) as i64,
    );
    let xs = [
        border.index(x0, image.width),
        border.index(x0 + 1, image.width),
    ];
    let ys = [
        border.index(y0, image.height),
        border.index(y0 + 1, image.height),
    ];
    let weights = [
        (1.0 - fx) * (1.0 - fy),
        fx * (1.0 - fy),
        (1.0 - fx) * fy,
        fx * fy,
    ];
    for c in 0..3 {
        let taps = [
            image.at(xs[0], ys[0], c),
            image.at(xs[1], ys[0], c),
            image.at(xs[0], ys[1], c),
            image.at(xs[1], ys[1], c),
        ];
        let v: f64 = taps
            .iter()
            .zip(weights)
            .map(|(t, w)| f64::from(*t) * w)
            .sum();
        out.push(round_u8(v));
    }
}

/// Rounds to the nearest byte, saturating (NaN gives 0).
pub(crate) fn round_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> RgbImage {
        let (width, height) = (8, 6);
        let data = (0..width * height * 3)
            .map(|i| (i * 5 % 256) as u8)
            .collect();
        RgbImage {
            width,
            height,
            data,
        }
    }

    #[test]
    fn identity_keeps_the_image() {
        let img = ramp();
        let m = Motion2d::default().matrix(img.width, img.height);
        assert_eq!(warp_perspective(&img, &m, Border::Replicate), img);
    }

    #[test]
    fn whole_pixel_translation_shifts() {
        let img = ramp();
        let motion = Motion2d {
            translation_x: 1.0,
            ..Motion2d::default()
        };
        let out = warp_perspective(&img, &motion.matrix(8, 6), Border::Wrap);
        for c in 0..3 {
            assert_eq!(out.at(3, 2, c), img.at(2, 2, c));
            assert_eq!(out.at(0, 2, c), img.at(7, 2, c));
        }
        let out = warp_perspective(&img, &motion.matrix(8, 6), Border::Replicate);
        assert_eq!(out.at(0, 2, 1), img.at(0, 2, 1));
    }

    #[test]
    fn inverse_round_trips() {
        let m = Motion2d {
            zoom: 1.1,
            angle: 30.0,
            translation_x: 3.0,
            translation_y: -2.0,
        }
        .matrix(64, 48);
        let Some(inv) = invert(&m) else {
            panic!("invertible");
        };
        let id = multiply(&m, &inv);
        for (i, row) in id.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-12, "{i},{j}: {v}");
            }
        }
        assert_eq!(invert(&[[0.0; 3]; 3]), None);
    }
}
