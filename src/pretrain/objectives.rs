//! The three pretraining losses as pure functions of tensors. Each returns a **sum** over its
//! scored items; the caller divides by the whole batch's count, so that the losses of the
//! parts of a batch (computed on different threads) add up to the batch's loss exactly.

use crate::model::fused::{contiguous, times_constant};
use crate::model::kernels;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

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
/// softmax. On the CPU one fused op (values and gradients from `kernels::distilled_nce`): the
/// composition makes a dozen passes over the [n, B + Q] logits, each a temporary, plus their
/// gradient buffers.
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
    if !sim.device().is_cpu() {
        return distilled_nce_composition(&sim, &sim_m, first_row, temperature, alpha);
    }
    let op = DistilledNce {
        first_target: first_row,
        alpha: alpha as f32,
    };
    op.check(&sim)?;
    sim.contiguous()?
        .apply_op3(&sim_m.contiguous()?, &temperature.contiguous()?, op)
}

/// The same loss from candle ops, from the similarities on: the reference of the fused op,
/// and its stand-in off the CPU.
fn distilled_nce_composition(
    sim: &Tensor,
    sim_m: &Tensor,
    first_row: usize,
    temperature: &Tensor,
    alpha: f64,
) -> Result<Tensor> {
    let (n, width) = sim.dims2()?;
    let one_hot = Tensor::eye(n, sim.dtype(), sim.device())?.pad_with_zeros(
        1,
        first_row,
        width - first_row - n,
    )?;
    let sim = sim.broadcast_div(temperature)?;
    let sim_m = sim_m.broadcast_div(&temperature.detach())?;
    let soft = ((candle_nn::ops::softmax(&sim_m, D::Minus1)? * alpha)?
        + (one_hot * (1.0 - alpha))?)?
        .detach();
    (candle_nn::ops::log_softmax(&sim, D::Minus1)? * soft)?
        .sum_all()?
        .neg()
}

/// The fused loss: inputs (online similarities [n, M], momentum similarities [n, M],
/// temperature [1]); output the summed loss (a scalar).
#[derive(Clone, Copy)]
struct DistilledNce {
    first_target: usize,
    alpha: f32,
}

/// ∂loss/∂similarities and ∂loss/∂τ, times the incoming gradient `scale`, as one flat vector
/// (the similarities' gradient, then τ's).
struct DistilledNceGrad {
    loss: DistilledNce,
    scale: f32,
}

impl DistilledNce {
    /// Every row's target column must exist.
    fn check(&self, sim: &Tensor) -> Result<()> {
        let (n, width) = sim.dims2()?;
        if self.first_target + n > width {
            candle_core::bail!(
                "info-nce: targets {}..{} outside {width} similarities",
                self.first_target,
                self.first_target + n
            )
        }
        Ok(())
    }

    /// Row losses (and, when `with_grad`, ∂loss/∂z and Σ ∂loss/∂z·z per row) of the inputs.
    fn rows(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        inv_temp: f32,
        with_grad: bool,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let name = "info-nce";
        let (online, momentum) = (contiguous(name, s1, l1)?, contiguous(name, s2, l2)?);
        let n = l1.dims()[0];
        let mut losses = vec![0f32; n];
        let (mut dz, mut dz_dot_z) = if with_grad {
            (vec![0f32; online.len()], vec![0f32; n])
        } else {
            (Vec::new(), Vec::new())
        };
        kernels::distilled_nce(
            online,
            momentum,
            inv_temp,
            self.alpha,
            self.first_target,
            &mut losses,
            with_grad.then_some((&mut dz, &mut dz_dot_z)),
        );
        Ok((losses, dz, dz_dot_z))
    }
}

