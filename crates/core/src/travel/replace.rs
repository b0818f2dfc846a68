//! Replace mode (prompt-travel v2.1+): the elements of the encoded conditioning that differ
//! between two stages take the next stage's values a few at a time.
//!
//! The L1 distance `|from − to|` is reduced to one value per replaced unit: per token row
//! (`token`, the mean over channels), per channel (`channel`, the mean over tokens) or per element
//! (`random` dimension). Units whose distance is above 1e-6 still differ. Each round replaces
//! `⌊n_diff / (s + 1)⌋ + 1` of them (all when fewer remain), chosen at random, most similar first
//! (smallest distance) or most different first.
//!
//! The original reduces a `[1, 77, 768]` tensor with axes meant for `[77, 768]`, so its "token"
//! acts per channel and its "channel" per element. Keyshift does what the names and the original's
//! comments say (token = a whole token row). Its random order draws from NumPy's legacy
//! `RandomState(seed).choice(remaining, count, replace=False)`, seeded from the render seed, so
//! a render is reproducible (the original uses NumPy's unseeded global state).

use serde::{Deserialize, Serialize};

use super::names;
use crate::noise::TorchRng;

/// What one replaced unit is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceDim {
    /// A whole token row.
    #[default]
    Token,
    /// A channel across all tokens.
    Channel,
    /// A single element.
    Random,
}

/// Which units go first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceOrder {
    /// At random (seeded).
    #[default]
    Random,
    /// Smallest distance first.
    Similar,
    /// Largest distance first.
    Different,
}

names!(ReplaceDim { Token = "token", Channel = "channel", Random = "random" });
names!(TokenOrder {
    Random = "random",
    MostSimilar = "most-similar",
    MostDifferent = "most-different",
    GradMin = "grad-min",
    GradMax = "grad-max",
});

/// The old (v1.2) token-ID replace's order of the differing token positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenOrder {
    /// At random (seeded: NumPy's `RandomState(seed).permutation`).
    #[default]
    Random,
    /// Smallest L1 distance of the two tokens' input embeddings first.
    MostSimilar,
    /// Largest distance first.
    MostDifferent,
    /// Smallest mean gradient (grad mode's loss, per token) first.
    GradMin,
    /// Largest mean gradient first.
    GradMax,
}

impl TokenOrder {
    /// Whether the order needs a score per position (`MostSimilar`, …: the embedding distance;
    /// `Grad…`: the mean gradient).
    pub fn scored(self) -> bool {
        self != Self::Random
    }

    /// Whether the score is a gradient.
    pub fn by_gradient(self) -> bool {
        matches!(self, Self::GradMin | Self::GradMax)
    }
}

/// Tokens replaced per frame in the original: `max(n_diff // steps, 1)`.
pub fn tokens_per_frame(n_diff: usize, steps: usize) -> usize {
    (n_diff / steps.max(1)).max(1)
}

/// The differing positions in the order they are replaced; `scores` has one value per
/// position of `differing` (ignored for `Random`).
pub fn token_order(
    differing: &[usize],
    scores: &[f32],
    order: TokenOrder,
    seed: u32,
) -> Vec<usize> {
    let mut ranked: Vec<usize> = (0..differing.len()).collect();
    let score = |i: usize| scores.get(i).copied().unwrap_or(0.0);
    match order {
        TokenOrder::Random => {
            let mut rng = TorchRng::new(u64::from(seed));
            ranked = numpy_permutation(differing.len(), &mut rng);
        }
        TokenOrder::MostSimilar | TokenOrder::GradMin => {
            ranked.sort_by(|&a, &b| score(a).total_cmp(&score(b)));
        }
        TokenOrder::MostDifferent | TokenOrder::GradMax => {
            ranked.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
        }
    }
    ranked.into_iter().map(|i| differing[i]).collect()
}
names!(ReplaceOrder { Random = "random", Similar = "similar", Different = "different" });

/// Units closer than this are the same.
pub const SAME: f32 = 1e-6;

