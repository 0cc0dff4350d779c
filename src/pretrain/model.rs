//! The SymTime-style series-symbol model and its three objectives.
//!
//! - Masked-patch modelling: a share of the real (never padding) patches is replaced by the
//!   mask embedding and their normalised values are reconstructed; MSE over those patches only.
//! - Masked-symbol modelling: 15% of the expression's tokens, 80/10/10
//!   ([MASK] / random token / unchanged); cross-entropy over those positions only.
//! - Series-symbol contrastive learning with momentum distillation (ALBEF): InfoNCE in both
//!   directions between the [CLS] projections of the **unmasked** views, against queues of
//!   momentum features, with targets α·softmax(momentum similarities) + (1 − α)·one-hot (one
//!   softmax, not two) and a learnable temperature clamped to [0.001, 0.5].
//!
//! The momentum copies of both encoders and projections live in their own `VarMap` and follow
//! the online weights by EMA after every optimiser step.

use super::objectives::{info_nce_distilled, masked_patch_se, token_nll, Bank};
use crate::model::layers::{self, linear};
use crate::model::{instance_norm, SeriesConfig, SeriesEncoder, SymbolConfig, SymbolEncoder};
use crate::symbolic::tokens::vocab_size;
use crate::train::MovingAverage;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, IndexOp, Result, Tensor, Var, D};
use candle_nn::{Init, Linear, Module, VarBuilder, VarMap};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelRecipe {
    pub series: SeriesConfig,
    pub symbol: SymbolConfig,
    /// Dimension of the contrastive projections.
    pub proj_dim: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveConfig {
    pub mpm_weight: f64,
    pub mask_ratio: f64,
    pub mlm_weight: f64,
    pub mlm_prob: f64,
    pub itc_weight: f64,
    pub momentum: f64,
    pub queue_size: usize,
    pub temperature: f64,
    /// Distillation weight α, ramped linearly from 0 over `alpha_ramp_steps`.
    pub alpha: f64,
    pub alpha_ramp_steps: usize,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig {
            mpm_weight: 1.0,
            mask_ratio: 0.4,
            mlm_weight: 1.0,
            mlm_prob: 0.15,
            itc_weight: 1.0,
            momentum: 0.995,
            queue_size: 4096,
            temperature: 0.07,
            alpha: 0.4,
            alpha_ramp_steps: 1000,
        }
    }
}

/// One batch of pairs, with the masks of this step.
pub struct PairBatch {
    /// Raw windows [B, L].
    pub series: Tensor,
    /// 1 for real patches, 0 for padding [B, N].
    pub patch_valid: Tensor,
    /// 1 for patches to mask and reconstruct [B, N] (always a subset of the valid ones).
    pub patch_mask: Tensor,
    /// Clean token ids [B, T] and their padding mask [B, T].
    pub tokens: Tensor,
    pub token_valid: Tensor,
    /// Token ids after 80/10/10 corruption [B, T] (the clean `tokens` are the targets).
    pub mlm_input: Tensor,
    /// The scored positions, as ascending flat indices `row · T + column` (kept on the host:
    /// the MLM head runs on these rows only, and a part of the batch picks its own).
    pub mlm_scored: Vec<u32>,
}

impl PairBatch {
    fn rows(&self) -> Result<usize> {
        self.series.dim(0)
    }