impl CustomOp3 for DistilledNce {
    fn name(&self) -> &'static str {
        "info-nce"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let temperature = contiguous(self.name(), s3, l3)?[0];
        let (losses, _, _) = self.rows((s1, l1), (s2, l2), 1.0 / temperature, false)?;
        let total = losses.iter().map(|&l| l as f64).sum::<f64>() as f32;
        Ok((CpuStorage::F32(vec![total]), Shape::from(())))
    }

    fn bwd(
        &self,
        sim: &Tensor,
        sim_m: &Tensor,
        temperature: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = DistilledNceGrad {
            loss: *self,
            scale: grad.to_scalar::<f32>()?,
        };
        let flat = sim.apply_op3_no_bwd(sim_m, temperature, &op)?;
        let count = sim.elem_count();
        Ok((
            Some(flat.narrow(0, 0, count)?.reshape(sim.shape())?),
            None,
            Some(flat.narrow(0, count, 1)?.reshape(temperature.shape())?),
        ))
    }
}

impl CustomOp3 for DistilledNceGrad {
    fn name(&self) -> &'static str {
        "info-nce-grad"
    }

    /// With z = s/τ: ∂loss/∂s = ∂loss/∂z / τ and ∂loss/∂τ = −Σ ∂loss/∂z·z / τ.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let inv_temp = 1.0 / contiguous(self.name(), s3, l3)?[0];
        let (_, mut grad, dz_dot_z) = self.loss.rows((s1, l1), (s2, l2), inv_temp, true)?;
        let factor = self.scale * inv_temp;
        grad.iter_mut().for_each(|g| *g *= factor);
        grad.push(-factor * dz_dot_z.iter().sum::<f32>());
        let len = grad.len();
        Ok((CpuStorage::F32(grad), Shape::from(len)))
    }
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
    fn fused_info_nce_matches_the_composition() {
        use crate::model::fused::tests::{max_abs, max_diff};
        let dev = Device::Cpu;
        // Similarities of unit vectors lie in [-1, 1]; rows 2..5 of a batch, 9 columns.
        let sim = candle_core::Var::from_tensor(&Tensor::rand(-1f32, 1.0, (3, 9), &dev).unwrap())
            .unwrap();
        let sim_m = Tensor::rand(-1f32, 1.0, (3, 9), &dev).unwrap();
        let temp = candle_core::Var::from_tensor(&t(&[0.07], &[1])).unwrap();
        let op = DistilledNce {
            first_target: 2,
            alpha: 0.4,
        };
        let fused = sim
            .as_tensor()
            .apply_op3(&sim_m, temp.as_tensor(), op)
            .unwrap();
        let reference =
            distilled_nce_composition(sim.as_tensor(), &sim_m, 2, temp.as_tensor(), 0.4).unwrap();
        let (a, b) = (scalar(fused.clone()), scalar(reference.clone()));
        assert!((a - b).abs() < 1e-4 * b.abs(), "{a} vs {b}");
        let scaled = |x: Tensor| (x * 1.7).unwrap().backward().unwrap();
        let (ga, gb) = (scaled(fused), scaled(reference));
        for var in [&sim, &temp] {
            let (x, y) = (ga.get(var).unwrap(), gb.get(var).unwrap());
            let (diff, size) = (max_diff(x, y), max_abs(y));
            assert!(diff < 1e-4 * size, "gradients differ by {diff} (of {size})");
        }
        // A target column past the similarities is an error, not a read out of bounds.
        let late = DistilledNce {
            first_target: 7,
            alpha: 0.4,
        };
        assert!(late.check(sim.as_tensor()).is_err());
    }

    #[test]
    fn info_nce_of_row_blocks_adds_up_to_the_whole_batch() {
        let dev = Device::Cpu;
        let unit = |x: Tensor| {
            x.broadcast_div(&x.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap())
                .unwrap()
        };
        let online = unit(Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap());
        let momentum = unit(Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap());
        let (batch, queue) = (
            unit(Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap()),
            unit(Tensor::randn(0f32, 1.0, (4, 4), &dev).unwrap()),
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
}
