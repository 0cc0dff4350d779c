//! CrossTimeNet (`kind = "crosstimenet"`): series turned into discrete tokens, then masked
//! token prediction, in two stages of one run.
//!
//! - Stage 1 (the first `tokenizer_share` of the steps): the VQ-VAE tokenizer of `vq`
//!   trains alone, on reconstruction plus commitment.
//! - Stage 2 (the rest): the tokenizer is frozen. 30% of each window's real patches are
//!   masked, and the series encoder predicts the tokenizer's code of each masked patch
//!   (cross-entropy over the codebook).
//!
//! Two departures from the reference, both for the toolkit's one transfer path. The
//! reference's stage-2 transformer reads the codes and starts from a downloaded language
//! model; ours reads the patches themselves (as BEiT does), so the encoder that transfer
//! evaluates stays the shared patch transformer, and it trains from scratch, offline.

use super::batch::PairBatch;
use super::losses::token_nll;
use super::objective::{Objective, Progress, Report};
use super::recipe::ModelRecipe;
use super::timemae::perplexity;
use super::vq::{CodebookUpdate, Tokenizer, VqConfig};
use crate::checks::check_prob;
use crate::error::Error;
use crate::model::{instance_norm, linear, params, Linear, SeriesEncoder};
use crate::rng::SampleRng;
use crate::train::{block_gradients, row_blocks};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{Module, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CrossTimeNetConfig {
    /// The share of the run's steps that trains the tokenizer (stage 1).
    pub tokenizer_share: f64,
    /// The share of each window's real patches masked in stage 2.
    pub mask_ratio: f64,
    /// `[objectives.tokenizer]`: the VQ-VAE's sizes and codebook settings.
    pub tokenizer: VqConfig,
}

impl Default for CrossTimeNetConfig {
    fn default() -> Self {
        CrossTimeNetConfig {
            tokenizer_share: 0.2,
            mask_ratio: 0.3,
            tokenizer: VqConfig::default(),
        }
    }
}

impl CrossTimeNetConfig {
    pub fn validate(&self) -> crate::Result<()> {
        check_prob("objectives.mask_ratio", self.mask_ratio)?;
        if !(self.tokenizer_share > 0.0 && self.tokenizer_share < 1.0) {
            return Err(Error::Config(format!(
                "objectives.tokenizer_share = {} must lie in (0, 1): both stages need steps",
                self.tokenizer_share
            )));
        }
        self.tokenizer.validate()
    }

    /// Whether step `at` trains the tokenizer (stage 1).
    fn tokenizer_stage(&self, at: Progress) -> bool {
        (at.step as f64) < (self.tokenizer_share * at.steps as f64).round()
    }
}

/// The stage (1 or 2); stage 1's reconstruction and commitment losses; the perplexity of the
/// batch's codes and how many distinct codes it uses (collapse shows as both falling); the
/// codes dead before the step (restarted in stage 1); stage 2's masked-token cross-entropy
/// and its top-1 accuracy. A stage's losses read 0 in the other.
const COLUMNS: &[&str] = &[
    "stage",
    "reconstruction",
    "commitment",
    "code_perplexity",
    "codes_used",
    "dead_codes",
    "mtp",
    "mtp_accuracy",
];

pub struct CrossTimeNet {
    cfg: CrossTimeNetConfig,
    online: VarMap,
    state: VarMap,
    tokenizer: Tokenizer,
    series: SeriesEncoder,
    head: Linear,
    /// The variables of each stage, in name order.
    stages: [Vec<(String, Var)>; 2],
}

impl CrossTimeNet {
    pub fn new(model: &ModelRecipe, o: &CrossTimeNetConfig, device: &Device) -> Result<Self> {
        let (online, state) = (VarMap::new(), VarMap::new());
        let vb = VarBuilder::from_varmap(&online, DType::F32, device);
        let s = &model.series;
        let tokenizer = Tokenizer::new(&o.tokenizer, s.patch, vb.pp("tokenizer"), &state, device)?;
        let series = SeriesEncoder::new(s, vb.pp("series"))?;
        let head = linear(s.transformer.d_model, o.tokenizer.codes, vb.pp("mtp_head"))?;
        let all = params::trainable(&online, "");
        let (first, second) = all
            .into_iter()
            .partition(|(n, _)| n.starts_with("tokenizer."));
        Ok(CrossTimeNet {
            cfg: o.clone(),
            stages: [first, second],
            online,
            state,
            tokenizer,
            series,
            head,
        })
    }

    fn tokenizer_step(
        &self,
        windows: &Tensor,
        patches: &Tensor,
        parts: usize,
    ) -> Result<(GradStore, Report, Tensor, Tensor)> {
        let (b, n) = (patches.dim(0)?, patches.dim(1)?);
        let count = (b * n) as f64;
        let (grads, blocks) = block_gradients(row_blocks(b, parts), &self.stages[0], |rows| {
            let block = |t: &Tensor| t.narrow(0, rows.start, rows.len());
            let e = self
                .tokenizer
                .encode(&block(windows)?, &block(patches)?, count)?;
            let total = (&e.reconstruction + &e.commitment)?;
            let value = |t: &Tensor| t.to_scalar::<f32>();
            let report = Report {
                total: value(&total)?,
                values: vec![value(&e.reconstruction)?, value(&e.commitment)?],
            };
            Ok((total, (report, e.latents, e.codes)))
        })?;
        let report = Report::sum(blocks.iter().map(|(r, _, _)| r));
        let latents: Vec<Tensor> = blocks.iter().map(|(_, z, _)| z.clone()).collect();
        let codes: Vec<Tensor> = blocks.iter().map(|(_, _, c)| c.clone()).collect();
        Ok((
            grads,
            report,
            Tensor::cat(&latents, 0)?,
            Tensor::cat(&codes, 0)?,
        ))
    }

    fn prediction_step(
        &self,
        batch: &PairBatch,
        windows: &Tensor,
        patches: &Tensor,
        parts: usize,
    ) -> Result<(GradStore, Report, Vec<u32>)> {
        let (b, n) = (patches.dim(0)?, patches.dim(1)?);
        let scored = (&batch.patch_mask * &batch.patch_valid)?;
        let count = scored.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
        let targets = self.tokenizer.tokenize(windows)?.detach();
        let (grads, reports) = block_gradients(row_blocks(b, parts), &self.stages[1], |rows| {
            let (first, m) = (rows.start, rows.len());
            let block = |t: &Tensor| t.narrow(0, first, m);
            let states = self.series.encode_masked(
                &block(patches)?,
                &block(&batch.patch_mask)?,
                &block(&batch.patch_valid)?,
            )?;
            let mask = block(&scored)?.flatten_all()?.to_vec1::<f32>()?;
            let at: Vec<u32> = (0..m * n)
                .filter(|&i| mask[i] > 0.5)
                .map(|i| i as u32)
                .collect();
            if at.is_empty() {
                let zero = self
                    .head
                    .forward(&states.narrow(1, 1, 1)?)?
                    .sum_all()?
                    .affine(0.0, 0.0)?;
                return Ok((
                    zero,
                    Report {
                        total: 0.0,
                        values: vec![0.0, 0.0],
                    },
                ));
            }
            let k = at.len();
            let at = Tensor::from_vec(at, k, windows.device())?;
            let d = states.dim(D::Minus1)?;
            let hidden = states
                .narrow(1, 1, n)?
                .reshape((m * n, d))?
                .index_select(&at, 0)?;
            let logits = self.head.forward(&hidden)?;
            let want = block(&targets)?.flatten_all()?.index_select(&at, 0)?;
            let nll = token_nll(&candle_nn::ops::log_softmax(&logits, D::Minus1)?, &want)?;
            let loss = (nll / count)?;
            let correct = logits
                .argmax(D::Minus1)?
                .eq(&want)?
                .to_dtype(DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()?;
            let value = loss.to_scalar::<f32>()?;
            Ok((
                loss,
                Report {
                    total: value,
                    values: vec![value, correct / count as f32],
                },
            ))
        })?;
        let report = Report::sum(&reports);
        let codes = targets.flatten_all()?.to_vec1::<u32>()?;
        let mask = scored.flatten_all()?.to_vec1::<f32>()?;
        let scored_codes = codes
            .iter()
            .zip(mask)
            .filter(|(_, m)| *m > 0.5)
            .map(|(c, _)| *c)
            .collect();
        Ok((grads, report, scored_codes))
    }

    fn step_in_parts(
        &self,
        batch: &PairBatch,
        at: Progress,
        rng: &mut SampleRng,
        parts: usize,
    ) -> Result<(GradStore, Report, Option<CodebookUpdate>)> {
        let windows = instance_norm(&batch.series)?;
        let patches = self.series.patchify(&windows)?;
        let (b, n) = (patches.dim(0)?, patches.dim(1)?);
        let dead = self.tokenizer.dead_codes(b * n)? as f32;
        let k = self.cfg.tokenizer.codes;
        if self.cfg.tokenizer_stage(at) {
            let (grads, r, latents, codes) = self.tokenizer_step(&windows, &patches, parts)?;
            let [reconstruction, commitment] = r.values[..] else {
                candle_core::bail!("the tokenizer reports two losses")
            };
            let (spread, used) = usage(&codes.to_vec1::<u32>()?, k);
            let values = vec![
                1.0,
                reconstruction,
                commitment,
                spread,
                used,
                dead,
                0.0,
                0.0,
            ];
            let update = CodebookUpdate {
                restarts: self.tokenizer.draw_restarts(&latents, rng)?,
                latents,
                codes,
            };
            Ok((
                grads,
                Report {
                    total: r.total,
                    values,
                },
                Some(update),
            ))
        } else {
            let (grads, r, codes) = self.prediction_step(batch, &windows, &patches, parts)?;
            let [mtp, accuracy] = r.values[..] else {
                candle_core::bail!("masked token prediction reports two values")
            };
            let (spread, used) = usage(&codes, k);
            let values = vec![2.0, 0.0, 0.0, spread, used, dead, mtp, accuracy];
            Ok((
                grads,
                Report {
                    total: r.total,
                    values,
                },
                None,
            ))
        }
    }
}

/// The perplexity of `codes` over `size` codewords, and how many distinct ones they are.
fn usage(codes: &[u32], size: usize) -> (f32, f32) {
    let distinct: std::collections::BTreeSet<&u32> = codes.iter().collect();
    (perplexity(codes, size), distinct.len() as f32)
}

impl Objective for CrossTimeNet {
    /// Stage 1's codebook update.
    type Pending = Option<CodebookUpdate>;

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn online(&self) -> &VarMap {
        &self.online
    }

    fn state(&self) -> &VarMap {
        &self.state
    }

    /// Draws the online weights; the codebook starts empty, every code dead, and the first
    /// step restarts each at a latent of the data.
    fn init(&self, rng: &mut SampleRng) -> Result<()> {
        params::seeded_init(&self.online, rng)
    }

    fn gradients(
        &self,
        batch: &PairBatch,
        at: Progress,
        rng: &mut SampleRng,
    ) -> Result<(GradStore, Report, Self::Pending)> {
        self.step_in_parts(batch, at, rng, rayon::current_num_threads())
    }

    fn after_step(&self, update: Self::Pending, _at: Progress) -> Result<()> {
        match update {
            Some(update) => self.tokenizer.update_codebook(&update),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_every_gradient_nonzero, max_abs, max_diff};
    use crate::pretrain::testing::{assert_steps_lower_the_loss, batch, tiny_model};
    use crate::rng::sample_rng;

    fn model() -> CrossTimeNet {
        let mut recipe = tiny_model(false);
        recipe.proj_dim = None;
        let cfg = CrossTimeNetConfig {
            tokenizer: VqConfig {
                hidden: 8,
                blocks: 2,
                latent: 4,
                codes: 8,
                ..Default::default()
            },
            ..Default::default()
        };
        let model = CrossTimeNet::new(&recipe, &cfg, &Device::Cpu).unwrap();
        model.init(&mut sample_rng(1, 0)).unwrap();
        model
    }

    const STAGE_1: Progress = Progress { step: 0, steps: 10 };
    const STAGE_2: Progress = Progress { step: 5, steps: 10 };

    #[test]
    fn each_stage_trains_its_own_variables_and_blocks_add_up() {
        let model = model();
        let batch = batch(&tiny_model(false));
        // The codebook starts empty, every code dead; the first step's update restarts
        // them at latents of the data (before it every latent quantises to 0, and the
        // decoder's first layer gets no gradient).
        assert_eq!(model.tokenizer.dead_codes(16).unwrap(), 8);
        let (_, _, update) = model
            .step_in_parts(&batch, STAGE_1, &mut sample_rng(4, 0), 1)
            .unwrap();
        model.after_step(update, STAGE_1).unwrap();
        assert!(model.tokenizer.dead_codes(16).unwrap() < 8);
        for (stage, at) in [(0, STAGE_1), (1, STAGE_2)] {
            let mut rng = sample_rng(2, 0);
            let (whole, report, update) = model.step_in_parts(&batch, at, &mut rng, 1).unwrap();
            let (parts, part_report, _) = model.step_in_parts(&batch, at, &mut rng, 3).unwrap();
            assert_eq!(report.values[0], stage as f32 + 1.0);
            assert!(report.total > 0.0 && (report.total - part_report.total).abs() < 1e-5);
            assert_every_gradient_nonzero(&whole, &model.stages[stage]);
            for (name, var) in &model.stages[stage] {
                let (a, b) = (whole.get(var).unwrap(), parts.get(var).unwrap());
                assert!(max_diff(a, b) <= 1e-5 * max_abs(a).max(1.0), "{name}");
            }
            for (name, var) in &model.stages[1 - stage] {
                assert!(
                    whole.get(var).is_none(),
                    "stage {} trained {name}",
                    stage + 1
                );
            }
            for (name, var) in params::named(&model.state, "") {
                assert!(whole.get(&var).is_none(), "{name} got a gradient");
            }
            assert_eq!(update.is_some(), stage == 0);
        }
    }

    #[test]
    fn each_stage_lowers_its_loss() {
        let model = model();
        let batch = batch(&tiny_model(false));
        // Steps 0..12 of 1000 are all stage 1; 900..912 all stage 2.
        assert_steps_lower_the_loss(&model, &batch, 0, 1000);
        assert_steps_lower_the_loss(&model, &batch, 900, 1000);
    }
}
