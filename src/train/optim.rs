//! AdamW with decoupled weight decay and global-norm gradient clipping. candle-nn's AdamW
//! keeps its moments private, so a checkpoint could not hold them; this one exposes its state.

use crate::ops::{contiguous, contiguous_mut};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;
use std::collections::HashMap;

pub struct AdamW {
    params: Vec<(String, Var)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    steps: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        let first = params
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_>>()?;
        let second = params
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_>>()?;
        Ok(AdamW {
            params,
            first,
            second,
            steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// Global L2 norm of the gradients of every parameter.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let squares: Vec<f64> = self
            .params
            .par_iter()
            .filter_map(|(_, v)| grads.get(v))
            .map(|g| Ok(g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64))
            .collect::<Result<_>>()?;
        Ok(squares.iter().sum::<f64>().sqrt())
    }

    /// One update at learning rate `lr`, with gradients scaled so their global norm is at
    /// most `clip`. Weight decay applies to matrices only (not to biases, norms or scalars).
    /// Returns the norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, clip: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        let scale = if norm > clip {
            clip / (norm + 1e-12)
        } else {
            1.0
        };
        self.steps += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let correction1 = 1.0 - b1.powi(self.steps as i32);
        let correction2 = 1.0 - b2.powi(self.steps as i32);
        let step_of = |var: &Var| Step {
            grad_scale: scale as f32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            lr: lr as f32,
            keep: (1.0
                - lr * if var.rank() >= 2 {
                    self.weight_decay
                } else {
                    0.0
                }) as f32,
            correction1: correction1 as f32,
            correction2: correction2 as f32,
            eps: self.eps as f32,
        };
        let updates = self
            .params
            .iter()
            .zip(self.first.iter_mut().zip(&mut self.second));
        let on_cpu = self.params.iter().all(|(_, v)| v.device().is_cpu());
        if on_cpu {
            // In place, one parameter per task (each touches only its own three tensors).
            let updates: Vec<_> = updates.collect();
            updates.into_par_iter().try_for_each(|((_, var), (m, v))| {
                let Some(g) = grads.get(var) else {
                    return Ok(());
                };
                step_of(var).in_place(var, m, v, &g.contiguous()?)
            })?;
        } else {
            for ((_, var), (m, v)) in updates {
                let Some(g) = grads.get(var) else { continue };
                let (m_next, v_next, p_next) = step_of(var).composed(var.as_tensor(), m, v, g)?;
                (*m, *v) = (m_next, v_next);
                var.set(&p_next)?;
            }
        }
        Ok(norm)
    }

    /// Moments and step count, keyed by parameter name, for a checkpoint.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("m.{name}"), self.first[i].clone());
            out.insert(format!("v.{name}"), self.second[i].clone());
        }
        out.insert(
            "steps".into(),
            Tensor::new(
                &[self.steps as f32],
                self.first
                    .first()
                    .map(|t| t.device())
                    .unwrap_or(&candle_core::Device::Cpu),
            )?,
        );
        Ok(out)
    }

    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |key: String| {
            state
                .get(&key)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks {key}")))
        };
        for (i, (name, _)) in self.params.iter().enumerate() {
            self.first[i] = get(format!("m.{name}"))?;
            self.second[i] = get(format!("v.{name}"))?;
        }
        self.steps = get("steps".into())?.to_vec1::<f32>()?[0] as usize;
        Ok(())
    }
}

/// Linear warm-up to `peak`, then cosine decay to `floor` at `total` steps.
pub fn learning_rate(step: usize, peak: f64, floor: f64, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = ((step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64).min(1.0);
    floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// One parameter's AdamW update: m ← β₁·m + (1 − β₁)·ĝ, v ← β₂·v + (1 − β₂)·ĝ² with
/// ĝ = grad_scale·g, then p ← keep·p − lr·(m / c₁) / (sqrt(v / c₂) + ε), keep = 1 − lr·decay.
#[derive(Clone, Copy)]
struct Step {
    grad_scale: f32,
    beta1: f32,
    beta2: f32,
    lr: f32,
    keep: f32,
    correction1: f32,
    correction2: f32,
    eps: f32,
}

impl Step {
    /// Three passes over memory, in place. The tensor-op form (`composed`) allocates a
    /// temporary per operation, a dozen per parameter and step.
    fn in_place(&self, param: &Var, m: &Tensor, v: &Tensor, g: &Tensor) -> Result<()> {
        let average = |keep: f32, squared: bool| MovingAverage {
            keep,
            scale: self.grad_scale,
            squared,
        };
        m.inplace_op2(g, &average(self.beta1, false))?;
        v.inplace_op2(g, &average(self.beta2, true))?;
        param.as_tensor().inplace_op3(m, v, self)
    }

    /// The same update from tensor ops (devices without the in-place kernels): the new
    /// (m, v, parameter).
    fn composed(
        &self,
        p: &Tensor,
        m: &Tensor,
        v: &Tensor,
        g: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b1, b2) = (self.beta1 as f64, self.beta2 as f64);
        let g = (g * self.grad_scale as f64)?;
        let m = ((m * b1)? + (&g * (1.0 - b1))?)?;
        let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
        let m_hat = (&m / self.correction1 as f64)?;
        let v_hat = (&v / self.correction2 as f64)?;
        let update = (m_hat / (v_hat.sqrt()? + self.eps as f64)?)?;
        let p = ((p * self.keep as f64)? - (update * self.lr as f64)?)?;
        Ok((m, v, p))
    }
}

/// a ← keep·a + (1 − keep)·h(scale·b) in one pass, in place, with h the identity or (when
/// `squared`) the square: AdamW's two moments, and the momentum encoders' EMA.
pub struct MovingAverage {
    pub keep: f32,
    pub scale: f32,
    pub squared: bool,
}

impl InplaceOp2 for MovingAverage {
    fn name(&self) -> &'static str {
        "moving-average"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let average = contiguous_mut(self.name(), s1, l1)?;
        let source = contiguous(self.name(), s2, l2)?;
        for (a, b) in average.iter_mut().zip(source) {
            let b = b * self.scale;
            *a = self.keep * *a + (1.0 - self.keep) * if self.squared { b * b } else { b };
        }
        Ok(())
    }
}

