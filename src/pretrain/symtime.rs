//! The SymTime-style series-symbol objective (`kind = "symtime"`).
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
//! - Optionally (`views_weight` > 0), view contrast as in `views`, on the same series
//!   encoder with its own projection and queue: a combination none of the reference
//!   systems tried.
//!
//! The momentum copies and queues are `momentum::Momentum`; the step's data parallelism is
//! `train::block_gradients`.

use super::batch::PairBatch;
use super::losses::{info_nce_distilled, masked_patch_se, own_nearest, token_nll, Bank};
use super::momentum::{FeatureQueue, Momentum, PREFIX};
use super::objective::{Objective, Progress, Report};
use super::recipe::ModelRecipe;
use super::towers::Towers;
use super::views::{draw_views, view_features, views_nce, ViewsConfig};
use crate::checks::check_prob;
use crate::error::Error;
use crate::model::{instance_norm, linear, linear_no_bias, params, Linear};
use crate::rng::SampleRng;
use crate::symbolic::tokens::vocab_size;
use crate::train::{block_gradients, constant_rows, row_blocks};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{Init, Module, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The learnable temperature is kept inside this range (SymTime's clamp).
pub const TEMPERATURE_RANGE: (f32, f32) = (0.001, 0.5);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SymTimeConfig {
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
    /// Weight of view contrast (0: off), and its crop share and fixed temperature.
    pub views_weight: f64,
    pub views_min_crop: f64,
    pub views_temperature: f64,
}

impl Default for SymTimeConfig {
    fn default() -> Self {
        SymTimeConfig {
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
            views_weight: 0.0,
            views_min_crop: 0.5,
            views_temperature: 0.1,
        }
    }
}

impl SymTimeConfig {
    pub fn validate(&self) -> crate::Result<()> {
        check_prob("objectives.mask_ratio", self.mask_ratio)?;
        check_prob("objectives.mlm_prob", self.mlm_prob)?;
        check_prob("objectives.momentum", self.momentum)?;
        check_prob("objectives.alpha", self.alpha)?;
        crate::checks::check_count("objectives.queue_size", self.queue_size, 1, 1 << 20)?;
        let (lo, hi) = TEMPERATURE_RANGE;
        if !(lo as f64..=hi as f64).contains(&self.temperature) {
            return Err(Error::Config(format!(
                "objectives.temperature = {} must lie in [{lo}, {hi}], the range it is kept in",
                self.temperature
            )));
        }
        let weights = [
            self.mpm_weight,
            self.mlm_weight,
            self.itc_weight,
            self.views_weight,
        ];
        if !weights.iter().all(|w| w.is_finite() && *w >= 0.0) || weights.iter().sum::<f64>() == 0.0
        {
            return Err(Error::Config("objectives: mpm_weight, mlm_weight, itc_weight and views_weight must be finite and >= 0, and not all 0 (the model would learn nothing)".into()));
        }
        if self.views_weight > 0.0 {
            ViewsConfig {
                min_crop: self.views_min_crop,
                temperature: self.views_temperature,
                ..Default::default()
            }
            .validate()
            .map_err(|e| {
                Error::Config(e.to_string().replace("objectives.", "objectives.views_"))
            })?;
        }
        Ok(())
    }

    /// The distillation weight at `at`: α ramped linearly from 0.
    fn alpha_at(&self, at: Progress) -> f64 {
        self.alpha * ((at.step + 1) as f64 / self.alpha_ramp_steps.max(1) as f64).min(1.0)
    }
}

/// The columns of a SymTime step: the three losses, the in-batch series-to-symbol top-1
/// retrieval (a contrastive metric a person can read: 1 / batch is chance; nothing is
/// trained on it), the temperature and the distillation weight of the step.
const COLUMNS: &[&str] = &[
    "mpm",
    "mlm",
    "itc",
    "retrieval_top1",
    "temperature",
    "alpha",
];

/// With view contrast: its loss follows the series-symbol ones.
const COLUMNS_WITH_VIEWS: &[&str] = &[
    "mpm",
    "mlm",
    "itc",
    "retrieval_top1",
    "views_nce",
    "temperature",
    "alpha",
];

/// View contrast beside the series-symbol losses: its own projection of the series [CLS]
/// (online and momentum) and its own queue.
struct ViewsHead {
    proj: Linear,
    momentum_proj: Linear,
    queue: FeatureQueue,
    temperature: Tensor,
}

/// What a step enqueues after it: the momentum series and symbol features, and with view
/// contrast the momentum features of view 1.
pub type Pending = (Tensor, Tensor, Option<Tensor>);

/// With view contrast: the step's two views, their momentum features and the views queue.
struct SharedViews {
    views: (Tensor, Tensor),
    keys: (Tensor, Tensor),
    queue: Tensor,
}

/// What every block of a batch shares: the normalised patches, the momentum features of the
/// whole batch and the queues, and the counts the losses are divided by.
struct Shared {
    patches: Tensor,
    momentum: (Tensor, Tensor),
    queues: (Tensor, Tensor),
    views: Option<SharedViews>,
    scored_patches: f64,
    scored_tokens: f64,
    alpha: f64,
}

pub struct SymTime {
    pub cfg: ModelRecipe,
    pub objectives: SymTimeConfig,
    /// Trainable weights (online encoders, projections, heads, temperature).
    pub online: VarMap,
    /// Momentum copies and queues (checkpointed, never trained).
    pub momentum: Momentum,
    towers: Towers,
    reconstruct: Linear,
    mlm_head: Linear,
    temperature: Var,
    views: Option<ViewsHead>,
}

impl SymTime {
    pub fn new(cfg: &ModelRecipe, objectives: &SymTimeConfig, device: &Device) -> Result<Self> {
        let Some(symbol) = &cfg.symbol else {
            candle_core::bail!("the series-symbol objective needs model.symbol")
        };
        let online = VarMap::new();
        let vb = VarBuilder::from_varmap(&online, DType::F32, device);
        let towers = Towers::new(cfg, &vb)?;
        let reconstruct = linear_no_bias(
            cfg.series.transformer.d_model,
            cfg.series.patch,
            vb.pp("reconstruct"),
        )?;
        let mlm_head = linear(symbol.transformer.d_model, vocab_size(), vb.pp("mlm_head"))?;
        vb.get_with_hints(1, "temperature", Init::Const(objectives.temperature))?;
        let momentum = Momentum::new(cfg, objectives.queue_size, device)?;
        let views = if objectives.views_weight > 0.0 {
            let (d, e) = (cfg.series.transformer.d_model, cfg.proj_dim.unwrap_or(0));
            let state = VarBuilder::from_varmap(&momentum.state, DType::F32, device);
            Some(ViewsHead {
                proj: linear(d, e, vb.pp("views_proj"))?,
                momentum_proj: linear(d, e, state.pp(PREFIX).pp("views_proj"))?,
                queue: FeatureQueue::new(
                    &momentum.state,
                    "queue_views",
                    objectives.queue_size,
                    e,
                    device,
                )?,
                temperature: Tensor::new(&[objectives.views_temperature as f32], device)?,
            })
        } else {
            None
        };
        Ok(SymTime {
            temperature: params::var(&online, "temperature").expect("registered above"),
            momentum,
            views,
            cfg: cfg.clone(),
            objectives: objectives.clone(),
            online,
            towers,
            reconstruct,
            mlm_head,
        })
    }

    pub fn temperature(&self) -> Result<f32> {
        Ok(self.temperature.as_tensor().to_vec1::<f32>()?[0])
    }

    /// The learnable temperature inside `TEMPERATURE_RANGE`.
    fn clamped_temperature(&self) -> Result<Tensor> {
        let (lo, hi) = TEMPERATURE_RANGE;
        self.temperature.as_tensor().clamp(lo, hi)
    }

    /// `views`: the step's two views, with view contrast.
    fn gradients_in_parts(
        &self,
        batch: &PairBatch,
        views: Option<(Tensor, Tensor)>,
        alpha: f64,
        parts: usize,
    ) -> Result<(GradStore, Report, Pending)> {
        let blocks = row_blocks(batch.rows()?, parts);
        let patches = self
            .towers
            .series
            .patchify(&instance_norm(&batch.series)?)?;
        // The momentum features of the whole batch come first (every block's contrastive
        // loss needs them all); each sample's features depend on that sample only.
        let momentum = constant_rows(&blocks, |rows| {
            let block = |t: &Tensor| t.narrow(0, rows.start, rows.len());
            let (s, y) = self.momentum.towers.features(
                &block(&patches)?,
                &block(&batch.patch_valid)?,
                &block(&batch.tokens)?,
                &block(&batch.token_valid)?,
            )?;
            let mut out = vec![s, y];
            if let (Some(head), Some(v)) = (&self.views, &views) {
                let both = Tensor::cat(&[block(&v.0)?, block(&v.1)?], 0)?;
                let keys = view_features(&self.momentum.towers.series, &head.momentum_proj, &both)?;
                let n = rows.len();
                out.extend([keys.narrow(0, 0, n)?, keys.narrow(0, n, n)?]);
            }
            Ok(out)
        })?;
        let (s_m, y_m) = (momentum[0].clone(), momentum[1].clone());
        let views = match (&self.views, views) {
            (Some(head), Some(views)) => Some(SharedViews {
                views,
                keys: (momentum[2].clone(), momentum[3].clone()),
                queue: head.queue.constant(),
            }),
            _ => None,
        };
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
            views,
        };
        let (grads, block_losses) = block_gradients(blocks, &self.trainable(), |rows| {
            self.block_losses(batch, &shared, rows)
        })?;
        let report = Report::sum(&block_losses);
        let view_keys = shared.views.as_ref().map(|v| v.keys.0.clone());
        Ok((grads, report, (s_m, y_m, view_keys)))
    }

    /// The weighted losses of rows `rows` of the batch, each divided by the whole batch's
    /// count, so that the blocks of a batch add up to its losses.
    fn block_losses(
        &self,
        batch: &PairBatch,
        shared: &Shared,
        rows: Range<usize>,
    ) -> Result<(Tensor, Report)> {
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

        let mut total = ((&mpm * o.mpm_weight)? + (&mlm * o.mlm_weight)? + (&itc * o.itc_weight)?)?;
        let mut views_value = None;
        if let (Some(head), Some(shared_views)) = (&self.views, &shared.views) {
            let SharedViews {
                views: v,
                keys,
                queue,
            } = shared_views;
            let both = Tensor::cat(&[block(&v.0)?, block(&v.1)?], 0)?;
            let q = view_features(&towers.series, &head.proj, &both)?;
            let (q1, q2) = (q.narrow(0, 0, n)?, q.narrow(0, n, n)?);
            let b = shared.momentum.0.dim(0)?;
            let (loss, _) = views_nce(
                (&q1, &q2),
                (&keys.0, &keys.1),
                queue,
                first,
                &head.temperature,
                b,
            )?;
            total = (total + (&loss * o.views_weight)?)?;
            views_value = Some(loss.to_scalar::<f32>()?);
        }
        let scalar = |t: &Tensor| -> Result<f32> { t.to_scalar::<f32>() };
        let retrieval = own_nearest(&s.detach(), &shared.momentum.1, first)? as f32
            / shared.momentum.1.dim(0)? as f32;
        let report = Report {
            total: scalar(&total)?,
            values: [scalar(&mpm)?, scalar(&mlm)?, scalar(&itc)?, retrieval]
                .into_iter()
                .chain(views_value)
                .collect(),
        };
        Ok((total, report))
    }
}

impl Objective for SymTime {
    type Pending = Pending;

    fn columns(&self) -> &'static [&'static str] {
        match self.views {
            Some(_) => COLUMNS_WITH_VIEWS,
            None => COLUMNS,
        }
    }

    fn online(&self) -> &VarMap {
        &self.online
    }

    fn state(&self) -> &VarMap {
        &self.momentum.state
    }

    /// Draws the online weights, then starts the momentum towers as their copies and fills
    /// the queues.
    fn init(&self, rng: &mut SampleRng) -> Result<()> {
        params::seeded_init(&self.online, rng)?;
        self.momentum.init(&self.online, rng)?;
        match &self.views {
            Some(head) => head.queue.fill_random(rng),
            None => Ok(()),
        }
    }

    /// The batch is cut into one block of rows per rayon thread. The pending value is the
    /// momentum features to enqueue after the step.
    fn gradients(
        &self,
        batch: &PairBatch,
        at: Progress,
        rng: &mut SampleRng,
    ) -> Result<(GradStore, Report, Self::Pending)> {
        let alpha = self.objectives.alpha_at(at);
        let o = &self.objectives;
        let views = match self.views {
            Some(_) => Some(draw_views(batch, o.views_min_crop, rng)?),
            None => None,
        };
        let (grads, mut report, pending) =
            self.gradients_in_parts(batch, views, alpha, rayon::current_num_threads())?;
        report.values.extend([self.temperature()?, alpha as f32]);
        Ok((grads, report, pending))
    }

    /// Clamps the temperature, moves the momentum towers, enqueues.
    fn after_step(&self, (s, y, views): Self::Pending, _at: Progress) -> Result<()> {
        self.temperature.set(&self.clamped_temperature()?)?;
        self.momentum.ema(&self.online, self.objectives.momentum)?;
        self.momentum.enqueue(&(s, y))?;
        match (&self.views, views) {
            (Some(head), Some(keys)) => head.queue.push(&keys),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_every_gradient_nonzero, max_abs, max_diff};
    use crate::pretrain::testing::{assert_steps_lower_the_loss, batch, tiny_model};

    fn tiny() -> ModelRecipe {
        tiny_model(true)
    }

    fn model() -> SymTime {
        let model = SymTime::new(
            &tiny(),
            &SymTimeConfig {
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
        let batch = batch(&model.cfg);
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
        let (grads, report, (s_m, y_m, _)) =
            model.gradients_in_parts(&batch, None, 0.4, 1).unwrap();
        let [mpm, mlm, itc, retrieval] = report.values[..] else {
            panic!("{report:?}")
        };
        assert!(report.total.is_finite() && mpm > 0.0 && mlm > 0.0 && itc > 0.0);
        assert!((0.0..=1.0).contains(&retrieval));
        assert_eq!(
            (s_m.dims(), y_m.dims()),
            (&[4usize, 8][..], &[4usize, 8][..])
        );
        let trainable = model.trainable();
        assert!(trainable.len() > 30);
        assert_every_gradient_nonzero(&grads, &trainable);
        // The queues are constants of the step: differentiating them costs a queue-sized
        // gradient per block and direction.
        assert!(grads
            .get(model.momentum.queue_series.rows.as_tensor())
            .is_none());
        assert!(grads
            .get(model.momentum.queue_symbol.rows.as_tensor())
            .is_none());
        // The step moves the queue pointer by the batch size, wrapping at 6.
        let at = Progress { step: 0, steps: 2 };
        model
            .after_step((s_m.clone(), y_m.clone(), None), at)
            .unwrap();
        model.after_step((s_m, y_m, None), at).unwrap();
        assert_eq!(model.momentum.queue_series.position().unwrap(), 2);
        assert_eq!(model.momentum.queue_symbol.position().unwrap(), 2);
    }

    #[test]
    fn the_blocks_of_a_batch_add_up_to_the_whole_batch() {
        let model = model();
        let mut batch = batch(&model.cfg);
        // Scored tokens in the middle block (sample 1) only: the others have no MLM gradient.
        batch.mlm_scored = vec![13, 14, 16];
        let (whole, whole_losses, _) = model.gradients_in_parts(&batch, None, 0.4, 1).unwrap();
        let (parts, part_losses, _) = model.gradients_in_parts(&batch, None, 0.4, 3).unwrap();
        assert!((whole_losses.total - part_losses.total).abs() < 1e-5);
        for (i, (w, p)) in whole_losses
            .values
            .iter()
            .zip(&part_losses.values)
            .enumerate()
        {
            assert!((w - p).abs() < 1e-5, "{}: {w} vs {p}", COLUMNS[i]);
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
    fn view_contrast_beside_the_symbols_trains_every_variable_and_adds_up() {
        let cfg = SymTimeConfig {
            queue_size: 6,
            views_weight: 0.5,
            ..Default::default()
        };
        let model = SymTime::new(&tiny(), &cfg, &Device::Cpu).unwrap();
        model.init(&mut crate::rng::sample_rng(1, 0)).unwrap();
        assert_eq!(model.columns(), COLUMNS_WITH_VIEWS);
        let batch = batch(&model.cfg);
        let views = draw_views(&batch, 0.5, &mut crate::rng::sample_rng(2, 0)).unwrap();
        let (whole, report, pending) = model
            .gradients_in_parts(&batch, Some(views.clone()), 0.4, 1)
            .unwrap();
        let (parts, part_report, _) = model
            .gradients_in_parts(&batch, Some(views), 0.4, 3)
            .unwrap();
        assert_eq!(report.values.len(), 5);
        assert!(report.values[4] > 0.0, "{report:?}");
        for (w, p) in report.values.iter().zip(&part_report.values) {
            assert!((w - p).abs() < 1e-5, "{report:?} vs {part_report:?}");
        }
        let trainable = model.trainable();
        assert!(trainable.iter().any(|(n, _)| n.starts_with("views_proj.")));
        assert_every_gradient_nonzero(&whole, &trainable);
        for (name, var) in trainable {
            let (a, b) = (whole.get(&var).unwrap(), parts.get(&var).unwrap());
            assert!(max_diff(a, b) <= 1e-5 * max_abs(a).max(1.0), "{name}");
        }
        let views = model.views.as_ref().unwrap();
        model
            .after_step(pending, Progress { step: 0, steps: 1 })
            .unwrap();
        assert_eq!(views.queue.position().unwrap(), 4);
    }

    #[test]
    fn steps_lower_the_loss() {
        let model = model();
        assert_steps_lower_the_loss(&model, &batch(&model.cfg), 0, 12);
    }

    #[test]
    fn ema_moves_momentum_weights_towards_online_ones() {
        let dev = Device::Cpu;
        let model = SymTime::new(&tiny(), &SymTimeConfig::default(), &dev).unwrap();
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
}
