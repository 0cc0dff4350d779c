//! Layers candle-nn lacks or gets subtly wrong for our use.

use super::params;
use candle_core::{Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder, VarMap};

/// Batch normalisation over [batch, channels, time]. Unlike `candle_nn::BatchNorm`, which keeps
/// private copies of its running statistics, these live in the model's `VarMap` (as
/// `running_mean` / `running_var`), so saving, loading and best-epoch restores carry them.
/// Built from differentiable ops only.
pub struct BatchNorm1d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    momentum: f64,
    eps: f64,
}

impl BatchNorm1d {
    pub fn new(channels: usize, vb: VarBuilder, varmap: &VarMap) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        let buffer = |name: &str| -> Result<Var> {
            let key = format!("{}.{name}", vb.prefix());
            params::var(varmap, &key).ok_or_else(|| {
                candle_core::Error::Msg(format!("batch norm buffer {key} not in the var map"))
            })
        };
        Ok(BatchNorm1d {
            weight,
            bias,
            running_mean: buffer("running_mean")?,
            running_var: buffer("running_var")?,
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        let (mean, var) = if train {
            let mean = x.mean_keepdim(D::Minus1)?.mean_keepdim(0)?;
            let var = x
                .broadcast_sub(&mean)?
                .sqr()?
                .mean_keepdim(D::Minus1)?
                .mean_keepdim(0)?;
            let count = (x.dim(0)? * x.dim(D::Minus1)?) as f64;
            let m = self.momentum;
            let unbiased = count / (count - 1.0).max(1.0);
            self.running_mean.set(
                &((self.running_mean.as_tensor() * (1.0 - m))?
                    + (mean.detach().flatten_all()? * m)?)?,
            )?;
            self.running_var.set(
                &((self.running_var.as_tensor() * (1.0 - m))?
                    + (var.detach().flatten_all()? * (m * unbiased))?)?,
            )?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().reshape((1, c, 1))?,
                self.running_var.as_tensor().reshape((1, c, 1))?,
            )
        };
        let normalised = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normalised
            .broadcast_mul(&self.weight.reshape((1, c, 1))?)?
            .broadcast_add(&self.bias.reshape((1, c, 1))?)
    }
}

/// A linear layer like `candle_nn::linear` (same weight names and initialisation). With a
/// bias it is the fused `ops::linear` op; without one, candle's product.
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

fn linear_weight(in_dim: usize, out_dim: usize, vb: &VarBuilder) -> Result<Tensor> {
    vb.get_with_hints(
        (out_dim, in_dim),
        "weight",
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )
}

pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = linear_weight(in_dim, out_dim, &vb)?;
    let bound = 1.0 / (in_dim as f64).sqrt();
    let bias = vb.get_with_hints(
        out_dim,
        "bias",
        Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?;
    Ok(Linear {
        weight,
        bias: Some(bias),
    })
}

pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear {
        weight: linear_weight(in_dim, out_dim, &vb)?,
        bias: None,
    })
}

impl candle_nn::Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(bias) => crate::ops::linear(x, &self.weight, bias),
            None => candle_nn::Linear::new(self.weight.clone(), None).forward(x),
        }
    }
}

/// 1-D convolution (stride 1, optionally dilated, no padding) as K shifted views and one
/// matmul. candle 0.11.1's
/// CPU `conv1d` computes wrong kernel gradients whenever batch > 1 and out_channels > 1 (it
/// still returns non-zero gradients, so training silently stalls); every op used here has a
/// correct backward pass, which the tests check against finite differences.
pub struct Conv1d {
    weight: Tensor,
    bias: Tensor,
    dilation: usize,
}

impl Conv1d {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::dilated(in_channels, out_channels, kernel, 1, vb)
    }

    /// A convolution whose taps lie `dilation` steps apart.
    pub fn dilated(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let fan_in = (in_channels * kernel) as f64;
        let bound = 1.0 / fan_in.sqrt();
        Ok(Conv1d {
            weight: vb.get_with_hints(
                (out_channels, in_channels, kernel),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?,
            bias: vb.get_with_hints(
                out_channels,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?,
            dilation: dilation.max(1),
        })
    }

    /// How much shorter the output is than the input: (kernel − 1)·dilation (the left
    /// padding that keeps a causal convolution's length).
    pub fn reach(&self) -> usize {
        (self.weight.dims()[2] - 1) * self.dilation
    }

    /// [batch, in, length] → [batch, out, length − reach], as one [out, in·k] × [in·k,
    /// batch·length] product (a single large GEMM is much faster than one per case).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, l) = x.dims3()?;
        let (o, _, k) = self.weight.dims3()?;
        let out_len = l - self.reach();
        let shifted: Vec<Tensor> = (0..k)
            .map(|j| x.narrow(2, j * self.dilation, out_len))
            .collect::<Result<_>>()?;
        // [b, c, k, out_len] → [c, k, b, out_len] → [c·k, b·out_len]
        let columns = Tensor::stack(&shifted, 2)?
            .permute((1, 2, 0, 3))?
            .reshape((c * k, b * out_len))?;
        let y = self.weight.reshape((o, c * k))?.matmul(&columns)?; // [o, b·out_len]
        y.reshape((o, b, out_len))?
            .transpose(0, 1)?
            .broadcast_add(&self.bias.reshape((1, o, 1))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn a_dilated_conv1d_matches_candle() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let conv = Conv1d::dilated(2, 3, 3, 4, vb).unwrap();
        let x = crate::ops::testing::randn(&[2, 2, 20], 1.0);
        let reference = x
            .conv1d(&conv.weight, 0, 1, 4, 1)
            .unwrap()
            .broadcast_add(&conv.bias.reshape((1, 3, 1)).unwrap())
            .unwrap();
        let ours = conv.forward(&x).unwrap();
        assert_eq!(ours.dims(), &[2, 3, 20 - conv.reach()]);
        assert!(crate::ops::testing::max_diff(&ours, &reference) < 1e-4);
    }

    #[test]
    fn conv1d_matches_candle_forward_and_finite_difference_gradients() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let conv =
            Conv1d::new(2, 4, 5, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let x = crate::ops::testing::randn(&[3, 2, 20], 1.0);
        let reference = x
            .conv1d(&conv.weight, 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&conv.bias.reshape((1, 4, 1)).unwrap())
            .unwrap();
        let diff = crate::ops::testing::max_diff(&conv.forward(&x).unwrap(), &reference);
        assert!(diff < 1e-4, "forward differs by {diff}");

        let weight = params::var(&varmap, "weight").unwrap();
        let loss = |conv: &Conv1d| conv.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss(&conv).backward().unwrap();
        let analytic = grads
            .get(&weight)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let base = weight
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for i in (0..base.len()).step_by(3) {
            let value_at = |delta: f32| {
                let mut w = base.clone();
                w[i] += delta;
                let probe = Conv1d {
                    weight: Tensor::from_vec(w, (4, 2, 5), &dev).unwrap(),
                    bias: conv.bias.clone(),
                    dilation: 1,
                };
                loss(&probe).to_scalar::<f32>().unwrap()
            };
            let numeric = (value_at(1e-2) - value_at(-1e-2)) / 2e-2;
            assert!(
                (analytic[i] - numeric).abs() <= 2e-3 * numeric.abs().max(10.0),
                "weight {i}: {} vs {numeric}",
                analytic[i]
            );
        }
    }
}
