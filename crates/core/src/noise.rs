//! Deterministic Gaussian noise made exactly as PyTorch's CPU generator makes it, and
//! AUTOMATIC1111's seed and variation-seed ("subseed") rules on top of it.
//!
//! # What matches what
//!
//! - [`TorchRng`] is PyTorch's `CPUGeneratorImpl`: an mt19937 seeded by `torch.manual_seed(seed)`
//!   with the **low 32 bits** of the seed. Python seeds that are negative wrap as two's
//!   complement, so `seed as u64` from an `i64` gives the same generator.
//! - [`TorchRng::randn`] and [`randn`] give `torch.randn(n, generator=g)` (float32, CPU), bit
//!   for bit, on the two paths torch takes:
//!   - **n ≥ 16** (`normal_fill`): n uniforms of 24 bits; Box–Muller on each block of 16, where
//!     the first 8 give the radius `sqrt(-2 ln(1 - u))`, the next 8 the angle `2π u`, cos goes to
//!     the first 8 and sin to the next 8; when n % 16 ≠ 0 the last 16 values are drawn again
//!     from 16 fresh uniforms and transformed again. torch's x86-64 builds run this block with
//!     AVX2 and the Cephes-style `log256_ps`/`sincos256_ps` of `avx_mathfun.h`; this module
//!     evaluates the same polynomials lane by lane in f32, with the fused multiply-adds that
//!     GCC forms from them in torch's Linux wheels. Checked against torch 2.15.0 (Linux x86-64
//!     wheel) on about 1.4 million values over 100 seeds: no bit differs.
//!   - **n < 16** (`at::normal_distribution<double>`): two 53-bit uniforms per pair,
//!     Box–Muller in f64, cos returned and sin kept for the next draw (the cache lives in the
//!     generator, across calls, as in torch), each value rounded to f32. Bit-exact against the
//!     same torch on 75,000 values. (Older torch used `ln(1 - u)` where 2.x uses `ln_1p(-u)`;
//!     the f64 results differ in the last bits at most and the f32 values practically never.)
//! - Only IEEE f32/f64 arithmetic and correctly rounded `mul_add` are used, so wasm32 gives the
//!   same bits as native (checked in Node on 4 million values).
//! - Not matched: torch builds without AVX2 (ARM, e.g. Apple Silicon) run the n ≥ 16 block with
//!   their libm's `logf`/`cosf`/`sinf`; x86 builds by compilers that do not fuse these
//!   multiply-adds (MSVC on Windows, clang on macOS) are expected to differ by 1–2 ulp in about
//!   1% of the values (inferred from the compilers' rules, not measured). Differences of that
//!   size do not change a picture visibly.
//! - Out of scope: A1111's default "GPU" RNG source is CUDA's Philox generator
//!   (`torch.randn(device="cuda")`), and its "NV" source is `rng_philox.py`; both give entirely
//!   different numbers for the same seed. [`NoiseSpec`] reproduces the **"CPU"** source
//!   (Settings → Sampler parameters → "Random number generator source: CPU").
//!
//! # A1111 (`modules/rng.py`, `ImageRNG.first`, `modules/processing.py`)
//!
//! [`NoiseSpec::latent_noise`] makes one image's initial latent noise: `randn(seed)`; with a
//! non-zero variation strength, A1111's `slerp(strength, noise, randn(subseed))` ([`slerp_a1111`],
//! per channel and column); with "resize seed from width/height", the noise of the old size is
//! pasted, centred, into fresh noise of the new size. [`NoiseSpec::for_batch_index`] gives image
//! `i` of a batch, and [`NoiseSpec::sampler_rng`] the generator that ancestral samplers draw
//! their per-step noise from.
use thiserror::Error;

/// The most values a latent may have here (`4 × 4096 × 4096`, i.e. 256 MiB of f32).
pub const MAX_LATENT_LEN: usize = 1 << 26;

/// What A1111's slerp falls back from: a mean normalised dot above this counts as parallel.
const PARALLEL_DOT: f64 = 0.9995;

/// Why noise could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoiseError {
    /// The shape holds more than [`MAX_LATENT_LEN`] values.
    #[error("latent shape {shape:?} has more than {max} values")]
    TooLarge {
        /// The shape asked for.
        shape: [usize; 3],
        /// The limit.
        max: usize,
    },
    /// The slices given to [`slerp_a1111`] do not have the shape's length.
    #[error("slerp over shape {shape:?} needs {expected} values each, got {low} and {high}")]
    Length {
        /// The shape given.
        shape: [usize; 3],
        /// Its number of values.
        expected: usize,
        /// Length of `low`.
        low: usize,
        /// Length of `high`.
        high: usize,
    },
}

// ----------------------------------------------------------------------------------------------
// mt19937, as torch's `at::mt19937` (MT19937RNGEngine.h): standard init_genrand and tempering.

const MT_N: usize = 624;
const MT_M: usize = 397;

