//! The three pretraining losses as pure functions of tensors.

use candle_core::{Result, Tensor, D};

/// MSE over patches that are both masked and real: `pred`, `target` [B, N, P]; `mask`,
/// `valid` [B, N] of 0/1. Padding patches never count, even when masked.
pub fn masked_patch_mse(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    valid: &Tensor,
) -> Result<Tensor> {
    let scored = (mask * valid)?;
    let per_patch = (pred - target)?.sqr()?.mean(D::Minus1)?;
    (per_patch * &scored)?.sum_all()? / scored.sum_all()?.maximum(1.0)?
}

/// Cross-entropy of `targets` [B, T] (u32) under `log_probs` [B, T, V], averaged over the
/// positions where `weight` [B, T] is 1.
pub fn masked_token_ce(log_probs: &Tensor, targets: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let picked = log_probs
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?;
    (picked * weight)?.sum_all()?.neg()? / weight.sum_all()?.maximum(1.0)?
}

/// One direction of InfoNCE with momentum distillation. `online`, `momentum` [B, E] and
/// `bank` [B + Q, E] (the batch's momentum features of the other modality first, then the
/// queue), all L2-normalised; `temperature` [1]. The target of row i is
/// α·softmax(momentum_i · bank / τ) + (1 − α)·one-hot(i): a single softmax.
pub fn info_nce_distilled(
    online: &Tensor,
    momentum: &Tensor,
    bank: &Tensor,
    temperature: &Tensor,
    alpha: f64,
) -> Result<Tensor> {
    let b = online.dim(0)?;
    let one_hot =
        Tensor::eye(b, online.dtype(), online.device())?.pad_with_zeros(1, 0, bank.dim(0)? - b)?;
    let sim = online.matmul(&bank.t()?)?.broadcast_div(temperature)?;
    let sim_m = momentum
        .matmul(&bank.t()?)?
        .broadcast_div(&temperature.detach())?;
    let soft = ((candle_nn::ops::softmax(&sim_m, D::Minus1)? * alpha)?
        + (one_hot * (1.0 - alpha))?)?
        .detach();
    (candle_nn::ops::log_softmax(&sim, D::Minus1)? * soft)?
        .sum(D::Minus1)?
        .mean_all()?
        .neg()
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
    fn patch_mse_counts_masked_real_patches_only() {
        // Patch errors: 1, 4, 100 (squared per element; P = 1). Patch 0 is masked and real,
        // patch 1 is real but not masked, patch 2 is masked but padding.
        let pred = t(&[1.0, 2.0, 10.0], &[1, 3, 1]);
        let target = t(&[0.0, 0.0, 0.0], &[1, 3, 1]);
        let mask = t(&[1.0, 0.0, 1.0], &[1, 3]);
        let valid = t(&[1.0, 1.0, 0.0], &[1, 3]);
        assert_eq!(
            scalar(masked_patch_mse(&pred, &target, &mask, &valid).unwrap()),
            1.0
        );
    }

    #[test]
    fn token_ce_averages_selected_positions() {
        // Two positions, vocabulary of 2; only position 1 is scored, where p(target) = 0.25.
        let log_probs = t(
            &[0.5f32.ln(), 0.5f32.ln(), 0.75f32.ln(), 0.25f32.ln()],
            &[1, 2, 2],
        );
        let targets = Tensor::from_slice(&[0u32, 1], (1, 2), &Device::Cpu).unwrap();
        let weight = t(&[0.0, 1.0], &[1, 2]);
        let loss = scalar(masked_token_ce(&log_probs, &targets, &weight).unwrap());
        assert!((loss - 4f32.ln()).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn info_nce_matches_hand_computation() {
        // B = 1, bank = [positive, one queue entry]; features are orthogonal unit vectors.
        let online = t(&[1.0, 0.0], &[1, 2]);
        let bank = t(&[1.0, 0.0, 0.0, 1.0], &[2, 2]);
        let temp = t(&[0.5], &[1]);
        // Similarities /τ: [2, 0]; log-softmax of the positive: 2 − ln(e² + 1).
        let hard = scalar(info_nce_distilled(&online, &online, &bank, &temp, 0.0).unwrap());
        let want = -(2.0f32 - (2f32.exp() + 1.0).ln());
        assert!((hard - want).abs() < 1e-5, "{hard} vs {want}");
        // With α = 1 and a momentum feature equal to the queue entry, the soft target is
        // softmax([0, 2]) = [1/(1+e²), e²/(1+e²)].
        let momentum = t(&[0.0, 1.0], &[1, 2]);
        let soft = scalar(info_nce_distilled(&online, &momentum, &bank, &temp, 1.0).unwrap());
        let p0 = 1.0 / (1.0 + 2f32.exp());
        let log_sm = [2.0 - (2f32.exp() + 1.0).ln(), -(2f32.exp() + 1.0).ln()];
        let want = -(p0 * log_sm[0] + (1.0 - p0) * log_sm[1]);
        assert!((soft - want).abs() < 1e-5, "{soft} vs {want}");
    }
}
