//! AdamW with decoupled weight decay and global-norm gradient clipping. candle-nn's AdamW
//! keeps its moments private, so a checkpoint could not hold them; this one exposes its state.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
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
        let mut total = 0.0;
        for (_, v) in &self.params {
            if let Some(g) = grads.get(v) {
                total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(total.sqrt())
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
        for (i, (_, var)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let g = (g * scale)?;
            self.first[i] = ((&self.first[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.second[i] = ((&self.second[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let m_hat = (&self.first[i] / correction1)?;
            let v_hat = (&self.second[i] / correction2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            let decayed = if var.rank() >= 2 {
                (var.as_tensor() * (1.0 - lr * self.weight_decay))?
            } else {
                var.as_tensor().clone()
            };
            var.set(&(decayed - (update * lr)?)?)?;
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
}
