//! Fused CPU kernels with hand-written backward passes, for the ops that dominate a small
//! transformer's step: linear layers, LayerNorm and the tanh-approximated GELU.
//!
//! Why: every candle graph node costs a zero-filled gradient buffer and an add in the backward
//! pass, on top of its forward temporaries. A linear layer is one node here instead of five
//! (two reshapes, a transpose, the product, the bias add), and its bias gradient is a column
//! sum over contiguous rows; candle sums a broadcast add's gradient with a strided reduction
//! that took 30% of a pretraining step. Each backward is the closed form. On other devices
//! every op falls back to the differentiable composition, which the tests also use as the
//! reference (values and gradients).

use super::gemm::{gemm_new, View};
use super::kernels;
use super::storage::contiguous;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use candle_nn::Module;

/// The rows of a contiguous f32 tensor and their width, or an error naming the op.
fn rows<'a>(name: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<(&'a [f32], usize)> {
    let width = *layout.dims().last().unwrap_or(&1);
    Ok((contiguous(name, storage, layout)?, width.max(1)))
}

/// A contiguous f32 parameter vector of length `width`, or an error naming the op.
fn vector<'a>(
    name: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
    width: usize,
) -> Result<&'a [f32]> {
    let (v, _) = rows(name, storage, layout)?;
    if v.len() != width {
        candle_core::bail!(
            "{name}: expected a vector of {width}, got {:?}",
            layout.dims()
        )
    }
    Ok(v)
}

struct LinearOp;
struct LinearInputGrad;
struct LinearParamGrads;

/// (out, in) of a weight matrix, checked against the input width.
fn weight_dims(name: &str, layout: &Layout, width: usize) -> Result<(usize, usize)> {
    match layout.dims() {
        &[out, inp] if inp == width => Ok((out, inp)),
        dims => candle_core::bail!("{name}: weight {dims:?} does not take inputs of width {width}"),
    }
}

/// x·Wᵀ over the rows of `x` (`weight` [out, width]), and the product's shape: x's with the
/// last dimension `out`. A linear layer's forward, and the constant product's.
fn times_transposed(
    name: &str,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
) -> Result<(Vec<f32>, Shape)> {
    let (x, width) = rows(name, s1, l1)?;
    let (out, _) = weight_dims(name, l2, width)?;
    let (w, _) = rows(name, s2, l2)?;
    let y = gemm_new(
        x,
        View::matrix(x.len() / width, width),
        w,
        View::matrix(out, width).t(),
        1.0,
        rayon::current_num_threads(),
        0,
    );
    let mut dims = l1.dims().to_vec();
    *dims.last_mut().expect("rows() checked the rank") = out;
    Ok((y, Shape::from(dims)))
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "linear"
    }

    /// y = x·Wᵀ + b over the rows of x.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (mut y, shape) = times_transposed(self.name(), (s1, l1), (s2, l2))?;
        let bias = vector(self.name(), s3, l3, shape.dims()[shape.rank() - 1])?;
        // A separate pass: accumulating the product into a bias-filled output made gemm
        // copy the destination (3.6% of a small step, against 0.6% for this pass).
        kernels::add_to_rows(&mut y, bias);
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_x = grad.apply_op2_no_bwd(weight, &LinearInputGrad)?;
        let (out, width) = weight.dims2()?;
        let params = x.apply_op2_no_bwd(&grad, &LinearParamGrads)?;
        Ok((
            Some(grad_x),
            Some(params.narrow(0, 0, out * width)?.reshape((out, width))?),
            Some(params.narrow(0, out * width, out)?),
        ))
    }
}

impl CustomOp2 for LinearInputGrad {
    fn name(&self) -> &'static str {
        "linear-input-grad"
    }

    /// dx = g·W.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, out) = rows(self.name(), s1, l1)?;
        let (w, width) = rows(self.name(), s2, l2)?;
        let n = g.len() / out;
        let dx = gemm_new(
            g,
            View::matrix(n, out),
            w,
            View::matrix(out, width),
            1.0,
            rayon::current_num_threads(),
            0,
        );
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("rows() checked the rank") = width;
        Ok((CpuStorage::F32(dx), Shape::from(dims)))
    }
}

impl CustomOp2 for LinearParamGrads {
    fn name(&self) -> &'static str {
        "linear-param-grads"
    }

    /// dW = gᵀ·x and db = Σ_rows g, as one flat vector (dW's rows, then db).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, width) = rows(self.name(), s1, l1)?;
        let (g, out) = rows(self.name(), s2, l2)?;
        let n = x.len() / width;
        let mut params = gemm_new(
            g,
            View::matrix(n, out).t(),
            x,
            View::matrix(n, width),
            1.0,
            rayon::current_num_threads(),
            out, // the bias gradient goes after the weight's
        );
        params.resize(out * width + out, 0.0);
        kernels::column_sums(g, &mut params[out * width..]);
        Ok((CpuStorage::F32(params), Shape::from(out * width + out)))
    }
}

/// x·Wᵀ + b over the last dimension of `x` (`weight` [out, in], `bias` [out]).
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return candle_nn::Linear::new(weight.clone(), Some(bias.clone())).forward(x);
    }
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, LinearOp)
}

struct LayerNormOp {
    eps: f32,
}

