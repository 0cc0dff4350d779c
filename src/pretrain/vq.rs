//! A VQ-VAE series tokenizer (CrossTimeNet's stage 1): a causal dilated convolutional
//! encoder (TCN) over the window, one latent per patch, an EMA codebook with a
//! straight-through estimator, and a per-patch decoder.
//!
//! - Loss: reconstruction MSE + β·commitment (the latent's squared distance to its code,
//!   the code held constant).
//! - The codebook is not trained by gradient: each code moves to the EMA mean of the latents
//!   assigned to it (decay `decay`, Laplace-smoothed counts).
//!
//! Collapse onto a few codes is the classic failure of this tokenizer, and the reference's
//! plain version collapsed here (3 codes of 512 in use after 40 steps). Two standard fixes:
//! - latents and codes are L2-normalised, so the nearest code is the most similar one in
//!   direction (as in ViT-VQGAN), and no code is out of reach by scale;
//! - a code whose EMA count falls below `dead_below` of the uniform share (latents per step
//!   over codes) is dead, and restarts at a random latent of the batch with the uniform share
//!   as its count. At the first step every code is dead, so the codebook starts as latents of
//!   the data.

use super::towers::l2_normalize;
use crate::checks::check_count;
use crate::error::Error;
use crate::model::{linear, params, Conv1d, Linear};
use crate::ops::gelu;
use crate::rng::SampleRng;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{Init, Module, VarBuilder, VarMap};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VqConfig {
    /// Channels of the convolutional encoder.
    pub hidden: usize,
    /// Residual dilated blocks after the stem (dilations 2, 4, 8, …).
    pub blocks: usize,
    /// Dimension of a latent and of a code.
    pub latent: usize,
    pub codes: usize,
    pub decay: f64,
    /// β, the commitment weight.
    pub commitment: f64,
    /// The share of the uniform count (latents per step / codes) under which a code is dead.
    pub dead_below: f64,
}

impl Default for VqConfig {
    fn default() -> Self {
        VqConfig {
            hidden: 64,
            blocks: 3,
            latent: 64,
            codes: 512,
            decay: 0.99,
            commitment: 0.25,
            dead_below: 0.1,
        }
    }
}

impl VqConfig {
    pub fn validate(&self) -> crate::Result<()> {
        check_count("objectives.tokenizer.hidden", self.hidden, 1, 4096)?;
        check_count("objectives.tokenizer.blocks", self.blocks, 0, 12)?;
        check_count("objectives.tokenizer.latent", self.latent, 1, 4096)?;
        check_count("objectives.tokenizer.codes", self.codes, 2, 1 << 16)?;
        let open_unit = |v: f64| v > 0.0 && v < 1.0;
        if !open_unit(self.decay) {
            return Err(Error::Config(format!(
                "objectives.tokenizer.decay = {} must lie in (0, 1)",
                self.decay
            )));
        }
        for (name, v) in [
            ("objectives.tokenizer.commitment", self.commitment),
            ("objectives.tokenizer.dead_below", self.dead_below),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Config(format!(
                    "{name} = {v} must be finite and >= 0"
                )));
            }
        }
        Ok(())
    }
}

/// What one block of windows gives the tokenizer: its losses (sums over patches, over the
/// batch's patch count) and the latents with their codes, for the codebook update.
pub struct Encoded {
    pub reconstruction: Tensor,
    pub commitment: Tensor,
    pub latents: Tensor,
    pub codes: Tensor,
}

/// One step's assignments (latents [M, e] and their codes [M]) and, per code, a latent of
/// the batch to restart it at if it is dead.
pub struct CodebookUpdate {
    pub latents: Tensor,
    pub codes: Tensor,
    /// A random latent of the batch per code, the restart of a dead one.
    pub restarts: Tensor,
}

pub struct Tokenizer {
    cfg: VqConfig,
    patch: usize,
    stem: Conv1d,
    tcn: Vec<Conv1d>,
    to_latent: Linear,
    decode_hidden: Linear,
    decode_out: Linear,
    codebook: Var,
    counts: Var,
    sums: Var,
}

impl Tokenizer {
    /// Weights under `vb` (trained), the codebook and its statistics in `state`.
    pub fn new(
        cfg: &VqConfig,
        patch: usize,
        vb: VarBuilder,
        state: &VarMap,
        device: &Device,
    ) -> Result<Self> {
        let h = cfg.hidden;
        let tcn = (0..cfg.blocks)
            .map(|i| Conv1d::dilated(h, h, 3, 2 << i, vb.pp(format!("tcn.{i}"))))
            .collect::<Result<_>>()?;
        let s = VarBuilder::from_varmap(state, DType::F32, device);
        s.get_with_hints((cfg.codes, cfg.latent), "codebook", Init::Const(0.0))?;
        s.get_with_hints(cfg.codes, "code_counts", Init::Const(0.0))?;
        s.get_with_hints((cfg.codes, cfg.latent), "code_sums", Init::Const(0.0))?;
        let get = |n: &str| params::var(state, n).expect("registered above");
        Ok(Tokenizer {
            stem: Conv1d::new(1, h, 3, vb.pp("stem"))?,
            tcn,
            to_latent: linear(h * patch, cfg.latent, vb.pp("to_latent"))?,
            decode_hidden: linear(cfg.latent, h, vb.pp("decode.fc1"))?,
            decode_out: linear(h, patch, vb.pp("decode.fc2"))?,
            codebook: get("codebook"),
            counts: get("code_counts"),
            sums: get("code_sums"),
            cfg: cfg.clone(),
            patch,
        })
    }