#[derive(Clone, Debug)]
struct Mt19937 {
    state: [u32; MT_N],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Self {
        let mut state = [0u32; MT_N];
        let mut prev = seed;
        for (i, slot) in state.iter_mut().enumerate() {
            if i > 0 {
                prev = 1_812_433_253u32
                    .wrapping_mul(prev ^ (prev >> 30))
                    .wrapping_add(i as u32);
            }
            *slot = prev;
        }
        Self { state, index: MT_N }
    }

    fn twist(&mut self) {
        for i in 0..MT_N {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % MT_N] & 0x7fff_ffff);
            let odd = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.state[i] = self.state[(i + MT_M) % MT_N] ^ (y >> 1) ^ odd;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= MT_N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

// ----------------------------------------------------------------------------------------------
// The generator.

/// PyTorch's CPU generator (`torch.Generator("cpu").manual_seed(seed)`): mt19937 plus the cached
/// second value of the f64 Box–Muller pair.
#[derive(Clone, Debug)]
pub struct TorchRng {
    mt: Mt19937,
    next_double_normal: Option<f64>,
}

impl TorchRng {
    /// `torch.manual_seed(seed)`: only the low 32 bits of `seed` count.
    pub fn new(seed: u64) -> Self {
        Self {
            mt: Mt19937::new(seed as u32),
            next_double_normal: None,
        }
    }

    /// The next raw 32-bit output (`CPUGeneratorImpl::random`).
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// `torch.randn(len, generator=self)` in float32, continuing this generator's stream: a
    /// tensor of any shape with `len` values gets the same values in row-major order.
    pub fn randn(&mut self, len: usize) -> Vec<f32> {
        if len >= 16 {
            self.normal_fill(len)
        } else {
            (0..len).map(|_| self.normal_f64() as f32).collect()
        }
    }

    /// `random64`: two outputs, the first in the high half.
    fn next_u64(&mut self) -> u64 {
        let high = u64::from(self.next_u32());
        (high << 32) | u64::from(self.next_u32())
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 bits of one output, in [0, 1).
    fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0)
    }

    /// `uniform_real_distribution<double>(0, 1)`: 53 bits of `random64`, in [0, 1).
    fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() & ((1 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `normal_distribution<double>(0, 1)`: cos now, sin cached for the next call.
    fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let radius = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = std::f64::consts::TAU * u1;
        self.next_double_normal = Some(radius * theta.sin());
        radius * theta.cos()
    }

    /// torch's `normal_fill` for float32 tensors of 16 or more values.
    fn normal_fill(&mut self, len: usize) -> Vec<f32> {
        let mut data: Vec<f32> = (0..len).map(|_| self.uniform_f32()).collect();
        for block in data.chunks_exact_mut(16) {
            box_muller_16(block);
        }
        if !len.is_multiple_of(16) {
            let tail = &mut data[len - 16..];
            for value in tail.iter_mut() {
                *value = self.uniform_f32();
            }
            box_muller_16(tail);
        }
        data
    }
}

/// `torch.manual_seed(seed); torch.randn(len)` in float32 on CPU (see the module notes).
pub fn randn(seed: u64, len: usize) -> Vec<f32> {
    TorchRng::new(seed).randn(len)
}

/// torch's `normal_fill_16_AVX2` on one block of 16 uniforms (mean 0, std 1).
fn box_muller_16(block: &mut [f32]) {
    let two_pi = std::f64::consts::TAU as f32;
    let (firsts, seconds) = block.split_at_mut(8);
    for (first, second) in firsts.iter_mut().zip(seconds.iter_mut()) {
        let radius = (-2.0 * avx_math::log(1.0 - *first)).sqrt();
        let (sin, cos) = avx_math::sin_cos(two_pi * *second);
        // `_mm256_fmadd_ps(n, std = 1, mean = 0)` is exactly `n + 0.0`.
        *first = radius * cos + 0.0;
        *second = radius * sin + 0.0;
    }
}

/// One lane of `avx_mathfun.h` (Julien Pommier's SSE/AVX port of Cephes `logf`/`sinf`/`cosf`,
/// zlib licence), evaluated in f32 with the multiply-adds fused exactly where GCC fuses them in
/// torch's builds (each product that feeds an addition; where two products meet, the earlier).
mod avx_math {
    const SQRT_HALF: f32 = std::f64::consts::FRAC_1_SQRT_2 as f32;
    const LOG_P: [f32; 9] = [
        7.037_683_629_2e-2_f64 as f32,
        -1.151_461_031_0e-1_f64 as f32,
        1.167_699_874_0e-1_f64 as f32,
        -1.242_014_084_6e-1_f64 as f32,
        1.424_932_278_7e-1_f64 as f32,
        -1.666_805_766_5e-1_f64 as f32,
        2.000_071_476_5e-1_f64 as f32,
        -2.499_999_399_3e-1_f64 as f32,
        3.333_333_117_4e-1_f64 as f32,
    ];
    const LOG_Q1: f32 = -2.121_944_40e-4_f64 as f32;
    const LOG_Q2: f32 = 0.693_359_375_f64 as f32;
    const FOUR_OVER_PI: f32 = 1.273_239_544_735_16_f64 as f32;
    const MINUS_DP: [f32; 3] = [
        -0.785_156_25,
        -2.418_756_484_985_351_6e-4_f64 as f32,
        -3.774_894_977_445_941e-8_f64 as f32,
    ];
    const SIN_P: [f32; 3] = [
        -1.951_529_589_1e-4_f64 as f32,
        8.332_160_873_6e-3_f64 as f32,
        -1.666_665_461_1e-1_f64 as f32,
    ];
    const COS_P: [f32; 3] = [
        2.443_315_711_809_948e-5_f64 as f32,
        -1.388_731_625_493_765e-3_f64 as f32,
        4.166_664_568_298_827e-2_f64 as f32,
    ];
    const SIGN: u32 = 0x8000_0000;

