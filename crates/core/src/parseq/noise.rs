//! noisejs's 2D simplex and Perlin noise with its seeding (Stefan Gustavson's algorithms as
//! Joseph Gentle ported them), reproducing its numbers exactly.

const P: [u8; 256] = [
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69,
    142, 8, 99, 37, 240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219,
    203, 117, 35, 11, 32, 57, 177, 33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175,
    74, 165, 71, 134, 139, 48, 27, 166, 77, 146, 158, 231, 83, 111, 229, 122, 60, 211, 133, 230,
    220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1, 216, 80, 73, 209, 76,
    132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100, 109, 198, 173,
    186, 3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206,
    59, 227, 47, 16, 58, 17, 182, 189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163,
    70, 221, 153, 101, 155, 167, 43, 172, 9, 129, 22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232,
    178, 185, 112, 104, 218, 246, 97, 228, 251, 34, 242, 193, 238, 210, 144, 12, 191, 179, 162,
    241, 81, 51, 145, 235, 249, 14, 239, 107, 49, 192, 214, 31, 181, 199, 106, 157, 184, 84, 204,
    176, 115, 121, 50, 45, 127, 4, 150, 254, 138, 236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141,
    128, 195, 78, 66, 215, 61, 156, 180,
];

/// The 12 gradient directions; 2D noise uses their x and y.
const GRAD3: [(f64, f64); 12] = [
    (1.0, 1.0),
    (-1.0, 1.0),
    (1.0, -1.0),
    (-1.0, -1.0),
    (1.0, 0.0),
    (-1.0, 0.0),
    (1.0, 0.0),
    (-1.0, 0.0),
    (0.0, 1.0),
    (0.0, -1.0),
    (0.0, 1.0),
    (0.0, -1.0),
];

/// A seeded noise generator (`new Noise(seed)`).
#[derive(Clone, Debug)]
pub struct Noise {
    perm: [u8; 512],
    grad: [u8; 512],
}

impl Noise {
    /// Seeds as noisejs does: a seed in (0, 1) is scaled by 65536; then floored; seeds below
    /// 256 are doubled up into both bytes. Only the low 16 bits matter.
    pub fn new(seed: f64) -> Self {
        let mut s = seed;
        if s > 0.0 && s < 1.0 {
            s *= 65536.0;
        }
        let s = s.floor();
        let mut v = super::jsnum::to_int32(s);
        // `seed < 256` compares the number (NaN is not < 256).
        if s < 256.0 {
            v |= v.wrapping_shl(8);
        }
        let mut perm = [0u8; 512];
        let mut grad = [0u8; 512];
        for i in 0..256 {
            let byte = if i & 1 == 1 { v & 255 } else { (v >> 8) & 255 };
            let p = P[i] ^ (byte as u8);
            perm[i] = p;
            perm[i + 256] = p;
            grad[i] = p % 12;
            grad[i + 256] = p % 12;
        }
        Self { perm, grad }
    }

    fn g(&self, i: usize) -> (f64, f64) {
        GRAD3[usize::from(self.grad[i & 511])]
    }

    fn p(&self, i: usize) -> usize {
        usize::from(self.perm[i & 511])
    }

    /// 2D simplex noise in [-1, 1].
    pub fn simplex2(&self, xin: f64, yin: f64) -> f64 {
        let f2 = 0.5 * (3f64.sqrt() - 1.0);
        let g2 = (3.0 - 3f64.sqrt()) / 6.0;
        let s = (xin + yin) * f2;
        let i = (xin + s).floor();
        let j = (yin + s).floor();
        let t = (i + j) * g2;
        let x0 = xin - i + t;
        let y0 = yin - j + t;
        let (i1, j1) = if x0 > y0 { (1, 0) } else { (0, 1) };
        let x1 = x0 - i1 as f64 + g2;
        let y1 = y0 - j1 as f64 + g2;
        let x2 = x0 - 1.0 + 2.0 * g2;
        let y2 = y0 - 1.0 + 2.0 * g2;
        let ii = (super::jsnum::to_int32(i) & 255) as usize;
        let jj = (super::jsnum::to_int32(j) & 255) as usize;
        let gi0 = self.g(ii + self.p(jj));
        let gi1 = self.g(ii + i1 + self.p(jj + j1));
        let gi2 = self.g(ii + 1 + self.p(jj + 1));
        let corner = |t: f64, g: (f64, f64), x: f64, y: f64| {
            if t < 0.0 {
                0.0
            } else {
                let t = t * t;
                t * t * (g.0 * x + g.1 * y)
            }
        };
        let n0 = corner(0.5 - x0 * x0 - y0 * y0, gi0, x0, y0);
        let n1 = corner(0.5 - x1 * x1 - y1 * y1, gi1, x1, y1);
        let n2 = corner(0.5 - x2 * x2 - y2 * y2, gi2, x2, y2);
        70.0 * (n0 + n1 + n2)
    }

    /// 2D Perlin noise.
    pub fn perlin2(&self, x: f64, y: f64) -> f64 {
        let fx = x.floor();
        let fy = y.floor();
        let x = x - fx;
        let y = y - fy;
        let xi = (super::jsnum::to_int32(fx) & 255) as usize;
        let yi = (super::jsnum::to_int32(fy) & 255) as usize;
        let dot = |g: (f64, f64), x: f64, y: f64| g.0 * x + g.1 * y;
        let n00 = dot(self.g(xi + self.p(yi)), x, y);
        let n01 = dot(self.g(xi + self.p(yi + 1)), x, y - 1.0);
        let n10 = dot(self.g(xi + 1 + self.p(yi)), x - 1.0, y);
        let n11 = dot(self.g(xi + 1 + self.p(yi + 1)), x - 1.0, y - 1.0);
        let fade = |t: f64| t * t * t * (t * (t * 6.0 - 15.0) + 10.0);
        let lerp = |a: f64, b: f64, t: f64| (1.0 - t) * a + t * b;
        let u = fade(x);
        lerp(lerp(n00, n10, u), lerp(n01, n11, u), fade(y))
    }
}
