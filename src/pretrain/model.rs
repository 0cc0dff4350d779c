//! The SymTime-style series-symbol model and its three objectives.
//!
//! - Masked-patch modelling: a share of the real (never padding) patches is replaced by the
//!   mask embedding and their normalised values are reconstructed; MSE over those patches only.
//! - Masked-symbol modelling: 15% of the expression's tokens, 80/10/10
//!   ([MASK] / random token / unchanged); cross-entropy over those positions only.
//! - Series-symbol contrastive learning with momentum distillation (ALBEF): InfoNCE in both
//!   directions between the [CLS] projections of the **unmasked** views, against queues of
//!   momentum features, with targets α·softmax(momentum similarities) + (1 − α)·one-hot (one
//!   softmax, not two) and a learnable temperature clamped to `TEMPERATURE_RANGE`.
//!
//! The momentum copies and queues are `momentum::Momentum`; the step's data parallelism is
//! `train::block_gradients`.

use super::batch::PairBatch;
use super::momentum::Momentum;
use super::objectives::{info_nce_distilled, masked_patch_se, token_nll, Bank};
use super::recipe::{ModelRecipe, ObjectiveConfig, TEMPERATURE_RANGE};
use super::towers::Towers;
use crate::model::{instance_norm, linear, linear_no_bias, params, Linear};
use crate::rng::SampleRng;
use crate::symbolic::tokens::vocab_size;
use crate::train::{block_gradients, row_blocks};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{Init, Module, VarBuilder, VarMap};
use rayon::prelude::*;
use std::ops::Range;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    pub total: f32,
    pub mpm: f32,
    pub mlm: f32,
    pub itc: f32,
    /// Share of the batch's series whose nearest symbol (cosine, online series projection
    /// against the batch's momentum symbol features) is their own: a contrastive metric a
    /// person can read (1 / batch is chance). Not a loss: nothing is trained on it.
    pub retrieval: f32,
}

impl Losses {
    fn add(&mut self, other: &Losses) {
        self.total += other.total;
        self.mpm += other.mpm;
        self.mlm += other.mlm;
        self.itc += other.itc;
        self.retrieval += other.retrieval;
    }
}

/// What every block of a batch shares: the normalised patches, the momentum features of the
/// whole batch and the queues, and the counts the losses are divided by.
struct Shared {
    patches: Tensor,
    momentum: (Tensor, Tensor),
    queues: (Tensor, Tensor),
    scored_patches: f64,
    scored_tokens: f64,
    alpha: f64,
}

pub struct SymTime {
    pub cfg: ModelRecipe,
    pub objectives: ObjectiveConfig,
    /// Trainable weights (online encoders, projections, heads, temperature).
    pub online: VarMap,
    /// Momentum copies and queues (checkpointed, never trained).
    pub momentum: Momentum,
    towers: Towers,
    reconstruct: Linear,
    mlm_head: Linear,
    temperature: Var,
}

impl SymTime {
    pub fn new(cfg: &ModelRecipe, objectives: &ObjectiveConfig, device: &Device) -> Result<Self> {
        let online = VarMap::new();
        let vb = VarBuilder::from_varmap(&online, DType::F32, device);
        let towers = Towers::new(cfg, &vb)?;
        let reconstruct = linear_no_bias(
            cfg.series.transformer.d_model,
            cfg.series.patch,
            vb.pp("reconstruct"),
        )?;
        let mlm_head = linear(
            cfg.symbol.transformer.d_model,
            vocab_size(),
            vb.pp("mlm_head"),
        )?;
        vb.get_with_hints(1, "temperature", Init::Const(objectives.temperature))?;
        Ok(SymTime {
            temperature: params::var(&online, "temperature").expect("registered above"),
            momentum: Momentum::new(cfg, objectives, device)?,
            cfg: cfg.clone(),
            objectives: objectives.clone(),
            online,
            towers,
            reconstruct,
            mlm_head,
        })
    }

    /// Draws the online weights from `rng`, then starts the momentum towers as their copies
    /// and fills the queues (a fresh run; a resumed one restores all of it instead).
    pub fn init(&self, rng: &mut SampleRng) -> Result<()> {
        params::seeded_init(&self.online, rng)?;
        self.momentum.init(&self.online, rng)
    }

    pub fn trainable(&self) -> Vec<(String, Var)> {
        params::trainable(&self.online, "")
    }

    pub fn temperature(&self) -> Result<f32> {
        Ok(self.temperature.as_tensor().to_vec1::<f32>()?[0])
    }

    /// The learnable temperature inside `TEMPERATURE_RANGE`.
    fn clamped_temperature(&self) -> Result<Tensor> {
        let (lo, hi) = TEMPERATURE_RANGE;
        self.temperature.as_tensor().clamp(lo, hi)
    }

