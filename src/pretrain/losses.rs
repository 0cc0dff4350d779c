//! The pretraining losses the objectives share, as pure functions of tensors. Each returns a **sum** over its
//! scored items; the caller divides by the whole batch's count, so that the losses of the
//! parts of a batch (computed on different threads) add up to the batch's loss exactly.

use crate::ops::{distilled_nce, times_constant};
use candle_core::{Result, Tensor, D};

/// Squared error summed over patches that are both masked and real (each patch's error is
/// the mean over its P values): `pred`, `target` [B, N, P]; `mask`, `valid` [B, N] of 0/1.
/// Padding patches never count, even when masked.
pub fn masked_patch_se(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    valid: &Tensor,
) -> Result<Tensor> {
    let per_patch = (pred - target)?.sqr()?.mean(D::Minus1)?;
    (per_patch * (mask * valid)?)?.sum_all()
}

/// Negative log-likelihood of `targets` [S] (u32) under `log_probs` [S, V], summed (the
/// rows are the scored positions only).
pub fn token_nll(log_probs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    log_probs
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .sum_all()?
        .neg()
}

/// Cross-entropy with label smoothing ε, summed over rows: the target of a row is
/// (1 − ε)·one-hot(`targets`) + ε/V·uniform. `log_probs` [S, V], `targets` [S] (u32).
pub fn smoothed_nll(log_probs: &Tensor, targets: &Tensor, smoothing: f64) -> Result<Tensor> {
    let hard = (token_nll(log_probs, targets)? * (1.0 - smoothing))?;
    let uniform = (log_probs.mean(D::Minus1)?.sum_all()?.neg()? * smoothing)?;
    hard + uniform
}

/// The momentum features of one modality that online features are contrasted with: the
/// whole batch's [B, E], then the queue's [Q, E]. Kept as two tensors because joining them
/// would copy the whole queue every step.
#[derive(Clone, Copy)]
pub struct Bank<'a> {
    pub batch: &'a Tensor,
    pub queue: &'a Tensor,
}

impl Bank<'_> {
    /// `features` [n, E] · bank^T: [n, B + Q] (the bank is a constant of the step).
    fn similarities(&self, features: &Tensor) -> Result<Tensor> {
        Tensor::cat(
            &[
                times_constant(features, self.batch)?,
                times_constant(features, self.queue)?,
            ],
            1,
        )
    }
}

/// One direction of InfoNCE with momentum distillation, summed over rows. `online`,
/// `momentum` [n, E] are rows `first_row..first_row + n` of the batch; `bank` holds the
/// momentum features of the other modality; all L2-normalised; `temperature` [1]. The target
/// of row i is α·softmax(momentum_i · bank / τ) + (1 − α)·one-hot(first_row + i): a single
/// softmax, computed by the fused `ops::distilled_nce`.
pub fn info_nce_distilled(
    online: &Tensor,
    momentum: &Tensor,
    bank: Bank,
    first_row: usize,
    temperature: &Tensor,
    alpha: f64,
) -> Result<Tensor> {
    let sim = bank.similarities(online)?;
    let sim_m = bank.similarities(momentum)?.detach();
    distilled_nce(&sim, &sim_m, first_row, temperature, alpha)
}

