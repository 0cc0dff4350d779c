//! The momentum side of the contrastive objective: EMA copies of both towers and the
//! feature queues they fill. It lives in its own `VarMap` (checkpointed, never trained).

use super::recipe::{ModelRecipe, ObjectiveConfig};
use super::towers::{l2_normalize, Towers};
use crate::model::params;
use crate::rng::SampleRng;
use crate::train::MovingAverage;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rayon::prelude::*;

pub struct Momentum {
    pub state: VarMap,
    pub towers: Towers,
    pub queue_series: Var,
    pub queue_symbol: Var,
    queue_ptr: Var,
}

const PREFIX: &str = "momentum.";

impl Momentum {
    pub fn new(cfg: &ModelRecipe, objectives: &ObjectiveConfig, device: &Device) -> Result<Self> {
        let state = VarMap::new();
        let vb = VarBuilder::from_varmap(&state, DType::F32, device);
        let towers = Towers::new(cfg, &vb.pp(PREFIX.trim_end_matches('.')))?;
        let (q, e) = (objectives.queue_size, cfg.proj_dim);
        vb.get_with_hints((q, e), "queue_series", Init::Const(0.0))?;
        vb.get_with_hints((q, e), "queue_symbol", Init::Const(0.0))?;
        vb.get_with_hints(1, "queue_ptr", Init::Const(0.0))?;
        let get = |name: &str| params::var(&state, name).expect("registered above");
        Ok(Momentum {
            queue_series: get("queue_series"),
            queue_symbol: get("queue_symbol"),
            queue_ptr: get("queue_ptr"),
            towers,
            state,
        })
    }

    /// Starts the momentum towers as exact copies of `online` and fills the queues with
    /// random unit vectors drawn from `rng` (once, after the online weights are initialised).
    pub fn init(&self, online: &VarMap, rng: &mut SampleRng) -> Result<()> {
        self.ema(online, 0.0)?;
        for queue in [&self.queue_series, &self.queue_symbol] {
            let (q, e) = queue.dims2()?;
            let values: Vec<f32> = (0..q * e)
                .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng))
                .collect();
            queue.set(&l2_normalize(&Tensor::from_vec(
                values,
                (q, e),
                queue.device(),
            )?)?)?;
        }
        Ok(())
    }

    /// momentum ← m·momentum + (1 − m)·online, for every tower variable.
    pub fn ema(&self, online: &VarMap, m: f64) -> Result<()> {
        let online = params::tensors(online);
        let pairs: Vec<(Var, &Tensor)> = params::named(&self.state, PREFIX)
            .into_iter()
            .filter_map(|(name, mvar)| Some((mvar, online.get(&name[PREFIX.len()..])?)))
            .collect();
        // One variable per task; each update touches only its own momentum tensor.
        pairs.into_par_iter().try_for_each(|(mvar, src)| {
            if mvar.device().is_cpu() {
                mvar.as_tensor().inplace_op2(
                    src,
                    &MovingAverage {
                        keep: m as f32,
                        scale: 1.0,
                        squared: false,
                    },
                )
            } else {
                mvar.set(&((mvar.as_tensor() * m)? + (src * (1.0 - m))?)?)
            }
        })
    }

    /// The queues, as constants of the step. Detached: they are variables, and otherwise
    /// every block's backward pass would build (and throw away) a queue-sized gradient.
    pub fn queues(&self) -> (Tensor, Tensor) {
        (
            self.queue_series.as_tensor().detach(),
            self.queue_symbol.as_tensor().detach(),
        )
    }

    pub fn queue_position(&self) -> Result<usize> {
        Ok(self.queue_ptr.as_tensor().to_vec1::<f32>()?[0] as usize)
    }

    /// Writes this step's momentum features into the queues and moves the pointer.
    pub fn enqueue(&self, features: &(Tensor, Tensor)) -> Result<()> {
        let ptr = self.queue_position()?;
        write_wrapping(&self.queue_series, ptr, &features.0)?;
        write_wrapping(&self.queue_symbol, ptr, &features.1)?;
        let next = (ptr + features.0.dim(0)?) % self.queue_series.dim(0)?;
        self.queue_ptr
            .set(&Tensor::new(&[next as f32], self.queue_ptr.device())?)
    }
}

/// Writes `rows` into `queue` at `ptr`, wrapping around the end, in place (a new queue per
/// step would copy all of it).
fn write_wrapping(queue: &Var, ptr: usize, rows: &Tensor) -> Result<()> {
    let q = queue.dim(0)?;
    let n = rows.dim(0)?.min(q);
    let first = n.min(q - ptr);
    let rows = rows.contiguous()?;
    queue.slice_set(&rows.narrow(0, 0, first)?, 0, ptr)?;
    if first < n {
        queue.slice_set(&rows.narrow(0, first, n - first)?, 0, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_writes_wrap_around() {
        let dev = Device::Cpu;
        let queue = Var::zeros((5, 2), DType::F32, &dev).unwrap();
        let rows = Tensor::new(&[[1f32, 1.], [2., 2.], [3., 3.]], &dev).unwrap();
        write_wrapping(&queue, 3, &rows).unwrap();
        let got = queue.as_tensor().to_vec2::<f32>().unwrap();
        assert_eq!(
            got,
            vec![
                vec![3., 3.],
                vec![0., 0.],
                vec![0., 0.],
                vec![1., 1.],
                vec![2., 2.]
            ]
        );
    }
}