/// The distance of each unit between `from` and `to` (both `[tokens, dim]` row-major).
pub fn distances(from: &[f32], to: &[f32], dim: usize, unit: ReplaceDim) -> Vec<f32> {
    let l1: Vec<f32> = from.iter().zip(to).map(|(a, b)| (a - b).abs()).collect();
    let dim = dim.max(1);
    let tokens = l1.len() / dim;
    #[allow(clippy::cast_precision_loss, reason = "tensor sizes are small")]
    match unit {
        ReplaceDim::Random => l1,
        ReplaceDim::Token => l1
            .chunks_exact(dim)
            .map(|row| row.iter().sum::<f32>() / dim as f32)
            .collect(),
        ReplaceDim::Channel => (0..dim)
            .map(|c| (0..tokens).map(|t| l1[t * dim + c]).sum::<f32>() / tokens as f32)
            .collect(),
    }
}

/// Units replaced per round in the original: `⌊n_diff / (steps + 1)⌋ + 1`.
pub fn per_round(dist: &[f32], steps: usize) -> usize {
    differing(dist).len() / (steps + 1) + 1
}

/// Units replaced in each of `rounds` rounds of a transition of `steps` travel steps: the
/// original's [`per_round`] every round, or, with an easing (`eased`: α after each round), as
/// many as bring the replaced share to α.
pub fn round_counts(
    dist: &[f32],
    rounds: usize,
    steps: usize,
    eased: Option<&[f64]>,
) -> Vec<usize> {
    let Some(alphas) = eased else {
        return vec![per_round(dist, steps); rounds];
    };
    let n = differing(dist).len();
    let mut done = 0;
    alphas
        .iter()
        .take(rounds)
        .map(|a| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a share of a small count"
            )]
            let target = (a.clamp(0.0, 1.0) * n as f64).round() as usize;
            let count = target.saturating_sub(done);
            done = done.max(target);
            count
        })
        .collect()
}

fn differing(dist: &[f32]) -> Vec<usize> {
    (0..dist.len()).filter(|&i| dist[i] > SAME).collect()
}

/// Which units are replaced after `rounds` rounds of `counts[j]` units each (the original:
/// [`per_round`] every round), in `order`; `seed` drives the random order.
pub fn replaced(dist: &[f32], counts: &[usize], order: ReplaceOrder, seed: u32) -> Vec<bool> {
    let mut dist = dist.to_vec();
    let mut mask = vec![false; dist.len()];
    let mut rng = TorchRng::new(u64::from(seed));
    for &count in counts {
        let remaining = differing(&dist);
        let chosen = choose(&remaining, &dist, count, order, &mut rng);
        for i in chosen {
            dist[i] = 0.0;
            mask[i] = true;
        }
    }
    mask
}

fn choose(
    remaining: &[usize],
    dist: &[f32],
    count: usize,
    order: ReplaceOrder,
    rng: &mut TorchRng,
) -> Vec<usize> {
    if remaining.len() <= count {
        return remaining.to_vec();
    }
    match order {
        ReplaceOrder::Random => numpy_permutation(remaining.len(), rng)
            .into_iter()
            .take(count)
            .map(|i| remaining[i])
            .collect(),
        ReplaceOrder::Similar | ReplaceOrder::Different => {
            let mut sorted = remaining.to_vec();
            sorted.sort_by(|&a, &b| dist[a].total_cmp(&dist[b]));
            if order == ReplaceOrder::Different {
                sorted.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]));
            }
            sorted.truncate(count);
            sorted
        }
    }
}

/// NumPy's legacy `RandomState.permutation(n)`: a Fisher–Yates shuffle of `0..n` from the end,
/// each index drawn by `random_interval` (masked 32-bit draws, rejected above the bound).
pub fn numpy_permutation(n: usize, rng: &mut TorchRng) -> Vec<usize> {
    let mut items: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = random_interval(i as u64, rng);
        items.swap(i, usize::try_from(j).unwrap_or(0));
    }
    items
}

