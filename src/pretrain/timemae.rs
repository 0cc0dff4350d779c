//! TimeMAE (`kind = "timemae"`), a decoupled masked autoencoder, on our patch transformer.
//!
//! - About 60% of each window's real patches are masked.
//! - The encoder sees the visible patches only: the masked ones and the padding are masked
//!   out as attention keys, so no visible state (nor [CLS]) reads a masked patch.
//! - The decoupled masked branch: queries are the mask embedding plus each patch's position;
//!   cross-attention blocks (`model::CrossBlock`) read the visible states.
//! - MRR: the predicted states of the masked patches regress onto an EMA copy of the
//!   encoder run on the masked patches alone (squared error, no gradient into the copy).
//! - MCC: a linear tokenizer over the states maps each target state to a codeword (argmax);
//!   the same layer classifies the predicted state, by cross-entropy with label smoothing.
//! - Loss 5·MRR + 1·MCC, as in the reference.
//!
//! The reference's encoder is post-LN with conv patching and a residual scale; ours stays
//! the pre-LN patch transformer that every objective shares.

use super::batch::PairBatch;
use super::losses::{masked_patch_se, smoothed_nll};
use super::momentum::{ema, PREFIX};
use super::objective::{Objective, Progress, Report};
use super::recipe::ModelRecipe;
use crate::checks::{check_count, check_prob};
use crate::error::Error;
use crate::model::{instance_norm, linear, params, CrossBlock, LayerNorm, Linear, SeriesEncoder};
use crate::rng::SampleRng;
use crate::train::{block_gradients, constant_rows, row_blocks};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Module, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimeMaeConfig {
    pub mask_ratio: f64,
    /// Cross-attention blocks of the masked branch (the reference has 4).
    pub decoder_layers: usize,
    /// Codewords of the tokenizer.
    pub codes: usize,
    pub mrr_weight: f64,
    pub mcc_weight: f64,
    pub label_smoothing: f64,
    /// EMA rate of the target encoder.
    pub momentum: f64,
}

impl Default for TimeMaeConfig {
    fn default() -> Self {
        TimeMaeConfig {
            mask_ratio: 0.6,
            decoder_layers: 4,
            codes: 192,
            mrr_weight: 5.0,
            mcc_weight: 1.0,
            label_smoothing: 0.2,
            momentum: 0.99,
        }
    }
}