    /// Scored positions inside rows `rows`, re-based to the first of them.
    fn scored_in(&self, rows: &Range<usize>) -> Result<Vec<u32>> {
        let t = self.tokens.dim(1)? as u32;
        let (lo, hi) = (rows.start as u32 * t, rows.end as u32 * t);
        Ok(self
            .mlm_scored
            .iter()
            .filter(|&&p| (lo..hi).contains(&p))
            .map(|p| p - lo)
            .collect())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    pub total: f32,
    pub mpm: f32,
    pub mlm: f32,
    pub itc: f32,
}

impl Losses {
    fn add(&mut self, other: &Losses) {
        self.total += other.total;
        self.mpm += other.mpm;
        self.mlm += other.mlm;
        self.itc += other.itc;
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

struct Towers {
    series: SeriesEncoder,
    symbol: SymbolEncoder,
    series_proj: layers::Linear,
    symbol_proj: layers::Linear,
}

impl Towers {
    fn new(cfg: &ModelRecipe, vb: &VarBuilder) -> Result<Towers> {
        Ok(Towers {
            series: SeriesEncoder::new(&cfg.series, vb.pp("series"))?,
            symbol: SymbolEncoder::new(&cfg.symbol, vb.pp("symbol"))?,
            series_proj: linear(
                cfg.series.transformer.d_model,
                cfg.proj_dim,
                vb.pp("series_proj"),
            )?,
            symbol_proj: linear(
                cfg.symbol.transformer.d_model,
                cfg.proj_dim,
                vb.pp("symbol_proj"),
            )?,
        })
    }

    /// L2-normalised projections of the [CLS] states of the clean views.
    fn features(
        &self,
        patches: &Tensor,
        valid: &Tensor,
        tokens: &Tensor,
        token_valid: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let s = self.series.encode_patches(patches, Some(valid))?;
        let y = self.symbol.forward(tokens, token_valid)?;
        self.project(&s, &y)
    }

    /// L2-normalised projections of the [CLS] states (position 0) of series and symbol states.
    fn project(&self, series_states: &Tensor, symbol_states: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            l2_normalize(&self.series_proj.forward(&series_states.i((.., 0))?)?)?,
            l2_normalize(&self.symbol_proj.forward(&symbol_states.i((.., 0))?)?)?,
        ))
    }
}

fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&(x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()? + 1e-12)?)
}

pub struct SymTime {
    pub cfg: ModelRecipe,
    pub objectives: ObjectiveConfig,
    /// Trainable weights (online encoders, projections, heads, temperature).
    pub online: VarMap,
    /// Momentum copies and queues (checkpointed, never trained).
    pub state: VarMap,
    online_towers: Towers,
    momentum_towers: Towers,
    reconstruct: Linear,
    mlm_head: layers::Linear,
    temperature: Var,
    queue_series: Var,
    queue_symbol: Var,
    queue_ptr: Var,
}