/// How many rows i of `queries` [n, E] have row `first + i` of `keys` [B, E] as their
/// highest-scoring key (in-batch top-1 retrieval).
pub fn own_nearest(queries: &Tensor, keys: &Tensor, first: usize) -> Result<usize> {
    let best = queries
        .matmul(&keys.t()?)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?;
    Ok(best
        .iter()
        .enumerate()
        .filter(|&(i, &k)| k as usize == first + i)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    fn scalar(x: Tensor) -> f32 {
        x.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn patch_error_counts_masked_real_patches_only() {
        // Patch errors: 1, 4, 100 (squared per element; P = 1). Patch 0 is masked and real,
        // patch 1 is real but not masked, patch 2 is masked but padding.
        let pred = t(&[1.0, 2.0, 10.0], &[1, 3, 1]);
        let target = t(&[0.0, 0.0, 0.0], &[1, 3, 1]);
        let mask = t(&[1.0, 0.0, 1.0], &[1, 3]);
        let valid = t(&[1.0, 1.0, 0.0], &[1, 3]);
        assert_eq!(
            scalar(masked_patch_se(&pred, &target, &mask, &valid).unwrap()),
            1.0
        );
    }

    #[test]
    fn token_nll_sums_the_given_positions() {
        // Two scored positions, vocabulary of 2: p(target) = 0.5 and 0.25.
        let log_probs = t(
            &[0.5f32.ln(), 0.5f32.ln(), 0.75f32.ln(), 0.25f32.ln()],
            &[2, 2],
        );
        let targets = Tensor::from_slice(&[0u32, 1], 2, &Device::Cpu).unwrap();
        let loss = scalar(token_nll(&log_probs, &targets).unwrap());
        assert!((loss - 8f32.ln()).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn smoothed_nll_mixes_the_target_with_the_uniform() {
        // One row, V = 2, p = [0.75, 0.25], target 1, ε = 0.2: 0.9·(−ln 0.25) + 0.1·(−ln 0.75).
        let log_probs = t(&[0.75f32.ln(), 0.25f32.ln()], &[1, 2]);
        let targets = Tensor::from_slice(&[1u32], 1, &Device::Cpu).unwrap();
        let loss = scalar(smoothed_nll(&log_probs, &targets, 0.2).unwrap());
        let want = -(0.9 * 0.25f32.ln() + 0.1 * 0.75f32.ln());
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn info_nce_matches_hand_computation() {
        // B = 1, bank = [positive, one queue entry]; features are orthogonal unit vectors.
        let online = t(&[1.0, 0.0], &[1, 2]);
        let (positive, queue) = (t(&[1.0, 0.0], &[1, 2]), t(&[0.0, 1.0], &[1, 2]));
        let bank = Bank {
            batch: &positive,
            queue: &queue,
        };
        let temp = t(&[0.5], &[1]);
        // Similarities /τ: [2, 0]; log-softmax of the positive: 2 − ln(e² + 1).
        let hard = scalar(info_nce_distilled(&online, &online, bank, 0, &temp, 0.0).unwrap());
        let want = -(2.0f32 - (2f32.exp() + 1.0).ln());
        assert!((hard - want).abs() < 1e-5, "{hard} vs {want}");
        // With α = 1 and a momentum feature equal to the queue entry, the soft target is
        // softmax([0, 2]) = [1/(1+e²), e²/(1+e²)].
        let momentum = t(&[0.0, 1.0], &[1, 2]);
        let soft = scalar(info_nce_distilled(&online, &momentum, bank, 0, &temp, 1.0).unwrap());
        let p0 = 1.0 / (1.0 + 2f32.exp());
        let log_sm = [2.0 - (2f32.exp() + 1.0).ln(), -(2f32.exp() + 1.0).ln()];
        let want = -(p0 * log_sm[0] + (1.0 - p0) * log_sm[1]);
        assert!((soft - want).abs() < 1e-5, "{soft} vs {want}");
    }

    #[test]
    fn info_nce_of_row_blocks_adds_up_to_the_whole_batch() {
        let unit = |x: Tensor| {
            x.broadcast_div(&x.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap())
                .unwrap()
        };
        let online = unit(crate::ops::testing::randn(&[3, 4], 1.0));
        let momentum = unit(crate::ops::testing::randn(&[3, 4], 1.0));
        let (batch, queue) = (
            unit(crate::ops::testing::randn(&[3, 4], 1.0)),
            unit(crate::ops::testing::randn(&[4, 4], 1.0)),
        );
        let bank = Bank {
            batch: &batch,
            queue: &queue,
        };
        let temp = t(&[0.2], &[1]);
        let loss = |rows: std::ops::Range<usize>| {
            let n = rows.len();
            scalar(
                info_nce_distilled(
                    &online.narrow(0, rows.start, n).unwrap(),
                    &momentum.narrow(0, rows.start, n).unwrap(),
                    bank,
                    rows.start,
                    &temp,
                    0.3,
                )
                .unwrap(),
            )
        };
        let (whole, parts) = (loss(0..3), loss(0..1) + loss(1..3));
        assert!((whole - parts).abs() < 1e-5, "{whole} vs {parts}");
    }

    #[test]
    fn retrieval_counts_rows_whose_own_key_is_nearest() {
        let dev = Device::Cpu;
        let keys = Tensor::new(&[[1f32, 0.], [0., 1.], [0.7, 0.7]], &dev).unwrap();
        // Rows 1 and 2 of the batch: the first finds key 1, the second finds key 0.
        let queries = Tensor::new(&[[0.1f32, 1.], [1., 0.]], &dev).unwrap();
        assert_eq!(own_nearest(&queries, &keys, 1).unwrap(), 1);
        assert_eq!(own_nearest(&keys, &keys, 0).unwrap(), 3);
    }
}
