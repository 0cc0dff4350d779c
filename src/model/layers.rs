//! Layers candle-nn lacks or gets subtly wrong for our use.

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

/// Names of non-trainable buffers inside a `VarMap`.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// The trainable variables of `varmap` whose names start with `prefix` (buffers excluded).
pub fn trainable_vars(varmap: &VarMap, prefix: &str) -> Vec<Var> {
    let data = varmap.data().lock().expect("var map lock");
    let mut named: Vec<(&String, &Var)> = data
        .iter()
        .filter(|(name, _)| name.starts_with(prefix) && !is_buffer(name))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

impl BatchNorm1d {
    pub fn new(channels: usize, vb: VarBuilder, varmap: &VarMap) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        let buffer = |name: &str| -> Result<Var> {
            let key = format!("{}.{name}", vb.prefix());
            varmap
                .data()
                .lock()
                .expect("var map lock")
                .get(&key)
                .cloned()
                .ok_or_else(|| {
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

/// Re-draws every randomly initialised variable from `rng`, in name order: weights of rank 2
/// or more from Kaiming normal (fan-in, ReLU gain), vectors from U(±1/sqrt(fan-in)) of the
/// sibling weight. candle's CPU backend cannot be seeded, so this is what makes a training
/// seed reproducible. Constant-initialised variables (norm scales and shifts, buffers) are
/// left as they are.
pub fn seeded_init(varmap: &VarMap, rng: &mut crate::rng::SampleRng) -> Result<()> {
    use rand::Rng;
    use rand_distr::StandardNormal;
    let data = varmap.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().filter(|n| !is_buffer(n)).collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        if values.windows(2).all(|w| w[0] == w[1]) {
            continue;
        }
        let dims = var.dims().to_vec();
        let fan_in = if dims.len() >= 2 {
            dims[1..].iter().product::<usize>()
        } else {
            let sibling = name
                .rsplit_once('.')
                .map(|(p, _)| format!("{p}.weight"))
                .unwrap_or_default();
            data.get(&sibling)
                .map(|w| w.dims()[1..].iter().product::<usize>())
                .unwrap_or(dims[0])
        } as f64;
        let fresh: Vec<f32> = if dims.len() >= 2 {
            let std = (2.0 / fan_in).sqrt();
            (0..values.len())
                .map(|_| (std * rng.sample::<f64, _>(StandardNormal)) as f32)
                .collect()
        } else {
            let bound = 1.0 / fan_in.sqrt();
            (0..values.len())
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect()
        };
        var.set(&Tensor::from_vec(fresh, dims, var.device())?)?;
    }
    Ok(())
}