/// The three gradients of LayerNorm in one pass, stacked as rows: the input gradient's rows,
/// then the weight gradient, then the bias gradient.
struct LayerNormBackward {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm"
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
        let (x, width) = rows(self.name(), s1, l1)?;
        let weight = vector(self.name(), s2, l2, width)?;
        let bias = vector(self.name(), s3, l3, width)?;
        let mut out = vec![0f32; x.len()];
        kernels::layer_norm(x, weight, bias, self.eps, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stacked = x.apply_op3_no_bwd(
            weight,
            &grad.contiguous()?,
            &LayerNormBackward { eps: self.eps },
        )?;
        let n = stacked.dim(0)? - 2;
        Ok((
            Some(stacked.narrow(0, 0, n)?.reshape(x.shape())?),
            Some(stacked.get(n)?),
            Some(stacked.get(n + 1)?),
        ))
    }
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "layer-norm-backward"
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
        let (x, width) = rows(self.name(), s1, l1)?;
        let weight = vector(self.name(), s2, l2, width)?;
        let (grad, _) = rows(self.name(), s3, l3)?;
        let n = x.len() / width;
        let mut out = vec![0f32; x.len() + 2 * width];
        let (dx, params) = out.split_at_mut(x.len());
        let (dw, db) = params.split_at_mut(width);
        kernels::layer_norm_backward(x, weight, grad, self.eps, dx, dw, db);
        Ok((CpuStorage::F32(out), Shape::from((n + 2, width))))
    }
}

/// The composition LayerNorm is built from on devices without the fused kernel.
fn layer_norm_composition(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let sigma = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps as f64)?.sqrt()?;
    centered
        .broadcast_div(&sigma)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// x·cᵀ for a constant c: candle's matmul backward also computes the gradient of its right
/// operand, even a detached one, which for the contrastive queue (65,536 × 128) cost a
/// queue-sized product, buffer and add per block and direction.
struct ConstantProduct;

impl CustomOp2 for ConstantProduct {
    fn name(&self) -> &'static str {
        "constant-product"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, shape) = times_transposed(self.name(), (s1, l1), (s2, l2))?;
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        c: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_x = grad.contiguous()?.apply_op2_no_bwd(c, &LinearInputGrad)?;
        Ok((Some(grad_x), None))
    }
}

/// x·cᵀ for x [n, E] and a constant c [M, E] (no gradient flows to c, none is computed).
pub fn times_constant(x: &Tensor, c: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.matmul(&c.detach().t()?);
    }
    x.contiguous()?.apply_op2(&c.contiguous()?, ConstantProduct)
}

/// LayerNorm over the last dimension: (x − mean) / sqrt(var + eps) · weight + bias.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return layer_norm_composition(x, weight, bias, eps);
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps },
    )
}

struct Gelu;
struct GeluBackward;

impl candle_core::CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, _) = rows(self.name(), storage, layout)?;
        let mut out = vec![0f32; x.len()];
        kernels::gelu(x, &mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluBackward)?,
        ))
    }
}

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "gelu-tanh-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, _) = rows(self.name(), s1, l1)?;
        let (grad, _) = rows(self.name(), s2, l2)?;
        let mut out = vec![0f32; x.len()];
        kernels::gelu_backward(x, grad, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// GELU with the tanh approximation (candle's `Tensor::gelu`), fused.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.gelu();
    }
    x.contiguous()?.apply_op1(Gelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{check, max_diff, randn};
    use candle_core::{Device, Var};

    #[test]
    fn fused_layer_norm_matches_the_composition() {
        check(
            &[
                randn(&[3, 5, 17], 3.0),
                randn(&[17], 1.0),
                randn(&[17], 1.0),
            ],
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-5),
            |t| layer_norm_composition(&t[0], &t[1], &t[2], 1e-5),
        );
    }

    #[test]
    fn fused_linear_matches_candles_linear() {
        check(
            &[
                randn(&[4, 6, 9], 1.0),
                randn(&[5, 9], 1.0),
                randn(&[5], 1.0),
            ],
            |t| linear(&t[0], &t[1], &t[2]),
            |t| candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())).forward(&t[0]),
        );
    }

    #[test]
    fn constant_product_matches_matmul_and_leaves_the_constant_alone() {
        let (x, c) = (randn(&[3, 5], 1.0), randn(&[7, 5], 1.0));
        // The input gradient (checked by `check` for input 0 only: c is a constant).
        check(
            &[x],
            |t| times_constant(&t[0], &c),
            |t| t[0].matmul(&c.t()?),
        );
        let (x, c) = (
            Var::from_tensor(&randn(&[3, 5], 1.0)).unwrap(),
            Var::zeros((7, 5), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        let grads = times_constant(x.as_tensor(), c.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(x.as_tensor()).is_some() && grads.get(c.as_tensor()).is_none());
    }

    #[test]
    fn fused_gelu_matches_candles_gelu() {
        check(&[randn(&[3, 5, 17], 3.0)], |t| gelu(&t[0]), |t| t[0].gelu());
    }

    #[test]
    fn non_contiguous_inputs_are_handled() {
        let x = randn(&[6, 4], 1.0).t().unwrap();
        let (w, b) = (randn(&[6], 1.0), randn(&[6], 1.0));
        let fused = layer_norm(&x, &w, &b, 1e-5).unwrap();
        let reference = layer_norm_composition(&x, &w, &b, 1e-5).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-5);
    }

    #[test]
    fn mismatched_linear_shapes_are_errors() {
        let x = randn(&[2, 3], 1.0);
        let err = linear(&x, &randn(&[4, 5], 1.0), &randn(&[4], 1.0)).unwrap_err();
        assert!(
            err.to_string().contains("does not take inputs of width 3"),
            "{err}"
        );
        let err = linear(&x, &randn(&[4, 3], 1.0), &randn(&[5], 1.0)).unwrap_err();
        assert!(err.to_string().contains("expected a vector of 4"), "{err}");
    }
}
