//! Momentum state shared by the objectives: EMA copies of online weights, and queues of
//! momentum features. `Momentum` is the series-symbol objective's pair of towers and queues;
//! `ema` and `FeatureQueue` serve the other objectives too. All of it lives in a state
//! `VarMap` that is checkpointed and never trained.

use super::recipe::ModelRecipe;
use super::towers::{l2_normalize, Towers};
use crate::model::params;
use crate::rng::SampleRng;
use crate::train::MovingAverage;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rayon::prelude::*;

/// The prefix of the EMA copies inside a state `VarMap`: `momentum.series.…` follows the
/// online `series.…`.
pub const PREFIX: &str = "momentum";

/// momentum ← m·momentum + (1 − m)·online, for every variable of `state` under `PREFIX`
/// whose online counterpart exists (m = 0 copies).
pub fn ema(state: &VarMap, online: &VarMap, m: f64) -> Result<()> {
    let online = params::tensors(online);
    let skip = PREFIX.len() + 1;
    let pairs: Vec<(Var, &Tensor)> = params::named(state, &format!("{PREFIX}."))
        .into_iter()
        .filter_map(|(name, mvar)| Some((mvar, online.get(&name[skip..])?)))
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

/// A ring of L2-normalised feature rows and its write position: the variables `name` and
/// `name_ptr` of a state `VarMap`.
pub struct FeatureQueue {
    pub rows: Var,
    ptr: Var,
}

impl FeatureQueue {
    pub fn new(
        state: &VarMap,
        name: &str,
        size: usize,
        dim: usize,
        device: &Device,
    ) -> Result<Self> {
        let vb = VarBuilder::from_varmap(state, DType::F32, device);
        let ptr_name = format!("{name}_ptr");
        vb.get_with_hints((size, dim), name, Init::Const(0.0))?;
        vb.get_with_hints(1, &ptr_name, Init::Const(0.0))?;
        let get = |n: &str| params::var(state, n).expect("registered above");
        Ok(FeatureQueue {
            rows: get(name),
            ptr: get(&ptr_name),
        })
    }

    /// Fills the queue with random unit vectors from `rng` (once, at the start of a run).
    pub fn fill_random(&self, rng: &mut SampleRng) -> Result<()> {
        let (q, e) = self.rows.dims2()?;
        let values: Vec<f32> = (0..q * e)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng))
            .collect();
        self.rows.set(&l2_normalize(&Tensor::from_vec(
            values,
            (q, e),
            self.rows.device(),
        )?)?)
    }

    /// The rows, as a constant of the step. Detached: they are a variable, and otherwise
    /// every block's backward pass would build (and throw away) a queue-sized gradient.
    pub fn constant(&self) -> Tensor {
        self.rows.as_tensor().detach()
    }

    pub fn position(&self) -> Result<usize> {
        Ok(self.ptr.as_tensor().to_vec1::<f32>()?[0] as usize)
    }

    /// Writes `features` [n, E] at the write position, wrapping around the end, in place (a
    /// new queue per step would copy all of it), and moves the position.
    pub fn push(&self, features: &Tensor) -> Result<()> {
        let ptr = self.position()?;
        let q = self.rows.dim(0)?;
        let n = features.dim(0)?.min(q);
        let first = n.min(q - ptr);
        let rows = features.contiguous()?;
        self.rows.slice_set(&rows.narrow(0, 0, first)?, 0, ptr)?;
        if first < n {
            self.rows
                .slice_set(&rows.narrow(0, first, n - first)?, 0, 0)?;
        }
        self.ptr
            .set(&Tensor::new(&[((ptr + n) % q) as f32], self.ptr.device())?)
    }
}

/// The series-symbol objective's momentum side: EMA copies of both towers and the queues
/// of their features.
pub struct Momentum {
    pub state: VarMap,
    pub towers: Towers,
    pub queue_series: FeatureQueue,
    pub queue_symbol: FeatureQueue,
}

impl Momentum {
    pub fn new(cfg: &ModelRecipe, queue_size: usize, device: &Device) -> Result<Self> {
        let state = VarMap::new();
        let vb = VarBuilder::from_varmap(&state, DType::F32, device);
        let towers = Towers::new(cfg, &vb.pp(PREFIX))?;
        let e = cfg.proj_dim.unwrap_or(0);
        Ok(Momentum {
            queue_series: FeatureQueue::new(&state, "queue_series", queue_size, e, device)?,
            queue_symbol: FeatureQueue::new(&state, "queue_symbol", queue_size, e, device)?,
            towers,
            state,
        })
    }

    /// Starts the momentum towers as exact copies of `online` and fills the queues with
    /// random unit vectors drawn from `rng` (once, after the online weights are initialised).
    pub fn init(&self, online: &VarMap, rng: &mut SampleRng) -> Result<()> {
        ema(&self.state, online, 0.0)?;
        self.queue_series.fill_random(rng)?;
        self.queue_symbol.fill_random(rng)
    }

    pub fn ema(&self, online: &VarMap, m: f64) -> Result<()> {
        ema(&self.state, online, m)
    }

    /// The queues, as constants of the step.
    pub fn queues(&self) -> (Tensor, Tensor) {
        (self.queue_series.constant(), self.queue_symbol.constant())
    }

    /// Writes this step's momentum features into the queues.
    pub fn enqueue(&self, features: &(Tensor, Tensor)) -> Result<()> {
        self.queue_series.push(&features.0)?;
        self.queue_symbol.push(&features.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_writes_wrap_around() {
        let dev = Device::Cpu;
        let state = VarMap::new();
        let queue = FeatureQueue::new(&state, "q", 5, 2, &dev).unwrap();
        queue
            .push(&Tensor::new(&[[9f32, 9.], [9., 9.], [9., 9.]], &dev).unwrap())
            .unwrap();
        let rows = Tensor::new(&[[1f32, 1.], [2., 2.], [3., 3.]], &dev).unwrap();
        queue.push(&rows).unwrap();
        let got = queue.rows.as_tensor().to_vec2::<f32>().unwrap();
        assert_eq!(
            got,
            vec![
                vec![3., 3.],
                vec![9., 9.],
                vec![9., 9.],
                vec![1., 1.],
                vec![2., 2.]
            ]
        );
        assert_eq!(queue.position().unwrap(), 1);
    }
}
