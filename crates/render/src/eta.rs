//! Time left for a whole render, from the time per sampling step measured so far.

/// The mean time per sampling step so far, projected over the steps left.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Eta {
    /// Sampling steps done.
    pub steps_done: usize,
    /// Seconds they took, everything around them included (decoding, encoding, previews).
    pub seconds: f64,
}

impl Eta {
    /// Seconds left for `steps_left` more steps (`None` before the first step).
    pub fn remaining(&self, steps_left: usize) -> Option<f64> {
        #[allow(clippy::cast_precision_loss, reason = "step counts are small")]
        (self.steps_done > 0).then(|| self.seconds / self.steps_done as f64 * steps_left as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::Eta;

    #[test]
    fn remaining_time_scales_with_the_mean_step() {
        assert_eq!(Eta::default().remaining(10), None);
        let eta = Eta {
            steps_done: 4,
            seconds: 8.0,
        };
        assert_eq!(eta.remaining(5), Some(10.0));
        assert_eq!(eta.remaining(0), Some(0.0));
    }
}
