//! The pretraining recipe (`recipes/pretrain-*.toml`): the model's sizes, the objectives'
//! weights and settings, and the training schedule. Unknown keys are errors.

use crate::checks::{check_prob, read_toml};
use crate::error::{Error, Result};
use crate::model::{SeriesConfig, SymbolConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The learnable temperature is kept inside this range (SymTime's clamp).
pub const TEMPERATURE_RANGE: (f32, f32) = (0.001, 0.5);

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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub clip_norm: f64,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub shuffle_buffer: usize,
    pub prefetch_batches: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PretrainRecipe {
    pub model: ModelRecipe,
    #[serde(default)]
    pub objectives: ObjectiveConfig,
    pub train: TrainConfig,
}

impl PretrainRecipe {
    pub fn from_file(path: &Path) -> Result<Self> {
        read_toml(path, PretrainRecipe::validate)
    }

    pub fn validate(&self) -> Result<()> {
        self.model.series.validate()?;
        self.model.symbol.validate()?;
        let o = &self.objectives;
        check_prob("objectives.mask_ratio", o.mask_ratio)?;
        check_prob("objectives.mlm_prob", o.mlm_prob)?;
        check_prob("objectives.momentum", o.momentum)?;
        check_prob("objectives.alpha", o.alpha)?;
        let t = &self.train;
        if self.model.proj_dim == 0
            || o.queue_size == 0
            || t.batch_size < 2
            || t.steps == 0
            || t.checkpoint_every == 0
        {
            return Err(Error::Config("model.proj_dim, objectives.queue_size, train.steps and train.checkpoint_every must be >= 1, train.batch_size >= 2".into()));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !(positive(t.lr)
            && non_negative(t.min_lr)
            && positive(t.clip_norm)
            && non_negative(t.weight_decay))
        {
            return Err(Error::Config("train.lr and train.clip_norm must be finite and > 0, train.min_lr and train.weight_decay finite and >= 0".into()));
        }
        let (lo, hi) = TEMPERATURE_RANGE;
        if !(lo as f64..=hi as f64).contains(&o.temperature) {
            return Err(Error::Config(format!(
                "objectives.temperature = {} must lie in [{lo}, {hi}], the range it is kept in",
                o.temperature
            )));
        }
        let weights = [o.mpm_weight, o.mlm_weight, o.itc_weight];
        if !weights.iter().all(|w| non_negative(*w)) || weights.iter().sum::<f64>() == 0.0 {
            return Err(Error::Config("objectives: mpm_weight, mlm_weight and itc_weight must be finite and >= 0, and not all 0 (the model would learn nothing)".into()));
        }
        // Upper limits: beyond them a typo becomes an allocation failure or a run of years.
        for (name, value, max) in [
            ("train.batch_size", t.batch_size, 1 << 16),
            ("train.steps", t.steps, 1_000_000_000),
            ("train.shuffle_buffer", t.shuffle_buffer, 10_000_000),
            ("train.prefetch_batches", t.prefetch_batches, 1024),
            ("objectives.queue_size", o.queue_size, 1 << 20),
            ("model.proj_dim", self.model.proj_dim, 16_384),
        ] {
            if value > max {
                return Err(Error::Config(format!(
                    "{name} = {value} is more than {max}"
                )));
            }
        }
        Ok(())
    }
}
