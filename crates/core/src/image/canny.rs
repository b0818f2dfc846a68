//! The canny ControlNet hint as Attention-Interpolation makes it (seeds.md §4:
//! `cv2.cvtColor(RGB2GRAY)` then `cv2.Canny(grey, 50, 200)`, three equal channels), computed as
//! OpenCV computes it so that a hint equals the original's pixel for pixel: 3×3 Sobel
//! derivatives with replicated borders, the L1 gradient magnitude `|dx| + |dy|` (no Gaussian blur
//! first), non-maximum suppression in four directions with OpenCV's fixed-point tangent test and
//! its asymmetric comparisons, and 8-connected hysteresis. (The image crates' Canny blurs first
//! and uses the L2 magnitude, which gives other edges.)

use super::RgbImage;

/// Attention-Interpolation's canny thresholds.
pub const CANNY_LOW: f64 = 50.0;
/// See [`CANNY_LOW`].
pub const CANNY_HIGH: f64 = 200.0;

/// An 8-bit grey image, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreyImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height` values.
    pub data: Vec<u8>,
}

impl GreyImage {
    fn at(&self, x: isize, y: isize) -> i32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        i32::from(self.data[y * self.width + x])
    }

    /// The same values in three channels.
    pub fn to_rgb(&self) -> RgbImage {
        RgbImage {
            width: self.width,
            height: self.height,
            data: self.data.iter().flat_map(|&v| [v; 3]).collect(),
        }
    }
}

/// OpenCV's 8-bit `RGB2GRAY`: `(9798 R + 19235 G + 3735 B + 2^14) >> 15` (its 15-bit
/// coefficients; the 14-bit ones of older documentation round 0.3 % of colours differently).
pub fn to_grey(image: &RgbImage) -> GreyImage {
    let data = image
        .data
        .chunks_exact(3)
        .map(|p| {
            let y = 9798 * u32::from(p[0]) + 19235 * u32::from(p[1]) + 3735 * u32::from(p[2]);
            ((y + (1 << 14)) >> 15) as u8
        })
        .collect();
    GreyImage {
        width: image.width,
        height: image.height,
        data,
    }
}

/// The canny hint of `image` with thresholds `low` and `high` (swapped if given the wrong way
/// round, as OpenCV does): edges 255, the rest 0, in three channels.
pub fn canny_hint(image: &RgbImage, low: f64, high: f64) -> RgbImage {
    canny(&to_grey(image), low, high).to_rgb()
}

/// `cv2.Canny(grey, low, high)` (aperture 3, L1 gradient): 255 on edges, 0 elsewhere.
pub fn canny(grey: &GreyImage, low: f64, high: f64) -> GreyImage {
    let (w, h) = (grey.width, grey.height);
    let (low, high) = if low > high { (high, low) } else { (low, high) };
    let (low, high) = (low.floor() as i32, high.floor() as i32);
    let (dx, dy) = sobel(grey);
    let mag: Vec<i32> = dx.iter().zip(&dy).map(|(a, b)| a.abs() + b.abs()).collect();
    let mut map = EdgeMap::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let m = mag[i];
            if m > low && is_local_maximum(&mag, w, h, x, y, dx[i], dy[i]) {
                map.mark(x, y, m > high);
            }
        }
    }
    map.hysteresis();
    GreyImage {
        width: w,
        height: h,
        data: map.edges(),
    }
}

/// The 3×3 Sobel derivatives with replicated borders (OpenCV's `Sobel(…, BORDER_REPLICATE)`).
fn sobel(g: &GreyImage) -> (Vec<i32>, Vec<i32>) {
    let (w, h) = (g.width, g.height);
    let mut dx = vec![0; w * h];
    let mut dy = vec![0; w * h];
    for y in 0..h {
        for x in 0..w {
            let p = |ox: isize, oy: isize| g.at(x as isize + ox, y as isize + oy);
            let i = y * w + x;
            dx[i] = (p(1, -1) + 2 * p(1, 0) + p(1, 1)) - (p(-1, -1) + 2 * p(-1, 0) + p(-1, 1));
            dy[i] = (p(-1, 1) + 2 * p(0, 1) + p(1, 1)) - (p(-1, -1) + 2 * p(0, -1) + p(1, -1));
        }
    }
    (dx, dy)
}