    /// Normalised windows [B, L] → one unit latent per patch, [B, N, e].
    pub fn latents(&self, windows: &Tensor) -> Result<Tensor> {
        let (b, l) = windows.dims2()?;
        let causal = |conv: &Conv1d, x: &Tensor| -> Result<Tensor> {
            gelu(&conv.forward(&x.pad_with_zeros(2, conv.reach(), 0)?)?)
        };
        let mut h = causal(&self.stem, &windows.unsqueeze(1)?)?;
        for conv in &self.tcn {
            h = (&h + causal(conv, &h)?)?;
        }
        let (c, n) = (self.cfg.hidden, l / self.patch);
        let per_patch = h
            .reshape((b, c, n, self.patch))?
            .permute((0, 2, 1, 3))?
            .reshape((b, n, c * self.patch))?;
        l2_normalize(&self.to_latent.forward(&per_patch)?)
    }

    /// The nearest code of each unit latent [M, e] → [M] (u32): the most similar unit code.
    /// Reads the codebook only.
    pub fn nearest(&self, latents: &Tensor) -> Result<Tensor> {
        let book = self.codebook.as_tensor().detach();
        latents.detach().matmul(&book.t()?)?.argmax(D::Minus1)
    }

    /// The codes of every patch of normalised windows [B, L] → [B, N] (u32).
    pub fn tokenize(&self, windows: &Tensor) -> Result<Tensor> {
        let z = self.latents(windows)?;
        let (b, n, e) = z.dims3()?;
        self.nearest(&z.reshape((b * n, e))?)?.reshape((b, n))
    }

    /// The losses of a block of normalised windows [n, L] whose patches are `patches`
    /// [n, N, P], with sums divided by `count` (the batch's patches).
    pub fn encode(&self, windows: &Tensor, patches: &Tensor, count: f64) -> Result<Encoded> {
        let z = self.latents(windows)?;
        let (b, n, e) = z.dims3()?;
        let flat = z.reshape((b * n, e))?;
        let codes = self.nearest(&flat)?;
        let quantised = self.codebook.as_tensor().detach().index_select(&codes, 0)?;
        // Straight through: the decoder reads the code, the gradient reaches the latent.
        let through = (&flat + (&quantised - &flat)?.detach())?.reshape((b, n, e))?;
        let decoded = self
            .decode_out
            .forward(&gelu(&self.decode_hidden.forward(&through)?)?)?;
        let reconstruction = ((decoded - patches)?.sqr()?.mean(D::Minus1)?.sum_all()? / count)?;
        let commitment = (((&flat - &quantised)?.sqr()?.mean(D::Minus1)?.sum_all()? / count)?
            * self.cfg.commitment)?;
        Ok(Encoded {
            reconstruction,
            commitment,
            latents: flat.detach(),
            codes,
        })
    }

    /// One random latent of `latents` [M, e] per code (with replacement), from `rng`.
    pub fn draw_restarts(&self, latents: &Tensor, rng: &mut SampleRng) -> Result<Tensor> {
        let m = latents.dim(0)?;
        let picks: Vec<u32> = (0..self.cfg.codes)
            .map(|_| rng.random_range(0..m as u32))
            .collect();
        latents.index_select(&Tensor::new(picks, latents.device())?, 0)
    }

    /// The EMA count under which a code is dead, for steps of `latents` latents.
    fn dead_count(&self, latents: usize) -> f64 {
        self.cfg.dead_below * latents as f64 / self.cfg.codes as f64
    }

    /// The number of codes that are dead for steps of `latents` latents.
    pub fn dead_codes(&self, latents: usize) -> Result<usize> {
        let counts = self.counts.as_tensor().to_vec1::<f32>()?;
        let below = self.dead_count(latents);
        Ok(counts.iter().filter(|&&c| (c as f64) < below).count())
    }