impl InplaceOp3 for Step {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let param = contiguous_mut(self.name(), s1, l1)?;
        let first = contiguous(self.name(), s2, l2)?;
        let second = contiguous(self.name(), s3, l3)?;
        for ((p, m), v) in param.iter_mut().zip(first).zip(second) {
            let update = (m / self.correction1) / ((v / self.correction2).sqrt() + self.eps);
            *p = self.keep * *p - self.lr * update;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((learning_rate(0, 1.0, 0.1, 10, 110) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 1.0, 0.1, 10, 110) - 1.0).abs() < 1e-12);
        assert!((learning_rate(60, 1.0, 0.1, 10, 110) - 0.55).abs() < 1e-12);
        assert!((learning_rate(110, 1.0, 0.1, 10, 110) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn clipping_bounds_the_update_and_adam_descends() {
        let dev = Device::Cpu;
        let w = Var::new(&[3.0f32, -4.0], &dev).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], 0.0).unwrap();
        for _ in 0..200 {
            let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 100.0).unwrap();
            let grads = loss.backward().unwrap();
            let norm = opt.step(&grads, 0.05, 1.0).unwrap();
            assert!(norm >= 0.0);
        }
        let v = w.as_tensor().to_vec1::<f32>().unwrap();
        assert!(v[0].abs() < 0.1 && v[1].abs() < 0.1, "{v:?}");
    }

    #[test]
    fn the_in_place_update_matches_the_tensor_ops() {
        let dev = Device::Cpu;
        let randn = |seed: f32| {
            Tensor::arange(0f32, 12.0, &dev)
                .unwrap()
                .affine(seed as f64, 0.3)
                .unwrap()
                .sin()
                .unwrap()
                .reshape((3, 4))
                .unwrap()
        };
        let step = Step {
            grad_scale: 0.7,
            beta1: 0.9,
            beta2: 0.999,
            lr: 0.01,
            keep: 0.999,
            correction1: 0.19,
            correction2: 0.002,
            eps: 1e-8,
        };
        let (p, m, v, g) = (
            randn(1.0),
            randn(2.0),
            randn(3.0).abs().unwrap(),
            randn(4.0),
        );
        let (m2, v2, p2) = step.composed(&p, &m, &v, &g).unwrap();
        let param = Var::from_tensor(&p).unwrap();
        let (m1, v1) = (m.copy().unwrap(), v.copy().unwrap());
        step.in_place(&param, &m1, &v1, &g).unwrap();
        for (a, b) in [(&m1, &m2), (&v1, &v2), (param.as_tensor(), &p2)] {
            let diff = crate::ops::testing::max_diff(a, b);
            assert!(diff < 1e-6, "differs by {diff}");
        }
    }

    #[test]
    fn without_decay_or_clipping_it_is_candle_nns_adamw() {
        // The transfer harness once used candle-nn's AdamW; ours replaced it. Same settings,
        // same trajectory, up to f32 rounding.
        use candle_nn::Optimizer;
        let dev = Device::Cpu;
        let start = Tensor::new(&[[0.5f32, -1.5, 2.0], [1.0, 0.25, -0.75]], &dev).unwrap();
        let (ours, theirs) = (
            Var::from_tensor(&start).unwrap(),
            Var::from_tensor(&start).unwrap(),
        );
        let mut opt = AdamW::new(vec![("w".into(), ours.clone())], 0.0).unwrap();
        let params = candle_nn::ParamsAdamW {
            lr: 0.01,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut reference = candle_nn::AdamW::new(vec![theirs.clone()], params).unwrap();
        let loss = |w: &Var| {
            w.as_tensor()
                .sin()
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        for _ in 0..50 {
            opt.step(&loss(&ours).backward().unwrap(), 0.01, f64::INFINITY)
                .unwrap();
            reference.backward_step(&loss(&theirs)).unwrap();
        }
        let diff = crate::ops::testing::max_diff(ours.as_tensor(), theirs.as_tensor());
        assert!(diff < 1e-5, "trajectories differ by {diff}");
        assert!(crate::ops::testing::max_diff(ours.as_tensor(), &start) > 0.1);
    }
}