    /// `log256_ps` for one lane: NaN for x ≤ 0, subnormals cut to the smallest normal.
    pub(super) fn log(x: f32) -> f32 {
        if x <= 0.0 {
            return f32::NAN;
        }
        let bits = x.max(f32::MIN_POSITIVE).to_bits();
        let mut e = ((bits >> 23) as i32 - 0x7f) as f32 + 1.0;
        let mut m = f32::from_bits((bits & !0x7f80_0000) | 0.5f32.to_bits());
        let below = m < SQRT_HALF;
        let extra = if below { m } else { 0.0 };
        m -= 1.0;
        e -= if below { 1.0 } else { 0.0 };
        m += extra;
        let z = m * m;
        let mut y = LOG_P[0];
        for &p in &LOG_P[1..] {
            y = y.mul_add(m, p);
        }
        y = (y * m).mul_add(z, e * LOG_Q1);
        y -= z * 0.5;
        (m + y) + e * LOG_Q2
    }

    /// `sincos256_ps` for one lane: `(sin, cos)`.
    pub(super) fn sin_cos(theta: f32) -> (f32, f32) {
        let mut x = theta.abs();
        let j = ((x * FOUR_OVER_PI) as i32).wrapping_add(1) & !1;
        let y = j as f32;
        for dp in MINUS_DP {
            x = y.mul_add(dp, x);
        }
        let sign_sin = (theta.to_bits() & SIGN) ^ (((j & 4) as u32) << 29);
        let sign_cos = ((!j.wrapping_sub(2) & 4) as u32) << 29;
        let (cos_poly, sin_poly) = polynomials(x);
        // The lanes are picked with masks, so the unpicked side is an exact 0.0.
        let (cos_part, sin_part) = if j & 2 == 0 {
            (0.0, sin_poly)
        } else {
            (cos_poly, 0.0)
        };
        let sin = cos_part + sin_part;
        let cos = (cos_poly - cos_part) + (sin_poly - sin_part);
        (
            f32::from_bits(sin.to_bits() ^ sign_sin),
            f32::from_bits(cos.to_bits() ^ sign_cos),
        )
    }

    /// The two Cephes polynomials on the reduced argument: `(cos-like, sin-like)`.
    fn polynomials(x: f32) -> (f32, f32) {
        let z = x * x;
        let c = COS_P[0].mul_add(z, COS_P[1]).mul_add(z, COS_P[2]) * z;
        let c = c.mul_add(z, -(z * 0.5)) + 1.0;
        let s = SIN_P[0].mul_add(z, SIN_P[1]).mul_add(z, SIN_P[2]) * z;
        (c, s.mul_add(x, x))
    }
}

// ----------------------------------------------------------------------------------------------
// Spherical interpolation.

/// Spherical interpolation of two flat vectors: `t = 0` gives `a`, `t = 1` gives `b`.
///
/// The angle comes from the normalised dot product of the whole vectors; when
/// `|dot| > 0.9995` this is a plain lerp `(1 − t)·a + t·b`, otherwise
/// `sin((1 − t)ω)/sin ω · a + sin(tω)/sin ω · b` on the unnormalised vectors. Computed in f64,
/// rounded to f32. A zero vector counts as orthogonal to everything. Extra values of the longer
/// slice are ignored. For A1111's variation seed use [`slerp_a1111`], which differs.
pub fn slerp(t: f32, a: &[f32], b: &[f32]) -> Vec<f32> {
    let dot = normalised_dot(a.iter().zip(b).map(|(&x, &y)| (x, y)));
    let t = f64::from(t);
    let (wa, wb) = if dot.abs() > PARALLEL_DOT {
        (1.0 - t, t)
    } else {
        slerp_weights(t, dot)
    };
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (wa * f64::from(x) + wb * f64::from(y)) as f32)
        .collect()
}

