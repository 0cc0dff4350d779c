//! InfoNCE with momentum distillation over precomputed similarities, as one fused op.
//!
//! The candle composition makes a dozen passes over the [n, B + Q] logits, each a temporary,
//! plus their gradient buffers; here values and gradients come from one kernel
//! (`kernels::distilled_nce`). Off the CPU, the composition.

use super::kernels;
use super::storage::contiguous;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

/// The summed loss of rows whose similarities to the bank are `sim` [n, M] (online) and
/// `sim_m` [n, M] (momentum, a constant); row i's positive is column `first_row + i`; the
/// target is α·softmax(sim_m / τ) + (1 − α)·one-hot, and `temperature` [1] is τ.
pub fn distilled_nce(
    sim: &Tensor,
    sim_m: &Tensor,
    first_row: usize,
    temperature: &Tensor,
    alpha: f64,
) -> Result<Tensor> {
    if !sim.device().is_cpu() {
        return distilled_nce_composition(sim, sim_m, first_row, temperature, alpha);
    }
    let op = DistilledNce {
        first_target: first_row,
        alpha: alpha as f32,
    };
    op.check(sim)?;
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
    use crate::ops::testing::{max_abs, max_diff};
    use candle_core::Device;

    fn scalar(x: Tensor) -> f32 {
        x.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn fused_info_nce_matches_the_composition() {
        let dev = Device::Cpu;
        // Similarities of unit vectors lie in [-1, 1]; rows 2..5 of a batch, 9 columns.
        let sim = candle_core::Var::from_tensor(&Tensor::rand(-1f32, 1.0, (3, 9), &dev).unwrap())
            .unwrap();
        let sim_m = Tensor::rand(-1f32, 1.0, (3, 9), &dev).unwrap();
        let temp = candle_core::Var::from_tensor(&Tensor::new(&[0.07f32], &dev).unwrap()).unwrap();
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
}
