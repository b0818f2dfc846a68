//! Text → conditioning the A1111 way: prompt editing schedules, `AND` parts with weights,
//! 75-token chunks, and per-token emphasis applied to the encoder output with the mean restored
//! (A1111 `sd_hijack_clip.py`, emphasis mode "Original").

use burn::tensor::{Tensor, TensorData};
use keyshift_core::prompt::{Fidelity, ParsedPrompt, PromptError, ScheduleOptions};
use keyshift_core::tokens::{ClipTokenizer, ModelFamily, TokenChunk, TokenError};

use crate::clip::ClipTextModel;

/// Why a prompt could not be turned into conditioning.
#[derive(Debug, thiserror::Error)]
pub enum ConditioningError {
    /// The prompt's syntax.
    #[error("prompt: {0}")]
    Prompt(#[from] PromptError),
    /// Tokenizing.
    #[error(transparent)]
    Tokens(#[from] TokenError),
}

/// Encodes prompts with one text encoder.
pub struct TextEncoder<'a> {
    /// The encoder.
    pub clip: &'a ClipTextModel,
    /// The tokenizer.
    pub tokenizer: &'a ClipTokenizer,
    /// Padding convention of the encoder.
    pub family: ModelFamily,
    /// A1111's CLIP skip (1 = last layer).
    pub clip_skip: usize,
}

/// One `AND` part's conditioning for each stretch of steps.
#[derive(Debug, Clone)]
pub struct PartSchedule {
    /// Composable-diffusion weight.
    pub weight: f64,
    /// `(last step index, 0-based, at which it applies; embeddings [1, 77·k, dim])`.
    pub entries: Vec<(i64, Tensor<3>)>,
}

/// A whole prompt's conditioning over a run.
#[derive(Debug, Clone)]
pub struct PromptConditioning {
    /// The `AND` parts.
    pub parts: Vec<PartSchedule>,
}

impl PromptConditioning {
    /// The parts' embeddings and weights at step `step` (0-based): for each part the first entry
    /// whose last step is ≥ `step`, as A1111's `reconstruct_cond_batch`.
    pub fn at_step(&self, step: usize) -> Vec<(Tensor<3>, f64)> {
        self.parts
            .iter()
            .filter_map(|part| {
                let entry = part
                    .entries
                    .iter()
                    .find(|(end, _)| step as i64 <= *end)
                    .or(part.entries.last())?;
                Some((entry.1.clone(), part.weight))
            })
            .collect()
    }
}

impl TextEncoder<'_> {
    /// Reads `prompt` for a run of `steps` steps and encodes every scheduled text.
    pub fn prompt(
        &self,
        prompt: &str,
        steps: u32,
    ) -> Result<PromptConditioning, ConditioningError> {
        let parsed =
            ParsedPrompt::parse(prompt, ScheduleOptions::steps(steps), Fidelity::Keyshift)?;
        let mut parts = Vec::new();
        for part in parsed.parts {
            let mut entries = Vec::new();
            for scheduled in part.schedule {
                let tokens = self
                    .tokenizer
                    .prompt_chunks(&scheduled.chunks, self.family)?;
                entries.push((scheduled.end_at_step, self.encode_chunks(&tokens.chunks)));
            }
            parts.push(PartSchedule {
                weight: part.weight,
                entries,
            });
        }
        Ok(PromptConditioning { parts })
    }

    /// The token chunks of `prompt`'s first `AND` part at its first scheduled step (prompt
    /// travel's old token-ID replace works on these).
    pub fn tokens(&self, prompt: &str, steps: u32) -> Result<Vec<TokenChunk>, ConditioningError> {
        let parsed =
            ParsedPrompt::parse(prompt, ScheduleOptions::steps(steps), Fidelity::Keyshift)?;
        let chunks = parsed
            .parts
            .first()
            .and_then(|p| p.schedule.first())
            .map(|s| s.chunks.clone())
            .unwrap_or_default();
        Ok(self.tokenizer.prompt_chunks(&chunks, self.family)?.chunks)
    }

    /// Encodes weighted 77-token chunks and concatenates them along the token axis.
    ///
    /// # Shapes
    /// - returns `[1, 77·chunks.len(), dim]`
    pub fn encode_chunks(&self, chunks: &[TokenChunk]) -> Tensor<3> {
        let encoded: Vec<Tensor<3>> = chunks.iter().map(|c| self.encode_chunk(c)).collect();
        Tensor::cat(encoded, 1)
    }

    /// One chunk: encode, multiply each token by its weight, then rescale so the mean of the
    /// whole chunk is what it was before weighting.
    ///
    /// # Shapes
    /// - returns `[1, 77, dim]`
    pub fn encode_chunk(&self, chunk: &TokenChunk) -> Tensor<3> {
        let z = self.clip.forward_row(&chunk.ids, self.clip_skip);
        if chunk.weights.iter().all(|&w| w == 1.0) {
            return z;
        }
        let n = chunk.weights.len();
        let weights: Vec<f32> = chunk.weights.iter().map(|&w| w as f32).collect();
        let w = Tensor::<3>::from_data(TensorData::new(weights, [1, n, 1]), &z.device());
        let original_mean = z.clone().mean();
        let weighted = z * w;
        let new_mean = weighted.clone().mean();
        let ratio = original_mean / new_mean;
        weighted * ratio.unsqueeze::<3>()
    }
}

/// Pads embeddings to the same token count by appending `empty` (the empty prompt's chunk), as
/// A1111 does when the prompt and the negative prompt have different numbers of chunks.
///
/// # Shapes
/// - each input `[1, 77·k_i, dim]`, `empty` `[1, 77, dim]` → each `[1, 77·max k, dim]`
pub fn pad_to_same_length(contexts: Vec<Tensor<3>>, empty: &Tensor<3>) -> Vec<Tensor<3>> {
    let longest = contexts.iter().map(|c| c.dims()[1]).max().unwrap_or(0);
    let chunk = empty.dims()[1].max(1);
    contexts
        .into_iter()
        .map(|c| {
            let missing = (longest - c.dims()[1]) / chunk;
            if missing == 0 {
                return c;
            }
            let mut parts = vec![c];
            parts.extend(std::iter::repeat_n(empty.clone(), missing));
            Tensor::cat(parts, 1)
        })
        .collect()
}