/// A1111's `slerp(val, low, high)` (`modules/rng.py`) on one latent of `shape` `[c, h, w]`.
///
/// A1111 normalises along dim 1, so every (channel, column) pair, a vector over the `h` rows,
/// has its own angle. Its quirk is kept: when the **mean** of those normalised dots exceeds
/// 0.9995 it returns `low·t + high·(1 − t)` — reversed against a lerp — in f32 as torch does
/// (bit-exact); this happens when the seed equals the subseed, where the result is `low`.
/// Otherwise the per-column slerp is computed in f64 and rounded to f32: on 4×64×64 latents within
/// 5e-7 of torch, which computes it in f32 (on tiny latents with 2-row columns, 1.2e-5). A
/// column whose angle is exactly 0 or π (torch: NaN) is lerped.
pub fn slerp_a1111(
    t: f32,
    low: &[f32],
    high: &[f32],
    shape: [usize; 3],
) -> Result<Vec<f32>, NoiseError> {
    let expected = checked_len(shape)?;
    if low.len() != expected || high.len() != expected {
        return Err(NoiseError::Length {
            shape,
            expected,
            low: low.len(),
            high: high.len(),
        });
    }
    Ok(slerp_columns(t, low, high, shape))
}

fn slerp_columns(t: f32, low: &[f32], high: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let dots = column_dots(low, high, shape);
    let mean = dots.iter().sum::<f64>() / dots.len() as f64;
    if mean > PARALLEL_DOT {
        let rest = (1.0 - f64::from(t)) as f32;
        return low
            .iter()
            .zip(high)
            .map(|(&l, &h)| l * t + h * rest)
            .collect();
    }
    let weights: Vec<(f64, f64)> = dots
        .iter()
        .map(|&d| slerp_weights(f64::from(t), d))
        .collect();
    let [_, h, w] = shape;
    let columns = low
        .iter()
        .zip(high)
        .enumerate()
        .map(|(i, pair)| (column_of(i, h, w), pair));
    columns
        .map(|(col, (&l, &hi))| {
            let (wl, wh) = weights.get(col).copied().unwrap_or((1.0, 0.0));
            (wl * f64::from(l) + wh * f64::from(hi)) as f32
        })
        .collect()
}

/// Index of the (channel, column) vector that flat index `i` of a `[c, h, w]` latent is in.
fn column_of(i: usize, h: usize, w: usize) -> usize {
    (i / (h * w)) * w + i % w
}

/// Normalised dot product of every (channel, column) vector of two `[c, h, w]` latents.
fn column_dots(low: &[f32], high: &[f32], [c, h, w]: [usize; 3]) -> Vec<f64> {
    let mut sums = vec![(0.0, 0.0, 0.0); c * w];
    for (i, (&l, &hi)) in low.iter().zip(high).enumerate() {
        if let Some((ll, hh, lh)) = sums.get_mut(column_of(i, h, w)) {
            let (l, hi) = (f64::from(l), f64::from(hi));
            *ll += l * l;
            *hh += hi * hi;
            *lh += l * hi;
        }
    }
    sums.into_iter()
        .map(|(ll, hh, lh)| cosine(ll, hh, lh))
        .collect()
}

fn normalised_dot(pairs: impl Iterator<Item = (f32, f32)>) -> f64 {
    let (mut aa, mut bb, mut ab) = (0.0, 0.0, 0.0);
    for (a, b) in pairs {
        let (a, b) = (f64::from(a), f64::from(b));
        aa += a * a;
        bb += b * b;
        ab += a * b;
    }
    cosine(aa, bb, ab)
}

/// `ab / (|a| |b|)`, 0 for a zero vector.
fn cosine(aa: f64, bb: f64, ab: f64) -> f64 {
    let norms = aa.sqrt() * bb.sqrt();
    if norms > 0.0 { ab / norms } else { 0.0 }
}

/// Slerp weights of the two ends for the normalised dot `dot`; lerp weights where sin ω = 0.
fn slerp_weights(t: f64, dot: f64) -> (f64, f64) {
    let omega = dot.clamp(-1.0, 1.0).acos();
    let so = omega.sin();
    if so == 0.0 {
        return (1.0 - t, t);
    }
    (((1.0 - t) * omega).sin() / so, (t * omega).sin() / so)
}

// ----------------------------------------------------------------------------------------------
// A1111's noise for one image.

/// A variation seed: A1111's "Variation seed" and "Variation strength".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subseed {
    /// The variation seed.
    pub seed: u64,
    /// 0 gives the main seed's noise, 1 the variation seed's.
    pub strength: f32,
}

/// Everything that decides one image's initial noise in A1111 with the "CPU" RNG source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseSpec {
    /// The seed (only its low 32 bits count; pass negative A1111 seeds as `seed as u64`).
    pub seed: u64,
    /// The variation seed, if any; a strength of 0 means none.
    pub subseed: Option<Subseed>,
    /// "Resize seed from width/height", as a latent `[height, width]` (pixels / 8); `None` or a
    /// zero side means off.
    pub resize_from: Option<[usize; 2]>,
}