/// OpenCV's non-maximum suppression: the gradient direction is binned by
/// `tan 22.5° ≈ 13573 / 2^15`; along it the pixel must exceed the neighbour before and at
/// least equal the one after (both strictly on diagonals). Outside the image the magnitude is 0.
fn is_local_maximum(mag: &[i32], w: usize, h: usize, x: usize, y: usize, dx: i32, dy: i32) -> bool {
    const TG22: i64 = 13573;
    let at = |ox: isize, oy: isize| {
        let (nx, ny) = (x as isize + ox, y as isize + oy);
        if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
            0
        } else {
            mag[ny as usize * w + nx as usize]
        }
    };
    let m = at(0, 0);
    let ax = i64::from(dx.abs());
    let ay = i64::from(dy.abs()) << 15;
    let tg22x = ax * TG22;
    if ay < tg22x {
        return m > at(-1, 0) && m >= at(1, 0);
    }
    let tg67x = tg22x + (ax << 16);
    if ay > tg67x {
        return m > at(0, -1) && m >= at(0, 1);
    }
    let s: isize = if (dx ^ dy) < 0 { -1 } else { 1 };
    m > at(-s, -1) && m > at(s, 1)
}

/// Candidates (passed suppression above the low threshold) and edges (above the high one, or
/// 8-connected to one through candidates).
struct EdgeMap {
    w: usize,
    h: usize,
    state: Vec<Cell>,
    stack: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    None,
    Candidate,
    Edge,
}

impl EdgeMap {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            state: vec![Cell::None; w * h],
            stack: Vec::new(),
        }
    }

    fn mark(&mut self, x: usize, y: usize, strong: bool) {
        let i = y * self.w + x;
        if strong {
            self.state[i] = Cell::Edge;
            self.stack.push(i);
        } else {
            self.state[i] = Cell::Candidate;
        }
    }

    fn hysteresis(&mut self) {
        while let Some(i) = self.stack.pop() {
            let (x, y) = ((i % self.w) as isize, (i / self.w) as isize);
            for (ox, oy) in NEIGHBOURS {
                let (nx, ny) = (x + ox, y + oy);
                if nx < 0 || ny < 0 || nx >= self.w as isize || ny >= self.h as isize {
                    continue;
                }
                let n = ny as usize * self.w + nx as usize;
                if self.state[n] == Cell::Candidate {
                    self.state[n] = Cell::Edge;
                    self.stack.push(n);
                }
            }
        }
    }

    fn edges(&self) -> Vec<u8> {
        self.state
            .iter()
            .map(|&c| if c == Cell::Edge { 255 } else { 0 })
            .collect()
    }
}

const NEIGHBOURS: [(isize, isize); 8] = [
    (-1, -1),
    (0, -1),
    (1, -1),
    (-1, 0),
    (1, 0),
    (-1, 1),
    (0, 1),
    (1, 1),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vertical_step_gives_one_edge_column() {
        let mut data = vec![0u8; 8 * 6];
        for row in data.chunks_exact_mut(8) {
            row[4..].fill(200);
        }
        let grey = GreyImage {
            width: 8,
            height: 6,
            data,
        };
        let edges = canny(&grey, 50.0, 200.0);
        for row in edges.data.chunks_exact(8) {
            assert_eq!(row, [0, 0, 0, 255, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn a_flat_image_has_no_edges_and_grey_weights_sum_to_one() {
        let image = RgbImage {
            width: 5,
            height: 4,
            data: vec![255; 5 * 4 * 3],
        };
        assert!(to_grey(&image).data.iter().all(|&v| v == 255));
        let hint = canny_hint(&image, CANNY_LOW, CANNY_HIGH);
        assert_eq!((hint.width, hint.height), (5, 4));
        assert!(hint.data.iter().all(|&v| v == 0));
    }
}