fn random_interval(max: u64, rng: &mut TorchRng) -> u64 {
    if max == 0 {
        return 0;
    }
    let mut mask = max;
    for shift in [1, 2, 4, 8, 16, 32] {
        mask |= mask >> shift;
    }
    loop {
        let value = if max <= u64::from(u32::MAX) {
            u64::from(rng.next_u32()) & mask
        } else {
            ((u64::from(rng.next_u32()) << 32) | u64::from(rng.next_u32())) & mask
        };
        if value <= max {
            return value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_orders_rank_the_differing_positions() {
        let differing = [2, 5, 7];
        let scores = [0.5, 0.1, 0.9];
        assert_eq!(
            token_order(&differing, &scores, TokenOrder::MostSimilar, 0),
            [5, 2, 7]
        );
        assert_eq!(
            token_order(&differing, &scores, TokenOrder::GradMax, 0),
            [7, 2, 5]
        );
        // RandomState(1).permutation(3) = [0, 2, 1].
        assert_eq!(
            token_order(&differing, &scores, TokenOrder::Random, 1),
            [2, 7, 5]
        );
        assert_eq!(tokens_per_frame(7, 3), 2);
        assert_eq!(tokens_per_frame(2, 5), 1);
        assert_eq!(TokenOrder::from_name("grad-min"), Some(TokenOrder::GradMin));
    }

    #[test]
    fn numpy_permutation_matches_random_state() {
        // numpy.random.RandomState(42).permutation(10) and RandomState(7).permutation(5).
        let mut rng = TorchRng::new(42);
        assert_eq!(
            numpy_permutation(10, &mut rng),
            [8, 1, 5, 0, 7, 2, 9, 4, 3, 6]
        );
        let mut rng = TorchRng::new(7);
        assert_eq!(numpy_permutation(5, &mut rng), [0, 3, 2, 1, 4]);
    }

    #[test]
    fn distances_reduce_per_token_channel_or_element() {
        // 2 tokens × 3 channels.
        let from = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let to = [0.0, 3.0, 0.0, 1.0, 1.0, 4.0];
        assert_eq!(distances(&from, &to, 3, ReplaceDim::Token), [1.0, 1.0]);
        assert_eq!(
            distances(&from, &to, 3, ReplaceDim::Channel),
            [0.0, 1.5, 1.5]
        );
        assert_eq!(
            distances(&from, &to, 3, ReplaceDim::Random),
            [0.0, 3.0, 0.0, 0.0, 0.0, 3.0]
        );
    }

    #[test]
    fn rounds_replace_in_order() {
        let dist = [0.5, 0.0, 0.1, 0.9, 0.3];
        // 4 differ; 3 steps → ⌊4/4⌋ + 1 = 2 per round.
        assert_eq!(per_round(&dist, 3), 2);
        assert_eq!(round_counts(&dist, 2, 3, None), [2, 2]);
        assert_eq!(
            round_counts(&dist, 3, 3, Some(&[0.1, 0.5, 0.75])),
            [0, 2, 1]
        );
        let similar = replaced(&dist, &[2], ReplaceOrder::Similar, 0);
        assert_eq!(similar, [false, false, true, false, true]);
        let different = replaced(&dist, &[2], ReplaceOrder::Different, 0);
        assert_eq!(different, [true, false, false, true, false]);
        let all = replaced(&dist, &[2, 2, 2], ReplaceOrder::Random, 3);
        assert_eq!(all, [true, false, true, true, true]);
        // Random: RandomState(3).permutation(4)[:2] of the differing units [0, 2, 3, 4].
        let mut rng = TorchRng::new(3);
        let p = numpy_permutation(4, &mut rng);
        let expect: Vec<usize> = p[..2].iter().map(|&i| [0, 2, 3, 4][i]).collect();
        let random = replaced(&dist, &[2], ReplaceOrder::Random, 3);
        let got: Vec<usize> = (0..5).filter(|&i| random[i]).collect();
        let mut expect_sorted = expect;
        expect_sorted.sort_unstable();
        assert_eq!(got, expect_sorted);
    }
}