impl NoiseSpec {
    /// Noise from `seed` alone.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            subseed: None,
            resize_from: None,
        }
    }

    /// The same with a variation seed.
    pub fn with_subseed(self, seed: u64, strength: f32) -> Self {
        Self {
            subseed: Some(Subseed { seed, strength }),
            ..self
        }
    }

    /// The same with "resize seed from" a latent of `[height, width]`.
    pub fn with_resize_from(self, height: usize, width: usize) -> Self {
        Self {
            resize_from: Some([height, width]),
            ..self
        }
    }

    /// Image `index` of a batch (A1111 `processing.py`: `all_seeds`, `all_subseeds`): the seed
    /// goes up by `index` only while the variation strength is 0, the variation seed always.
    pub fn for_batch_index(&self, index: u64) -> Self {
        let varied = self.active_subseed().is_some();
        let subseed = self.subseed.map(|s| Subseed {
            seed: s.seed.wrapping_add(index),
            ..s
        });
        let seed = if varied {
            self.seed
        } else {
            self.seed.wrapping_add(index)
        };
        Self {
            seed,
            subseed,
            ..*self
        }
    }

    /// The initial latent noise of `shape` `[channels, height, width]`, in row-major order, as
    /// A1111's `ImageRNG.first()` makes it for one image.
    pub fn latent_noise(&self, shape: [usize; 3]) -> Result<Vec<f32>, NoiseError> {
        let len = checked_len(shape)?;
        let source_shape = self.noise_shape(shape);
        let source_len = checked_len(source_shape)?;
        let mut noise = randn(self.seed, source_len);
        if let Some(sub) = self.active_subseed() {
            let subnoise = randn(sub.seed, source_len);
            noise = slerp_columns(sub.strength, &noise, &subnoise, source_shape);
        }
        if source_shape == shape {
            return Ok(noise);
        }
        let mut target = randn(self.seed, len);
        paste_centred(&noise, source_shape, &mut target, shape);
        Ok(target)
    }

    /// The generator that A1111's ancestral samplers (Euler a, DPM2 a, DPM++ 2S a, …) take their
    /// per-step noise from after [`latent_noise`](Self::latent_noise): `randn(len)` on it per
    /// step gives `ImageRNG.next()`. With "Eta noise seed delta" (ENSD) ≠ 0 it is a fresh
    /// generator seeded with `seed + delta`; otherwise the seed's generator after the first
    /// latent of `shape`.
    pub fn sampler_rng(
        &self,
        shape: [usize; 3],
        eta_noise_seed_delta: u64,
    ) -> Result<TorchRng, NoiseError> {
        let len = checked_len(shape)?;
        if eta_noise_seed_delta != 0 {
            return Ok(TorchRng::new(self.seed.wrapping_add(eta_noise_seed_delta)));
        }
        let mut rng = TorchRng::new(self.seed);
        rng.randn(len);
        Ok(rng)
    }

    fn active_subseed(&self) -> Option<Subseed> {
        self.subseed.filter(|s| s.strength != 0.0)
    }

    fn noise_shape(&self, shape: [usize; 3]) -> [usize; 3] {
        match self.resize_from {
            Some([h, w]) if h > 0 && w > 0 => [shape[0], h, w],
            _ => shape,
        }
    }
}

fn checked_len(shape: [usize; 3]) -> Result<usize, NoiseError> {
    let len = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    len.filter(|&n| n <= MAX_LATENT_LEN)
        .ok_or(NoiseError::TooLarge {
            shape,
            max: MAX_LATENT_LEN,
        })
}

/// A1111's seed resize: the centre of `source` over the centre of `target` (channels equal).
fn paste_centred(source: &[f32], [c, sh, sw]: [usize; 3], target: &mut [f32], to: [usize; 3]) {
    let [_, th, tw] = to;
    let (ty, sy, rows) = centre_span(th, sh);
    let (tx, sx, cols) = centre_span(tw, sw);
    for ch in 0..c {
        for row in 0..rows {
            let from = (ch * sh + sy + row) * sw + sx;
            let into = (ch * th + ty + row) * tw + tx;
            let (Some(src), Some(dst)) = (
                source.get(from..from + cols),
                target.get_mut(into..into + cols),
            ) else {
                continue;
            };
            dst.copy_from_slice(src);
        }
    }
}