    /// Gradients and losses of one batch; `alpha` is this step's distillation weight. Returns
    /// the gradients of the weighted total, the losses, and the momentum features to enqueue
    /// after the step. The batch is cut into one block of rows per rayon thread.
    pub fn gradients(
        &self,
        batch: &PairBatch,
        alpha: f64,
    ) -> Result<(GradStore, Losses, (Tensor, Tensor))> {
        self.gradients_in_parts(batch, alpha, rayon::current_num_threads())
    }

    fn gradients_in_parts(
        &self,
        batch: &PairBatch,
        alpha: f64,
        parts: usize,
    ) -> Result<(GradStore, Losses, (Tensor, Tensor))> {
        let blocks = row_blocks(batch.rows()?, parts);
        let patches = self
            .towers
            .series
            .patchify(&instance_norm(&batch.series)?)?;
        // The momentum features of the whole batch come first (every block's contrastive
        // loss needs them all); each sample's features depend on that sample only.
        let momentum: Vec<(Tensor, Tensor)> = blocks
            .par_iter()
            .map(|rows| {
                let block = |t: &Tensor| t.narrow(0, rows.start, rows.len());
                self.momentum.towers.features(
                    &block(&patches)?,
                    &block(&batch.patch_valid)?,
                    &block(&batch.tokens)?,
                    &block(&batch.token_valid)?,
                )
            })
            .collect::<Result<_>>()?;
        let join = |pick: fn(&(Tensor, Tensor)) -> &Tensor| -> Result<Tensor> {
            Ok(Tensor::cat(&momentum.iter().map(pick).collect::<Vec<_>>(), 0)?.detach())
        };
        let (s_m, y_m) = (join(|m| &m.0)?, join(|m| &m.1)?);
        let shared = Shared {
            patches,
            momentum: (s_m.clone(), y_m.clone()),
            queues: self.momentum.queues(),
            scored_patches: (&batch.patch_mask * &batch.patch_valid)?
                .sum_all()?
                .to_scalar::<f32>()?
                .max(1.0) as f64,
            scored_tokens: batch.mlm_scored.len().max(1) as f64,
            alpha,
        };
        let (grads, block_losses) = block_gradients(blocks, &self.trainable(), |rows| {
            self.block_losses(batch, &shared, rows)
        })?;
        let mut losses = Losses::default();
        for l in &block_losses {
            losses.add(l);
        }
        Ok((grads, losses, (s_m, y_m)))
    }

    /// The weighted losses of rows `rows` of the batch, each divided by the whole batch's
    /// count, so that the blocks of a batch add up to its losses.
    fn block_losses(
        &self,
        batch: &PairBatch,
        shared: &Shared,
        rows: Range<usize>,
    ) -> Result<(Tensor, Losses)> {
        let o = &self.objectives;
        let (first, n) = (rows.start, rows.len());
        let block = |t: &Tensor| t.narrow(0, first, n);
        let (patches, mask, valid) = (
            block(&shared.patches)?,
            block(&batch.patch_mask)?,
            block(&batch.patch_valid)?,
        );

        // Masked-patch modelling, over masked real patches only.
        let towers = &self.towers;
        let (masked, clean_series) = towers.series.encode_views(&patches, &mask, &valid)?;
        let predicted = self
            .reconstruct
            .forward(&masked.narrow(1, 1, patches.dim(1)?)?)?;
        let mpm = (masked_patch_se(&predicted, &patches, &mask, &valid)? / shared.scored_patches)?;

        // Masked-symbol modelling, with the head on the scored positions only; the corrupted
        // and the clean token sequences go through the symbol encoder as one stacked batch.
        let (tokens, token_valid) = (block(&batch.tokens)?, block(&batch.token_valid)?);
        let symbol_states = towers.symbol.forward(
            &Tensor::cat(&[&block(&batch.mlm_input)?, &tokens], 0)?,
            &Tensor::cat(&[&token_valid, &token_valid], 0)?,
        )?;
        let (corrupted, clean_symbol) = (
            symbol_states.narrow(0, 0, n)?,
            symbol_states.narrow(0, n, n)?,
        );
        let scored = batch.scored_in(&rows)?;
        let mlm = if scored.is_empty() {
            Tensor::zeros((), DType::F32, tokens.device())?
        } else {
            let (_, t, d) = corrupted.dims3()?;
            let count = scored.len();
            let at = Tensor::from_vec(scored, count, tokens.device())?;
            let hidden = corrupted.reshape((n * t, d))?.index_select(&at, 0)?;
            let log_probs =
                candle_nn::ops::log_softmax(&self.mlm_head.forward(&hidden)?, D::Minus1)?;
            let targets = tokens.flatten_all()?.index_select(&at, 0)?;
            (token_nll(&log_probs, &targets)? / shared.scored_tokens)?
        };

        // Contrastive, on the clean views.
        let (s, y) = towers.project(&clean_series, &clean_symbol)?;
        let temp = self.clamped_temperature()?;
        let (s_m, y_m) = (block(&shared.momentum.0)?, block(&shared.momentum.1)?);
        let bank = |batch, queue| Bank { batch, queue };
        let symbol_bank = bank(&shared.momentum.1, &shared.queues.1);
        let series_bank = bank(&shared.momentum.0, &shared.queues.0);
        let s2y = info_nce_distilled(&s, &s_m, symbol_bank, first, &temp, shared.alpha)?;
        let y2s = info_nce_distilled(&y, &y_m, series_bank, first, &temp, shared.alpha)?;
        let itc = ((s2y + y2s)? / (2.0 * shared.momentum.0.dim(0)? as f64))?;

        let total = ((&mpm * o.mpm_weight)? + (&mlm * o.mlm_weight)? + (&itc * o.itc_weight)?)?;
        let scalar = |t: &Tensor| -> Result<f32> { t.to_scalar::<f32>() };
        let losses = Losses {
            total: scalar(&total)?,
            mpm: scalar(&mpm)?,
            mlm: scalar(&mlm)?,
            itc: scalar(&itc)?,
            retrieval: own_nearest(&s.detach(), &shared.momentum.1, first)? as f32
                / shared.momentum.1.dim(0)? as f32,
        };
        Ok((total, losses))
    }