impl TimeMaeConfig {
    pub fn validate(&self) -> crate::Result<()> {
        check_prob("objectives.mask_ratio", self.mask_ratio)?;
        check_prob("objectives.label_smoothing", self.label_smoothing)?;
        check_prob("objectives.momentum", self.momentum)?;
        check_count("objectives.decoder_layers", self.decoder_layers, 1, 64)?;
        check_count("objectives.codes", self.codes, 2, 1 << 16)?;
        let weights = [self.mrr_weight, self.mcc_weight];
        if !weights.iter().all(|w| w.is_finite() && *w >= 0.0) || weights.iter().sum::<f64>() == 0.0
        {
            return Err(Error::Config(
                "objectives: mrr_weight and mcc_weight must be finite and >= 0, and not both 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The two losses, and the perplexity of the batch's target codewords (how many codewords
/// are in use: 1 is a collapsed tokenizer).
const COLUMNS: &[&str] = &["mrr", "mcc", "code_perplexity"];

pub struct TimeMae {
    cfg: TimeMaeConfig,
    online: VarMap,
    state: VarMap,
    series: SeriesEncoder,
    decoder: Vec<CrossBlock>,
    decoder_norm: LayerNorm,
    tokenizer: Linear,
    target: SeriesEncoder,
}

impl TimeMae {
    pub fn new(model: &ModelRecipe, o: &TimeMaeConfig, device: &Device) -> Result<Self> {
        let (online, state) = (VarMap::new(), VarMap::new());
        let vb = VarBuilder::from_varmap(&online, DType::F32, device);
        let t = &model.series.transformer;
        let decoder = (0..o.decoder_layers)
            .map(|i| CrossBlock::new(t, vb.pp(format!("decoder.blocks.{i}"))))
            .collect::<Result<_>>()?;
        let target_vb = VarBuilder::from_varmap(&state, DType::F32, device).pp(PREFIX);
        Ok(TimeMae {
            series: SeriesEncoder::new(&model.series, vb.pp("series"))?,
            decoder,
            decoder_norm: LayerNorm::new(t.d_model, vb.pp("decoder.norm"))?,
            tokenizer: linear(t.d_model, o.codes, vb.pp("tokenizer"))?,
            target: SeriesEncoder::new(&model.series, target_vb.pp("series"))?,
            cfg: o.clone(),
            online,
            state,
        })
    }

    fn gradients_in_parts(&self, batch: &PairBatch, parts: usize) -> Result<(GradStore, Report)> {
        let o = &self.cfg;
        let b = batch.rows()?;
        let blocks = row_blocks(b, parts);
        let patches = self.series.patchify(&instance_norm(&batch.series)?)?;
        let n_patches = patches.dim(1)?;
        let scored = (&batch.patch_mask * &batch.patch_valid)?;
        let visible = (&batch.patch_valid - &batch.patch_mask)?.relu()?;
        // The targets: the EMA encoder's states of the masked patches, seen alone.
        let targets = constant_rows(&blocks, |rows| {
            let block = |t: &Tensor| t.narrow(0, rows.start, rows.len());
            let states = self
                .target
                .encode_patches(&block(&patches)?, Some(&block(&scored)?))?;
            Ok(vec![states.narrow(1, 1, n_patches)?])
        })?
        .remove(0);
        let scored_rows = positions_of(&scored)?;
        let count = (scored_rows.len().max(1)) as f64;
        let (grads, reports) = block_gradients(blocks, &self.trainable(), |rows| {
            let (first, n) = (rows.start, rows.len());
            let block = |t: &Tensor| t.narrow(0, first, n);
            let (mask, valid) = (block(&batch.patch_mask)?, block(&batch.patch_valid)?);
            let states = self
                .series
                .encode_patches(&block(&patches)?, Some(&block(&visible)?))?;
            let context_mask = Tensor::cat(
                &[&valid.narrow(1, 0, 1)?.ones_like()?, &block(&visible)?],
                1,
            )?;
            let mut predicted = self.series.mask_queries(n)?;
            for layer in &self.decoder {
                predicted = layer.forward(&predicted, &states, &context_mask)?;
            }
            let predicted = self.decoder_norm.forward(&predicted)?;
            let target = block(&targets)?;
            let mrr = (masked_patch_se(&predicted, &target, &mask, &valid)? / count)?;
            let lo = (first * n_patches) as u32;
            let hi = ((first + n) * n_patches) as u32;
            let at: Vec<u32> = scored_rows
                .iter()
                .filter(|&&p| (lo..hi).contains(&p))
                .map(|p| p - lo)
                .collect();
            let mcc = if at.is_empty() {
                Tensor::zeros((), DType::F32, batch.series.device())?
            } else {
                let k = at.len();
                let at = Tensor::from_vec(at, k, batch.series.device())?;
                let d = predicted.dim(D::Minus1)?;
                let pick = |t: &Tensor| t.reshape((n * n_patches, d))?.index_select(&at, 0);
                let codes = self.tokenizer.forward(&pick(&target)?)?.argmax(D::Minus1)?;
                let log_probs = candle_nn::ops::log_softmax(
                    &self.tokenizer.forward(&pick(&predicted)?)?,
                    D::Minus1,
                )?;
                (smoothed_nll(&log_probs, &codes, o.label_smoothing)? / count)?
            };
            let total = ((&mrr * o.mrr_weight)? + (&mcc * o.mcc_weight)?)?;
            let value = |t: &Tensor| t.to_scalar::<f32>();
            let report = Report {
                total: value(&total)?,
                values: vec![value(&mrr)?, value(&mcc)?],
            };
            Ok((total, report))
        })?;
        let mut report = Report::sum(&reports);
        report
            .values
            .push(self.code_perplexity(&targets, &scored_rows)?);
        Ok((grads, report))
    }

    /// exp(entropy) of the codewords the tokenizer gives the scored target states.
    fn code_perplexity(&self, targets: &Tensor, scored: &[u32]) -> Result<f32> {
        if scored.is_empty() {
            return Ok(0.0);
        }
        let (b, n, d) = targets.dims3()?;
        let at = Tensor::from_vec(scored.to_vec(), scored.len(), targets.device())?;
        let codes = self
            .tokenizer
            .forward(&targets.reshape((b * n, d))?.index_select(&at, 0)?)?
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?;
        Ok(perplexity(&codes, self.cfg.codes))
    }
}

/// exp(entropy) of the empirical distribution of `codes` over `size` codewords.
pub fn perplexity(codes: &[u32], size: usize) -> f32 {
    let mut counts = vec![0usize; size];
    for &c in codes {
        counts[c as usize] += 1;
    }
    let total = codes.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.ln()
        })
        .sum();
    entropy.exp() as f32
}

/// Flat indices `row · N + column` of the 1s of a 0/1 matrix [B, N], ascending.
fn positions_of(mask: &Tensor) -> Result<Vec<u32>> {
    Ok(mask
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .enumerate()
        .filter(|(_, &m)| m > 0.5)
        .map(|(i, _)| i as u32)
        .collect())
}

impl Objective for TimeMae {
    type Pending = ();

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn online(&self) -> &VarMap {
        &self.online
    }

    fn state(&self) -> &VarMap {
        &self.state
    }

    fn init(&self, rng: &mut SampleRng) -> Result<()> {
        params::seeded_init(&self.online, rng)?;
        ema(&self.state, &self.online, 0.0)
    }

    fn gradients(
        &self,
        batch: &PairBatch,
        _at: Progress,
        _rng: &mut SampleRng,
    ) -> Result<(GradStore, Report, ())> {
        let (grads, report) = self.gradients_in_parts(batch, rayon::current_num_threads())?;
        Ok((grads, report, ()))
    }

    fn after_step(&self, _: (), _at: Progress) -> Result<()> {
        ema(&self.state, &self.online, self.cfg.momentum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_every_gradient_nonzero, max_abs, max_diff};
    use crate::pretrain::testing::{assert_steps_lower_the_loss, batch, tiny_model};
    use crate::rng::sample_rng;

    fn model() -> TimeMae {
        let cfg = TimeMaeConfig {
            decoder_layers: 2,
            codes: 8,
            ..Default::default()
        };
        let mut recipe = tiny_model(false);
        recipe.proj_dim = None;
        let model = TimeMae::new(&recipe, &cfg, &Device::Cpu).unwrap();
        model.init(&mut sample_rng(1, 0)).unwrap();
        model
    }

    #[test]
    fn steps_lower_the_loss() {
        assert_steps_lower_the_loss(&model(), &batch(&tiny_model(false)), 0, 12);
    }

    #[test]
    fn perplexity_counts_codewords_in_use() {
        assert!((perplexity(&[3, 3, 3, 3], 8) - 1.0).abs() < 1e-6);
        assert!((perplexity(&[0, 1, 2, 3], 8) - 4.0).abs() < 1e-5);
    }

    #[test]
    fn every_variable_gets_a_gradient_and_blocks_add_up() {
        let model = model();
        let batch = batch(&tiny_model(false));
        let (whole, report) = model.gradients_in_parts(&batch, 1).unwrap();
        let (parts, part_report) = model.gradients_in_parts(&batch, 3).unwrap();
        assert!(
            report.values[0] > 0.0 && report.values[1] > 0.0,
            "{report:?}"
        );
        assert!((1.0..=8.0).contains(&report.values[2]), "{report:?}");
        assert!((report.total - part_report.total).abs() < 1e-5);
        let trainable = model.trainable();
        assert_every_gradient_nonzero(&whole, &trainable);
        for (name, var) in trainable {
            let (a, b) = (whole.get(&var).unwrap(), parts.get(&var).unwrap());
            assert!(
                max_diff(a, b) <= 1e-5 * max_abs(a).max(1.0),
                "{name}: the blocks' gradients differ"
            );
        }
        for (name, var) in params::named(&model.state, "") {
            assert!(
                whole.get(&var).is_none(),
                "the EMA target {name} got a gradient"
            );
        }
    }

    #[test]
    fn the_encoder_never_reads_a_masked_patch() {
        let model = model();
        let batch = batch(&tiny_model(false));
        let visible = (&batch.patch_valid - &batch.patch_mask).unwrap();
        let encode = |series: &Tensor| {
            let patches = model.series.patchify(series).unwrap();
            model
                .series
                .encode_patches(&patches, Some(&visible))
                .unwrap()
        };
        let before = encode(&batch.series);
        // Window 0, patch 0 is masked in the hand-made batch: overwrite it.
        let mut series = batch.series.to_vec2::<f32>().unwrap();
        series[0][..8].fill(100.0);
        let after = encode(&Tensor::new(series, &Device::Cpu).unwrap());
        // [CLS] and the visible patches 1 and 3 of window 0 are unchanged.
        for position in [0, 2, 4] {
            let pick = |t: &Tensor| t.narrow(1, position, 1).unwrap().narrow(0, 0, 1).unwrap();
            assert!(
                max_diff(&pick(&before), &pick(&after)) < 1e-6,
                "position {position}"
            );
        }
    }

    #[test]
    fn padding_changes_no_loss() {
        let model = model();
        let mut batch = batch(&tiny_model(false));
        let before = model.gradients_in_parts(&batch, 1).unwrap().1;
        // Changing a masked patch's values changes the target (MRR, MCC) but not the
        // visible encoding; changing a padding patch changes nothing at all.
        let mut valid = vec![1f32; 16];
        valid[3] = 0.0; // window 0, patch 3: padding (unmasked in the hand-made batch)
        batch.patch_valid = Tensor::from_vec(valid, (4, 4), &Device::Cpu).unwrap();
        let base = model.gradients_in_parts(&batch, 1).unwrap().1;
        let mut series = batch.series.to_vec2::<f32>().unwrap();
        // Keep the window's mean and spread: the padding patch's values are only permuted.
        series[0][24..32].reverse();
        batch.series = Tensor::new(series, &Device::Cpu).unwrap();
        let permuted = model.gradients_in_parts(&batch, 1).unwrap().1;
        // Permuted values sum in another order, so the window's statistics may move in the
        // last bit (seen: 13.732861 against 13.732862); a leak of padding would move far more.
        assert!(
            (base.total - permuted.total).abs() < 1e-5 * base.total.abs().max(1.0),
            "{base:?} vs {permuted:?}"
        );
        assert!((before.total - base.total).abs() > 0.0);
    }
}