/// Where a side of `from` values lands in a side of `to` values, as A1111 computes it with
/// Python's floor division: `(target start, source start, length)`.
fn centre_span(to: usize, from: usize) -> (usize, usize, usize) {
    let (to, from) = (to as i64, from as i64);
    let d = (to - from).div_euclid(2);
    let len = if d >= 0 { from } else { from + 2 * d };
    (
        d.max(0) as usize,
        (-d).max(0) as usize,
        len.clamp(0, to) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a 64 over the little-endian bytes of the values: a fingerprint of a whole tensor.
    fn fnv(values: &[f32]) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for byte in values.iter().flat_map(|v| v.to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol, "value {i}: got {g}, want {w}");
        }
    }

    #[test]
    fn mt19937_matches_the_reference_generator() {
        let mut mt = Mt19937::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        let mut mt = Mt19937::new(5489);
        for _ in 1..10_000 {
            mt.next_u32();
        }
        // The 10000th output the C++ standard requires of `std::mt19937` (default seed 5489).
        assert_eq!(mt.next_u32(), 4_123_659_995);
        assert_eq!(Mt19937::new(0).next_u32(), 2_357_136_044);
    }

    #[test]
    fn published_torch_values_small_path() {
        // torch.manual_seed(0); torch.randn(5) and torch.randn(2, 3) (row-major).
        assert_close(
            &randn(0, 5),
            &[1.5410, -0.2934, -2.1788, 0.5684, -1.0845],
            1e-4,
        );
        assert_close(
            &randn(0, 6),
            &[1.5410, -0.2934, -2.1788, 0.5684, -1.0845, -1.3986],
            1e-4,
        );
        // torch.manual_seed(42); torch.randn(3).
        assert_close(&randn(42, 3), &[0.3367, 0.1288, 0.2345], 1e-4);
    }

    #[test]
    fn published_torch_values_fill_path() {
        // torch.manual_seed(0); torch.randn(4, 4).
        let want = [
            -1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.6920, -0.3160, -2.1152, 0.3223, -1.2633,
            0.3500, 0.3081, 0.1198, 1.2377, 1.1168, -0.2473,
        ];
        assert_close(&randn(0, 16), &want, 1e-4);
    }

    // Golden bits below were printed by torch 2.15.0 (Linux x86-64 wheel, AVX2 kernel).

    #[test]
    fn fill_path_is_bit_exact() {
        let first16 = [
            0xbf90_1b85,
            0xbf93_808a,
            0xbe80_4bd6,
            0xbede_255d,
            0x3f59_4515,
            0x3f31_2783,
            0xbea1_cc6d,
            0xc007_5fc1,
            0x3ea5_0138,
            0xbfa1_b4f4,
            0x3eb3_30ff,
            0x3e9d_c3bb,
            0x3df5_6f77,
            0x3f9e_6b93,
            0x3f8e_f28e,
            0xbe7d_367c,
        ];
        assert_eq!(bits(&randn(0, 16)), first16);
        let latent = randn(0, 4 * 64 * 64);
        assert_eq!(bits(&latent[16_382..]), [0xbfae_e87b, 0xbf8a_02b8]);
        assert_eq!(fnv(&latent), 0xdf76_3936_577c_ac18);
        assert_eq!(
            fnv(&randn(4_294_967_295, 4 * 64 * 64)),
            0xd7c7_51cb_2b47_6594
        );
        assert_eq!(
            fnv(&randn(1_234_567_890, 4 * 64 * 96)),
            0x12d5_b100_619d_3d90
        );
    }

    #[test]
    fn fill_path_redraws_the_last_16_when_not_a_multiple() {
        let odd = randn(0, 4 * 64 * 64 + 5);
        assert_eq!(bits(&odd[..3]), [0xbf90_1b85, 0xbf93_808a, 0xbe80_4bd6]);
        assert_eq!(bits(&odd[odd.len() - 2..]), [0x3fad_a23e, 0xbeb7_ed3f]);
        assert_eq!(fnv(&odd), 0xff54_5950_7f50_8517);
        assert_eq!(fnv(&randn(42, 17)), 0x91ae_8bd7_90a5_0356);
        assert_eq!(fnv(&randn(42, 31)), 0xbcc1_254f_5a30_e3c3);
    }

    #[test]
    fn small_path_is_bit_exact() {
        let want = [
            0xbe16_5174,
            0x3f49_408e,
            0x3f72_62e7,
            0xbf8e_a2d3,
            0x3fd8_6bd0,
            0xbf65_1371,
            0xbeb6_147c,
            0x3f9d_bed1,
            0x3e0d_7d22,
            0xbfd7_5248,
            0x3ea2_a6bb,
            0x3e07_fe8d,
            0x3e0c_9eb0,
            0x3e76_51b9,
            0x3fb2_9e22,
        ];
        for len in 1..16 {
            assert_eq!(bits(&randn(7, len)), want[..len], "len {len}");
        }
    }

    #[test]
    fn small_path_keeps_the_cached_value_between_calls() {
        // g = torch.Generator().manual_seed(3); torch.randn(3, generator=g) twice == randn(6).
        let mut rng = TorchRng::new(3);
        let mut two_calls = rng.randn(3);
        two_calls.extend(rng.randn(3));
        assert_eq!(two_calls, randn(3, 6));
        assert_close(
            &two_calls,
            &[0.8033, 0.1748, 0.0890, -0.6137, 0.0462, -1.3683],
            1e-4,
        );
    }

    #[test]
    fn only_the_low_32_bits_of_the_seed_count() {
        assert_eq!(randn((1 << 32) + 5, 20), randn(5, 20));
        // torch.manual_seed(-5) is torch.manual_seed(2**64 - 5).
        assert_eq!(randn(-5i64 as u64, 20), randn(u64::from(u32::MAX - 4), 20));
    }

    #[test]
    fn randn_is_deterministic() {
        assert_eq!(bits(&randn(123, 1000)), bits(&randn(123, 1000)));
        assert_ne!(randn(123, 1000), randn(124, 1000));
    }

    #[test]
    fn slerp_endpoints_are_exact() {
        let a = randn(1, 64);
        let b = randn(2, 64);
        assert_eq!(bits(&slerp(0.0, &a, &b)), bits(&a));
        assert_eq!(bits(&slerp(1.0, &a, &b)), bits(&b));
    }

    #[test]
    fn slerp_of_orthogonal_unit_vectors_stays_on_the_circle() {
        let half = slerp(0.5, &[1.0, 0.0], &[0.0, 1.0]);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert_close(&half, &[s, s], 1e-7);
        let third = slerp(1.0 / 3.0, &[2.0, 0.0], &[0.0, 2.0]);
        let angle = std::f32::consts::FRAC_PI_6;
        assert_close(&third, &[2.0 * angle.cos(), 2.0 * angle.sin()], 1e-6);
    }

    #[test]
    fn slerp_of_near_parallel_vectors_is_a_lerp() {
        let a = [1.0, 2.0, 3.0];
        let b = [1.01, 2.0, 3.0];
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| 0.75 * x + 0.25 * y).collect();
        assert_close(&slerp(0.25, &a, &b), &want, 1e-7);
    }

    #[test]
    fn slerp_a1111_keeps_the_reversed_lerp_quirk() {
        let low = randn(5, 4 * 8 * 8);
        let high: Vec<f32> = low.iter().map(|v| 2.0 * v).collect();
        let got = slerp_a1111(1.0, &low, &high, [4, 8, 8]).unwrap();
        // Parallel columns: A1111 returns low·t + high·(1 − t), so t = 1 gives `low`.
        assert_eq!(bits(&got), bits(&low));
        let got = slerp_a1111(0.3, &low, &high, [4, 8, 8]).unwrap();
        let want: Vec<f32> = low
            .iter()
            .zip(&high)
            .map(|(l, h)| l * 0.3 + h * 0.7)
            .collect();
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn slerp_a1111_interpolates_each_channel_column_on_its_own() {
        // [2 channels, 2 rows, 2 columns]. Channel 0, column 0 is (1, 0) → (1, √3), 60° apart;
        // the other three column pairs are orthogonal. The whole vectors are not.
        let root3 = 3f32.sqrt();
        let low = [1.0, 3.0, 0.0, 0.0, 2.0, 0.0, 0.0, 5.0];
        let high = [1.0, 0.0, root3, 4.0, 0.0, 1.0, 7.0, 0.0];
        let got = slerp_a1111(0.5, &low, &high, [2, 2, 2]).unwrap();
        let w60 = 1.0 / root3; // sin(30°) / sin(60°)
        let w90 = std::f32::consts::FRAC_1_SQRT_2; // sin(45°) / sin(90°)
        let weight = |i: usize| if i == 0 || i == 2 { w60 } else { w90 };
        let want: Vec<f32> = low
            .iter()
            .zip(&high)
            .enumerate()
            .map(|(i, (l, h))| weight(i) * (l + h))
            .collect();
        assert_close(&got, &want, 1e-6);
    }

    #[test]
    fn slerp_a1111_refuses_mismatched_lengths() {
        let err = slerp_a1111(0.5, &[0.0; 8], &[0.0; 7], [2, 2, 2]).unwrap_err();
        assert_eq!(
            err,
            NoiseError::Length {
                shape: [2, 2, 2],
                expected: 8,
                low: 8,
                high: 7
            }
        );
    }

    // Oracle for the A1111 tests: `ImageRNG.first()` of modules/rng.py with the "CPU" source,
    // run on torch 2.15.0 (Linux x86-64).

    #[test]
    fn latent_noise_without_subseed_is_randn() {
        let noise = NoiseSpec::new(0).latent_noise([4, 64, 64]).unwrap();
        assert_eq!(fnv(&noise), 0xdf76_3936_577c_ac18);
        let zero = NoiseSpec::new(9)
            .with_subseed(10, 0.0)
            .latent_noise([4, 8, 8])
            .unwrap();
        assert_eq!(zero, randn(9, 256));
    }

    #[test]
    fn latent_noise_with_subseed_matches_a1111() {
        let spec = NoiseSpec::new(1234).with_subseed(5678, 0.3);
        let noise = spec.latent_noise([4, 64, 64]).unwrap();
        assert_close(
            &noise[..3],
            &[0.108_401_224, -0.978_295_3, 0.170_589_06],
            1e-6,
        );
        assert_close(&noise[16_383..], &[1.191_697_4], 1e-6);
        let spec = NoiseSpec::new(42).with_subseed(43, 0.75);
        let noise = spec.latent_noise([4, 64, 96]).unwrap();
        assert_close(&noise[..3], &[0.693_129_6, 0.174_012_48, 2.479_639_3], 1e-6);
        assert_close(&noise[24_575..], &[-1.601_167_6], 1e-6);
    }

    #[test]
    fn latent_noise_at_full_strength_is_the_subseed_noise() {
        let noise = NoiseSpec::new(1234)
            .with_subseed(5678, 1.0)
            .latent_noise([4, 64, 64]);
        assert_eq!(bits(&noise.unwrap()), bits(&randn(5678, 4 * 64 * 64)));
    }

    #[test]
    fn latent_noise_with_seed_equal_to_subseed_is_the_seed_noise() {
        // shift-attention's first segment sets subseed = seed: A1111's parallel branch.
        let noise = NoiseSpec::new(1234)
            .with_subseed(1234, 0.5)
            .latent_noise([4, 64, 64]);
        assert_eq!(fnv(&noise.unwrap()), 0xdf9e_ac09_1cbe_1c5f);
    }

    #[test]
    fn latent_noise_small_shapes_use_the_small_path() {
        let noise = NoiseSpec::new(3).latent_noise([4, 2, 1]).unwrap();
        assert_eq!(fnv(&noise), 0xc562_9633_4f24_e905);
        let spec = NoiseSpec::new(3).with_subseed(9, 0.6);
        let noise = spec.latent_noise([4, 2, 3]).unwrap();
        assert_close(
            &noise[..3],
            &[-0.978_700_9, -0.312_109_65, 2.058_333_4],
            1e-6,
        );
        assert_close(&noise[23..], &[0.031_706_776], 1e-6);
    }

    #[test]
    fn latent_noise_resized_seed_matches_a1111() {
        // From a 41×83 latent (width × height) into 64×64: odd differences, both directions.
        let spec = NoiseSpec::new(7).with_resize_from(83, 41);
        assert_eq!(
            fnv(&spec.latent_noise([4, 64, 64]).unwrap()),
            0x5dba_f2fa_102e_c2a5
        );
        let spec = NoiseSpec::new(7)
            .with_subseed(8, 0.25)
            .with_resize_from(48, 80);
        let noise = spec.latent_noise([4, 64, 64]).unwrap();
        assert_close(
            &noise[..3],
            &[-0.820_134_5, 0.395_631_16, 0.898_908_5],
            1e-6,
        );
        assert_close(&noise[16_383..], &[-0.251_509_64], 1e-6);
    }

    #[test]
    fn centre_span_floors_like_python() {
        assert_eq!(centre_span(64, 48), (8, 0, 48));
        assert_eq!(centre_span(64, 83), (0, 10, 63));
        assert_eq!(centre_span(64, 41), (11, 0, 41));
        assert_eq!(centre_span(8, 11), (0, 2, 7));
    }

    #[test]
    fn latent_noise_refuses_huge_shapes() {
        let err = NoiseSpec::new(0)
            .latent_noise([4, 1 << 20, 1 << 20])
            .unwrap_err();
        assert_eq!(
            err,
            NoiseError::TooLarge {
                shape: [4, 1 << 20, 1 << 20],
                max: MAX_LATENT_LEN
            }
        );
        assert!(NoiseSpec::new(0).latent_noise([usize::MAX, 2, 2]).is_err());
    }

    #[test]
    fn batch_seeds_follow_a1111() {
        let plain = NoiseSpec::new(100);
        assert_eq!(plain.for_batch_index(3), NoiseSpec::new(103));
        let varied = NoiseSpec::new(100).with_subseed(200, 0.4);
        assert_eq!(
            varied.for_batch_index(3),
            NoiseSpec::new(100).with_subseed(203, 0.4)
        );
        let unused = NoiseSpec::new(100).with_subseed(200, 0.0);
        assert_eq!(
            unused.for_batch_index(2),
            NoiseSpec::new(102).with_subseed(202, 0.0)
        );
        let image = plain.for_batch_index(1).latent_noise([4, 8, 8]).unwrap();
        assert_eq!(image, randn(101, 256));
    }

    #[test]
    fn sampler_rng_continues_the_seed_stream() {
        let shape = [4, 64, 64];
        let mut rng = NoiseSpec::new(0).sampler_rng(shape, 0).unwrap();
        let step = rng.randn(4 * 64 * 64);
        assert_eq!(bits(&step[..3]), [0xbf0d_4521, 0x3fc5_1868, 0x3f80_749d]);
        assert_eq!(fnv(&step), 0xed12_25d6_b817_1e6a);
        let spec = NoiseSpec::new(7)
            .with_subseed(8, 0.25)
            .with_resize_from(48, 80);
        let step = spec.sampler_rng(shape, 0).unwrap().randn(4 * 64 * 64);
        assert_eq!(fnv(&step), 0xbfa6_150b_6e4b_7c36);
        let step = NoiseSpec::new(3)
            .sampler_rng([4, 2, 1], 0)
            .unwrap()
            .randn(8);
        assert_eq!(fnv(&step), 0x1800_3794_c44d_e781);
        let ensd = NoiseSpec::new(10)
            .sampler_rng(shape, 31_337)
            .unwrap()
            .randn(16);
        assert_eq!(ensd, randn(31_347, 16));
    }
}