    /// Moves the EMA counts and sums towards this step's assignments, restarts the dead
    /// codes, and sets each code to its smoothed mean.
    pub fn update_codebook(&self, update: &CodebookUpdate) -> Result<()> {
        let (k, d) = (self.cfg.codes, self.cfg.decay);
        let one_hot = candle_nn::encoding::one_hot(update.codes.clone(), k, 1f32, 0f32)?;
        let counts = ((self.counts.as_tensor() * d)? + (one_hot.sum(0)? * (1.0 - d))?)?;
        let sums =
            ((self.sums.as_tensor() * d)? + (one_hot.t()?.matmul(&update.latents)? * (1.0 - d))?)?;
        // Dead codes restart at a latent of the batch, with the uniform share as count.
        let m = update.codes.dim(0)?;
        let dead = counts.lt(self.dead_count(m))?.to_dtype(DType::F32)?;
        let alive = (1.0 - &dead)?;
        let share = m as f64 / k as f64;
        let counts = ((&counts * &alive)? + (&dead * share)?)?;
        let sums = (sums.broadcast_mul(&alive.unsqueeze(1)?)?
            + update.restarts.broadcast_mul(&dead.unsqueeze(1)?)?)?;
        let total = counts.sum_all()?.to_scalar::<f32>()? as f64;
        let eps = 1e-5;
        let smoothed = ((&counts + eps)? * (total / (total + k as f64 * eps)))?;
        self.codebook.set(&l2_normalize(
            &sums.broadcast_div(&smoothed.unsqueeze(1)?)?,
        )?)?;
        self.counts.set(&counts)?;
        self.sums.set(&sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    fn tokenizer(codes: usize) -> (Tokenizer, VarMap, VarMap) {
        let (online, state) = (VarMap::new(), VarMap::new());
        let dev = Device::Cpu;
        let cfg = VqConfig {
            hidden: 4,
            blocks: 2,
            latent: 2,
            codes,
            ..Default::default()
        };
        let vb = VarBuilder::from_varmap(&online, DType::F32, &dev);
        let t = Tokenizer::new(&cfg, 4, vb, &state, &dev).unwrap();
        params::seeded_init(&online, &mut sample_rng(0, 0)).unwrap();
        (t, online, state)
    }

    #[test]
    fn latents_are_causal_one_per_patch() {
        let (t, _, _) = tokenizer(4);
        let x = crate::ops::testing::randn(&[2, 16], 1.0);
        let z = t.latents(&x).unwrap();
        assert_eq!(z.dims(), &[2, 4, 2]);
        // Changing the last patch's values leaves the earlier patches' latents alone.
        let mut v = x.to_vec2::<f32>().unwrap();
        v[0][12..].fill(50.0);
        let z2 = t.latents(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap();
        let early = |z: &Tensor| z.narrow(1, 0, 3).unwrap();
        assert!(crate::ops::testing::max_diff(&early(&z), &early(&z2)) < 1e-6);
    }

    #[test]
    fn codes_move_to_the_mean_of_their_latents_and_dead_ones_restart() {
        let (t, _, _) = tokenizer(2);
        let dev = Device::Cpu;
        let set = |v: &Var, data: Vec<f32>, shape: &[usize]| {
            v.set(&Tensor::from_vec(data, shape, &dev).unwrap())
                .unwrap()
        };
        // Code 0 alive at (0.6, 0.8), code 1 dead (steps of 2 latents: the uniform share is
        // 1, dead is below 0.1).
        set(&t.codebook, vec![0.6, 0.8, 0.0, 0.0], &[2, 2]);
        set(&t.counts, vec![1.0, 0.05], &[2]);
        set(&t.sums, vec![0.6, 0.8, 0.0, 0.0], &[2, 2]);
        assert_eq!(t.dead_codes(2).unwrap(), 1);
        let latents = Tensor::new(&[[0f32, 1.], [0., 1.]], &dev).unwrap();
        assert_eq!(
            t.nearest(&latents).unwrap().to_vec1::<u32>().unwrap(),
            [0, 0]
        );
        let update = CodebookUpdate {
            codes: Tensor::new(&[0u32, 0], &dev).unwrap(),
            restarts: Tensor::new(&[[0.6f32, 0.8], [-0.8, 0.6]], &dev).unwrap(),
            latents,
        };
        t.update_codebook(&update).unwrap();
        let book = t.codebook.as_tensor().to_vec2::<f32>().unwrap();
        // Code 0: the direction of the EMA sum 0.99·(0.6, 0.8) + 0.01·(0, 2).
        let (x, y) = (0.99 * 0.6, 0.99 * 0.8 + 0.02);
        let norm = f32::hypot(x, y);
        assert!((book[0][0] - x / norm).abs() < 1e-4, "{book:?}");
        assert!((book[0][1] - y / norm).abs() < 1e-4, "{book:?}");
        // Code 1 was dead: it restarts at its drawn latent, with count 1.
        assert!(
            (book[1][0] + 0.8).abs() < 1e-4 && (book[1][1] - 0.6).abs() < 1e-4,
            "{book:?}"
        );
        assert_eq!(t.dead_codes(2).unwrap(), 0);
    }
}