    /// After the optimiser step: clamp the temperature, move the momentum towers, enqueue.
    pub fn after_step(&self, enqueue: &(Tensor, Tensor)) -> Result<()> {
        self.temperature.set(&self.clamped_temperature()?)?;
        self.momentum.ema(&self.online, self.objectives.momentum)?;
        self.momentum.enqueue(enqueue)
    }
}

/// How many rows i of `queries` [n, E] have row `first + i` of `keys` [B, E] as their
/// highest-scoring key.
fn own_nearest(queries: &Tensor, keys: &Tensor, first: usize) -> Result<usize> {
    let best = queries
        .matmul(&keys.t()?)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?;
    Ok(best
        .iter()
        .enumerate()
        .filter(|&(i, &k)| k as usize == first + i)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SeriesConfig, SymbolConfig, TransformerConfig};
    use crate::ops::testing::{assert_every_gradient_nonzero, max_abs, max_diff};

    fn tiny() -> ModelRecipe {
        let t = TransformerConfig {
            d_model: 16,
            heads: 2,
            d_ff: 32,
            layers: 1,
        };
        ModelRecipe {
            series: SeriesConfig {
                length: 32,
                patch: 8,
                transformer: t.clone(),
            },
            symbol: SymbolConfig {
                max_tokens: 12,
                transformer: t,
            },
            proj_dim: 8,
        }
    }

    fn batch(model: &SymTime) -> PairBatch {
        let dev = Device::Cpu;
        let cfg = &model.cfg;
        let (b, n, l) = (4, cfg.series.patches(), cfg.series.length);
        let series = Tensor::randn(0f32, 1.0, (b, l), &dev).unwrap();
        let tok = crate::symbolic::tokens::Tokenizer::default();
        let ids: Vec<u32> = ["(x0 + 1.5)", "sin(x1)", "((-2) * x0)", "exp(x0)"]
            .iter()
            .flat_map(|s| {
                let mut v = tok.encode(s, 12).unwrap();
                v.resize(12, crate::symbolic::tokens::PAD);
                v
            })
            .collect();
        let tokens = Tensor::from_vec(ids, (b, 12), &dev).unwrap();
        let token_valid = tokens
            .ne(crate::symbolic::tokens::PAD)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let mut mask = vec![0f32; b * n];
        mask.iter_mut().step_by(2).for_each(|m| *m = 1.0);
        PairBatch {
            series,
            patch_valid: Tensor::ones((b, n), DType::F32, &dev).unwrap(),
            patch_mask: Tensor::from_vec(mask, (b, n), &dev).unwrap(),
            mlm_input: tokens.clone(),
            // every real token of the first expression, and two of the last
            mlm_scored: vec![1, 2, 3, 4, 5, 37, 39],
            tokens,
            token_valid,
        }
    }

    fn model() -> SymTime {
        let model = SymTime::new(
            &tiny(),
            &ObjectiveConfig {
                queue_size: 6,
                ..Default::default()
            },
            &Device::Cpu,
        )
        .unwrap();
        model.init(&mut crate::rng::sample_rng(1, 0)).unwrap();
        model
    }

    #[test]
    fn shapes_and_every_trainable_variable_gets_a_gradient() {
        let model = model();
        let batch = batch(&model);
        let patches = model.towers.series.patchify(&batch.series).unwrap();
        assert_eq!(patches.dims(), &[4, 4, 8]);
        let (masked, clean) = model
            .towers
            .series
            .encode_views(&patches, &batch.patch_mask, &batch.patch_valid)
            .unwrap();
        assert_eq!(
            (masked.dims(), clean.dims()),
            (&[4, 5, 16][..], &[4, 5, 16][..])
        );
        assert_eq!(
            model
                .towers
                .symbol
                .forward(&batch.tokens, &batch.token_valid)
                .unwrap()
                .dims(),
            &[4, 12, 16]
        );
        let (grads, losses, (s_m, y_m)) = model.gradients_in_parts(&batch, 0.4, 1).unwrap();
        assert!(
            losses.total.is_finite() && losses.mpm > 0.0 && losses.mlm > 0.0 && losses.itc > 0.0
        );
        assert!((0.0..=1.0).contains(&losses.retrieval));
        assert_eq!(
            (s_m.dims(), y_m.dims()),
            (&[4usize, 8][..], &[4usize, 8][..])
        );
        let trainable = model.trainable();
        assert!(trainable.len() > 30);
        assert_every_gradient_nonzero(&grads, &trainable);
        // The queues are constants of the step: differentiating them costs a queue-sized
        // gradient per block and direction.
        assert!(grads.get(model.momentum.queue_series.as_tensor()).is_none());
        assert!(grads.get(model.momentum.queue_symbol.as_tensor()).is_none());
        // The step moves the queue pointer by the batch size, wrapping at 6.
        model.after_step(&(s_m.clone(), y_m.clone())).unwrap();
        model.after_step(&(s_m, y_m)).unwrap();
        assert_eq!(model.momentum.queue_position().unwrap(), 2);
    }

    #[test]
    fn the_blocks_of_a_batch_add_up_to_the_whole_batch() {
        let model = model();
        let mut batch = batch(&model);
        // Scored tokens in the middle block (sample 1) only: the others have no MLM gradient.
        batch.mlm_scored = vec![13, 14, 16];
        let (whole, whole_losses, _) = model.gradients_in_parts(&batch, 0.4, 1).unwrap();
        let (parts, part_losses, _) = model.gradients_in_parts(&batch, 0.4, 3).unwrap();
        for (name, value) in [
            ("total", whole_losses.total - part_losses.total),
            ("mpm", whole_losses.mpm - part_losses.mpm),
            ("mlm", whole_losses.mlm - part_losses.mlm),
            ("itc", whole_losses.itc - part_losses.itc),
            ("retrieval", whole_losses.retrieval - part_losses.retrieval),
        ] {
            assert!(value.abs() < 1e-5, "{name} differs by {value}");
        }
        for (name, var) in model.trainable() {
            let (a, b) = (whole.get(&var).unwrap(), parts.get(&var).unwrap());
            let diff = max_diff(a, b);
            // Relative: sums in a different order differ in the last bits of large values.
            let size = max_abs(a);
            assert!(
                diff <= 1e-5 * size.max(1.0),
                "{name}: gradients differ by {diff}"
            );
        }
    }

    #[test]
    fn ema_moves_momentum_weights_towards_online_ones() {
        let dev = Device::Cpu;
        let model = SymTime::new(&tiny(), &ObjectiveConfig::default(), &dev).unwrap();
        model.momentum.ema(&model.online, 0.0).unwrap();
        let name = "series.patch_embed.weight";
        let online = params::var(&model.online, name).unwrap();
        let momentum = params::var(&model.momentum.state, &format!("momentum.{name}")).unwrap();
        let before = momentum.as_tensor().copy().unwrap();
        online.set(&(online.as_tensor() + 1.0).unwrap()).unwrap();
        model.momentum.ema(&model.online, 0.75).unwrap();
        let moved = (momentum.as_tensor() - &before)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(moved.iter().all(|d| (d - 0.25).abs() < 1e-6), "{moved:?}");
    }

    #[test]
    fn retrieval_counts_rows_whose_own_key_is_nearest() {
        let dev = Device::Cpu;
        let keys = Tensor::new(&[[1f32, 0.], [0., 1.], [0.7, 0.7]], &dev).unwrap();
        // Rows 1 and 2 of the batch: the first finds key 1, the second finds key 0.
        let queries = Tensor::new(&[[0.1f32, 1.], [1., 0.]], &dev).unwrap();
        assert_eq!(own_nearest(&queries, &keys, 1).unwrap(), 1);
        assert_eq!(own_nearest(&keys, &keys, 0).unwrap(), 3);
    }
}