impl SymTime {
    pub fn new(cfg: &ModelRecipe, objectives: &ObjectiveConfig, device: &Device) -> Result<Self> {
        let online = VarMap::new();
        let state = VarMap::new();
        let vb = VarBuilder::from_varmap(&online, DType::F32, device);
        let online_towers = Towers::new(cfg, &vb)?;
        let reconstruct = candle_nn::linear_no_bias(
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
        let svb = VarBuilder::from_varmap(&state, DType::F32, device);
        let momentum_towers = Towers::new(cfg, &svb.pp("momentum"))?;
        let (q, e) = (objectives.queue_size, cfg.proj_dim);
        svb.get_with_hints((q, e), "queue_series", Init::Const(0.0))?;
        svb.get_with_hints((q, e), "queue_symbol", Init::Const(0.0))?;
        svb.get_with_hints(1, "queue_ptr", Init::Const(0.0))?;
        let get = |map: &VarMap, name: &str| {
            map.data()
                .lock()
                .expect("var map lock")
                .get(name)
                .cloned()
                .expect("registered above")
        };
        let model = SymTime {
            temperature: get(&online, "temperature"),
            queue_series: get(&state, "queue_series"),
            queue_symbol: get(&state, "queue_symbol"),
            queue_ptr: get(&state, "queue_ptr"),
            cfg: cfg.clone(),
            objectives: objectives.clone(),
            online,
            state,
            online_towers,
            momentum_towers,
            reconstruct,
            mlm_head,
        };
        Ok(model)
    }

    /// Starts the momentum towers as exact copies and fills the queues with random unit
    /// vectors drawn from `rng` (called once, after the online weights are initialised).
    pub fn init_state(&self, rng: &mut crate::rng::SampleRng) -> Result<()> {
        self.ema(0.0)?;
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

    pub fn trainable(&self) -> Vec<(String, Var)> {
        let data = self.online.data().lock().expect("var map lock");
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// momentum ← m·momentum + (1 − m)·online, for every tower variable.
    pub fn ema(&self, m: f64) -> Result<()> {
        let online = self.online.data().lock().expect("var map lock");
        let state = self.state.data().lock().expect("var map lock");
        let pairs: Vec<(&Var, &Var)> = state
            .iter()
            .filter_map(|(name, mvar)| Some((mvar, &online[name.strip_prefix("momentum.")?])))
            .collect();
        // One variable per task; each update touches only its own momentum tensor.
        pairs.into_par_iter().try_for_each(|(mvar, src)| {
            if mvar.device().is_cpu() {
                mvar.as_tensor().inplace_op2(
                    src.as_tensor(),
                    &MovingAverage {
                        keep: m as f32,
                        scale: 1.0,
                        squared: false,
                    },
                )
            } else {
                mvar.set(&((mvar.as_tensor() * m)? + (src.as_tensor() * (1.0 - m))?)?)
            }
        })
    }

    pub fn temperature(&self) -> Result<f32> {
        Ok(self.temperature.as_tensor().to_vec1::<f32>()?[0])
    }

    /// Keeps the learnable temperature inside [0.001, 0.5] (after each optimiser step).
    pub fn clamp_temperature(&self) -> Result<()> {
        self.temperature
            .set(&self.temperature.as_tensor().clamp(0.001f32, 0.5f32)?)
    }

    /// Writes `rows` into `queue` at the pointer, wrapping around the end, in place (a new
    /// queue per step would copy all of it).
    fn enqueue(queue: &Var, ptr: usize, rows: &Tensor) -> Result<()> {
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

    fn queue_position(&self) -> Result<usize> {
        Ok(self.queue_ptr.as_tensor().to_vec1::<f32>()?[0] as usize)
    }

    /// Gradients and losses of one batch; `alpha` is this step's distillation weight. Returns
    /// the gradients of the weighted total, the losses, and the momentum features to enqueue
    /// after the step. The batch is cut into one block of rows per rayon thread, each with its
    /// own forward and backward pass, and the gradients are summed (data parallelism inside
    /// the step: candle runs a small model's ops on one core).
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
        let b = batch.rows()?;
        let parts = parts.clamp(1, b.max(1));
        let blocks: Vec<Range<usize>> = (0..parts)
            .map(|i| (i * b / parts)..((i + 1) * b / parts))
            .filter(|r| !r.is_empty())
            .collect();
        let patches = self
            .online_towers
            .series
            .patchify(&instance_norm(&batch.series)?)?;
        // The momentum features of the whole batch come first (every block's contrastive
        // loss needs them all); each sample's features depend on that sample only.
        let momentum: Vec<(Tensor, Tensor)> = blocks
            .par_iter()
            .map(|rows| {
                let block = |t: &Tensor| t.narrow(0, rows.start, rows.len());
                self.momentum_towers.features(
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
            // Detached: the queues are variables, and otherwise every block's backward pass
            // would build (and throw away) a queue-sized gradient for each of them.
            queues: (
                self.queue_series.as_tensor().detach(),
                self.queue_symbol.as_tensor().detach(),
            ),
            scored_patches: (&batch.patch_mask * &batch.patch_valid)?
                .sum_all()?
                .to_scalar::<f32>()?
                .max(1.0) as f64,
            scored_tokens: batch.mlm_scored.len().max(1) as f64,
            alpha,
        };
        let results: Vec<(GradStore, Losses)> = blocks
            .into_par_iter()
            .map(|rows| {
                let (total, losses) = self.block_losses(batch, &shared, rows)?;
                Ok((total.backward()?, losses))
            })
            .collect::<Result<_>>()?;
        let mut losses = Losses::default();
        for (_, l) in &results {
            losses.add(l);
        }
        let mut stores: Vec<GradStore> = results.into_iter().map(|(g, _)| g).collect();
        // The blocks' gradients of the trainable variables (the only ones read) are summed
        // one variable per task; a block may lack some (e.g. no scored token in it).
        let sums: Vec<(Var, Tensor)> = self
            .trainable()
            .into_par_iter()
            .filter_map(|(_, var)| {
                let mut parts = stores.iter().filter_map(|g| g.get(&var));
                let first = parts.next()?.clone();
                Some(
                    parts
                        .try_fold(first, |sum, g| sum + g)
                        .map(|sum| (var, sum)),
                )
            })
            .collect::<Result<_>>()?;
        let mut grads = stores
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("an empty batch".into()))?;
        for (var, sum) in sums {
            grads.insert(&var, sum);
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
        let towers = &self.online_towers;
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
        let temp = self.temperature.as_tensor().clamp(0.001f32, 0.5f32)?;
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
        };
        Ok((total, losses))
    }

    /// After the optimiser step: clamp the temperature, move the momentum towers, enqueue.
    pub fn after_step(&self, enqueue: &(Tensor, Tensor)) -> Result<()> {
        self.clamp_temperature()?;
        self.ema(self.objectives.momentum)?;
        let ptr = self.queue_position()?;
        Self::enqueue(&self.queue_series, ptr, &enqueue.0)?;
        Self::enqueue(&self.queue_symbol, ptr, &enqueue.1)?;
        let q = self.objectives.queue_size;
        let next = (ptr + enqueue.0.dim(0)?) % q;
        self.queue_ptr
            .set(&Tensor::new(&[next as f32], self.queue_ptr.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::transformer::TransformerConfig;

    pub fn tiny() -> ModelRecipe {
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
        let mut rng = crate::rng::sample_rng(1, 0);
        crate::model::layers::seeded_init(&model.online, &mut rng).unwrap();
        model.init_state(&mut rng).unwrap();
        model
    }

    #[test]
    fn shapes_and_every_trainable_variable_gets_a_gradient() {
        let model = model();
        let batch = batch(&model);
        let patches = model.online_towers.series.patchify(&batch.series).unwrap();
        assert_eq!(patches.dims(), &[4, 4, 8]);
        let (masked, clean) = model
            .online_towers
            .series
            .encode_views(&patches, &batch.patch_mask, &batch.patch_valid)
            .unwrap();
        assert_eq!(
            (masked.dims(), clean.dims()),
            (&[4, 5, 16][..], &[4, 5, 16][..])
        );
        assert_eq!(
            model
                .online_towers
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
        assert_eq!(
            (s_m.dims(), y_m.dims()),
            (&[4usize, 8][..], &[4usize, 8][..])
        );
        let trainable = model.trainable();
        assert!(trainable.len() > 30);
        crate::model::assert_every_gradient_nonzero(&grads, &trainable);
        // The queues are constants of the step: differentiating them costs a queue-sized
        // gradient per block and direction.
        assert!(grads.get(model.queue_series.as_tensor()).is_none());
        assert!(grads.get(model.queue_symbol.as_tensor()).is_none());
        // The step moves the queue pointer by the batch size, wrapping at 6.
        model.after_step(&(s_m.clone(), y_m.clone())).unwrap();
        model.after_step(&(s_m, y_m)).unwrap();
        assert_eq!(model.queue_position().unwrap(), 2);
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
        ] {
            assert!(value.abs() < 1e-5, "{name} differs by {value}");
        }
        for (name, var) in model.trainable() {
            let (a, b) = (whole.get(&var).unwrap(), parts.get(&var).unwrap());
            let diff = crate::model::fused::tests::max_diff(a, b);
            // Relative: sums in a different order differ in the last bits of large values.
            let size = crate::model::fused::tests::max_abs(a);
            assert!(
                diff <= 1e-5 * size.max(1.0),
                "{name}: gradients differ by {diff}"
            );
        }
    }

    #[test]
    fn queue_writes_wrap_around() {
        let dev = Device::Cpu;
        let queue = Var::zeros((5, 2), DType::F32, &dev).unwrap();
        let rows = Tensor::new(&[[1f32, 1.], [2., 2.], [3., 3.]], &dev).unwrap();
        SymTime::enqueue(&queue, 3, &rows).unwrap();
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

    #[test]
    fn ema_moves_momentum_weights_towards_online_ones() {
        let dev = Device::Cpu;
        let model = SymTime::new(&tiny(), &ObjectiveConfig::default(), &dev).unwrap();
        model.ema(0.0).unwrap();
        let name = "series.patch_embed.weight";
        let online = model.online.data().lock().unwrap()[name].clone();
        let momentum = model.state.data().lock().unwrap()[&format!("momentum.{name}")].clone();
        let before = momentum.as_tensor().copy().unwrap();
        online.set(&(online.as_tensor() + 1.0).unwrap()).unwrap();
        model.ema(0.75).unwrap();
        let moved = (momentum.as_tensor() - &before)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(moved.iter().all(|d| (d - 0.25).abs() < 1e-6), "{moved:?}");
    }
}
