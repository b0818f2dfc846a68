//! seedrandom's default generator (ARC4 keyed by a string seed), bit-exact: the same seed string
//! gives the same sequence of doubles as `seedrandom(seed)()` in JavaScript.

/// An ARC4-based generator seeded from a string, as seedrandom 3 builds it.
#[derive(Clone, Debug)]
pub struct SeedRandom {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl SeedRandom {
    /// A generator for `seed` (JS `seedrandom(seed)` with a string seed).
    pub fn new(seed: &str) -> Self {
        let key = mix_key(seed);
        let mut s = [0u8; 256];
        for (n, v) in s.iter_mut().enumerate() {
            *v = n as u8;
        }
        let key: Vec<u8> = if key.is_empty() { vec![0] } else { key };
        let mut j: u8 = 0;
        for i in 0..256 {
            let t = s[i];
            j = j.wrapping_add(key[i % key.len()]).wrapping_add(t);
            s[i] = s[usize::from(j)];
            s[usize::from(j)] = t;
        }
        let mut rng = Self { s, i: 0, j: 0 };
        // seedrandom discards the first 256 bytes of keystream.
        for _ in 0..256 {
            rng.byte();
        }
        rng
    }

    fn byte(&mut self) -> u8 {
        self.i = self.i.wrapping_add(1);
        let t = self.s[usize::from(self.i)];
        self.j = self.j.wrapping_add(t);
        let sj = self.s[usize::from(self.j)];
        self.s[usize::from(self.i)] = sj;
        self.s[usize::from(self.j)] = t;
        self.s[usize::from(sj.wrapping_add(t))]
    }

    fn bytes(&mut self, count: usize) -> f64 {
        let mut r = 0.0;
        for _ in 0..count {
            r = r * 256.0 + f64::from(self.byte());
        }
        r
    }

    /// The next double in [0, 1), with 52 significant bits, as `prng()`.
    pub fn next_f64(&mut self) -> f64 {
        const SIGNIFICANCE: f64 = 4_503_599_627_370_496.0; // 2^52
        const OVERFLOW: f64 = 9_007_199_254_740_992.0; // 2^53
        let mut n = self.bytes(6);
        let mut d = 281_474_976_710_656.0; // 2^48
        let mut x: u32 = 0;
        while n < SIGNIFICANCE {
            n = (n + f64::from(x)) * 256.0;
            d *= 256.0;
            x = u32::from(self.byte());
        }
        while n >= OVERFLOW {
            n /= 2.0;
            d /= 2.0;
            x >>= 1;
        }
        (n + f64::from(x)) / d
    }
}

/// seedrandom's `mixkey` of a string seed (UTF-16 code units) into a key of at most 256 bytes.
fn mix_key(seed: &str) -> Vec<u8> {
    let mut key: Vec<Option<u32>> = Vec::new();
    let mut smear: i32 = 0;
    for (j, unit) in seed.encode_utf16().enumerate() {
        let k = j & 255;
        if key.len() <= k {
            key.resize(k + 1, None);
        }
        // `undefined * 19` is NaN, and `smear ^= NaN` leaves smear unchanged.
        if let Some(old) = key[k] {
            smear ^= (old * 19) as i32;
        }
        key[k] = Some((smear.wrapping_add(i32::from(unit)) & 255) as u32);
    }
    key.into_iter().map(|v| v.unwrap_or(0) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_sequence() {
        // seedrandom's README: seedrandom('hello.')() is 0.9282578795792454.
        let mut g = SeedRandom::new("hello.");
        assert_eq!(g.next_f64(), 0.9282578795792454);
        assert_eq!(g.next_f64(), 0.3752569768646784);
    }
}
