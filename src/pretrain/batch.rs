//! Turning pairs into a [`PairBatch`]: collation and this step's masks. Masks come from a
//! stream keyed by (seed, step), so a resumed run draws exactly the masks it would have drawn.

use super::loader::Pair;
use crate::rng::SampleRng;
use crate::symbolic::tokens::{first_regular_id, vocab_size, MASK, PAD};
use candle_core::{Device, Result, Tensor};
use rand::seq::index::sample;
use rand::Rng;
use std::ops::Range;

/// One batch of pairs, with the masks of this step.
pub struct PairBatch {
    /// Raw windows [B, L].
    pub series: Tensor,
    /// 1 for real patches, 0 for padding [B, N].
    pub patch_valid: Tensor,
    /// 1 for patches to mask and reconstruct [B, N] (always a subset of the valid ones).
    pub patch_mask: Tensor,
    /// Clean token ids [B, T] and their padding mask [B, T].
    pub tokens: Tensor,
    pub token_valid: Tensor,
    /// Token ids after 80/10/10 corruption [B, T] (the clean `tokens` are the targets).
    pub mlm_input: Tensor,
    /// The scored positions, as ascending flat indices `row · T + column` (kept on the host:
    /// the MLM head runs on these rows only, and a part of the batch picks its own).
    pub mlm_scored: Vec<u32>,
}

impl PairBatch {
    pub fn rows(&self) -> Result<usize> {
        self.series.dim(0)
    }

    /// Scored positions inside rows `rows`, re-based to the first of them.
    pub fn scored_in(&self, rows: &Range<usize>) -> Result<Vec<u32>> {
        let t = self.tokens.dim(1)? as u32;
        let (lo, hi) = (rows.start as u32 * t, rows.end as u32 * t);
        Ok(self
            .mlm_scored
            .iter()
            .filter(|&&p| (lo..hi).contains(&p))
            .map(|p| p - lo)
            .collect())
    }
}

pub struct MaskConfig {
    pub patch: usize,
    pub mask_ratio: f64,
    pub mlm_prob: f64,
}

pub fn collate(
    pairs: &[Pair],
    cfg: &MaskConfig,
    rng: &mut SampleRng,
    device: &Device,
) -> Result<PairBatch> {
    let b = pairs.len();
    let length = pairs[0].window.len();
    let n = length / cfg.patch;
    let t = pairs.iter().map(|p| p.tokens.len()).max().unwrap_or(2);
    let mut series = Vec::with_capacity(b * length);
    let (mut valid, mut mask) = (vec![0f32; b * n], vec![0f32; b * n]);
    let (mut tokens, mut token_valid) = (vec![PAD; b * t], vec![0f32; b * t]);
    let (mut mlm_input, mut mlm_scored) = (vec![PAD; b * t], Vec::new());
    let regular = first_regular_id()..vocab_size() as u32;
    for (i, p) in pairs.iter().enumerate() {
        series.extend_from_slice(&p.window);
        // A patch is real data only if it lies wholly inside the valid length.
        let n_valid = (p.valid_len / cfg.patch).min(n);
        valid[i * n..i * n + n_valid].fill(1.0);
        let n_mask =
            ((n_valid as f64 * cfg.mask_ratio).round() as usize).clamp(1.min(n_valid), n_valid);
        for k in sample(rng, n_valid, n_mask) {
            mask[i * n + k] = 1.0;
        }
        for (j, &id) in p.tokens.iter().enumerate() {
            tokens[i * t + j] = id;
            token_valid[i * t + j] = 1.0;
            mlm_input[i * t + j] = id;
            if regular.contains(&id) && rng.random_bool(cfg.mlm_prob) {
                mlm_scored.push((i * t + j) as u32);
                let r: f64 = rng.random();
                if r < 0.8 {
                    mlm_input[i * t + j] = MASK;
                } else if r < 0.9 {
                    mlm_input[i * t + j] = rng.random_range(regular.clone());
                }
            }
        }
    }
    Ok(PairBatch {
        series: Tensor::from_vec(series, (b, length), device)?,
        patch_valid: Tensor::from_vec(valid, (b, n), device)?,
        patch_mask: Tensor::from_vec(mask, (b, n), device)?,
        tokens: Tensor::from_vec(tokens, (b, t), device)?,
        token_valid: Tensor::from_vec(token_valid, (b, t), device)?,
        mlm_input: Tensor::from_vec(mlm_input, (b, t), device)?,
        mlm_scored,
    })
}
